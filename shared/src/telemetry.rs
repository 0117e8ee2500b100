//! Structured JSON logs. Field names are dotted (`tenant.id`, `complaint.id`, `duration_ms`).
//! Nothing here logs request bodies: phone numbers, names and secrets never reach a log line.

use tracing_subscriber::{
    fmt::{self, format::FmtSpan},
    EnvFilter,
};

/// Installs the global subscriber once per process. `filter` is a tracing filter such as
/// `info` or `redress_worker=debug,info`. A second call (tests starting several apps) is a no-op.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        // One line when each request span closes: the access log, with its request id,
        // route, status and latency.
        .with_span_events(FmtSpan::CLOSE)
        .with_env_filter(filter)
        // stderr, so admin commands can print their JSON result alone on stdout.
        .with_writer(std::io::stderr)
        .try_init();
}
