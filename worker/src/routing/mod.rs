//! Where a complaint goes. Today: the tenant's category → channel table (category `*` is the
//! tenant's fallback). The decision and the reason for it are recorded in the complaint's
//! history, in the same transaction that records the message as processed.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use redress_shared::{
    db::{self, complaints, schema::processed_messages, tenants, PgPool},
    domain::{
        events::{self, QueueMessage},
        Rung, Status,
    },
    ids::{ComplaintId, TenantId},
};
use serde_json::json;

/// Name under which the router records the messages it applied.
pub const CONSUMER: &str = "router";

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Routed { channel: String },
    Rejected,
    /// The message was applied before (a redelivery); nothing changed.
    Duplicate,
    /// The complaint has moved on since (withdrawn, or routed by another message).
    NotApplicable { status: String },
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

/// Applies one message exactly once: the message id is recorded in the same transaction as
/// the routing decision, so a redelivered copy finds it and changes nothing.
pub async fn process(pool: &PgPool, message: &QueueMessage) -> Result<Outcome, ProcessError> {
    let tenant = TenantId::parse(&message.tenant_id).map_err(|e| ProcessError::Permanent(e.to_string()))?;
    let complaint = ComplaintId::parse(&message.complaint_id).map_err(|e| ProcessError::Permanent(e.to_string()))?;
    let mut conn = pool.get().await.map_err(db::DbError::from)?;
    conn.transaction(async |conn| {
        let first_time = diesel::insert_into(processed_messages::table)
            .values((
                processed_messages::consumer.eq(CONSUMER),
                processed_messages::message_id.eq(message.message_id),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if first_time == 0 {
            return Ok(Outcome::Duplicate);
        }
        match message.message_type.as_str() {
            events::SUBMITTED => route(conn, &tenant, &complaint).await,
            other => Err(ProcessError::Permanent(format!("the router does not handle `{other}` messages"))),
        }
    })
    .await
}

async fn route(conn: &mut AsyncPgConnection, tenant: &TenantId, id: &ComplaintId) -> Result<Outcome, ProcessError> {
    let now = Utc::now();
    let row = complaints::find_for_update(conn, tenant, id)
        .await?
        .ok_or_else(|| ProcessError::Permanent(format!("complaint {id} not found in tenant {tenant}")))?;
    let status = row.status().map_err(|e| ProcessError::Permanent(e.to_string()))?;
    if status != Status::Submitted {
        return Ok(Outcome::NotApplicable {
            status: status.to_string(),
        });
    }
    let routes = tenants::category_routes(conn, tenant).await?;
    let exact = routes.iter().find(|(c, _)| c == &row.category);
    let chosen = exact.or_else(|| routes.iter().find(|(c, _)| c == "*"));
    match chosen {
        Some((matched, channel)) => {
            let rung = Rung {
                channel: channel.clone(),
                since: now,
                track: "main".to_owned(),
                deadlines: Vec::new(),
            };
            complaints::set_state(conn, tenant, id, Status::Routed, std::slice::from_ref(&rung), &[], now).await?;
            let why = if exact.is_some() {
                format!(
                    "category `{}` is routed to `{channel}` by the tenant's category table",
                    row.category
                )
            } else {
                format!(
                    "category `{}` has no row in the tenant's category table; the tenant's fallback (`{matched}`) routes it to `{channel}`",
                    row.category
                )
            };
            complaints::append_event(
                conn,
                tenant,
                id,
                events::ROUTED,
                events::ACTOR_ROUTER,
                json!({
                    "from": Status::Submitted,
                    "status": Status::Routed,
                    "channel": channel,
                    "rule": {"kind": "category_table", "category": matched},
                    "why": why,
                }),
                now,
            )
            .await?;
            Ok(Outcome::Routed { channel: channel.clone() })
        }
        None => {
            complaints::set_state(conn, tenant, id, Status::Rejected, &[], &[], now).await?;
            complaints::append_event(
                conn,
                tenant,
                id,
                events::REJECTED,
                events::ACTOR_ROUTER,
                json!({
                    "from": Status::Submitted,
                    "status": Status::Rejected,
                    "reason": format!("no channel of this hub handles category `{}`", row.category),
                }),
                now,
            )
            .await?;
            Ok(Outcome::Rejected)
        }
    }
}
