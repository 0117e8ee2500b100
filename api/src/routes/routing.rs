//! The tenant's routing (CONTRACT §3): reading it, changing it (every change a new
//! version, in force for the next complaint), its history, and the preview that answers
//! what the worker would decide for a complaint, with the same code.

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::db::tenant;
use redress_shared::{
    db::tenant::set_tenant,
    domain::{ComplaintInput, FieldError},
    ids::TenantId,
    routing::{
        cases,
        deadlines_hook::{self, PreviewRung},
        edit::{self, Collection},
        model::RoutingData,
        parse,
        store::{self, StoreError, VersionRow},
        CompiledRouting, Decision,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

use crate::{
    auth::Caller,
    error::{ApiError, ParamError},
    state::AppState,
};

/// Reading is open to operators too: they explain routing to complainants.
fn require_read(caller: &Caller) -> Result<(), ApiError> {
    if caller.has("cases:operate") {
        Ok(())
    } else {
        caller.require("tenant:admin")
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Db(e) => e.into(),
        StoreError::Invalid(errors) => ApiError::InvalidBody(errors),
        StoreError::Conflict { base, current } => ApiError::Conflict {
            kind: "routing-version-conflict",
            detail: format!(
                "the routing was changed since version {base}: version {current} is in force; read it, reapply the change and send base_version {current}"
            ),
            extra: json!({ "current_version": current }),
        },
        other => ApiError::internal(other),
    }
}

/// One version of a tenant's routing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoutingVersion {
    /// 0 when the tenant has no routing yet.
    pub version: i32,
    pub note: Option<String>,
    /// Who made it: `client:cli_…`, or `system:…` for templates and migrations.
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub routing: RoutingData,
}

impl RoutingVersion {
    fn of(row: Option<VersionRow>) -> Result<Self, ApiError> {
        Ok(match row {
            None => RoutingVersion {
                version: 0,
                note: None,
                created_by: None,
                created_at: None,
                routing: RoutingData::default(),
            },
            Some(row) => RoutingVersion {
                version: row.version,
                routing: serde_json::from_value(row.snapshot).map_err(ApiError::internal)?,
                note: row.note,
                created_by: Some(row.created_by),
                created_at: Some(row.created_at),
            },
        })
    }
}

/// The routing in force: channels, providers, categories, ladders and rules.
#[utoipa::path(
    tag = "routing",
    responses(
        (status = 200, body = RoutingVersion),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]), ("bearer" = ["cases:operate"]))
)]
#[get("/v1/routing")]
pub async fn get_routing(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::latest(conn, &caller.tenant_id).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(RoutingVersion::of(row)?))
}

/// The body of `PUT /v1/routing`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingReplacement {
    /// The whole routing document.
    pub routing: RoutingData,
    /// What changed and why, kept with the version.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500)]
    pub note: Option<String>,
    /// The version this document was edited from; when given and another version is in
    /// force, the request is refused with 409 instead of overwriting that change.
    #[serde(default)]
    pub base_version: Option<i32>,
}

fn check_note(note: Option<&str>, pointer: &str) -> Result<(), ApiError> {
    match note {
        Some(n) if n.trim().is_empty() || n.chars().count() > 500 => Err(ApiError::InvalidBody(
            vec![FieldError::new(pointer, "must be 1 to 500 characters")],
        )),
        _ => Ok(()),
    }
}

async fn save(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    base: Option<i32>,
    note: Option<&str>,
    actor: &str,
    edit: impl FnOnce(RoutingData) -> Result<RoutingData, StoreError> + Send,
) -> Result<VersionRow, StoreError> {
    conn.transaction(async |conn| {
        set_tenant(conn, tenant).await?;
        let row = store::save_with(conn, tenant, base, note, actor, edit).await?;
        redress_shared::audit::record(
            conn,
            redress_shared::audit::Entry {
                tenant: Some(tenant),
                actor,
                action: "routing.changed",
                target: Some(&format!("routing/v{}", row.version)),
                details: serde_json::json!({"version": row.version, "note": note}),
            },
        )
        .await?;
        Ok(row)
    })
    .await
}

/// Replaces the whole routing. Every condition is checked first: a document with any
/// problem is refused with 422 (each problem named by JSON pointer, a condition's by its
/// rule and position) and the version in force stays in force. Otherwise it becomes the
/// next version and routes the next complaint; cases already routed keep theirs.
#[utoipa::path(
    tag = "routing",
    request_body = RoutingReplacement,
    responses(
        (status = 200, description = "The new version", body = RoutingVersion),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`base_version` is not the version in force (`current_version` says which is)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[put("/v1/routing")]
pub async fn replace_routing(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let req: RoutingReplacement = parse::from_value(&raw, "").map_err(ApiError::InvalidBody)?;
    check_note(req.note.as_deref(), "/note")?;
    let mut conn = state.pool.get().await?;
    let actor = redress_shared::domain::events::actor_client(caller.client_id.as_str());
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        save(
            conn,
            &caller.tenant_id,
            req.base_version,
            req.note.as_deref(),
            &actor,
            |_| Ok(req.routing),
        )
        .await
    })
    .await
    .map_err(|e| match e {
        StoreError::Invalid(errors) => ApiError::InvalidBody(
            errors
                .into_iter()
                .map(|e| FieldError::new(format!("/routing{}", e.pointer), e.detail))
                .collect(),
        ),
        other => store_error(other),
    })?;
    tracing::info!(tenant.id = %caller.tenant_id, routing.version = row.version, actor = %actor, "routing replaced");
    Ok(HttpResponse::Ok().json(RoutingVersion::of(Some(row))?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionsQuery {
    /// Only versions before this one (the next page).
    pub before: Option<i32>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionSummary {
    pub version: i32,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionList {
    /// Newest first.
    pub data: Vec<VersionSummary>,
}

/// The history of the tenant's routing, newest first.
#[utoipa::path(
    tag = "routing",
    params(VersionsQuery),
    responses(
        (status = 200, body = VersionList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]), ("bearer" = ["cases:operate"]))
)]
#[get("/v1/routing/versions")]
pub async fn list_versions(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let q: VersionsQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        ApiError::InvalidParams(vec![ParamError {
            parameter: "query".into(),
            detail: e.to_string(),
        }])
    })?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidParams(vec![ParamError {
            parameter: "limit".into(),
            detail: "must be a whole number from 1 to 100".into(),
        }]));
    }
    let mut conn = state.pool.get().await?;
    let rows = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::list_versions(conn, &caller.tenant_id, q.before, limit).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(VersionList {
        data: rows
            .into_iter()
            .map(|(version, note, created_by, created_at)| VersionSummary {
                version,
                note,
                created_by,
                created_at,
            })
            .collect(),
    }))
}

/// One version of the routing, as it was; what a case routed with it was decided by.
#[utoipa::path(
    tag = "routing",
    params(("version" = i32, Path, description = "Version number")),
    responses(
        (status = 200, body = RoutingVersion),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]), ("bearer" = ["cases:operate"]))
)]
#[get("/v1/routing/versions/{version}")]
pub async fn get_version(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let v: i32 = path.parse().map_err(|_| ApiError::NotFound)?;
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        store::version(conn, &caller.tenant_id, v).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(RoutingVersion::of(Some(row))?))
}

fn collection(raw: &str) -> Result<Collection, ApiError> {
    Collection::parse(raw).ok_or(ApiError::NotFound)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryList {
    /// The routing version these entries are from.
    pub version: i32,
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
}

/// The entries of one collection of the routing in force: `channels`, `providers`,
/// `categories`, `ladders` or `rules`.
#[utoipa::path(
    tag = "routing",
    params(("collection" = String, Path, pattern = r"^(channels|providers|categories|ladders|rules)$", description = "`channels`, `providers`, `categories`, `ladders` or `rules`")),
    responses(
        (status = 200, body = EntryList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]), ("bearer" = ["cases:operate"]))
)]
#[get("/v1/routing/{collection}", guard = "known_collection")]
pub async fn list_entries(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let c = collection(&path)?;
    let mut conn = state.pool.get().await?;
    let current = RoutingVersion::of(
        tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
            store::latest(conn, &caller.tenant_id).await
        })
        .await?,
    )?;
    Ok(HttpResponse::Ok().json(EntryList {
        version: current.version,
        data: edit::list(&current.routing, c),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryChange {
    /// The new routing version.
    pub version: i32,
    /// The entry as stored (absent after a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub entry: Option<Value>,
}

/// Creates or replaces one entry (`code`, or `id` for rules, from the path). Checked like
/// a whole document, in a new version; 422 leaves the version in force as it is.
#[utoipa::path(
    tag = "routing",
    params(
        ("collection" = String, Path, description = "`channels`, `providers`, `categories`, `ladders` or `rules`"),
        ("code" = String, Path, description = "The entry's `code` (`id` for a rule)"),
    ),
    request_body(content = Object, description = "A channel, provider, category, ladder or rule; see docs/ROUTING.md"),
    responses(
        (status = 200, body = EntryChange),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such collection", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[put("/v1/routing/{collection}/{code}")]
pub async fn put_entry(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let (raw_collection, code) = path.into_inner();
    let c = collection(&raw_collection)?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let actor = redress_shared::domain::events::actor_client(caller.client_id.as_str());
    let note = format!("put {}/{code}", c.name());
    let mut index = None;
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        save(conn, &caller.tenant_id, None, Some(&note), &actor, |data| {
            let (data, i) = edit::upsert(data, c, &code, &raw).map_err(StoreError::Invalid)?;
            index = Some(i);
            Ok(data)
        })
        .await
    })
    .await;
    let row = match row {
        Ok(row) => row,
        Err(StoreError::Invalid(errors)) => {
            // Parse errors already point into the body; validation errors are rebased.
            let errors = if index.is_some() {
                edit::errors_for_entry(errors, c, index)
            } else {
                errors
            };
            return Err(ApiError::InvalidBody(errors));
        }
        Err(e) => return Err(store_error(e)),
    };
    let stored: RoutingData = serde_json::from_value(row.snapshot).map_err(ApiError::internal)?;
    let entry =
        edit::position(&stored, c, &code).and_then(|i| edit::list(&stored, c).into_iter().nth(i));
    tracing::info!(tenant.id = %caller.tenant_id, routing.version = row.version, routing.entry = %note, "routing entry saved");
    Ok(HttpResponse::Ok().json(EntryChange {
        version: row.version,
        entry,
    }))
}

/// Removes one entry, in a new version. Refused with 422 while other entries refer to it.
#[utoipa::path(
    tag = "routing",
    params(
        ("collection" = String, Path, description = "`channels`, `providers`, `categories`, `ladders` or `rules`"),
        ("code" = String, Path, description = "The entry's `code` (`id` for a rule)"),
    ),
    responses(
        (status = 200, body = EntryChange),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Other entries refer to it", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[delete("/v1/routing/{collection}/{code}")]
pub async fn delete_entry(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let (raw_collection, code) = path.into_inner();
    let c = collection(&raw_collection)?;
    let actor = redress_shared::domain::events::actor_client(caller.client_id.as_str());
    let note = format!("delete {}/{code}", c.name());
    let mut found = true;
    let mut conn = state.pool.get().await?;
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        save(conn, &caller.tenant_id, None, Some(&note), &actor, |data| {
            match edit::remove(data, c, &code) {
                Some(data) => Ok(data),
                None => {
                    found = false;
                    // Nothing to remove: refuse so no version is written.
                    Err(StoreError::Invalid(Vec::new()))
                }
            }
        })
        .await
    })
    .await;
    match row {
        Ok(row) => {
            tracing::info!(tenant.id = %caller.tenant_id, routing.version = row.version, routing.entry = %note, "routing entry removed");
            Ok(HttpResponse::Ok().json(EntryChange {
                version: row.version,
                entry: None,
            }))
        }
        Err(_) if !found => Err(ApiError::NotFound),
        Err(StoreError::Invalid(errors)) => Err(ApiError::InvalidBody(edit::errors_for_entry(
            errors, c, None,
        ))),
        Err(e) => Err(store_error(e)),
    }
}

/// The categories complaints may be filed under: those of the routing in force. Intake
/// and preview refuse any other with 422, naming the known ones.
pub async fn check_category(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    category: &str,
) -> Result<(), ApiError> {
    let routing = store::compiled(conn, tenant, None)
        .await
        .map_err(store_error)?;
    category_in(routing.as_deref(), category)
}

/// `category` is one of `routing`'s, or the 422 naming `/category` and the known ones.
pub fn category_in(routing: Option<&CompiledRouting>, category: &str) -> Result<(), ApiError> {
    let known: Vec<&str> = routing
        .map(|r| r.data.categories.iter().map(|c| c.code.as_str()).collect())
        .unwrap_or_default();
    if known.contains(&category) {
        return Ok(());
    }
    Err(ApiError::InvalidBody(vec![FieldError::new(
        "/category",
        if known.is_empty() {
            "this hub has no categories configured yet".to_owned()
        } else {
            format!("must be one of: {}", known.join(", "))
        },
    )]))
}

/// The routing in force of each tenant as this process last read it, so intake checks a
/// category without a read of its own. Filing confirms in the same statement that the
/// version is still the latest (`redress_file_complaint`); when an edit made another one
/// latest, intake reads it here again and checks the category anew, so a stale entry costs
/// a retry, never a wrong answer.
#[derive(Default)]
pub struct RoutingInForce {
    latest: std::sync::Mutex<std::collections::HashMap<String, Arc<CompiledRouting>>>,
}

impl RoutingInForce {
    /// The tenant's routing as last read, if this process has read it.
    pub fn remembered(&self, tenant: &TenantId) -> Option<Arc<CompiledRouting>> {
        self.latest
            .lock()
            .ok()
            .and_then(|m| m.get(tenant.as_str()).cloned())
    }

    /// Reads the tenant's latest routing and remembers it. `None`: the tenant has none.
    pub async fn reload(
        &self,
        conn: &mut AsyncPgConnection,
        tenant: &TenantId,
    ) -> Result<Option<Arc<CompiledRouting>>, ApiError> {
        let routing = tenant::transaction(conn, tenant, async |conn| {
            store::compiled(conn, tenant, None)
                .await
                .map_err(store_error)
        })
        .await?;
        if let (Some(r), Ok(mut m)) = (&routing, self.latest.lock()) {
            m.insert(tenant.to_string(), r.clone());
        }
        Ok(routing)
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Preview with this routing version instead of the one in force.
    pub version: Option<i32>,
}

/// The deadlines a start rung would get.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RungDeadlines {
    pub track: String,
    pub channel: String,
    #[schema(value_type = Vec<Object>)]
    pub deadlines: Vec<Value>,
}

/// The routing decision for a complaint, as the worker would make it now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    #[serde(flatten)]
    pub decision: Decision,
    /// The deadlines each start rung would get if the complaint were filed now.
    pub deadlines: Vec<RungDeadlines>,
}

/// Answers where a complaint would go and why, storing nothing: the rule that matched, the
/// ladder and start rung, the parallel tracks, the rungs skipped and why, the missing
/// evidence and the deadlines. It runs the worker's own decision code, so a complaint
/// filed now with the same body is routed the same way.
#[utoipa::path(
    tag = "routing",
    params(PreviewQuery),
    request_body(content = ComplaintInput, description = "A complaint body, as for POST /v1/complaints"),
    responses(
        (status = 200, body = Preview),
        (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such routing version", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]), ("bearer" = ["cases:operate"]))
)]
#[post("/v1/routing/preview")]
pub async fn preview(
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_read(&caller)?;
    let q: PreviewQuery = serde_urlencoded::from_str(req.query_string()).map_err(|e| {
        ApiError::InvalidParams(vec![ParamError {
            parameter: "version".into(),
            detail: e.to_string(),
        }])
    })?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let input =
        ComplaintInput::from_json(&raw, Utc::now().date_naive()).map_err(ApiError::InvalidBody)?;
    let mut conn = state.pool.get().await?;
    if q.version.is_none() {
        tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
            check_category(conn, &caller.tenant_id, &input.category).await
        })
        .await?;
    }
    let now = Utc::now();
    let decision = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        cases::decide(conn, &caller.tenant_id, &input, q.version, now).await
    })
    .await
    .map_err(store_error)?
    .ok_or(ApiError::NotFound)?;
    let rungs: Vec<PreviewRung> = decision
        .main
        .iter()
        .chain(decision.parallel_tracks.iter())
        .filter_map(|t| {
            t.start
                .as_ref()
                .map(|s| (t.track.clone(), s.channel.clone(), s.sla_policy.clone()))
        })
        .collect();
    let deadlines = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        deadlines_hook::preview(
            conn,
            &caller.tenant_id,
            &caller.client_id,
            &input,
            &rungs,
            now,
        )
        .await
    })
    .await?;
    Ok(HttpResponse::Ok().json(Preview {
        deadlines: rungs
            .into_iter()
            .zip(deadlines)
            .map(|((track, channel, _), deadlines)| RungDeadlines {
                track,
                channel,
                deadlines,
            })
            .collect(),
        decision,
    }))
}

/// `GET /v1/routing/{collection}` only for the collections there are, so that a GET of
/// a fixed sibling path (`/v1/routing/preview`) falls through to the 405 answer.
fn known_collection(ctx: &actix_web::guard::GuardContext) -> bool {
    ctx.head()
        .uri
        .path()
        .rsplit('/')
        .next()
        .is_some_and(|c| ["channels", "providers", "categories", "ladders", "rules"].contains(&c))
}
