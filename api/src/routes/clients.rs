//! `POST /v1/clients`: tenant admins create further OAuth clients (CONTRACT §7).

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use redress_shared::db::tenant;
use redress_shared::{db::tenants, domain::FieldError, ids::ClientId};
use serde::Serialize;
use serde_json::Value;

use crate::{
    auth::{secrets, Caller, SCOPES},
    error::ApiError,
    state::AppState,
};

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct NewClient {
    pub name: String,
    /// Scopes of CONTRACT §1.
    pub scopes: Vec<String>,
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
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 100 => {
            s.trim().to_owned()
        }
        Some(Value::String(_)) => {
            errors.push(FieldError::new("/name", "must be 1 to 100 characters"));
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
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        tenants::insert_client(conn, &caller.tenant_id, &id, &new.name, &hash, &new.scopes).await
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
