//! The SLA scheduler: fires each deadline's warning and breach exactly once, whatever the
//! number of worker processes.
//!
//! Each round claims a batch of due clocks with `FOR UPDATE SKIP LOCKED` and a lease, and
//! commits at once (no transaction is held while it works); then each clock is acted on in
//! a transaction of its own ([`deadlines::fire`]), which locks the complaint and the clock
//! and re-checks the clock, so a clock fired by someone else in the meantime is left alone.
//! A worker that dies holding claims loses nothing: the lease runs out and another
//! scheduler claims the clocks again. A breach whose policy says `escalate` moves the case
//! up its ladder in the same transaction as the breach ([`escalate`]).

pub mod escalate;
pub mod synthetic;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures::StreamExt;
use redress_shared::{
    config::SchedulerSettings,
    db::{self, PgPool},
    deadlines::{self, Claim, Fired},
};
use tokio_util::sync::CancellationToken;

use crate::routing::ProcessError;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub claimed: usize,
    pub warnings: usize,
    pub breaches: usize,
    pub escalations: usize,
    /// Clocks that could not be acted on this time; their claims run out and they are
    /// tried again.
    pub failed: usize,
}

#[derive(Clone)]
pub struct Scheduler {
    pool: PgPool,
    settings: SchedulerSettings,
    /// Counts breaches for `/metrics` (`redress_deadlines_breached_total`), when given.
    metrics: Option<std::sync::Arc<redress_shared::metrics::Metrics>>,
}

impl Scheduler {
    pub fn new(pool: PgPool, settings: SchedulerSettings) -> Self {
        Self {
            pool,
            settings,
            metrics: None,
        }
    }

    /// Counts the breaches this scheduler fires in the process's metrics.
    pub fn with_metrics(
        mut self,
        metrics: std::sync::Arc<redress_shared::metrics::Metrics>,
    ) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs rounds until `shutdown`: at once again while rounds come back full (more is
    /// due), otherwise after the poll interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        tracing::info!(
            scheduler.batch_size = self.settings.batch_size,
            scheduler.concurrency = self.settings.concurrency,
            "SLA scheduler started"
        );
        while !shutdown.is_cancelled() {
            let full = match self.pass().await {
                Ok(stats) => {
                    if stats.claimed > 0 {
                        tracing::debug!(
                            sla.claimed = stats.claimed,
                            sla.warnings = stats.warnings,
                            sla.breaches = stats.breaches,
                            sla.escalations = stats.escalations,
                            sla.failed = stats.failed,
                            "scheduler round"
                        );
                    }
                    i64::try_from(stats.claimed).unwrap_or(i64::MAX) >= self.settings.batch_size
                }
                Err(error) => {
                    tracing::warn!(%error, "scheduler round failed; retrying after the poll interval");
                    false
                }
            };
            if !full {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(idle) => {}
                }
            }
        }
        tracing::info!("SLA scheduler stopped");
    }

    /// One round: claim what is due now (one short committed statement), then act on each
    /// clock in its own transaction, `concurrency` at a time.
    pub async fn pass(&self) -> Result<PassStats, db::DbError> {
        let claims = self.claim().await?;
        let mut stats = PassStats {
            claimed: claims.len(),
            ..PassStats::default()
        };
        let mut results = futures::stream::iter(claims)
            .map(|claim| async move { (self.act(&claim).await, claim) })
            .buffer_unordered(self.settings.concurrency);
        while let Some((result, claim)) = results.next().await {
            match result {
                Ok((fired, escalated)) => {
                    stats.warnings += usize::from(fired.warning);
                    stats.breaches += usize::from(fired.breach);
                    stats.escalations += usize::from(escalated);
                    if let (true, Some(m)) = (fired.breach, &self.metrics) {
                        m.deadlines_breached.inc();
                    }
                }
                Err(error) => {
                    stats.failed += 1;
                    tracing::warn!(%error, sla.clock_id = claim.id, complaint.id = %claim.complaint_id, "clock not fired; it is tried again when its claim runs out");
                }
            }
        }
        Ok(stats)
    }

    /// Claims due clocks; the statement commits on its own.
    pub async fn claim(&self) -> Result<Vec<Claim>, db::DbError> {
        let mut conn = self.pool.get().await?;
        let lease = TimeDelta::seconds(
            i64::try_from(self.settings.lease_secs).unwrap_or(i64::MAX / 1_000_000),
        );
        Ok(deadlines::claim_due(&mut conn, Utc::now(), lease, self.settings.batch_size).await?)
    }

    /// Fires one claimed clock, escalating in the same transaction when its breach asks
    /// for it: a breach and the move it causes are recorded together or not at all.
    pub async fn act(&self, claim: &Claim) -> Result<(Fired, bool), ProcessError> {
        let mut conn = self.pool.get().await.map_err(db::DbError::from)?;
        let tenant = redress_shared::ids::TenantId::from_trusted(claim.tenant_id.clone());
        db::tenant::transaction(&mut conn, &tenant, async |conn| {
            let now = Utc::now();
            let fired = deadlines::fire(conn, claim, now).await?;
            let mut escalated = false;
            if let Some(request) = &fired.escalate {
                escalated = escalate::escalate(conn, request, now).await?;
            }
            Ok::<_, ProcessError>((fired, escalated))
        })
        .await
    }
}
