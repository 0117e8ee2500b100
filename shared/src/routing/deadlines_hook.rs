//! The single place routing calls the deadlines module ([`crate::deadlines`]). Every
//! clock a rung starts, pauses, resumes or stops goes through one of these functions.
//!
//! Order matters (see the deadlines module): a new rung's deadlines come from
//! [`start_for_rung`] before the rungs are stored with `complaints::set_state`; the other
//! calls come after `set_state`, because they rewrite the stored rungs' deadline states.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, QueryResult};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use crate::{
    db::schema::complaints,
    deadlines,
    domain::{ComplaintInput, Status},
    ids::{ClientId, ComplaintId, TenantId},
};

/// Clocks for a rung the case just reached; the result is put on the rung as its
/// `deadlines`.
#[allow(clippy::too_many_arguments)]
pub async fn start_for_rung(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
    sla_policy: Option<&str>,
    started_at: DateTime<Utc>,
) -> QueryResult<Vec<Value>> {
    deadlines::start_for_rung(
        conn, tenant, complaint, channel, track, sla_policy, started_at,
    )
    .await
}

pub use crate::deadlines::{Calendars, PlannedRung, ReadAhead};

/// The tenant's SLA policies and zone, for [`plan_rung`]; shared so routing can read them
/// with its other reads.
pub async fn read_ahead(conn: &AsyncPgConnection, tenant: &TenantId) -> QueryResult<ReadAhead> {
    ReadAhead::read(conn, tenant).await
}

/// [`start_for_rung`] in two steps, for a caller that writes the clocks with its other
/// writes: works out a rung's clocks and deadlines from `ahead` (reading only calendars);
/// [`PlannedRung::write`] writes them.
#[allow(clippy::too_many_arguments)]
pub async fn plan_rung(
    conn: &mut AsyncPgConnection,
    ahead: &ReadAhead,
    calendars: &mut Calendars,
    tenant: &TenantId,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
    sla_policy: Option<&str>,
    started_at: DateTime<Utc>,
) -> QueryResult<PlannedRung> {
    deadlines::plan_rung(
        conn, ahead, calendars, tenant, complaint, channel, track, sla_policy, started_at,
    )
    .await
}

/// The case waits for evidence: its clocks stop counting.
pub async fn pause_all(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    deadlines::pause_all(conn, tenant, complaint, at).await
}

/// The evidence arrived: paused clocks count again.
pub async fn resume_all(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    deadlines::resume_all(conn, tenant, complaint, at).await
}

/// Stops a rung's clocks: `which` is `acknowledge`, `respond` or `all`; `met` is true when
/// the channel did what the clock measured (acknowledged, answered, resolved), false when
/// the clock is cancelled because the case moved on or ended.
#[allow(clippy::too_many_arguments)]
pub async fn stop_for_rung(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
    which: &str,
    met: bool,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    deadlines::stop_for_rung(conn, tenant, complaint, channel, track, which, met, at).await
}

/// A rung the preview asks deadlines for: `(track, channel, sla_policy)`.
pub type PreviewRung = (String, String, Option<String>);

/// The deadlines each rung would get if a complaint were routed now, for the preview.
/// Clocks belong to a complaint, so this files a throwaway complaint and starts the
/// clocks exactly as routing would, inside a transaction that is always rolled back:
/// nothing is stored, and the due dates come from the same code as real ones.
pub async fn preview(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    input: &ComplaintInput,
    rungs: &[PreviewRung],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Vec<Value>>> {
    enum Outcome {
        Rollback(Vec<Vec<Value>>),
        Db(diesel::result::Error),
    }
    impl From<diesel::result::Error> for Outcome {
        fn from(e: diesel::result::Error) -> Self {
            Outcome::Db(e)
        }
    }
    if rungs.is_empty() {
        return Ok(Vec::new());
    }
    let id = ComplaintId::generate();
    let details = serde_json::to_value(input)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let result = conn
        .transaction::<(), Outcome, _>(async |conn| {
            diesel::insert_into(complaints::table)
                .values((
                    complaints::id.eq(id.as_str()),
                    complaints::tenant_id.eq(tenant.as_str()),
                    complaints::client_id.eq(client.as_str()),
                    complaints::status.eq(Status::Submitted.as_str()),
                    complaints::category.eq(&input.category),
                    complaints::provider.eq(&input.respondent.provider),
                    complaints::complainant_kind.eq(&input.complainant.kind),
                    complaints::details.eq(&details),
                ))
                .execute(conn)
                .await?;
            let mut out = Vec::with_capacity(rungs.len());
            for (track, channel, policy) in rungs {
                out.push(
                    deadlines::start_for_rung(
                        conn,
                        tenant,
                        &id,
                        channel,
                        track,
                        policy.as_deref(),
                        now,
                    )
                    .await?,
                );
            }
            Err(Outcome::Rollback(out))
        })
        .await;
    match result {
        Err(Outcome::Rollback(out)) => Ok(out),
        Err(Outcome::Db(e)) => Err(e),
        Ok(()) => Ok(Vec::new()),
    }
}
