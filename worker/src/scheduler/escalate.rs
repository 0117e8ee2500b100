//! What a breach with `on_breach: escalate` does: move the case to the next rung of its
//! ladder, in the transaction that records the breach.
//!
//! SWITCH POINT: ladders belong to the routing engine, which exposes
//! `redress_worker::routing::escalate(conn, tenant, complaint, track, reason, actor, now)`.
//! Until it lands, [`escalate`] calls [`interim`], a stand-in that climbs the cn-pos
//! channel order of DOMAIN.md against today's single-rung routing. When the routing
//! engine's function exists, replace the body of [`escalate`] with a call to it and delete
//! [`interim`]; nothing else in the scheduler changes.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::deadlines::{EscalationRequest, ACTOR_SCHEDULER};

use crate::routing::ProcessError;

/// Moves the case of a breached clock up its ladder. `Ok(true)` when it moved. A move that
/// cannot be made for good (no ladder, a corrupt row) is logged and the breach stands on
/// its own: it is already recorded and announced; only transient failures undo the round.
pub async fn escalate(
    conn: &mut AsyncPgConnection,
    request: &EscalationRequest,
    now: DateTime<Utc>,
) -> Result<bool, ProcessError> {
    // A savepoint: a refused move leaves no half-written rung behind.
    let outcome = conn
        .transaction(async |conn| interim::escalate(conn, request, ACTOR_SCHEDULER, now).await)
        .await;
    match outcome {
        Ok(moved) => Ok(moved),
        Err(ProcessError::Permanent(reason)) => {
            tracing::error!(complaint.id = %request.complaint, sla.clock = request.clock, error = %reason, "breach could not escalate the case; it stays on its rung");
            Ok(false)
        }
        Err(transient) => Err(transient),
    }
}

/// Stand-in for the routing engine's escalation (see the module docs).
mod interim {
    use chrono::{DateTime, Utc};
    use diesel_async::AsyncPgConnection;
    use redress_shared::{
        db::complaints,
        deadlines::{self, EscalationRequest},
        domain::{Rung, Status},
    };
    use serde_json::json;

    use crate::routing::ProcessError;

    /// The escalation ladder of DOMAIN.md, "The escalation ladder people are advised to
    /// climb", in cn-pos channel codes.
    const LADDER: [&str; 6] = [
        "provider_service",
        "institution_complaint",
        "pboc_12363",
        "samr_12315",
        "mediation",
        "court",
    ];

    const ESCALATED: &str = "complaint.escalated";

    pub(super) async fn escalate(
        conn: &mut AsyncPgConnection,
        request: &EscalationRequest,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ProcessError> {
        let permanent = |e: &dyn std::fmt::Display| ProcessError::Permanent(e.to_string());
        let Some(row) =
            complaints::find_for_update(conn, &request.tenant, &request.complaint).await?
        else {
            return Ok(false);
        };
        let status = row.status().map_err(|e| permanent(&e))?;
        if !status.can_move_to(Status::Routed) {
            return Ok(false);
        }
        let mut rungs = row.rungs().map_err(|e| permanent(&e))?;
        let Some(index) = rungs
            .iter()
            .position(|r| r.channel == request.channel && r.track == request.track)
        else {
            // The case already left that rung.
            return Ok(false);
        };
        let next = LADDER
            .iter()
            .position(|c| *c == request.channel)
            .and_then(|i| LADDER.get(i + 1))
            .ok_or_else(|| {
                ProcessError::Permanent(format!(
                    "channel `{}` has no next rung on the interim ladder",
                    request.channel
                ))
            })?;
        deadlines::stop_for_rung(
            conn,
            &request.tenant,
            &request.complaint,
            &request.channel,
            &request.track,
            "all",
            false,
            now,
        )
        .await?;
        let deadlines = deadlines::start_for_rung(
            conn,
            &request.tenant,
            &request.complaint,
            next,
            &request.track,
            None,
            now,
        )
        .await?;
        rungs[index] = Rung {
            channel: (*next).to_owned(),
            since: now,
            track: request.track.clone(),
            deadlines,
        };
        complaints::set_state(
            conn,
            &request.tenant,
            &request.complaint,
            Status::Routed,
            &rungs,
            &row.missing_evidence,
            now,
        )
        .await?;
        complaints::append_event(
            conn,
            &request.tenant,
            &request.complaint,
            ESCALATED,
            actor,
            json!({
                "from": status,
                "status": Status::Routed,
                "channel": next,
                "previous_channel": request.channel,
                "track": request.track,
                "reason": request.reason,
                "why": format!("{}; the next rung of the ladder is `{next}`", request.reason),
            }),
            now,
        )
        .await?;
        Ok(true)
    }
}
