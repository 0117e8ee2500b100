//! What happens to a complaint after filing (CONTRACT §2): operators record what a channel
//! did, the consumer gives feedback, the partner withdraws the complaint or adds evidence.
//! Each change runs in one transaction on the locked complaint row, through the status
//! machine; an illegal move is 409 naming the current status.

use actix_web::{post, web, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use redress_shared::db::tenant;
use redress_shared::{
    db::complaints::{self, ComplaintRow},
    domain::{events, ComplaintView, FieldError},
    ids::ComplaintId,
    routing::cases::{self, CaseError, Transition},
    tenancy::Scope,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{auth::Caller, error::ApiError, state::AppState};

fn case_error(e: CaseError) -> ApiError {
    match e {
        CaseError::NotFound => ApiError::NotFound,
        CaseError::Illegal { status, action } => ApiError::Conflict {
            kind: "illegal-transition",
            detail: format!("cannot {action} a complaint that is `{status}`"),
            extra: json!({ "current_status": status }),
        },
        CaseError::Invalid(errors) => ApiError::InvalidBody(errors),
        CaseError::Db(e) => e.into(),
        CaseError::Corrupt(detail) => ApiError::internal(detail),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// 404 unless the caller may see the complaint (another tenant's, or another partner's).
async fn visible(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: &ComplaintId,
) -> Result<(), CaseError> {
    match complaints::find(conn, scope, id).await? {
        Some(_) => Ok(()),
        None => Err(CaseError::NotFound),
    }
}

/// The complaint as the change left it, in the same transaction.
async fn reread(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: &ComplaintId,
) -> Result<ComplaintRow, CaseError> {
    complaints::find(conn, scope, id)
        .await?
        .ok_or(CaseError::NotFound)
}

fn view(row: &ComplaintRow) -> Result<ComplaintView, ApiError> {
    row.to_view().map_err(ApiError::internal)
}

fn complaint_id(raw: &str) -> Result<ComplaintId, ApiError> {
    ComplaintId::parse(raw).map_err(|_| ApiError::NotFound)
}

/// Records what a channel did with the case: `acknowledge`, `respond` (the answer in
/// `note`), `resolve`, `escalate` (to the next eligible rung of the ladder; with none left
/// the case is `unresolved`) or `reject` (the reason in `note`). Where several tracks are
/// active, `channel` names the rung meant; without it the main track is meant.
#[utoipa::path(
    tag = "complaints",
    params(("id" = String, Path, description = "Complaint id (`cmp_…`)")),
    request_body(content = TransitionBody,
        example = json!({"action": "respond", "note": "客服同意7个工作日内退还押金", "channel_reference": "工单 A123"})),
    responses(
        (status = 200, description = "The complaint after the change", body = ComplaintView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The status machine does not allow it; `current_status` names the status", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["cases:operate"]))
)]
#[post("/v1/complaints/{id}/transitions")]
pub async fn transition(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("cases:operate")?;
    let raw = parse_body(&body)?;
    let t = Transition::from_json(&raw).map_err(ApiError::InvalidBody)?;
    let actor = events::actor_client(caller.client_id.as_str());
    let id = complaint_id(&path)?;
    let scope = caller.complaint_scope();
    let mut conn = state.pool.get().await?;
    let (status, row) = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        visible(conn, &scope, &id).await?;
        let status =
            cases::transition(conn, &caller.tenant_id, &id, &t, &actor, Utc::now()).await?;
        Ok::<_, CaseError>((status, reread(conn, &scope, &id).await?))
    })
    .await
    .map_err(case_error)?;
    tracing::info!(tenant.id = %caller.tenant_id, complaint.id = %id, action = t.action.as_str(), status = %status, "transition recorded");
    Ok(HttpResponse::Ok().json(view(&row)?))
}

/// The body of a transition (documentation only; the handler reads the JSON itself).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TransitionBody {
    #[schema(pattern = r"^(acknowledge|respond|resolve|escalate|reject)$")]
    pub action: String,
    #[schema(
        min_length = 1,
        max_length = 4000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub note: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub channel_reference: Option<String>,
    /// The rung meant, where several tracks are active.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub channel: Option<String>,
}

/// The body of a withdrawal (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct WithdrawBody {
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub reason: Option<String>,
}

/// The body of an evidence addition (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EvidenceBody {
    #[schema(min_items = 1, max_items = 50)]
    pub evidence: Vec<redress_shared::domain::complaint::Evidence>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Feedback {
    pub satisfied: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

/// The consumer's feedback on the answer: `satisfied` resolves the case; not satisfied
/// escalates it to the next eligible rung (or makes it `unresolved` when none is left).
#[utoipa::path(
    tag = "complaints",
    params(("id" = String, Path, description = "Complaint id (`cmp_…`)")),
    request_body = Feedback,
    responses(
        (status = 200, description = "The complaint after the change", body = ComplaintView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not routed yet, or closed; `current_status` names the status", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["complaints:write"]))
)]
#[post("/v1/complaints/{id}/feedback")]
pub async fn feedback(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("complaints:write")?;
    let raw = parse_body(&body)?;
    let mut errors = Vec::new();
    let satisfied = match raw.get("satisfied") {
        Some(Value::Bool(b)) => Some(*b),
        None | Some(Value::Null) => {
            errors.push(FieldError::new("/satisfied", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("/satisfied", "must be true or false"));
            None
        }
    };
    let comment = match raw.get("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 2000 => Some(s.trim().to_owned()),
        Some(Value::String(_)) => {
            errors.push(FieldError::new(
                "/comment",
                "must be at most 2000 characters",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("/comment", "must be a string"));
            None
        }
    };
    if let Some(obj) = raw.as_object() {
        for k in obj.keys() {
            if k != "satisfied" && k != "comment" {
                errors.push(FieldError::new(format!("/{k}"), "is not a known field"));
            }
        }
    } else {
        errors.push(FieldError::new("", "the body must be a JSON object"));
    }
    let Some(satisfied) = satisfied.filter(|_| errors.is_empty()) else {
        return Err(ApiError::InvalidBody(errors));
    };
    let actor = events::actor_client(caller.client_id.as_str());
    let id = complaint_id(&path)?;
    let scope = caller.complaint_scope();
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        visible(conn, &scope, &id).await?;
        cases::feedback(
            conn,
            &caller.tenant_id,
            &id,
            satisfied,
            comment.as_deref().filter(|c| !c.is_empty()),
            &actor,
            Utc::now(),
        )
        .await?;
        reread(conn, &scope, &id).await
    })
    .await
    .map_err(case_error)?;
    Ok(HttpResponse::Ok().json(view(&row)?))
}

/// Withdraws the complaint (`{"reason"}` optional). Any open complaint can be withdrawn.
#[utoipa::path(
    tag = "complaints",
    params(("id" = String, Path, description = "Complaint id (`cmp_…`)")),
    request_body(content = Option<WithdrawBody>, description = "Optional"),
    responses(
        (status = 200, description = "The withdrawn complaint", body = ComplaintView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already closed; `current_status` names the status", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["complaints:write"]))
)]
#[post("/v1/complaints/{id}/withdraw")]
pub async fn withdraw(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("complaints:write")?;
    let raw = parse_body(&body)?;
    let reason = match raw.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 2000 => {
            Some(s.trim().to_owned())
        }
        Some(_) => {
            return Err(ApiError::InvalidBody(vec![FieldError::new(
                "/reason",
                "must be a string of 1 to 2000 characters",
            )]))
        }
    };
    let actor = events::actor_client(caller.client_id.as_str());
    let id = complaint_id(&path)?;
    let scope = caller.complaint_scope();
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        visible(conn, &scope, &id).await?;
        cases::withdraw(
            conn,
            &caller.tenant_id,
            &id,
            reason.as_deref(),
            &actor,
            Utc::now(),
        )
        .await?;
        reread(conn, &scope, &id).await
    })
    .await
    .map_err(case_error)?;
    Ok(HttpResponse::Ok().json(view(&row)?))
}

/// Adds evidence: `{"evidence": [{"kind", "description", "sha256"}, …]}`. A case waiting
/// for evidence resumes: the answer is 202 and routing follows asynchronously (the case
/// stays in `awaiting_evidence` while required kinds are still missing). Otherwise 200.
#[utoipa::path(
    tag = "complaints",
    params(("id" = String, Path, description = "Complaint id (`cmp_…`)")),
    request_body(content = EvidenceBody,
        example = json!({"evidence": [{"kind": "payment_receipt", "description": "押金转账记录"}]})),
    responses(
        (status = 200, description = "Evidence added", body = ComplaintView),
        (status = 202, description = "Evidence added; the case waiting for it is being routed", body = ComplaintView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The complaint is closed; `current_status` names the status", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["complaints:write"]))
)]
#[post("/v1/complaints/{id}/evidence")]
pub async fn add_evidence(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("complaints:write")?;
    let raw = parse_body(&body)?;
    let items = cases::evidence_from_json(&raw).map_err(ApiError::InvalidBody)?;
    let actor = events::actor_client(caller.client_id.as_str());
    let id = complaint_id(&path)?;
    let scope = caller.complaint_scope();
    let mut conn = state.pool.get().await?;
    let (resumed, row) = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        visible(conn, &scope, &id).await?;
        let (_, resumed) =
            cases::add_evidence(conn, &caller.tenant_id, &id, &items, &actor, Utc::now()).await?;
        Ok::<_, CaseError>((resumed, reread(conn, &scope, &id).await?))
    })
    .await
    .map_err(case_error)?;
    drop(conn);
    if resumed {
        // The outbox row is committed; wake the relay so routing resumes now.
        state.relay.wake();
        Ok(HttpResponse::Accepted().json(view(&row)?))
    } else {
        Ok(HttpResponse::Ok().json(view(&row)?))
    }
}
