use chrono::NaiveDate;

use crate::deadline::Unit;

/// Every way a calendar question can fail. Callers map these to API errors, so each
/// variant carries the facts needed to tell the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// The calendar does not know that year's holiday arrangement. Answering anyway
    /// would silently produce a wrong legal deadline, so we refuse instead.
    #[error(
        "{date} is outside the calendar's known dates {known_from}..={known_to}; \
         that year's holiday arrangement has not been loaded"
    )]
    OutOfRange {
        date: NaiveDate,
        known_from: NaiveDate,
        known_to: NaiveDate,
    },

    /// Listing is capped so one request cannot ask for an unbounded amount of work.
    #[error("{from}..={to} spans {days} days; at most {max} days can be listed at once")]
    RangeTooLong {
        from: NaiveDate,
        to: NaiveDate,
        days: i64,
        max: i64,
    },

    #[error("the range starts on {from}, after its end {to}")]
    ReversedRange { from: NaiveDate, to: NaiveDate },

    /// The arithmetic left the dates chrono can represent (around year ±262 000).
    #[error("the date arithmetic leaves the supported date range")]
    DateOverflow,

    #[error("{date} does not belong to year {year}")]
    EntryOutsideYear { date: NaiveDate, year: i32 },

    /// Two entries for one date would make the day's status depend on their order.
    #[error("{date} is listed more than once")]
    DuplicateEntry { date: NaiveDate },

    /// Known years must stay one unbroken run, otherwise a gap year would be treated as
    /// known and answered with weekends only.
    #[error(
        "year {year} cannot be added to known years {known_from}..={known_to}: \
         known years must stay contiguous"
    )]
    YearNotContiguous {
        year: i32,
        known_from: i32,
        known_to: i32,
    },

    #[error("invalid known years {start}..={end}")]
    InvalidYears { start: i32, end: i32 },

    /// `line` is 1-based and counts every line of the input, comments included, so it
    /// matches what an editor shows.
    #[error("calendar CSV line {line}: {message}")]
    Csv { line: usize, message: String },

    /// A day-based clock needs the due date it was counted to.
    #[error("a {unit:?} clock needs a due date (due_on) to pause")]
    MissingDueDate { unit: Unit },

    /// Only reachable for time zones that skipped whole days (Pacific/Apia, 2011).
    #[error("{date} has no local end of day in time zone {tz}")]
    NoLocalTime { date: NaiveDate, tz: String },
}
