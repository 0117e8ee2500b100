//! Calendars as the hub uses them: the built-in ones (`cn-mainland`, `weekdays`) plus the
//! years an administrator added as data, and each tenant's own calendars.
//!
//! The effective `cn-mainland` is the compiled-in arrangement (2024–2026) with every year
//! from `calendar_years`/`calendar_days` laid over it, so a new State Council notice is a
//! `redress-api admin calendar load-year` away, never a release.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use super::schema::{calendar_days, calendar_years, calendars};
use super::DeadlineError;
use crate::calendar::{Calendar, DayKind, DayOverride, CN_MAINLAND_ID, WEEKDAYS_ID};
use crate::domain::FieldError;
use crate::ids::TenantId;

/// Ids that name a built-in calendar; a tenant calendar may not take them.
pub const BUILT_IN: [&str; 2] = [CN_MAINLAND_ID, WEEKDAYS_ID];

/// Most single days one tenant calendar may list: a generous ten years of closures, and a
/// bound on what one request can make every later deadline computation read.
pub const MAX_TENANT_DAYS: usize = 3_660;

pub fn is_built_in(id: &str) -> bool {
    BUILT_IN.contains(&id)
}

/// A built-in calendar with the years added to it in the database.
pub async fn built_in(
    conn: &mut AsyncPgConnection,
    id: &str,
) -> Result<Option<Calendar>, DeadlineError> {
    match id {
        CN_MAINLAND_ID => {
            let years = added_years(conn, id).await?;
            Ok(Some(apply_years(Calendar::cn_mainland(), years)?))
        }
        WEEKDAYS_ID => Ok(Some(Calendar::weekdays())),
        _ => Ok(None),
    }
}

/// The calendar `id` as `tenant` sees it: a built-in one, or one of the tenant's own.
/// Another tenant's calendar is unknown here, like any id that does not exist.
pub async fn load(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<Calendar, DeadlineError> {
    if let Some(calendar) = built_in(conn, id).await? {
        return Ok(calendar);
    }
    let Some(row) = find(conn, tenant, id).await? else {
        return Err(DeadlineError::UnknownCalendar(id.to_owned()));
    };
    let base = built_in(conn, &row.base)
        .await?
        .ok_or_else(|| DeadlineError::UnknownCalendar(row.base.clone()))?;
    let days = tenant_days(conn, tenant, id).await?;
    Ok(base.with_id(id).with_overrides(days)?)
}

type YearDays = BTreeMap<i32, Vec<DayOverride>>;

async fn added_years(conn: &mut AsyncPgConnection, id: &str) -> Result<YearDays, DeadlineError> {
    let years: Vec<i32> = calendar_years::table
        .filter(calendar_years::calendar_id.eq(id))
        .select(calendar_years::year)
        .load(conn)
        .await?;
    let mut by_year: YearDays = years.into_iter().map(|y| (y, Vec::new())).collect();
    if by_year.is_empty() {
        return Ok(by_year);
    }
    let rows: Vec<DayRow> = calendar_days::table
        .filter(calendar_days::calendar_id.eq(id))
        .filter(calendar_days::tenant_id.is_null())
        .order(calendar_days::date)
        .select(DayRow::as_select())
        .load(conn)
        .await?;
    for row in rows {
        if let Some(days) = by_year.get_mut(&row.date.year()) {
            days.push(row.into_override()?);
        }
    }
    Ok(by_year)
}

/// Lays added years over a calendar. Years are taken in an order that keeps the known years
/// contiguous at every step (each one next to what is already known), whatever order they
/// were loaded in.
fn apply_years(mut calendar: Calendar, mut years: YearDays) -> Result<Calendar, DeadlineError> {
    while !years.is_empty() {
        let known = calendar.known_years();
        let next = years
            .keys()
            .copied()
            .find(|year| match &known {
                Some(range) => {
                    *year >= range.start().saturating_sub(1)
                        && *year <= range.end().saturating_add(1)
                }
                None => true,
            })
            .ok_or_else(|| {
                DeadlineError::Calendar(crate::calendar::CalendarError::YearNotContiguous {
                    year: years.keys().next().copied().unwrap_or_default(),
                    known_from: known.as_ref().map(|r| *r.start()).unwrap_or_default(),
                    known_to: known.as_ref().map(|r| *r.end()).unwrap_or_default(),
                })
            })?;
        let days = years.remove(&next).unwrap_or_default();
        calendar = calendar.with_year(next, days)?;
    }
    Ok(calendar)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = calendar_days)]
struct DayRow {
    date: NaiveDate,
    kind: String,
    name: Option<String>,
    source: Option<String>,
}

impl DayRow {
    fn into_override(self) -> Result<DayOverride, DeadlineError> {
        let kind = parse_kind(&self.kind).ok_or_else(|| {
            DeadlineError::Corrupt(format!(
                "calendar day {} has kind {:?}",
                self.date, self.kind
            ))
        })?;
        Ok(DayOverride {
            date: self.date,
            kind,
            name: self.name,
            source: self.source,
        })
    }
}

fn parse_kind(raw: &str) -> Option<DayKind> {
    match raw {
        "rest" => Some(DayKind::Rest),
        "working" => Some(DayKind::Working),
        _ => None,
    }
}

fn kind_str(kind: DayKind) -> &'static str {
    match kind {
        DayKind::Rest => "rest",
        DayKind::Working => "working",
    }
}

/// What `load-year` did.
#[derive(Debug, Clone, Serialize)]
pub struct YearLoaded {
    pub calendar: String,
    pub year: i32,
    pub rest_days: usize,
    pub makeup_workdays: usize,
    pub working_days_in_year: u32,
    pub known_from: Option<NaiveDate>,
    pub known_to: Option<NaiveDate>,
    /// Clocks that were waiting for this year and now have a due date.
    pub clocks_scheduled: usize,
}

/// Adds (or replaces) one year of a built-in calendar, e.g. the State Council's 2027
/// arrangement, in the caller's transaction. The whole effective calendar is built with the
/// new year first, so a year that would leave a gap or a day outside the year is refused
/// before anything is written. Clocks that could not be scheduled for want of this year
/// are scheduled at once.
pub async fn load_year(
    conn: &mut AsyncPgConnection,
    calendar_id: &str,
    year: i32,
    entries: Vec<DayOverride>,
    source: Option<&str>,
    now: DateTime<Utc>,
) -> Result<YearLoaded, DeadlineError> {
    if calendar_id != CN_MAINLAND_ID {
        return Err(DeadlineError::Invalid(vec![FieldError::new(
            "/calendar",
            format!(
                "years can be loaded into `{CN_MAINLAND_ID}` only (`{WEEKDAYS_ID}` has no holidays; tenant calendars list their own days)"
            ),
        )]));
    }
    let current = built_in(conn, calendar_id)
        .await?
        .ok_or_else(|| DeadlineError::UnknownCalendar(calendar_id.to_owned()))?;
    let updated = current.with_year(year, entries.clone())?;
    diesel::delete(
        calendar_days::table
            .filter(calendar_days::calendar_id.eq(calendar_id))
            .filter(calendar_days::tenant_id.is_null())
            .filter(calendar_days::date.ge(first_of_year(year)?))
            .filter(calendar_days::date.le(last_of_year(year)?)),
    )
    .execute(conn)
    .await?;
    let rows: Vec<_> = entries
        .iter()
        .map(|day| {
            (
                calendar_days::calendar_id.eq(calendar_id),
                calendar_days::tenant_id.eq(None::<String>),
                calendar_days::date.eq(day.date),
                calendar_days::kind.eq(kind_str(day.kind)),
                calendar_days::name.eq(day.name.clone()),
                calendar_days::source.eq(day.source.clone().or(source.map(str::to_owned))),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(calendar_days::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    diesel::insert_into(calendar_years::table)
        .values((
            calendar_years::calendar_id.eq(calendar_id),
            calendar_years::year.eq(year),
            calendar_years::source.eq(source),
            calendar_years::loaded_at.eq(now),
        ))
        .on_conflict((calendar_years::calendar_id, calendar_years::year))
        .do_update()
        .set((
            calendar_years::source.eq(source),
            calendar_years::loaded_at.eq(now),
        ))
        .execute(conn)
        .await?;
    let clocks_scheduled = super::schedule_waiting_clocks(conn, now).await?;
    let working_days_in_year = updated.count_working_days(
        first_of_year(year)?
            .pred_opt()
            .unwrap_or(first_of_year(year)?),
        last_of_year(year)?,
    )?;
    let (known_from, known_to) = match updated.known_dates() {
        Some((from, to)) => (Some(from), Some(to)),
        None => (None, None),
    };
    Ok(YearLoaded {
        calendar: calendar_id.to_owned(),
        year,
        rest_days: entries.iter().filter(|d| d.kind == DayKind::Rest).count(),
        makeup_workdays: entries
            .iter()
            .filter(|d| d.kind == DayKind::Working)
            .count(),
        working_days_in_year,
        known_from,
        known_to,
        clocks_scheduled,
    })
}

fn first_of_year(year: i32) -> Result<NaiveDate, DeadlineError> {
    NaiveDate::from_ymd_opt(year, 1, 1).ok_or(DeadlineError::Calendar(
        crate::calendar::CalendarError::InvalidYears {
            start: year,
            end: year,
        },
    ))
}

fn last_of_year(year: i32) -> Result<NaiveDate, DeadlineError> {
    NaiveDate::from_ymd_opt(year, 12, 31).ok_or(DeadlineError::Calendar(
        crate::calendar::CalendarError::InvalidYears {
            start: year,
            end: year,
        },
    ))
}

// ----------------------------------------------------------------------------------------
// Tenant calendars

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = calendars)]
pub struct CalendarRow {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub base: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One day a tenant calendar lists, as the API takes and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayEntry {
    pub date: NaiveDate,
    /// `rest` (a closure) or `working` (a working day on a weekend or official holiday).
    #[schema(example = "rest", pattern = r"^(rest|working)$")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub name: Option<String>,
}

/// A tenant calendar as created through the API.
#[derive(Debug, Clone)]
pub struct NewCalendar {
    pub id: String,
    pub name: String,
    pub base: String,
    pub days: Vec<DayOverride>,
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &str,
) -> QueryResult<Option<CalendarRow>> {
    calendars::table
        .filter(calendars::tenant_id.eq(tenant.as_str()))
        .filter(calendars::id.eq(id))
        .select(CalendarRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
) -> QueryResult<Vec<CalendarRow>> {
    calendars::table
        .filter(calendars::tenant_id.eq(tenant.as_str()))
        .order(calendars::id)
        .select(CalendarRow::as_select())
        .load(conn)
        .await
}

/// The tenant's own days of one of its calendars, in date order.
pub async fn tenant_days(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<Vec<DayOverride>, DeadlineError> {
    let rows: Vec<DayRow> = calendar_days::table
        .filter(calendar_days::tenant_id.eq(tenant.as_str()))
        .filter(calendar_days::calendar_id.eq(id))
        .order(calendar_days::date)
        .select(DayRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter().map(DayRow::into_override).collect()
}

/// Creates a tenant calendar; `Ok(None)` when the tenant already has one with that id.
pub async fn create(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    new: &NewCalendar,
    now: DateTime<Utc>,
) -> Result<Option<CalendarRow>, DeadlineError> {
    check_days_fit(conn, &new.base, &new.days).await?;
    let inserted = diesel::insert_into(calendars::table)
        .values((
            calendars::tenant_id.eq(tenant.as_str()),
            calendars::id.eq(&new.id),
            calendars::name.eq(&new.name),
            calendars::base.eq(&new.base),
            calendars::created_at.eq(now),
            calendars::updated_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .returning(CalendarRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    let Some(row) = inserted else {
        return Ok(None);
    };
    write_days(conn, tenant, &new.id, &new.days).await?;
    Ok(Some(row))
}

/// Replaces the whole day list of a tenant calendar (`PUT` semantics). `Ok(None)` when the
/// tenant has no such calendar.
pub async fn replace_days(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &str,
    days: &[DayOverride],
    now: DateTime<Utc>,
) -> Result<Option<CalendarRow>, DeadlineError> {
    let Some(row) = find(conn, tenant, id).await? else {
        return Ok(None);
    };
    check_days_fit(conn, &row.base, days).await?;
    diesel::delete(
        calendar_days::table
            .filter(calendar_days::tenant_id.eq(tenant.as_str()))
            .filter(calendar_days::calendar_id.eq(id)),
    )
    .execute(conn)
    .await?;
    write_days(conn, tenant, id, days).await?;
    let row = diesel::update(
        calendars::table
            .filter(calendars::tenant_id.eq(tenant.as_str()))
            .filter(calendars::id.eq(id)),
    )
    .set(calendars::updated_at.eq(now))
    .returning(CalendarRow::as_returning())
    .get_result(conn)
    .await?;
    Ok(Some(row))
}

/// Days must fall inside the base calendar's known years, or they could never apply.
async fn check_days_fit(
    conn: &mut AsyncPgConnection,
    base: &str,
    days: &[DayOverride],
) -> Result<(), DeadlineError> {
    let calendar = built_in(conn, base)
        .await?
        .ok_or_else(|| DeadlineError::UnknownCalendar(base.to_owned()))?;
    if let Some((from, to)) = calendar.known_dates() {
        let errors: Vec<FieldError> = days
            .iter()
            .enumerate()
            .filter(|(_, day)| day.date < from || day.date > to)
            .map(|(i, day)| {
                FieldError::new(
                    format!("/days/{i}/date"),
                    format!(
                        "{} is outside the known dates of `{base}` ({from} to {to}); load that year first",
                        day.date
                    ),
                )
            })
            .collect();
        if !errors.is_empty() {
            return Err(DeadlineError::Invalid(errors));
        }
    }
    Ok(())
}

async fn write_days(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &str,
    days: &[DayOverride],
) -> QueryResult<()> {
    if days.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = days
        .iter()
        .map(|day| {
            (
                calendar_days::calendar_id.eq(id),
                calendar_days::tenant_id.eq(Some(tenant.as_str())),
                calendar_days::date.eq(day.date),
                calendar_days::kind.eq(kind_str(day.kind)),
                calendar_days::name.eq(day.name.clone()),
                calendar_days::source.eq(day.source.clone()),
            )
        })
        .collect();
    diesel::insert_into(calendar_days::table)
        .values(rows)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Parses the `days` array of a calendar request body; pointers are relative to the body.
pub fn parse_days(raw: Option<&serde_json::Value>) -> Result<Vec<DayOverride>, Vec<FieldError>> {
    use serde_json::Value;
    let mut errors = Vec::new();
    let items = match raw {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(vec![FieldError::new(
                "/days",
                "must be an array of {\"date\",\"kind\",\"name\"}",
            )])
        }
    };
    if items.len() > MAX_TENANT_DAYS {
        return Err(vec![FieldError::new(
            "/days",
            format!("at most {MAX_TENANT_DAYS} days"),
        )]);
    }
    let mut days = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(FieldError::new(format!("/days/{i}"), "must be an object"));
            continue;
        };
        for key in obj.keys() {
            if !["date", "kind", "name"].contains(&key.as_str()) {
                errors.push(FieldError::new(
                    format!("/days/{i}/{}", crate::domain::validation::escape_token(key)),
                    "is not a known field",
                ));
            }
        }
        let date = match obj.get("date").and_then(Value::as_str) {
            Some(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(FieldError::new(
                        format!("/days/{i}/date"),
                        "must be a date YYYY-MM-DD",
                    ));
                    None
                }
            },
            None => {
                errors.push(FieldError::new(
                    format!("/days/{i}/date"),
                    "is required (YYYY-MM-DD)",
                ));
                None
            }
        };
        let kind = match obj.get("kind").and_then(Value::as_str).and_then(parse_kind) {
            Some(k) => Some(k),
            None => {
                errors.push(FieldError::new(
                    format!("/days/{i}/kind"),
                    "must be \"rest\" or \"working\"",
                ));
                None
            }
        };
        let name = match obj.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= 100 => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(
                    format!("/days/{i}/name"),
                    "must be a string of at most 100 characters",
                ));
                None
            }
        };
        if let (Some(date), Some(kind)) = (date, kind) {
            if !seen.insert(date) {
                errors.push(FieldError::new(
                    format!("/days/{i}/date"),
                    format!("{date} is listed more than once"),
                ));
                continue;
            }
            days.push(DayOverride {
                date,
                kind,
                name,
                source: None,
            });
        }
    }
    if errors.is_empty() {
        Ok(days)
    } else {
        Err(errors)
    }
}

pub fn day_entry(day: &DayOverride) -> DayEntry {
    DayEntry {
        date: day.date,
        kind: kind_str(day.kind).to_owned(),
        name: day.name.clone(),
    }
}

/// A tenant calendar id: short, lower-case, and never a built-in id.
pub fn valid_tenant_calendar_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id.as_bytes()[0].is_ascii_alphanumeric();
    if !ok {
        return Err(
            "must be 1 to 64 characters: a-z, 0-9, '-' or '_', starting with a letter or digit"
                .into(),
        );
    }
    if is_built_in(id) {
        return Err(format!("`{id}` is a built-in calendar"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn added_years_apply_in_an_order_that_keeps_known_years_contiguous() {
        let mut years = YearDays::new();
        years.insert(2028, vec![DayOverride::rest(d("2028-01-03"))]);
        years.insert(2027, vec![DayOverride::rest(d("2027-01-01"))]);
        years.insert(2023, vec![]);
        let cal = apply_years(Calendar::cn_mainland(), years).unwrap();
        assert_eq!(cal.known_years(), Some(2023..=2028));
        assert!(!cal.is_working_day(d("2028-01-03")).unwrap());
    }

    #[test]
    fn a_year_that_would_leave_a_gap_is_refused() {
        let mut years = YearDays::new();
        years.insert(2030, vec![]);
        assert!(apply_years(Calendar::cn_mainland(), years).is_err());
    }

    #[test]
    fn tenant_calendar_ids_cannot_take_a_built_in_name() {
        assert!(valid_tenant_calendar_id("acme-office").is_ok());
        assert!(valid_tenant_calendar_id("cn-mainland").is_err());
        assert!(valid_tenant_calendar_id("Bad Id").is_err());
        assert!(valid_tenant_calendar_id("").is_err());
    }

    #[test]
    fn day_lists_name_each_bad_entry_by_pointer() {
        let raw = serde_json::json!([
            {"date": "2026-12-31", "kind": "rest", "name": "年终盘点"},
            {"date": "2026-13-01", "kind": "rest"},
            {"date": "2026-12-31", "kind": "working"},
            {"date": "2026-12-30", "kind": "holiday", "x": 1}
        ]);
        let errors = parse_days(Some(&raw)).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/days/1/date", "/days/2/date", "/days/3/x", "/days/3/kind"]
        );
    }
}
