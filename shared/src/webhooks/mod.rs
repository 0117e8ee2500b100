//! Webhooks partners can trust (CONTRACT §5, Standard Webhooks): tenant endpoints with
//! `whsec_` secrets and overlapping rotation, one message per event and subscribed endpoint
//! with a stable `webhook-id`, signed attempts on a retry schedule kept in Postgres, a
//! delivery log, and an SSRF policy applied at registration and at every send.
//!
//! - [`model`]: event types, request bodies and their validation, views.
//! - [`signing`]: signatures and secrets.
//! - [`ssrf`]: which URLs and addresses may be called; the checking resolver.
//! - [`sender`]: one HTTP attempt and its outcome.
//! - [`schedule`]: retry timing, `Retry-After`, the disable rule.
//! - [`store`]: endpoints, messages and attempts in Postgres.
//! - [`complaint_events`]: which webhooks a complaint's history event produces.
//!
//! The dispatcher loop that ties these together runs in the worker.

pub mod complaint_events;
pub mod model;
pub mod schedule;
pub mod sender;
pub mod signing;
pub mod ssrf;
pub mod store;
pub mod testing;

/// Diesel's view of the webhook tables. The file sits with the other schema files; it is
/// declared here so webhook work does not edit `db/mod.rs`.
#[path = "../db/webhook_schema.rs"]
pub mod schema;

pub use model::WebhookMessageId;
