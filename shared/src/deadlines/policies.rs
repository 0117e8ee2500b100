//! SLA policies (CONTRACT §4): per-rung acknowledge and respond targets, the calendar and
//! time zone they count in, the warning point, roll-forward and what a breach does. Tenant
//! data, managed through `/v1/sla-policies` and shipped as defaults with templates
//! (`shared/templates/cn-pos-sla.json`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::sla_policies;
use crate::calendar::{Target, Unit};
use crate::domain::FieldError;
use crate::ids::TenantId;

/// Largest amount accepted for any unit: ten years of days. Beyond that a "deadline" is a
/// typo, and the arithmetic stays far from chrono's limits.
const MAX_DAYS: u32 = 3_660;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnBreach {
    /// Record the breach (event `complaint.sla_breached`, webhook) and leave the case where
    /// it is.
    Notify,
    /// Record the breach and move the case to the next rung of its ladder.
    Escalate,
}

impl OnBreach {
    pub fn as_str(self) -> &'static str {
        match self {
            OnBreach::Notify => "notify",
            OnBreach::Escalate => "escalate",
        }
    }
}

/// One clock's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClockTarget {
    /// At most ten years' worth of the unit (3660 days).
    #[schema(example = 15, minimum = 1, maximum = 316_224_000)]
    pub amount: u32,
    /// `seconds` | `minutes` | `hours` | `calendar_days` | `working_days`.
    #[schema(value_type = String, example = "calendar_days", pattern = r"^(seconds|minutes|hours|calendar_days|working_days)$")]
    pub unit: Unit,
    /// The largest total (same unit) an operator may extend this target to, e.g. 60 for
    /// a 15-day limit "extendable to 60 days"; absent: no ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 60)]
    pub extendable_to: Option<u32>,
}

impl ClockTarget {
    pub fn target(&self) -> Target {
        Target::new(self.amount, self.unit)
    }
}

/// A duration or day count before the due date, for the warning point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Before {
    #[schema(minimum = 1, maximum = 3660)]
    pub amount: u32,
    #[schema(value_type = String, example = "working_days", pattern = r"^(seconds|minutes|hours|calendar_days|working_days)$")]
    pub unit: Unit,
}

/// An SLA policy as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SlaPolicy {
    /// What routing data references the policy by; when a rung names no policy, the policy
    /// whose code is the channel code applies.
    #[schema(example = "pboc_transferred", pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub code: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[serde(default)]
    pub acknowledge: Option<ClockTarget>,
    #[serde(default)]
    pub respond: Option<ClockTarget>,
    /// `cn-mainland`, `weekdays` or one of the tenant's calendars.
    #[schema(example = "cn-mainland")]
    pub calendar: String,
    /// IANA time zone the days are counted in; absent: the tenant's (default
    /// Asia/Shanghai).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Warn when this fraction of the time has passed (0 < f < 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.8)]
    pub warn_at_fraction: Option<f64>,
    /// Warn this long before the due date (instead of a fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before: Option<Before>,
    /// Whether a `calendar_days` deadline falling on a rest day moves to the next working
    /// day (民法典 Art. 203; unsettled for regulators' limits, hence a switch).
    pub roll_forward: bool,
    pub on_breach: OnBreach,
    /// The rule the targets come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// How sure the basis is: V1 (full text read), V2 (excerpt), V3 (secondary), U
    /// (unverified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^(V1|V2|V3|U|V2/U)$")]
    pub certainty: Option<String>,
    /// True for defaults that are not law (certainty U): the tenant should set its own.
    #[serde(default)]
    pub editable_default: bool,
}

/// A policy with its bookkeeping, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub policy: SlaPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const FIELDS: [&str; 14] = [
    "code",
    "name",
    "acknowledge",
    "respond",
    "calendar",
    "time_zone",
    "warn_at_fraction",
    "warn_before",
    "roll_forward",
    "on_breach",
    "basis",
    "certainty",
    "editable_default",
    // Accepted and ignored, so a GET answer can be PUT back as is.
    "created_at",
];

pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code.as_bytes()[0].is_ascii_alphanumeric()
        && code.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.'
        })
}

fn parse_unit(raw: Option<&Value>, pointer: &str, errors: &mut Vec<FieldError>) -> Option<Unit> {
    match raw.and_then(Value::as_str) {
        Some("seconds") => Some(Unit::Seconds),
        Some("minutes") => Some(Unit::Minutes),
        Some("hours") => Some(Unit::Hours),
        Some("calendar_days") => Some(Unit::CalendarDays),
        Some("working_days") => Some(Unit::WorkingDays),
        _ => {
            errors.push(FieldError::new(
                pointer,
                "must be one of: seconds, minutes, hours, calendar_days, working_days",
            ));
            None
        }
    }
}

/// Largest amount for a unit (ten years).
pub fn max_amount(unit: Unit) -> u32 {
    match unit {
        Unit::Seconds => MAX_DAYS * 86_400,
        Unit::Minutes => MAX_DAYS * 1_440,
        Unit::Hours => MAX_DAYS * 24,
        Unit::CalendarDays | Unit::WorkingDays => MAX_DAYS,
    }
}

fn parse_amount(
    raw: Option<&Value>,
    unit: Option<Unit>,
    pointer: &str,
    allow_zero: bool,
    errors: &mut Vec<FieldError>,
) -> Option<u32> {
    let min = u64::from(!allow_zero);
    let max = u64::from(unit.map(max_amount).unwrap_or(u32::MAX));
    match raw.and_then(Value::as_u64) {
        Some(n) if n >= min && n <= max => u32::try_from(n).ok(),
        _ => {
            errors.push(FieldError::new(
                pointer,
                format!("must be a whole number from {min} to {max}"),
            ));
            None
        }
    }
}

fn parse_target(raw: &Value, pointer: &str, errors: &mut Vec<FieldError>) -> Option<ClockTarget> {
    let Some(obj) = raw.as_object() else {
        errors.push(FieldError::new(
            pointer,
            "must be {\"amount\", \"unit\"} or null",
        ));
        return None;
    };
    for key in obj.keys() {
        if !["amount", "unit", "extendable_to"].contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("{pointer}/{}", crate::domain::validation::escape_token(key)),
                "is not a known field",
            ));
        }
    }
    let unit = parse_unit(obj.get("unit"), &format!("{pointer}/unit"), errors);
    let amount = parse_amount(
        obj.get("amount"),
        unit,
        &format!("{pointer}/amount"),
        false,
        errors,
    );
    let extendable_to = match obj.get("extendable_to") {
        None | Some(Value::Null) => None,
        some => {
            let n = parse_amount(
                some,
                unit,
                &format!("{pointer}/extendable_to"),
                false,
                errors,
            );
            if let (Some(n), Some(amount)) = (n, amount) {
                if n < amount {
                    errors.push(FieldError::new(
                        format!("{pointer}/extendable_to"),
                        "must be at least amount",
                    ));
                }
            }
            n
        }
    };
    Some(ClockTarget {
        amount: amount?,
        unit: unit?,
        extendable_to,
    })
}

fn optional_text(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                format!("/{key}"),
                format!("must be a string of at most {max} characters"),
            ));
            None
        }
    }
}

impl SlaPolicy {
    /// Validates a policy document. `path_code` is the code from the URL of a `PUT`; the
    /// body's `code`, if any, must agree with it. Whether `calendar` exists is checked by
    /// [`check_references`], which needs the database.
    pub fn from_json(raw: &Value, path_code: Option<&str>) -> Result<SlaPolicy, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = raw.as_object() else {
            return Err(vec![FieldError::new("", "the body must be a JSON object")]);
        };
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) && key != "updated_at" {
                errors.push(FieldError::new(
                    format!("/{}", crate::domain::validation::escape_token(key)),
                    "is not a known field",
                ));
            }
        }
        let code = match (obj.get("code"), path_code) {
            (Some(Value::String(c)), Some(p)) if c != p => {
                errors.push(FieldError::new(
                    "/code",
                    format!("must match the code in the URL (`{p}`)"),
                ));
                p.to_owned()
            }
            (_, Some(p)) => p.to_owned(),
            (Some(Value::String(c)), None) if valid_code(c) => c.clone(),
            (None | Some(Value::Null), None) => {
                errors.push(FieldError::new("/code", "is required"));
                String::new()
            }
            (Some(_), None) => {
                errors.push(FieldError::new(
                    "/code",
                    "must be 1 to 64 characters: a-z, 0-9, '_', '-', '.', starting with a letter or digit",
                ));
                String::new()
            }
        };
        let name = match obj.get("name") {
            Some(Value::String(s))
                if !s.trim().is_empty()
                    && s.chars().count() <= 200
                    && !crate::routing::cases::has_control(s) =>
            {
                s.trim().to_owned()
            }
            None | Some(Value::Null) => code.clone(),
            Some(_) => {
                errors.push(FieldError::new("/name", "must be 1 to 200 characters"));
                String::new()
            }
        };
        let mut clock = |key: &str| match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => parse_target(v, &format!("/{key}"), &mut errors),
        };
        let acknowledge = clock("acknowledge");
        let respond = clock("respond");
        if acknowledge.is_none()
            && respond.is_none()
            && !errors
                .iter()
                .any(|e| e.pointer.starts_with("/acknowledge") || e.pointer.starts_with("/respond"))
        {
            errors.push(FieldError::new(
                "/respond",
                "a policy needs an acknowledge or a respond target (or both)",
            ));
        }
        let calendar = match obj.get("calendar") {
            None | Some(Value::Null) => crate::calendar::CN_MAINLAND_ID.to_owned(),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
            Some(_) => {
                errors.push(FieldError::new("/calendar", "must be a calendar id"));
                String::new()
            }
        };
        let time_zone = match obj.get("time_zone") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.parse::<chrono_tz::Tz>().is_ok() => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(
                    "/time_zone",
                    "must be an IANA time zone such as Asia/Shanghai, or null for the tenant's",
                ));
                None
            }
        };
        let warn_at_fraction = match obj.get("warn_at_fraction") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(f) if f > 0.0 && f < 1.0 => Some(f),
                _ => {
                    errors.push(FieldError::new(
                        "/warn_at_fraction",
                        "must be a number between 0 and 1 (exclusive)",
                    ));
                    None
                }
            },
        };
        let warn_before = match obj.get("warn_before") {
            None | Some(Value::Null) => None,
            Some(Value::Object(b)) => {
                for key in b.keys() {
                    if !["amount", "unit"].contains(&key.as_str()) {
                        errors.push(FieldError::new(
                            format!(
                                "/warn_before/{}",
                                crate::domain::validation::escape_token(key)
                            ),
                            "is not a known field",
                        ));
                    }
                }
                let unit = parse_unit(b.get("unit"), "/warn_before/unit", &mut errors);
                let amount = parse_amount(
                    b.get("amount"),
                    unit,
                    "/warn_before/amount",
                    false,
                    &mut errors,
                );
                match (amount, unit) {
                    (Some(amount), Some(unit)) => Some(Before { amount, unit }),
                    _ => None,
                }
            }
            Some(_) => {
                errors.push(FieldError::new(
                    "/warn_before",
                    "must be {\"amount\", \"unit\"} or null",
                ));
                None
            }
        };
        if warn_at_fraction.is_some() && warn_before.is_some() {
            errors.push(FieldError::new(
                "/warn_before",
                "give warn_at_fraction or warn_before, not both",
            ));
        }
        let roll_forward = match obj.get("roll_forward") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(FieldError::new("/roll_forward", "must be true or false"));
                true
            }
        };
        let on_breach = match obj.get("on_breach").and_then(Value::as_str) {
            Some("notify") => OnBreach::Notify,
            Some("escalate") => OnBreach::Escalate,
            None if obj.get("on_breach").is_none_or(Value::is_null) => OnBreach::Notify,
            _ => {
                errors.push(FieldError::new(
                    "/on_breach",
                    "must be \"notify\" or \"escalate\"",
                ));
                OnBreach::Notify
            }
        };
        let basis = optional_text(obj, "basis", 1000, &mut errors);
        let certainty = match optional_text(obj, "certainty", 10, &mut errors) {
            Some(c) if ["V1", "V2", "V3", "U", "V2/U"].contains(&c.as_str()) => Some(c),
            Some(_) => {
                errors.push(FieldError::new(
                    "/certainty",
                    "must be V1, V2, V3, V2/U or U",
                ));
                None
            }
            None => None,
        };
        let editable_default = match obj.get("editable_default") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(FieldError::new(
                    "/editable_default",
                    "must be true or false",
                ));
                false
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SlaPolicy {
            code,
            name,
            acknowledge,
            respond,
            calendar,
            time_zone,
            warn_at_fraction,
            warn_before,
            roll_forward,
            on_breach,
            basis,
            certainty,
            editable_default,
        })
    }
}

/// The checks that need the database: the calendar must exist for this tenant.
pub async fn check_references(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    policy: &SlaPolicy,
) -> QueryResult<Vec<FieldError>> {
    let mut errors = Vec::new();
    if !super::calendars::is_built_in(&policy.calendar)
        && super::calendars::find(conn, tenant, &policy.calendar)
            .await?
            .is_none()
    {
        errors.push(FieldError::new(
            "/calendar",
            format!(
                "no calendar `{}`: use cn-mainland, weekdays or one of the tenant's calendars",
                policy.calendar
            ),
        ));
    }
    Ok(errors)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sla_policies)]
struct PolicyRow {
    code: String,
    body: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PolicyRow {
    fn view(self) -> QueryResult<PolicyView> {
        let policy: SlaPolicy = serde_json::from_value(self.body).map_err(|e| {
            diesel::result::Error::DeserializationError(
                format!("stored SLA policy {} does not parse: {e}", self.code).into(),
            )
        })?;
        Ok(PolicyView {
            policy,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn body_of(policy: &SlaPolicy) -> QueryResult<Value> {
    serde_json::to_value(policy).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

pub async fn find(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    code: &str,
) -> QueryResult<Option<PolicyView>> {
    sla_policies::table
        .filter(sla_policies::tenant_id.eq(tenant.as_str()))
        .filter(sla_policies::code.eq(code))
        .select(PolicyRow::as_select())
        .first(&mut conn)
        .await
        .optional()?
        .map(PolicyRow::view)
        .transpose()
}

pub async fn list(mut conn: &AsyncPgConnection, tenant: &TenantId) -> QueryResult<Vec<PolicyView>> {
    sla_policies::table
        .filter(sla_policies::tenant_id.eq(tenant.as_str()))
        .order(sla_policies::code)
        .select(PolicyRow::as_select())
        .load(&mut conn)
        .await?
        .into_iter()
        .map(PolicyRow::view)
        .collect()
}

/// Inserts a new policy; `Ok(None)` when the code is taken.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    policy: &SlaPolicy,
    now: DateTime<Utc>,
) -> QueryResult<Option<PolicyView>> {
    diesel::insert_into(sla_policies::table)
        .values((
            sla_policies::tenant_id.eq(tenant.as_str()),
            sla_policies::code.eq(&policy.code),
            sla_policies::body.eq(body_of(policy)?),
            sla_policies::created_at.eq(now),
            sla_policies::updated_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .returning(PolicyRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .map(PolicyRow::view)
        .transpose()
}

/// Replaces an existing policy; `Ok(None)` when there is none with that code. Running
/// clocks keep the settings they started with.
pub async fn replace(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    policy: &SlaPolicy,
    now: DateTime<Utc>,
) -> QueryResult<Option<PolicyView>> {
    diesel::update(
        sla_policies::table
            .filter(sla_policies::tenant_id.eq(tenant.as_str()))
            .filter(sla_policies::code.eq(&policy.code)),
    )
    .set((
        sla_policies::body.eq(body_of(policy)?),
        sla_policies::updated_at.eq(now),
    ))
    .returning(PolicyRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .map(PolicyRow::view)
    .transpose()
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    code: &str,
) -> QueryResult<bool> {
    diesel::delete(
        sla_policies::table
            .filter(sla_policies::tenant_id.eq(tenant.as_str()))
            .filter(sla_policies::code.eq(code)),
    )
    .execute(conn)
    .await
    .map(|n| n > 0)
}

/// Whether any policy of the tenant counts in `calendar` (such a calendar cannot be
/// removed).
pub async fn codes_using_calendar(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    calendar: &str,
) -> QueryResult<Vec<String>> {
    sla_policies::table
        .filter(sla_policies::tenant_id.eq(tenant.as_str()))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Text>("body->>'calendar'")
                .eq(calendar.to_owned()),
        )
        .select(sla_policies::code)
        .load(conn)
        .await
}

// ----------------------------------------------------------------------------------------
// Template defaults

#[derive(Debug, Deserialize)]
struct PolicyTemplate {
    template: String,
    policies: Vec<Value>,
}

const CN_POS_SLA: &str = include_str!("../../templates/cn-pos-sla.json");

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("SLA template `{0}` does not parse: {1}")]
    Corrupt(String, String),
}

/// The SLA policies a template ships, validated like any policy sent to the API. A template
/// without SLA defaults has none.
pub fn template_policies(template: &str) -> Result<Vec<SlaPolicy>, TemplateError> {
    let raw = match template {
        "cn-pos" => CN_POS_SLA,
        _ => return Ok(Vec::new()),
    };
    let parsed: PolicyTemplate = serde_json::from_str(raw)
        .map_err(|e| TemplateError::Corrupt(template.to_owned(), e.to_string()))?;
    if parsed.template != template {
        return Err(TemplateError::Corrupt(
            template.to_owned(),
            format!("the file says it is `{}`", parsed.template),
        ));
    }
    parsed
        .policies
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            SlaPolicy::from_json(raw, None).map_err(|errors| {
                let detail: Vec<String> = errors
                    .iter()
                    .map(|e| format!("/policies/{i}{}: {}", e.pointer, e.detail))
                    .collect();
                TemplateError::Corrupt(template.to_owned(), detail.join("; "))
            })
        })
        .collect()
}

/// Installs a template's SLA policies for a new tenant, in the caller's transaction; codes
/// the tenant already has are left as they are. Returns how many were added.
pub async fn install_template(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    template: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let policies = template_policies(template)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let mut added = 0;
    for policy in &policies {
        if insert(conn, tenant, policy, now).await?.is_some() {
            added += 1;
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_cn_pos_defaults_parse_and_carry_the_domain_limits() {
        let policies = template_policies("cn-pos").unwrap();
        let get = |code: &str| policies.iter().find(|p| p.code == code).unwrap().clone();
        let pboc = get("pboc_transferred");
        assert_eq!(
            pboc.respond,
            Some(ClockTarget {
                amount: 15,
                unit: Unit::CalendarDays,
                extendable_to: Some(60)
            })
        );
        let samr = get("samr_12315");
        assert_eq!(
            samr.acknowledge.unwrap().target(),
            Target::new(7, Unit::WorkingDays)
        );
        let pcac = get("pcac_report");
        assert_eq!(
            pcac.acknowledge.unwrap().target(),
            Target::new(5, Unit::WorkingDays)
        );
        assert_eq!(
            pcac.respond.unwrap().target(),
            Target::new(30, Unit::WorkingDays)
        );
        assert_eq!(pcac.respond.unwrap().extendable_to, Some(60));
        let nfra = get("nfra_12378");
        assert_eq!(
            nfra.respond.unwrap().target(),
            Target::new(15, Unit::CalendarDays)
        );
        let provider = get("provider_service");
        assert!(provider.editable_default);
        assert_eq!(provider.certainty.as_deref(), Some("U"));
        // Unverified facts ship as editable defaults, never as law.
        for p in &policies {
            if p.certainty.as_deref() == Some("U") {
                assert!(p.editable_default, "{}", p.code);
            }
        }
    }

    #[test]
    fn a_policy_round_trips_through_its_stored_form() {
        let raw = json!({
            "code": "x", "name": "X", "respond": {"amount": 3, "unit": "seconds"},
            "warn_at_fraction": 0.5, "on_breach": "escalate"
        });
        let p = SlaPolicy::from_json(&raw, None).unwrap();
        assert_eq!(p.calendar, "cn-mainland");
        assert!(p.roll_forward);
        let stored = serde_json::to_value(&p).unwrap();
        assert_eq!(SlaPolicy::from_json(&stored, None).unwrap(), p);
    }

    #[test]
    fn every_bad_field_is_named() {
        let raw = json!({
            "code": "Bad Code", "respond": {"amount": 0, "unit": "fortnights"},
            "warn_at_fraction": 1.5, "on_breach": "shout", "time_zone": "Mars/Base", "extra": 1
        });
        let errors = SlaPolicy::from_json(&raw, None).unwrap_err();
        let mut pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        pointers.sort();
        assert_eq!(
            pointers,
            [
                "/code",
                "/extra",
                "/on_breach",
                "/respond/amount",
                "/respond/unit",
                "/time_zone",
                "/warn_at_fraction"
            ]
        );
    }
}
