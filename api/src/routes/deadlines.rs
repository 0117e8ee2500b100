//! Operators extending a complaint's deadline (CONTRACT §4; e.g. a complex case's 15 → 30
//! → 60 days, the complainant told why).

use actix_web::{post, web, HttpResponse};
use chrono::Utc;
use redress_shared::db::tenant;
use redress_shared::{
    db::complaints,
    deadlines::{self, ExtendError, Extension},
    domain::{events::actor_client, FieldError},
    ids::ComplaintId,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{auth::Caller, error::ApiError, state::AppState};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ExtendBody {
    /// The new total target, counted from the clock's start (15 → 30: `30`).
    #[schema(example = 30, minimum = 1)]
    pub amount: u32,
    /// The clock's unit.
    #[schema(
        example = "calendar_days",
        pattern = r"^(seconds|minutes|hours|calendar_days|working_days)$"
    )]
    pub unit: String,
    /// Why (recorded in the event; the complainant is owed the reason).
    #[schema(
        example = "案情复杂，需调取交易记录",
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub reason: String,
    /// The rung's channel code, when several active rungs have this clock.
    #[schema(pattern = r"^[a-z0-9_]{1,64}$")]
    pub channel: Option<String>,
}

struct Parsed {
    amount: u32,
    unit: redress_shared::calendar::Unit,
    reason: String,
    channel: Option<String>,
}

fn parse(raw: &Value) -> Result<Parsed, Vec<FieldError>> {
    let Some(obj) = raw.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !["amount", "unit", "reason", "channel"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("/{}", redress_shared::domain::validation::escape_token(key)),
                "is not a known field",
            ));
        }
    }
    let amount = match obj
        .get("amount")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
    {
        Some(n) if n >= 1 => n,
        _ => {
            errors.push(FieldError::new(
                "/amount",
                "must be a whole number of at least 1",
            ));
            0
        }
    };
    let unit = match obj
        .get("unit")
        .and_then(Value::as_str)
        .and_then(deadlines::parse_unit)
    {
        Some(unit) => Some(unit),
        None => {
            errors.push(FieldError::new(
                "/unit",
                "must be one of: seconds, minutes, hours, calendar_days, working_days",
            ));
            None
        }
    };
    let reason = match obj.get("reason").and_then(Value::as_str).map(str::trim) {
        Some(r) if !r.is_empty() && r.chars().count() <= 2000 => r.to_owned(),
        _ => {
            errors.push(FieldError::new(
                "/reason",
                "is required: 1 to 2000 characters saying why",
            ));
            String::new()
        }
    };
    let channel = match obj.get("channel") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if !c.is_empty() && c.len() <= 64 => Some(c.clone()),
        Some(_) => {
            errors.push(FieldError::new("/channel", "must be a channel code"));
            None
        }
    };
    match (unit, errors.is_empty()) {
        (Some(unit), true) => Ok(Parsed {
            amount,
            unit,
            reason,
            channel,
        }),
        _ => Err(errors),
    }
}

/// Extends a running (or paused) deadline of the complaint to a larger total target,
/// counted from the clock's start, within the ceiling its SLA policy allows. Records
/// `complaint.deadline_extended` with the reason and updates the deadline on the rung.
#[utoipa::path(
    tag = "complaints",
    params(
        ("id" = String, Path, description = "Complaint id (`cmp_…`)"),
        ("clock" = String, Path, description = "`acknowledge` or `respond`"),
    ),
    request_body = ExtendBody,
    responses(
        (status = 200, description = "The deadline as it now is", body = Object),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such complaint, or no such deadline on its active rungs", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The case is closed or the deadline already ended (`state` says how)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["cases:operate"]))
)]
#[post("/v1/complaints/{id}/deadlines/{clock}/extend")]
pub async fn extend(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("cases:operate")?;
    let (id, clock) = path.into_inner();
    let id = ComplaintId::parse(&id).map_err(|_| ApiError::NotFound)?;
    if !deadlines::CLOCKS.contains(&clock.as_str()) {
        return Err(ApiError::NotFound);
    }
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let parsed = parse(&raw).map_err(ApiError::InvalidBody)?;
    let actor = actor_client(caller.client_id.as_str());
    let tenant = caller.tenant_id.clone();
    let mut conn = state.pool.get().await?;
    let now = Utc::now();
    let view = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
            let row = complaints::find_for_update(conn, &tenant, &id)
                .await?
                .ok_or(ApiError::NotFound)?;
            let status = row.status().map_err(ApiError::internal)?;
            if status.is_final() {
                return Err(ApiError::Conflict {
                    kind: "complaint-closed",
                    detail: format!("the complaint is {status}; its deadlines are over"),
                    extra: json!({ "status": status }),
                });
            }
            let request = Extension {
                clock: &clock,
                channel: parsed.channel.as_deref(),
                amount: parsed.amount,
                unit: parsed.unit,
                reason: &parsed.reason,
                actor: &actor,
            };
            deadlines::extend(conn, &tenant, &id, &request, now)
                .await
                .map_err(|e| match e {
                    ExtendError::NotFound(_) => ApiError::NotFound,
                    ExtendError::Ambiguous { clock, channels } => {
                        ApiError::InvalidBody(vec![FieldError::new(
                            "/channel",
                            format!(
                                "several active rungs have a {clock} deadline; name one of: {}",
                                channels.join(", ")
                            ),
                        )])
                    }
                    ExtendError::NotLive(state) => ApiError::Conflict {
                        kind: "deadline-ended",
                        detail: format!("the {clock} deadline is {state}; only a running or paused deadline can be extended"),
                        extra: json!({ "state": state }),
                    },
                    ExtendError::Invalid(errors) => ApiError::InvalidBody(errors),
                    ExtendError::Db(e) => e.into(),
                })
        })
        .await?;
    tracing::info!(tenant.id = %caller.tenant_id, complaint.id = %id, sla.clock = %clock, actor = %caller.client_id, "deadline extended");
    Ok(HttpResponse::Ok().json(view))
}
