use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::error::CalendarError;

/// Units of an SLA target, spelled as in the public contract (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Seconds,
    Minutes,
    Hours,
    CalendarDays,
    WorkingDays,
}

impl Unit {
    /// Day units produce a due date and are due at the end of it; wall-clock units are
    /// an exact duration.
    pub fn is_date_based(self) -> bool {
        matches!(self, Unit::CalendarDays | Unit::WorkingDays)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    pub amount: u32,
    pub unit: Unit,
}

impl Target {
    pub const fn new(amount: u32, unit: Unit) -> Self {
        Self { amount, unit }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Due {
    /// Local due date, for day units only; wall-clock deadlines have no due date.
    pub due_on: Option<NaiveDate>,
    pub due_at: DateTime<Utc>,
}

/// What is left of a paused clock, in the terms it will be counted again on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "unit", rename_all = "snake_case")]
pub enum Remaining {
    WorkingDays {
        days: u32,
    },
    CalendarDays {
        days: u32,
    },
    /// Exact time left on a wall-clock target, split so it survives JSON without loss.
    Duration {
        seconds: u64,
        nanos: u32,
    },
}

impl Remaining {
    /// Builds the wall-clock variant; negative durations (a clock already past due)
    /// count as nothing left.
    pub fn from_duration(left: TimeDelta) -> Self {
        let left = left.max(TimeDelta::zero());
        Remaining::Duration {
            seconds: left.num_seconds().unsigned_abs(),
            nanos: left.subsec_nanos().unsigned_abs(),
        }
    }

    /// `None` for the day-based variants.
    pub fn duration(self) -> Option<TimeDelta> {
        match self {
            Remaining::Duration { seconds, nanos } => {
                let seconds = i64::try_from(seconds).ok()?;
                TimeDelta::new(seconds, nanos)
            }
            Remaining::WorkingDays { .. } | Remaining::CalendarDays { .. } => None,
        }
    }
}

/// When a target started at `from` falls due (contract §4).
///
/// Day units count from the local date of `from` in `tz` (the tenant's zone, by default
/// Asia/Shanghai), never from the UTC date, and are due at 23:59:59 local time of the due
/// date. `roll_forward` applies to calendar days only: whether regulators' calendar-day
/// limits move off rest days is unsettled, so it is a per-policy switch. Working-day
/// targets always end on a working day (except `amount = 0`, which is the start date).
pub fn due(
    cal: &Calendar,
    tz: Tz,
    from: DateTime<Utc>,
    target: Target,
    roll_forward: bool,
) -> Result<Due, CalendarError> {
    let amount = i64::from(target.amount);
    let wall_clock = |delta: Option<TimeDelta>| -> Result<Due, CalendarError> {
        let due_at = delta
            .and_then(|delta| from.checked_add_signed(delta))
            .ok_or(CalendarError::DateOverflow)?;
        Ok(Due {
            due_on: None,
            due_at,
        })
    };
    match target.unit {
        Unit::Seconds => wall_clock(TimeDelta::try_seconds(amount)),
        Unit::Minutes => wall_clock(TimeDelta::try_minutes(amount)),
        Unit::Hours => wall_clock(TimeDelta::try_hours(amount)),
        Unit::CalendarDays | Unit::WorkingDays => {
            let start = local_date(tz, from);
            let due_on = if target.unit == Unit::WorkingDays {
                cal.add_working_days(start, target.amount)?
            } else {
                cal.add_calendar_days(start, target.amount, roll_forward)?
            };
            Ok(Due {
                due_on: Some(due_on),
                due_at: end_of_local_day(tz, due_on)?,
            })
        }
    }
}

/// An extension (15 → 30 → 60 days) is the larger target counted again from the
/// original start, not added to the current due date: the rules set the total period.
/// A clock that was paused meanwhile should instead resume with the extra amount added
/// to what [`remaining`] returned.
pub fn extend(
    cal: &Calendar,
    tz: Tz,
    original_from: DateTime<Utc>,
    new_target: Target,
    roll_forward: bool,
) -> Result<Due, CalendarError> {
    due(cal, tz, original_from, new_target, roll_forward)
}

/// What is left of a clock paused at `paused_at` (contract §4: the unused part is counted
/// again from the resume date).
///
/// Working days: the working days strictly after the pause date up to and including the
/// due date, so the pause day itself counts as used. Calendar days: whole days from the
/// pause date to the due date; a due date that was rolled forward carries its roll-forward
/// days along. Wall-clock units: the exact time left. A clock paused after it fell due
/// has nothing left.
pub fn remaining(
    cal: &Calendar,
    tz: Tz,
    target_unit: Unit,
    due: &Due,
    paused_at: DateTime<Utc>,
) -> Result<Remaining, CalendarError> {
    let due_on = || {
        due.due_on
            .ok_or(CalendarError::MissingDueDate { unit: target_unit })
    };
    match target_unit {
        Unit::WorkingDays => Ok(Remaining::WorkingDays {
            days: cal.count_working_days(local_date(tz, paused_at), due_on()?)?,
        }),
        Unit::CalendarDays => {
            let days = (due_on()? - local_date(tz, paused_at)).num_days().max(0);
            Ok(Remaining::CalendarDays {
                days: u32::try_from(days).map_err(|_| CalendarError::DateOverflow)?,
            })
        }
        Unit::Seconds | Unit::Minutes | Unit::Hours => {
            Ok(Remaining::from_duration(due.due_at - paused_at))
        }
    }
}

/// Restarts a paused clock: day units count the remaining days from the local resume date
/// (not counted itself), wall-clock units add the remaining time to `resumed_at`.
pub fn resume(
    cal: &Calendar,
    tz: Tz,
    remaining: Remaining,
    resumed_at: DateTime<Utc>,
    roll_forward: bool,
) -> Result<Due, CalendarError> {
    let target = match remaining {
        Remaining::WorkingDays { days } => Target::new(days, Unit::WorkingDays),
        Remaining::CalendarDays { days } => Target::new(days, Unit::CalendarDays),
        Remaining::Duration { .. } => {
            let due_at = remaining
                .duration()
                .and_then(|left| resumed_at.checked_add_signed(left))
                .ok_or(CalendarError::DateOverflow)?;
            return Ok(Due {
                due_on: None,
                due_at,
            });
        }
    };
    due(cal, tz, resumed_at, target, roll_forward)
}

/// The local calendar date of an instant: the day a clock starts on.
pub fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// The last second of `date` in `tz` (23:59:59 local), as a UTC instant.
///
/// When 23:59:59 happens twice (a DST fall-back at midnight, as in America/Santiago),
/// the later one is the real end of the day, so it wins. When it does not happen at all
/// (a zone that skipped the day), the day ends one second before the next day starts.
pub fn end_of_local_day(tz: Tz, date: NaiveDate) -> Result<DateTime<Utc>, CalendarError> {
    let last_second = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN);
    let local = match tz.from_local_datetime(&date.and_time(last_second)) {
        LocalResult::Single(at) => Some(at),
        LocalResult::Ambiguous(_, latest) => Some(latest),
        LocalResult::None => date
            .succ_opt()
            .and_then(|next| start_of_local_day(tz, next))
            .map(|start| start - TimeDelta::seconds(1)),
    };
    local
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| CalendarError::NoLocalTime {
            date,
            tz: tz.name().to_owned(),
        })
}

/// The first instant of `date` in `tz`; midnight may be skipped by a DST change, so the
/// first local minute that exists is taken.
fn start_of_local_day(tz: Tz, date: NaiveDate) -> Option<DateTime<Tz>> {
    let midnight = date.and_time(NaiveTime::MIN);
    // A zone never skips more than a day (Pacific/Apia, 2011-12-30), so 25 hours suffice.
    (0..=25 * 60).find_map(|minute| {
        let local = midnight.checked_add_signed(TimeDelta::minutes(minute))?;
        match tz.from_local_datetime(&local) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at),
            LocalResult::None => None,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_doubled_last_hour_ends_the_day_at_the_later_2359_59() {
        // Chile fell back at 24:00 on Saturday 2024-04-06: 23:00–23:59:59 happened at -03
        // and again at -04.
        let at = end_of_local_day(chrono_tz::America::Santiago, date(2024, 4, 6)).unwrap();
        assert_eq!(at, utc("2024-04-07T03:59:59Z"));
    }

    #[test]
    fn a_skipped_day_ends_one_second_before_the_next_day_starts() {
        // Samoa skipped 2011-12-30 entirely, jumping from -10 to +14.
        let at = end_of_local_day(chrono_tz::Pacific::Apia, date(2011, 12, 30)).unwrap();
        assert_eq!(at, utc("2011-12-30T09:59:59Z"));
    }

    #[test]
    fn units_and_remaining_serialize_in_the_contract_spelling() {
        assert_eq!(
            serde_json::to_string(&Target::new(7, Unit::WorkingDays)).unwrap(),
            r#"{"amount":7,"unit":"working_days"}"#
        );
        let paused = Remaining::WorkingDays { days: 9 };
        let json = serde_json::to_string(&paused).unwrap();
        assert_eq!(json, r#"{"unit":"working_days","days":9}"#);
        assert_eq!(serde_json::from_str::<Remaining>(&json).unwrap(), paused);
        let left = Remaining::from_duration(TimeDelta::milliseconds(1_500));
        assert_eq!(left.duration(), Some(TimeDelta::milliseconds(1_500)));
        assert_eq!(
            serde_json::to_string(&left).unwrap(),
            r#"{"unit":"duration","seconds":1,"nanos":500000000}"#
        );
    }

    #[test]
    fn a_clock_paused_after_its_deadline_has_nothing_left() {
        let cal = Calendar::weekdays();
        let tz = chrono_tz::Asia::Shanghai;
        let wall = due(
            &cal,
            tz,
            utc("2026-03-02T00:00:00Z"),
            Target::new(2, Unit::Hours),
            false,
        )
        .unwrap();
        let left = remaining(&cal, tz, Unit::Hours, &wall, utc("2026-03-02T05:00:00Z")).unwrap();
        assert_eq!(
            left,
            Remaining::Duration {
                seconds: 0,
                nanos: 0
            }
        );
        let days = due(
            &cal,
            tz,
            utc("2026-03-02T00:00:00Z"),
            Target::new(1, Unit::WorkingDays),
            false,
        )
        .unwrap();
        let left = remaining(
            &cal,
            tz,
            Unit::WorkingDays,
            &days,
            utc("2026-03-09T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(left, Remaining::WorkingDays { days: 0 });
        assert_eq!(
            remaining(
                &cal,
                tz,
                Unit::CalendarDays,
                &wall,
                utc("2026-03-02T00:00:00Z")
            ),
            Err(CalendarError::MissingDueDate {
                unit: Unit::CalendarDays
            })
        );
    }
}
