//! The hub's access-token signing keys (hub-wide, no tenant). See the migration
//! `2026-11-21-000007_key_rotation` for what a row means and what is encrypted at rest.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::schema::signing_keys;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    /// `None` once erased (the key left the JWKS for good).
    pub private_pem: Option<String>,
    pub public_jwk: Value,
    pub activates_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Every key, oldest activation first.
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .order((signing_keys::activates_at.asc(), signing_keys::kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)
        .await
}

/// Inserts a key; `Ok(false)` if its kid is already there.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    kid: &str,
    algorithm: &str,
    private_pem: &str,
    public_jwk: &Value,
    activates_at: DateTime<Utc>,
    created_by: &str,
) -> QueryResult<bool> {
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(kid),
            signing_keys::algorithm.eq(algorithm),
            signing_keys::private_pem.eq(Some(private_pem)),
            signing_keys::public_jwk.eq(public_jwk),
            signing_keys::activates_at.eq(activates_at),
            signing_keys::created_by.eq(created_by),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Erases the private half of the named keys (keys that will never sign or be published
/// again).
pub async fn erase_private(conn: &mut AsyncPgConnection, kids: &[String]) -> QueryResult<usize> {
    if kids.is_empty() {
        return Ok(0);
    }
    diesel::update(signing_keys::table.filter(signing_keys::kid.eq_any(kids)))
        .set(signing_keys::private_pem.eq(None::<String>))
        .execute(conn)
        .await
}

/// Serialises rotations across processes for the rest of the caller's transaction.
pub async fn lock_for_rotation(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    // An arbitrary constant naming "signing-key rotation"; transaction-scoped.
    diesel::sql_query("SELECT pg_advisory_xact_lock(7007001)")
        .execute(conn)
        .await
        .map(|_| ())
}
