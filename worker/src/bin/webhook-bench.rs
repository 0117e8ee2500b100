//! `webhook-bench`: how fast the real webhook dispatcher drains a backlog to a local
//! receiver, and what share of messages it delivers on the first attempt while doing so.
//!
//! ```text
//! REDRESS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/redress_whbench \
//! cargo run --release -p redress-worker --bin webhook-bench -- \
//!     [--messages 20000] [--endpoints 20] [--latency-ms 0] [--dispatchers 1] \
//!     [--concurrency 64] [--per-endpoint 4] [--timeout-ms 15000] [--max-wait-secs 300] [--keep]
//! ```
//!
//! Against a migrated database (`redress-api migrate`), it:
//!
//! 1. starts a keep-alive HTTP/1.1 receiver on 127.0.0.1 that answers `200` after
//!    `--latency-ms` (a receiver's own processing time), reading every request in full;
//! 2. creates a tenant of its own with `--endpoints` endpoints on that receiver and queues
//!    `--messages` messages spread evenly over them, through the same store functions the
//!    hub uses (a realistic `complaint.status_changed` body, about 1 KiB);
//! 3. starts `--dispatchers` real [`Dispatcher`]s (each with its own pool, as separate
//!    worker processes have) with the deployment's default settings unless overridden,
//!    and waits until no message is pending;
//! 4. reports deliveries per second, the share delivered on the first attempt, attempt
//!    latency percentiles and the failures by kind, as a table and as one JSON line.
//!
//! Its tenant, endpoints, messages and attempts are deleted at the end unless `--keep`.
//! The numbers go into docs/PERFORMANCE.md.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use redress_shared::{
    config::Settings,
    db,
    ids::TenantId,
    webhooks::{
        model::{NewEndpoint, COMPLAINT_STATUS_CHANGED},
        store,
    },
};
use redress_worker::webhooks::Dispatcher;
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

struct Args {
    database_url: Option<String>,
    messages: usize,
    endpoints: usize,
    latency_ms: u64,
    dispatchers: usize,
    concurrency: Option<usize>,
    per_endpoint: Option<usize>,
    timeout_ms: Option<u64>,
    max_wait: Duration,
    keep: bool,
}

const USAGE: &str = "webhook-bench [--database-url URL] [--messages N] [--endpoints N] \
[--latency-ms N] [--dispatchers N] [--concurrency N] [--per-endpoint N] [--timeout-ms N] \
[--max-wait-secs N] [--keep]
The database URL may also come from REDRESS_DATABASE_URL.";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        database_url: std::env::var("REDRESS_DATABASE_URL").ok(),
        messages: 20_000,
        endpoints: 20,
        latency_ms: 0,
        dispatchers: 1,
        concurrency: None,
        per_endpoint: None,
        timeout_ms: None,
        max_wait: Duration::from_secs(300),
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--database-url" => args.database_url = Some(value()?),
            "--messages" => args.messages = value()?.parse()?,
            "--endpoints" => args.endpoints = value()?.parse()?,
            "--latency-ms" => args.latency_ms = value()?.parse()?,
            "--dispatchers" => args.dispatchers = value()?.parse()?,
            "--concurrency" => args.concurrency = Some(value()?.parse()?),
            "--per-endpoint" => args.per_endpoint = Some(value()?.parse()?),
            "--timeout-ms" => args.timeout_ms = Some(value()?.parse()?),
            "--max-wait-secs" => args.max_wait = Duration::from_secs(value()?.parse()?),
            "--keep" => args.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.messages == 0 || args.endpoints == 0 || args.dispatchers == 0 {
        anyhow::bail!("--messages, --endpoints and --dispatchers must be at least 1");
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

/// A receiver that keeps connections alive, as real ones behind a load balancer do. The
/// scripted receiver of the tests closes every connection, which would measure TCP
/// handshakes (and run out of ephemeral ports) rather than the dispatcher.
struct BenchReceiver {
    port: u16,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl BenchReceiver {
    async fn start(latency: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (requests, connections) = (requests.clone(), connections.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(serve(stream, latency, requests.clone()));
                }
            }
        });
        Ok(Self {
            port,
            requests,
            connections,
            task,
        })
    }
}

impl Drop for BenchReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves requests on one connection until the client closes it: reads the head and the
/// `content-length` body, waits `latency`, answers 200.
async fn serve(stream: TcpStream, latency: Duration, requests: Arc<AtomicU64>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut length = 0usize;
        loop {
            line.clear();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        if write
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .is_err()
        {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeding and measuring
// ---------------------------------------------------------------------------------------

/// A `complaint.status_changed` payload shaped like the hub's (about 1 KiB once wrapped).
fn payload(n: usize) -> serde_json::Value {
    json!({
        "complaint_id": format!("cmp_bench{n:012}"),
        "external_ref": format!("app-bench-{n}"),
        "status": "routed",
        "previous_status": "submitted",
        "sequence": 2,
        "event_id": format!("evt_bench{n:012}"),
        "event_type": "complaint.routed",
        "occurred_at": "2026-11-21T08:00:00.000Z",
        "channel": "provider_service",
        "deadlines": [
            {"clock": "acknowledge", "due_at": "2026-11-24T08:00:00Z", "policy": "cn-pos-provider"},
            {"clock": "respond", "due_on": "2026-12-05", "policy": "cn-pos-provider"}
        ],
        "current": [{
            "channel": "provider_service",
            "track": "main",
            "since": "2026-11-21T08:00:00Z",
            "deadlines": [
                {"clock": "acknowledge", "due_at": "2026-11-24T08:00:00Z"},
                {"clock": "respond", "due_on": "2026-12-05"}
            ]
        }],
        "missing_evidence": ["merchant_contract"],
    })
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = sql_types::BigInt)]
    pending: i64,
    #[diesel(sql_type = sql_types::BigInt)]
    delivered: i64,
    #[diesel(sql_type = sql_types::BigInt)]
    failed: i64,
    #[diesel(sql_type = sql_types::BigInt)]
    first_attempt: i64,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    last_delivered: Option<DateTime<Utc>>,
}

async fn counts(conn: &mut AsyncPgConnection, tenant: &TenantId) -> anyhow::Result<Counts> {
    Ok(diesel::sql_query(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, \
                count(*) FILTER (WHERE status = 'delivered') AS delivered, \
                count(*) FILTER (WHERE status = 'failed') AS failed, \
                count(*) FILTER (WHERE status = 'delivered' AND attempts = 1) AS first_attempt, \
                max(delivered_at) AS last_delivered \
         FROM webhook_messages WHERE tenant_id = $1",
    )
    .bind::<sql_types::Text, _>(tenant.as_str())
    .get_result(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Latency {
    #[diesel(sql_type = sql_types::BigInt)]
    attempts: i64,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Double>)]
    p50: Option<f64>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Double>)]
    p95: Option<f64>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Double>)]
    p99: Option<f64>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Integer>)]
    max: Option<i32>,
}

#[derive(QueryableByName)]
struct FailureKind {
    #[diesel(sql_type = sql_types::Text)]
    kind: String,
    #[diesel(sql_type = sql_types::BigInt)]
    n: i64,
}

struct Report {
    messages: usize,
    endpoints: usize,
    dispatchers: usize,
    concurrency: usize,
    per_endpoint: usize,
    receiver_latency_ms: u64,
    enqueue_secs: f64,
    drain_secs: f64,
    delivered: i64,
    failed: i64,
    pending: i64,
    first_attempt: i64,
    attempts: i64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: i32,
    failures: Vec<(String, i64)>,
    receiver_requests: u64,
    receiver_connections: u64,
}

impl Report {
    fn per_second(&self) -> f64 {
        if self.drain_secs > 0.0 {
            self.delivered as f64 / self.drain_secs
        } else {
            0.0
        }
    }

    fn first_attempt_share(&self) -> f64 {
        self.first_attempt as f64 / self.messages as f64
    }

    fn print_table(&self) {
        let rows: Vec<(&str, String)> = vec![
            ("messages", self.messages.to_string()),
            ("endpoints", self.endpoints.to_string()),
            ("dispatchers", self.dispatchers.to_string()),
            (
                "in flight (per process / per endpoint)",
                format!("{} / {}", self.concurrency, self.per_endpoint),
            ),
            (
                "receiver latency",
                format!("{} ms", self.receiver_latency_ms),
            ),
            ("enqueue time", format!("{:.2} s", self.enqueue_secs)),
            ("drain time", format!("{:.2} s", self.drain_secs)),
            ("deliveries per second", format!("{:.0}", self.per_second())),
            (
                "delivered on the first attempt",
                format!(
                    "{} of {} ({:.2} %)",
                    self.first_attempt,
                    self.messages,
                    self.first_attempt_share() * 100.0
                ),
            ),
            (
                "delivered / failed / pending",
                format!("{} / {} / {}", self.delivered, self.failed, self.pending),
            ),
            ("attempts", self.attempts.to_string()),
            (
                "attempt latency p50 / p95 / p99 / max",
                format!(
                    "{:.1} / {:.1} / {:.1} / {} ms",
                    self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
                ),
            ),
            (
                "failed attempts by kind",
                if self.failures.is_empty() {
                    "none".to_owned()
                } else {
                    self.failures
                        .iter()
                        .map(|(k, n)| format!("{k}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
            (
                "receiver requests / connections",
                format!("{} / {}", self.receiver_requests, self.receiver_connections),
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            println!("{k:<width$}  {v}");
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "messages": self.messages,
            "endpoints": self.endpoints,
            "dispatchers": self.dispatchers,
            "concurrency": self.concurrency,
            "per_endpoint_concurrency": self.per_endpoint,
            "receiver_latency_ms": self.receiver_latency_ms,
            "enqueue_secs": round(self.enqueue_secs, 3),
            "drain_secs": round(self.drain_secs, 3),
            "deliveries_per_second": round(self.per_second(), 1),
            "first_attempt_share": round(self.first_attempt_share(), 4),
            "delivered": self.delivered,
            "failed": self.failed,
            "pending": self.pending,
            "attempts": self.attempts,
            "attempt_latency_ms": {"p50": round(self.p50_ms, 1), "p95": round(self.p95_ms, 1), "p99": round(self.p99_ms, 1), "max": self.max_ms},
            "failed_attempts_by_kind": self.failures.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "receiver_requests": self.receiver_requests,
            "receiver_connections": self.receiver_connections,
        })
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let url = args.database_url.clone().ok_or_else(|| {
        anyhow::anyhow!("give --database-url or REDRESS_DATABASE_URL (a migrated database)")
    })?;
    let mut conn = AsyncPgConnection::establish(&url).await?;
    let migrated: bool =
        diesel::dsl::sql::<sql_types::Bool>("SELECT to_regclass('webhook_messages') IS NOT NULL")
            .get_result(&mut conn)
            .await?;
    if !migrated {
        anyhow::bail!(
            "the database has no webhook tables; run `redress-api migrate` against it first"
        );
    }
    let tenant = TenantId::generate();
    db::tenants::insert_tenant(&mut conn, &tenant, "webhook-bench", None).await?;
    eprintln!("bench tenant {tenant}");
    let result = run(&args, &url, &tenant, &mut conn).await;
    if args.keep {
        eprintln!("kept tenant {tenant} and its webhook rows");
    } else {
        // Endpoints take their messages and attempts with them (ON DELETE CASCADE).
        diesel::sql_query("DELETE FROM webhook_endpoints WHERE tenant_id = $1")
            .bind::<sql_types::Text, _>(tenant.as_str())
            .execute(&mut conn)
            .await?;
        diesel::sql_query("DELETE FROM tenants WHERE id = $1")
            .bind::<sql_types::Text, _>(tenant.as_str())
            .execute(&mut conn)
            .await?;
    }
    let report = result?;
    report.print_table();
    println!("{}", report.json());
    Ok(())
}

async fn run(
    args: &Args,
    url: &str,
    tenant: &TenantId,
    conn: &mut AsyncPgConnection,
) -> anyhow::Result<Report> {
    let receiver = BenchReceiver::start(Duration::from_millis(args.latency_ms)).await?;

    let mut settings = Settings::defaults()?;
    settings.webhook_allow_loopback = true;
    if let Some(n) = args.concurrency {
        settings.webhooks.concurrency = n;
    }
    if let Some(n) = args.per_endpoint {
        settings.webhooks.per_endpoint_concurrency = n;
    }
    if let Some(n) = args.timeout_ms {
        settings.webhooks.timeout_ms = n;
    }
    settings.validate()?;

    for i in 0..args.endpoints {
        let new = NewEndpoint {
            url: format!("http://127.0.0.1:{}/e{i}", receiver.port),
            event_types: vec![COMPLAINT_STATUS_CHANGED.to_owned()],
            description: "webhook-bench".to_owned(),
            enabled: true,
        };
        store::create_endpoint(conn, tenant, &new, Utc::now()).await?;
    }

    // Every endpoint subscribes to the type, so one event queues one message per endpoint;
    // the batches commit in transactions of a hundred events to keep seeding short.
    let seeding = Instant::now();
    let events = args.messages.div_ceil(args.endpoints);
    let mut n = 0;
    while n < events {
        let batch = (events - n).min(100);
        let start = n;
        conn.transaction(async |c| {
            for k in start..start + batch {
                store::enqueue_for_event(
                    c,
                    tenant,
                    COMPLAINT_STATUS_CHANGED,
                    payload(k),
                    Utc::now(),
                )
                .await?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await?;
        n += batch;
    }
    let enqueue_secs = seeding.elapsed().as_secs_f64();
    let queued = counts(conn, tenant).await?.pending;
    eprintln!(
        "queued {queued} messages for {} endpoints in {enqueue_secs:.2} s",
        args.endpoints
    );
    diesel::sql_query("ANALYZE webhook_messages")
        .execute(conn)
        .await?;

    let shutdown = CancellationToken::new();
    let started = Utc::now();
    let clock = Instant::now();
    let mut dispatchers = Vec::new();
    for _ in 0..args.dispatchers {
        let pool = db::pool_with(url, settings.db_pool_size, settings.db_session())?;
        let d = Dispatcher::new(pool, &settings)?;
        dispatchers.push(tokio::spawn(d.run(shutdown.clone())));
    }
    let mut last = counts(conn, tenant).await?;
    while last.pending > 0 && clock.elapsed() < args.max_wait {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = counts(conn, tenant).await?;
    }
    shutdown.cancel();
    for d in dispatchers {
        let _ = d.await;
    }
    let last = counts(conn, tenant).await?;
    let drain_secs = match last.last_delivered {
        Some(t) => (t - started).to_std().unwrap_or_default().as_secs_f64(),
        None => clock.elapsed().as_secs_f64(),
    };

    let latency: Latency = diesel::sql_query(
        "SELECT count(*) AS attempts, \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50, \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95, \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99, \
                max(latency_ms) AS max \
         FROM webhook_attempts WHERE tenant_id = $1",
    )
    .bind::<sql_types::Text, _>(tenant.as_str())
    .get_result(conn)
    .await?;
    let failures: Vec<FailureKind> = diesel::sql_query(
        "SELECT coalesce(error_kind, 'none') AS kind, count(*) AS n FROM webhook_attempts \
         WHERE tenant_id = $1 AND error_kind IS NOT NULL GROUP BY 1 ORDER BY 2 DESC",
    )
    .bind::<sql_types::Text, _>(tenant.as_str())
    .load(conn)
    .await?;

    Ok(Report {
        messages: queued as usize,
        endpoints: args.endpoints,
        dispatchers: args.dispatchers,
        concurrency: settings.webhooks.concurrency,
        per_endpoint: settings.webhooks.per_endpoint_concurrency,
        receiver_latency_ms: args.latency_ms,
        enqueue_secs,
        drain_secs,
        delivered: last.delivered,
        failed: last.failed,
        pending: last.pending,
        first_attempt: last.first_attempt,
        attempts: latency.attempts,
        p50_ms: latency.p50.unwrap_or_default(),
        p95_ms: latency.p95.unwrap_or_default(),
        p99_ms: latency.p99.unwrap_or_default(),
        max_ms: latency.max.unwrap_or_default(),
        failures: failures.into_iter().map(|f| (f.kind, f.n)).collect(),
        receiver_requests: AtomicU64::load(&receiver.requests, Ordering::Relaxed),
        receiver_connections: AtomicU64::load(&receiver.connections, Ordering::Relaxed),
    })
}
