//! Event types of a complaint's history and the message that tells the worker about them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const SUBMITTED: &str = "complaint.submitted";
pub const ROUTED: &str = "complaint.routed";
pub const STATUS_CHANGED: &str = "complaint.status_changed";
pub const REJECTED: &str = "complaint.rejected";

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
