//! Webhook endpoints, their delivery log and the manual actions on it (CONTRACT §5). Every
//! route needs `webhooks:manage`; the tenant comes from the caller's token, and another
//! tenant's endpoint or message answers 404 exactly like one that does not exist.
//!
//! URLs are checked against the SSRF policy here, at registration and on every URL change,
//! with the name resolved now; the dispatcher checks again at every send.

use std::time::Duration;

use actix_web::{delete, get, http::header, patch, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncConnection;
use redress_shared::db::tenant;
use redress_shared::{
    db::tenant::set_tenant,
    domain::FieldError,
    ids::WebhookEndpointId,
    webhooks::{
        model::{
            self, AttemptView, EndpointInput, EndpointPatchInput, EndpointView, EndpointWithSecret,
            MessageView, WebhookMessageId,
        },
        ssrf::{CheckedResolver, Policy},
        store::{self, AttemptFilter, MessageFilter},
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{
    auth::Caller,
    error::{ApiError, ParamError},
    state::AppState,
};

const SCOPE: &str = "webhooks:manage";
/// A registration waits at most this long for the URL's name to resolve, so a name whose
/// DNS never answers cannot hold a request (and a pooled connection) open.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

fn as_object(raw: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    raw.as_object()
        .ok_or_else(|| vec![FieldError::new("", "the body must be a JSON object")])
}

fn unknown_fields(obj: &Map<String, Value>, known: &[&str], errors: &mut Vec<FieldError>) {
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            errors.push(FieldError::new(format!("/{k}"), "is not a known field"));
        }
    }
}

fn string_field(v: &Value, pointer: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            errors.push(FieldError::new(pointer, "must be a string"));
            None
        }
    }
}

fn events_field(v: &Value, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let Value::Array(items) = v else {
        errors.push(FieldError::new(
            "/events",
            "must be an array of event type names",
        ));
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push(s.to_owned()),
            None => errors.push(FieldError::new(format!("/events/{i}"), "must be a string")),
        }
    }
    Some(out)
}

fn bool_field(v: &Value, pointer: &str, errors: &mut Vec<FieldError>) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => {
            errors.push(FieldError::new(pointer, "must be true or false"));
            None
        }
    }
}

/// The shape of a registration body, each wrong field named; what the values mean is
/// [`model::check_new_endpoint`]'s business.
fn parse_input(raw: &Value) -> Result<EndpointInput, Vec<FieldError>> {
    let obj = as_object(raw)?;
    let mut errors = Vec::new();
    unknown_fields(
        obj,
        &["url", "events", "description", "enabled"],
        &mut errors,
    );
    let url = match obj.get("url") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new("/url", "is required"));
            None
        }
        Some(v) => string_field(v, "/url", &mut errors),
    };
    let events = match obj.get("events") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new("/events", "is required"));
            None
        }
        Some(v) => events_field(v, &mut errors),
    };
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(v) => string_field(v, "/description", &mut errors),
    };
    let enabled = match obj.get("enabled") {
        None | Some(Value::Null) => None,
        Some(v) => bool_field(v, "/enabled", &mut errors),
    };
    match (url, events) {
        (Some(url), Some(events)) if errors.is_empty() => Ok(EndpointInput {
            url,
            events,
            description,
            enabled,
        }),
        _ => Err(errors),
    }
}

/// The shape of a patch. Absent fields stay; `"description": null` clears the description,
/// while null for the other fields is refused (an endpoint always has a URL, events and a
/// state).
fn parse_patch(raw: &Value) -> Result<EndpointPatchInput, Vec<FieldError>> {
    let obj = as_object(raw)?;
    let mut errors = Vec::new();
    unknown_fields(
        obj,
        &["url", "events", "description", "enabled"],
        &mut errors,
    );
    let mut patch = EndpointPatchInput::default();
    if let Some(v) = obj.get("url") {
        patch.url = string_field(v, "/url", &mut errors);
    }
    if let Some(v) = obj.get("events") {
        patch.events = events_field(v, &mut errors);
    }
    match obj.get("description") {
        None => {}
        Some(Value::Null) => patch.description = Some(String::new()),
        Some(v) => patch.description = string_field(v, "/description", &mut errors),
    }
    if let Some(v) = obj.get("enabled") {
        patch.enabled = bool_field(v, "/enabled", &mut errors);
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

fn resolver(state: &AppState) -> CheckedResolver {
    CheckedResolver::new(Policy {
        allow_loopback: state.settings.webhook_allow_loopback,
    })
}

/// Runs a URL-checking validation with [`RESOLVE_TIMEOUT`]; a name that does not answer in
/// time is refused like one that does not resolve.
async fn with_resolve_timeout<T>(
    check: impl std::future::Future<Output = Result<T, Vec<FieldError>>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, check).await {
        Ok(Ok(checked)) => Ok(checked),
        Ok(Err(errors)) => Err(ApiError::InvalidBody(errors)),
        Err(_) => Err(ApiError::InvalidBody(vec![FieldError::new(
            "/url",
            format!(
                "the host did not resolve within {} s",
                RESOLVE_TIMEOUT.as_secs()
            ),
        )])),
    }
}

/// The host of an endpoint URL, for the audit log: the path and query may carry the
/// tenant's credentials and are not recorded.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(authority.rsplit('@').next().unwrap_or(authority).to_owned())
}

fn endpoint_id(raw: &str) -> Result<WebhookEndpointId, ApiError> {
    WebhookEndpointId::parse(raw).map_err(|_| ApiError::NotFound)
}

fn message_id(raw: &str) -> Result<WebhookMessageId, ApiError> {
    WebhookMessageId::parse(raw).map_err(|_| ApiError::NotFound)
}

// ---------------------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------------------

fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        ApiError::InvalidParams(vec![ParamError {
            parameter: "query".into(),
            detail: e.to_string(),
        }])
    })
}

fn bad(errors: &mut Vec<ParamError>, parameter: &str, detail: &str) {
    errors.push(ParamError {
        parameter: parameter.into(),
        detail: detail.into(),
    });
}

fn parse_limit(raw: Option<&str>, errors: &mut Vec<ParamError>) -> i64 {
    match raw {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                bad(errors, "limit", "must be a whole number from 1 to 100");
                DEFAULT_LIMIT
            }
        },
    }
}

fn encode_cursor(id: &str) -> String {
    id.to_owned()
}

fn decode_cursor(cursor: &str) -> Option<WebhookEndpointId> {
    WebhookEndpointId::parse(cursor).ok()
}

/// Keeps `limit` rows of a page fetched with one extra row, and says whether there is more.
fn split_page<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    (rows, more)
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

/// Registers an endpoint. The answer carries its signing secret, shown this once.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = EndpointInput, description = "`url` must be HTTPS on the public internet; `events` lists the event types to receive"),
    responses(
        (status = 201, description = "Registered; `secret` is shown only here", body = EndpointWithSecret, headers(("Location" = String))),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named by JSON pointer; a URL refused by the address policy is named `/url`", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[post("/v1/webhook-endpoints")]
pub async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let input = parse_input(&json_body(&body)?).map_err(ApiError::InvalidBody)?;
    let resolver = resolver(&state);
    let new = with_resolve_timeout(model::check_new_endpoint(&input, &resolver)).await?;
    let mut conn = state.pool.get().await?;
    let (row, secret) = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let (row, secret) =
                store::create_endpoint(conn, &caller.tenant_id, &new, Utc::now()).await?;
            // The URL may carry the tenant's credentials: only the host is kept.
            crate::audit::record(
                conn,
                &caller,
                "webhook_endpoint.created",
                row.id.as_str(),
                json!({"host": url_host(&row.url), "events": row.event_types}),
            )
            .await?;
            Ok::<_, ApiError>((row, secret))
        })
        .await?;
    // The URL is the tenant's and may carry its credentials: it is not logged.
    tracing::info!(tenant.id = %caller.tenant_id, webhook.endpoint_id = %row.id, actor = %caller.client_id, "webhook endpoint registered");
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/webhook-endpoints/{}", row.id),
        ))
        .json(EndpointWithSecret {
            endpoint: row.to_view(),
            secret,
        }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointListQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^whe_[A-Za-z0-9]{1,64}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointPage {
    pub data: Vec<EndpointView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The tenant's endpoints, oldest first, with cursor pagination. Secrets are never listed.
#[utoipa::path(
    tag = "webhooks",
    params(EndpointListQuery),
    responses(
        (status = 200, body = EndpointPage),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[get("/v1/webhook-endpoints")]
pub async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let q: EndpointListQuery = query(&req)?;
    let mut errors = Vec::new();
    let limit = parse_limit(q.limit.as_deref(), &mut errors);
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            let decoded = decode_cursor(c);
            if decoded.is_none() {
                bad(&mut errors, "cursor", "is not a cursor this API issued");
            }
            decoded
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidParams(errors));
    }
    let mut conn = state.pool.get().await?;
    let rows = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::list_endpoints(conn, &caller.tenant_id, after.as_ref(), limit).await
    })
    .await?;
    let (rows, more) = split_page(rows, limit);
    let next_cursor = if more {
        rows.last().map(|r| encode_cursor(&r.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(EndpointPage {
        data: rows.iter().map(|r| r.to_view()).collect(),
        next_cursor,
    }))
}

/// One endpoint, with its state: enabled, why the hub disabled it, since when it fails.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`whe_…`)")),
    responses(
        (status = 200, body = EndpointView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[get("/v1/webhook-endpoints/{id}")]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::get_endpoint(conn, &caller.tenant_id, &id).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row.to_view()))
}

/// Changes an endpoint. Absent fields stay as they are. `"enabled": true` re-enables an
/// endpoint the hub disabled, with a fresh failure window; `false` pauses it, and its
/// pending messages wait.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`whe_…`)")),
    request_body = EndpointPatchInput,
    responses(
        (status = 200, body = EndpointView),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[patch("/v1/webhook-endpoints/{id}")]
pub async fn update(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let input = parse_patch(&json_body(&body)?).map_err(ApiError::InvalidBody)?;
    let resolver = resolver(&state);
    let patch = with_resolve_timeout(model::check_patch(&input, &resolver)).await?;
    let mut conn = state.pool.get().await?;
    let row = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let row = store::update_endpoint(conn, &caller.tenant_id, &id, &patch, Utc::now())
                .await?
                .ok_or(ApiError::NotFound)?;
            crate::audit::record(
                conn,
                &caller,
                "webhook_endpoint.updated",
                id.as_str(),
                json!({"host": url_host(&row.url), "events": row.event_types, "enabled": row.enabled}),
            )
            .await?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    tracing::info!(tenant.id = %caller.tenant_id, webhook.endpoint_id = %id, actor = %caller.client_id, "webhook endpoint changed");
    Ok(HttpResponse::Ok().json(row.to_view()))
}

/// Deletes an endpoint with its pending messages and its delivery log.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`whe_…`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[delete("/v1/webhook-endpoints/{id}")]
pub async fn remove(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let mut conn = state.pool.get().await?;
    conn.transaction(async |conn| {
        set_tenant(conn, &caller.tenant_id).await?;
        if !store::delete_endpoint(conn, &caller.tenant_id, &id).await? {
            return Err(ApiError::NotFound);
        }
        crate::audit::record(
            conn,
            &caller,
            "webhook_endpoint.deleted",
            id.as_str(),
            json!({}),
        )
        .await?;
        Ok(())
    })
    .await?;
    tracing::info!(tenant.id = %caller.tenant_id, webhook.endpoint_id = %id, actor = %caller.client_id, "webhook endpoint deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Replaces the signing secret. The previous secret keeps signing, next to the new one, for
/// the deployment's rotation overlap (`previous_secret_expires_at`), so the receiver can
/// switch without missing a delivery. The new secret is shown only here.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`whe_…`)")),
    responses(
        (status = 200, body = EndpointWithSecret),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[post("/v1/webhook-endpoints/{id}/rotate-secret")]
pub async fn rotate_secret(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let overlap = Duration::from_secs(
        state
            .settings
            .webhooks
            .rotation_overlap_hours
            .saturating_mul(3600),
    );
    let mut conn = state.pool.get().await?;
    let (row, secret) = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let rotated = store::rotate_secret(conn, &caller.tenant_id, &id, overlap, Utc::now())
                .await?
                .ok_or(ApiError::NotFound)?;
            crate::audit::record(
                conn,
                &caller,
                "webhook_endpoint.secret_rotated",
                id.as_str(),
                json!({"previous_secret_expires_at": rotated.0.previous_secret_expires_at}),
            )
            .await?;
            Ok::<_, ApiError>(rotated)
        })
        .await?;
    tracing::info!(tenant.id = %caller.tenant_id, webhook.endpoint_id = %id, actor = %caller.client_id, "webhook secret rotated");
    Ok(HttpResponse::Ok().json(EndpointWithSecret {
        endpoint: row.to_view(),
        secret,
    }))
}

// ---------------------------------------------------------------------------------------
// The delivery log
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only the attempts of this message (`msg_…`).
    #[param(pattern = r"^msg_[A-Za-z0-9]{1,64}$")]
    pub message: Option<String>,
    /// Only attempts older than this attempt id (`next_before` of the previous page).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptPage {
    /// Newest first.
    pub data: Vec<AttemptView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// Every attempt to deliver to this endpoint, newest first: when, the status code, the
/// latency, the error, and the start of the receiver's answer.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`whe_…`)"), DeliveryQuery),
    responses(
        (status = 200, body = AttemptPage),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[get("/v1/webhook-endpoints/{id}/deliveries")]
pub async fn deliveries(
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let q: DeliveryQuery = query(&req)?;
    let mut errors = Vec::new();
    let limit = parse_limit(q.limit.as_deref(), &mut errors);
    let message = match q.message.as_deref() {
        None => None,
        Some(m) => {
            let parsed = WebhookMessageId::parse(m).ok();
            if parsed.is_none() {
                bad(&mut errors, "message", "must be a message id (`msg_…`)");
            }
            parsed
        }
    };
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => match b.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                bad(&mut errors, "before", "must be an attempt id");
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidParams(errors));
    }
    let filter = AttemptFilter {
        message,
        before,
        limit,
    };
    let mut conn = state.pool.get().await?;
    let rows = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::list_deliveries(conn, &caller.tenant_id, &id, &filter).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    let (rows, more) = split_page(rows, limit);
    let next_before = if more {
        rows.last().map(|(a, _)| a.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AttemptPage {
        data: rows.iter().map(|(a, t)| a.to_view(t)).collect(),
        next_before,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// `pending`, `delivered` or `failed`.
    #[param(pattern = r"^(pending|delivered|failed)$")]
    pub status: Option<String>,
    /// Only messages older than this one (`next_before` of the previous page).
    #[param(pattern = r"^msg_[A-Za-z0-9]{1,64}$")]
    pub before: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// Newest first.
    pub data: Vec<MessageView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<String>,
}

/// The messages queued for this endpoint, newest first, each with its state, attempt count
/// and the exact body sent.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`whe_…`)"), MessageQuery),
    responses(
        (status = 200, body = MessagePage),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[get("/v1/webhook-endpoints/{id}/messages")]
pub async fn messages(
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let q: MessageQuery = query(&req)?;
    let mut errors = Vec::new();
    let limit = parse_limit(q.limit.as_deref(), &mut errors);
    let status = match q.status.as_deref() {
        None => None,
        Some(s @ (store::STATUS_PENDING | store::STATUS_DELIVERED | store::STATUS_FAILED)) => {
            Some(s.to_owned())
        }
        Some(_) => {
            bad(
                &mut errors,
                "status",
                "must be `pending`, `delivered` or `failed`",
            );
            None
        }
    };
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => {
            let parsed = WebhookMessageId::parse(b).ok();
            if parsed.is_none() {
                bad(&mut errors, "before", "must be a message id (`msg_…`)");
            }
            parsed
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidParams(errors));
    }
    let filter = MessageFilter {
        status,
        before,
        limit,
    };
    let mut conn = state.pool.get().await?;
    let rows = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::list_messages(conn, &caller.tenant_id, &id, &filter).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    let (rows, more) = split_page(rows, limit);
    let next_before = if more {
        rows.last().map(|m| m.id.clone())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(MessagePage {
        data: rows.iter().map(|m| m.to_view()).collect(),
        next_before,
    }))
}

/// One message of this endpoint, with its state and the exact body sent.
#[utoipa::path(
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "Endpoint id (`whe_…`)"),
        ("msg_id" = String, Path, description = "Message id (`msg_…`), the `webhook-id` header"),
    ),
    responses(
        (status = 200, body = MessageView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[get("/v1/webhook-endpoints/{id}/messages/{msg_id}")]
pub async fn get_message(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let (endpoint, msg) = path.into_inner();
    let (endpoint, msg) = (endpoint_id(&endpoint)?, message_id(&msg)?);
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::get_message(conn, &caller.tenant_id, &endpoint, &msg).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row.to_view()))
}

/// Sends a message again by hand, whatever its state, with the same `webhook-id` and body
/// (receivers deduplicate on the id) and a fresh signature. The attempt shows in the
/// delivery log; if it fails, the message continues on the retry schedule. A message of a
/// disabled or paused endpoint waits until the endpoint is enabled again.
#[utoipa::path(
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "Endpoint id (`whe_…`)"),
        ("msg_id" = String, Path, description = "Message id (`msg_…`)"),
    ),
    responses(
        (status = 202, description = "Queued for sending now", body = MessageView, headers(("Location" = String))),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[post("/v1/webhook-endpoints/{id}/messages/{msg_id}/redeliver")]
pub async fn redeliver(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let (endpoint, msg) = path.into_inner();
    let (endpoint, msg) = (endpoint_id(&endpoint)?, message_id(&msg)?);
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::redeliver(conn, &caller.tenant_id, &endpoint, &msg, Utc::now()).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    tracing::info!(tenant.id = %caller.tenant_id, webhook.endpoint_id = %endpoint, webhook.message_id = %msg, actor = %caller.client_id, "webhook redelivery requested");
    Ok(HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            format!("/v1/webhook-endpoints/{endpoint}/messages/{msg}"),
        ))
        .json(row.to_view()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestSent {
    /// The `webhook-id` of the test message; follow it in the messages and deliveries.
    pub message_id: String,
}

/// Queues a `webhook.test` message for this endpoint alone. It goes through the dispatcher
/// like any message, signed with the live secrets, and shows in the delivery log. A paused
/// endpoint receives it once enabled again.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id (`whe_…`)")),
    responses(
        (status = 202, description = "Queued", body = TestSent, headers(("Location" = String))),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["webhooks:manage"]))
)]
#[post("/v1/webhook-endpoints/{id}/test")]
pub async fn test_send(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let id = endpoint_id(&path)?;
    let mut conn = state.pool.get().await?;
    let msg = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::enqueue_test(conn, &caller.tenant_id, &id, Utc::now()).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    tracing::info!(tenant.id = %caller.tenant_id, webhook.endpoint_id = %id, webhook.message_id = %msg, actor = %caller.client_id, "webhook test queued");
    Ok(HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            format!("/v1/webhook-endpoints/{id}/messages/{msg}"),
        ))
        .json(TestSent {
            message_id: msg.to_string(),
        }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn a_registration_body_of_the_wrong_shape_names_each_field() {
        let errors =
            parse_input(&json!({"url": 5, "events": ["a", 3], "colour": "red"})).unwrap_err();
        assert_eq!(pointers(&errors), ["/colour", "/url", "/events/1"]);
        let errors = parse_input(&json!({})).unwrap_err();
        assert_eq!(pointers(&errors), ["/url", "/events"]);
        assert_eq!(pointers(&parse_input(&json!([])).unwrap_err()), [""]);
        let ok = parse_input(&json!({"url": "https://a.example/", "events": ["complaint.routed"], "description": null}))
            .unwrap();
        assert_eq!(ok.description, None);
    }

    #[test]
    fn a_patch_keeps_absent_fields_and_clears_the_description_with_null() {
        let p = parse_patch(&json!({"description": null})).unwrap();
        assert_eq!(p.description.as_deref(), Some(""));
        assert!(p.url.is_none() && p.events.is_none() && p.enabled.is_none());
        let errors = parse_patch(&json!({"url": null, "enabled": "yes"})).unwrap_err();
        assert_eq!(pointers(&errors), ["/url", "/enabled"]);
    }

    #[test]
    fn endpoint_cursors_round_trip_and_foreign_ones_are_refused() {
        let id = WebhookEndpointId::generate();
        assert_eq!(decode_cursor(&encode_cursor(id.as_str())), Some(id));
        assert_eq!(decode_cursor("bm9wZQ"), None);
        assert_eq!(decode_cursor("!!"), None);
    }
}
