//! Working-day calendars (CONTRACT §4): due dates and day lists for any caller, the
//! tenant's own calendars for tenant admins. Built-in calendars get new years from
//! `redress-api admin calendar load-year`, not through the API: they are shared by every
//! tenant.

use actix_web::{get, http::header, post, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use diesel_async::AsyncConnection;
use redress_shared::db::tenant;
use redress_shared::{
    calendar::{self as cal, Calendar, CalendarError, Day, Target, CN_MAINLAND_ID, WEEKDAYS_ID},
    db::tenant::set_tenant,
    deadlines::{
        self,
        calendars::{self, CalendarRow, DayEntry, NewCalendar},
        DeadlineError,
    },
    domain::FieldError,
    ids::TenantId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    auth::Caller,
    error::{ApiError, ParamError},
    state::AppState,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CalendarView {
    #[schema(example = "cn-mainland")]
    pub id: String,
    pub name: String,
    /// `built_in` or `tenant`.
    #[schema(example = "built_in")]
    pub kind: &'static str,
    /// For tenant calendars, the built-in calendar they start from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// First and last date the calendar can answer for; null: every year (weekday rule).
    pub known_from: Option<NaiveDate>,
    pub known_to: Option<NaiveDate>,
    /// The days that differ from the Monday–Friday rule (on a tenant calendar, the
    /// tenant's own; the base calendar's apply too). Only on a single calendar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<DayEntry>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CalendarList {
    pub data: Vec<CalendarView>,
}

fn built_in_name(id: &str) -> &'static str {
    match id {
        CN_MAINLAND_ID => {
            "Mainland China: State Council holiday arrangements, make-up working days included"
        }
        WEEKDAYS_ID => "Monday to Friday, no holidays",
        _ => "",
    }
}

fn built_in_view(calendar: &Calendar, with_days: bool) -> CalendarView {
    let (known_from, known_to) = match calendar.known_dates() {
        Some((from, to)) => (Some(from), Some(to)),
        None => (None, None),
    };
    CalendarView {
        id: calendar.id().to_owned(),
        name: built_in_name(calendar.id()).to_owned(),
        kind: "built_in",
        base: None,
        known_from,
        known_to,
        days: with_days.then(|| calendar.overrides().map(calendars::day_entry).collect()),
    }
}

fn tenant_view(
    row: &CalendarRow,
    calendar: &Calendar,
    days: Option<Vec<DayEntry>>,
) -> CalendarView {
    let (known_from, known_to) = match calendar.known_dates() {
        Some((from, to)) => (Some(from), Some(to)),
        None => (None, None),
    };
    CalendarView {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: "tenant",
        base: Some(row.base.clone()),
        known_from,
        known_to,
        days,
    }
}

fn from_deadline_error(e: DeadlineError) -> ApiError {
    match e {
        DeadlineError::UnknownCalendar(_) => ApiError::NotFound,
        DeadlineError::Invalid(errors) => ApiError::InvalidBody(errors),
        DeadlineError::Calendar(e) => {
            ApiError::InvalidBody(vec![FieldError::new("", e.to_string())])
        }
        DeadlineError::Corrupt(e) => ApiError::internal(e),
        DeadlineError::Db(e) => e.into(),
    }
}

async fn load(state: &AppState, tenant: &TenantId, id: &str) -> Result<Calendar, ApiError> {
    let mut conn = state.pool.get().await?;
    tenant::transaction(&mut conn, tenant, async |conn| {
        calendars::load(conn, tenant, id).await
    })
    .await
    .map_err(from_deadline_error)
}

/// Built-in calendars and the tenant's own.
#[utoipa::path(
    tag = "calendars",
    responses(
        (status = 200, body = CalendarList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/calendars")]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let mut data = Vec::new();
    for id in calendars::BUILT_IN {
        if let Some(calendar) = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
            calendars::built_in(conn, id).await
        })
        .await
        .map_err(from_deadline_error)?
        {
            data.push(built_in_view(&calendar, false));
        }
    }
    for row in tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        calendars::list(conn, &caller.tenant_id).await
    })
    .await?
    {
        let calendar = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
            calendars::load(conn, &caller.tenant_id, &row.id).await
        })
        .await
        .map_err(from_deadline_error)?;
        data.push(tenant_view(&row, &calendar, None));
    }
    Ok(HttpResponse::Ok().json(CalendarList { data }))
}

/// One calendar with the days that differ from the Monday–Friday rule.
#[utoipa::path(
    tag = "calendars",
    params(("id" = String, Path, description = "`cn-mainland`, `weekdays` or a tenant calendar id")),
    responses(
        (status = 200, body = CalendarView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/calendars/{id}")]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let mut conn = state.pool.get().await?;
    if let Some(calendar) = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        calendars::built_in(conn, &id).await
    })
    .await
    .map_err(from_deadline_error)?
    {
        return Ok(HttpResponse::Ok().json(built_in_view(&calendar, true)));
    }
    let row = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        calendars::find(conn, &caller.tenant_id, &id).await
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    let calendar = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        calendars::load(conn, &caller.tenant_id, &id).await
    })
    .await
    .map_err(from_deadline_error)?;
    let days = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        calendars::tenant_days(conn, &caller.tenant_id, &id).await
    })
    .await
    .map_err(from_deadline_error)?;
    let days = days.iter().map(calendars::day_entry).collect();
    Ok(HttpResponse::Ok().json(tenant_view(&row, &calendar, Some(days))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewCalendarBody {
    /// 1 to 64 characters: a-z, 0-9, `-`, `_`; not a built-in id.
    #[schema(example = "acme-office")]
    #[schema(pattern = r"^(?!(cn-mainland|weekdays)$)[a-z0-9][a-z0-9_-]{0,63}$")]
    pub id: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// `cn-mainland` (default) or `weekdays`.
    #[schema(example = "cn-mainland", pattern = r"^(cn-mainland|weekdays)$")]
    pub base: Option<String>,
    #[serde(default)]
    #[schema(nullable)]
    pub days: Vec<DayEntry>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DaysBody {
    /// The whole list; it replaces the calendar's days (null: no days).
    #[schema(nullable)]
    pub days: Vec<DayEntry>,
}

fn parse_new_calendar(raw: &Value) -> Result<NewCalendar, Vec<FieldError>> {
    let Some(obj) = raw.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !["id", "name", "base", "days"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("/{}", redress_shared::domain::validation::escape_token(key)),
                "is not a known field",
            ));
        }
    }
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id) => match calendars::valid_tenant_calendar_id(id) {
            Ok(()) => id.to_owned(),
            Err(detail) => {
                errors.push(FieldError::new("/id", detail));
                String::new()
            }
        },
        None => {
            errors.push(FieldError::new("/id", "is required"));
            String::new()
        }
    };
    let name = match obj.get("name").and_then(Value::as_str) {
        Some(n)
            if !n.trim().is_empty()
                && n.chars().count() <= 200
                && !redress_shared::routing::cases::has_control(n) =>
        {
            n.trim().to_owned()
        }
        _ => {
            errors.push(FieldError::new(
                "/name",
                "must be 1 to 200 characters, without control characters",
            ));
            String::new()
        }
    };
    let base = match obj.get("base") {
        None | Some(Value::Null) => CN_MAINLAND_ID.to_owned(),
        Some(Value::String(b)) if calendars::is_built_in(b) => b.clone(),
        Some(_) => {
            errors.push(FieldError::new(
                "/base",
                "must be \"cn-mainland\" or \"weekdays\"",
            ));
            String::new()
        }
    };
    let days = match calendars::parse_days(obj.get("days")) {
        Ok(days) => days,
        Err(more) => {
            errors.extend(more);
            Vec::new()
        }
    };
    if errors.is_empty() {
        Ok(NewCalendar {
            id,
            name,
            base,
            days,
        })
    } else {
        Err(errors)
    }
}

/// Creates a tenant calendar: a built-in base plus the tenant's own rest days and extra
/// working days. SLA policies can then count in it.
#[utoipa::path(
    tag = "calendars",
    request_body = NewCalendarBody,
    responses(
        (status = 201, body = CalendarView, headers(("Location" = String))),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant already has a calendar with that id", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[post("/v1/calendars")]
pub async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let new = parse_new_calendar(&raw).map_err(ApiError::InvalidBody)?;
    let mut conn = state.pool.get().await?;
    let row = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let row = calendars::create(conn, &caller.tenant_id, &new, Utc::now())
                .await
                .map_err(from_deadline_error)?;
            if let Some(r) = &row {
                crate::audit::record(conn, &caller, "calendar.created", &r.id, json!({})).await?;
            }
            Ok::<_, ApiError>(row)
        })
        .await?
        .ok_or_else(|| ApiError::Conflict {
            kind: "calendar-exists",
            detail: format!("the tenant already has a calendar `{}`", new.id),
            extra: json!({}),
        })?;
    let calendar = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        calendars::load(conn, &caller.tenant_id, &row.id).await
    })
    .await
    .map_err(from_deadline_error)?;
    let days = new.days.iter().map(calendars::day_entry).collect();
    tracing::info!(tenant.id = %caller.tenant_id, calendar.id = %row.id, "calendar created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/calendars/{}", row.id)))
        .json(tenant_view(&row, &calendar, Some(days))))
}

/// Replaces the days of a tenant calendar. Running deadlines keep the dates they have;
/// clocks started, resumed or extended afterwards count with the new days.
#[utoipa::path(
    tag = "calendars",
    params(("id" = String, Path, description = "A tenant calendar id")),
    request_body = DaysBody,
    responses(
        (status = 200, body = CalendarView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in calendar; add years with `redress-api admin calendar load-year`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["tenant:admin"]))
)]
#[put("/v1/calendars/{id}/days")]
pub async fn put_days(
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require("tenant:admin")?;
    let id = path.into_inner();
    if calendars::is_built_in(&id) {
        return Err(ApiError::Conflict {
            kind: "built-in-calendar",
            detail: format!(
                "`{id}` is built in and shared by every tenant; its years are loaded by the hub's operators (redress-api admin calendar load-year). Create a calendar of your own based on it instead."
            ),
            extra: json!({}),
        });
    }
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let Some(obj) = raw.as_object() else {
        return Err(ApiError::InvalidBody(vec![FieldError::new(
            "",
            "the body must be {\"days\": [...]}",
        )]));
    };
    let mut errors: Vec<FieldError> = obj
        .keys()
        .filter(|k| k.as_str() != "days")
        .map(|k| {
            FieldError::new(
                format!("/{}", redress_shared::domain::validation::escape_token(k)),
                "is not a known field",
            )
        })
        .collect();
    if obj.get("days").is_none() {
        errors.push(FieldError::new("/days", "is required"));
    }
    let days = match calendars::parse_days(obj.get("days")) {
        Ok(days) => days,
        Err(more) => {
            errors.extend(more);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidBody(errors));
    }
    let mut conn = state.pool.get().await?;
    let row = conn
        .transaction(async |conn| {
            set_tenant(conn, &caller.tenant_id).await?;
            let row = calendars::replace_days(conn, &caller.tenant_id, &id, &days, Utc::now())
                .await
                .map_err(from_deadline_error)?
                .ok_or(ApiError::NotFound)?;
            crate::audit::record(
                conn,
                &caller,
                "calendar.days_replaced",
                &id,
                json!({"days": days.len()}),
            )
            .await?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    let calendar = tenant::transaction(&mut conn, &caller.tenant_id, async |conn| {
        calendars::load(conn, &caller.tenant_id, &id).await
    })
    .await
    .map_err(from_deadline_error)?;
    let days = days.iter().map(calendars::day_entry).collect();
    tracing::info!(tenant.id = %caller.tenant_id, calendar.id = %id, "calendar days replaced");
    Ok(HttpResponse::Ok().json(tenant_view(&row, &calendar, Some(days))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DueDateQuery {
    /// RFC 3339 instant the period starts (the day of receipt; not counted itself).
    #[param(required = true, value_type = chrono::DateTime<chrono::Utc>)]
    pub from: Option<String>,
    /// Whole number, at most 3660 for day units (366 days' worth for seconds, minutes and hours).
    #[param(required = true, value_type = u32, minimum = 0, maximum = 3660)]
    pub amount: Option<String>,
    /// `seconds` | `minutes` | `hours` | `calendar_days` | `working_days`.
    #[param(
        required = true,
        pattern = r"^(seconds|minutes|hours|calendar_days|working_days)$"
    )]
    pub unit: Option<String>,
    /// IANA time zone the days are counted in (default: the tenant's, Asia/Shanghai unless
    /// set).
    pub time_zone: Option<String>,
    /// `calendar_days` only: whether a due date on a rest day moves to the next working
    /// day (default true, 民法典 Art. 203).
    #[param(value_type = Option<bool>)]
    pub roll_forward: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DueDate {
    /// Local due date; null for wall-clock units.
    pub due_on: Option<NaiveDate>,
    /// Day units: 23:59:59 local time of `due_on`.
    pub due_at: DateTime<Utc>,
}

fn param(parameter: &str, detail: impl Into<String>) -> ParamError {
    ParamError {
        parameter: parameter.into(),
        detail: detail.into(),
    }
}

fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::InvalidParams(vec![param("query", e.to_string())]))
}

async fn tenant_zone(state: &AppState, tenant: &TenantId) -> Result<deadlines::Tz, ApiError> {
    let mut conn = state.pool.get().await?;
    let zone = tenant::transaction(&mut conn, tenant, async |conn| {
        redress_shared::db::tenants::find_tenant(conn, tenant).await
    })
    .await?
    .map(|t| t.time_zone)
    .unwrap_or_default();
    Ok(deadlines::parse_time_zone(&zone).unwrap_or(deadlines::DEFAULT_TIME_ZONE))
}

/// A calendar error as the parameter that caused it: a date outside the known years is the
/// start (`from`) when the start itself is unknown, otherwise the period (`amount`, or `to`
/// for a day list) that runs past the known years.
fn calendar_param_error(e: &CalendarError, start: NaiveDate, later: &str) -> ApiError {
    let parameter = match e {
        CalendarError::OutOfRange { date, .. } if *date <= start => "from",
        CalendarError::ReversedRange { .. } | CalendarError::RangeTooLong { .. } => "to",
        _ => later,
    };
    ApiError::InvalidParams(vec![param(parameter, e.to_string())])
}

/// When a period that starts at `from` falls due on this calendar (CONTRACT §4).
#[utoipa::path(
    tag = "calendars",
    params(("id" = String, Path, description = "`cn-mainland`, `weekdays` or a tenant calendar id"), DueDateQuery),
    responses(
        (status = 200, body = DueDate),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad parameter, or dates outside the years the calendar knows (the parameter is named)", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/calendars/{id}/due-date")]
pub async fn due_date(
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: DueDateQuery = query(&req)?;
    let mut errors = Vec::new();
    let from = match q.from.as_deref() {
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(param(
                    "from",
                    "must be an RFC 3339 instant such as 2026-02-05T10:00:00+08:00",
                ));
                None
            }
        },
        None => {
            errors.push(param("from", "is required (RFC 3339)"));
            None
        }
    };
    let unit = match q.unit.as_deref().map(deadlines::parse_unit) {
        Some(Some(unit)) => Some(unit),
        _ => {
            errors.push(param(
                "unit",
                "must be one of: seconds, minutes, hours, calendar_days, working_days",
            ));
            None
        }
    };
    let amount = match q.amount.as_deref().map(str::parse::<u32>) {
        Some(Ok(n)) if unit.is_none_or(|u| n <= deadlines::policies::max_amount(u)) => Some(n),
        _ => {
            let max = unit.map(deadlines::policies::max_amount).unwrap_or(3_660);
            errors.push(param(
                "amount",
                format!("must be a whole number from 0 to {max}"),
            ));
            None
        }
    };
    let tz = match q.time_zone.as_deref() {
        None => None,
        Some(s) => match deadlines::parse_time_zone(s) {
            Some(tz) => Some(tz),
            None => {
                errors.push(param(
                    "time_zone",
                    "must be an IANA time zone such as Asia/Shanghai",
                ));
                None
            }
        },
    };
    let roll_forward = match q.roll_forward.as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => {
            errors.push(param("roll_forward", "must be true or false"));
            true
        }
    };
    let (Some(from), Some(unit), Some(amount), true) = (from, unit, amount, errors.is_empty())
    else {
        return Err(ApiError::InvalidParams(errors));
    };
    let calendar = load(&state, &caller.tenant_id, &path).await?;
    let tz = match tz {
        Some(tz) => tz,
        None => tenant_zone(&state, &caller.tenant_id).await?,
    };
    let due = cal::due(&calendar, tz, from, Target::new(amount, unit), roll_forward)
        .map_err(|e| calendar_param_error(&e, cal::local_date(tz, from), "amount"))?;
    Ok(HttpResponse::Ok().json(DueDate {
        due_on: due.due_on,
        due_at: due.due_at,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// First day, YYYY-MM-DD.
    #[param(required = true, value_type = chrono::NaiveDate)]
    pub from: Option<String>,
    /// Last day (included), YYYY-MM-DD; at most 1098 days after `from`.
    #[param(required = true, value_type = chrono::NaiveDate)]
    pub to: Option<String>,
}

/// One day: `working` or `rest`, and why when it is not an ordinary weekday.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayView {
    pub date: NaiveDate,
    /// `working` | `rest`.
    #[schema(example = "rest")]
    pub kind: String,
    /// `weekend` | `holiday` | `makeup_workday`; null on an ordinary working day.
    #[schema(example = "holiday")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "春节")]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayList {
    pub calendar: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub working_days: usize,
    pub days: Vec<DayView>,
}

fn day_view(day: &Day) -> DayView {
    let text = |v: serde_json::Value| v.as_str().map(str::to_owned);
    DayView {
        date: day.date,
        kind: text(json!(day.kind)).unwrap_or_default(),
        reason: day.reason.and_then(|r| text(json!(r))),
        name: day.name.clone(),
    }
}

/// Every day from `from` to `to` as `working` or `rest`, with the reason.
#[utoipa::path(
    tag = "calendars",
    params(("id" = String, Path, description = "`cn-mainland`, `weekdays` or a tenant calendar id"), DaysQuery),
    responses(
        (status = 200, body = DayList),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad parameter, or dates outside the years the calendar knows (the parameter is named)", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/v1/calendars/{id}/days")]
pub async fn list_days(
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: DaysQuery = query(&req)?;
    let mut errors = Vec::new();
    let mut date = |name: &str, raw: Option<&str>| match raw
        .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
    {
        Some(Ok(d)) => Some(d),
        _ => {
            errors.push(param(name, "is required, a date YYYY-MM-DD"));
            None
        }
    };
    let from = date("from", q.from.as_deref());
    let to = date("to", q.to.as_deref());
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::InvalidParams(errors));
    };
    let calendar = load(&state, &caller.tenant_id, &path).await?;
    let days = calendar
        .days(from, to)
        .map_err(|e| calendar_param_error(&e, from, "to"))?;
    Ok(HttpResponse::Ok().json(DayList {
        calendar: calendar.id().to_owned(),
        from,
        to,
        working_days: days.iter().filter(|d| d.is_working()).count(),
        days: days.iter().map(day_view).collect(),
    }))
}
