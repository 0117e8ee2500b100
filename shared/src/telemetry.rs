//! Structured JSON logs. Field names are dotted (`tenant.id`, `complaint.id`, `duration_ms`).
//! Nothing here logs request bodies: phone numbers, names and secrets never reach a log line.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once per process. `filter` is a tracing filter such as
/// `info` or `redress_worker=debug,info`. A second call (tests starting several apps) is a no-op.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        // stderr, so admin commands can print their JSON result alone on stdout.
        .with_writer(std::io::stderr)
        .try_init();
}
