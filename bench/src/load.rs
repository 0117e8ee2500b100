//! The load generator: partner clients filing complaints through the real HTTP API, either
//! open-loop (a fixed arrival rate, latency measured from the intended send time, so a
//! stalled server cannot hide its queueing) or closed-loop (N clients, each sending the next
//! complaint when the last was answered: the maximum rate).
//!
//! Retries are what a careful partner does: the same body and the same `Idempotency-Key`
//! after a connection error, a timeout, a 5xx, a 429 or a 409 "in flight", until the phase's
//! deadline. Only a 202 (or a replayed 202, or a 409 naming the complaint that already has
//! this `external_ref`) counts as acknowledged.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::{rngs::StdRng, SeedableRng};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use crate::{complaint, stack::lock};

/// One partner app: an OAuth client of a tenant and its current access token.
pub struct Partner {
    pub client_id: String,
    pub client_secret: String,
    token: RwLock<(u64, String)>,
}

impl Partner {
    pub fn new(client_id: String, client_secret: String) -> Self {
        Self {
            client_id,
            client_secret,
            token: RwLock::new((0, String::new())),
        }
    }

    async fn token(&self) -> (u64, String) {
        self.token.read().await.clone()
    }

    pub async fn current_token(&self) -> String {
        self.token.read().await.1.clone()
    }

    /// Fetches a fresh token unless another task already replaced `stale_generation`.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        base: &str,
        stale_generation: u64,
    ) -> anyhow::Result<()> {
        let mut t = self.token.write().await;
        if t.0 != stale_generation {
            return Ok(());
        }
        let r = http
            .post(format!("{base}/oauth/token"))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let token = body["access_token"]
            .as_str()
            .with_context(|| format!("token request answered {status}: {body}"))?;
        *t = (t.0 + 1, token.to_owned());
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `rate` complaints per second, whatever the answers.
    Open { rate: f64 },
    /// `concurrency` clients, back to back.
    Closed { concurrency: usize },
}

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub mode: Mode,
    pub duration: Duration,
    /// How long after the end of sending a request may still be retried.
    pub retry_grace: Duration,
    /// Prefix of `external_ref`, unique per phase.
    pub tag: String,
    /// Open loop: more requests than this in flight and the generator itself is the limit;
    /// the excess is counted as `generator_skipped`, not sent.
    pub max_in_flight: u64,
}

/// One acknowledged complaint.
#[derive(Debug)]
pub struct Acked {
    pub id: String,
    /// From when it should have been sent to the acknowledgement, µs.
    pub latency_us: u64,
    /// The second of the phase it should have been sent in.
    pub second: u64,
    /// From when it should have been sent to when the generator began sending it, µs:
    /// the generator's own lag (its timer and its threads waiting for a CPU), which is in
    /// `latency_us` too.
    pub dispatch_lag_us: u64,
}

/// What one phase of load produced.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub started_at: Option<DateTime<Utc>>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
    /// From the first send to the end of sending (the nominal phase length).
    pub send_window: Duration,
    pub sent: u64,
    /// Complaints acknowledged to the partner.
    pub acked: Vec<Acked>,
    /// Acknowledged by a 409 naming the complaint that already holds the `external_ref`.
    pub acked_by_conflict: u64,
    pub replayed: u64,
    /// Requests given up: never acknowledged.
    pub unacked: u64,
    pub attempts: u64,
    pub errors: BTreeMap<String, u64>,
    /// 503 answers that were `application/problem+json`, and those that were not.
    pub unavailable_problem: u64,
    pub unavailable_other: u64,
    pub generator_skipped: u64,
    /// Acknowledgements per second of the phase, for timelines of the drills.
    pub acked_per_second: BTreeMap<u64, u64>,
    pub errors_per_second: BTreeMap<u64, u64>,
}

#[derive(Default)]
struct Shared {
    result: Mutex<LoadResult>,
    in_flight: AtomicU64,
}

pub struct Generator {
    pub http: reqwest::Client,
    pub bases: Vec<String>,
    pub partners: Vec<Arc<Partner>>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

enum Attempt {
    Acked { id: String, replayed: bool },
    AckedByConflict(String),
    Retry(&'static str),
    RefreshToken(u64),
    Fatal(String),
}

/// The bodies of an open loop, made and serialised before its clock starts (and before the
/// bench samples the processes' CPU): during the phase the generator only sends and times,
/// since it competes with the hub for the same cores.
pub struct Prepared(Vec<Option<String>>);

impl Prepared {
    /// What `spec` will send; nothing for a closed loop, which makes each body as it goes.
    pub fn for_spec(spec: &LoadSpec) -> Self {
        let Mode::Open { rate } = spec.mode else {
            return Self(Vec::new());
        };
        let planned = (rate * spec.duration.as_secs_f64()).ceil() as u64;
        let mut rng = StdRng::seed_from_u64(0x0be2);
        Self(
            (0..planned)
                .map(|n| {
                    Some(complaint::complaint(&mut rng, &format!("{}-{n}", spec.tag)).to_string())
                })
                .collect(),
        )
    }
}

/// The phase's result, taken out of `shared` once every request has finished.
fn finish(
    shared: &Shared,
    started_at: DateTime<Utc>,
    start: Instant,
    spec: &LoadSpec,
) -> LoadResult {
    let mut result = std::mem::take(&mut *lock(&shared.result));
    result.started_at = Some(started_at);
    result.elapsed = start.elapsed();
    result.send_window = spec.duration;
    result
}

impl Generator {
    pub fn new(
        bases: Vec<String>,
        partners: Vec<Arc<Partner>>,
        timeout: Duration,
        pool: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            bases,
            partners,
        })
    }

    /// Fetches a token for every partner.
    pub async fn authenticate(&self) -> anyhow::Result<()> {
        let base = self.bases.first().context("no API to talk to")?;
        for p in &self.partners {
            let generation = p.token().await.0;
            p.refresh(&self.http, base, generation).await?;
        }
        Ok(())
    }

    /// Runs one phase of load. An open loop sends the bodies of `prepared`, made with
    /// [`Prepared::for_spec`] for this spec.
    pub async fn run(self: &Arc<Self>, spec: &LoadSpec, prepared: Prepared) -> LoadResult {
        let shared = Arc::new(Shared::default());
        match spec.mode {
            Mode::Closed { concurrency } => {
                let start = Instant::now();
                let started_at = Utc::now();
                let send_until = start + spec.duration;
                let give_up_at = send_until + spec.retry_grace;
                let seq = Arc::new(AtomicU64::new(0));
                let mut tasks = tokio::task::JoinSet::new();
                for worker in 0..concurrency {
                    let this = self.clone();
                    let shared = shared.clone();
                    let seq = seq.clone();
                    let spec = spec.clone();
                    tasks.spawn(async move {
                        let mut rng = StdRng::seed_from_u64(worker as u64 ^ 0x5eed);
                        while Instant::now() < send_until {
                            let n = seq.fetch_add(1, Ordering::Relaxed);
                            let body = complaint::complaint(&mut rng, &format!("{}-{n}", spec.tag))
                                .to_string();
                            this.one(&shared, n, body, Instant::now(), start, give_up_at)
                                .await;
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                finish(&shared, started_at, start, spec)
            }
            Mode::Open { rate } => {
                let Prepared(mut bodies) = prepared;
                let start = Instant::now();
                let started_at = Utc::now();
                let send_until = start + spec.duration;
                let give_up_at = send_until + spec.retry_grace;
                let max_in_flight = spec.max_in_flight;
                let runtime = tokio::runtime::Handle::current();
                let this = self.clone();
                let shared2 = shared.clone();
                // A thread of its own paces the sends. Tokio's timer fires on whole
                // milliseconds, which started every request up to a millisecond (0.5 ms
                // on average) after it was due, and counted that as the hub's latency; a
                // thread's sleep wakes within tens of microseconds. The thread inherits
                // the generator's priority (src/priority.rs).
                let (paced, all_sent) = tokio::sync::oneshot::channel();
                let pacer = std::thread::Builder::new()
                    .name("bench-pacer".into())
                    .spawn(move || {
                        let mut tasks = Vec::new();
                        let mut n: u64 = 0;
                        loop {
                            let due = start + Duration::from_secs_f64(n as f64 / rate);
                            if due >= send_until {
                                break;
                            }
                            let now = Instant::now();
                            if due > now {
                                std::thread::sleep(due - now);
                            }
                            if shared2.in_flight.load(Ordering::Relaxed) >= max_in_flight {
                                lock(&shared2.result).generator_skipped += 1;
                                n += 1;
                                continue;
                            }
                            let Some(body) = bodies.get_mut(n as usize).and_then(Option::take)
                            else {
                                break;
                            };
                            let this = this.clone();
                            let shared3 = shared2.clone();
                            tasks.push(runtime.spawn(async move {
                                this.one(&shared3, n, body, due, start, give_up_at).await;
                            }));
                            n += 1;
                        }
                        let _ = paced.send(tasks);
                    });
                match pacer {
                    Ok(_) => {
                        for task in all_sent.await.unwrap_or_default() {
                            let _ = task.await;
                        }
                    }
                    Err(e) => {
                        *lock(&shared.result)
                            .errors
                            .entry(format!("cannot start the pacer thread: {e}"))
                            .or_insert(0) += 1;
                    }
                }
                finish(&shared, started_at, start, spec)
            }
        }
    }

    /// Files one complaint, retrying until acknowledged or `give_up_at`. `intended` is when
    /// it should have been sent: latency counts from there.
    async fn one(
        &self,
        shared: &Shared,
        n: u64,
        payload: String,
        intended: Instant,
        start: Instant,
        give_up_at: Instant,
    ) {
        let dispatch_lag = intended.elapsed().as_micros() as u64;
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let partner = &self.partners[(n as usize) % self.partners.len()];
        let key = uuid::Uuid::new_v4().to_string();
        let mut backoff = Duration::from_millis(50);
        let mut attempt_no: u64 = 0;
        let mut acked = None;
        lock(&shared.result).sent += 1;
        loop {
            // Spread over the APIs; a retry goes to the next one, as a load balancer would.
            let base = &self.bases[((n + attempt_no) as usize) % self.bases.len()];
            attempt_no += 1;
            let outcome = self.attempt(shared, partner, base, &key, &payload).await;
            let second = start.elapsed().as_secs();
            match outcome {
                Attempt::Acked { id, replayed } => {
                    acked = Some(id);
                    if replayed {
                        lock(&shared.result).replayed += 1;
                    }
                    break;
                }
                Attempt::AckedByConflict(id) => {
                    acked = Some(id);
                    lock(&shared.result).acked_by_conflict += 1;
                    break;
                }
                Attempt::Fatal(reason) => {
                    let mut r = lock(&shared.result);
                    *r.errors.entry(reason).or_insert(0) += 1;
                    *r.errors_per_second.entry(second).or_insert(0) += 1;
                    break;
                }
                Attempt::RefreshToken(generation) => {
                    if let Err(error) = partner.refresh(&self.http, base, generation).await {
                        let mut r = lock(&shared.result);
                        *r.errors
                            .entry(format!("token refresh: {error}"))
                            .or_insert(0) += 1;
                    }
                }
                Attempt::Retry(reason) => {
                    let mut r = lock(&shared.result);
                    *r.errors.entry(reason.to_owned()).or_insert(0) += 1;
                    *r.errors_per_second.entry(second).or_insert(0) += 1;
                }
            }
            if Instant::now() + backoff > give_up_at {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        let latency = intended.elapsed().as_micros() as u64;
        {
            let mut r = lock(&shared.result);
            r.attempts += attempt_no;
            match acked {
                Some(id) => {
                    r.acked.push(Acked {
                        id,
                        latency_us: latency,
                        second: intended.saturating_duration_since(start).as_secs(),
                        dispatch_lag_us: dispatch_lag,
                    });
                    *r.acked_per_second
                        .entry(start.elapsed().as_secs())
                        .or_insert(0) += 1;
                }
                None => r.unacked += 1,
            }
        }
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    async fn attempt(
        &self,
        shared: &Shared,
        partner: &Partner,
        base: &str,
        key: &str,
        payload: &str,
    ) -> Attempt {
        let (generation, token) = partner.token().await;
        let sent = self
            .http
            .post(format!("{base}/v1/complaints"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(payload.to_owned())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Attempt::Retry("timeout"),
            Err(e) if e.is_connect() => return Attempt::Retry("connection refused"),
            Err(_) => return Attempt::Retry("connection error"),
        };
        let status = response.status().as_u16();
        let problem = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"));
        let replayed = response.headers().contains_key("idempotent-replayed");
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(_) => return Attempt::Retry("connection error (body)"),
        };
        match status {
            202 => match serde_json::from_slice::<IdOnly>(&bytes) {
                Ok(b) => Attempt::Acked { id: b.id, replayed },
                Err(e) => Attempt::Fatal(format!("202 without an id: {e}")),
            },
            401 => Attempt::RefreshToken(generation),
            409 => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                match v["complaint_id"].as_str() {
                    Some(id) => Attempt::AckedByConflict(id.to_owned()),
                    None => Attempt::Retry("409 in flight"),
                }
            }
            429 => Attempt::Retry("429"),
            503 => {
                let mut r = lock(&shared.result);
                if problem {
                    r.unavailable_problem += 1;
                } else {
                    r.unavailable_other += 1;
                }
                Attempt::Retry("503")
            }
            s if s >= 500 => Attempt::Retry(if problem { "5xx problem" } else { "5xx other" }),
            s => Attempt::Fatal(format!(
                "{s}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
        }
    }
}
