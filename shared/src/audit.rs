//! The audit log: who did what, for admin actions. Written in the transaction of the action
//! it records, so an action and its record commit together or not at all.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;

use crate::{db::schema::audit_log, ids::TenantId};

/// One action to record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// `None` for hub-wide actions (creating a tenant, rotating the signing key).
    pub tenant: Option<&'a TenantId>,
    /// `client:<id>` for an API caller, `cli:<os user>` for an admin command.
    pub actor: &'a str,
    /// A dotted verb, e.g. `client.secret_rotated`, `complainant.erased`.
    pub action: &'a str,
    /// What it was done to (a client id, a complaint id, a key id).
    pub target: Option<&'a str>,
    /// Anything else worth keeping; never personal data or secrets.
    pub details: Value,
}

/// Records `entry` in the caller's transaction.
pub async fn record(conn: &mut AsyncPgConnection, entry: Entry<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::tenant_id.eq(entry.tenant.map(TenantId::as_str)),
            audit_log::actor.eq(entry.actor),
            audit_log::action.eq(entry.action),
            audit_log::target.eq(entry.target),
            audit_log::details.eq(entry.details),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A recorded action, as the audit API shows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = audit_log)]
pub struct Recorded {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: Value,
}

/// The tenant's audit entries, newest first, before `before_id` when paging.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    before_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Recorded>> {
    let mut query = audit_log::table
        .filter(audit_log::tenant_id.eq(tenant.as_str()))
        .order(audit_log::id.desc())
        .limit(limit)
        .select(Recorded::as_select())
        .into_boxed();
    if let Some(before) = before_id {
        query = query.filter(audit_log::id.lt(before));
    }
    query.load(conn).await
}
