//! `redress-bench`: measures a Redress stack it starts itself, and runs fault drills against
//! it. See docs/PERFORMANCE.md for how to run it and what it found.
//!
//! `redress-bench run` creates a scratch database and broker namespace, starts one
//! `redress-api` and one `redress-worker` as child processes, creates cn-pos tenants, partner
//! clients and a webhook endpoint per tenant pointing at a receiver inside this process,
//! measures the baselines (plain SQL transactions writing the same rows; a plain
//! publish-with-confirms loop), then drives complaints closed-loop at the maximum and
//! open-loop at half of it, and reports intake and end-to-end latency, resident memory, CPU
//! and whether every acknowledged complaint was routed exactly once.
//!
//! `redress-bench drill KIND` runs load at a steady rate while it breaks something
//! (`kill-api`, `kill-worker`, `stop-rabbitmq`, `restart-postgres`) or runs several
//! processes at once (`scale`), and ends with acknowledged versus present and routed.

mod baseline;
mod complaint;
mod load;
mod priority;
mod receiver;
mod report;
mod speed;
mod stack;
mod sys;
mod verify;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::{
    ids::TenantId,
    webhooks::{model::NewEndpoint, store},
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{
    load::{Generator, LoadResult, LoadSpec, Mode, Partner},
    receiver::Receiver,
    report::{table, Percentiles},
    stack::{Kind, RssPeaks, Stack, StackConfig},
    sys::CpuUse,
    verify::{Drain, Integrity},
};

#[derive(Parser)]
#[command(
    name = "redress-bench",
    version,
    about = "Load, baselines and fault drills for Redress"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Debug)]
struct Common {
    /// The redress-api binary (default: next to this one).
    #[arg(long, global = true, env = "REDRESS_BENCH_API_BIN")]
    api_bin: Option<PathBuf>,
    /// The redress-worker binary (default: next to this one).
    #[arg(long, global = true, env = "REDRESS_BENCH_WORKER_BIN")]
    worker_bin: Option<PathBuf>,
    /// A database on the Postgres server; the run creates and drops its own database there.
    #[arg(
        long,
        global = true,
        env = "REDRESS_BENCH_PG_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin_url: String,
    /// The broker; the run declares everything under its own namespace and deletes it after.
    #[arg(
        long,
        global = true,
        env = "REDRESS_BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    /// REDRESS_LOG of the API and workers (production runs `info`).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    /// A setting for the API processes, e.g. `--api-env REDRESS_DB_POOL_SIZE=24` (repeatable).
    #[arg(long = "api-env", global = true, value_parser = parse_kv)]
    api_env: Vec<(String, String)>,
    /// A setting for the worker processes (repeatable).
    #[arg(long = "worker-env", global = true, value_parser = parse_kv)]
    worker_env: Vec<(String, String)>,
    #[arg(long, global = true, default_value_t = 2)]
    tenants: usize,
    /// Partner clients per tenant (the tenant's first client included).
    #[arg(long, global = true, default_value_t = 3)]
    clients_per_tenant: usize,
    /// How long to wait after the load for everything to be routed and every webhook to
    /// arrive before counting what is missing.
    #[arg(long, global = true, default_value_t = 120)]
    drain_timeout: u64,
    /// Also write the results as JSON.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Keep the scratch database, the broker objects and the logs.
    #[arg(long, global = true)]
    keep: bool,
    /// A Postgres setting for the scratch database only, e.g. `--db-setting
    /// log_min_duration_statement=0` to profile statements (repeatable).
    #[arg(long = "db-setting", global = true, value_parser = parse_setting)]
    db_settings: Vec<(String, String)>,
    /// Nice value of the load generator's threads. Lower than the stack's (0) so that the
    /// generator, which a partner would run on another machine, does not count its own
    /// waits for a CPU as the hub's latency (src/priority.rs); 0 measures as before
    /// session 10.
    #[arg(long, global = true, default_value_t = -10, allow_negative_numbers = true)]
    generator_nice: i32,
}

#[derive(Subcommand)]
enum Command {
    /// Baselines, the maximum intake (closed loop), then half of it (open loop).
    Run(RunArgs),
    /// Load at a steady rate while something breaks; ends with lost and routed-twice counts.
    Drill(DrillArgs),
}

#[derive(Args, Clone, Debug)]
struct RunArgs {
    /// Concurrent clients for the maximum and for the SQL baseline.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds of each baseline.
    #[arg(long, default_value_t = 15)]
    baseline_duration: u64,
    /// Seconds of unmeasured load first (connections, caches, JIT of the broker).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Open-loop rate of the second phase; default half the measured maximum.
    #[arg(long)]
    rate: Option<f64>,
    /// Only the open-loop phase at --rate (no maximum, no baselines).
    #[arg(long)]
    open_only: bool,
    #[arg(long)]
    skip_baselines: bool,
    /// Pool size of the SQL baseline; default the API's (16, or REDRESS_DB_POOL_SIZE from --api-env).
    #[arg(long)]
    baseline_pool: Option<usize>,
    /// Messages in flight in the AMQP baseline (the relay publishes batches of 200).
    #[arg(long, default_value_t = 200)]
    amqp_window: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum DrillKind {
    /// kill -9 the API under load, then start it again.
    KillApi,
    /// kill -9 the worker under load, then start it again.
    KillWorker,
    /// `rabbitmqctl stop_app` for --outage seconds under load, then `start_app`.
    StopRabbitmq,
    /// Restart Postgres under load; the API answers 503 meanwhile and recovers by itself.
    RestartPostgres,
    /// Two APIs and three workers at once.
    Scale,
}

#[derive(Args, Clone, Debug)]
struct DrillArgs {
    kind: DrillKind,
    /// Complaints per second, open loop.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds into the load when the fault starts.
    #[arg(long, default_value_t = 15)]
    fault_at: u64,
    /// Seconds the fault lasts (the broker's stop; the pause before a killed process is
    /// started again).
    #[arg(long)]
    outage: Option<u64>,
    /// How to run rabbitmqctl on this machine.
    #[arg(long, default_value = "rabbitmqctl")]
    rabbitmqctl: String,
    /// The command that restarts Postgres; default
    /// `pg_ctlcluster --skip-systemctl-redirect <version> main restart`.
    #[arg(long)]
    pg_restart: Option<String>,
    /// APIs and workers of the scale drill.
    #[arg(long, default_value_t = 2)]
    apis: usize,
    #[arg(long, default_value_t = 3)]
    workers: usize,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if !k.starts_with("REDRESS_") {
        return Err(format!("`{k}` is not a REDRESS_… setting"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    mem_total_gib: f64,
    kernel: String,
    load_average_at_start: [f64; 3],
    postgres: String,
    /// The server settings that the write path's latency depends on (buffers, WAL,
    /// checkpoints, the background writer, vacuum): the same code measures very
    /// differently on a server with its defaults and on a tuned one
    /// (docs/PERFORMANCE.md, session 8).
    postgres_settings: std::collections::BTreeMap<String, String>,
    /// The kernel's writeback settings (`/proc/sys/vm/dirty_*`): when it writes the page
    /// cache back decides when the commits' WAL flushes queue behind a burst
    /// (docs/PERFORMANCE.md, session 9).
    writeback: std::collections::BTreeMap<String, String>,
    /// The nice value the load generator's threads ran at (None: not set, so the stack's).
    generator_nice: Option<i32>,
    /// CPU microseconds a unit of fixed work took before the stack started (the median of
    /// 40; see `speed`): the reference for each phase's and each second's `work_us`.
    core_work_us_idle: Option<f64>,
}

#[derive(Serialize, Default)]
struct PhaseReport {
    name: String,
    mode: String,
    concurrency: Option<usize>,
    rate: Option<f64>,
    send_seconds: f64,
    elapsed_seconds: f64,
    sent: u64,
    acknowledged: usize,
    unacknowledged: u64,
    replayed: u64,
    acknowledged_by_conflict: u64,
    attempts: u64,
    errors: BTreeMap<String, u64>,
    unavailable_problem_json: u64,
    unavailable_other: u64,
    generator_skipped: u64,
    intake_per_second: f64,
    intake_ms: Percentiles,
    /// How late the generator began sending, after each request's due time (part of
    /// `intake_ms`): large values mean the load generator, which shares the machine, was
    /// itself waiting for a CPU.
    generator_lag_ms: Percentiles,
    /// Intake latency of the requests due in each second of the phase: whether a tail is
    /// spread over the phase (the machine is short of CPU throughout) or made by a few
    /// seconds (a checkpoint, a stall).
    intake_ms_by_second: Vec<SecondOfPhase>,
    /// What Postgres wrote meanwhile (`pg_stat_bgwriter`, differences over the phase).
    postgres_writes: Option<PostgresWrites>,
    /// CPU microseconds a unit of fixed work took in the phase (median; see `speed`). More
    /// than in another phase of the run: the host slowed the cores, and the same load was a
    /// larger share of the machine.
    core_work_us: Option<f64>,
    routed_ms: Percentiles,
    webhook_ms: Percentiles,
    routed_per_second: f64,
    rss_peak_mib: BTreeMap<String, f64>,
    cpu_seconds: CpuUse,
    load_average_start: [f64; 3],
    load_average_end: [f64; 3],
    drain: Drain,
    /// Seconds from the start of the load → acknowledgements, and errors (drill timelines).
    acked_per_second: BTreeMap<u64, u64>,
    errors_per_second: BTreeMap<u64, u64>,
}

#[derive(Serialize, Default)]
struct SecondOfPhase {
    second: u64,
    #[serde(flatten)]
    intake_ms: Percentiles,
    /// The machine in that second: its busy and stolen CPU shares (steal: a neighbour on
    /// the host had the CPU our processes wanted), the cores' speed, what the disks wrote.
    machine: Option<sys::MachineSecond>,
}

/// Intake latency per second of the phase.
fn by_second(acked: &[load::Acked]) -> Vec<SecondOfPhase> {
    let mut seconds: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for a in acked {
        seconds.entry(a.second).or_default().push(a.latency_us);
    }
    seconds
        .into_iter()
        .map(|(second, mut l)| SecondOfPhase {
            second,
            intake_ms: Percentiles::of_micros(&mut l),
            machine: None,
        })
        .collect()
}

/// The seconds whose intake p99 was the worst, for the report: `second: p99/max`.
fn worst_seconds(seconds: &[SecondOfPhase], n: usize) -> String {
    let mut worst: Vec<&SecondOfPhase> = seconds.iter().collect();
    worst.sort_by(|a, b| b.intake_ms.p99.total_cmp(&a.intake_ms.p99));
    worst
        .iter()
        .take(n)
        .map(|s| {
            let host = s.machine.map_or(String::new(), |m| {
                let work = m
                    .work_us
                    .map_or(String::new(), |us| format!(", work {us:.0} µs"));
                format!(
                    " (busy {:.0}%, steal {:.0}%{work}, disk wrote {:.0} MB, dirty {:.0} MB)",
                    m.busy_share * 100.0,
                    m.steal_share * 100.0,
                    m.disk_written_mb,
                    m.dirty_mb
                )
            });
            format!(
                "{}s {:.0}/{:.0}{host}",
                s.second, s.intake_ms.p99, s.intake_ms.max
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Differences of `pg_stat_bgwriter` over a phase: checkpoints, and who wrote the dirty
/// buffers out (the checkpointer, the background writer, or backends serving requests,
/// which then wait for it).
#[derive(Serialize, Default, Clone, Copy, diesel::QueryableByName)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct PostgresWrites {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    checkpoints: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    buffers_checkpoint: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    buffers_clean: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    buffers_backend: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    maxwritten_clean: i64,
}

impl PostgresWrites {
    async fn read(url: &str) -> Option<Self> {
        use diesel_async::RunQueryDsl;
        let mut conn = AsyncPgConnection::establish(url).await.ok()?;
        diesel::sql_query(
            "SELECT checkpoints_timed + checkpoints_req AS checkpoints, buffers_checkpoint, \
                    buffers_clean, buffers_backend, maxwritten_clean FROM pg_stat_bgwriter",
        )
        .get_result(&mut conn)
        .await
        .ok()
    }

    fn since(self, before: Self) -> Self {
        Self {
            checkpoints: self.checkpoints - before.checkpoints,
            buffers_checkpoint: self.buffers_checkpoint - before.buffers_checkpoint,
            buffers_clean: self.buffers_clean - before.buffers_clean,
            buffers_backend: self.buffers_backend - before.buffers_backend,
            maxwritten_clean: self.maxwritten_clean - before.maxwritten_clean,
        }
    }
}

/// Everything a phase measured before the database is read.
struct Measured {
    report: PhaseReport,
    ids: Vec<String>,
    started_at: chrono::DateTime<chrono::Utc>,
}

struct Bench {
    stack: Stack,
    receiver: Receiver,
    generator: Arc<Generator>,
    /// Where the generator's requests run (src/priority.rs).
    load_rt: priority::GeneratorRuntime,
    rss: RssPeaks,
    common: Common,
    acked: HashSet<String>,
    first_client: (String, String),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.command {
        Command::Run(args) => run(cli.common, args, command_line).await,
        Command::Drill(args) => drill(cli.common, args, command_line).await,
    }
}

fn binaries(common: &Common) -> anyhow::Result<(PathBuf, PathBuf)> {
    let here = std::env::current_exe()?;
    let dir = here.parent().context("no directory for this executable")?;
    Ok((
        common
            .api_bin
            .clone()
            .unwrap_or_else(|| dir.join("redress-api")),
        common
            .worker_bin
            .clone()
            .unwrap_or_else(|| dir.join("redress-worker")),
    ))
}

/// Prepares the database, the receiver and the tenants, starts `apis` APIs and `workers`
/// workers, and authenticates the partners.
async fn start(
    common: &Common,
    apis: usize,
    workers: usize,
    extra_api_env: &[(String, String)],
    extra_worker_env: &[(String, String)],
) -> anyhow::Result<Bench> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (api_bin, worker_bin) = binaries(common)?;
    let mut api_env = extra_api_env.to_vec();
    api_env.extend(common.api_env.iter().cloned());
    let mut worker_env = extra_worker_env.to_vec();
    worker_env.extend(common.worker_env.iter().cloned());
    let cfg = StackConfig {
        api_bin,
        worker_bin,
        pg_admin_url: common.pg_admin_url.clone(),
        amqp_url: common.amqp_url.clone(),
        log: common.log.clone(),
        api_env,
        worker_env,
        keep: common.keep,
        db_settings: common.db_settings.clone(),
        run_dir: std::env::temp_dir().join(format!("redress-bench-{run_id}")),
    };
    eprintln!(
        "run {run_id}: logs in {} (removed at the end unless --keep)",
        cfg.run_dir.display()
    );
    let mut stack = Stack::prepare(&run_id, cfg).await?;
    let receiver = Receiver::start()?;

    let mut tenants = Vec::new();
    let mut conn = AsyncPgConnection::establish(&stack.database_url).await?;
    for t in 0..common.tenants.max(1) {
        let created = redress_api::admin::create_tenant(
            &stack.database_url,
            &format!("压测消费者协会 {}", t + 1),
            Some("cn-pos"),
        )
        .await?;
        let tenant = TenantId::parse(&created.tenant_id).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (_, secret) = store::create_endpoint(
            &mut conn,
            &tenant,
            &NewEndpoint {
                url: receiver.url_for(&created.tenant_id),
                event_types: vec!["complaint.routed".into()],
                description: "redress-bench receiver".into(),
                enabled: true,
            },
            chrono::Utc::now(),
        )
        .await?;
        receiver.add_key(&created.tenant_id, &secret)?;
        tenants.push(created);
    }
    drop(conn);

    for _ in 0..apis {
        stack.add(Kind::Api).await?;
    }
    for _ in 0..workers {
        stack.add(Kind::Worker).await?;
    }
    let bases = stack.api_bases();
    let base = bases.first().context("no API")?.clone();
    let admin_http = reqwest::Client::new();
    let mut partners = Vec::new();
    for t in &tenants {
        let first = Partner::new(t.client_id.clone(), t.client_secret.clone());
        first.refresh(&admin_http, &base, 0).await?;
        for k in 1..common.clients_per_tenant.max(1) {
            let r = admin_http
                .post(format!("{base}/v1/clients"))
                .bearer_auth(first.current_token().await)
                .json(&json!({"name": format!("合作方应用 {k}"), "scopes": ["complaints:write", "complaints:read"]}))
                .send()
                .await?;
            let status = r.status();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let (Some(id), Some(secret)) = (v["client_id"].as_str(), v["client_secret"].as_str())
            else {
                bail!("creating a partner client answered {status}: {v}");
            };
            partners.push(Arc::new(Partner::new(id.into(), secret.into())));
        }
        partners.push(Arc::new(first));
    }
    let first_client = (tenants[0].tenant_id.clone(), tenants[0].client_id.clone());
    let generator = Arc::new(Generator::new(
        bases,
        partners,
        Duration::from_secs(10),
        256,
    )?);
    // Authenticated from the generator's runtime, so that its connections are opened, and
    // afterwards driven, by the generator's threads.
    let load_rt = priority::GeneratorRuntime::new(common.generator_nice)?;
    let g = generator.clone();
    load_rt.run(async move { g.authenticate().await }).await??;
    eprintln!("{}", load_rt.describe());
    let rss = RssPeaks::spawn(stack.pids.clone());
    Ok(Bench {
        stack,
        receiver,
        generator,
        load_rt,
        rss,
        common: common.clone(),
        acked: HashSet::new(),
        first_client,
    })
}

impl Bench {
    /// Runs one phase of load and collects what the processes did meanwhile.
    async fn phase(&mut self, name: &str, spec: LoadSpec) -> Measured {
        let prepared = load::Prepared::for_spec(&spec);
        let writes0 = PostgresWrites::read(&self.stack.database_url).await;
        let _ = self.rss.take();
        let load_start = sys::load_average();
        let cpu0 = sys::cpu_snapshot(&self.stack.pids);
        let host = sys::SecondSampler::spawn();
        let generator = self.generator.clone();
        let spec2 = spec.clone();
        let result = match self
            .load_rt
            .run(async move { generator.run(&spec2, prepared).await })
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Nothing acknowledged is counted, so every latency target of the phase
                // is a MISS rather than a pass on no samples.
                eprintln!("phase {name}: the load generator failed: {e:#}");
                LoadResult::default()
            }
        };
        let cpu = sys::cpu_snapshot(&self.stack.pids).since(&cpu0);
        let host = host.finish().await;
        let rss = self.rss.take();
        let writes = PostgresWrites::read(&self.stack.database_url).await;
        let mut m = self.measured(name, &spec, result, cpu, rss, load_start);
        // The sampler started with the load, so its n-th second is the load's.
        for s in &mut m.report.intake_ms_by_second {
            s.machine = usize::try_from(s.second)
                .ok()
                .and_then(|i| host.seconds.get(i))
                .copied();
        }
        m.report.core_work_us = host.work_us;
        m.report.postgres_writes = writes
            .zip(writes0)
            .map(|(after, before)| after.since(before));
        m
    }

    fn measured(
        &mut self,
        name: &str,
        spec: &LoadSpec,
        result: LoadResult,
        cpu: CpuUse,
        rss: HashMap<Kind, u64>,
        load_start: [f64; 3],
    ) -> Measured {
        let started_at = result.started_at.unwrap_or_else(chrono::Utc::now);
        let mut latencies: Vec<u64> = result.acked.iter().map(|a| a.latency_us).collect();
        let mut lags: Vec<u64> = result.acked.iter().map(|a| a.dispatch_lag_us).collect();
        let ids: Vec<String> = result.acked.iter().map(|a| a.id.clone()).collect();
        let intake_by_second = by_second(&result.acked);
        self.acked.extend(ids.iter().cloned());
        let secs = result.elapsed.as_secs_f64().max(1e-9);
        let (mode, concurrency, rate) = match spec.mode {
            Mode::Closed { concurrency } => ("closed".to_owned(), Some(concurrency), None),
            Mode::Open { rate } => ("open".to_owned(), None, Some(rate)),
        };
        let report = PhaseReport {
            name: name.to_owned(),
            mode,
            concurrency,
            rate,
            send_seconds: result.send_window.as_secs_f64(),
            elapsed_seconds: secs,
            sent: result.sent,
            acknowledged: ids.len(),
            unacknowledged: result.unacked,
            replayed: result.replayed,
            acknowledged_by_conflict: result.acked_by_conflict,
            attempts: result.attempts,
            errors: result.errors,
            unavailable_problem_json: result.unavailable_problem,
            unavailable_other: result.unavailable_other,
            generator_skipped: result.generator_skipped,
            intake_per_second: ids.len() as f64 / secs,
            intake_ms: Percentiles::of_micros(&mut latencies),
            generator_lag_ms: Percentiles::of_micros(&mut lags),
            intake_ms_by_second: intake_by_second,
            rss_peak_mib: rss
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v as f64 / 1024.0 / 1024.0))
                .collect(),
            cpu_seconds: cpu,
            load_average_start: load_start,
            load_average_end: sys::load_average(),
            acked_per_second: result.acked_per_second,
            errors_per_second: result.errors_per_second,
            ..PhaseReport::default()
        };
        Measured {
            report,
            ids,
            started_at,
        }
    }

    /// Waits for the pipeline to drain, then fills in end-to-end latencies.
    async fn settle(
        &self,
        m: &mut Measured,
        phase_start: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<HashMap<String, verify::Row>> {
        m.report.drain = verify::drain(
            &self.stack.database_url,
            &self.receiver,
            Duration::from_secs(self.common.drain_timeout),
        )
        .await;
        let rows = verify::load(&self.stack.database_url).await?;
        let (routed, hooked) = verify::end_to_end(&rows, &m.ids, &self.receiver);
        m.report.routed_ms = routed;
        m.report.webhook_ms = hooked;
        let last_routed = m
            .ids
            .iter()
            .filter_map(|id| rows.get(id).and_then(|r| r.routed_at))
            .max();
        if let Some(last) = last_routed {
            let span = (last - phase_start).num_milliseconds().max(1) as f64 / 1000.0;
            let routed_n = m
                .ids
                .iter()
                .filter(|id| rows.get(*id).is_some_and(|r| r.routed_at.is_some()))
                .count();
            m.report.routed_per_second = routed_n as f64 / span;
        }
        Ok(rows)
    }
}

fn spec(mode: Mode, secs: u64, tag: &str, grace: u64) -> LoadSpec {
    LoadSpec {
        mode,
        duration: Duration::from_secs(secs),
        retry_grace: Duration::from_secs(grace),
        tag: tag.to_owned(),
        max_in_flight: 2000,
    }
}

/// The machine, with the Postgres server's version and [`REPORTED_SETTINGS`] read in one
/// query.
fn machine(mut postgres_settings: std::collections::BTreeMap<String, String>) -> Machine {
    let postgres = postgres_settings
        .remove("server_version")
        .unwrap_or_default();
    Machine {
        cpus: sys::cpu_count(),
        mem_total_gib: sys::mem_total_gib(),
        kernel: sys::kernel(),
        load_average_at_start: sys::load_average(),
        postgres,
        postgres_settings,
        writeback: sys::writeback_settings(),
        generator_nice: None,
        // About 15 ms on a thread of its own, joined here: at start-up, before any load,
        // so blocking the runtime for it delays nothing that is measured.
        core_work_us_idle: speed::calibrate(40),
    }
}

/// The intake target at half the maximum: p99 under this many milliseconds.
const INTAKE_P99_TARGET_MS: f64 = 25.0;

/// MB written by the disks in one second above which the second was the kernel writing a
/// file's dirty pages back at once rather than the WAL's steady stream: on session 11's
/// machine the WAL wrote 21-23 MB a second at half max, the kernel's default writeback
/// 141-592 MB in one second, and with SCALING.md's settings 83-93 MB at a time.
const WRITEBACK_BURST_MB: f64 = 128.0;

/// The second of a phase whose intake p99 missed the target while the disks wrote the most
/// (at least [`WRITEBACK_BURST_MB`]): the kernel's writeback, which the commits queue behind.
fn worst_writeback_second(
    seconds: &[SecondOfPhase],
) -> Option<(&SecondOfPhase, sys::MachineSecond)> {
    seconds
        .iter()
        .filter(|s| s.intake_ms.p99 >= INTAKE_P99_TARGET_MS)
        .filter_map(|s| s.machine.map(|m| (s, m)))
        .filter(|(_, m)| m.disk_written_mb >= WRITEBACK_BURST_MB)
        .max_by(|a, b| a.1.disk_written_mb.total_cmp(&b.1.disk_written_mb))
}

/// How far the fixed work's CPU time may differ between the max phase and another before
/// the run says the host changed the cores' speed under it.
const SPEED_TOLERANCE: f64 = 1.10;

/// The closing note for a phase whose fixed work took more than [`SPEED_TOLERANCE`] times
/// (or less than its inverse) the CPU time it took in the max phase; None within it, or
/// where either is unknown.
fn speed_note(phase: &str, us: Option<f64>, max_us: Option<f64>) -> Option<String> {
    let r = us? / max_us.filter(|m| *m > 0.0)?;
    if (1.0 / SPEED_TOLERANCE..=SPEED_TOLERANCE).contains(&r) {
        return None;
    }
    Some(format!(
        "note: the cores ran {} in {phase} than in max: fixed work took {r:.2}× the CPU time (steal does not show this), so its load was not the share of the machine's limit its rate says",
        if r > 1.0 { "slower" } else { "faster" },
    ))
}

/// `, 1.02× idle, 1.21× max` for a phase's fixed work, where those are known.
fn relative_speed(us: f64, idle: Option<f64>, max: Option<f64>) -> String {
    let mut out = String::new();
    if let Some(i) = idle.filter(|i| *i > 0.0) {
        out.push_str(&format!(", {:.2}× idle", us / i));
    }
    if let Some(m) = max.filter(|m| *m > 0.0) {
        out.push_str(&format!(", {:.2}× max", us / m));
    }
    out
}

impl Machine {
    /// The cores' speed before the stack started, for a run's header.
    fn core_line(&self) -> String {
        self.core_work_us_idle
            .map_or("— (the speed probe did not run)".to_owned(), |us| {
                format!("a unit of fixed work takes {us:.0} µs of CPU when idle (see each phase)")
            })
    }

    /// The load generator's priority, for a run's header.
    fn generator_line(&self) -> String {
        self.generator_nice
            .map_or("at the stack's priority".to_owned(), |n| {
                format!("threads at nice {n}, the stack at its own")
            })
    }
}

/// The settings reported with every run (see [`Machine::postgres_settings`]).
const REPORTED_SETTINGS: &[&str] = &[
    "shared_buffers",
    "bgwriter_lru_maxpages",
    "max_wal_size",
    "checkpoint_timeout",
    "wal_compression",
    "synchronous_commit",
    "fsync",
    "autovacuum",
];

async fn postgres_settings(url: &str) -> std::collections::BTreeMap<String, String> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let names: Vec<String> = REPORTED_SETTINGS
        .iter()
        .chain(&["server_version"])
        .map(|s| (*s).to_owned())
        .collect();
    async {
        let mut c = AsyncPgConnection::establish(url).await?;
        let rows: Vec<Setting> = diesel_async::RunQueryDsl::load(
            diesel::sql_query(
                "SELECT name, current_setting(name) AS value FROM pg_settings \
                 WHERE name = ANY($1)",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(names),
            &mut c,
        )
        .await?;
        anyhow::Ok(rows.into_iter().map(|r| (r.name, r.value)).collect())
    }
    .await
    .unwrap_or_default()
}

/// `shared_buffers 128MB, max_wal_size 1GB, …` in the order of [`REPORTED_SETTINGS`].
fn settings_line(settings: &std::collections::BTreeMap<String, String>) -> String {
    REPORTED_SETTINGS
        .iter()
        .filter_map(|name| settings.get(*name).map(|v| format!("{name} {v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn env_value(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

async fn run(common: Common, args: RunArgs, command_line: String) -> anyhow::Result<()> {
    let machine = machine(postgres_settings(&common.pg_admin_url).await);
    let mut bench = start(&common, 1, 1, &[], &[]).await?;
    let machine = Machine {
        generator_nice: bench.load_rt.nice(),
        ..machine
    };
    let outcome = run_phases(&mut bench, &args, &common).await;
    let rows = verify::load(&bench.stack.database_url).await;
    let Bench {
        stack,
        receiver,
        acked,
        ..
    } = bench;
    // Counted before the teardown, which keeps the evidence of a run that failed it.
    let integrity = rows.map(|rows| verify::integrity(&rows, &acked, &receiver));
    stack
        .teardown(integrity.as_ref().map_or(true, verify::Integrity::failed))
        .await;
    let (mut phases, sql, amqp) = outcome?;
    let integrity = integrity?;

    let max = phases.iter().find(|p| p.name == "max");
    let max_work_us = max.and_then(|m| m.core_work_us);
    let half = phases.iter().find(|p| p.name.starts_with("open"));
    let intake_ratio = match (max, &sql) {
        (Some(m), Some(s)) if s.per_second > 0.0 => Some(m.intake_per_second / s.per_second),
        _ => None,
    };
    let routed_ratio = match (max, &amqp) {
        (Some(m), Some(a)) if a.per_second > 0.0 => Some(m.routed_per_second / a.per_second),
        _ => None,
    };
    let mut targets = Vec::new();
    if let Some(r) = intake_ratio {
        targets.push((
            "intake ≥ 0.5 × SQL baseline".to_owned(),
            r >= 0.5,
            format!("{r:.2}×"),
        ));
    }
    if let Some(h) = half {
        targets.push((
            "intake p99 < 25 ms at half max".to_owned(),
            // No samples is a miss, not a pass: nothing arrived to be measured.
            h.intake_ms.count > 0 && h.intake_ms.p99 < INTAKE_P99_TARGET_MS,
            format!(
                "{:.1} ms over {} samples",
                h.intake_ms.p99, h.intake_ms.count
            ),
        ));
        targets.push((
            "end-to-end (routed) p99 < 250 ms at half max".to_owned(),
            // No samples is a miss, not a pass: nothing arrived to be measured.
            h.routed_ms.count > 0 && h.routed_ms.p99 < 250.0,
            format!(
                "{:.1} ms over {} samples",
                h.routed_ms.p99, h.routed_ms.count
            ),
        ));
        targets.push((
            "end-to-end (webhook) p99 < 250 ms at half max".to_owned(),
            // No samples is a miss, not a pass: nothing arrived to be measured.
            h.webhook_ms.count > 0 && h.webhook_ms.p99 < 250.0,
            format!(
                "{:.1} ms over {} samples",
                h.webhook_ms.p99, h.webhook_ms.count
            ),
        ));
        for kind in ["api", "worker"] {
            let mib = h.rss_peak_mib.get(kind).copied().unwrap_or(0.0);
            targets.push((
                format!("{kind} RSS < 150 MB at half max"),
                mib * 1.048_576 < 150.0,
                format!("{:.1} MiB ({:.1} MB)", mib, mib * 1.048_576),
            ));
        }
    }
    targets.push((
        "zero lost".to_owned(),
        integrity.lost == 0,
        integrity.lost.to_string(),
    ));
    targets.push((
        "zero routed twice".to_owned(),
        integrity.routed_twice == 0,
        integrity.routed_twice.to_string(),
    ));

    println!(
        "\nredress-bench run — {} CPUs, {:.1} GiB, Postgres {}, kernel {}",
        machine.cpus, machine.mem_total_gib, machine.postgres, machine.kernel
    );
    println!("postgres: {}", settings_line(&machine.postgres_settings));
    println!("load generator: {}", machine.generator_line());
    println!(
        "kernel writeback: {}",
        sys::writeback_line(&machine.writeback)
    );
    println!("cores: {}", machine.core_line());
    println!("command: {command_line}\n");
    let mut rows_out = Vec::new();
    if let Some(s) = &sql {
        rows_out.push(vec![
            "baseline: SQL tx".into(),
            format!("{} tasks, pool {}", s.concurrency, s.pool_size),
            s.transactions.to_string(),
            format!("{:.0}/s", s.per_second),
            s.latency_ms.cells(),
            "—".into(),
            "—".into(),
            "—".into(),
            "—".into(),
        ]);
    }
    if let Some(a) = &amqp {
        rows_out.push(vec![
            "baseline: AMQP publish+confirm".into(),
            format!("window {}", a.window),
            a.confirmed.to_string(),
            format!("{:.0}/s", a.per_second),
            "—".into(),
            "—".into(),
            "—".into(),
            "—".into(),
            "—".into(),
        ]);
    }
    for p in &mut phases {
        let load = format!(
            "{:.2} → {:.2}",
            p.load_average_start[0], p.load_average_end[0]
        );
        rows_out.push(vec![
            p.name.clone(),
            match (p.concurrency, p.rate) {
                (Some(c), _) => format!("closed, {c} clients"),
                (_, Some(r)) => format!("open, {r:.0}/s"),
                _ => String::new(),
            },
            format!("{}/{}", p.acknowledged, p.sent),
            format!(
                "{:.0}/s (routed {:.0}/s)",
                p.intake_per_second, p.routed_per_second
            ),
            p.intake_ms.cells(),
            p.routed_ms.cells(),
            p.webhook_ms.cells(),
            format!(
                "{:.0} / {:.0}",
                p.rss_peak_mib.get("api").copied().unwrap_or(0.0),
                p.rss_peak_mib.get("worker").copied().unwrap_or(0.0)
            ),
            load,
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "phase",
                "load",
                "acked/sent",
                "throughput",
                "intake ms p50 p95 p99 max",
                "routed ms p50 p95 p99 max",
                "webhook ms p50 p95 p99 max",
                "RSS MiB api/worker",
                "loadavg",
            ],
            &rows_out
        )
    );
    println!();
    for p in &phases {
        let c = &p.cpu_seconds;
        println!(
            "{}: CPU s api {:.1}, worker {:.1}, postgres {:.1}, rabbitmq {:.1}, bench {:.1}, other {:.1} (machine {:.1} of {:.1}, of which stolen by the host {:.1}); errors {:?}; drained in {}",
            p.name,
            c.api,
            c.worker,
            c.postgres,
            c.rabbitmq,
            c.bench,
            c.other,
            c.machine_busy,
            c.machine_total,
            c.machine_steal,
            p.errors,
            p.drain
                .routed_after_s
                .map_or("— (timed out)".to_owned(), |s| format!("{s:.1} s")),
        );
        if p.generator_lag_ms.max > 0.0 {
            let g = &p.generator_lag_ms;
            println!(
                "  generator: began sending {:.1} / {:.1} / {:.1} ms (p50 / p99 / max) after a request was due",
                g.p50, g.p99, g.max
            );
        }
        if let Some(us) = p.core_work_us {
            println!(
                "  cores: the unit of fixed work took {us:.0} µs of CPU (median){}",
                relative_speed(us, machine.core_work_us_idle, max_work_us)
            );
        }
        if !p.intake_ms_by_second.is_empty() {
            println!(
                "  intake p99/max ms, worst seconds: {}",
                worst_seconds(&p.intake_ms_by_second, 5)
            );
        }
        if let Some(w) = &p.postgres_writes {
            println!(
                "  postgres: {} checkpoint(s); buffers written by the checkpointer {}, the background writer {} (stopped at its limit {} times), backends {}",
                w.checkpoints, w.buffers_checkpoint, w.buffers_clean, w.maxwritten_clean, w.buffers_backend
            );
        }
    }
    if let Some(r) = intake_ratio {
        println!("\nintake at max / SQL baseline = {r:.2}");
    }
    if let Some(r) = routed_ratio {
        println!("routed at max / AMQP publish baseline = {r:.2}");
    }
    print_integrity(&integrity);
    println!();
    for (what, ok, value) in &targets {
        println!("{} {what}: {value}", if *ok { "PASS" } else { "MISS" });
    }
    // A shared host's neighbours show as steal; past a few percent the latencies measure
    // them as much as the hub, and the run says so rather than leave it to be found.
    for p in &phases {
        let steal = p.cpu_seconds.steal_share();
        if steal > 0.05 {
            println!(
                "note: the host took {:.0}% of the CPU from {} (steal); its latencies measure the neighbours too",
                steal * 100.0,
                p.name
            );
        }
    }
    // A tail made by the kernel's writeback is the host's configuration, not the hub's
    // work; the run says where the fix is (docs/PERFORMANCE.md, session 11).
    for p in &phases {
        if let Some((s, m)) = worst_writeback_second(&p.intake_ms_by_second) {
            println!(
                "note: in second {} of {} the disks wrote {:.0} MB and intake's p99 was {:.0} ms: the kernel writing the page cache's dirty pages back at once, which commits wait behind; a database host starts its writeback early (vm.dirty_background_bytes, docs/SCALING.md)",
                s.second, p.name, m.disk_written_mb, s.intake_ms.p99
            );
        }
    }
    // The same work costing more CPU time is the host slowing the cores (a neighbour on
    // the same physical core, a lower clock), which steal does not show: a phase whose rate
    // was set from the maximum then ran at more than half of what the machine could do.
    for p in phases.iter().filter(|p| p.name != "max") {
        if let Some(note) = speed_note(&p.name, p.core_work_us, max_work_us) {
            println!("{note}");
        }
    }
    if let Some(path) = &common.json {
        let doc = json!({
            "command": command_line,
            "machine": machine,
            "baselines": {"sql": sql, "amqp": amqp},
            "phases": phases,
            "ratios": {"intake_vs_sql": intake_ratio, "routed_vs_amqp": routed_ratio},
            "integrity": integrity,
            "targets": targets.iter().map(|(w, ok, v)| json!({"target": w, "met": ok, "value": v})).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("\nJSON written to {}", path.display());
    }
    Ok(())
}

type PhasesOut = (
    Vec<PhaseReport>,
    Option<baseline::SqlBaseline>,
    Option<baseline::AmqpBaseline>,
);

async fn run_phases(
    bench: &mut Bench,
    args: &RunArgs,
    common: &Common,
) -> anyhow::Result<PhasesOut> {
    let mut phases = Vec::new();
    if args.warmup > 0 {
        eprintln!("warm-up: {} s closed loop", args.warmup);
        let mut m = bench
            .phase(
                "warm-up",
                spec(
                    Mode::Closed {
                        concurrency: args.concurrency,
                    },
                    args.warmup,
                    "warmup",
                    10,
                ),
            )
            .await;
        let started = m.started_at;
        bench.settle(&mut m, started).await?;
    }
    let mut sql = None;
    let mut amqp = None;
    if !args.skip_baselines && !args.open_only {
        let pool = args.baseline_pool.unwrap_or_else(|| {
            env_value(&common.api_env, "REDRESS_DB_POOL_SIZE")
                .and_then(|v| v.parse().ok())
                .unwrap_or(16)
        });
        eprintln!(
            "baseline: SQL, {} tasks, pool {pool}, {} s",
            args.concurrency, args.baseline_duration
        );
        let (tenant, client) = &bench.first_client;
        sql = Some(
            baseline::sql(
                &bench.stack.database_url,
                tenant,
                client,
                args.concurrency,
                pool,
                Duration::from_secs(args.baseline_duration),
            )
            .await?,
        );
        eprintln!(
            "baseline: AMQP publish with confirms, window {}, {} s",
            args.amqp_window, args.baseline_duration
        );
        amqp = Some(
            baseline::amqp(
                &common.amqp_url,
                &bench.stack.namespace,
                args.amqp_window,
                Duration::from_secs(args.baseline_duration),
            )
            .await?,
        );
    }
    let mut rate = args.rate;
    if !args.open_only {
        eprintln!(
            "max: {} clients closed loop, {} s",
            args.concurrency, args.duration
        );
        let mut m = bench
            .phase(
                "max",
                spec(
                    Mode::Closed {
                        concurrency: args.concurrency,
                    },
                    args.duration,
                    "max",
                    10,
                ),
            )
            .await;
        let started = m.started_at;
        bench.settle(&mut m, started).await?;
        rate = rate.or(Some(m.report.intake_per_second / 2.0));
        phases.push(m.report);
    }
    let rate = rate.context("--open-only needs --rate")?;
    let name = if args.rate.is_some() {
        "open"
    } else {
        "open at half max"
    };
    eprintln!("{name}: {rate:.0}/s open loop, {} s", args.duration);
    let mut m = bench
        .phase(name, spec(Mode::Open { rate }, args.duration, "open", 10))
        .await;
    let started = m.started_at;
    bench.settle(&mut m, started).await?;
    phases.push(m.report);
    Ok((phases, sql, amqp))
}

fn print_integrity(i: &Integrity) {
    println!(
        "\nacknowledged {} | present {} | routed {} | LOST {} (missing {}, not routed {:?}) | ROUTED TWICE {} | present but unacknowledged {} | webhooks received {} (repeats {}, bad signatures {})",
        i.acknowledged,
        i.present,
        i.routed,
        i.lost,
        i.missing,
        i.not_routed_by_status,
        i.routed_twice,
        i.present_unacknowledged,
        i.webhooks_received,
        i.webhook_repeats,
        i.webhook_bad_signatures
    );
}

/// What happened to the stack during a drill, in seconds from the start of the load.
#[derive(Serialize, Default)]
struct DrillLog {
    events: Vec<(f64, String)>,
    /// restart-postgres: /readyz answers seen while polling every 100 ms.
    readyz: BTreeMap<String, u64>,
    api_pids: Vec<Option<u32>>,
}

async fn sh(command: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("`{command}` failed: {text}");
    }
    Ok(text.trim().to_owned())
}

fn default_pg_restart() -> anyhow::Result<String> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .context("/etc/postgresql not found; pass --pg-restart")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    let v = versions.pop().context("no cluster under /etc/postgresql")?;
    Ok(format!(
        "pg_ctlcluster --skip-systemctl-redirect {v} main restart"
    ))
}

async fn drill(common: Common, args: DrillArgs, command_line: String) -> anyhow::Result<()> {
    let machine = machine(postgres_settings(&common.pg_admin_url).await);
    let (apis, workers) = match args.kind {
        DrillKind::Scale => (args.apis, args.workers),
        _ => (1, 1),
    };
    // Five processes share one Postgres (max_connections is often 100): smaller pools, still
    // more connections per process than it has requests in flight at the drill's rate.
    let (api_env, worker_env): (EnvVars, EnvVars) = if args.kind == DrillKind::Scale {
        (
            vec![("REDRESS_DB_POOL_SIZE".into(), "8".into())],
            vec![("REDRESS_DB_POOL_SIZE".into(), "8".into())],
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let pg_restart = match (&args.pg_restart, args.kind) {
        (Some(c), _) => c.clone(),
        (None, DrillKind::RestartPostgres) => default_pg_restart()?,
        (None, _) => String::new(),
    };
    let mut bench = start(&common, apis, workers, &api_env, &worker_env).await?;
    let machine = Machine {
        generator_nice: bench.load_rt.nice(),
        ..machine
    };
    let outcome = drill_phases(&mut bench, &args, &pg_restart).await;
    let rows = verify::load(&bench.stack.database_url).await;
    let restarts: Vec<(String, u32)> = bench
        .stack
        .procs
        .iter()
        .map(|p| (p.name.clone(), p.restarts))
        .collect();
    let Bench {
        stack,
        receiver,
        acked,
        ..
    } = bench;
    // Counted before the teardown, which keeps the evidence of a run that failed it.
    let integrity = rows.map(|rows| verify::integrity(&rows, &acked, &receiver));
    stack
        .teardown(integrity.as_ref().map_or(true, verify::Integrity::failed))
        .await;
    let (m, log) = outcome?;
    let integrity = integrity?;

    println!(
        "\nredress-bench drill {:?} — {} CPUs, {:.1} GiB, Postgres {}",
        args.kind, machine.cpus, machine.mem_total_gib, machine.postgres
    );
    println!("postgres: {}", settings_line(&machine.postgres_settings));
    println!("load generator: {}", machine.generator_line());
    println!("command: {command_line}");
    println!(
        "load: {:.0}/s open loop for {} s; fault at {} s; processes {}; load average {:.2} → {:.2}",
        args.rate,
        args.duration,
        args.fault_at,
        restarts
            .iter()
            .map(|(n, r)| format!("{n} (restarts {r})"))
            .collect::<Vec<_>>()
            .join(", "),
        m.report.load_average_start[0],
        m.report.load_average_end[0],
    );
    for (t, e) in &log.events {
        println!("  {t:>6.1} s  {e}");
    }
    if !log.readyz.is_empty() {
        println!("  /readyz answers while polling: {:?}", log.readyz);
    }
    println!(
        "requests: sent {}, acknowledged {}, gave up {}, attempts {}, replayed {}, acknowledged by 409 {}, 503 problem+json {}, 503 other {}",
        m.report.sent,
        m.report.acknowledged,
        m.report.unacknowledged,
        m.report.attempts,
        m.report.replayed,
        m.report.acknowledged_by_conflict,
        m.report.unavailable_problem_json,
        m.report.unavailable_other,
    );
    println!("errors (each retried): {:?}", m.report.errors);
    println!("timeline (5 s buckets from the start of the load): acknowledged / errors");
    let last = m
        .report
        .acked_per_second
        .keys()
        .chain(m.report.errors_per_second.keys())
        .max()
        .copied()
        .unwrap_or(0);
    let mut line = String::new();
    for bucket in 0..=last / 5 {
        let sum = |map: &BTreeMap<u64, u64>| -> u64 {
            (bucket * 5..bucket * 5 + 5)
                .filter_map(|s| map.get(&s))
                .sum()
        };
        line.push_str(&format!(
            " {}s:{}/{}",
            bucket * 5,
            sum(&m.report.acked_per_second),
            sum(&m.report.errors_per_second)
        ));
    }
    println!("{line}");
    println!(
        "intake ms p50/p95/p99/max {} | routed ms {} | webhook ms {} | drained in {}",
        m.report.intake_ms.cells(),
        m.report.routed_ms.cells(),
        m.report.webhook_ms.cells(),
        m.report
            .drain
            .routed_after_s
            .map_or("— (timed out)".to_owned(), |s| format!("{s:.1} s")),
    );
    print_integrity(&integrity);
    let ok = !integrity.failed();
    println!(
        "\n{} drill {:?}: acknowledged {}, present and routed {}, lost {}, routed twice {}",
        if ok { "PASS" } else { "FAIL" },
        args.kind,
        integrity.acknowledged,
        integrity.routed,
        integrity.lost,
        integrity.routed_twice
    );
    if let Some(path) = &common.json {
        let doc = json!({
            "command": command_line,
            "machine": machine,
            "drill": args.kind,
            "phase": m.report,
            "log": log,
            "integrity": integrity,
            "passed": ok,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn drill_phases(
    bench: &mut Bench,
    args: &DrillArgs,
    pg_restart: &str,
) -> anyhow::Result<(Measured, DrillLog)> {
    let mut log = DrillLog::default();
    // Retries continue well past the end of sending: an abandoned Idempotency-Key
    // reservation is taken over only after a minute.
    let load = spec(Mode::Open { rate: args.rate }, args.duration, "drill", 90);
    let prepared = load::Prepared::for_spec(&load);
    let _ = bench.rss.take();
    let load_start = sys::load_average();
    let cpu0 = sys::cpu_snapshot(&bench.stack.pids);
    let generator = bench.generator.clone();
    let load2 = load.clone();
    let running = bench
        .load_rt
        .spawn(async move { generator.run(&load2, prepared).await })?;
    let t0 = Instant::now();
    let note = |log: &mut DrillLog, e: String| {
        eprintln!("{:>6.1} s  {e}", t0.elapsed().as_secs_f64());
        log.events.push((t0.elapsed().as_secs_f64(), e));
    };
    tokio::time::sleep(Duration::from_secs(args.fault_at)).await;
    let api0 = bench.stack.index_of(Kind::Api, 0).context("no API")?;
    log.api_pids.push(bench.stack.procs[api0].pid());
    match args.kind {
        DrillKind::KillApi | DrillKind::KillWorker => {
            let kind = if args.kind == DrillKind::KillApi {
                Kind::Api
            } else {
                Kind::Worker
            };
            let i = bench.stack.index_of(kind, 0).context("no such process")?;
            let pid = bench.stack.procs[i].pid();
            bench.stack.kill(i).await?;
            note(&mut log, format!("kill -9 {} (pid {pid:?})", kind.as_str()));
            tokio::time::sleep(Duration::from_secs(args.outage.unwrap_or(2))).await;
            bench.stack.restart(i).await?;
            note(
                &mut log,
                format!(
                    "{} started again and ready (pid {:?})",
                    kind.as_str(),
                    bench.stack.procs[i].pid()
                ),
            );
        }
        DrillKind::StopRabbitmq => {
            sh(&format!("{} stop_app", args.rabbitmqctl)).await?;
            note(&mut log, "rabbitmqctl stop_app".into());
            tokio::time::sleep(Duration::from_secs(args.outage.unwrap_or(30))).await;
            sh(&format!("{} start_app", args.rabbitmqctl)).await?;
            note(&mut log, "rabbitmqctl start_app".into());
            let base = bench.stack.procs[api0].base_url();
            match stack::wait_ok(&format!("{base}/readyz"), Duration::from_secs(60)).await {
                Ok(()) => note(
                    &mut log,
                    "API ready again (relay reconnected), no restart".into(),
                ),
                Err(e) => note(&mut log, format!("API not ready 60 s after start_app: {e}")),
            }
        }
        DrillKind::RestartPostgres => {
            let base = bench.stack.procs[api0].base_url();
            let poller = tokio::spawn(poll_readyz(
                format!("{base}/readyz"),
                Duration::from_secs(40),
            ));
            note(&mut log, format!("`{pg_restart}`"));
            sh(pg_restart).await?;
            note(&mut log, "Postgres restarted".into());
            match stack::wait_ok(&format!("{base}/readyz"), Duration::from_secs(60)).await {
                Ok(()) => note(&mut log, "API ready again without a restart".into()),
                Err(e) => note(
                    &mut log,
                    format!("API not ready 60 s after the restart: {e}"),
                ),
            }
            log.readyz = poller.await.unwrap_or_default();
        }
        DrillKind::Scale => {
            note(
                &mut log,
                format!(
                    "{} APIs and {} workers share the load",
                    args.apis, args.workers
                ),
            );
        }
    }
    log.api_pids.push(bench.stack.procs[api0].pid());
    let result = running.await?;
    note(&mut log, "load finished".into());
    let cpu = sys::cpu_snapshot(&bench.stack.pids).since(&cpu0);
    let rss = bench.rss.take();
    let mut m = bench.measured("drill", &load, result, cpu, rss, load_start);
    let started = m.started_at;
    bench.settle(&mut m, started).await?;
    note(
        &mut log,
        format!(
            "drained: routed {}",
            m.report
                .drain
                .routed_after_s
                .map_or("timed out".to_owned(), |s| format!("after {s:.1} s"))
        ),
    );
    Ok((m, log))
}

/// Polls /readyz and counts answers by status and content type.
async fn poll_readyz(url: String, for_how_long: Duration) -> BTreeMap<String, u64> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default();
    let until = Instant::now() + for_how_long;
    let mut seen = BTreeMap::new();
    while Instant::now() < until {
        let key = match http.get(&url).send().await {
            Ok(r) => {
                let ct = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                format!("{} {ct}", r.status().as_u16())
            }
            Err(_) => "no answer".to_owned(),
        };
        *seen.entry(key).or_insert(0) += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// Environment variables handed to a child process.
type EnvVars = Vec<(String, String)>;

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    fn second(n: u64, p99: f64, disk_written_mb: f64) -> SecondOfPhase {
        SecondOfPhase {
            second: n,
            intake_ms: Percentiles {
                p99,
                ..Percentiles::default()
            },
            machine: Some(sys::MachineSecond {
                disk_written_mb,
                ..sys::MachineSecond::default()
            }),
        }
    }

    #[test]
    fn a_phase_is_noted_when_its_cores_ran_over_ten_percent_off_the_max_phases_speed() {
        let max = Some(366.0);
        assert_eq!(speed_note("open", Some(380.0), max), None);
        assert_eq!(speed_note("open", Some(340.0), max), None);
        let slower = speed_note("open", Some(450.0), max).expect("23 % slower");
        assert!(
            slower.contains("ran slower in open") && slower.contains("1.23×"),
            "{slower}"
        );
        let faster = speed_note("open", Some(300.0), max).expect("18 % faster");
        assert!(faster.contains("ran faster in open"), "{faster}");
        assert_eq!(speed_note("open", None, max), None);
        assert_eq!(speed_note("open", Some(450.0), None), None);
    }

    #[test]
    fn the_writeback_second_is_the_slow_one_with_the_largest_burst() {
        let seconds = [
            second(0, 12.0, 22.0),
            // A burst that did not hurt, and a slow second without a burst: neither.
            second(1, 10.0, 240.0),
            second(2, 60.0, 21.0),
            second(27, 122.0, 242.0),
            second(28, 58.0, 141.0),
        ];
        let (s, m) = worst_writeback_second(&seconds).expect("second 27");
        assert_eq!((s.second, m.disk_written_mb), (27, 242.0));
        assert!(worst_writeback_second(&seconds[..3]).is_none());
    }

    #[test]
    fn the_settings_line_follows_the_reported_order_and_skips_what_the_server_did_not_say() {
        let settings: std::collections::BTreeMap<String, String> = [
            ("autovacuum", "off"),
            ("shared_buffers", "128MB"),
            ("max_wal_size", "1GB"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            settings_line(&settings),
            "shared_buffers 128MB, max_wal_size 1GB, autovacuum off"
        );
    }
}
