//! Hub operators' API (`hub:admin`, granted by the admin command only): the signing keys.

use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use crate::{
    auth::{
        keys::KeySchedule,
        rotation::{self, NewKeyAlgorithm, RotateError, Rotated},
        Caller, HUB_ADMIN,
    },
    error::ApiError,
    state::AppState,
};
use redress_shared::domain::FieldError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SigningKeyList {
    /// Oldest activation first.
    pub data: Vec<KeySchedule>,
}

/// Every signing key and where it is in its life: `next` (published, not signing yet),
/// `current`, `retired` (published until the last token it signed has expired), `expired`.
#[utoipa::path(
    tag = "hub",
    responses(
        (status = 200, body = SigningKeyList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["hub:admin"]))
)]
#[get("/v1/hub/signing-keys")]
pub async fn list_signing_keys(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(HUB_ADMIN)?;
    let mut conn = state.pool.get().await?;
    let data = rotation::list(&mut conn, &state.settings).await?;
    Ok(HttpResponse::Ok().json(SigningKeyList { data }))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct RotateSigningKey {
    /// `EdDSA` (the default) or `ES256`.
    pub algorithm: Option<NewKeyAlgorithm>,
}

/// Rotates the signing key: a new key is published in the JWKS now and signs from
/// `activates_at` (one publish lead time from now); the current key then stops signing and
/// stays published until its last token has expired. 409 while an earlier rotation is
/// still waiting to take over.
#[utoipa::path(
    tag = "hub",
    request_body(content = Option<RotateSigningKey>, description = "Optional"),
    responses(
        (status = 201, body = Rotated),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["hub:admin"]))
)]
#[post("/v1/hub/signing-keys/rotate")]
pub async fn rotate_signing_key(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(HUB_ADMIN)?;
    let algorithm = if body.iter().all(u8::is_ascii_whitespace) {
        NewKeyAlgorithm::EdDSA
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
            .filter(|k| *k != "algorithm")
            .map(|k| FieldError::new(format!("/{k}"), "is not a known field"))
            .collect();
        let algorithm = match obj.get("algorithm").and_then(Value::as_str) {
            None if obj.get("algorithm").is_none_or(Value::is_null) => NewKeyAlgorithm::EdDSA,
            Some("EdDSA") => NewKeyAlgorithm::EdDSA,
            Some("ES256") => NewKeyAlgorithm::ES256,
            _ => {
                errors.push(FieldError::new("/algorithm", "must be EdDSA or ES256"));
                NewKeyAlgorithm::EdDSA
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::InvalidBody(errors));
        }
        algorithm
    };
    let mut conn = state.pool.get().await?;
    let actor = format!("client:{}", caller.client_id);
    let rotated = rotation::rotate(&mut conn, &state.settings, &actor, algorithm)
        .await
        .map_err(|e| match e {
            RotateError::Pending { kid, activates_at } => ApiError::Conflict {
                kind: "rotation-pending",
                detail: format!(
                    "Key {kid} is already waiting to take over at {activates_at}; rotate again after that"
                ),
                extra: serde_json::json!({"kid": kid, "activates_at": activates_at}),
            },
            RotateError::Key(e) => ApiError::internal(e),
            RotateError::Db(e) => e.into(),
        })?;
    drop(conn);
    // This process publishes the new key at once; the others within one reload interval.
    if let Err(e) = rotation::refresh(&state.pool, &state.keys, &state.settings, None).await {
        tracing::warn!(error = %e, "signing keys not reloaded after the rotation; the reloader will");
    }
    tracing::info!(key.kid = %rotated.kid, activates_at = %rotated.activates_at, actor = %caller.client_id, at = %Utc::now(), "signing key rotated");
    Ok(HttpResponse::Created().json(rotated))
}
