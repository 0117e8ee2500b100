//! Personal data of complainants and the audit log, for tenant admins: the export of
//! everything held about one complainant, the erasure of their personal data
//! (docs/PRIVACY.md), and `GET /v1/audit`.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncConnection;
use redress_shared::{
    audit::{self, Recorded},
    db::tenant::set_tenant,
    domain::{events::actor_client, FieldError},
    privacy::{self, Erasure, Subject},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    auth::Caller,
    error::{ApiError, ParamError},
    state::AppState,
};

const SCOPE: &str = "tenant:admin";

/// Who an export or erasure is about: exactly one of the two fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(min_properties = 1, max_properties = 1)]
pub struct SubjectRequest {
    /// The complainant's phone number in any usual form (`138 0013 8000`,
    /// `+86 13800138000`); every complaint of the tenant with that number.
    #[schema(
        nullable = false,
        max_length = 64,
        pattern = r"^[^0-9\u0000]*([0-9][^0-9\u0000]*){7,}$"
    )]
    pub phone: Option<String>,
    /// A complaint id (`cmp_…`): its complainant, with every other complaint of the tenant
    /// that has the same phone number.
    #[schema(
        nullable = false,
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub complaint_id: Option<String>,
}

fn subject(body: &[u8]) -> Result<Subject, ApiError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let Some(obj) = raw.as_object() else {
        return Err(ApiError::InvalidBody(vec![FieldError::new(
            "",
            "the body must be a JSON object",
        )]));
    };
    let mut errors = Vec::new();
    for k in obj.keys() {
        if k != "phone" && k != "complaint_id" {
            errors.push(FieldError::new(
                format!("/{}", redress_shared::domain::validation::escape_token(k)),
                "is not a known field",
            ));
        }
    }
    let text = |key: &str, errors: &mut Vec<FieldError>| match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 64 => {
            Some(s.trim().to_owned())
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("/{key}"),
                "must be a non-empty string of at most 64 characters",
            ));
            None
        }
    };
    let phone = text("phone", &mut errors);
    let complaint = text("complaint_id", &mut errors);
    if let Some(p) = &phone {
        if p.chars().filter(char::is_ascii_digit).count() < 7 {
            errors.push(FieldError::new("/phone", "must hold at least 7 digits"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidBody(errors));
    }
    match (phone, complaint) {
        (Some(p), None) => Ok(Subject::Phone(p)),
        (None, Some(c)) => Ok(Subject::ComplaintId(c)),
        _ => Err(ApiError::InvalidBody(vec![FieldError::new(
            "",
            "give exactly one of `phone` and `complaint_id`",
        )])),
    }
}

/// Everything the tenant holds about one complainant, as one JSON document: each complaint
/// as stored (personal fields in clear), its evidence, its history, the webhook messages
/// about it with their delivery attempts, the idempotency records that answered with it,
/// and the audit entries about it. Nothing held is an empty `complaints` list. The export
/// itself is recorded in the audit log (ids only).
#[utoipa::path(
    tag = "personal-data",
    request_body = SubjectRequest,
    responses(
        (status = 200, description = "The export document", body = Object),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[post("/v1/complainants/export")]
pub async fn export(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let subject = subject(&body)?;
    let actor = actor_client(caller.client_id.as_str());
    let mut conn = state.pool.get().await?;
    let document = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let document = privacy::export(conn, &caller.tenant_id, &subject, Utc::now()).await?;
            privacy::record_export(conn, &caller.tenant_id, &subject, &actor, &document).await?;
            Ok::<_, diesel::result::Error>(document)
        })
        .await?;
    tracing::info!(tenant.id = %caller.tenant_id, actor = %actor, complaints = document["complaints"].as_array().map_or(0, Vec::len), "complainant exported");
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(document))
}

/// Erases the personal data of one complainant (docs/PRIVACY.md lists the fields): from
/// their complaints, the history, webhook messages and delivery answers, idempotency
/// records and queued messages, in one transaction. The anonymised cases keep their
/// category, provider, status, timestamps, event sequence and counts. Recorded in the
/// audit log (ids and counts only). Idempotent; nothing held is an empty erasure.
#[utoipa::path(
    tag = "personal-data",
    request_body = SubjectRequest,
    responses(
        (status = 200, body = Erasure),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[post("/v1/complainants/erase")]
pub async fn erase(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let subject = subject(&body)?;
    let actor = actor_client(caller.client_id.as_str());
    let mut conn = state.pool.get().await?;
    let erasure: Erasure = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            privacy::erase(conn, &caller.tenant_id, &subject, &actor, Utc::now()).await
        })
        .await?;
    tracing::info!(tenant.id = %caller.tenant_id, actor = %actor, complaints = erasure.complaints.len(), "complainant erased");
    Ok(HttpResponse::Ok().json(erasure))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries older than this id (`next_before` of the previous page).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub data: Vec<Recorded>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

/// The tenant's audit log, newest first: admin actions (clients, routing, SLA policies,
/// calendars, webhook endpoints and secrets, exports and erasures), who did them and when.
#[utoipa::path(
    tag = "administration",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[get("/v1/audit")]
pub async fn list_audit(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(SCOPE)?;
    let q: AuditQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        ApiError::InvalidParams(vec![ParamError {
            parameter: "query".into(),
            detail: e.to_string(),
        }])
    })?;
    let mut errors = Vec::new();
    let limit = match q.limit.as_deref().map(str::parse::<i64>) {
        None => 50,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            errors.push(ParamError {
                parameter: "limit".into(),
                detail: "must be a whole number from 1 to 100".into(),
            });
            50
        }
    };
    let before = match q.before.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n),
        Some(_) => {
            errors.push(ParamError {
                parameter: "before".into(),
                detail: "must be an entry id from a previous page".into(),
            });
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidParams(errors));
    }
    let mut conn = state.pool.get().await?;
    let mut rows = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            audit::list(conn, &caller.tenant_id, before, limit + 1).await
        })
        .await?;
    let next_before = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AuditPage {
        data: rows,
        next_before,
    }))
}
