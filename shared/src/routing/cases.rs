//! What happens to a case: routing it (or holding it for evidence), escalation, operator
//! transitions, the consumer's feedback, withdrawal and added evidence.
//!
//! Each function works in the caller's transaction on a row it locks, checks the move with
//! [`Status::can_move_to`], writes the new state first and then appends the event (the
//! webhook payload reads the state the event leaves behind), and goes through
//! [`deadlines_hook`] for every clock. [`escalate`] is the one escalation used by operator
//! transitions, unsatisfied feedback and the deadline scheduler.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{
    deadlines_hook,
    engine::{self, Decision, RungPlan, Skipped, Verdict},
    store::{self, CaseRouting, StoreError, TrackState},
};
use crate::{
    db::{
        complaints::{self as db, ComplaintRow},
        schema::complaints,
    },
    domain::{
        complaint::{Evidence, EVIDENCE_KINDS},
        events::{self, QueueMessage},
        masking::mask_pans,
        ComplaintInput, FieldError, Rung, Status,
    },
    ids::{ComplaintId, EventId, TenantId},
    outbox, webhooks,
};

pub const MAIN: &str = "main";

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("complaint not found")]
    NotFound,
    /// The status machine does not allow it; the answer names the current status.
    #[error("cannot {action} a complaint that is {status}")]
    Illegal { status: Status, action: String },
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("{0}")]
    Corrupt(String),
}

impl From<StoreError> for CaseError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => CaseError::Db(e),
            StoreError::Invalid(errors) => CaseError::Invalid(errors),
            other => CaseError::Corrupt(other.to_string()),
        }
    }
}

struct Locked {
    row: ComplaintRow,
    status: Status,
    rungs: Vec<Rung>,
}

async fn lock(
    conn: &AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
) -> Result<Locked, CaseError> {
    let row = db::find_for_update(conn, tenant, id)
        .await?
        .ok_or(CaseError::NotFound)?;
    Locked::from_row(row)
}

impl Locked {
    fn from_row(row: ComplaintRow) -> Result<Locked, CaseError> {
        let status = row
            .status()
            .map_err(|e| CaseError::Corrupt(e.to_string()))?;
        let rungs = row.rungs().map_err(|e| CaseError::Corrupt(e.to_string()))?;
        Ok(Locked { row, status, rungs })
    }
}

fn illegal(status: Status, action: &str) -> CaseError {
    CaseError::Illegal {
        status,
        action: action.to_owned(),
    }
}

/// The decision the worker would make for `input` now: the tenant's latest routing (or
/// `version`) and the tenant's date. `None` when the tenant has no routing data (or not
/// that version). Preview and the worker both call this.
pub async fn decide(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    input: &ComplaintInput,
    version: Option<i32>,
    now: DateTime<Utc>,
) -> Result<Option<Decision>, StoreError> {
    let Some(routing) = store::compiled(conn, tenant, version).await? else {
        return Ok(None);
    };
    let today = store::tenant_today(conn, tenant, now).await?;
    Ok(Some(engine::decide(&routing, input, today)))
}

/// What routing a waiting case did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOutcome {
    Routed {
        channel: String,
    },
    AwaitingEvidence {
        missing: Vec<String>,
    },
    Rejected {
        reason: String,
    },
    /// The case is no longer waiting to be routed (routed already, withdrawn …).
    NotApplicable {
        status: Status,
    },
}

/// Records queue messages as applied by `consumer`, in one statement; answers those that
/// were not applied before (the rest were, and are to be skipped).
async fn first_applications(
    mut conn: &AsyncPgConnection,
    consumer: &str,
    message_ids: &[uuid::Uuid],
) -> QueryResult<std::collections::HashSet<uuid::Uuid>> {
    #[derive(QueryableByName)]
    struct Applied {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        message_id: uuid::Uuid,
    }
    let applied: Vec<Applied> = crate::db::prepared::reuse(
        diesel::sql_query(
            "INSERT INTO processed_messages (consumer, message_id) \
             SELECT $1, m FROM unnest($2::uuid[]) AS m \
             ON CONFLICT DO NOTHING RETURNING message_id",
        )
        .bind::<diesel::sql_types::Text, _>(consumer)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(message_ids),
    )
    .load(&mut conn)
    .await?;
    Ok(applied.into_iter().map(|a| a.message_id).collect())
}

/// One queue message asking for a case to be routed: see [`route_many`].
#[derive(Debug, Clone)]
pub struct RouteRequest {
    pub complaint: ComplaintId,
    pub message_id: uuid::Uuid,
}

/// Why a batch could not be applied, and which request failed when one did (its index;
/// `None` when the batch's shared reads or writes failed). The caller rolls the
/// transaction back; the requests not at fault can be applied on their own.
#[derive(Debug, thiserror::Error)]
#[error("routing batch (request {index:?}): {error}")]
pub struct BatchError {
    pub index: Option<usize>,
    #[source]
    pub error: CaseError,
}

/// Routes the cases of several queue messages of one tenant in the caller's transaction:
/// each case that is `submitted` or `awaiting_evidence` goes, with the tenant's latest
/// routing, to its start rungs, back to waiting for evidence, or is rejected. Each
/// message id is recorded as applied by `consumer` in the same transaction and the same
/// round trip as the first reads. An outcome per request, in order; `None`: that message
/// was applied before, and nothing else was done for it. The complaints must be distinct:
/// two messages about one case are applied one after the other, in separate calls.
///
/// Routing is mostly round trips to Postgres, so it makes few, and the same few for a
/// batch as for one message: every read it may need goes in one (the messages' records
/// and the complaints' locks, one statement each, locking in the order of the complaint
/// ids; the version in force, its SLA policies and the tenant's zone, its webhook
/// endpoints), the calendars the clocks count on in a second,
/// and every write of the new cases in a third (clocks, case state, the complaint, the
/// event, the webhooks). With BEGIN and COMMIT that is five round trips and one commit
/// for the batch, where one statement after another took about twenty per message
/// (docs/PERFORMANCE.md). Cases coming back from awaiting_evidence, held for evidence or
/// rejected are written one statement after another, between the reads and the batch's
/// writes: they are the rare paths, and resuming clocks rewrites the stored rungs.
///
/// With `lease_until`, the webhook messages of the new cases are inserted leased until
/// then, and returned (`handed_over`) for the caller to give to its dispatcher once the
/// transaction commits: they go out without waiting for a claim, and a claim cannot take
/// them meanwhile. A leased message the caller cannot send goes back to the claim when its
/// lease ends (or at once, by `webhooks::store::release`). An endpoint that is throttled
/// gets its message unleased, for the claim, which waits out the throttle.
///
/// Any failure fails the whole batch (the caller rolls back): the error names the request.
pub async fn route_many(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    requests: &[RouteRequest],
    now: DateTime<Utc>,
    consumer: &str,
    lease_until: Option<DateTime<Utc>>,
) -> Result<RoutedBatch, BatchError> {
    let whole = |error: CaseError| BatchError { index: None, error };
    let mut seen = std::collections::HashSet::new();
    if let Some(index) = requests.iter().position(|r| !seen.insert(&r.complaint)) {
        return Err(BatchError {
            index: Some(index),
            error: CaseError::Corrupt(format!(
                "complaint {} appears twice in one routing batch",
                requests[index].complaint
            )),
        });
    }
    let message_ids: Vec<uuid::Uuid> = requests.iter().map(|r| r.message_id).collect();
    let complaint_ids: Vec<&str> = requests.iter().map(|r| r.complaint.as_str()).collect();
    let (first, locked, latest, ahead, subscribed) = {
        let shared: &AsyncPgConnection = conn;
        futures::join!(
            // The batch's messages recorded and its complaints locked in two statements,
            // not two per message (docs/PERFORMANCE.md).
            first_applications(shared, consumer, &message_ids),
            db::find_many_for_update(shared, tenant, &complaint_ids),
            store::latest_version_number(shared, tenant),
            deadlines_hook::read_ahead(shared, tenant),
            // Every enabled endpoint: which types the event will produce is known only
            // after the decision; the messages are filtered by type when queued.
            webhooks::store::subscribers(shared, tenant, &webhooks::model::EVENT_TYPES),
        )
    };
    let first = first.map_err(|e| whole(e.into()))?;
    let mut locked: std::collections::HashMap<String, ComplaintRow> = locked
        .map_err(|e| whole(e.into()))?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    let ahead = ahead.map_err(|e| whole(e.into()))?;
    let subscribed = subscribed.map_err(|e| whole(e.into()))?;
    let routing = match latest.map_err(|e| whole(e.into()))? {
        Some(version) => store::compiled(conn, tenant, Some(version))
            .await
            .map_err(|e| whole(e.into()))?,
        None => None,
    };
    let mut calendars = deadlines_hook::Calendars::default();
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut writes = Vec::new();
    let mut queued_for_claim = false;
    for (index, request) in requests.iter().enumerate() {
        let at = |error: CaseError| BatchError {
            index: Some(index),
            error,
        };
        if !first.contains(&request.message_id) {
            outcomes.push(None);
            continue;
        }
        let locked = locked
            .remove(request.complaint.as_str())
            .ok_or(CaseError::NotFound)
            .and_then(Locked::from_row)
            .map_err(at)?;
        let planned_before = writes.len();
        let outcome = decide_one(
            conn,
            tenant,
            &request.complaint,
            locked,
            routing.as_deref(),
            &ahead,
            &mut calendars,
            now,
            &mut writes,
        )
        .await
        .map_err(at)?;
        // Every outcome but a new case's route and no move at all was written on the way,
        // with its webhooks for the claim.
        if writes.len() == planned_before && !matches!(outcome, RouteOutcome::NotApplicable { .. })
        {
            queued_for_claim = true;
        }
        outcomes.push(Some(outcome));
    }
    let (handed_over, unleased) =
        NewRoute::write_all(conn, tenant, &writes, &subscribed, now, lease_until)
            .await
            .map_err(whole)?;
    Ok(RoutedBatch {
        outcomes,
        handed_over,
        queued_for_claim: queued_for_claim || unleased,
    })
}

/// What [`route_many`] did.
#[derive(Debug)]
pub struct RoutedBatch {
    /// An outcome per request, in order; `None`: that message was applied before.
    pub outcomes: Vec<Option<RouteOutcome>>,
    /// The webhook messages inserted leased, for the caller's dispatcher after the commit.
    pub handed_over: Vec<webhooks::store::ClaimedMessage>,
    /// Whether the batch may also have queued webhook messages that only a claim sends
    /// (unleased): a dispatcher should be woken after the commit.
    pub queued_for_claim: bool,
}

/// Decides one locked case. A new case that is routed is only planned (its writes go to
/// `writes`, for the batch's last round trip); every other outcome is written here.
#[allow(clippy::too_many_arguments)]
async fn decide_one(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    locked: Locked,
    routing: Option<&super::CompiledRouting>,
    ahead: &deadlines_hook::ReadAhead,
    calendars: &mut deadlines_hook::Calendars,
    now: DateTime<Utc>,
    writes: &mut Vec<NewRoute>,
) -> Result<RouteOutcome, CaseError> {
    let from = locked.status;
    if from != Status::Submitted && from != Status::AwaitingEvidence {
        return Ok(RouteOutcome::NotApplicable { status: from });
    }
    let input = locked
        .row
        .input()
        .map_err(|e| CaseError::Corrupt(e.to_string()))?;
    let Some(decision) = routing.map(|r| engine::decide(r, &input, ahead.tenant_today(now))) else {
        let reason = "this hub has no routing configured yet".to_owned();
        reject(conn, tenant, id, from, &reason, None, now).await?;
        return Ok(RouteOutcome::Rejected { reason });
    };
    match decision.verdict {
        Verdict::Rejected => {
            let reason = decision.rejection_reason.clone().unwrap_or_default();
            reject(conn, tenant, id, from, &reason, Some(&decision), now).await?;
            Ok(RouteOutcome::Rejected { reason })
        }
        Verdict::AwaitingEvidence => {
            // Still waiting after new evidence is no move; from `submitted` it is one.
            if from != Status::AwaitingEvidence {
                ensure_move(from, Status::AwaitingEvidence, "hold for evidence")?;
            }
            db::set_state(
                conn,
                tenant,
                id,
                Status::AwaitingEvidence,
                &[],
                &decision.missing_evidence,
                now,
            )
            .await?;
            if from != Status::AwaitingEvidence {
                deadlines_hook::pause_all(conn, tenant, id, now).await?;
            }
            db::append_event(
                conn,
                tenant,
                id,
                events::EVIDENCE_REQUESTED,
                events::ACTOR_ROUTER,
                json!({
                    "from": from,
                    "status": Status::AwaitingEvidence,
                    "missing_evidence": decision.missing_evidence,
                    "recommended_evidence_missing": decision.recommended_evidence_missing,
                    "routing_version": decision.routing_version,
                    "why": decision.why,
                    "decision": decision,
                }),
                now,
            )
            .await?;
            Ok(RouteOutcome::AwaitingEvidence {
                missing: decision.missing_evidence,
            })
        }
        Verdict::Routed => {
            ensure_move(from, Status::Routed, "route")?;
            let mut rungs = Vec::new();
            let mut planned = Vec::new();
            let mut case = CaseRouting {
                rule: decision.rule.clone(),
                tracks: Vec::new(),
                visited: Vec::new(),
            };
            for plan in decision.main.iter().chain(decision.parallel_tracks.iter()) {
                if let Some(start) = &plan.start {
                    let clocks = deadlines_hook::plan_rung(
                        conn,
                        ahead,
                        calendars,
                        tenant,
                        id,
                        &start.channel,
                        &plan.track,
                        start.sla_policy.as_deref(),
                        now,
                    )
                    .await?;
                    rungs.push(Rung {
                        channel: start.channel.clone(),
                        since: now,
                        track: plan.track.clone(),
                        deadlines: clocks.deadlines.clone(),
                    });
                    planned.push(clocks);
                    case.visited.push(start.channel.clone());
                }
                case.tracks.push(TrackState {
                    track: plan.track.clone(),
                    ladder: plan.ladder.clone(),
                    index: plan.start.as_ref().map(|s| s.index),
                });
            }
            let channel = decision
                .main
                .as_ref()
                .and_then(|m| m.start.as_ref())
                .map(|s| s.channel.clone())
                .unwrap_or_default();
            if from == Status::AwaitingEvidence {
                // Resuming rewrites the stored rungs' deadlines, between the state and the
                // event that announces it: one write after another.
                for clocks in &planned {
                    clocks.write(conn, id).await?;
                }
                db::set_state(conn, tenant, id, Status::Routed, &rungs, &[], now).await?;
                deadlines_hook::resume_all(conn, tenant, id, now).await?;
                store::save_case(conn, tenant, id, decision.routing_version, &case, now).await?;
                db::append_event(
                    conn,
                    tenant,
                    id,
                    events::ROUTED,
                    events::ACTOR_ROUTER,
                    routed_data(from, &decision),
                    now,
                )
                .await?;
            } else {
                // Everything this case writes is known now. The row is locked, so the
                // event's number is the row's last plus one.
                let current =
                    serde_json::to_value(&rungs).map_err(|e| CaseError::Corrupt(e.to_string()))?;
                let event = db::EventRow {
                    id: EventId::generate().to_string(),
                    tenant_id: tenant.to_string(),
                    complaint_id: id.to_string(),
                    sequence: locked.row.last_sequence + 1,
                    event_type: events::ROUTED.to_owned(),
                    actor: events::ACTOR_ROUTER.to_owned(),
                    data: routed_data(from, &decision),
                    at: now,
                };
                let facts = webhooks::complaint_events::ComplaintFacts {
                    external_ref: locked.row.external_ref.clone(),
                    status: Status::Routed.as_str().to_owned(),
                    current_rungs: current.clone(),
                    missing_evidence: Vec::new(),
                };
                writes.push(NewRoute {
                    complaint: id.clone(),
                    planned,
                    version: decision.routing_version,
                    case,
                    current,
                    event,
                    facts,
                });
            }
            Ok(RouteOutcome::Routed { channel })
        }
    }
}

/// The writes of a new case that routing sent to its start rungs, not yet made.
struct NewRoute {
    complaint: ComplaintId,
    planned: Vec<deadlines_hook::PlannedRung>,
    version: i32,
    case: CaseRouting,
    current: Value,
    event: db::EventRow,
    facts: webhooks::complaint_events::ComplaintFacts,
}

impl NewRoute {
    /// Writes the new cases of a batch in one round trip: the clocks of every case, their
    /// routing states, their complaints' states, their events and their webhook messages,
    /// each in one statement. The error names no case: any one fails the batch. Returns the
    /// messages leased until `lease_until` (see [`route_many`]), and whether any message
    /// was inserted unleased.
    async fn write_all(
        conn: &AsyncPgConnection,
        tenant: &TenantId,
        writes: &[NewRoute],
        subscribed: &[webhooks::store::Subscriber],
        now: DateTime<Utc>,
        lease_until: Option<DateTime<Utc>>,
    ) -> Result<(Vec<webhooks::store::ClaimedMessage>, bool), CaseError> {
        if writes.is_empty() {
            return Ok((Vec::new(), false));
        }
        // A new case: `submitted` until now, so no clocks to cancel.
        let planned: Vec<&deadlines_hook::PlannedRung> =
            writes.iter().flat_map(|w| w.planned.iter()).collect();
        let cases: Vec<_> = writes
            .iter()
            .map(|w| (&w.complaint, w.version, &w.case))
            .collect();
        let events: Vec<&db::EventRow> = writes.iter().map(|w| &w.event).collect();
        let states: Vec<_> = writes
            .iter()
            .map(|w| (&w.complaint, &w.current, w.event.sequence))
            .collect();
        let mut messages = Vec::new();
        for w in writes {
            messages.extend(webhooks::complaint_events::messages_known(
                &w.event, subscribed, &w.facts,
            )?);
        }
        let mut handed_over = Vec::new();
        if let Some(until) = lease_until {
            for m in &mut messages {
                let Some(endpoint) = subscribed.iter().find(|s| s.id == m.endpoint_id) else {
                    continue;
                };
                if endpoint.open_at(now) {
                    m.claimed_until = Some(until);
                    handed_over.push(m.handed_over(tenant, endpoint));
                }
            }
        }
        let (clocks, saved, states, logged, announced) = futures::join!(
            deadlines_hook::PlannedRung::write_first(conn, &planned),
            store::save_cases(conn, tenant, &cases, now),
            db::set_states_numbered(conn, tenant, Status::Routed, &states, now),
            db::insert_events(conn, &events),
            webhooks::store::insert_new(conn, tenant, &messages),
        );
        clocks?;
        saved?;
        states?;
        logged?;
        announced?;
        let unleased = messages.len() > handed_over.len();
        Ok((handed_over, unleased))
    }
}

fn routed_data(from: Status, d: &Decision) -> Value {
    let main = d.main.as_ref();
    let skipped: Vec<Value> = d
        .main
        .iter()
        .chain(d.parallel_tracks.iter())
        .flat_map(|t| {
            t.skipped.iter().map(move |s| {
                json!({"track": t.track, "index": s.index, "channel": s.channel, "kind": s.kind, "reason": s.reason})
            })
        })
        .collect();
    json!({
        "from": from,
        "status": Status::Routed,
        "channel": main.and_then(|m| m.start.as_ref()).map(|s| &s.channel),
        "track": MAIN,
        "routing_version": d.routing_version,
        "rule": d.rule,
        "ladder": main.map(|m| &m.ladder),
        "start_rung": main.and_then(|m| m.start.as_ref()),
        "parallel_tracks": d.parallel_tracks.iter().map(|t| json!({
            "track": t.track,
            "ladder": t.ladder,
            "channel": t.start.as_ref().map(|s| &s.channel),
            "rule": t.rule,
        })).collect::<Vec<_>>(),
        "skipped": skipped,
        "missing_evidence": d.missing_evidence,
        "why": d.why,
        "decision": d,
    })
}

async fn reject(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    from: Status,
    reason: &str,
    decision: Option<&Decision>,
    now: DateTime<Utc>,
) -> Result<(), CaseError> {
    ensure_move(from, Status::Rejected, "reject")?;
    db::set_state(conn, tenant, id, Status::Rejected, &[], &[], now).await?;
    let mut data = json!({
        "from": from,
        "status": Status::Rejected,
        "reason": reason,
    });
    if let Some(d) = decision {
        data["routing_version"] = json!(d.routing_version);
        data["why"] = json!(d.why);
        data["decision"] = json!(d);
    }
    db::append_event(
        conn,
        tenant,
        id,
        events::REJECTED,
        events::ACTOR_ROUTER,
        data,
        now,
    )
    .await?;
    Ok(())
}

fn ensure_move(from: Status, to: Status, action: &str) -> Result<(), CaseError> {
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(illegal(from, action))
    }
}

async fn start_rung(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    track: &str,
    plan: &RungPlan,
    now: DateTime<Utc>,
) -> QueryResult<Rung> {
    let deadlines = deadlines_hook::start_for_rung(
        conn,
        tenant,
        id,
        &plan.channel,
        track,
        plan.sla_policy.as_deref(),
        now,
    )
    .await?;
    Ok(Rung {
        channel: plan.channel.clone(),
        since: now,
        track: track.to_owned(),
        deadlines,
    })
}

/// What an escalation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EscalationOutcome {
    pub track: String,
    /// The rung the track left.
    pub from_channel: String,
    /// The rung it moved to; `None` when the track ran out of rungs (for the main track
    /// the case is then `unresolved`).
    pub to: Option<RungPlan>,
    /// The case's status afterwards.
    pub status: Status,
    /// Rungs passed over on the way, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Moves `track` of a case to its next eligible rung (skipping rungs whose conditions
/// fail today and channels the case or the complainant already tried), or ends the track
/// when none is left; the main track ending makes the case `unresolved`. Runs in the
/// caller's transaction and locks the complaint row. `reason` and `actor` go into the
/// `complaint.escalated` event (e.g. `"sla_breached:respond"`, `"system:scheduler"`).
pub async fn escalate(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    track: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<EscalationOutcome, CaseError> {
    let mut locked = lock(conn, tenant, complaint).await?;
    escalate_locked(
        conn,
        tenant,
        complaint,
        &mut locked,
        track,
        reason,
        actor,
        Map::new(),
        now,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn escalate_locked(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    locked: &mut Locked,
    track: &str,
    reason: &str,
    actor: &str,
    extra: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<EscalationOutcome, CaseError> {
    let status = locked.status;
    if !matches!(
        status,
        Status::Routed | Status::InProgress | Status::Responded
    ) {
        return Err(illegal(status, "escalate"));
    }
    let Some(active) = locked.rungs.iter().position(|r| r.track == track) else {
        if track == MAIN {
            return Err(illegal(status, "escalate"));
        }
        return Err(not_active(track, &locked.rungs));
    };
    let from_channel = locked.rungs[active].channel.clone();

    let mut case = store::load_case(conn, tenant, id).await?;
    let (next, skipped) = match &case {
        Some((version, state)) => {
            let routing = store::compiled(conn, tenant, Some(*version))
                .await?
                .ok_or_else(|| {
                    CaseError::Corrupt(format!(
                        "complaint {id} names routing version {version}, which is missing"
                    ))
                })?;
            match state.track(track) {
                Some(TrackState {
                    ladder,
                    index: Some(i),
                    ..
                }) => {
                    let input = locked
                        .row
                        .input()
                        .map_err(|e| CaseError::Corrupt(e.to_string()))?;
                    let today = store::tenant_today(conn, tenant, now).await?;
                    let facts = engine::facts_for(&routing, &input, today, &state.visited);
                    let c = engine::climb(&routing, ladder, i + 1, &facts);
                    (c.next, c.skipped)
                }
                _ => (None, Vec::new()),
            }
        }
        // A case routed before ladders existed has no ladder to climb.
        None => (None, Vec::new()),
    };

    // The rungs the track (or, when the ladder ran out, the case) leaves; their clocks are
    // cancelled once the new rungs are stored.
    let mut left: Vec<Rung> = vec![locked.rungs[active].clone()];
    let new_status;
    let outcome;
    match &next {
        Some(plan) => {
            new_status = if track == MAIN {
                Status::Routed
            } else {
                status
            };
            if track == MAIN {
                ensure_move(status, new_status, "escalate")?;
            }
            locked.rungs[active] = start_rung(conn, tenant, id, track, plan, now).await?;
            if let Some((_, state)) = &mut case {
                if let Some(t) = state.track_mut(track) {
                    t.index = Some(plan.index);
                }
                state.visited.push(plan.channel.clone());
            }
            outcome = "climbed";
        }
        None if track == MAIN => {
            new_status = Status::Unresolved;
            ensure_move(status, new_status, "escalate")?;
            left = std::mem::take(&mut locked.rungs);
            if let Some((_, state)) = &mut case {
                for t in &mut state.tracks {
                    t.index = None;
                }
            }
            outcome = "ladder_exhausted";
        }
        None => {
            new_status = status;
            locked.rungs.remove(active);
            if let Some((_, state)) = &mut case {
                if let Some(t) = state.track_mut(track) {
                    t.index = None;
                }
            }
            outcome = "track_ended";
        }
    }
    db::set_state(
        conn,
        tenant,
        id,
        new_status,
        &locked.rungs,
        &locked.row.missing_evidence,
        now,
    )
    .await?;
    stop_all(conn, tenant, id, &left, None, now).await?;
    if let Some((version, state)) = &case {
        store::save_case(conn, tenant, id, *version, state, now).await?;
    }
    let mut data = json!({
        "from": status,
        "status": new_status,
        "track": track,
        "channel": next.as_ref().map(|n| &n.channel),
        "from_channel": from_channel,
        "outcome": outcome,
        "reason": reason,
        "rung": next,
        "skipped": skipped,
        "routing_version": case.as_ref().map(|(v, _)| *v),
    });
    if let Some(obj) = data.as_object_mut() {
        obj.extend(extra);
    }
    db::append_event(conn, tenant, id, events::ESCALATED, actor, data, now).await?;
    locked.status = new_status;
    Ok(EscalationOutcome {
        track: track.to_owned(),
        from_channel,
        to: next,
        status: new_status,
        skipped,
    })
}

fn not_active(channel_or_track: &str, rungs: &[Rung]) -> CaseError {
    CaseError::Invalid(vec![FieldError::new(
        "/channel",
        format!(
            "`{channel_or_track}` is not an active rung of this complaint; active: {}",
            if rungs.is_empty() {
                "none".to_owned()
            } else {
                rungs
                    .iter()
                    .map(|r| format!("{} ({} track)", r.channel, r.track))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    )])
}

/// Stops the clocks of every rung; `met_channel`'s are stopped as met.
async fn stop_all(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    rungs: &[Rung],
    met_channel: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    for r in rungs {
        let met = met_channel == Some(r.channel.as_str());
        deadlines_hook::stop_for_rung(conn, tenant, id, &r.channel, &r.track, "all", met, now)
            .await?;
    }
    Ok(())
}

/// Ends every track of a case that reached a final status.
async fn close_tracks(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    now: DateTime<Utc>,
) -> Result<(), CaseError> {
    if let Some((version, mut state)) = store::load_case(conn, tenant, id).await? {
        for t in &mut state.tracks {
            t.index = None;
        }
        store::save_case(conn, tenant, id, version, &state, now).await?;
    }
    Ok(())
}

/// What an operator records about a channel (CONTRACT §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Respond,
    Resolve,
    Escalate,
    Reject,
}

impl Action {
    pub const NAMES: [&'static str; 5] =
        ["acknowledge", "respond", "resolve", "escalate", "reject"];

    pub fn parse(raw: &str) -> Option<Action> {
        Some(match raw {
            "acknowledge" => Action::Acknowledge,
            "respond" => Action::Respond,
            "resolve" => Action::Resolve,
            "escalate" => Action::Escalate,
            "reject" => Action::Reject,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Action::NAMES[self as usize]
    }
}

#[derive(Debug, Clone)]
pub struct Transition {
    pub action: Action,
    pub note: Option<String>,
    pub channel_reference: Option<String>,
    /// The active rung meant, when several tracks are active; the main track otherwise.
    pub channel: Option<String>,
}

impl Transition {
    /// Checks a request body: every problem by JSON pointer.
    pub fn from_json(body: &Value) -> Result<Transition, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("", "the body must be a JSON object")]);
        };
        for k in obj.keys() {
            if !["action", "note", "channel_reference", "channel"].contains(&k.as_str()) {
                errors.push(FieldError::new(format!("/{k}"), "is not a known field"));
            }
        }
        let action = match obj.get("action") {
            Some(Value::String(s)) => Action::parse(s).or_else(|| {
                errors.push(FieldError::new(
                    "/action",
                    format!("must be one of: {}", Action::NAMES.join(", ")),
                ));
                None
            }),
            None | Some(Value::Null) => {
                errors.push(FieldError::new("/action", "is required"));
                None
            }
            Some(_) => {
                errors.push(FieldError::new("/action", "must be a string"));
                None
            }
        };
        let note = optional_text(obj.get("note"), "/note", 4000, &mut errors);
        let channel_reference = optional_text(
            obj.get("channel_reference"),
            "/channel_reference",
            200,
            &mut errors,
        );
        let channel = optional_text(obj.get("channel"), "/channel", 64, &mut errors);
        if action == Some(Action::Reject) && note.is_none() {
            errors.push(FieldError::new(
                "/note",
                "is required for `reject`: give the reason",
            ));
        }
        match action {
            Some(action) if errors.is_empty() => Ok(Transition {
                action,
                note: note.map(|n| mask_pans(&n)),
                channel_reference,
                channel,
            }),
            _ => Err(errors),
        }
    }
}

fn optional_text(
    v: Option<&Value>,
    pointer: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(FieldError::new(pointer, "must not be empty"));
            None
        }
        Some(Value::String(s)) if s.trim().chars().count() > max => {
            errors.push(FieldError::new(
                pointer,
                format!("must be at most {max} characters"),
            ));
            None
        }
        Some(Value::String(s)) if has_control(s) => {
            errors.push(FieldError::new(
                pointer,
                "must not contain control characters",
            ));
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(FieldError::new(pointer, "must be a string"));
            None
        }
    }
}

/// Control characters other than tab and line breaks, which intake refuses too (and
/// Postgres cannot store NUL).
pub fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
}

/// A clock stop to make once the new state is stored: `(channel, track, which, met)`.
type Stop = (String, String, &'static str, bool);

async fn run_stops(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    stops: &[Stop],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    for (channel, track, which, met) in stops {
        deadlines_hook::stop_for_rung(conn, tenant, id, channel, track, which, *met, now).await?;
    }
    Ok(())
}

fn stops_for_all(rungs: &[Rung], met_channel: Option<&str>) -> Vec<Stop> {
    rungs
        .iter()
        .map(|r| {
            (
                r.channel.clone(),
                r.track.clone(),
                "all",
                met_channel == Some(r.channel.as_str()),
            )
        })
        .collect()
}

fn escalation_extra(t: &Transition) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("action".into(), json!(t.action.as_str()));
    extra.insert("note".into(), json!(t.note));
    extra.insert("channel_reference".into(), json!(t.channel_reference));
    extra
}

/// Records what a channel did. Main-track actions move the case through the status
/// machine; on a parallel track, `acknowledge` and `respond` are recorded without a status
/// change, `resolve` and `reject` end the track and `escalate` climbs its ladder.
pub async fn transition(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    t: &Transition,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Status, CaseError> {
    let mut locked = lock(conn, tenant, id).await?;
    let status = locked.status;
    let verb = t.action.as_str();
    let rung_index = match &t.channel {
        Some(c) => match locked.rungs.iter().position(|r| &r.channel == c) {
            Some(i) => Some(i),
            // A closed case has no rungs: the status is the problem, not the channel.
            None if status.is_final() => return Err(illegal(status, verb)),
            None => return Err(not_active(c, &locked.rungs)),
        },
        None => locked.rungs.iter().position(|r| r.track == MAIN),
    };
    let track = rung_index
        .map(|i| locked.rungs[i].track.clone())
        .unwrap_or_else(|| MAIN.to_owned());
    let channel = rung_index.map(|i| locked.rungs[i].channel.clone());
    let reason = t
        .note
        .clone()
        .unwrap_or_else(|| "escalated by an operator".into());

    if t.action == Action::Escalate {
        let outcome = escalate_locked(
            conn,
            tenant,
            id,
            &mut locked,
            &track,
            &reason,
            actor,
            escalation_extra(t),
            now,
        )
        .await?;
        return Ok(outcome.status);
    }

    let mut data = json!({
        "from": status,
        "action": verb,
        "track": track,
        "channel": channel,
        "note": t.note,
        "channel_reference": t.channel_reference,
    });
    let (target, event, stops): (Status, &str, Vec<Stop>) = if track != MAIN {
        // A parallel rung: the case's status does not move.
        let (Some(i), Some(channel)) = (rung_index, channel.clone()) else {
            return Err(illegal(status, verb));
        };
        if status.is_final() {
            return Err(illegal(status, verb));
        }
        match t.action {
            Action::Acknowledge => (
                status,
                events::ACKNOWLEDGED,
                vec![(channel, track.clone(), "acknowledge", true)],
            ),
            Action::Respond => (
                status,
                events::RESPONDED,
                vec![(channel, track.clone(), "all", true)],
            ),
            Action::Resolve | Action::Reject | Action::Escalate => {
                let met = t.action == Action::Resolve;
                locked.rungs.remove(i);
                if let Some((version, mut state)) = store::load_case(conn, tenant, id).await? {
                    if let Some(ts) = state.track_mut(&track) {
                        ts.index = None;
                    }
                    store::save_case(conn, tenant, id, version, &state, now).await?;
                }
                (
                    status,
                    events::TRACK_CLOSED,
                    vec![(channel, track.clone(), "all", met)],
                )
            }
        }
    } else {
        let (target, event) = match t.action {
            Action::Acknowledge => (Status::InProgress, events::ACKNOWLEDGED),
            Action::Respond => (Status::Responded, events::RESPONDED),
            Action::Resolve => (Status::Resolved, events::RESOLVED),
            Action::Reject | Action::Escalate => (Status::Rejected, events::REJECTED),
        };
        ensure_move(status, target, verb)?;
        let stops = match (t.action, &channel) {
            (Action::Acknowledge, Some(c)) => {
                vec![(c.clone(), MAIN.to_owned(), "acknowledge", true)]
            }
            (Action::Respond, Some(c)) => vec![(c.clone(), MAIN.to_owned(), "all", true)],
            // Acknowledging and answering need a rung to be acknowledged or answered by.
            (Action::Acknowledge | Action::Respond, None) => return Err(illegal(status, verb)),
            (Action::Resolve, _) => {
                let stops = stops_for_all(&locked.rungs, channel.as_deref());
                locked.rungs.clear();
                close_tracks(conn, tenant, id, now).await?;
                stops
            }
            _ => {
                let stops = stops_for_all(&locked.rungs, None);
                locked.rungs.clear();
                close_tracks(conn, tenant, id, now).await?;
                data["reason"] = json!(t.note);
                stops
            }
        };
        (target, event, stops)
    };
    db::set_state(
        conn,
        tenant,
        id,
        target,
        &locked.rungs,
        &locked.row.missing_evidence,
        now,
    )
    .await?;
    run_stops(conn, tenant, id, &stops, now).await?;
    data["status"] = json!(target);
    db::append_event(conn, tenant, id, event, actor, data, now).await?;
    Ok(target)
}

/// The consumer's answer: satisfied resolves the case, not satisfied escalates its main
/// track to the next rung.
pub async fn feedback(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    satisfied: bool,
    comment: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Status, CaseError> {
    let mut locked = lock(conn, tenant, id).await?;
    let status = locked.status;
    if !matches!(
        status,
        Status::Routed | Status::InProgress | Status::Responded
    ) {
        return Err(illegal(status, "give feedback on"));
    }
    let comment = comment.map(mask_pans);
    let feedback = json!({"satisfied": satisfied, "comment": comment});
    if !satisfied {
        let mut extra = Map::new();
        extra.insert("feedback".into(), feedback);
        let outcome = escalate_locked(
            conn,
            tenant,
            id,
            &mut locked,
            MAIN,
            "the consumer is not satisfied with the answer",
            actor,
            extra,
            now,
        )
        .await?;
        return Ok(outcome.status);
    }
    ensure_move(status, Status::Resolved, "resolve")?;
    let channel = locked
        .rungs
        .iter()
        .find(|r| r.track == MAIN)
        .map(|r| r.channel.clone());
    let stops = stops_for_all(&locked.rungs, channel.as_deref());
    close_tracks(conn, tenant, id, now).await?;
    db::set_state(
        conn,
        tenant,
        id,
        Status::Resolved,
        &[],
        &locked.row.missing_evidence,
        now,
    )
    .await?;
    run_stops(conn, tenant, id, &stops, now).await?;
    db::append_event(
        conn,
        tenant,
        id,
        events::RESOLVED,
        actor,
        json!({
            "from": status,
            "status": Status::Resolved,
            "track": MAIN,
            "channel": channel,
            "feedback": feedback,
        }),
        now,
    )
    .await?;
    Ok(Status::Resolved)
}

/// The partner withdraws the complaint.
pub async fn withdraw(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    reason: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Status, CaseError> {
    let locked = lock(conn, tenant, id).await?;
    let status = locked.status;
    ensure_move(status, Status::Withdrawn, "withdraw")?;
    let stops = stops_for_all(&locked.rungs, None);
    close_tracks(conn, tenant, id, now).await?;
    db::set_state(
        conn,
        tenant,
        id,
        Status::Withdrawn,
        &[],
        &locked.row.missing_evidence,
        now,
    )
    .await?;
    run_stops(conn, tenant, id, &stops, now).await?;
    db::append_event(
        conn,
        tenant,
        id,
        events::WITHDRAWN,
        actor,
        json!({
            "from": status,
            "status": Status::Withdrawn,
            "reason": reason.map(mask_pans),
        }),
        now,
    )
    .await?;
    Ok(Status::Withdrawn)
}

/// At most this many evidence items per complaint, as at intake.
pub const MAX_EVIDENCE: usize = 50;

/// Checks the body of `POST /v1/complaints/{id}/evidence`: `{"evidence": [{"kind",
/// "description", "sha256"}, …]}`.
pub fn evidence_from_json(body: &Value) -> Result<Vec<Evidence>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    for k in obj.keys() {
        if k != "evidence" {
            errors.push(FieldError::new(format!("/{k}"), "is not a known field"));
        }
    }
    let items = match obj.get("evidence") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_EVIDENCE => {
            items.as_slice()
        }
        Some(Value::Array(_)) => {
            errors.push(FieldError::new(
                "/evidence",
                format!("must have 1 to {MAX_EVIDENCE} items"),
            ));
            &[]
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::new("/evidence", "is required"));
            &[]
        }
        Some(_) => {
            errors.push(FieldError::new("/evidence", "must be an array"));
            &[]
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("/evidence/{i}");
        let Some(m) = item.as_object() else {
            errors.push(FieldError::new(p, "must be an object"));
            continue;
        };
        for k in m.keys() {
            if !["kind", "description", "sha256"].contains(&k.as_str()) {
                errors.push(FieldError::new(format!("{p}/{k}"), "is not a known field"));
            }
        }
        let kind = match m.get("kind") {
            Some(Value::String(k)) if EVIDENCE_KINDS.contains(&k.as_str()) => Some(k.clone()),
            None | Some(Value::Null) => {
                errors.push(FieldError::new(format!("{p}/kind"), "is required"));
                None
            }
            _ => {
                errors.push(FieldError::new(
                    format!("{p}/kind"),
                    format!("must be one of: {}", EVIDENCE_KINDS.join(", ")),
                ));
                None
            }
        };
        let description = optional_text(
            m.get("description"),
            &format!("{p}/description"),
            500,
            &mut errors,
        );
        let sha256 = optional_text(m.get("sha256"), &format!("{p}/sha256"), 64, &mut errors);
        if let Some(h) = &sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                errors.push(FieldError::new(
                    format!("{p}/sha256"),
                    "must be 64 hexadecimal characters",
                ));
            }
        }
        if let Some(kind) = kind {
            out.push(Evidence {
                kind,
                description: description.map(|d| mask_pans(&d)),
                sha256: sha256.map(|h| h.to_ascii_lowercase()),
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Adds evidence to an open case. A case waiting for evidence is handed back to the
/// router (through the outbox, like a new complaint), which routes it if nothing required
/// is missing any more. Returns the case's status and whether routing was queued.
pub async fn add_evidence(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    items: &[Evidence],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(Status, bool), CaseError> {
    let locked = lock(conn, tenant, id).await?;
    let status = locked.status;
    if status.is_final() {
        return Err(illegal(status, "add evidence to"));
    }
    let mut input = locked
        .row
        .input()
        .map_err(|e| CaseError::Corrupt(e.to_string()))?;
    if input.evidence.len() + items.len() > MAX_EVIDENCE {
        return Err(CaseError::Invalid(vec![FieldError::new(
            "/evidence",
            format!(
                "a complaint holds at most {MAX_EVIDENCE} evidence items; it has {}",
                input.evidence.len()
            ),
        )]));
    }
    input.evidence.extend(items.iter().cloned());
    let details = serde_json::to_value(&input)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::update(
        complaints::table
            .filter(complaints::id.eq(id.as_str()))
            .filter(complaints::tenant_id.eq(tenant.as_str())),
    )
    .set((
        complaints::details.eq(details),
        complaints::updated_at.eq(now),
    ))
    .execute(conn)
    .await?;
    let resumes = status == Status::AwaitingEvidence;
    db::append_event(
        conn,
        tenant,
        id,
        events::EVIDENCE_ADDED,
        actor,
        json!({
            "status": status,
            "kinds": items.iter().map(|e| &e.kind).collect::<Vec<_>>(),
            "evidence": items,
            "routing_requested": resumes,
        }),
        now,
    )
    .await?;
    if resumes {
        outbox::enqueue(
            conn,
            &QueueMessage {
                message_id: uuid::Uuid::now_v7(),
                message_type: events::EVIDENCE_ADDED.to_owned(),
                tenant_id: tenant.to_string(),
                complaint_id: id.to_string(),
                occurred_at: now,
            },
        )
        .await?;
    }
    Ok((status, resumes))
}
