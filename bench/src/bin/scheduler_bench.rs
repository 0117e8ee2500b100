//! `scheduler_bench`: how the SLA scheduler behaves with a million running clocks.
//!
//! ```text
//! cargo run --release -p redress-bench --bin scheduler_bench -- \
//!     [--clocks 1000000] [--due 10000] [--schedulers 3] [--concurrency 8] [--keep]
//! ```
//!
//! Makes a scratch database on the server named by `REDRESS_BENCH_PG_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), migrates it, and:
//!
//! 1. inserts `--clocks` running clocks due in 30 days (one case each);
//! 2. times scheduler rounds that find nothing due (median, p95, max of 200) and prints the
//!    claim's plan, which must read the partial index `sla_clocks_due`;
//! 3. inserts `--due` more clocks already due, starts `--schedulers` schedulers (each with
//!    its own connection pool, as separate worker processes have) and times until every
//!    breach has fired, then checks each fired exactly once.
//!
//! The scratch database is dropped at the end unless `--keep` is given. The numbers go into
//! docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use redress_shared::{config::Settings, db, deadlines};
use redress_worker::scheduler::{synthetic, Scheduler};
use tokio_util::sync::CancellationToken;

struct Args {
    clocks: i64,
    due: i64,
    schedulers: usize,
    /// Clocks each scheduler acts on at once; default: the configured default.
    concurrency: Option<usize>,
    keep: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        clocks: 1_000_000,
        due: 10_000,
        schedulers: 3,
        concurrency: None,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--clocks" => args.clocks = value()?.parse()?,
            "--due" => args.due = value()?.parse()?,
            "--schedulers" => args.schedulers = value()?.parse()?,
            "--concurrency" => args.concurrency = Some(value()?.parse()?),
            "--keep" => args.keep = true,
            "-h" | "--help" => {
                println!(
                    "scheduler_bench [--clocks N] [--due N] [--schedulers N] [--concurrency N] [--keep]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    Ok(args)
}

async fn scalar(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::dsl::sql::<diesel::sql_types::BigInt>(sql)
        .get_result(conn)
        .await?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let admin_url = std::env::var("REDRESS_BENCH_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (server, _) = admin_url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("REDRESS_BENCH_PG_ADMIN_URL needs a database name"))?;
    let name = format!(
        "redress_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let url = format!("{server}/{name}");
    let mut admin = AsyncPgConnection::establish(&admin_url).await?;
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await?;
    eprintln!("scratch database {name}");
    let result = run(&args, &url).await;
    if args.keep {
        eprintln!("kept {url}");
    } else {
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    result
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    db::migrate(url).await?;
    let mut conn = AsyncPgConnection::establish(url).await?;
    for statement in [
        "INSERT INTO tenants (id, name) VALUES ('ten_bench', 'bench')",
        "INSERT INTO clients (id, tenant_id, name, secret_hash, scopes) \
             VALUES ('cli_bench', 'ten_bench', 'bench', 'x', '{}')",
    ] {
        diesel::sql_query(statement).execute(&mut conn).await?;
    }

    // 1. A million running clocks, none due for a month.
    let seeding = Instant::now();
    let now = Utc::now();
    let later = now + TimeDelta::days(30);
    let chunk = 100_000;
    let mut seeded = 0;
    let mut part = 0;
    while seeded < args.clocks {
        let n = chunk.min(args.clocks - seeded);
        synthetic::insert_clocks(
            &mut conn,
            "ten_bench",
            "cli_bench",
            &format!("cmp_idle{part:03}x"),
            n,
            now,
            Some(later - TimeDelta::days(1)),
            later,
        )
        .await?;
        seeded += n;
        part += 1;
    }
    diesel::sql_query("VACUUM ANALYZE sla_clocks")
        .execute(&mut conn)
        .await?;
    // Vacuumed now rather than by autovacuum in the middle of the measurement.
    diesel::sql_query("VACUUM ANALYZE complaints")
        .execute(&mut conn)
        .await?;
    let running = scalar(
        &mut conn,
        "SELECT count(*) FROM sla_clocks WHERE state = 'running'",
    )
    .await?;
    println!(
        "seeded {running} running clocks in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    // 2. Rounds with nothing due.
    let mut settings = Settings::defaults()?.scheduler;
    settings.poll_interval_ms = 50;
    if let Some(concurrency) = args.concurrency {
        settings.concurrency = concurrency;
    }
    // The schedulers connect as the application role, as redress-worker does, so row-level
    // security and the cross-tenant claim function are part of what is measured.
    let app_url = db::url_with_user(url, db::APP_ROLE)
        .ok_or_else(|| anyhow::anyhow!("{url} is not a postgres:// URL"))?;
    let pool = db::pool(&app_url, settings.concurrency + 2)?;
    let scheduler = Scheduler::new(pool.clone(), settings.clone());
    for _ in 0..20 {
        scheduler.pass().await?; // warm the pool and the plan cache
    }
    let mut idle = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let stats = scheduler.pass().await?;
        idle.push(started.elapsed());
        anyhow::ensure!(stats.claimed == 0, "nothing should be due");
    }
    idle.sort();
    println!(
        "idle scheduler round ({running} running clocks): median {:.3} ms, p95 {:.3} ms, max {:.3} ms",
        ms(percentile(&idle, 0.5)),
        ms(percentile(&idle, 0.95)),
        ms(percentile(&idle, 1.0))
    );
    let plan = explain_claim(&mut conn).await?;
    println!("claim plan:\n{plan}");
    // On a nearly empty table a sequential scan is as good, and the planner takes it.
    anyhow::ensure!(
        plan.contains("sla_clocks_due") || args.clocks < 100_000,
        "the claim does not read the partial index sla_clocks_due"
    );

    // 3. Ten thousand clocks due at once.
    let due_at = Utc::now() - TimeDelta::seconds(1);
    synthetic::insert_clocks(
        &mut conn,
        "ten_bench",
        "cli_bench",
        "cmp_burst",
        args.due,
        due_at - TimeDelta::seconds(4),
        None,
        due_at,
    )
    .await?;
    diesel::sql_query("ANALYZE sla_clocks")
        .execute(&mut conn)
        .await?;
    // Bulk-loading a million rows leaves a checkpoint due; taking it now keeps its writes
    // (and the full-page images every first change after it costs) out of the measurement,
    // as on a server that was not just loaded. Needs superuser; skipped otherwise.
    if let Err(error) = diesel::sql_query("CHECKPOINT").execute(&mut conn).await {
        eprintln!("no CHECKPOINT before the burst ({error}); the figure includes its cost");
    }
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.schedulers {
        let pool = db::pool(&app_url, settings.concurrency + 2)?;
        tasks.push(tokio::spawn(
            Scheduler::new(pool, settings.clone()).run(shutdown.clone()),
        ));
    }
    let breached = "SELECT count(*) FROM sla_clocks WHERE state = 'breached'";
    loop {
        let fired = scalar(&mut conn, breached).await?;
        if fired >= args.due {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "only {fired} of {} breaches after 300 s",
            args.due
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let burst = started.elapsed();
    shutdown.cancel();
    for task in tasks {
        let _ = task.await;
    }
    let events = scalar(
        &mut conn,
        "SELECT count(*) FROM complaint_events WHERE event_type = 'complaint.sla_breached'",
    )
    .await?;
    let distinct = scalar(
        &mut conn,
        "SELECT count(DISTINCT complaint_id) FROM complaint_events \
         WHERE event_type = 'complaint.sla_breached'",
    )
    .await?;
    anyhow::ensure!(
        events == args.due && distinct == args.due,
        "expected {} breaches, one per case; got {events} for {distinct} cases",
        args.due
    );
    println!(
        "{} clocks due at once, {} schedulers × {} at a time: all fired in {:.2} s ({:.0} breaches/s), each exactly once",
        args.due,
        args.schedulers,
        settings.concurrency,
        burst.as_secs_f64(),
        args.due as f64 / burst.as_secs_f64()
    );
    println!(
        "{}",
        serde_json::json!({
            "running_clocks": running,
            "idle_round_ms": {
                "median": ms(percentile(&idle, 0.5)),
                "p95": ms(percentile(&idle, 0.95)),
                "max": ms(percentile(&idle, 1.0)),
            },
            "burst": {"clocks": args.due, "schedulers": args.schedulers, "seconds": burst.as_secs_f64()},
        })
    );
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// The claim's plan as Postgres runs it, on a snapshot that is rolled back.
async fn explain_claim(conn: &mut AsyncPgConnection) -> anyhow::Result<String> {
    let now = Utc::now().to_rfc3339();
    let until = (Utc::now() + TimeDelta::seconds(30)).to_rfc3339();
    let sql = deadlines::CLAIM_SQL
        .replace("$1", &format!("'{now}'::timestamptz"))
        .replace("$2", "200")
        .replace("$3", &format!("'{until}'::timestamptz"));
    let lines: Vec<PlanLine> = conn
        .transaction(async |conn| {
            let lines = diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"))
                .load::<PlanLine>(conn)
                .await?;
            // Roll back: EXPLAIN ANALYZE runs the claim.
            Err::<Vec<PlanLine>, _>(Rollback(lines))
        })
        .await
        .or_else(|e: Rollback| match e.0 {
            lines if !lines.is_empty() => Ok::<_, anyhow::Error>(lines),
            _ => Err(anyhow::anyhow!("EXPLAIN returned nothing")),
        })?;
    Ok(lines
        .into_iter()
        .map(|l| format!("    {}", l.line))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Carries the plan out of a transaction that must roll back.
struct Rollback(Vec<PlanLine>);

impl From<diesel::result::Error> for Rollback {
    fn from(_: diesel::result::Error) -> Self {
        Rollback(Vec::new())
    }
}
