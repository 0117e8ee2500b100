//! A Redress stack of child processes for one run: a scratch database (created, migrated,
//! dropped afterwards), a fresh signing key, a RabbitMQ namespace of its own, and any number
//! of `redress-api` and `redress-worker` processes that can be killed and restarted.

use std::{
    collections::HashMap,
    net::TcpListener,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::process::{Child, Command};

use crate::sys;

#[derive(Clone, Debug)]
pub struct StackConfig {
    pub api_bin: PathBuf,
    pub worker_bin: PathBuf,
    /// A database on the server where the scratch database is created and dropped.
    pub pg_admin_url: String,
    pub amqp_url: String,
    /// `REDRESS_LOG` of the children.
    pub log: String,
    /// Extra `REDRESS_…` settings, for tuning experiments.
    pub api_env: Vec<(String, String)>,
    pub worker_env: Vec<(String, String)>,
    /// Keep the scratch database and the broker objects afterwards.
    pub keep: bool,
    /// `ALTER DATABASE … SET name = value` for the scratch database, before anything
    /// connects (profiling: `log_min_duration_statement=0`; experiments).
    pub db_settings: Vec<(String, String)>,
    pub run_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Api,
    Worker,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Worker => "worker",
        }
    }
}

/// One child process slot; a restart keeps its ports so clients find it again.
pub struct Proc {
    pub kind: Kind,
    pub name: String,
    /// The API's HTTP port, or the worker's metrics port.
    pub port: u16,
    child: Option<Child>,
    pub restarts: u32,
}

impl Proc {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Pids of the running children by name, read by the samplers.
pub type Pids = Arc<Mutex<HashMap<String, (Kind, u32)>>>;

pub struct Stack {
    pub database_url: String,
    pub namespace: String,
    pub cfg: StackConfig,
    key_path: PathBuf,
    pub procs: Vec<Proc>,
    pub pids: Pids,
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn split_db_url(url: &str) -> anyhow::Result<(String, String)> {
    let (server, name) = url
        .rsplit_once('/')
        .context("the database URL has no database name")?;
    Ok((server.to_owned(), name.to_owned()))
}

impl Stack {
    /// Creates and migrates the scratch database and writes the signing key.
    pub async fn prepare(run_id: &str, cfg: StackConfig) -> anyhow::Result<Self> {
        for bin in [&cfg.api_bin, &cfg.worker_bin] {
            if !bin.is_file() {
                bail!(
                    "{} not found: build with `cargo build --release -p redress-api -p redress-worker` or pass --api-bin/--worker-bin",
                    bin.display()
                );
            }
        }
        std::fs::create_dir_all(&cfg.run_dir)?;
        let (server, _) = split_db_url(&cfg.pg_admin_url)?;
        let db_name = format!("redress_bench_{run_id}");
        let mut admin = AsyncPgConnection::establish(&cfg.pg_admin_url)
            .await
            .with_context(|| "cannot reach Postgres with --pg-admin-url".to_string())?;
        diesel::sql_query(format!("CREATE DATABASE \"{db_name}\""))
            .execute(&mut admin)
            .await?;
        for (name, value) in &cfg.db_settings {
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                bail!("`{name}` is not a setting name");
            }
            diesel::sql_query(format!(
                "ALTER DATABASE \"{db_name}\" SET {name} = '{}'",
                value.replace('\'', "''")
            ))
            .execute(&mut admin)
            .await?;
        }
        let database_url = format!("{server}/{db_name}");
        let key_path = cfg.run_dir.join("signing.pem");
        let stack = Stack {
            database_url,
            namespace: format!("bench_{run_id}"),
            key_path,
            cfg,
            procs: Vec::new(),
            pids: Arc::default(),
        };
        stack.run_tool(&["migrate"]).await?;
        let key = stack.key_path.to_string_lossy().into_owned();
        stack.run_tool(&["admin", "keygen", "--out", &key]).await?;
        Ok(stack)
    }

    /// Runs `redress-api ARGS` to completion with this stack's environment.
    async fn run_tool(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.cfg.api_bin);
        self.environment(&mut cmd, Kind::Api, 0, 0);
        let out = cmd.args(args).output().await?;
        if !out.status.success() {
            bail!(
                "redress-api {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The children's environment: inherited variables minus any `REDRESS_…` (unknown ones
    /// are refused at start), then this stack's settings, then the tuning overrides.
    fn environment(&self, cmd: &mut Command, kind: Kind, http_port: u16, metrics_port: u16) {
        cmd.env_clear();
        for (k, v) in std::env::vars() {
            if !k.starts_with("REDRESS_") {
                cmd.env(k, v);
            }
        }
        // The stack runs as a deployment does: the processes as the application role
        // (row-level security), migrations and admin commands as the owner.
        let app_url =
            redress_shared::db::url_with_user(&self.database_url, redress_shared::db::APP_ROLE)
                .unwrap_or_else(|| self.database_url.clone());
        cmd.env("REDRESS_DATABASE_URL", app_url)
            .env("REDRESS_ADMIN_DATABASE_URL", &self.database_url)
            .env("REDRESS_AMQP_URL", &self.cfg.amqp_url)
            .env("REDRESS_AMQP_NAMESPACE", &self.namespace)
            .env("REDRESS_LOG", &self.cfg.log)
            .env("REDRESS_SIGNING_KEY_PATH", &self.key_path)
            .env("REDRESS_WEBHOOK_ALLOW_LOOPBACK", "true")
            .env("REDRESS_RATE_LIMIT_PER_CLIENT", "0")
            .env("REDRESS_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env(
                "REDRESS_WORKER_METRICS_ADDR",
                if metrics_port == 0 {
                    String::new()
                } else {
                    format!("127.0.0.1:{metrics_port}")
                },
            );
        let extra = match kind {
            Kind::Api => &self.cfg.api_env,
            Kind::Worker => &self.cfg.worker_env,
        };
        for (k, v) in extra {
            cmd.env(k, v);
        }
    }

    /// Adds and starts a process; returns its index in `procs`.
    pub async fn add(&mut self, kind: Kind) -> anyhow::Result<usize> {
        let n = self.procs.iter().filter(|p| p.kind == kind).count() + 1;
        let proc = Proc {
            kind,
            name: format!("{}-{n}", kind.as_str()),
            port: free_port()?,
            child: None,
            restarts: 0,
        };
        self.procs.push(proc);
        let i = self.procs.len() - 1;
        self.start(i).await?;
        Ok(i)
    }

    /// Starts (or restarts) process `i` and waits until it answers.
    pub async fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let (kind, port, name) = {
            let p = &self.procs[i];
            (p.kind, p.port, p.name.clone())
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cfg.run_dir.join(format!("{name}.log")))?;
        let bin = match kind {
            Kind::Api => &self.cfg.api_bin,
            Kind::Worker => &self.cfg.worker_bin,
        };
        let mut cmd = Command::new(bin);
        match kind {
            Kind::Api => self.environment(&mut cmd, kind, port, 0),
            Kind::Worker => self.environment(&mut cmd, kind, 0, port),
        }
        if kind == Kind::Api {
            cmd.arg("serve");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        if let Some(pid) = child.id() {
            lock(&self.pids).insert(name.clone(), (kind, pid));
        }
        self.procs[i].child = Some(child);
        let url = match kind {
            Kind::Api => format!("http://127.0.0.1:{port}/readyz"),
            Kind::Worker => format!("http://127.0.0.1:{port}/healthz"),
        };
        wait_ok(&url, Duration::from_secs(60))
            .await
            .with_context(|| {
                format!(
                    "{name} did not become ready (see its log in {})",
                    self.cfg.run_dir.display()
                )
            })
    }

    /// `kill -9`: no shutdown, no drain, connections dropped mid-request.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let p = &mut self.procs[i];
        lock(&self.pids).remove(&p.name);
        if let Some(mut child) = p.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.procs[i].restarts += 1;
        self.start(i).await
    }

    /// SIGTERM to every child and a wait for it to drain (30 s at most, then SIGKILL).
    pub async fn stop_all(&mut self) {
        for p in &mut self.procs {
            lock(&self.pids).remove(&p.name);
            if let Some(mut child) = p.child.take() {
                if let Some(pid) = child.id() {
                    let _ = Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status()
                        .await;
                }
                if tokio::time::timeout(Duration::from_secs(30), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
        }
    }

    pub fn api_bases(&self) -> Vec<String> {
        self.procs
            .iter()
            .filter(|p| p.kind == Kind::Api)
            .map(Proc::base_url)
            .collect()
    }

    pub fn index_of(&self, kind: Kind, nth: usize) -> Option<usize> {
        self.procs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind == kind)
            .nth(nth)
            .map(|(i, _)| i)
    }

    /// Stops the children and removes the scratch database, the broker objects and the
    /// run directory, unless `--keep` or `failed`: a run that lost or doubled a complaint
    /// keeps what is needed to find out why.
    pub async fn teardown(mut self, failed: bool) {
        self.stop_all().await;
        if failed && !self.cfg.keep {
            eprintln!("the run failed its integrity check: keeping its evidence");
        }
        if self.cfg.keep || failed {
            eprintln!(
                "kept: database {} and broker namespace {} (run dir {})",
                self.database_url,
                self.namespace,
                self.cfg.run_dir.display()
            );
            return;
        }
        if let Err(error) = self.drop_database().await {
            eprintln!("warning: scratch database not dropped: {error:#}");
        }
        if let Err(error) =
            crate::baseline::delete_namespace(&self.cfg.amqp_url, &self.namespace).await
        {
            eprintln!(
                "warning: broker objects of {} not deleted: {error:#}",
                self.namespace
            );
        }
        // The processes' logs are 80-90 MB a full run; without --keep they went on piling
        // up in the temporary directory, run after run.
        if let Err(error) = std::fs::remove_dir_all(&self.cfg.run_dir) {
            eprintln!(
                "warning: run directory {} not removed: {error}",
                self.cfg.run_dir.display()
            );
        }
    }

    async fn drop_database(&self) -> anyhow::Result<()> {
        let (_, name) = split_db_url(&self.database_url)?;
        let mut admin = AsyncPgConnection::establish(&self.cfg.pg_admin_url).await?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        Ok(())
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `url` until it answers 200.
pub async fn wait_ok(url: &str, within: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let until = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < until {
        match http.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{url}: {last}")
}

/// Peak resident memory of each child since the last reset, sampled every 200 ms.
#[derive(Clone, Default)]
pub struct RssPeaks {
    peaks: Arc<Mutex<HashMap<Kind, u64>>>,
}

impl RssPeaks {
    pub fn spawn(pids: Pids) -> Self {
        let this = RssPeaks::default();
        let peaks = this.peaks.clone();
        tokio::spawn(async move {
            loop {
                let now: Vec<(Kind, u32)> = lock(&pids).values().copied().collect();
                for (kind, pid) in now {
                    if let Some(rss) = sys::vm_rss(pid) {
                        let mut p = lock(&peaks);
                        let e = p.entry(kind).or_insert(0);
                        *e = (*e).max(rss);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        this
    }

    /// The largest VmRSS of any process of each kind since the last reset, in bytes.
    pub fn take(&self) -> HashMap<Kind, u64> {
        std::mem::take(&mut *lock(&self.peaks))
    }
}
