//! Event types of a complaint's history and the message that tells the worker about them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const SUBMITTED: &str = "complaint.submitted";
pub const ROUTED: &str = "complaint.routed";
pub const STATUS_CHANGED: &str = "complaint.status_changed";
pub const REJECTED: &str = "complaint.rejected";
/// Required evidence is missing; `data.missing_evidence` names the kinds.
pub const EVIDENCE_REQUESTED: &str = "complaint.evidence_requested";
/// The partner added evidence (`POST /v1/complaints/{id}/evidence`). Also the queue
/// message that wakes the router for a case waiting for evidence.
pub const EVIDENCE_ADDED: &str = "complaint.evidence_added";
/// A track moved to its next rung, ended, or (main track) ran out of rungs.
pub const ESCALATED: &str = "complaint.escalated";
pub const ACKNOWLEDGED: &str = "complaint.acknowledged";
pub const RESPONDED: &str = "complaint.responded";
pub const RESOLVED: &str = "complaint.resolved";
pub const WITHDRAWN: &str = "complaint.withdrawn";
/// An operator closed one parallel track (its channel dealt with the case or refused it).
pub const TRACK_CLOSED: &str = "complaint.track_closed";

/// Who caused an event: the partner client, an operator client, or the hub itself.
pub fn actor_client(client_id: &str) -> String {
    format!("client:{client_id}")
}
pub const ACTOR_ROUTER: &str = "system:router";

/// What travels through RabbitMQ: a pointer to a change already committed in Postgres, never
/// the change itself, so a consumer always reads the current truth. `message_id` is stable
/// across republishes and is what consumers deduplicate on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub message_id: Uuid,
    #[serde(rename = "type")]
    pub message_type: String,
    pub tenant_id: String,
    pub complaint_id: String,
    pub occurred_at: DateTime<Utc>,
}
