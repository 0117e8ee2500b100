use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::csv::parse_overrides_csv;
use crate::error::CalendarError;

/// Id of the built-in mainland China calendar, as used in `/v1/calendars/{id}`.
pub const CN_MAINLAND_ID: &str = "cn-mainland";

/// Id of the built-in Monday–Friday calendar.
pub const WEEKDAYS_ID: &str = "weekdays";

/// Upper bound on [`Calendar::days`]: three years is enough for any SLA view and keeps
/// one request from asking for an unbounded list.
pub const MAX_DAYS_SPAN: i64 = 366 * 3;

/// The embedded copy of the State Council arrangements; see the file's header for where
/// each year comes from.
const CN_MAINLAND_CSV: &str = include_str!("../data/cn-mainland.csv");

/// Years whose arrangement is complete in `data/cn-mainland.csv`. Kept explicit rather
/// than derived from the data so that a half-entered year can never become "known".
const CN_MAINLAND_YEARS: RangeInclusive<i32> = 2024..=2026;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    Working,
    Rest,
}

/// Why a day is not an ordinary Monday–Friday working day. An ordinary working day has
/// no reason (`None`), so the API can show only the exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayReason {
    Weekend,
    /// An official (or tenant-declared) rest day, including weekend days that the notice
    /// puts inside a holiday run.
    Holiday,
    /// A weekend day declared a working day (调休上班).
    MakeupWorkday,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    pub date: NaiveDate,
    pub kind: DayKind,
    pub reason: Option<DayReason>,
    /// Holiday name from the arrangement (e.g. `春节`), shown next to the day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Day {
    pub fn is_working(&self) -> bool {
        self.kind == DayKind::Working
    }
}

/// One exception to the Monday–Friday rule: the unit in which holiday arrangements are
/// stored, loaded and audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayOverride {
    pub date: NaiveDate,
    pub kind: DayKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the entry comes from (for official days, the notice URL), so that every
    /// deadline can be traced back to a published rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl DayOverride {
    pub fn rest(date: NaiveDate) -> Self {
        Self {
            date,
            kind: DayKind::Rest,
            name: None,
            source: None,
        }
    }

    pub fn working(date: NaiveDate) -> Self {
        Self {
            date,
            kind: DayKind::Working,
            name: None,
            source: None,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// A working-day calendar: the Monday–Friday rule plus dated exceptions, valid only for
/// the years whose exceptions are known.
///
/// Cheap to clone: the exceptions are shared and copied only when a clone is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    id: String,
    /// First and last known date; `None` means the plain weekday rule holds in every year.
    bounds: Option<(NaiveDate, NaiveDate)>,
    overrides: Arc<BTreeMap<NaiveDate, DayOverride>>,
}

impl Calendar {
    /// Mainland China: State Council arrangements for 2024–2026, make-up working days
    /// included. Later years answer [`CalendarError::OutOfRange`] until they are added
    /// with [`Calendar::with_year`].
    pub fn cn_mainland() -> Calendar {
        static CN_MAINLAND: OnceLock<Calendar> = OnceLock::new();
        CN_MAINLAND
            .get_or_init(|| match build_cn_mainland() {
                Ok(calendar) => calendar,
                // The data is compiled in and checked by the test suite; a failure here
                // is a build defect, not a runtime condition.
                Err(err) => panic!("embedded data/cn-mainland.csv is invalid: {err}"),
            })
            .clone()
    }

    /// Monday–Friday, every year, no holidays: for channels that count plain business days.
    pub fn weekdays() -> Calendar {
        Calendar {
            id: WEEKDAYS_ID.to_owned(),
            bounds: None,
            overrides: Arc::default(),
        }
    }

    /// A tenant's own calendar. With `base_known_years` the calendar refuses dates outside
    /// those years (extend it with [`Calendar::with_year`]); with `None` every year follows
    /// the weekday rule plus `entries`.
    pub fn custom(
        id: impl Into<String>,
        base_known_years: Option<RangeInclusive<i32>>,
        entries: Vec<DayOverride>,
    ) -> Result<Calendar, CalendarError> {
        let bounds = match base_known_years {
            None => None,
            Some(years) => Some(year_bounds(*years.start(), *years.end())?),
        };
        let calendar = Calendar {
            id: id.into(),
            bounds,
            overrides: Arc::default(),
        };
        calendar.with_overrides(entries)
    }

    /// Same calendar under another id: how a tenant starts from `cn-mainland` and then
    /// adds its own closures with [`Calendar::with_overrides`].
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Adds or replaces single days inside the known years (a later entry for a date
    /// replaces the earlier one, so a tenant can override an official day).
    pub fn with_overrides(mut self, entries: Vec<DayOverride>) -> Result<Self, CalendarError> {
        let entries = unique_by_date(entries)?;
        for date in entries.keys() {
            self.check(*date)?;
        }
        Arc::make_mut(&mut self.overrides).extend(entries);
        Ok(self)
    }

    /// Loads one year's arrangement (e.g. a new State Council notice) as data. The year
    /// becomes known; any entries the calendar already had for that year are replaced, so
    /// a corrected notice can be loaded over an old one. The year must be inside the known
    /// years or adjacent to them.
    pub fn with_year(
        mut self,
        year: i32,
        entries: Vec<DayOverride>,
    ) -> Result<Self, CalendarError> {
        let (year_start, year_end) = year_bounds(year, year)?;
        let entries = unique_by_date(entries)?;
        if let Some(date) = entries.keys().find(|date| date.year() != year) {
            return Err(CalendarError::EntryOutsideYear { date: *date, year });
        }
        if let Some((from, to)) = self.bounds {
            let (known_from, known_to) = (from.year(), to.year());
            if year < known_from.saturating_sub(1) || year > known_to.saturating_add(1) {
                return Err(CalendarError::YearNotContiguous {
                    year,
                    known_from,
                    known_to,
                });
            }
            self.bounds = Some((from.min(year_start), to.max(year_end)));
        }
        let overrides = Arc::make_mut(&mut self.overrides);
        overrides.retain(|date, _| date.year() != year);
        overrides.extend(entries);
        Ok(self)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `None` for calendars without a year limit.
    pub fn known_years(&self) -> Option<RangeInclusive<i32>> {
        self.bounds.map(|(from, to)| from.year()..=to.year())
    }

    /// First and last date the calendar can answer for; `None` for calendars without a
    /// year limit.
    pub fn known_dates(&self) -> Option<(NaiveDate, NaiveDate)> {
        self.bounds
    }

    /// The exceptions in date order, for export and audit.
    pub fn overrides(&self) -> impl Iterator<Item = &DayOverride> + '_ {
        self.overrides.values()
    }

    pub fn day(&self, date: NaiveDate) -> Result<Day, CalendarError> {
        self.check(date)?;
        Ok(self.day_unchecked(date))
    }

    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        self.check(date)?;
        Ok(self.is_working_unchecked(date))
    }

    /// Every day from `from` to `to`, both included, at most [`MAX_DAYS_SPAN`] days.
    pub fn days(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Day>, CalendarError> {
        if from > to {
            return Err(CalendarError::ReversedRange { from, to });
        }
        let span = (to - from).num_days() + 1;
        if span > MAX_DAYS_SPAN {
            return Err(CalendarError::RangeTooLong {
                from,
                to,
                days: span,
                max: MAX_DAYS_SPAN,
            });
        }
        self.check(from)?;
        self.check(to)?;
        Ok(from
            .iter_days()
            .take_while(|date| *date <= to)
            .map(|date| self.day_unchecked(date))
            .collect())
    }

    /// The `n`-th working day after `start`; the start day itself is never counted
    /// (民法典 Art. 201), so `n = 0` answers `start`.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Result<NaiveDate, CalendarError> {
        self.check(start)?;
        let mut date = start;
        let mut left = u64::from(n);
        while left > 0 {
            // Whole weeks without exceptions hold exactly five working days, so skip
            // them at once: a large target on an unbounded calendar stays cheap.
            let weeks = (left - 1) / 5;
            if weeks > 0 {
                let plain_weeks = match self.next_irregular_day(date) {
                    Some(stop) => ((stop - date).num_days() - 1).max(0) as u64 / 7,
                    None => u64::MAX,
                };
                let skip = weeks.min(plain_weeks);
                if skip > 0 {
                    date = date
                        .checked_add_days(Days::new(skip * 7))
                        .ok_or(CalendarError::DateOverflow)?;
                    left -= skip * 5;
                    continue;
                }
            }
            date = date.succ_opt().ok_or(CalendarError::DateOverflow)?;
            self.check(date)?;
            if self.is_working_unchecked(date) {
                left -= 1;
            }
        }
        Ok(date)
    }

    /// `start + n` days; with `roll_forward`, a rest day moves to the next working day
    /// (民法典 Art. 203). Without it the calendar is not consulted, so the answer does
    /// not depend on known years.
    pub fn add_calendar_days(
        &self,
        start: NaiveDate,
        n: u32,
        roll_forward: bool,
    ) -> Result<NaiveDate, CalendarError> {
        let date = start
            .checked_add_days(Days::new(u64::from(n)))
            .ok_or(CalendarError::DateOverflow)?;
        if roll_forward {
            self.next_working_day(date)
        } else {
            Ok(date)
        }
    }

    /// `date` itself if it is a working day, otherwise the first working day after it.
    pub fn next_working_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        let mut date = date;
        loop {
            self.check(date)?;
            if self.is_working_unchecked(date) {
                return Ok(date);
            }
            date = date.succ_opt().ok_or(CalendarError::DateOverflow)?;
        }
    }

    /// Working days `d` with `after < d <= through` (0 when `through <= after`): what is
    /// left of a working-day clock paused on `after` and due on `through`.
    pub fn count_working_days(
        &self,
        after: NaiveDate,
        through: NaiveDate,
    ) -> Result<u32, CalendarError> {
        if through <= after {
            return Ok(0);
        }
        self.check(after.succ_opt().ok_or(CalendarError::DateOverflow)?)?;
        self.check(through)?;
        let span = (through - after).num_days();
        // Any 7 consecutive days hold 5 weekdays; count the leftover days one by one.
        let first = i64::from(after.weekday().num_days_from_monday()) + 1;
        let leftover = (0..span % 7)
            .filter(|offset| (first + offset) % 7 < 5)
            .count() as i64;
        let mut count = span / 7 * 5 + leftover;
        for entry in self
            .overrides
            .range((Excluded(after), Included(through)))
            .map(|(_, entry)| entry)
        {
            let plain = i64::from(!is_weekend(entry.date));
            let actual = i64::from(entry.kind == DayKind::Working);
            count += actual - plain;
        }
        u32::try_from(count).map_err(|_| CalendarError::DateOverflow)
    }

    fn check(&self, date: NaiveDate) -> Result<(), CalendarError> {
        match self.bounds {
            Some((known_from, known_to)) if date < known_from || date > known_to => {
                Err(CalendarError::OutOfRange {
                    date,
                    known_from,
                    known_to,
                })
            }
            _ => Ok(()),
        }
    }

    /// First day after `date` that is an exception or beyond the known dates; every day
    /// strictly between follows the plain weekday rule.
    fn next_irregular_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        let next_override = self
            .overrides
            .range((Excluded(date), Unbounded))
            .next()
            .map(|(day, _)| *day);
        let past_end = self
            .bounds
            .map(|(_, known_to)| known_to.succ_opt().unwrap_or(known_to));
        match (next_override, past_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn is_working_unchecked(&self, date: NaiveDate) -> bool {
        match self.overrides.get(&date) {
            Some(entry) => entry.kind == DayKind::Working,
            None => !is_weekend(date),
        }
    }

    fn day_unchecked(&self, date: NaiveDate) -> Day {
        let weekend = is_weekend(date);
        let (kind, reason, name) = match self.overrides.get(&date) {
            Some(entry) => match entry.kind {
                DayKind::Rest => (DayKind::Rest, Some(DayReason::Holiday), entry.name.clone()),
                DayKind::Working => (
                    DayKind::Working,
                    weekend.then_some(DayReason::MakeupWorkday),
                    entry.name.clone(),
                ),
            },
            None if weekend => (DayKind::Rest, Some(DayReason::Weekend), None),
            None => (DayKind::Working, None, None),
        };
        Day {
            date,
            kind,
            reason,
            name,
        }
    }
}

fn build_cn_mainland() -> Result<Calendar, CalendarError> {
    let entries = parse_overrides_csv(CN_MAINLAND_CSV)?;
    Calendar::custom(CN_MAINLAND_ID, Some(CN_MAINLAND_YEARS), entries)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn year_bounds(start: i32, end: i32) -> Result<(NaiveDate, NaiveDate), CalendarError> {
    let invalid = CalendarError::InvalidYears { start, end };
    if start > end {
        return Err(invalid);
    }
    let from = NaiveDate::from_ymd_opt(start, 1, 1).ok_or_else(|| invalid.clone())?;
    let to = NaiveDate::from_ymd_opt(end, 12, 31).ok_or(invalid)?;
    Ok((from, to))
}

fn unique_by_date(
    entries: Vec<DayOverride>,
) -> Result<BTreeMap<NaiveDate, DayOverride>, CalendarError> {
    let mut map = BTreeMap::new();
    for entry in entries {
        let date = entry.date;
        if map.insert(date, entry).is_some() {
            return Err(CalendarError::DuplicateEntry { date });
        }
    }
    Ok(map)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_embedded_cn_mainland_data_parses_and_covers_every_known_year() {
        let calendar = build_cn_mainland().unwrap();
        assert_eq!(calendar.known_years(), Some(2024..=2026));
        for year in 2024..=2026 {
            assert!(calendar.overrides().any(|entry| entry.date.year() == year));
        }
        assert!(calendar.overrides().all(|entry| entry.source.is_some()));
    }

    #[test]
    fn skipping_whole_weeks_lands_where_stepping_day_by_day_does() {
        let calendar = Calendar::weekdays();
        let start = date(2024, 1, 3);
        for n in 0..200 {
            let mut expected = start;
            let mut left = n;
            while left > 0 {
                expected = expected.succ_opt().unwrap();
                if !is_weekend(expected) {
                    left -= 1;
                }
            }
            assert_eq!(
                calendar.add_working_days(start, n).unwrap(),
                expected,
                "n = {n}"
            );
        }
    }

    #[test]
    fn a_huge_target_on_an_unbounded_calendar_answers_without_walking_every_day() {
        let calendar = Calendar::weekdays();
        // 5 working days per week: 5_000_000 of them is exactly 1_000_000 weeks.
        let start = date(2024, 1, 5);
        let due = calendar.add_working_days(start, 5_000_000).unwrap();
        assert_eq!(due, start + Days::new(7_000_000));
        assert_eq!(
            calendar.add_working_days(start, u32::MAX),
            Err(CalendarError::DateOverflow)
        );
    }

    #[test]
    fn counting_working_days_agrees_with_adding_them() {
        let calendar = Calendar::cn_mainland();
        let start = date(2024, 1, 1);
        for n in [0_u32, 1, 7, 45, 200, 700] {
            let due = calendar.add_working_days(start, n).unwrap();
            assert_eq!(calendar.count_working_days(start, due).unwrap(), n);
        }
    }

    #[test]
    fn changing_a_clone_leaves_the_shared_calendar_untouched() {
        let official = Calendar::cn_mainland();
        let tenant = official
            .clone()
            .with_id("tenant-a")
            .with_overrides(vec![DayOverride::rest(date(2026, 12, 31))])
            .unwrap();
        assert!(!tenant.is_working_day(date(2026, 12, 31)).unwrap());
        assert!(official.is_working_day(date(2026, 12, 31)).unwrap());
        assert!(Calendar::cn_mainland()
            .is_working_day(date(2026, 12, 31))
            .unwrap());
    }
}
