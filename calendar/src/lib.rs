//! Working-day calendars and SLA deadline arithmetic for Redress (contract §4).
//!
//! Pure: no I/O at run time. The mainland China arrangement is compiled in from
//! `data/cn-mainland.csv`; new years and tenant calendars arrive as data
//! ([`Calendar::with_year`], [`Calendar::custom`], [`parse_overrides_csv`]).
//!
//! Counting rules (DOMAIN.md, "Counting days"): the start day is not counted (民法典
//! Art. 201); a working day is Monday–Friday unless an official rest day, plus official
//! make-up working days (调休); a calendar-day period ending on a rest day may roll
//! forward to the next working day (民法典 Art. 203), a per-policy switch. A date outside
//! a calendar's known years is an error, never a guess.

mod calendar;
mod csv;
mod deadline;
mod error;

pub use calendar::{
    Calendar, Day, DayKind, DayOverride, DayReason, CN_MAINLAND_ID, MAX_DAYS_SPAN, WEEKDAYS_ID,
};
pub use csv::parse_overrides_csv;
pub use deadline::{
    due, end_of_local_day, extend, local_date, remaining, resume, Due, Remaining, Target, Unit,
};
pub use error::CalendarError;
