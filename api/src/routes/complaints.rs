//! Intake and reading of complaints (CONTRACT §2).

use actix_web::{get, http::header, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use redress_shared::{
    db::{
        complaints::{self, ListFilter},
        intake::{self, Filed, Filing},
        tenant, DbError,
    },
    domain::{ComplaintInput, ComplaintView, EventView, Status},
    ids::ComplaintId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    auth::Caller,
    error::{ApiError, ParamError},
    idempotency,
    routes::routing,
    state::AppState,
};

const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Files a complaint. Routing happens asynchronously; poll the complaint or subscribe to
/// webhooks to follow it.
#[utoipa::path(
    tag = "complaints",
    request_body(content = ComplaintInput, description = "The complaint; see CONTRACT §2"),
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$", description = "Any string up to 255 characters; a retry with the same key and body returns the first answer")),
    responses(
        (status = 202, description = "Accepted; routing follows", body = ComplaintView, headers(("Location" = String))),
        (status = 400, description = "Malformed JSON", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "external_ref already used (`complaint_id` names the existing complaint) or the same Idempotency-Key is in flight", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named by JSON pointer", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["complaints:write"]))
)]
#[post("/v1/complaints")]
pub async fn create(
    req: HttpRequest,
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("complaints:write")?;
    let key = idempotency_key(&req)?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let input =
        ComplaintInput::from_json(&raw, Utc::now().date_naive()).map_err(ApiError::InvalidBody)?;

    let hash = key.as_ref().map(|_| idempotency::request_hash(&raw));
    let id = ComplaintId::generate();
    let now = Utc::now();
    // The category is checked against the routing in force as this process last read it;
    // filing confirms that version is still the latest, and when an edit made another one
    // latest meanwhile, the routing is read again and the category checked anew. Two
    // edits racing a filing twice in a row are unlikely; a third is reported as a conflict.
    let mut routing = state.routing_in_force.remembered(&caller.tenant_id);
    let mut filed = None;
    for _ in 0..3 {
        let r = match routing.take() {
            // A category unknown to the routing as remembered may be one an edit just
            // added: read the routing in force before refusing.
            Some(r) if routing::category_in(Some(&r), &input.category).is_ok() => Some(r),
            _ => {
                let mut conn = state.pool.get().await?;
                state
                    .routing_in_force
                    .reload(&mut conn, &caller.tenant_id)
                    .await?
            }
        };
        routing::category_in(r.as_deref(), &input.category)?;
        // A tenant without routing has no categories, so the check above refused already.
        let Some(r) = r else {
            return Err(ApiError::Internal(
                "no routing after the category check".into(),
            ));
        };
        let filing = Filing {
            tenant: &caller.tenant_id,
            client: &caller.client_id,
            routing_version: r.version,
            idempotency: key.as_deref().zip(hash.as_deref()),
            id: &id,
            input: &input,
            now,
        };
        match state.intake.file(filing.values()?).await {
            Ok(Filed::RoutingChanged) => continue,
            Ok(outcome) => {
                filed = Some(outcome);
                break;
            }
            // Never stored by another request while this one held the key's lock; if it
            // were, the retry gets the stored answer.
            Err(DbError::Query(e)) if intake::is_key_taken(&e) => {
                filed = Some(Filed::InFlight);
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let body = match filed {
        Some(Filed::Created(body)) => body,
        Some(Filed::Replay {
            status,
            body,
            resource_id,
        }) => {
            let mut r = HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::ACCEPTED),
            );
            if let Some(id) = resource_id {
                r.insert_header((header::LOCATION, format!("/v1/complaints/{id}")));
            }
            r.insert_header(("Idempotent-Replayed", "true"));
            return Ok(r.json(body));
        }
        Some(Filed::Mismatch) => return Err(ApiError::IdempotencyMismatch),
        Some(Filed::InFlight) => {
            return Err(ApiError::Conflict {
                kind: "idempotency-key-in-flight",
                detail:
                    "A request with this Idempotency-Key is still being processed; retry shortly"
                        .into(),
                extra: json!({}),
            })
        }
        Some(Filed::DuplicateExternalRef(existing)) => {
            return Err(ApiError::Conflict {
                kind: "duplicate-external-ref",
                detail: match &existing {
                    Some(existing) => {
                        format!("external_ref is already used by complaint {existing}")
                    }
                    None => "external_ref is already used by another complaint".into(),
                },
                extra: json!({ "complaint_id": existing }),
            })
        }
        // Three filings in a row each found the routing changed since it was read.
        Some(Filed::RoutingChanged) | None => {
            return Err(ApiError::Conflict {
                kind: "routing-changed",
                detail: "The tenant's routing changed while the complaint was being filed; retry"
                    .into(),
                extra: json!({}),
            })
        }
    };
    // The outbox row is committed; wake the relay so routing starts now, not at its next poll.
    state.relay.wake();
    tracing::info!(tenant.id = %caller.tenant_id, client.id = %caller.client_id, complaint.id = %id, "complaint filed");
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/v1/complaints/{id}")))
        .json(body))
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(v) if !v.is_empty() && v.len() <= 255 => Ok(Some(v.to_owned())),
        _ => Err(ApiError::InvalidParams(vec![ParamError {
            parameter: IDEMPOTENCY_HEADER.into(),
            detail: "must be 1 to 255 visible ASCII characters".into(),
        }])),
    }
}

/// One complaint with its status, active rungs, deadlines and missing evidence.
#[utoipa::path(
    tag = "complaints",
    params(("id" = String, Path, description = "Complaint id (`cmp_…`)")),
    responses(
        (status = 200, body = ComplaintView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such complaint visible to this client", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["complaints:read"]))
)]
#[get("/v1/complaints/{id}")]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("complaints:read")?;
    let id = ComplaintId::parse(&path).map_err(|_| ApiError::NotFound)?;
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        complaints::find(conn, &caller.complaint_scope(), &id).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(row.to_view().map_err(ApiError::internal)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only complaints in this status.
    #[param(
        pattern = r"^(submitted|awaiting_evidence|routed|in_progress|responded|resolved|unresolved|rejected|withdrawn)$"
    )]
    pub status: Option<String>,
    pub category: Option<String>,
    /// The provider as filed.
    pub provider: Option<String>,
    /// RFC 3339 instant: only complaints changed at or after it.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub updated_since: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^cmp_[A-Za-z0-9]{1,64}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ComplaintPage {
    pub data: Vec<ComplaintView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Complaints visible to the caller, oldest first, with cursor pagination. Phone numbers
/// are masked in lists.
#[utoipa::path(
    tag = "complaints",
    params(ListQuery),
    responses(
        (status = 200, body = ComplaintPage),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["complaints:read"]))
)]
#[get("/v1/complaints")]
pub async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("complaints:read")?;
    let q: ListQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        ApiError::InvalidParams(vec![ParamError {
            parameter: "query".into(),
            detail: e.to_string(),
        }])
    })?;
    let mut errors = Vec::new();
    let mut bad = |p: &str, d: &str| {
        errors.push(ParamError {
            parameter: p.into(),
            detail: d.into(),
        })
    };
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => match Status::parse(s) {
            Some(s) => Some(s),
            None => {
                bad("status", "is not a known status");
                None
            }
        },
    };
    let updated_since = match q.updated_since.as_deref() {
        None => None,
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                bad(
                    "updated_since",
                    "must be an RFC 3339 instant such as 2026-11-20T08:00:00Z",
                );
                None
            }
        },
    };
    let limit = match q.limit.as_deref() {
        None => 20,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                bad("limit", "must be a whole number from 1 to 100");
                20
            }
        },
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => match decode_cursor(c) {
            Some(id) => Some(id),
            None => {
                bad("cursor", "is not a cursor this API issued");
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidParams(errors));
    }
    let filter = ListFilter {
        status,
        category: q.category,
        provider: q.provider,
        updated_since,
        after,
        limit,
    };
    let mut conn = state.pool.get().await?;
    let mut rows = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        complaints::list(conn, &caller.complaint_scope(), &filter).await
    })
    .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(&r.id))
    } else {
        None
    };
    let data = rows
        .iter()
        .map(|r| r.to_view().map(ComplaintView::masked))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(ComplaintPage { data, next_cursor }))
}

fn encode_cursor(id: &str) -> String {
    id.to_owned()
}

fn decode_cursor(cursor: &str) -> Option<String> {
    ComplaintId::parse(cursor).ok().map(String::from)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub data: Vec<EventView>,
}

/// The complaint's append-only history, in order.
#[utoipa::path(
    tag = "complaints",
    params(("id" = String, Path, description = "Complaint id (`cmp_…`)")),
    responses(
        (status = 200, body = EventList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["complaints:read"]))
)]
#[get("/v1/complaints/{id}/events")]
pub async fn events(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("complaints:read")?;
    let id = ComplaintId::parse(&path).map_err(|_| ApiError::NotFound)?;
    let mut conn = state.pool.get().await?;
    let rows = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        complaints::events(conn, &caller.complaint_scope(), &id).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(EventList {
        data: rows.iter().map(|r| r.to_view()).collect(),
    }))
}
