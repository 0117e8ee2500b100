#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use proptest::prelude::*;
use redress_calendar::{due, Calendar, DayKind, DayOverride, Target, Unit};

/// Start instants from 2024-01-01 to 2026-10-31 (UTC), so that 40 working days or 60
/// calendar days later is still inside the known years.
fn start_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let first = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let last = Utc
        .with_ymd_and_hms(2026, 10, 31, 0, 0, 0)
        .unwrap()
        .timestamp();
    (first..last).prop_map(|secs| DateTime::from_timestamp(secs, 0).unwrap())
}

fn is_working(cal: &Calendar, date: NaiveDate) -> bool {
    cal.day(date).unwrap().kind == DayKind::Working
}

/// Counted day by day through `Calendar::day`, not through the crate's counting shortcut.
fn working_days_between(cal: &Calendar, after: NaiveDate, through: NaiveDate) -> u32 {
    after
        .iter_days()
        .skip(1)
        .take_while(|d| *d <= through)
        .filter(|d| is_working(cal, *d))
        .count() as u32
}

fn due_on(from: DateTime<Utc>, amount: u32, unit: Unit, roll: bool) -> NaiveDate {
    due(
        &Calendar::cn_mainland(),
        Shanghai,
        from,
        Target::new(amount, unit),
        roll,
    )
    .unwrap()
    .due_on
    .unwrap()
}

proptest! {
    #[test]
    fn a_working_day_due_date_is_a_working_day_that_many_working_days_after_the_start(
        from in start_instant(),
        amount in 0u32..=40,
    ) {
        let cal = Calendar::cn_mainland();
        let result = due(&cal, Shanghai, from, Target::new(amount, Unit::WorkingDays), false)
            .unwrap();
        let start = from.with_timezone(&Shanghai).date_naive();
        let on = result.due_on.unwrap();
        if amount == 0 {
            prop_assert_eq!(on, start);
        } else {
            prop_assert!(is_working(&cal, on), "{} is not a working day", on);
        }
        prop_assert_eq!(working_days_between(&cal, start, on), amount);
        prop_assert_eq!(
            result.due_at,
            Shanghai
                .from_local_datetime(&on.and_hms_opt(23, 59, 59).unwrap())
                .unwrap()
                .with_timezone(&Utc)
        );
    }

    #[test]
    fn due_dates_never_decrease_as_the_amount_grows(
        from in start_instant(),
        amount in 0u32..=30,
        more in 0u32..=10,
        roll in any::<bool>(),
    ) {
        for unit in [Unit::WorkingDays, Unit::CalendarDays] {
            let smaller = due_on(from, amount, unit, roll);
            let larger = due_on(from, amount + more, unit, roll);
            prop_assert!(smaller <= larger, "{:?}: {} > {}", unit, smaller, larger);
            if unit == Unit::WorkingDays && more > 0 {
                prop_assert!(smaller < larger);
            }
        }
    }

    #[test]
    fn a_calendar_day_due_date_moves_only_off_a_rest_day_and_then_to_the_first_working_day(
        from in start_instant(),
        amount in 0u32..=60,
        roll in any::<bool>(),
    ) {
        let cal = Calendar::cn_mainland();
        let plain = from.with_timezone(&Shanghai).date_naive() + Days::new(u64::from(amount));
        let on = due_on(from, amount, Unit::CalendarDays, roll);
        if !roll || is_working(&cal, plain) {
            prop_assert_eq!(on, plain);
        } else {
            prop_assert!(on > plain);
            prop_assert!(is_working(&cal, on));
            for skipped in plain.iter_days().take_while(|d| *d < on) {
                prop_assert!(!is_working(&cal, skipped), "skipped working day {}", skipped);
            }
        }
    }

    #[test]
    fn adding_and_counting_working_days_agree_with_walking_day_by_day_on_any_calendar(
        start_offset in 0u64..400,
        amount in 0u32..=600,
        rest in proptest::collection::btree_set(0u64..800, 0..60),
        working in proptest::collection::btree_set(0u64..800, 0..60),
    ) {
        let base = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        let entries: Vec<DayOverride> = rest
            .iter()
            .map(|d| DayOverride::rest(base + Days::new(*d)))
            .chain(
                working
                    .difference(&rest)
                    .map(|d| DayOverride::working(base + Days::new(*d))),
            )
            .collect();
        let cal = Calendar::custom("random", None, entries).unwrap();
        let start = base + Days::new(start_offset);

        let mut expected = start;
        let mut left = amount;
        while left > 0 {
            expected = expected.succ_opt().unwrap();
            if is_working(&cal, expected) {
                left -= 1;
            }
        }
        let got = cal.add_working_days(start, amount).unwrap();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(cal.count_working_days(start, got).unwrap(), amount);
        prop_assert_eq!(
            cal.count_working_days(start, got).unwrap(),
            working_days_between(&cal, start, got)
        );
    }
}
