//! The router: applies the queue messages that ask for a routing decision. A new complaint
//! (`complaint.submitted`) and evidence added to a case that waits for it
//! (`complaint.evidence_added`) both run the tenant's routing (see
//! `redress_shared::routing`): the case goes to its start rungs, waits for evidence, or is
//! rejected, with the explanation in its history. The decision, the event and the message
//! id are committed in one transaction, so a redelivered message changes nothing.
//!
//! [`escalate`] (one function for operator transitions, unsatisfied feedback and breached
//! clocks) lives in `redress_shared::routing::cases` because the API needs it too; it is
//! re-exported here for the worker's scheduler.

use chrono::Utc;
use redress_shared::{
    db::{self, PgPool},
    domain::events::{self, QueueMessage},
    ids::{ComplaintId, TenantId},
    routing::cases::{self, BatchError, RouteOutcome, RouteRequest},
    webhooks::store::{self, ClaimedMessage},
};

pub use redress_shared::routing::cases::{escalate, CaseError, EscalationOutcome};

/// Name under which the router records the messages it applied.
pub const CONSUMER: &str = "router";

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Routed {
        channel: String,
    },
    /// Required evidence is missing; the case waits for it.
    AwaitingEvidence {
        missing: Vec<String>,
    },
    Rejected,
    /// The message was applied before (a redelivery); nothing changed.
    Duplicate,
    /// The complaint has moved on since (withdrawn, or routed by another message).
    NotApplicable {
        status: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("database unavailable: {0}")]
    Transient(db::DbError),
    #[error("{0}")]
    Permanent(String),
}

impl From<db::DbError> for ProcessError {
    fn from(e: db::DbError) -> Self {
        if e.is_transient() {
            ProcessError::Transient(e)
        } else {
            ProcessError::Permanent(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for ProcessError {
    fn from(e: diesel::result::Error) -> Self {
        db::DbError::from(e).into()
    }
}

/// Database failures keep their transient-or-not nature; everything else (a complaint of
/// another tenant, a move the status machine forbids, corrupt data) will fail the same way
/// on every attempt.
impl From<CaseError> for ProcessError {
    fn from(e: CaseError) -> Self {
        match e {
            CaseError::Db(e) => e.into(),
            other => ProcessError::Permanent(other.to_string()),
        }
    }
}

/// Applies one message exactly once: the message id is recorded in the same transaction as
/// the routing decision (`cases::route_many`), so a redelivered copy finds it and changes
/// nothing. A message of a type the router does not handle is refused before anything is
/// recorded, and the transaction rolls back.
pub async fn process(pool: &PgPool, message: &QueueMessage) -> Result<Outcome, ProcessError> {
    let mut outcomes = process_batch(pool, std::slice::from_ref(message)).await?;
    outcomes
        .pop()
        .ok_or_else(|| ProcessError::Permanent("routing gave no outcome".into()))
}

/// Whether the router handles messages of this type.
pub fn handles(message_type: &str) -> bool {
    // Both ask the same question of a case that waits to be routed; the routing decides
    // whether it still waits.
    matches!(message_type, events::SUBMITTED | events::EVIDENCE_ADDED)
}

/// Applies several messages of one tenant, each about a different complaint, in one
/// transaction (`cases::route_many`): a commit and a few round trips for them all. All or
/// nothing: on an error none is applied, and the caller can apply them one by one to learn
/// which failed and why.
pub async fn process_batch(
    pool: &PgPool,
    messages: &[QueueMessage],
) -> Result<Vec<Outcome>, ProcessError> {
    Ok(process_batch_handing_over(pool, messages, None)
        .await?
        .outcomes)
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// One per message, in order.
    pub outcomes: Vec<Outcome>,
    /// Webhook messages inserted leased, for this process's dispatcher once committed.
    pub handed_over: Vec<ClaimedMessage>,
    /// Webhook messages were (or may have been) queued that only a claim sends.
    pub queued_for_claim: bool,
}

/// The same, inserting the new cases' webhook messages leased for `lease` (when given) and
/// returning them for the caller's dispatcher to send once the transaction has committed
/// (`cases::route_many`).
pub async fn process_batch_handing_over(
    pool: &PgPool,
    messages: &[QueueMessage],
    lease: Option<std::time::Duration>,
) -> Result<BatchOutcome, ProcessError> {
    let Some(first) = messages.first() else {
        return Ok(BatchOutcome::default());
    };
    let tenant =
        TenantId::parse(&first.tenant_id).map_err(|e| ProcessError::Permanent(e.to_string()))?;
    let mut requests = Vec::with_capacity(messages.len());
    for message in messages {
        if message.tenant_id != first.tenant_id {
            return Err(ProcessError::Permanent(
                "a routing batch holds the messages of one tenant".into(),
            ));
        }
        if !handles(&message.message_type) {
            return Err(ProcessError::Permanent(format!(
                "the router does not handle `{}` messages",
                message.message_type
            )));
        }
        requests.push(RouteRequest {
            complaint: ComplaintId::parse(&message.complaint_id)
                .map_err(|e| ProcessError::Permanent(e.to_string()))?,
            message_id: message.message_id,
        });
    }
    let mut conn = pool.get().await.map_err(db::DbError::from)?;
    // The tenant comes from the messages, and is set before anything is read: with
    // row-level security a message naming the wrong tenant finds no complaint at all.
    let now = Utc::now();
    let lease_until = lease.map(|lease| store::lease_end(now, lease));
    let routed = db::tenant::transaction(&mut conn, &tenant, async |conn| {
        cases::route_many(conn, &tenant, &requests, now, CONSUMER, lease_until)
            .await
            .map_err(|BatchError { index, error }| match (error, index) {
                (CaseError::NotFound, Some(i)) => ProcessError::Permanent(format!(
                    "complaint {} not found in tenant {tenant}",
                    requests[i].complaint
                )),
                (other, _) => other.into(),
            })
    })
    .await?;
    Ok(BatchOutcome {
        outcomes: routed.outcomes.into_iter().map(outcome_of).collect(),
        handed_over: routed.handed_over,
        queued_for_claim: routed.queued_for_claim,
    })
}

fn outcome_of(outcome: Option<RouteOutcome>) -> Outcome {
    match outcome {
        None => Outcome::Duplicate,
        Some(RouteOutcome::Routed { channel }) => Outcome::Routed { channel },
        Some(RouteOutcome::AwaitingEvidence { missing }) => Outcome::AwaitingEvidence { missing },
        Some(RouteOutcome::Rejected { .. }) => Outcome::Rejected,
        Some(RouteOutcome::NotApplicable { status }) => Outcome::NotApplicable {
            status: status.to_string(),
        },
    }
}
