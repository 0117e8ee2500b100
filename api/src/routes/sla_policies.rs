//! SLA policies (CONTRACT §4), managed by tenant admins and referenced by code from routing
//! data. A clock copies its policy when it starts, so a change applies to rungs entered
//! afterwards and never moves a running deadline.

use actix_web::{delete, get, http::header, post, put, web, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncConnection;
use redress_shared::db::tenant;
use redress_shared::{
    db::tenant::set_tenant,
    deadlines::policies::{self, PolicyView, SlaPolicy},
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{auth::Caller, error::ApiError, state::AppState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyList {
    pub data: Vec<PolicyView>,
}

/// Reading is open to operators too: they work the deadlines the policies set.
fn require_read(caller: &Caller) -> Result<(), ApiError> {
    if caller.has("cases:operate") {
        Ok(())
    } else {
        caller.require("tenant:admin")
    }
}

async fn validated(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    path_code: Option<&str>,
) -> Result<SlaPolicy, ApiError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let policy = SlaPolicy::from_json(&raw, path_code).map_err(ApiError::InvalidBody)?;
    let mut conn = state.pool.get().await?;
    let errors = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        policies::check_references(conn, &caller.tenant_id, &policy).await
    })
    .await?;
    if !errors.is_empty() {
        return Err(ApiError::InvalidBody(errors));
    }
    Ok(policy)
}

/// The tenant's SLA policies.
#[utoipa::path(
    tag = "sla-policies",
    responses(
        (status = 200, body = PolicyList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]), ("bearer" = ["cases:operate"]))
)]
#[get("/v1/sla-policies")]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let mut conn = state.pool.get().await?;
    let data = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        policies::list(conn, &caller.tenant_id).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(PolicyList { data }))
}

/// One SLA policy.
#[utoipa::path(
    tag = "sla-policies",
    params(("code" = String, Path, description = "Policy code")),
    responses(
        (status = 200, body = PolicyView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]), ("bearer" = ["cases:operate"]))
)]
#[get("/v1/sla-policies/{code}")]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let mut conn = state.pool.get().await?;
    let policy = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        policies::find(conn, &caller.tenant_id, &path).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(policy))
}

/// Creates an SLA policy.
#[utoipa::path(
    tag = "sla-policies",
    request_body = SlaPolicy,
    responses(
        (status = 201, body = PolicyView, headers(("Location" = String))),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[post("/v1/sla-policies")]
pub async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let policy = validated(&state, &caller, &body, None).await?;
    let mut conn = state.pool.get().await?;
    let view = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let view = policies::insert(conn, &caller.tenant_id, &policy, Utc::now()).await?;
            if view.is_some() {
                crate::audit::record(conn, &caller, "sla_policy.created", &policy.code, json!({}))
                    .await?;
            }
            Ok::<_, ApiError>(view)
        })
        .await?
        .ok_or_else(|| ApiError::Conflict {
            kind: "sla-policy-exists",
            detail: format!(
                "the tenant already has a policy `{}`; PUT /v1/sla-policies/{} replaces it",
                policy.code, policy.code
            ),
            extra: json!({}),
        })?;
    tracing::info!(tenant.id = %caller.tenant_id, sla.policy = %policy.code, "SLA policy created");
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/sla-policies/{}", policy.code),
        ))
        .json(view))
}

/// Replaces an SLA policy. Rungs entered from now on use it; running clocks keep theirs.
#[utoipa::path(
    tag = "sla-policies",
    params(("code" = String, Path, description = "Policy code")),
    request_body = SlaPolicy,
    responses(
        (status = 200, body = PolicyView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[put("/v1/sla-policies/{code}")]
pub async fn replace(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let policy = validated(&state, &caller, &body, Some(&path)).await?;
    let mut conn = state.pool.get().await?;
    let view = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let view = policies::replace(conn, &caller.tenant_id, &policy, Utc::now())
                .await?
                .ok_or(ApiError::NotFound)?;
            crate::audit::record(
                conn,
                &caller,
                "sla_policy.replaced",
                &policy.code,
                json!({}),
            )
            .await?;
            Ok::<_, ApiError>(view)
        })
        .await?;
    tracing::info!(tenant.id = %caller.tenant_id, sla.policy = %policy.code, "SLA policy replaced");
    Ok(HttpResponse::Ok().json(view))
}

/// Deletes an SLA policy. Rungs that referenced it get no clocks from now on; running
/// clocks keep theirs.
#[utoipa::path(
    tag = "sla-policies",
    params(("code" = String, Path, description = "Policy code")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[delete("/v1/sla-policies/{code}")]
pub async fn remove(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let mut conn = state.pool.get().await?;
    conn.transaction(async |conn| {
        set_tenant(conn, &caller.tenant_id).await?;
        if !policies::delete(conn, &caller.tenant_id, &path).await? {
            return Err(ApiError::NotFound);
        }
        crate::audit::record(conn, &caller, "sla_policy.deleted", &path, json!({})).await?;
        Ok(())
    })
    .await?;
    tracing::info!(tenant.id = %caller.tenant_id, sla.policy = %path, "SLA policy deleted");
    Ok(HttpResponse::NoContent().finish())
}
