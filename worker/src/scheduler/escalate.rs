//! What a breach with `on_breach: escalate` does: move the case to the next rung of its
//! ladder, in the transaction that records the breach.
//!
//! Ladders belong to the routing engine; this is the one place the scheduler calls it
//! ([`crate::routing::escalate`], the same escalation operators and unsatisfied feedback
//! use).

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::deadlines::{EscalationRequest, ACTOR_SCHEDULER};

use crate::routing::{CaseError, ProcessError};

/// Moves the case of a breached clock up its ladder. `Ok(true)` when it escalated. A move
/// the case refuses for good (no longer active, the track gone) is logged and the breach
/// stands on its own: it is already recorded and announced. Only database failures undo
/// the round, so the clock is tried again.
pub async fn escalate(
    conn: &mut AsyncPgConnection,
    request: &EscalationRequest,
    now: DateTime<Utc>,
) -> Result<bool, ProcessError> {
    // A savepoint: a refused move leaves nothing half-written behind.
    let outcome = conn
        .transaction(async |conn| {
            crate::routing::escalate(
                conn,
                &request.tenant,
                &request.complaint,
                &request.track,
                &request.reason,
                ACTOR_SCHEDULER,
                now,
            )
            .await
        })
        .await;
    match outcome {
        Ok(_) => Ok(true),
        Err(CaseError::Db(e)) => Err(e.into()),
        Err(refused) => {
            tracing::warn!(complaint.id = %request.complaint, sla.clock = request.clock, sla.channel = request.channel, error = %refused, "breach could not escalate the case; it stays where it is");
            Ok(false)
        }
    }
}
