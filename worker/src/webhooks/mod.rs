//! The webhook dispatcher: claims due messages from Postgres, sends them, records each
//! attempt and schedules the next. Retries live in Postgres (`next_attempt_at`), not in
//! broker TTLs, so a schedule spanning days survives restarts and is visible in the log.
//!
//! Concurrency is bounded twice, with semaphores: `webhooks.concurrency` requests in flight
//! per process, and `webhooks.per_endpoint_concurrency` per endpoint, so one slow receiver
//! cannot take every slot. The dispatcher claims only as many messages as it has free
//! global permits, skips endpoints already at their limit, and hands back at once any
//! claimed message it cannot start, so nothing sits leased while waiting for a permit.
//!
//! Each round is claim (one statement, committed), send (no transaction open), record (one
//! short transaction). A dispatcher that dies mid-send leaves a lease that expires; the
//! message is then sent again with the same webhook-id, which receivers deduplicate on.
//!
//! The router of the same process skips the claim for the messages of the cases it routes:
//! it inserts them already leased to this dispatcher and hands them over once committed
//! ([`DispatchHandle::hand_over`]). Under load the claim and its read-back were the largest
//! cost of the webhook leg in Postgres (docs/PERFORMANCE.md). A handed-over message keeps
//! the same limits (it waits for a slot of the process and of its endpoint), and one this
//! process will not send is given back to the claim; if the process dies first, its lease
//! expires as a claimed message's does.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use chrono::Utc;
use redress_shared::{
    config::{Settings, WebhookSettings},
    db::{DbError, PgPool},
    ids::TenantId,
    webhooks::{
        schedule::{decide, jitter_unit, Decision, RetrySchedule},
        sender::{Delivery, DeliveryOutcome, ErrorKind, Verdict, WebhookSender},
        store::{self, ClaimedMessage},
    },
};
use tokio::{
    sync::{
        mpsc::{UnboundedReceiver, UnboundedSender},
        Notify, OwnedSemaphorePermit, Semaphore,
    },
    task::JoinSet,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Most messages claimed in one statement, however many permits are free.
const MAX_BATCH: usize = 100;
/// Shortest time between two claims of one dispatcher: at most a few milliseconds more on
/// a webhook's way, against a claim per message when messages arrive one by one.
const MIN_CLAIM_GAP: Duration = Duration::from_millis(10);
/// Added to the request timeout to form the lease: time to record the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
    /// Counts attempts for `/metrics` (`redress_webhook_attempts_total{outcome}`), when given.
    metrics: Option<Arc<redress_shared::metrics::Metrics>>,
}

struct Inner {
    pool: PgPool,
    sender: WebhookSender,
    schedule: RetrySchedule,
    global: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_endpoint_limit: usize,
    poll: Duration,
    lease: Duration,
    disable_after: Duration,
    /// Rung by this process's router when it committed messages, so they go out now and
    /// not at the next poll; messages queued by other processes wait for the poll.
    wake: Arc<Notify>,
    /// Where deliveries go to be recorded together; started at the first delivery.
    recorder: OnceLock<UnboundedSender<Recording>>,
    /// The attempts of messages the router handed over, those waiting for a slot, and what
    /// gives back those it will not send; closed when the dispatcher stops, which then
    /// waits for them.
    handed: TaskTracker,
    /// Handed-over messages not yet started (waiting for a slot, or about to take one).
    waiting: AtomicUsize,
    /// Cancelled when the dispatcher stops: messages still waiting are given back.
    stopping: CancellationToken,
}

/// Most handed-over messages one process keeps waiting for a slot; more are given back to
/// the claim. Bounds what a process holds leased but unsent if it dies.
const MAX_WAITING: usize = 1024;

/// A delivery waiting to be recorded, and who to tell once it is.
struct Recording {
    message: ClaimedMessage,
    outcome: DeliveryOutcome,
    done: tokio::sync::oneshot::Sender<bool>,
}

/// Most deliveries recorded in one go.
const RECORD_BATCH: usize = 64;
/// How long the recorder waits for more deliveries to finish before it writes what it has.
/// Nothing a receiver sees waits on it: a delivery has given back its slots before it is
/// recorded, and its message stays leased (for far longer) until then. Under load, writing
/// the few deliveries that had finished each time cost a transaction of three statements
/// per handful of messages (docs/PERFORMANCE.md, session 7).
const RECORD_LINGER: Duration = Duration::from_millis(25);

/// Records the deliveries that are waiting, a transaction per tenant, while more finish.
/// One try each: a batch that fails is recorded message by message by its senders, with
/// the retries of [`Dispatcher::record`].
async fn record_loop(pool: PgPool, mut waiting: UnboundedReceiver<Recording>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while waiting.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let until = tokio::time::Instant::now() + RECORD_LINGER;
        while batch.len() < RECORD_BATCH {
            let more = RECORD_BATCH - batch.len();
            match tokio::time::timeout_at(until, waiting.recv_many(&mut batch, more)).await {
                // More arrived: wait for the rest of the linger (or a full batch).
                Ok(n) if n > 0 => {}
                // Closed (the dispatcher is gone), or the linger is over: write what is here.
                _ => break,
            }
        }
        let mut by_tenant: HashMap<String, Vec<Recording>> = HashMap::new();
        for r in batch.drain(..) {
            by_tenant
                .entry(r.message.tenant_id.clone())
                .or_default()
                .push(r);
        }
        for (tenant, group) in by_tenant {
            let (delivered, done): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|r| ((r.message, r.outcome), r.done))
                .unzip();
            let tenant = TenantId::from_trusted(tenant);
            let written = async {
                let mut conn = pool.get().await?;
                store::record_delivered(&mut conn, &tenant, &delivered, Utc::now())
                    .await
                    .map_err(DbError::from)
            }
            .await;
            if let Err(error) = &written {
                tracing::warn!(%error, deliveries = delivered.len(), "deliveries not recorded together; recording them one by one");
            }
            for d in done {
                let _ = d.send(written.is_ok());
            }
        }
    }
}

/// What the router of the same process holds of the dispatcher.
#[derive(Clone)]
pub struct DispatchHandle(Dispatcher);

impl DispatchHandle {
    /// New messages are committed that a claim must find.
    pub fn wake(&self) {
        // One stored permit however many wake-ups arrive meanwhile: a busy router costs
        // one claim per round of the dispatcher, not one per message.
        self.0.inner.wake.notify_one();
    }

    /// How long the router leases the messages it hands over: as long as a claim would.
    pub fn lease(&self) -> Duration {
        self.0.inner.lease
    }

    /// Sends messages the router inserted leased to this dispatcher, now committed, without
    /// a claim. Each starts as soon as it has a slot (of its endpoint, then of the process;
    /// the semaphores serve waiters in order); up to [`MAX_WAITING`] per process wait, each
    /// for at most half its lease. A message that would wait beyond either is given back to
    /// the claim (its lease cleared) and the dispatcher woken to claim it, as is every
    /// message handed over while the dispatcher stops. Returns at once.
    pub fn hand_over(&self, messages: Vec<ClaimedMessage>) {
        let dispatcher = &self.0;
        let inner = &dispatcher.inner;
        let mut give_back = Vec::new();
        for message in messages {
            if inner.handed.is_closed() {
                // Stopping: the claim of the next process takes it.
                give_back.push(message);
                continue;
            }
            if inner.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
                inner.waiting.fetch_sub(1, Ordering::Relaxed);
                give_back.push(message);
                continue;
            }
            let endpoint = dispatcher.endpoint_semaphore(&message.endpoint_id);
            let this = dispatcher.clone();
            inner.handed.spawn(async move {
                // Leased for `lease`: waiting much longer would let another process claim
                // it while it still waits here.
                let permits = tokio::time::timeout(this.inner.lease / 2, async {
                    let endpoint = endpoint.acquire_owned().await.ok()?;
                    let global = this.inner.global.clone().acquire_owned().await.ok()?;
                    Some((endpoint, global))
                });
                let permits = tokio::select! {
                    p = permits => p.ok().flatten(),
                    _ = this.inner.stopping.cancelled() => None,
                };
                this.inner.waiting.fetch_sub(1, Ordering::Relaxed);
                match permits {
                    Some(permits) => this.attempt(message, permits).await,
                    None => this.give_back(vec![message]).await,
                }
            });
        }
        if !give_back.is_empty() {
            let this = dispatcher.clone();
            inner
                .handed
                .spawn(async move { this.give_back(give_back).await });
        }
    }
}

impl Dispatcher {
    /// A dispatcher with the deployment's SSRF policy (`webhook_allow_loopback`) and the
    /// system resolver.
    pub fn new(pool: PgPool, settings: &Settings) -> anyhow::Result<Self> {
        let sender = WebhookSender::from_settings(settings)?;
        Ok(Self::with_sender(pool, &settings.webhooks, sender))
    }

    /// The same with a given sender, so tests can use their own resolver.
    pub fn with_sender(pool: PgPool, settings: &WebhookSettings, sender: WebhookSender) -> Self {
        Self {
            metrics: None,
            inner: Arc::new(Inner {
                pool,
                sender,
                schedule: RetrySchedule::from_settings(settings),
                global: Arc::new(Semaphore::new(settings.concurrency)),
                per_endpoint: Mutex::new(HashMap::new()),
                per_endpoint_limit: settings.per_endpoint_concurrency,
                poll: Duration::from_millis(settings.poll_interval_ms),
                lease: Duration::from_millis(settings.timeout_ms) + LEASE_MARGIN,
                disable_after: Duration::from_secs(settings.disable_after_hours * 3600),
                wake: Arc::new(Notify::new()),
                recorder: OnceLock::new(),
                handed: TaskTracker::new(),
                waiting: AtomicUsize::new(0),
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// What the router of this process wakes and hands messages to.
    pub fn handle(&self) -> DispatchHandle {
        DispatchHandle(self.clone())
    }

    /// Counts every attempt in the process's metrics.
    pub fn with_metrics(mut self, metrics: Arc<redress_shared::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs until `shutdown` is cancelled, then lets the requests in flight finish (each is
    /// bounded by the timeout) and records them, so a clean stop sends nothing twice.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        let mut backoff = self.inner.poll;
        let mut last_claim: Option<tokio::time::Instant> = None;
        loop {
            while tasks.try_join_next().is_some() {}
            // Wake-ups come with every routing commit and every finished delivery; a claim
            // for each would mostly find one message, and a claim is planned on every call
            // (docs/PERFORMANCE.md). So claims are at least MIN_CLAIM_GAP apart, and one
            // claim takes what arrived meanwhile.
            if let Some(at) = last_claim {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(at + MIN_CLAIM_GAP) => {}
                }
            }
            let permits = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = self.take_permits() => p,
            };
            let Some(permits) = permits else { break };
            last_claim = Some(tokio::time::Instant::now());
            let (pause, wake_on_completion) = match self.claim_and_start(permits, &mut tasks).await
            {
                Ok(0) => {
                    backoff = self.inner.poll;
                    (self.inner.poll, true)
                }
                Ok(_) => {
                    backoff = self.inner.poll;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "webhook dispatcher cannot reach the database");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    (backoff, false)
                }
            };
            // Nothing claimable may only mean that every endpoint with due messages is at its
            // per-endpoint limit. An attempt finishing frees a slot, so wake then rather than
            // a whole poll interval later: otherwise a backlog to one endpoint drains at about
            // `per_endpoint_concurrency` messages per poll interval (measured: ~10/s with a
            // receiver answering in under 1 ms; docs/PERFORMANCE.md).
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
                _ = self.inner.wake.notified() => {}
                Some(_) = tasks.join_next(), if wake_on_completion && !tasks.is_empty() => {}
            }
        }
        self.inner.handed.close();
        self.inner.stopping.cancel();
        while tasks.join_next().await.is_some() {}
        self.inner.handed.wait().await;
        tracing::info!("webhook dispatcher stopped");
    }

    /// One claim round, waiting for the attempts it started. Returns how many it started.
    /// For tests that drive the dispatcher step by step.
    pub async fn dispatch_due(&self) -> Result<usize, DbError> {
        let mut tasks = JoinSet::new();
        let Some(permits) = self.take_permits().await else {
            return Ok(0);
        };
        let started = self.claim_and_start(permits, &mut tasks).await?;
        while tasks.join_next().await.is_some() {}
        Ok(started)
    }

    /// Waits for one free global permit, then takes whatever else is free right now (up to
    /// a batch). `None` only if the semaphore was closed.
    async fn take_permits(&self) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = self.inner.global.clone().acquire_owned().await.ok()?;
        let mut permits = vec![first];
        while permits.len() < MAX_BATCH {
            match self.inner.global.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        Some(permits)
    }

    fn endpoint_semaphore(&self, endpoint: &str) -> Arc<Semaphore> {
        let mut map = match self.inner.per_endpoint.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(endpoint.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.per_endpoint_limit)))
            .clone()
    }

    /// How many attempts this process has in flight to each endpoint that has any; also
    /// forgets idle endpoints so the map does not grow with every endpoint ever seen.
    fn in_flight(&self) -> Vec<(String, i32)> {
        let mut map = match self.inner.per_endpoint.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Each permit in flight holds a clone of its semaphore's Arc.
        map.retain(|_, sem| Arc::strong_count(sem) > 1);
        map.iter()
            .map(|(id, sem)| {
                let used = self
                    .inner
                    .per_endpoint_limit
                    .saturating_sub(sem.available_permits());
                (id.clone(), i32::try_from(used).unwrap_or(i32::MAX))
            })
            .filter(|(_, used)| *used > 0)
            .collect()
    }

    async fn claim_and_start(
        &self,
        mut permits: Vec<OwnedSemaphorePermit>,
        tasks: &mut JoinSet<()>,
    ) -> Result<usize, DbError> {
        let in_flight = self.in_flight();
        let claimed = {
            let mut conn = self.inner.pool.get().await?;
            store::claim_due(
                &mut conn,
                Utc::now(),
                permits.len() as i64,
                self.inner.lease,
                &in_flight,
                i32::try_from(self.inner.per_endpoint_limit).unwrap_or(i32::MAX),
            )
            .await?
        };
        let mut started = 0;
        let mut give_back = Vec::new();
        for message in claimed {
            let endpoint_permit = self
                .endpoint_semaphore(&message.endpoint_id)
                .try_acquire_owned();
            match (endpoint_permit, permits.pop()) {
                (Ok(endpoint_permit), Some(global_permit)) => {
                    let this = self.clone();
                    tasks.spawn(async move {
                        this.attempt(message, (endpoint_permit, global_permit))
                            .await;
                    });
                    started += 1;
                }
                _ => give_back.push(message),
            }
        }
        if !give_back.is_empty() {
            let mut conn = self.inner.pool.get().await?;
            store::release(&mut conn, &give_back).await?;
        }
        Ok(started)
    }

    /// Clears the lease of messages handed over that this process will not send, and wakes
    /// the claim to send them.
    async fn give_back(&self, messages: Vec<ClaimedMessage>) {
        let released = async {
            let mut conn = self.inner.pool.get().await?;
            store::release(&mut conn, &messages)
                .await
                .map_err(DbError::from)
        }
        .await;
        if let Err(error) = released {
            // They are sent when their lease ends instead.
            tracing::warn!(%error, messages = messages.len(), "cannot give back webhook messages not started");
        }
        self.inner.wake.notify_one();
    }

    /// Sends one message once and records what happened. The permits are held while the
    /// request is in flight; a delivery gives them back before it is recorded.
    async fn attempt(
        &self,
        message: ClaimedMessage,
        permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    ) {
        let outcome = match message.keys(Utc::now()) {
            Ok(keys) => {
                self.inner
                    .sender
                    .deliver(&Delivery {
                        url: &message.url,
                        msg_id: &message.id,
                        body: &message.body,
                        keys: &keys,
                    })
                    .await
            }
            Err(e) => DeliveryOutcome {
                status: None,
                latency: Duration::ZERO,
                retry_after: None,
                response_excerpt: None,
                error: Some((ErrorKind::Secret, e.to_string())),
                timestamp: 0,
            },
        };
        if let Some(m) = &self.metrics {
            let label = match outcome.verdict() {
                Verdict::Delivered => "delivered",
                Verdict::Gone => "gone",
                Verdict::Failed => outcome.error.as_ref().map_or("failed", |e| e.0.as_str()),
            };
            m.observe_webhook(label, outcome.latency);
        }
        let attempt = (message.attempts + 1) as u32;
        let now = Utc::now();
        let decision = decide(&outcome, attempt, &self.inner.schedule, now, jitter_unit());
        log_attempt(&message, &outcome, &decision, attempt);
        if let Decision::Delivered = decision {
            // The endpoint's slots bound the requests in flight to the receiver; writing our
            // own log of a delivery need not keep the next request waiting. The message
            // stays leased until the record is written, so no one claims it meanwhile.
            drop(permits);
            if !self.record_delivered(&message, &outcome).await {
                self.record(&message, &outcome, &decision).await;
            }
            return;
        }
        self.record(&message, &outcome, &decision).await;
        drop(permits);
    }

    /// Hands a delivery to the recorder, which writes the deliveries that finish together
    /// in one transaction per tenant (`store::record_delivered`), and waits until it is
    /// written. False when it could not be: the caller records it alone, with retries.
    async fn record_delivered(&self, message: &ClaimedMessage, outcome: &DeliveryOutcome) -> bool {
        let recorder = self.inner.recorder.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            // Ends when the dispatcher (the channel's only sender) is dropped.
            tokio::spawn(record_loop(self.inner.pool.clone(), rx));
            tx
        });
        let (done, written) = tokio::sync::oneshot::channel();
        let sent = recorder.send(Recording {
            message: message.clone(),
            outcome: outcome.clone(),
            done,
        });
        sent.is_ok() && written.await.unwrap_or(false)
    }

    /// Records an attempt, retrying while the database is briefly unavailable. If it stays
    /// unavailable past the lease the message is sent again later: at least once, never lost.
    async fn record(
        &self,
        message: &ClaimedMessage,
        outcome: &DeliveryOutcome,
        decision: &Decision,
    ) {
        let mut wait = Duration::from_millis(200);
        for _ in 0..6 {
            let result = async {
                let mut conn = self.inner.pool.get().await?;
                store::record_attempt(
                    &mut conn,
                    message,
                    outcome,
                    decision,
                    self.inner.disable_after,
                    Utc::now(),
                )
                .await
                .map_err(DbError::from)
            }
            .await;
            match result {
                Ok(recorded) => {
                    if let Some(reason) = recorded.endpoint_disabled {
                        tracing::warn!(
                            tenant.id = %message.tenant_id,
                            webhook.endpoint_id = %message.endpoint_id,
                            reason = %reason,
                            "webhook endpoint disabled"
                        );
                    }
                    return;
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, webhook.message_id = %message.id, "cannot record a webhook attempt yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(error) => {
                    tracing::error!(%error, webhook.message_id = %message.id, "webhook attempt not recorded; it will be sent again");
                    return;
                }
            }
        }
        tracing::error!(webhook.message_id = %message.id, "webhook attempt not recorded; it will be sent again");
    }
}

fn log_attempt(
    message: &ClaimedMessage,
    outcome: &DeliveryOutcome,
    decision: &Decision,
    attempt: u32,
) {
    let decision = match decision {
        Decision::Delivered => "delivered",
        Decision::Gone => "gone",
        Decision::Retry { .. } => "retry",
        Decision::Exhausted => "exhausted",
    };
    // The URL is the tenant's and may carry its credentials: it is not logged.
    tracing::info!(
        tenant.id = %message.tenant_id,
        webhook.endpoint_id = %message.endpoint_id,
        webhook.message_id = %message.id,
        webhook.event_type = %message.event_type,
        webhook.attempt = attempt,
        http.status = outcome.status.map(i64::from),
        duration_ms = outcome.latency.as_millis() as u64,
        error.kind = outcome.error.as_ref().map(|e| e.0.as_str()),
        decision,
        "webhook attempt"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use redress_shared::webhooks::ssrf::Policy;

    fn dispatcher(per_endpoint: usize, global: usize) -> Dispatcher {
        let mut settings = Settings::defaults().unwrap();
        settings.webhooks.per_endpoint_concurrency = per_endpoint;
        settings.webhooks.concurrency = global;
        // The pool connects lazily; these tests never touch the database.
        let pool = redress_shared::db::pool("postgres://nobody@127.0.0.1:1/none", 1).unwrap();
        let sender = WebhookSender::new(Policy::default(), Duration::from_secs(1)).unwrap();
        Dispatcher::with_sender(pool, &settings.webhooks, sender)
    }

    #[tokio::test]
    async fn in_flight_counts_each_endpoint_and_forgets_idle_ones() {
        let d = dispatcher(2, 8);
        let a1 = d.endpoint_semaphore("whe_a").try_acquire_owned().unwrap();
        let _b1 = d.endpoint_semaphore("whe_b").try_acquire_owned().unwrap();
        let mut load = d.in_flight();
        load.sort();
        assert_eq!(load, vec![("whe_a".to_owned(), 1), ("whe_b".to_owned(), 1)]);
        let a2 = d.endpoint_semaphore("whe_a").try_acquire_owned().unwrap();
        let mut load = d.in_flight();
        load.sort();
        assert_eq!(load, vec![("whe_a".to_owned(), 2), ("whe_b".to_owned(), 1)]);
        assert!(d.endpoint_semaphore("whe_a").try_acquire_owned().is_err());
        drop(a2);
        drop(a1);
        assert_eq!(d.in_flight(), vec![("whe_b".to_owned(), 1)]);
        let map = d.inner.per_endpoint.lock().unwrap();
        assert!(
            !map.contains_key("whe_a"),
            "an idle endpoint stays in the map"
        );
        assert!(map.contains_key("whe_b"));
    }

    #[tokio::test]
    async fn the_dispatcher_takes_only_the_global_permits_that_are_free() {
        let d = dispatcher(4, 3);
        let first = d.take_permits().await.unwrap();
        assert_eq!(first.len(), 3);
        let waiting = tokio::time::timeout(Duration::from_millis(50), d.take_permits()).await;
        assert!(waiting.is_err(), "no permit should be free");
        drop(first);
        assert_eq!(d.take_permits().await.unwrap().len(), 3);
    }
}
