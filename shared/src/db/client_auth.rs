//! What authenticates an OAuth client: its secret (and, during a rotation, its previous
//! secret), the public keys it registered for `private_key_jwt`, and the `jti`s of the
//! assertions it already used.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::schema::{client_assertion_jtis, client_keys, clients};
use crate::ids::{ClientId, TenantId};

/// A client as the token endpoint needs it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct ClientSecrets {
    pub id: String,
    pub tenant_id: String,
    pub secret_hash: String,
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

impl ClientSecrets {
    /// The previous secret, while its overlap lasts.
    pub fn previous_hash_at(&self, now: DateTime<Utc>) -> Option<&str> {
        match (&self.previous_secret_hash, self.previous_secret_expires_at) {
            (Some(hash), Some(until)) if until > now => Some(hash),
            _ => None,
        }
    }
}

/// A public key registered for `private_key_jwt`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = client_keys)]
pub struct ClientKeyRow {
    pub client_id: String,
    pub kid: String,
    pub alg: String,
    pub jwk: Value,
    pub created_at: DateTime<Utc>,
}

/// Everything that can authenticate one client.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client: ClientSecrets,
    /// Empty unless asked for.
    pub keys: Vec<ClientKeyRow>,
}

/// THE lookup of the token endpoint, by client id alone: the tenant is not known until the
/// client row is found. Kept in this one function on purpose: under row-level security it
/// is the one read that must cross tenants (through a narrow SECURITY DEFINER path), and it
/// returns only what authenticating the client needs. Disabled clients are not found.
pub async fn find_for_authentication(
    conn: &mut AsyncPgConnection,
    id: &ClientId,
    with_keys: bool,
) -> QueryResult<Option<ClientCredentials>> {
    // Only the tenant is looked up across tenants; everything else is read in a
    // transaction set to it, so row-level security holds for secret hashes and keys too.
    let Some(tenant) = super::tenants::tenant_of_client(conn, id).await? else {
        return Ok(None);
    };
    super::tenant::transaction(conn, &tenant, async |conn| {
        let Some(client) = clients::table
            .find(id.as_str())
            .filter(clients::tenant_id.eq(tenant.as_str()))
            .filter(clients::disabled_at.is_null())
            .select(ClientSecrets::as_select())
            .first(conn)
            .await
            .optional()?
        else {
            return Ok(None);
        };
        let keys = if with_keys {
            client_keys::table
                .filter(client_keys::client_id.eq(id.as_str()))
                .filter(client_keys::tenant_id.eq(&client.tenant_id))
                .order(client_keys::created_at.asc())
                .select(ClientKeyRow::as_select())
                .load(conn)
                .await?
        } else {
            Vec::new()
        };
        Ok(Some(ClientCredentials { client, keys }))
    })
    .await
}

/// The client of `tenant`, with its scopes (for the administration routes).
pub async fn find_in_tenant(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ClientId,
) -> QueryResult<Option<ClientSecrets>> {
    clients::table
        .find(id.as_str())
        .filter(clients::tenant_id.eq(tenant.as_str()))
        .filter(clients::disabled_at.is_null())
        .select(ClientSecrets::as_select())
        .first(conn)
        .await
        .optional()
}

/// Makes `new_hash` the client's secret; the secret it replaces keeps working until
/// `previous_expires_at` (a previous secret still in its overlap is dropped: two rotations
/// in a row leave the last two secrets working, never three). `None` if no such client.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ClientId,
    new_hash: &str,
    previous_expires_at: DateTime<Utc>,
) -> QueryResult<Option<()>> {
    let n = diesel::update(
        clients::table
            .find(id.as_str())
            .filter(clients::tenant_id.eq(tenant.as_str()))
            .filter(clients::disabled_at.is_null()),
    )
    .set((
        clients::previous_secret_hash.eq(clients::secret_hash.nullable()),
        clients::previous_secret_expires_at.eq(Some(previous_expires_at)),
        clients::secret_hash.eq(new_hash),
    ))
    .execute(conn)
    .await?;
    Ok((n == 1).then_some(()))
}

/// Sets a client's scopes (the `hub-admin grant|revoke` command).
pub async fn set_scopes(
    conn: &mut AsyncPgConnection,
    id: &ClientId,
    scopes: &[String],
) -> QueryResult<usize> {
    diesel::update(clients::table.find(id.as_str()))
        .set(clients::scopes.eq(scopes))
        .execute(conn)
        .await
}

pub async fn list_keys(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
) -> QueryResult<Vec<ClientKeyRow>> {
    client_keys::table
        .filter(client_keys::tenant_id.eq(tenant.as_str()))
        .filter(client_keys::client_id.eq(client.as_str()))
        .order(client_keys::created_at.asc())
        .select(ClientKeyRow::as_select())
        .load(conn)
        .await
}

/// Adds public keys; `Ok(false)` (and nothing added) if one of the kids is already there.
pub async fn add_keys(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    keys: &[(String, String, Value)],
) -> QueryResult<bool> {
    let rows: Vec<_> = keys
        .iter()
        .map(|(kid, alg, jwk)| {
            (
                client_keys::tenant_id.eq(tenant.as_str()),
                client_keys::client_id.eq(client.as_str()),
                client_keys::kid.eq(kid),
                client_keys::alg.eq(alg),
                client_keys::jwk.eq(jwk),
            )
        })
        .collect();
    let n = diesel::insert_into(client_keys::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == keys.len())
}

pub async fn remove_key(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    kid: &str,
) -> QueryResult<bool> {
    diesel::delete(
        client_keys::table
            .filter(client_keys::tenant_id.eq(tenant.as_str()))
            .filter(client_keys::client_id.eq(client.as_str()))
            .filter(client_keys::kid.eq(kid)),
    )
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Records that an assertion with `jti` was used. `Ok(false)` when it was used before and
/// has not expired since: a replay. The client's expired entries are swept on the way, so
/// the table holds only live assertions.
pub async fn use_jti(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    jti: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::delete(
        client_assertion_jtis::table
            .filter(client_assertion_jtis::client_id.eq(client.as_str()))
            .filter(client_assertion_jtis::expires_at.lt(now)),
    )
    .execute(conn)
    .await?;
    let n = diesel::insert_into(client_assertion_jtis::table)
        .values((
            client_assertion_jtis::tenant_id.eq(tenant.as_str()),
            client_assertion_jtis::client_id.eq(client.as_str()),
            client_assertion_jtis::jti.eq(jti),
            client_assertion_jtis::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}
