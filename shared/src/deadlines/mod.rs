//! Deadlines (CONTRACT §4): the clocks of each rung, kept in Postgres.
//!
//! A rung's channel has an SLA policy ([`policies`]); when a case is routed to the rung,
//! [`start_for_rung`] starts one clock per target (`acknowledge`, `respond`) counted in the
//! policy's calendar ([`calendars`]) and time zone. Clocks pause while the case waits for
//! evidence ([`pause_all`]) and resume with what was left ([`resume_all`]); an operator may
//! extend one ([`extend`]); the channel meets them ([`stop_for_rung`]). The worker's
//! scheduler claims clocks that are due ([`claim_due`]) and fires each warning and breach
//! exactly once ([`fire`]).
//!
//! Every function here runs in the caller's transaction and keeps the deadline objects of
//! `complaints.current_rungs` in step with the clocks, so `GET /v1/complaints/{id}` and
//! webhook payloads show them without a join.
//!
//! Locking: writers lock the complaint row first and its clocks second (the routing engine
//! and the API do so through `complaints::find_for_update`; [`fire`] does the same), so
//! the scheduler and a concurrent transition never deadlock. The callers of
//! [`pause_all`], [`resume_all`], [`stop_for_rung`] and [`extend`] are expected to hold
//! the complaint's row lock already.
//!
//! Order of calls for the routing engine: build the new rung's deadlines with
//! [`start_for_rung`] and store the rungs with `complaints::set_state`; call
//! [`stop_for_rung`], [`pause_all`] and [`resume_all`] after `set_state`, since they update
//! the stored rungs (a later `set_state` with rungs built before them would overwrite their
//! deadline states; [`deadlines_for_rung`] reads the current ones).

pub mod calendars;
pub mod policies;
pub mod schema;
mod statements;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
pub use chrono_tz::Tz;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::policies::{Before, OnBreach};
use self::schema::sla_clocks;
use crate::calendar::{self as cal, Calendar, CalendarError, Due, Remaining, Target, Unit};
use crate::db::{complaints, schema::complaints as complaints_table, tenants};
use crate::domain::{FieldError, Rung, Status};
use crate::ids::{ComplaintId, TenantId};

pub const ACKNOWLEDGE: &str = "acknowledge";
pub const RESPOND: &str = "respond";
/// The clocks of a rung, in the order they are shown.
pub const CLOCKS: [&str; 2] = [ACKNOWLEDGE, RESPOND];

pub const SLA_WARNING: &str = "complaint.sla_warning";
pub const SLA_BREACHED: &str = "complaint.sla_breached";
pub const DEADLINE_EXTENDED: &str = "complaint.deadline_extended";
/// Actor of the events the scheduler records.
pub const ACTOR_SCHEDULER: &str = "system:scheduler";

/// Time zone when neither the policy nor the tenant names a valid one (CONTRACT §4).
pub const DEFAULT_TIME_ZONE: Tz = chrono_tz::Asia::Shanghai;

#[derive(Debug, thiserror::Error)]
pub enum DeadlineError {
    #[error("no calendar `{0}`")]
    UnknownCalendar(String),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("stored deadline data does not parse: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

// ----------------------------------------------------------------------------------------
// Stored clocks

const STATE_RUNNING: &str = "running";
const STATE_PAUSED: &str = "paused";
const STATE_MET: &str = "met";
const STATE_BREACHED: &str = "breached";
const STATE_CANCELLED: &str = "cancelled";
const STATE_UNSCHEDULED: &str = "unscheduled";
/// States in which a clock still counts (or waits to count).
const LIVE: [&str; 3] = [STATE_RUNNING, STATE_PAUSED, STATE_UNSCHEDULED];

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sla_clocks)]
pub struct ClockRow {
    pub id: i64,
    pub tenant_id: String,
    pub complaint_id: String,
    pub channel: String,
    pub track: String,
    pub clock: String,
    pub state: String,
    pub spec: Value,
    pub progress: Value,
    pub due_on: Option<NaiveDate>,
    pub due_at: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// The warning point as a clock stores it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Warning {
    Fraction(f64),
    Before(Before),
}

/// What a clock counts, copied from its policy when it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Spec {
    policy: String,
    calendar: String,
    time_zone: String,
    roll_forward: bool,
    on_breach: OnBreach,
    warning: Option<Warning>,
    /// The current total target (larger after an extension).
    target: Target,
    /// Ceiling for extensions, in the target's unit.
    max_amount: Option<u32>,
    started_at: DateTime<Utc>,
}

/// Where a clock stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    /// The due date is `counted` counted from `counted_from`.
    counted_from: DateTime<Utc>,
    counted: Remaining,
    #[serde(default)]
    warn_at: Option<DateTime<Utc>>,
    /// What was left at the pause, while paused.
    #[serde(default)]
    remaining: Option<Remaining>,
    #[serde(default)]
    paused_at: Option<DateTime<Utc>>,
    #[serde(default)]
    warned_at: Option<DateTime<Utc>>,
    #[serde(default)]
    breached_at: Option<DateTime<Utc>>,
    #[serde(default)]
    met_at: Option<DateTime<Utc>>,
    #[serde(default)]
    extensions: u32,
    /// Why the clock has no due date yet (its calendar cannot answer).
    #[serde(default)]
    problem: Option<String>,
}

/// A clock read back and decoded.
#[derive(Debug, Clone)]
struct Clock {
    row: ClockRow,
    spec: Spec,
    progress: Progress,
}

impl Clock {
    fn decode(row: ClockRow) -> Result<Clock, DeadlineError> {
        let spec = serde_json::from_value(row.spec.clone())
            .map_err(|e| DeadlineError::Corrupt(format!("clock {} spec: {e}", row.id)))?;
        let progress = serde_json::from_value(row.progress.clone())
            .map_err(|e| DeadlineError::Corrupt(format!("clock {} progress: {e}", row.id)))?;
        Ok(Clock {
            row,
            spec,
            progress,
        })
    }

    fn tz(&self) -> Tz {
        parse_tz(&self.spec.time_zone).unwrap_or(DEFAULT_TIME_ZONE)
    }

    fn due(&self) -> Option<Due> {
        self.row.due_at.map(|due_at| Due {
            due_on: self.row.due_on,
            due_at,
        })
    }

    /// The deadline object of CONTRACT §4 (`clock`, `due_on`, `due_at`, `state`) with what
    /// an operator needs beside it. A paused clock has no due date until it resumes; it
    /// shows what is left instead.
    fn view(&self) -> Value {
        let paused = self.row.state == STATE_PAUSED;
        let state = match self.row.state.as_str() {
            // Waiting for its calendar year: running as far as anyone outside knows, and
            // `problem` says why it has no date yet.
            STATE_UNSCHEDULED => STATE_RUNNING,
            other => other,
        };
        let mut view = json!({
            "clock": self.row.clock,
            "due_on": if paused { None } else { self.row.due_on },
            "due_at": if paused { None } else { self.row.due_at },
            "state": state,
            "target": self.spec.target,
            "policy": self.spec.policy,
        });
        let p = &self.progress;
        if let Some(obj) = view.as_object_mut() {
            if paused {
                obj.insert("remaining".into(), json!(p.remaining));
                obj.insert("paused_at".into(), json!(p.paused_at));
            } else if let (Some(warn_at), STATE_RUNNING) = (p.warn_at, state) {
                obj.insert("warn_at".into(), json!(warn_at));
            }
            if let Some(at) = p.met_at {
                obj.insert("met_at".into(), json!(at));
            }
            if let Some(at) = p.breached_at {
                obj.insert("breached_at".into(), json!(at));
            }
            if p.extensions > 0 {
                obj.insert("extensions".into(), json!(p.extensions));
            }
            if let Some(problem) = &p.problem {
                obj.insert("problem".into(), json!(problem));
            }
        }
        view
    }

    /// Writes state, progress, due date and schedule back, and drops any claim: whoever
    /// changes a clock has decided what happens next to it.
    async fn save(&self, conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> QueryResult<()> {
        diesel::update(sla_clocks::table.find(self.row.id))
            .set((
                sla_clocks::state.eq(&self.row.state),
                sla_clocks::spec.eq(json_of(&self.spec)?),
                sla_clocks::progress.eq(json_of(&self.progress)?),
                sla_clocks::due_on.eq(self.row.due_on),
                sla_clocks::due_at.eq(self.row.due_at),
                sla_clocks::next_fire_at.eq(self.row.next_fire_at),
                sla_clocks::claimed_until.eq(None::<DateTime<Utc>>),
                sla_clocks::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .map(|_| ())
    }

    /// Ends the clock in `state` (nothing more to fire).
    fn end(&mut self, state: &str) {
        self.row.state = state.to_owned();
        self.row.next_fire_at = None;
    }

    /// Sets a due date (or the reason there is none) and the schedule that follows.
    fn schedule(&mut self, computed: Result<(Due, Option<DateTime<Utc>>), String>) {
        match computed {
            Ok((due, warn_at)) => {
                self.row.state = STATE_RUNNING.to_owned();
                self.row.due_on = due.due_on;
                self.row.due_at = Some(due.due_at);
                if self.progress.warned_at.is_none() {
                    self.progress.warn_at = warn_at;
                }
                self.progress.problem = None;
                self.row.next_fire_at = Some(next_fire(
                    self.progress.warn_at,
                    self.progress.warned_at,
                    due.due_at,
                ));
            }
            Err(problem) => {
                // Expected near the end of a year, for every clock that counts into the next
                // one until its calendar is loaded: counted by the metric
                // redress_deadline_clocks_waiting_for_calendar, which an alert watches,
                // rather than logged as an error per clock (docs/OPERATIONS.md).
                tracing::debug!(complaint.id = %self.row.complaint_id, sla.clock = self.row.clock, error = %problem, "deadline cannot be computed yet; the clock waits for its calendar");
                self.row.state = STATE_UNSCHEDULED.to_owned();
                self.row.due_on = None;
                self.row.due_at = None;
                self.row.next_fire_at = None;
                self.progress.problem = Some(problem);
            }
        }
    }
}

fn parse_tz(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// How many clocks, over every tenant, wait for a calendar year that is not loaded yet
/// (migration 000020); for the metrics.
pub async fn clocks_waiting_for_calendar(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        waiting: i64,
    }
    let w: Waiting = diesel::sql_query("SELECT redress_clocks_waiting_for_calendar() AS waiting")
        .get_result(conn)
        .await?;
    Ok(w.waiting)
}

/// An IANA time zone by name, for callers that do not depend on chrono-tz themselves.
pub fn parse_time_zone(name: &str) -> Option<Tz> {
    parse_tz(name)
}

pub fn unit_str(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "seconds",
        Unit::Minutes => "minutes",
        Unit::Hours => "hours",
        Unit::CalendarDays => "calendar_days",
        Unit::WorkingDays => "working_days",
    }
}

pub fn parse_unit(raw: &str) -> Option<Unit> {
    match raw {
        "seconds" => Some(Unit::Seconds),
        "minutes" => Some(Unit::Minutes),
        "hours" => Some(Unit::Hours),
        "calendar_days" => Some(Unit::CalendarDays),
        "working_days" => Some(Unit::WorkingDays),
        _ => None,
    }
}

fn unit_seconds(unit: Unit) -> u64 {
    match unit {
        Unit::Seconds => 1,
        Unit::Minutes => 60,
        Unit::Hours => 3_600,
        Unit::CalendarDays | Unit::WorkingDays => 86_400,
    }
}

/// A whole target as something to count from the start: the same shape a paused clock's
/// remainder has, so starting and resuming are one computation.
fn initial_counted(target: Target) -> Remaining {
    match target.unit {
        Unit::WorkingDays => Remaining::WorkingDays {
            days: target.amount,
        },
        Unit::CalendarDays => Remaining::CalendarDays {
            days: target.amount,
        },
        unit => Remaining::Duration {
            seconds: u64::from(target.amount) * unit_seconds(unit),
            nanos: 0,
        },
    }
}

/// `counted` plus `delta` of the clock's unit (an extension).
fn add_to(counted: Remaining, delta: u32, unit: Unit) -> Remaining {
    match counted {
        Remaining::WorkingDays { days } => Remaining::WorkingDays {
            days: days.saturating_add(delta),
        },
        Remaining::CalendarDays { days } => Remaining::CalendarDays {
            days: days.saturating_add(delta),
        },
        Remaining::Duration { seconds, nanos } => Remaining::Duration {
            seconds: seconds.saturating_add(u64::from(delta) * unit_seconds(unit)),
            nanos,
        },
    }
}

fn json_of<T: Serialize>(value: &T) -> QueryResult<Value> {
    serde_json::to_value(value).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

fn corrupt(e: DeadlineError) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(e.to_string().into())
}

/// When the warning fires: a fraction of the time counted from `from`, or a set time
/// before the due date. `None` when there is no warning or it would not come before the
/// due time. Never before `from`.
fn warning_point(
    calendar: &Calendar,
    tz: Tz,
    warning: Option<Warning>,
    from: DateTime<Utc>,
    due: &Due,
) -> Option<DateTime<Utc>> {
    let point = match warning? {
        Warning::Fraction(fraction) => {
            let span = (due.due_at - from).num_milliseconds().max(0);
            // f64 holds integers up to 2^53 exactly; a span in milliseconds stays far
            // below that for any deadline the policies allow.
            let offset = (span as f64 * fraction).round() as i64;
            from + TimeDelta::milliseconds(offset)
        }
        Warning::Before(Before { amount, unit }) => match (unit, due.due_on) {
            (Unit::WorkingDays, Some(due_on)) => {
                // When `amount` working days are left: the end of the day before the
                // amount-th working day counted back from the due date (inclusive).
                let mut day = due_on;
                let mut left = 0;
                for _ in 0..=3_660 {
                    if calendar.is_working_day(day).unwrap_or(false) {
                        left += 1;
                    }
                    if left >= amount {
                        break;
                    }
                    match day.pred_opt() {
                        Some(previous) => day = previous,
                        None => break,
                    }
                }
                day.pred_opt()
                    .and_then(|d| cal::end_of_local_day(tz, d).ok())
                    .unwrap_or(from)
            }
            (Unit::CalendarDays, Some(due_on)) => due_on
                .checked_sub_days(chrono::Days::new(u64::from(amount)))
                .and_then(|d| cal::end_of_local_day(tz, d).ok())
                .unwrap_or(from),
            (unit, _) => {
                let secs =
                    i64::try_from(u64::from(amount) * unit_seconds(unit)).unwrap_or(i64::MAX);
                due.due_at - TimeDelta::try_seconds(secs).unwrap_or(TimeDelta::zero())
            }
        },
    };
    let point = point.max(from);
    (point < due.due_at).then_some(point)
}

/// The next moment the scheduler must look at a running clock.
fn next_fire(
    warn_at: Option<DateTime<Utc>>,
    warned_at: Option<DateTime<Utc>>,
    due_at: DateTime<Utc>,
) -> DateTime<Utc> {
    match (warn_at, warned_at) {
        (Some(warn_at), None) if warn_at < due_at => warn_at,
        _ => due_at,
    }
}

async fn tenant_time_zone(conn: &AsyncPgConnection, tenant: &TenantId) -> QueryResult<Tz> {
    let zone = tenants::find_tenant(conn, tenant)
        .await?
        .map(|t| t.time_zone)
        .unwrap_or_default();
    Ok(parse_tz(&zone).unwrap_or(DEFAULT_TIME_ZONE))
}

/// Calendars loaded once per call: a complaint's clocks mostly share one.
#[derive(Default)]
struct CalendarCache(HashMap<(String, String), Result<Calendar, String>>);

impl CalendarCache {
    async fn get(
        &mut self,
        conn: &mut AsyncPgConnection,
        tenant: &str,
        id: &str,
    ) -> QueryResult<Result<Calendar, String>> {
        let key = (tenant.to_owned(), id.to_owned());
        if let Some(found) = self.0.get(&key) {
            return Ok(found.clone());
        }
        let tenant = TenantId::from_trusted(tenant.to_owned());
        let loaded = match calendars::load(conn, &tenant, id).await {
            Ok(calendar) => Ok(calendar),
            Err(DeadlineError::Db(e)) => return Err(e),
            Err(other) => Err(other.to_string()),
        };
        self.0.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// Counts `counted` from `from` on the clock's calendar: the due date and the warning
    /// point, or why they cannot be known yet.
    async fn compute(
        &mut self,
        conn: &mut AsyncPgConnection,
        clock: &Clock,
        counted: Remaining,
        from: DateTime<Utc>,
    ) -> QueryResult<Result<(Due, Option<DateTime<Utc>>), String>> {
        let calendar = match self
            .get(conn, &clock.row.tenant_id, &clock.spec.calendar)
            .await?
        {
            Ok(calendar) => calendar,
            Err(problem) => return Ok(Err(problem)),
        };
        let tz = clock.tz();
        Ok(
            cal::resume(&calendar, tz, counted, from, clock.spec.roll_forward)
                .map(|due| {
                    let warn_at = warning_point(&calendar, tz, clock.spec.warning, from, &due);
                    (due, warn_at)
                })
                .map_err(|e| e.to_string()),
        )
    }
}

/// A clock to insert (`PlannedRung::write_first`).
struct NewClock {
    tenant_id: String,
    complaint_id: String,
    channel: String,
    track: String,
    clock: String,
    state: String,
    spec: Value,
    progress: Value,
    due_on: Option<NaiveDate>,
    due_at: Option<DateTime<Utc>>,
    next_fire_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

// ----------------------------------------------------------------------------------------
// The interface the routing engine calls

/// Starts the clocks of a rung the case was just routed to and returns its deadline
/// objects (for `Rung.deadlines`). `sla_policy` names the policy; `None` uses the policy
/// whose code is the channel code, and a rung without a policy has no clocks. Clocks
/// already live on the same rung (channel and track) are cancelled first, so re-entering a
/// rung starts it afresh.
///
/// A start date the calendar does not know (a year whose arrangement is not loaded) does
/// not stop routing: the clock is kept without a due date, its deadline object says why in
/// `problem`, and loading the year schedules it.
pub async fn start_for_rung(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
    sla_policy: Option<&str>,
    started_at: DateTime<Utc>,
) -> QueryResult<Vec<Value>> {
    let code = sla_policy.unwrap_or(channel);
    // The tenant's zone is read with the policy (one round trip): most policies leave the
    // zone to the tenant, and an unneeded read costs far less than a second trip.
    let (policy, tenant_tz) = {
        let shared: &AsyncPgConnection = conn;
        futures::join!(
            policies::find(shared, tenant, code),
            tenant_time_zone(shared, tenant)
        )
    };
    let ahead = ReadAhead {
        policies: policy?.map(|v| v.policy).into_iter().collect(),
        tenant_tz: tenant_tz?,
    };
    let mut calendars = Calendars::default();
    let started = plan_rung(
        conn,
        &ahead,
        &mut calendars,
        tenant,
        complaint,
        channel,
        track,
        sla_policy,
        started_at,
    )
    .await?;
    started.write(conn, complaint).await?;
    Ok(started.deadlines)
}

/// What starting rungs needs to read besides calendars, read once for all of a routing's
/// rungs and together with its other reads: the tenant's SLA policies and time zone.
pub struct ReadAhead {
    policies: Vec<policies::SlaPolicy>,
    tenant_tz: Tz,
}

impl ReadAhead {
    /// Reads it; takes a shared reference so the caller can send it with other reads.
    pub async fn read(conn: &AsyncPgConnection, tenant: &TenantId) -> QueryResult<Self> {
        let (listed, tenant_tz) =
            futures::join!(policies::list(conn, tenant), tenant_time_zone(conn, tenant));
        Ok(Self {
            policies: listed?.into_iter().map(|v| v.policy).collect(),
            tenant_tz: tenant_tz?,
        })
    }

    /// The tenant's calendar date at `now`, in its zone.
    pub fn tenant_today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.tenant_tz).date_naive()
    }
}

/// The calendars clocks are counted on, each loaded once for all the rungs of a routing.
#[derive(Default)]
pub struct Calendars(CalendarCache);

/// A rung's clocks, worked out and not yet written: [`PlannedRung::write`] writes them in
/// one round trip, which the caller may share with its other writes.
pub struct PlannedRung {
    /// The rung's deadline objects (for `Rung.deadlines`).
    pub deadlines: Vec<Value>,
    channel: String,
    track: String,
    /// No policy: nothing to cancel or start.
    has_policy: bool,
    started_at: DateTime<Utc>,
    rows: Vec<NewClock>,
}

impl PlannedRung {
    /// Cancels the clocks still live on the rung and inserts the new ones; the two go to
    /// Postgres together and run in this order (live clocks are unique per rung and clock).
    pub async fn write(
        &self,
        conn: &AsyncPgConnection,
        complaint: &ComplaintId,
    ) -> QueryResult<()> {
        if !self.has_policy {
            return Ok(());
        }
        let cancelled = cancel_live(conn, complaint, &self.channel, &self.track, self.started_at);
        let this = [self];
        let (cancelled, inserted) = futures::join!(cancelled, Self::write_first(conn, &this));
        cancelled?;
        inserted?;
        Ok(())
    }

    /// [`PlannedRung::write`] for rungs of cases that have never had clocks (they were
    /// `submitted` until now, and nothing moves a case back there): nothing live to cancel,
    /// so every rung's clocks go in one insert (a routing batch's, for one).
    pub async fn write_first(
        mut conn: &AsyncPgConnection,
        planned: &[&PlannedRung],
    ) -> QueryResult<()> {
        let rows: Vec<&NewClock> = planned
            .iter()
            .filter(|p| p.has_policy)
            .flat_map(|p| p.rows.iter())
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        use crate::db::prepared::column;
        use diesel::sql_types::{Array, Date, Jsonb, Nullable, Text, Timestamptz};
        // Fixed text kept prepared (`db::prepared`): a multi-row VALUES list is new text for
        // every batch size, parsed and planned each time.
        crate::db::prepared::reuse(
            diesel::sql_query(
                "INSERT INTO sla_clocks (tenant_id, complaint_id, channel, track, clock, state, \
                                         spec, progress, due_on, due_at, next_fire_at, \
                                         updated_at) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                                      $5::text[], $6::text[], $7::jsonb[], $8::jsonb[], \
                                      $9::date[], $10::timestamptz[], $11::timestamptz[], \
                                      $12::timestamptz[])",
            )
            .bind::<Array<Text>, _>(column(&rows, |r| r.tenant_id.as_str()))
            .bind::<Array<Text>, _>(column(&rows, |r| r.complaint_id.as_str()))
            .bind::<Array<Text>, _>(column(&rows, |r| r.channel.as_str()))
            .bind::<Array<Text>, _>(column(&rows, |r| r.track.as_str()))
            .bind::<Array<Text>, _>(column(&rows, |r| r.clock.as_str()))
            .bind::<Array<Text>, _>(column(&rows, |r| r.state.as_str()))
            .bind::<Array<Jsonb>, _>(column(&rows, |r| &r.spec))
            .bind::<Array<Jsonb>, _>(column(&rows, |r| &r.progress))
            .bind::<Array<Nullable<Date>>, _>(column(&rows, |r| r.due_on))
            .bind::<Array<Nullable<Timestamptz>>, _>(column(&rows, |r| r.due_at))
            .bind::<Array<Nullable<Timestamptz>>, _>(column(&rows, |r| r.next_fire_at))
            .bind::<Array<Timestamptz>, _>(column(&rows, |r| r.updated_at)),
        )
        .execute(&mut conn)
        .await
        .map(|_| ())
    }
}

/// Works out the clocks of a rung the case was just routed to (see [`start_for_rung`]),
/// reading only the calendars `ahead` does not hold.
#[allow(clippy::too_many_arguments)]
pub async fn plan_rung(
    conn: &mut AsyncPgConnection,
    ahead: &ReadAhead,
    calendars: &mut Calendars,
    tenant: &TenantId,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
    sla_policy: Option<&str>,
    started_at: DateTime<Utc>,
) -> QueryResult<PlannedRung> {
    let code = sla_policy.unwrap_or(channel);
    let Some(policy) = ahead.policies.iter().find(|p| p.code == code).cloned() else {
        if sla_policy.is_some() {
            tracing::warn!(tenant.id = %tenant, complaint.id = %complaint, sla.policy = code, "routing names an SLA policy the tenant does not have; the rung runs without deadlines");
        }
        return Ok(PlannedRung {
            deadlines: Vec::new(),
            channel: channel.to_owned(),
            track: track.to_owned(),
            has_policy: false,
            started_at,
            rows: Vec::new(),
        });
    };
    let tz = match policy.time_zone.as_deref().and_then(parse_tz) {
        Some(tz) => tz,
        None => ahead.tenant_tz,
    };
    let warning = match (policy.warn_at_fraction, policy.warn_before) {
        (Some(f), _) => Some(Warning::Fraction(f)),
        (None, Some(before)) => Some(Warning::Before(before)),
        (None, None) => None,
    };
    let cache = &mut calendars.0;
    let mut views = Vec::new();
    let mut rows = Vec::new();
    for (kind, target) in [(ACKNOWLEDGE, policy.acknowledge), (RESPOND, policy.respond)] {
        let Some(target) = target else { continue };
        let counted = initial_counted(target.target());
        let mut clock = Clock {
            row: ClockRow {
                id: 0,
                tenant_id: tenant.to_string(),
                complaint_id: complaint.to_string(),
                channel: channel.to_owned(),
                track: track.to_owned(),
                clock: kind.to_owned(),
                state: STATE_RUNNING.to_owned(),
                spec: Value::Null,
                progress: Value::Null,
                due_on: None,
                due_at: None,
                next_fire_at: None,
                claimed_until: None,
                updated_at: started_at,
            },
            spec: Spec {
                policy: policy.code.clone(),
                calendar: policy.calendar.clone(),
                time_zone: tz.name().to_owned(),
                roll_forward: policy.roll_forward,
                on_breach: policy.on_breach,
                warning,
                target: target.target(),
                max_amount: target.extendable_to,
                started_at,
            },
            progress: Progress {
                counted_from: started_at,
                counted,
                warn_at: None,
                remaining: None,
                paused_at: None,
                warned_at: None,
                breached_at: None,
                met_at: None,
                extensions: 0,
                problem: None,
            },
        };
        let computed = cache.compute(conn, &clock, counted, started_at).await?;
        clock.schedule(computed);
        views.push(clock.view());
        rows.push(NewClock {
            tenant_id: tenant.to_string(),
            complaint_id: complaint.to_string(),
            channel: channel.to_owned(),
            track: track.to_owned(),
            clock: kind.to_owned(),
            state: clock.row.state.clone(),
            spec: json_of(&clock.spec)?,
            progress: json_of(&clock.progress)?,
            due_on: clock.row.due_on,
            due_at: clock.row.due_at,
            next_fire_at: clock.row.next_fire_at,
            updated_at: started_at,
        });
    }
    Ok(PlannedRung {
        deadlines: views,
        channel: channel.to_owned(),
        track: track.to_owned(),
        has_policy: true,
        started_at,
        rows,
    })
}

async fn cancel_live(
    mut conn: &AsyncPgConnection,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
    at: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        sla_clocks::table
            .filter(sla_clocks::complaint_id.eq(complaint.as_str()))
            .filter(sla_clocks::channel.eq(channel))
            .filter(sla_clocks::track.eq(track))
            .filter(sla_clocks::state.eq_any(LIVE)),
    )
    .set((
        sla_clocks::state.eq(STATE_CANCELLED),
        sla_clocks::next_fire_at.eq(None::<DateTime<Utc>>),
        sla_clocks::claimed_until.eq(None::<DateTime<Utc>>),
        sla_clocks::updated_at.eq(at),
    ))
    .execute(&mut conn)
    .await
}

/// Pauses every running clock of the complaint (it now waits for evidence), keeping what is
/// left of each in the terms it will be counted again. A clock already past its due time
/// keeps running so the scheduler records the breach.
pub async fn pause_all(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    let clocks = locked_clocks(conn, tenant, complaint, &[STATE_RUNNING]).await?;
    let mut cache = CalendarCache::default();
    for mut clock in clocks {
        let Some(due) = clock.due() else { continue };
        if due.due_at <= at {
            continue;
        }
        // The remainder is taken in the unit being counted (a resumed clock counts what
        // was left, in its target's unit).
        let unit = match clock.progress.counted {
            Remaining::WorkingDays { .. } => Unit::WorkingDays,
            Remaining::CalendarDays { .. } => Unit::CalendarDays,
            Remaining::Duration { .. } => Unit::Seconds,
        };
        let left = match cache
            .get(conn, &clock.row.tenant_id, &clock.spec.calendar)
            .await?
        {
            Ok(calendar) => {
                cal::remaining(&calendar, clock.tz(), unit, &due, at).map_err(|e| e.to_string())
            }
            Err(problem) => Err(problem),
        };
        match left {
            Ok(left) => {
                clock.end(STATE_PAUSED);
                clock.progress.remaining = Some(left);
                clock.progress.paused_at = Some(at);
                clock.save(conn, at).await?;
            }
            Err(problem) => {
                tracing::error!(complaint.id = %complaint, sla.clock = clock.row.clock, error = %problem, "clock cannot be paused; it keeps running");
            }
        }
    }
    refresh_rungs(conn, tenant, complaint, at).await
}

/// Resumes every paused clock of the complaint: what was left at the pause is counted again
/// from `at` (the resume day itself not counted, like a start day).
pub async fn resume_all(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    let clocks = locked_clocks(conn, tenant, complaint, &[STATE_PAUSED]).await?;
    let mut cache = CalendarCache::default();
    for mut clock in clocks {
        let Some(left) = clock.progress.remaining.take() else {
            tracing::error!(complaint.id = %complaint, sla.clock = clock.row.clock, "paused clock has no remainder; it stays paused");
            continue;
        };
        clock.progress.counted_from = at;
        clock.progress.counted = left;
        clock.progress.paused_at = None;
        let computed = cache.compute(conn, &clock, left, at).await?;
        clock.schedule(computed);
        clock.save(conn, at).await?;
    }
    refresh_rungs(conn, tenant, complaint, at).await
}

/// Stops clocks of a rung: `which` is `acknowledge`, `respond` or `all`. With `met` the
/// channel did what the clock asked (a clock that already breached keeps that state and
/// records when it was met); without, the rung was left and its clocks are cancelled.
#[allow(clippy::too_many_arguments)]
pub async fn stop_for_rung(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
    which: &str,
    met: bool,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    let clocks = locked_clocks(
        conn,
        tenant,
        complaint,
        &[
            STATE_RUNNING,
            STATE_PAUSED,
            STATE_UNSCHEDULED,
            STATE_BREACHED,
        ],
    )
    .await?;
    for mut clock in clocks {
        if clock.row.channel != channel
            || clock.row.track != track
            || (which != "all" && clock.row.clock != which)
        {
            continue;
        }
        let live = LIVE.contains(&clock.row.state.as_str());
        match (met, live) {
            (true, true) => {
                clock.end(STATE_MET);
                clock.progress.met_at = Some(at);
            }
            (true, false) if clock.progress.met_at.is_none() => {
                // Breached, then answered late: the breach stands, the answer is noted.
                clock.progress.met_at = Some(at);
            }
            (false, true) => clock.end(STATE_CANCELLED),
            _ => continue,
        }
        clock.save(conn, at).await?;
    }
    refresh_rungs(conn, tenant, complaint, at).await
}

/// The current deadline objects of one rung, as [`start_for_rung`] returned them but up to
/// date.
pub async fn deadlines_for_rung(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    channel: &str,
    track: &str,
) -> QueryResult<Vec<Value>> {
    let clocks = visible_clocks(conn, tenant, complaint).await?;
    Ok(rung_deadlines(&clocks, channel, track))
}

async fn locked_clocks(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    states: &[&str],
) -> QueryResult<Vec<Clock>> {
    let rows: Vec<ClockRow> = sla_clocks::table
        .filter(sla_clocks::tenant_id.eq(tenant.as_str()))
        .filter(sla_clocks::complaint_id.eq(complaint.as_str()))
        .filter(sla_clocks::state.eq_any(states))
        .order(sla_clocks::id)
        .select(ClockRow::as_select())
        .for_update()
        .load(conn)
        .await?;
    decode_all(rows)
}

fn decode_all(rows: Vec<ClockRow>) -> QueryResult<Vec<Clock>> {
    rows.into_iter()
        .map(|row| Clock::decode(row).map_err(corrupt))
        .collect()
}

async fn visible_clocks(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
) -> QueryResult<Vec<Clock>> {
    let rows: Vec<ClockRow> = sla_clocks::table
        .filter(sla_clocks::tenant_id.eq(tenant.as_str()))
        .filter(sla_clocks::complaint_id.eq(complaint.as_str()))
        .filter(sla_clocks::state.ne(STATE_CANCELLED))
        .order(sla_clocks::id)
        .select(ClockRow::as_select())
        .load(conn)
        .await?;
    decode_all(rows)
}

/// The latest clock of each kind on the rung.
fn rung_deadlines(clocks: &[Clock], channel: &str, track: &str) -> Vec<Value> {
    CLOCKS
        .iter()
        .filter_map(|kind| {
            clocks
                .iter()
                .rev()
                .find(|c| c.row.channel == channel && c.row.track == track && c.row.clock == *kind)
                .map(Clock::view)
        })
        .collect()
}

/// Writes the clocks' current state into the deadline objects of the complaint's rungs.
/// Entries of a rung's `deadlines` that no clock of this module made are left alone.
pub async fn refresh_rungs(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let stored: Option<Value> = complaints_table::table
        .filter(complaints_table::id.eq(complaint.as_str()))
        .filter(complaints_table::tenant_id.eq(tenant.as_str()))
        .select(complaints_table::current_rungs)
        .first(conn)
        .await
        .optional()?;
    let Some(stored) = stored else {
        return Ok(());
    };
    let Ok(mut rungs) = serde_json::from_value::<Vec<Rung>>(stored.clone()) else {
        tracing::error!(complaint.id = %complaint, "current_rungs does not parse; deadlines not refreshed");
        return Ok(());
    };
    if rungs.is_empty() {
        return Ok(());
    }
    let clocks = visible_clocks(conn, tenant, complaint).await?;
    for rung in &mut rungs {
        let fresh = rung_deadlines(&clocks, &rung.channel, &rung.track);
        let kinds: Vec<String> = fresh
            .iter()
            .filter_map(|d| d.get("clock").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut deadlines: Vec<Value> = rung
            .deadlines
            .iter()
            .filter(|d| {
                d.get("clock")
                    .and_then(Value::as_str)
                    .is_none_or(|k| !kinds.iter().any(|known| known == k))
            })
            .cloned()
            .collect();
        deadlines.extend(fresh);
        deadlines.sort_by_key(|d| {
            let kind = d.get("clock").and_then(Value::as_str).unwrap_or_default();
            CLOCKS
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(CLOCKS.len())
        });
        rung.deadlines = deadlines;
    }
    let updated = json_of(&rungs)?;
    if updated == stored {
        return Ok(());
    }
    diesel::update(
        complaints_table::table
            .filter(complaints_table::id.eq(complaint.as_str()))
            .filter(complaints_table::tenant_id.eq(tenant.as_str())),
    )
    .set((
        complaints_table::current_rungs.eq(updated),
        complaints_table::updated_at.eq(now),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}

// ----------------------------------------------------------------------------------------
// Extensions (operators)

#[derive(Debug, Clone)]
pub struct Extension<'a> {
    /// `acknowledge` or `respond`.
    pub clock: &'a str,
    /// Picks the rung when several active rungs have that clock.
    pub channel: Option<&'a str>,
    /// The new total target, counted from the clock's start like the first one.
    pub amount: u32,
    pub unit: Unit,
    pub reason: &'a str,
    pub actor: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtendError {
    #[error("the complaint has no {0} deadline that is still running")]
    NotFound(String),
    #[error("several rungs have a {clock} deadline: {channels:?}")]
    Ambiguous {
        clock: String,
        channels: Vec<String>,
    },
    #[error("the deadline is {0}")]
    NotLive(String),
    #[error("invalid extension")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Extends a clock to a larger total target (e.g. 15 → 30 → 60 calendar days), counted from
/// the clock's original start, as the rules set the total period; a clock that was paused
/// keeps its pause (the extra amount is added to what it counts). Records
/// `complaint.deadline_extended` with the reason. The caller holds the complaint's lock.
pub async fn extend(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    request: &Extension<'_>,
    at: DateTime<Utc>,
) -> Result<Value, ExtendError> {
    let clocks = locked_clocks(
        conn,
        tenant,
        complaint,
        &[
            STATE_RUNNING,
            STATE_PAUSED,
            STATE_UNSCHEDULED,
            STATE_MET,
            STATE_BREACHED,
        ],
    )
    .await?;
    let matching: Vec<&Clock> = clocks
        .iter()
        .filter(|c| c.row.clock == request.clock)
        .filter(|c| request.channel.is_none_or(|ch| ch == c.row.channel))
        .collect();
    let live: Vec<&Clock> = matching
        .iter()
        .copied()
        .filter(|c| LIVE.contains(&c.row.state.as_str()))
        .collect();
    let mut clock = match live.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(match matching.last() {
                Some(ended) => ExtendError::NotLive(ended.row.state.clone()),
                None => ExtendError::NotFound(request.clock.to_owned()),
            })
        }
        several => {
            return Err(ExtendError::Ambiguous {
                clock: request.clock.to_owned(),
                channels: several.iter().map(|c| c.row.channel.clone()).collect(),
            })
        }
    };
    let unit = clock.spec.target.unit;
    let current = clock.spec.target.amount;
    let mut errors = Vec::new();
    if request.unit != unit {
        errors.push(FieldError::new(
            "/unit",
            format!("must be the clock's unit, {}", unit_str(unit)),
        ));
    }
    if request.amount <= current {
        errors.push(FieldError::new(
            "/amount",
            format!(
                "must be more than the current target of {current} {}",
                unit_str(unit)
            ),
        ));
    }
    if let Some(max) = clock.spec.max_amount {
        if request.amount > max {
            errors.push(FieldError::new(
                "/amount",
                format!(
                    "policy {} allows extending this deadline to at most {max} {}",
                    clock.spec.policy,
                    unit_str(unit)
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ExtendError::Invalid(errors));
    }
    let delta = request.amount - current;
    let before = clock.view();
    clock.spec.target.amount = request.amount;
    clock.progress.extensions += 1;
    clock.progress.counted = add_to(clock.progress.counted, delta, unit);
    if clock.row.state == STATE_PAUSED {
        clock.progress.remaining = clock.progress.remaining.map(|r| add_to(r, delta, unit));
    } else {
        // A new due date deserves its own warning.
        clock.progress.warned_at = None;
        let mut cache = CalendarCache::default();
        let computed = cache
            .compute(
                conn,
                &clock,
                clock.progress.counted,
                clock.progress.counted_from,
            )
            .await?;
        clock.schedule(computed);
    }
    clock.save(conn, at).await?;
    refresh_rungs(conn, tenant, complaint, at).await?;
    let view = clock.view();
    complaints::append_event(
        conn,
        tenant,
        complaint,
        DEADLINE_EXTENDED,
        request.actor,
        json!({
            "clock": clock.row.clock,
            "channel": clock.row.channel,
            "track": clock.row.track,
            "reason": request.reason,
            "previous": before,
            "deadline": view,
        }),
        at,
    )
    .await?;
    Ok(view)
}

// ----------------------------------------------------------------------------------------
// The scheduler's side

/// A clock a scheduler claimed; it acts on it in a transaction of its own with [`fire`].
#[derive(Debug, Clone, QueryableByName)]
pub struct Claim {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub tenant_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub complaint_id: String,
}

/// The claim as the scheduler sends it: through a SECURITY DEFINER function (migration
/// 000006), since due clocks are found across tenants before any tenant is known; it
/// returns ids and the tenant, and [`fire`] then works in a transaction set to that tenant.
pub const CLAIM_CALL_SQL: &str =
    "SELECT id, tenant_id, complaint_id FROM redress_claim_due_clocks($1, $2, $3)";

/// The statement inside `redress_claim_due_clocks` (keep the two alike), for the
/// benchmark's EXPLAIN, run as the owner. Reads only the partial index `sla_clocks_due`:
/// the rows it skips are running clocks that are due but held by a live claim.
pub const CLAIM_SQL: &str = "\
WITH due AS (
    SELECT id FROM sla_clocks
    WHERE state = 'running' AND next_fire_at <= $1
      AND (claimed_until IS NULL OR claimed_until <= $1)
    ORDER BY next_fire_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE sla_clocks c SET claimed_until = $3
FROM due WHERE c.id = due.id
RETURNING c.id, c.tenant_id, c.complaint_id";

/// Claims up to `limit` running clocks whose next warning or breach is due at `now` and
/// that no live scheduler holds, for `lease`. The caller commits at once: the claim only
/// spreads the work; [`fire`] re-checks each clock under its row lock, which is what makes
/// a warning or breach happen once even when a lease expired while its holder was still
/// working.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    lease: TimeDelta,
    limit: i64,
) -> QueryResult<Vec<Claim>> {
    statements::ClaimDue {
        now,
        limit,
        until: now + lease,
    }
    .load(conn)
    .await
}

/// A case a breach asks to move up its ladder; the worker hands it to the routing engine
/// in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationRequest {
    pub tenant: TenantId,
    pub complaint: ComplaintId,
    pub channel: String,
    pub track: String,
    pub clock: String,
    pub reason: String,
}

/// What [`fire`] did with one claimed clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fired {
    pub warning: bool,
    pub breach: bool,
    pub escalate: Option<EscalationRequest>,
}

/// Fires what is due on one claimed clock, in the caller's transaction: the warning (once),
/// the breach (once), each as an event (and so a webhook), with the rung's deadlines
/// updated first so the webhook shows the new state. Locks the complaint, then the clock,
/// and re-checks the clock under the lock: another scheduler that got here first, or a
/// transition that stopped the clock meanwhile, leaves nothing to do.
pub async fn fire(
    conn: &mut AsyncPgConnection,
    claim: &Claim,
    now: DateTime<Utc>,
) -> QueryResult<Fired> {
    let tenant = TenantId::from_trusted(claim.tenant_id.clone());
    let complaint = ComplaintId::from_trusted(claim.complaint_id.clone());
    // One statement reads the case and the clock and locks the case: every writer that
    // changes a clock's state holds its case's lock (see the module docs), so this alone
    // keeps them out; the guarded update below catches any that does not.
    let found: Option<FireRow> = statements::FireRead {
        clock: claim.id,
        complaint: complaint.to_string(),
        tenant: tenant.to_string(),
    }
    .get_result(conn)
    .await
    .optional()?;
    let Some(found) = found else {
        return Ok(Fired::default());
    };
    let (status, stored_rungs, row) = found.split();
    let seen_next_fire = row.next_fire_at;
    let due_at = match (row.state.as_str(), row.next_fire_at, row.due_at) {
        (STATE_RUNNING, Some(next), Some(due_at)) if next <= now => due_at,
        _ => {
            release(conn, claim.id).await?;
            return Ok(Fired::default());
        }
    };
    let mut clock = Clock::decode(row).map_err(corrupt)?;
    let status = Status::parse(&status);
    if status.is_some_and(Status::is_final) {
        // A final case has no deadlines left to miss.
        clock.end(STATE_CANCELLED);
        clock.save(conn, now).await?;
        return Ok(Fired::default());
    }
    let warn_at = clock.progress.warn_at;
    let warning = clock.progress.warned_at.is_none()
        && warn_at.is_some_and(|warn_at| warn_at <= now && warn_at < due_at);
    let breach = due_at <= now;
    if warning {
        clock.progress.warned_at = Some(now);
    }
    if breach {
        clock.end(STATE_BREACHED);
        clock.progress.breached_at = Some(now);
    } else {
        clock.row.next_fire_at = Some(next_fire(warn_at, clock.progress.warned_at, due_at));
    }
    let rungs = rungs_with(&stored_rungs, &clock);
    let events = i32::from(warning) + i32::from(breach);
    let written: Option<i32> = statements::FireWrite {
        state: clock.row.state.clone(),
        progress: json_of(&clock.progress)?,
        next_fire_at: clock.row.next_fire_at,
        now,
        clock: clock.row.id,
        seen_next_fire_at: seen_next_fire,
        rungs,
        complaint: complaint.to_string(),
        tenant: tenant.to_string(),
        events,
    }
    .get_result::<Written>(conn)
    .await
    .optional()?
    .map(|w| w.last_sequence);
    let Some(last_sequence) = written else {
        // The clock changed between the read and the write: someone else acted on it.
        return Ok(Fired::default());
    };
    // The write above numbered this firing's events on the case row (locked since the
    // read), so appending them is inserts only: one update of the case per firing instead
    // of one per event (docs/PERFORMANCE.md, "Deadlines").
    let mut next_sequence = last_sequence - events + 1;
    let facts = json!({
        "clock": clock.row.clock,
        "channel": clock.row.channel,
        "track": clock.row.track,
        "policy": clock.spec.policy,
        "due_on": clock.row.due_on,
        "due_at": clock.row.due_at,
    });
    if warning {
        let mut data = facts.clone();
        data["warn_at"] = json!(warn_at);
        complaints::append_numbered_event(
            conn,
            &tenant,
            &complaint,
            next_sequence,
            SLA_WARNING,
            ACTOR_SCHEDULER,
            data,
            now,
        )
        .await?;
        next_sequence += 1;
    }
    let mut escalate = None;
    if breach {
        let mut data = facts;
        data["on_breach"] = json!(clock.spec.on_breach);
        complaints::append_numbered_event(
            conn,
            &tenant,
            &complaint,
            next_sequence,
            SLA_BREACHED,
            ACTOR_SCHEDULER,
            data,
            now,
        )
        .await?;
        let active = status.is_some_and(|s| matches!(s, Status::Routed | Status::InProgress));
        if clock.spec.on_breach == OnBreach::Escalate && active {
            let due = clock
                .row
                .due_on
                .map(|d| d.to_string())
                .unwrap_or_else(|| due_at.to_rfc3339());
            let missing = if clock.row.clock == ACKNOWLEDGE {
                "an acknowledgement"
            } else {
                "a response"
            };
            escalate = Some(EscalationRequest {
                tenant,
                complaint,
                channel: clock.row.channel.clone(),
                track: clock.row.track.clone(),
                clock: clock.row.clock.clone(),
                reason: format!(
                    "the {} deadline of `{}` ({due}) passed without {missing}",
                    clock.row.clock, clock.row.channel
                ),
            });
        }
    }
    Ok(Fired {
        warning,
        breach,
        escalate,
    })
}

/// The case reads and locks with the clock it fires.
pub const FIRE_READ_SQL: &str = "\
SELECT p.status, p.current_rungs, c.id, c.tenant_id, c.complaint_id, c.channel, c.track,
       c.clock, c.state, c.spec, c.progress, c.due_on, c.due_at, c.next_fire_at,
       c.claimed_until, c.updated_at
FROM complaints p JOIN sla_clocks c ON c.complaint_id = p.id
WHERE c.id = $1 AND p.id = $2 AND p.tenant_id = $3
FOR UPDATE OF p";

/// The clock's new state and the rung's deadline objects in one statement; the clock is
/// updated only if it is still as it was read (running, same next fire time), and the
/// case only if the clock was. `updated_at` of the case is left to the event appended next
/// (same transaction), so this update changes no indexed column and can stay on its page.
pub const FIRE_WRITE_SQL: &str = "\
WITH clock AS (
    UPDATE sla_clocks
    SET state = $1, progress = $2, next_fire_at = $3, claimed_until = NULL, updated_at = $4
    WHERE id = $5 AND state = 'running' AND next_fire_at = $6
    RETURNING id
)
UPDATE complaints SET current_rungs = COALESCE($7, current_rungs),
    last_sequence = last_sequence + $10,
    updated_at = CASE WHEN $10 > 0 THEN $4 ELSE updated_at END
WHERE id = $8 AND tenant_id = $9 AND EXISTS (SELECT 1 FROM clock)
RETURNING last_sequence";

#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    last_sequence: i32,
}

#[derive(QueryableByName)]
struct FireRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    current_rungs: Value,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    tenant_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    complaint_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    channel: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    track: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    clock: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    spec: Value,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    progress: Value,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Date>)]
    due_on: Option<NaiveDate>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    due_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    next_fire_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    claimed_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    updated_at: DateTime<Utc>,
}

impl FireRow {
    fn split(self) -> (String, Value, ClockRow) {
        let row = ClockRow {
            id: self.id,
            tenant_id: self.tenant_id,
            complaint_id: self.complaint_id,
            channel: self.channel,
            track: self.track,
            clock: self.clock,
            state: self.state,
            spec: self.spec,
            progress: self.progress,
            due_on: self.due_on,
            due_at: self.due_at,
            next_fire_at: self.next_fire_at,
            claimed_until: self.claimed_until,
            updated_at: self.updated_at,
        };
        (self.status, self.current_rungs, row)
    }
}

/// The stored rungs with one clock's new deadline object; `None` when the clock's rung is
/// not among them (nothing to show). The other deadline objects are already current (every
/// change writes them), so the scheduler's hot path does not read the case's other clocks
/// as [`refresh_rungs`] does.
fn rungs_with(stored: &Value, clock: &Clock) -> Option<Value> {
    let mut rungs = serde_json::from_value::<Vec<Rung>>(stored.clone()).ok()?;
    let rung = rungs
        .iter_mut()
        .find(|r| r.channel == clock.row.channel && r.track == clock.row.track)?;
    let view = clock.view();
    match rung
        .deadlines
        .iter_mut()
        .find(|d| d.get("clock").and_then(Value::as_str) == Some(clock.row.clock.as_str()))
    {
        Some(entry) => *entry = view,
        None => rung.deadlines.push(view),
    }
    serde_json::to_value(&rungs).ok()
}

async fn release(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<()> {
    diesel::update(sla_clocks::table.find(id))
        .set(sla_clocks::claimed_until.eq(None::<DateTime<Utc>>))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Gives clocks that were waiting for their calendar (a year not loaded yet) a due date
/// where the calendar can now answer. Runs after a year is loaded.
pub async fn schedule_waiting_clocks(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let waiting: Vec<(i64, String, String)> = sla_clocks::table
        .filter(sla_clocks::state.eq(STATE_UNSCHEDULED))
        .select((
            sla_clocks::id,
            sla_clocks::tenant_id,
            sla_clocks::complaint_id,
        ))
        .order(sla_clocks::id)
        .load(conn)
        .await?;
    let mut cache = CalendarCache::default();
    let mut scheduled = 0;
    for (id, tenant, complaint) in waiting {
        let tenant = TenantId::from_trusted(tenant);
        let complaint = ComplaintId::from_trusted(complaint);
        // Same lock order as every other writer: the complaint, then its clock.
        if complaints::find_for_update(conn, &tenant, &complaint)
            .await?
            .is_none()
        {
            continue;
        }
        let row: ClockRow = sla_clocks::table
            .find(id)
            .select(ClockRow::as_select())
            .for_update()
            .first(conn)
            .await?;
        if row.state != STATE_UNSCHEDULED {
            continue;
        }
        let mut clock = Clock::decode(row).map_err(corrupt)?;
        let computed = cache
            .compute(
                conn,
                &clock,
                clock.progress.counted,
                clock.progress.counted_from,
            )
            .await?;
        clock.schedule(computed);
        clock.save(conn, now).await?;
        if clock.row.state == STATE_RUNNING {
            scheduled += 1;
            refresh_rungs(conn, &tenant, &complaint, now).await?;
        }
    }
    Ok(scheduled)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_fraction_warning_sits_that_far_into_the_counted_time() {
        let calendar = Calendar::weekdays();
        let from = utc("2026-03-02T00:00:00Z");
        let due = Due {
            due_on: None,
            due_at: utc("2026-03-02T10:00:00Z"),
        };
        let at = warning_point(
            &calendar,
            DEFAULT_TIME_ZONE,
            Some(Warning::Fraction(0.8)),
            from,
            &due,
        );
        assert_eq!(at, Some(utc("2026-03-02T08:00:00Z")));
    }

    #[test]
    fn a_working_day_warning_comes_when_that_many_working_days_are_left() {
        let calendar = Calendar::cn_mainland();
        // Due Monday 2025-10-13 (Asia/Shanghai); two working days before: Saturday 10-11
        // (a make-up working day) and Monday itself, so the warning is at the end of Friday
        // 10-10 local time.
        let due = Due {
            due_on: Some("2025-10-13".parse().unwrap()),
            due_at: utc("2025-10-13T15:59:59Z"),
        };
        let at = warning_point(
            &calendar,
            DEFAULT_TIME_ZONE,
            Some(Warning::Before(Before {
                amount: 2,
                unit: Unit::WorkingDays,
            })),
            utc("2025-09-26T02:00:00Z"),
            &due,
        );
        assert_eq!(at, Some(utc("2025-10-10T15:59:59Z")));
    }

    #[test]
    fn a_warning_is_never_placed_before_the_start_nor_at_the_due_time() {
        let calendar = Calendar::weekdays();
        let from = utc("2026-03-02T00:00:00Z");
        let due = Due {
            due_on: None,
            due_at: utc("2026-03-02T00:00:10Z"),
        };
        let before = Warning::Before(Before {
            amount: 1,
            unit: Unit::Hours,
        });
        assert_eq!(
            warning_point(&calendar, DEFAULT_TIME_ZONE, Some(before), from, &due),
            Some(from)
        );
        let instant = Due {
            due_on: None,
            due_at: from,
        };
        assert_eq!(
            warning_point(
                &calendar,
                DEFAULT_TIME_ZONE,
                Some(Warning::Fraction(0.5)),
                from,
                &instant
            ),
            None
        );
    }

    #[test]
    fn the_scheduler_looks_at_the_warning_first_then_the_due_time() {
        let warn = utc("2026-03-02T08:00:00Z");
        let due = utc("2026-03-02T10:00:00Z");
        assert_eq!(next_fire(Some(warn), None, due), warn);
        assert_eq!(next_fire(Some(warn), Some(warn), due), due);
        assert_eq!(next_fire(None, None, due), due);
    }

    #[test]
    fn an_extension_adds_to_what_is_counted_in_the_clock_unit() {
        assert_eq!(
            add_to(Remaining::CalendarDays { days: 15 }, 15, Unit::CalendarDays),
            Remaining::CalendarDays { days: 30 }
        );
        assert_eq!(
            add_to(
                Remaining::Duration {
                    seconds: 10,
                    nanos: 5
                },
                2,
                Unit::Minutes
            ),
            Remaining::Duration {
                seconds: 130,
                nanos: 5
            }
        );
    }
}
