//! Administration of a client's credentials, shared by the tenant API and the admin
//! command: rotating its secret with an overlap, and registering the public keys of
//! `private_key_jwt`. Every change is recorded in the audit log in its own transaction.

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::{
    audit,
    db::{client_auth, tenant::set_tenant},
    domain::FieldError,
    ids::{ClientId, TenantId},
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{assertion, secrets, HUB_ADMIN};

#[derive(Debug, thiserror::Error)]
pub enum ClientAdminError {
    #[error("no such client")]
    NotFound,
    /// The client holds `hub:admin`: only the admin command manages its credentials.
    #[error("this client's credentials are managed with the admin command only")]
    HubAdminClient,
    #[error("invalid keys")]
    Invalid(Vec<FieldError>),
    #[error("key {0} is already registered for this client")]
    DuplicateKid(String),
    #[error("{0}")]
    Db(#[from] diesel::result::Error),
    #[error("{0}")]
    Internal(String),
}

/// Who may manage a client's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// A tenant admin through the API: not for clients holding `hub:admin`.
    TenantAdmin,
    /// The admin command (the hub operator).
    Operator,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub client_id: String,
    /// The new secret, shown once; only a hash is kept.
    pub client_secret: String,
    /// Until when the previous secret keeps working (now, if the overlap was 0).
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientKeyView {
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// The public JWK as stored.
    #[schema(value_type = Object)]
    pub jwk: Value,
    pub created_at: DateTime<Utc>,
}

impl From<client_auth::ClientKeyRow> for ClientKeyView {
    fn from(r: client_auth::ClientKeyRow) -> Self {
        Self {
            kid: r.kid,
            alg: r.alg,
            jwk: r.jwk,
            created_at: r.created_at,
        }
    }
}

/// Finds the client in the tenant (in the caller's transaction, tenant set) and checks
/// that `authority` may manage it.
async fn manageable(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    authority: Authority,
) -> Result<client_auth::ClientSecrets, ClientAdminError> {
    let row = client_auth::find_in_tenant(conn, tenant, client)
        .await?
        .ok_or(ClientAdminError::NotFound)?;
    if authority == Authority::TenantAdmin && row.scopes.iter().any(|s| s == HUB_ADMIN) {
        return Err(ClientAdminError::HubAdminClient);
    }
    Ok(row)
}

/// Issues a new secret; the current one keeps working for `overlap`.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    overlap: Duration,
    actor: &str,
    authority: Authority,
) -> Result<RotatedSecret, ClientAdminError> {
    let secret = secrets::generate();
    // Hashed before the transaction: argon2 is slow, and no transaction waits on it.
    let hash = secrets::hash(secret.clone())
        .await
        .map_err(|e| ClientAdminError::Internal(e.to_string()))?;
    let until = Utc::now() + overlap;
    conn.transaction(async |conn| {
        set_tenant(conn, tenant).await?;
        manageable(conn, tenant, client, authority).await?;
        client_auth::rotate_secret(conn, tenant, client, &hash, until)
            .await?
            .ok_or(ClientAdminError::NotFound)?;
        audit::record(
            conn,
            audit::Entry {
                tenant: Some(tenant),
                actor,
                action: "client.secret_rotated",
                target: Some(client.as_str()),
                details: json!({"previous_secret_expires_at": until}),
            },
        )
        .await?;
        Ok::<_, ClientAdminError>(())
    })
    .await?;
    Ok(RotatedSecret {
        client_id: client.to_string(),
        client_secret: secret,
        previous_secret_expires_at: until,
    })
}

/// Registers the public keys in `body` (a JWK or a JWK Set).
pub async fn add_keys(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    body: &Value,
    max_keys: usize,
    actor: &str,
    authority: Authority,
) -> Result<Vec<ClientKeyView>, ClientAdminError> {
    let new = assertion::parse_keys(body, max_keys).map_err(ClientAdminError::Invalid)?;
    conn.transaction(async |conn| {
        set_tenant(conn, tenant).await?;
        manageable(conn, tenant, client, authority).await?;
        let existing = client_auth::list_keys(conn, tenant, client).await?;
        if let Some((kid, ..)) = new
            .iter()
            .find(|(kid, ..)| existing.iter().any(|e| e.kid == *kid))
        {
            return Err(ClientAdminError::DuplicateKid(kid.clone()));
        }
        if existing.len() + new.len() > max_keys {
            return Err(ClientAdminError::Invalid(vec![FieldError::new(
                "",
                format!(
                    "a client holds at most {max_keys} keys; it has {} (remove one first)",
                    existing.len()
                ),
            )]));
        }
        if !client_auth::add_keys(conn, tenant, client, &new).await? {
            // A concurrent registration took a kid between the check and the insert.
            return Err(ClientAdminError::DuplicateKid(
                new.first().map(|k| k.0.clone()).unwrap_or_default(),
            ));
        }
        let kids: Vec<&str> = new.iter().map(|(kid, ..)| kid.as_str()).collect();
        audit::record(
            conn,
            audit::Entry {
                tenant: Some(tenant),
                actor,
                action: "client.keys_added",
                target: Some(client.as_str()),
                details: json!({"kids": kids}),
            },
        )
        .await?;
        Ok(client_auth::list_keys(conn, tenant, client)
            .await?
            .into_iter()
            .filter(|k| kids.contains(&k.kid.as_str()))
            .map(ClientKeyView::from)
            .collect())
    })
    .await
}

pub async fn list_keys(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    authority: Authority,
) -> Result<Vec<ClientKeyView>, ClientAdminError> {
    conn.transaction(async |conn| {
        set_tenant(conn, tenant).await?;
        manageable(conn, tenant, client, authority).await?;
        Ok(client_auth::list_keys(conn, tenant, client)
            .await?
            .into_iter()
            .map(ClientKeyView::from)
            .collect())
    })
    .await
}

pub async fn remove_key(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    client: &ClientId,
    kid: &str,
    actor: &str,
    authority: Authority,
) -> Result<(), ClientAdminError> {
    conn.transaction(async |conn| {
        set_tenant(conn, tenant).await?;
        manageable(conn, tenant, client, authority).await?;
        if !client_auth::remove_key(conn, tenant, client, kid).await? {
            return Err(ClientAdminError::NotFound);
        }
        audit::record(
            conn,
            audit::Entry {
                tenant: Some(tenant),
                actor,
                action: "client.key_removed",
                target: Some(client.as_str()),
                details: json!({"kid": kid}),
            },
        )
        .await?;
        Ok(())
    })
    .await
}
