//! Prometheus metrics (CONTRACT §6: `GET /metrics`, text format).
//!
//! Each process builds one [`Metrics`] with its own [`Registry`] and passes it to what records
//! into it, like the settings: nothing global, so tests that run an API and a worker in one
//! process see two separate sets. Counters and histograms are recorded where things happen;
//! the numbers that describe shared state (outbox lag, queue depths, pool usage) are sampled
//! when Prometheus scrapes, by [`Exporter::render`], so an idle process does no work for them.
//!
//! Every series is named in `docs/OPERATIONS.md#metrics`.

use std::{sync::Arc, time::Duration};

use lapin::{options::QueueDeclareOptions, types::FieldTable, Connection};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::sync::Mutex;

use crate::{amqp::Topology, db::PgPool};

/// Which binary a set of metrics belongs to; each registers only the series it records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    Api,
    Worker,
}

impl Process {
    fn as_str(self) -> &'static str {
        match self {
            Process::Api => "api",
            Process::Worker => "worker",
        }
    }
}

/// Latency buckets in seconds: fine around the intake target (25 ms) and the end-to-end target
/// (250 ms), coarse beyond.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A sampled number older than this is not worth waiting for: a scrape answers with what it
/// has, and `redress_probe_up` says which probe failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The series of one process. Handles are cheap to clone (they share their storage), so the
/// parts of a process keep the whole `Arc<Metrics>` and record into the fields they own.
pub struct Metrics {
    registry: Registry,
    /// API: `redress_http_request_duration_seconds{method,route,status}`; `route` is the
    /// route's pattern (`/v1/complaints/{id}`), never the raw path, so ids do not become
    /// label values.
    pub http_requests: HistogramVec,
    /// Worker: `redress_router_messages_total{outcome}`, one per message the router handled.
    pub router_messages: IntCounterVec,
    /// Worker: `redress_cases_routed_total`, complaints the router sent to a channel.
    pub cases_routed: IntCounter,
    /// Worker: `redress_route_delay_seconds`, from the complaint's submission to the commit
    /// of its routing decision (what a partner waits for).
    pub route_delay: Histogram,
    /// Worker: `redress_deadlines_breached_total`, SLA breaches the scheduler fired.
    pub deadlines_breached: IntCounter,
    /// Worker: `redress_webhook_attempts_total{outcome}`; `delivered`, `gone`, or the error
    /// kind of a failed attempt (`timeout`, `connect`, `http_status`…).
    pub webhook_attempts: IntCounterVec,
    /// Worker: `redress_webhook_attempt_duration_seconds`.
    pub webhook_duration: Histogram,
    outbox_unsent: IntGauge,
    outbox_lag: Gauge,
    clocks_waiting: IntGauge,
    queue_messages: IntGaugeVec,
    queue_consumers: IntGaugeVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    pool_waiting: IntGauge,
    probe_up: IntGaugeVec,
    resident_bytes: IntGauge,
}

impl Metrics {
    /// A fresh registry holding the series `process` records and the sampled ones.
    pub fn new(process: Process) -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new_custom(
            Some("redress".into()),
            Some(
                [("process".to_owned(), process.as_str().to_owned())]
                    .into_iter()
                    .collect(),
            ),
        )?;
        let latency = |name: &str, help: &str| {
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
        };
        let m = Metrics {
            http_requests: HistogramVec::new(
                latency(
                    "http_request_duration_seconds",
                    "HTTP requests by method, route pattern and status, from first byte in to response out",
                ),
                &["method", "route", "status"],
            )?,
            router_messages: IntCounterVec::new(
                Opts::new(
                    "router_messages_total",
                    "Messages the router handled, by outcome",
                ),
                &["outcome"],
            )?,
            cases_routed: IntCounter::new(
                "cases_routed_total",
                "Complaints the router sent to a channel",
            )?,
            route_delay: Histogram::with_opts(latency(
                "route_delay_seconds",
                "From a complaint's submission to the commit of its routing decision",
            ))?,
            deadlines_breached: IntCounter::new(
                "deadlines_breached_total",
                "SLA deadlines the scheduler found breached",
            )?,
            webhook_attempts: IntCounterVec::new(
                Opts::new(
                    "webhook_attempts_total",
                    "Webhook delivery attempts by outcome (delivered, gone, or the error kind)",
                ),
                &["outcome"],
            )?,
            webhook_duration: Histogram::with_opts(latency(
                "webhook_attempt_duration_seconds",
                "Time from sending a webhook to its answer",
            ))?,
            outbox_unsent: IntGauge::new(
                "outbox_unsent",
                "Outbox rows not yet confirmed by the broker (sampled at scrape)",
            )?,
            outbox_lag: Gauge::new(
                "outbox_lag_seconds",
                "Age of the oldest unsent outbox row; 0 when none (sampled at scrape)",
            )?,
            clocks_waiting: IntGauge::new(
                "deadline_clocks_waiting_for_calendar",
                "SLA clocks without a due date until a calendar year is loaded (sampled at scrape)",
            )?,
            queue_messages: IntGaugeVec::new(
                Opts::new(
                    "queue_messages",
                    "Messages ready in a queue, from a passive declare (sampled at scrape)",
                ),
                &["queue"],
            )?,
            queue_consumers: IntGaugeVec::new(
                Opts::new(
                    "queue_consumers",
                    "Consumers of a queue, from a passive declare (sampled at scrape)",
                ),
                &["queue"],
            )?,
            pool_connections: IntGaugeVec::new(
                Opts::new(
                    "db_pool_connections",
                    "Connections in this process's Postgres pool by state (in_use, idle)",
                ),
                &["state"],
            )?,
            pool_max: IntGauge::new(
                "db_pool_max_connections",
                "Size limit of this process's Postgres pool",
            )?,
            pool_waiting: IntGauge::new(
                "db_pool_waiting",
                "Tasks waiting for a pooled Postgres connection",
            )?,
            probe_up: IntGaugeVec::new(
                Opts::new(
                    "probe_up",
                    "1 if the last scrape could sample the dependency, 0 if not (its gauges then keep their last value)",
                ),
                &["dependency"],
            )?,
            resident_bytes: IntGauge::new(
                "process_resident_memory_bytes",
                "Resident set size of this process (VmRSS)",
            )?,
            registry,
        };
        let r = &m.registry;
        match process {
            Process::Api => {
                r.register(Box::new(m.http_requests.clone()))?;
            }
            Process::Worker => {
                r.register(Box::new(m.router_messages.clone()))?;
                r.register(Box::new(m.cases_routed.clone()))?;
                r.register(Box::new(m.route_delay.clone()))?;
                r.register(Box::new(m.deadlines_breached.clone()))?;
                r.register(Box::new(m.webhook_attempts.clone()))?;
                r.register(Box::new(m.webhook_duration.clone()))?;
            }
        }
        r.register(Box::new(m.outbox_unsent.clone()))?;
        r.register(Box::new(m.outbox_lag.clone()))?;
        r.register(Box::new(m.clocks_waiting.clone()))?;
        r.register(Box::new(m.queue_messages.clone()))?;
        r.register(Box::new(m.queue_consumers.clone()))?;
        r.register(Box::new(m.pool_connections.clone()))?;
        r.register(Box::new(m.pool_max.clone()))?;
        r.register(Box::new(m.pool_waiting.clone()))?;
        r.register(Box::new(m.probe_up.clone()))?;
        r.register(Box::new(m.resident_bytes.clone()))?;
        // Series with labels appear only once a label value is used; these start at zero so
        // a dashboard (and the test that checks the names) sees them before the first event.
        for outcome in ["routed", "duplicate"] {
            m.router_messages.with_label_values(&[outcome]);
        }
        m.webhook_attempts.with_label_values(&["delivered"]);
        for state in ["in_use", "idle"] {
            m.pool_connections.with_label_values(&[state]);
        }
        Ok(Arc::new(m))
    }

    /// Records one HTTP request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[method, route, status_label(status)])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one message the router handled. `outcome` is a fixed word (`routed`,
    /// `duplicate`, …), never data from the message.
    pub fn observe_router(&self, outcome: &str) {
        self.router_messages.with_label_values(&[outcome]).inc();
    }

    /// Records one webhook attempt.
    pub fn observe_webhook(&self, outcome: &str, elapsed: Duration) {
        self.webhook_attempts.with_label_values(&[outcome]).inc();
        self.webhook_duration.observe(elapsed.as_secs_f64());
    }

    /// The registry in the text exposition format.
    fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only for a metric family that is malformed, which the
        // typed constructors above cannot produce.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "metrics could not be encoded");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Status codes as label values without allocating; anything unusual collapses to its class.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        307 => "307",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// Reads queue depths with passive declares on a connection of its own, made at the first
/// scrape and remade when it drops. A passive declare changes nothing on the broker.
pub struct BrokerProbe {
    url: String,
    queues: Vec<String>,
    conn: Mutex<Option<Connection>>,
}

impl BrokerProbe {
    pub fn new(url: &str, topology: &Topology) -> Self {
        Self {
            url: url.to_owned(),
            queues: vec![
                topology.routing_queue.clone(),
                topology.dead_letter_queue.clone(),
            ],
            conn: Mutex::new(None),
        }
    }

    /// `(queue, messages ready, consumers)` for each queue of the topology.
    async fn depths(&self) -> lapin::Result<Vec<(String, u32, u32)>> {
        let mut guard = self.conn.lock().await;
        let alive = guard.as_ref().is_some_and(|c| c.status().connected());
        if !alive {
            *guard = Some(crate::amqp::connect(&self.url, "redress-metrics").await?);
        }
        let Some(conn) = guard.as_ref() else {
            return Ok(Vec::new());
        };
        // A passive declare of a missing queue closes the channel, so one channel per scrape.
        let channel = conn.create_channel().await?;
        let mut out = Vec::with_capacity(self.queues.len());
        for name in &self.queues {
            let q = channel
                .queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            out.push((name.clone(), q.message_count(), q.consumer_count()));
        }
        let _ = channel.close(200, "metrics sampled".into()).await;
        Ok(out)
    }
}

/// Serves one process's metrics: samples the shared state, then encodes the registry.
pub struct Exporter {
    metrics: Arc<Metrics>,
    pool: PgPool,
    broker: BrokerProbe,
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>, pool: PgPool, broker: BrokerProbe) -> Self {
        Self {
            metrics,
            pool,
            broker,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The text a scrape answers with. Never fails: a dependency that cannot be sampled
    /// within two seconds is reported by `redress_probe_up{dependency}` = 0.
    pub async fn render(&self) -> String {
        let m = &self.metrics;
        let status = self.pool.status();
        m.pool_max.set(gauge_value(status.max_size));
        m.pool_waiting.set(gauge_value(status.waiting));
        m.pool_connections
            .with_label_values(&["in_use"])
            .set(gauge_value(status.size.saturating_sub(status.available)));
        m.pool_connections
            .with_label_values(&["idle"])
            .set(gauge_value(status.available));
        if let Some(rss) = resident_bytes() {
            m.resident_bytes.set(rss);
        }

        let (outbox, queues) = tokio::join!(
            tokio::time::timeout(PROBE_TIMEOUT, async {
                let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
                let backlog = crate::outbox::backlog(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let waiting = crate::deadlines::clocks_waiting_for_calendar(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((backlog, waiting))
            }),
            tokio::time::timeout(PROBE_TIMEOUT, self.broker.depths()),
        );
        match outbox {
            Ok(Ok(((unsent, lag), waiting))) => {
                m.outbox_unsent.set(unsent);
                m.outbox_lag.set(lag);
                m.clocks_waiting.set(waiting);
                m.probe_up.with_label_values(&["postgres"]).set(1);
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "metrics: outbox backlog not sampled");
                m.probe_up.with_label_values(&["postgres"]).set(0);
            }
            Err(_) => m.probe_up.with_label_values(&["postgres"]).set(0),
        }
        match queues {
            Ok(Ok(depths)) => {
                for (queue, messages, consumers) in depths {
                    m.queue_messages
                        .with_label_values(&[queue.as_str()])
                        .set(i64::from(messages));
                    m.queue_consumers
                        .with_label_values(&[queue.as_str()])
                        .set(i64::from(consumers));
                }
                m.probe_up.with_label_values(&["rabbitmq"]).set(1);
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "metrics: queue depths not sampled");
                m.probe_up.with_label_values(&["rabbitmq"]).set(0);
            }
            Err(_) => m.probe_up.with_label_values(&["rabbitmq"]).set(0),
        }
        m.encode()
    }
}

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// VmRSS of this process in bytes, on Linux; `None` elsewhere.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_process_exposes_its_own_series_and_not_the_others() {
        let api = Metrics::new(Process::Api).unwrap();
        api.observe_http("POST", "/v1/complaints", 202, Duration::from_millis(3));
        let text = api.encode();
        let count = text
            .lines()
            .find(|l| {
                l.starts_with("redress_http_request_duration_seconds_count{")
                    && l.contains("route=\"/v1/complaints\"")
                    && l.contains("status=\"202\"")
                    && l.contains("process=\"api\"")
            })
            .unwrap_or_default();
        assert!(count.ends_with(" 1"), "{text}");
        assert!(!text.contains("redress_cases_routed_total"), "{text}");

        let worker = Metrics::new(Process::Worker).unwrap();
        worker.cases_routed.inc();
        worker.deadlines_breached.inc();
        let text = worker.encode();
        assert!(
            text.contains("redress_cases_routed_total{process=\"worker\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("redress_deadlines_breached_total{process=\"worker\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("redress_http_request_duration_seconds"),
            "{text}"
        );
    }

    #[test]
    fn unusual_status_codes_collapse_to_their_class() {
        assert_eq!(status_label(202), "202");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
    }
}
