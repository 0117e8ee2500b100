//! `POST /v1/clients`: tenant admins create further OAuth clients (CONTRACT §7), rotate
//! their secrets, and register the public keys of `private_key_jwt`.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use redress_shared::{
    db::{tenant::set_tenant, tenants},
    domain::FieldError,
    ids::ClientId,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{
    auth::{
        client_admin::{self, Authority, ClientAdminError, ClientKeyView, RotatedSecret},
        secrets, Caller, SCOPES,
    },
    error::ApiError,
    state::AppState,
};

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct NewClient {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Scopes of CONTRACT §1.
    #[schema(min_items = 1, value_type = Vec<ScopeName>)]
    pub scopes: Vec<String>,
}

/// A scope a tenant client can hold (CONTRACT §1).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum ScopeName {
    #[schema(rename = "complaints:write")]
    ComplaintsWrite,
    #[schema(rename = "complaints:read")]
    ComplaintsRead,
    #[schema(rename = "webhooks:manage")]
    WebhooksManage,
    #[schema(rename = "cases:operate")]
    CasesOperate,
    #[schema(rename = "tenant:admin")]
    TenantAdmin,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedClient {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Shown once; only a hash is kept.
    pub client_secret: String,
    pub created_at: DateTime<Utc>,
}

fn parse(raw: &Value) -> Result<NewClient, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = raw.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    for k in obj.keys() {
        if k != "name" && k != "scopes" {
            errors.push(FieldError::new(format!("/{k}"), "is not a known field"));
        }
    }
    let name = match obj.get("name") {
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.chars().count() <= 100
                && !redress_shared::routing::cases::has_control(s) =>
        {
            s.trim().to_owned()
        }
        Some(Value::String(_)) => {
            errors.push(FieldError::new(
                "/name",
                "must be 1 to 100 characters, without control characters",
            ));
            String::new()
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::new("/name", "is required"));
            String::new()
        }
        Some(_) => {
            errors.push(FieldError::new("/name", "must be a string"));
            String::new()
        }
    };
    let mut scopes = Vec::new();
    match obj.get("scopes") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if SCOPES.contains(&s) => {
                        if !scopes.iter().any(|x: &String| x == s) {
                            scopes.push(s.to_owned());
                        }
                    }
                    _ => errors.push(FieldError::new(
                        format!("/scopes/{i}"),
                        format!("must be one of: {}", SCOPES.join(", ")),
                    )),
                }
            }
        }
        Some(Value::Array(_)) => {
            errors.push(FieldError::new("/scopes", "must name at least one scope"))
        }
        None | Some(Value::Null) => errors.push(FieldError::new("/scopes", "is required")),
        Some(_) => errors.push(FieldError::new(
            "/scopes",
            "must be an array of scope names",
        )),
    }
    if errors.is_empty() {
        Ok(NewClient { name, scopes })
    } else {
        Err(errors)
    }
}

/// Creates an OAuth client in the caller's tenant. The secret is in this answer only.
#[utoipa::path(
    tag = "administration",
    request_body = NewClient,
    responses(
        (status = 201, body = CreatedClient),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[post("/v1/clients")]
pub async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let new = parse(&raw).map_err(ApiError::InvalidBody)?;
    let secret = secrets::generate();
    let hash = secrets::hash(secret.clone())
        .await
        .map_err(ApiError::internal)?;
    let id = ClientId::generate();
    let mut conn = state.pool.get().await?;
    let row = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let row =
                tenants::insert_client(conn, &caller.tenant_id, &id, &new.name, &hash, &new.scopes)
                    .await?;
            crate::audit::record(
                conn,
                &caller,
                "client.created",
                id.as_str(),
                json!({"name": row.name, "scopes": row.scopes}),
            )
            .await?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    tracing::info!(tenant.id = %caller.tenant_id, client.id = %id, actor = %caller.client_id, "client created");
    Ok(HttpResponse::Created().json(CreatedClient {
        client_id: row.id,
        name: row.name,
        scopes: row.scopes,
        client_secret: secret,
        created_at: row.created_at,
    }))
}

impl From<ClientAdminError> for ApiError {
    fn from(e: ClientAdminError) -> Self {
        match e {
            ClientAdminError::NotFound => ApiError::NotFound,
            ClientAdminError::HubAdminClient => ApiError::Conflict {
                kind: "operator-managed-client",
                detail: "This client holds hub:admin; its credentials are managed with `redress-api admin` only".into(),
                extra: Value::Null,
            },
            ClientAdminError::Invalid(errors) => ApiError::InvalidBody(errors),
            ClientAdminError::DuplicateKid(kid) => ApiError::Conflict {
                kind: "duplicate-key",
                detail: format!("Key `{kid}` is already registered for this client; remove it first to replace it"),
                extra: serde_json::json!({"kid": kid}),
            },
            ClientAdminError::Db(e) => e.into(),
            ClientAdminError::Internal(e) => ApiError::Internal(e),
        }
    }
}

fn client_id(raw: &str) -> Result<ClientId, ApiError> {
    ClientId::parse(raw).map_err(|_| ApiError::NotFound)
}

fn actor(caller: &Caller) -> String {
    format!("client:{}", caller.client_id)
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct RotateSecret {
    /// How long the current secret keeps working, in seconds: at most (and by default)
    /// the configured overlap (`client_auth.secret_overlap_secs`, a day unless changed).
    /// 0 ends it at once (a leaked secret).
    #[schema(minimum = 0, maximum = 86400)]
    pub previous_secret_expires_in: Option<u64>,
}

/// Issues a new secret for a client of the caller's tenant. The current secret keeps
/// working until `previous_secret_expires_at`, so the partner can deploy the new one
/// without a failed request; after that only the new secret works. Rotating again during
/// an overlap ends the older secret at once (the last two secrets work, never three).
#[utoipa::path(
    tag = "administration",
    params(("id" = String, Path, description = "Client id (`cli_…`)")),
    request_body(content = Option<RotateSecret>, description = "Optional; an empty body takes the configured overlap"),
    responses(
        (status = 200, body = RotatedSecret),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json", description = "The client holds hub:admin"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[post("/v1/clients/{id}/rotate-secret")]
pub async fn rotate_secret(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let id = client_id(&path)?;
    let max = state.settings.client_auth.secret_overlap_secs;
    let overlap = if body.iter().all(u8::is_ascii_whitespace) {
        max
    } else {
        let raw: Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        let Some(obj) = raw.as_object() else {
            return Err(ApiError::InvalidBody(vec![FieldError::new(
                "",
                "the body must be a JSON object",
            )]));
        };
        let mut errors: Vec<FieldError> = obj
            .keys()
            .filter(|k| *k != "previous_secret_expires_in")
            .map(|k| FieldError::new(format!("/{k}"), "is not a known field"))
            .collect();
        let overlap = match obj.get("previous_secret_expires_in") {
            None | Some(Value::Null) => max,
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => n,
                _ => {
                    errors.push(FieldError::new(
                        "/previous_secret_expires_in",
                        format!("must be a whole number of seconds from 0 to {max}"),
                    ));
                    max
                }
            },
        };
        if !errors.is_empty() {
            return Err(ApiError::InvalidBody(errors));
        }
        overlap
    };
    let mut conn = state.pool.get().await?;
    let rotated = client_admin::rotate_secret(
        &mut conn,
        &caller.tenant_id,
        &id,
        chrono::Duration::seconds(overlap as i64),
        &actor(&caller),
        Authority::TenantAdmin,
    )
    .await?;
    tracing::info!(tenant.id = %caller.tenant_id, client.id = %id, actor = %caller.client_id, "client secret rotated");
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(rotated))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientKeyList {
    pub data: Vec<ClientKeyView>,
}

/// Registers public keys for `private_key_jwt`: one JWK, or a JWK Set `{"keys": [...]}`.
/// Accepted: Ed25519 (`kty: OKP`, `alg: EdDSA`), P-256 (`kty: EC`, `alg: ES256`), RSA of
/// 2048 bits or more (`kty: RSA`, `alg: RS256`). A key without `kid` is named by its RFC 7638
/// thumbprint. Private members (`d`, …) are refused. Assertions are verified with these keys
/// only.
#[utoipa::path(
    tag = "administration",
    params(("id" = String, Path, description = "Client id (`cli_…`)")),
    request_body(content = Object, description = "A public JWK or a JWK Set"),
    responses(
        (status = 201, body = ClientKeyList, description = "The keys added"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json", description = "A kid is already registered, or the client holds hub:admin"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[post("/v1/clients/{id}/keys")]
pub async fn add_keys(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let id = client_id(&path)?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let mut conn = state.pool.get().await?;
    let added = client_admin::add_keys(
        &mut conn,
        &caller.tenant_id,
        &id,
        &raw,
        state.settings.client_auth.max_keys_per_client,
        &actor(&caller),
        Authority::TenantAdmin,
    )
    .await?;
    tracing::info!(tenant.id = %caller.tenant_id, client.id = %id, actor = %caller.client_id, "client keys added");
    Ok(HttpResponse::Created().json(ClientKeyList { data: added }))
}

/// The public keys registered for a client.
#[utoipa::path(
    tag = "administration",
    params(("id" = String, Path, description = "Client id (`cli_…`)")),
    responses(
        (status = 200, body = ClientKeyList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[get("/v1/clients/{id}/keys")]
pub async fn list_keys(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let id = client_id(&path)?;
    let mut conn = state.pool.get().await?;
    let data =
        client_admin::list_keys(&mut conn, &caller.tenant_id, &id, Authority::TenantAdmin).await?;
    Ok(HttpResponse::Ok().json(ClientKeyList { data }))
}

/// Removes a registered key; assertions signed with it are refused from now on.
#[utoipa::path(
    tag = "administration",
    params(
        ("id" = String, Path, description = "Client id (`cli_…`)"),
        ("kid" = String, Path, description = "The key's `kid`"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[delete("/v1/clients/{id}/keys/{kid}")]
pub async fn remove_key(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let (raw_id, kid) = path.into_inner();
    let id = client_id(&raw_id)?;
    let mut conn = state.pool.get().await?;
    client_admin::remove_key(
        &mut conn,
        &caller.tenant_id,
        &id,
        &kid,
        &actor(&caller),
        Authority::TenantAdmin,
    )
    .await?;
    tracing::info!(tenant.id = %caller.tenant_id, client.id = %id, key.kid = %kid, actor = %caller.client_id, "client key removed");
    Ok(HttpResponse::NoContent().finish())
}
