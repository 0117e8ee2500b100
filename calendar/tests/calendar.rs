#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use chrono_tz::Asia::Shanghai;
use redress_calendar::{
    due, extend, parse_overrides_csv, remaining, resume, Calendar, CalendarError, Day, DayKind,
    DayOverride, DayReason, Due, Remaining, Target, Unit,
};

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn cn() -> Calendar {
    Calendar::cn_mainland()
}

fn add_wd(start: &str, n: u32) -> NaiveDate {
    cn().add_working_days(date(start), n).unwrap()
}

// ---------------------------------------------------------------------------------------
// 1. The worked examples of DOMAIN.md, "Counting days".

#[test]
fn september_26_2025_plus_7_working_days_is_october_13_across_two_makeup_days() {
    // 09-28 (Sun) and 10-11 (Sat) are make-up working days; 10-01..08 are off.
    assert_eq!(add_wd("2025-09-26", 7), date("2025-10-13"));
}

#[test]
fn february_12_2026_plus_7_working_days_is_the_makeup_saturday_february_28() {
    assert_eq!(add_wd("2026-02-12", 7), date("2026-02-28"));
    assert_eq!(date("2026-02-28").weekday(), Weekday::Sat);
}

#[test]
fn september_27_2024_plus_7_working_days_is_the_makeup_saturday_october_12() {
    assert_eq!(add_wd("2024-09-27", 7), date("2024-10-12"));
}

#[test]
fn april_30_2026_plus_5_working_days_is_may_11() {
    assert_eq!(add_wd("2026-04-30", 5), date("2026-05-11"));
}

#[test]
fn january_24_2025_plus_45_working_days_is_april_3() {
    assert_eq!(add_wd("2025-01-24", 45), date("2025-04-03"));
}

#[test]
fn february_5_2026_plus_15_calendar_days_is_february_24_with_roll_forward_and_20_without() {
    assert_eq!(
        cn().add_calendar_days(date("2026-02-05"), 15, true)
            .unwrap(),
        date("2026-02-24")
    );
    assert_eq!(
        cn().add_calendar_days(date("2026-02-05"), 15, false)
            .unwrap(),
        date("2026-02-20")
    );
}

#[test]
fn zero_working_days_is_the_start_day_itself() {
    assert_eq!(add_wd("2026-02-15", 0), date("2026-02-15"));
}

// ---------------------------------------------------------------------------------------
// 2. Every day of 2024–2026 against the committed reference copy.

struct ReferenceRow {
    weekday: String,
    kind: String,
    name: String,
    url: String,
}

/// Parsed here by hand, independently of the crate's own CSV parser.
fn reference_rows() -> BTreeMap<NaiveDate, ReferenceRow> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/cn-mainland-2024-2026.csv"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap().trim_end(),
        "date,weekday,type,holiday_name,notice_year,gov_cn_notice_url"
    );
    let mut rows = BTreeMap::new();
    for line in lines.map(str::trim_end).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 6, "{line}");
        let row = ReferenceRow {
            weekday: f[1].to_owned(),
            kind: f[2].to_owned(),
            name: f[3].to_owned(),
            url: f[5].to_owned(),
        };
        assert!(rows.insert(date(f[0]), row).is_none(), "duplicate {line}");
    }
    rows
}

#[test]
fn every_day_of_2024_to_2026_matches_the_reference_file() {
    let rows = reference_rows();
    assert_eq!(rows.len(), 108);
    let calendar = cn();
    let days = calendar
        .days(date("2024-01-01"), date("2026-12-31"))
        .unwrap();
    assert_eq!(days.len(), 366 + 365 + 365);
    for day in &days {
        let weekend = matches!(day.date.weekday(), Weekday::Sat | Weekday::Sun);
        let (kind, reason) = match rows.get(&day.date).map(|r| r.kind.as_str()) {
            Some("off") => (DayKind::Rest, Some(DayReason::Holiday)),
            Some("makeup_workday") => (DayKind::Working, Some(DayReason::MakeupWorkday)),
            Some(other) => panic!("unknown type {other}"),
            None if weekend => (DayKind::Rest, Some(DayReason::Weekend)),
            None => (DayKind::Working, None),
        };
        assert_eq!((day.kind, day.reason), (kind, reason), "{}", day.date);
        assert_eq!(calendar.day(day.date).unwrap(), *day);
    }
}

#[test]
fn the_reference_file_is_self_consistent() {
    for (date, row) in reference_rows() {
        assert_eq!(row.weekday, date.weekday().to_string(), "{date}");
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        // A make-up working day only makes sense on a weekend.
        if row.kind == "makeup_workday" {
            assert!(weekend, "{date}");
        }
    }
}

#[test]
fn working_days_per_year_are_251_248_248() {
    let calendar = cn();
    for (year, expected) in [(2024, 251), (2025, 248), (2026, 248)] {
        let first = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(year, 12, 31).unwrap();
        let working = calendar
            .days(first, last)
            .unwrap()
            .iter()
            .filter(|d| d.is_working())
            .count();
        assert_eq!(working, expected, "{year}");
        // The arithmetic shortcut must agree with the day-by-day listing.
        let before = first.pred_opt().unwrap();
        assert_eq!(
            calendar.count_working_days(before, last).unwrap() as usize,
            expected,
            "{year}"
        );
    }
}

#[test]
fn the_embedded_data_carries_the_reference_names_and_notice_urls() {
    let rows = reference_rows();
    let calendar = cn();
    let entries: Vec<&DayOverride> = calendar.overrides().collect();
    assert_eq!(entries.len(), rows.len());
    for entry in entries {
        let row = &rows[&entry.date];
        assert_eq!(entry.name.as_deref(), Some(row.name.as_str()));
        assert_eq!(entry.source.as_deref(), Some(row.url.as_str()));
    }
}

#[test]
fn the_crate_parser_reads_the_reference_file_as_is() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/cn-mainland-2024-2026.csv"
    ))
    .unwrap();
    let parsed = parse_overrides_csv(&text).unwrap();
    let embedded: Vec<DayOverride> = cn().overrides().cloned().collect();
    assert_eq!(parsed, embedded);
}

#[test]
fn days_are_listed_with_snake_case_kinds_and_reasons() {
    let json =
        serde_json::to_value(cn().days(date("2026-02-13"), date("2026-02-16")).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"date": "2026-02-13", "kind": "working", "reason": null},
            {"date": "2026-02-14", "kind": "working", "reason": "makeup_workday", "name": "春节"},
            {"date": "2026-02-15", "kind": "rest", "reason": "holiday", "name": "春节"},
            {"date": "2026-02-16", "kind": "rest", "reason": "holiday", "name": "春节"},
        ])
    );
    let back: Vec<Day> = serde_json::from_value(json).unwrap();
    assert_eq!(back.len(), 4);
}

// ---------------------------------------------------------------------------------------
// 4. Outside the known years: an error, never a guess.

#[test]
fn a_2027_date_is_out_of_range() {
    assert_eq!(
        cn().day(date("2027-01-04")),
        Err(CalendarError::OutOfRange {
            date: date("2027-01-04"),
            known_from: date("2024-01-01"),
            known_to: date("2026-12-31"),
        })
    );
    assert!(matches!(
        cn().day(date("2023-12-29")),
        Err(CalendarError::OutOfRange { .. })
    ));
}

#[test]
fn adding_working_days_past_2026_is_out_of_range_at_the_first_unknown_day() {
    // 2026-12-21 (Mon) + 10 working days would be 2027-01-04 or later.
    assert_eq!(
        cn().add_working_days(date("2026-12-21"), 10),
        Err(CalendarError::OutOfRange {
            date: date("2027-01-01"),
            known_from: date("2024-01-01"),
            known_to: date("2026-12-31"),
        })
    );
    assert_eq!(add_wd("2026-12-21", 8), date("2026-12-31"));
}

#[test]
fn a_due_date_past_2026_is_out_of_range_for_both_day_units() {
    let from = utc("2026-12-20T02:00:00Z");
    for unit in [Unit::WorkingDays, Unit::CalendarDays] {
        let result = due(&cn(), Shanghai, from, Target::new(15, unit), true);
        assert!(
            matches!(result, Err(CalendarError::OutOfRange { .. })),
            "{unit:?}"
        );
    }
    // Wall-clock units do not consult the calendar.
    assert!(due(&cn(), Shanghai, from, Target::new(900, Unit::Hours), true).is_ok());
}

#[test]
fn listing_days_is_capped_and_must_run_forward() {
    assert!(matches!(
        Calendar::weekdays().days(date("2024-01-01"), date("2027-01-05")),
        Err(CalendarError::RangeTooLong { max: 1098, .. })
    ));
    assert!(matches!(
        cn().days(date("2025-01-02"), date("2025-01-01")),
        Err(CalendarError::ReversedRange { .. })
    ));
    assert!(matches!(
        cn().days(date("2026-12-01"), date("2027-01-05")),
        Err(CalendarError::OutOfRange { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// 5. Pause, resume, extension.

fn at_shanghai_10am(day: &str) -> DateTime<Utc> {
    utc(&format!("{day}T02:00:00Z"))
}

#[test]
fn a_paused_working_day_clock_counts_its_unused_days_again_from_the_resume_date() {
    let cal = cn();
    let target = Target::new(15, Unit::WorkingDays);
    let first = due(
        &cal,
        Shanghai,
        at_shanghai_10am("2026-03-02"),
        target,
        false,
    )
    .unwrap();
    // 2026-03-02 (Mon) not counted; 03-03..06 = 4, 09..13 = 9, 16..20 = 14, 23 = 15.
    assert_eq!(first.due_on, Some(date("2026-03-23")));

    let left = remaining(
        &cal,
        Shanghai,
        Unit::WorkingDays,
        &first,
        at_shanghai_10am("2026-03-10"),
    )
    .unwrap();
    // Strictly after 03-10 up to 03-23: 11, 12, 13, 16, 17, 18, 19, 20, 23 = 9.
    assert_eq!(left, Remaining::WorkingDays { days: 9 });

    let resumed = resume(&cal, Shanghai, left, at_shanghai_10am("2026-03-20"), false).unwrap();
    // From 2026-03-20 (Fri, not counted): 23, 24, 25, 26, 27, 30, 31, 04-01, 04-02 = 9.
    assert_eq!(resumed.due_on, Some(date("2026-04-02")));
    assert_eq!(resumed.due_at, utc("2026-04-02T15:59:59Z"));

    // Resuming a week later runs across 清明 (04-04..06 off):
    // 03-30, 31, 04-01, 02, 03 = 5, then 04-07, 08, 09, 10 = 9.
    let later = resume(&cal, Shanghai, left, at_shanghai_10am("2026-03-27"), false).unwrap();
    assert_eq!(later.due_on, Some(date("2026-04-10")));
}

#[test]
fn a_paused_calendar_day_clock_keeps_its_whole_days() {
    let cal = cn();
    let first = due(
        &cal,
        Shanghai,
        at_shanghai_10am("2026-03-02"),
        Target::new(15, Unit::CalendarDays),
        true,
    )
    .unwrap();
    assert_eq!(first.due_on, Some(date("2026-03-17")));
    let left = remaining(
        &cal,
        Shanghai,
        Unit::CalendarDays,
        &first,
        at_shanghai_10am("2026-03-10"),
    )
    .unwrap();
    assert_eq!(left, Remaining::CalendarDays { days: 7 });
    // 2026-04-01 + 7 = 04-08 (Wed), a working day.
    let resumed = resume(&cal, Shanghai, left, at_shanghai_10am("2026-04-01"), true).unwrap();
    assert_eq!(resumed.due_on, Some(date("2026-04-08")));
    // 2026-03-28 + 7 = 04-04, a 清明 rest day: rolls to 04-07.
    let resumed = resume(&cal, Shanghai, left, at_shanghai_10am("2026-03-28"), true).unwrap();
    assert_eq!(resumed.due_on, Some(date("2026-04-07")));
}

#[test]
fn a_paused_wall_clock_resumes_with_exactly_the_time_that_was_left() {
    let cal = cn();
    let first = due(
        &cal,
        Shanghai,
        utc("2026-03-02T02:00:00Z"),
        Target::new(48, Unit::Hours),
        true,
    )
    .unwrap();
    assert_eq!(
        first,
        Due {
            due_on: None,
            due_at: utc("2026-03-04T02:00:00Z")
        }
    );
    let left = remaining(
        &cal,
        Shanghai,
        Unit::Hours,
        &first,
        utc("2026-03-03T08:30:15.250Z"),
    )
    .unwrap();
    // 17 h 29 min 44.75 s = 62_984.75 s.
    assert_eq!(
        left,
        Remaining::Duration {
            seconds: 62_984,
            nanos: 750_000_000
        }
    );
    let resumed = resume(&cal, Shanghai, left, utc("2026-03-10T01:00:00Z"), true).unwrap();
    assert_eq!(resumed.due_at, utc("2026-03-10T18:29:44.750Z"));
    assert_eq!(resumed.due_on, None);
}

#[test]
fn an_extension_from_15_to_30_to_60_calendar_days_counts_from_the_original_start() {
    let cal = cn();
    // 2026-09-10 (Thu), 10:00 in Shanghai.
    let start = at_shanghai_10am("2026-09-10");
    let on = |amount, roll| {
        extend(
            &cal,
            Shanghai,
            start,
            Target::new(amount, Unit::CalendarDays),
            roll,
        )
        .unwrap()
        .due_on
        .unwrap()
    };
    // +15 = 09-25, 中秋 (off through Sun 09-27): rolls to Mon 09-28.
    assert_eq!(on(15, true), date("2026-09-28"));
    assert_eq!(on(15, false), date("2026-09-25"));
    // +30 = 10-10, a Saturday but a make-up working day: stays.
    assert_eq!(on(30, true), date("2026-10-10"));
    // +60 = 11-09 (Mon).
    assert_eq!(on(60, true), date("2026-11-09"));
    assert_eq!(
        extend(
            &cal,
            Shanghai,
            start,
            Target::new(60, Unit::CalendarDays),
            true
        ),
        due(
            &cal,
            Shanghai,
            start,
            Target::new(60, Unit::CalendarDays),
            true
        )
    );
}

// ---------------------------------------------------------------------------------------
// 6. due(): local dates and 23:59:59 Asia/Shanghai.

#[test]
fn a_date_deadline_is_due_at_23_59_59_shanghai_time_which_is_15_59_59_utc() {
    let result = due(
        &cn(),
        Shanghai,
        at_shanghai_10am("2025-09-26"),
        Target::new(7, Unit::WorkingDays),
        false,
    )
    .unwrap();
    assert_eq!(result.due_on, Some(date("2025-10-13")));
    assert_eq!(result.due_at, utc("2025-10-13T15:59:59Z"));
}

#[test]
fn an_evening_utc_instant_that_is_already_the_next_day_in_shanghai_counts_from_the_shanghai_date() {
    // 2025-09-25T17:30Z is 2025-09-26 01:30 in Shanghai.
    let from = utc("2025-09-25T17:30:00Z");
    let target = Target::new(7, Unit::WorkingDays);
    let local = due(&cn(), Shanghai, from, target, false).unwrap();
    assert_eq!(local.due_on, Some(date("2025-10-13")));
    assert_eq!(local.due_at, utc("2025-10-13T15:59:59Z"));
    // Counted from the UTC date (09-25) it would be 10-11, the second make-up day.
    let in_utc = due(&cn(), chrono_tz::UTC, from, target, false).unwrap();
    assert_eq!(in_utc.due_on, Some(date("2025-10-11")));
}

#[test]
fn wall_clock_targets_add_the_exact_duration() {
    let from = utc("2026-02-14T23:10:05Z");
    for (target, expected) in [
        (Target::new(90, Unit::Seconds), "2026-02-14T23:11:35Z"),
        (Target::new(90, Unit::Minutes), "2026-02-15T00:40:05Z"),
        (Target::new(72, Unit::Hours), "2026-02-17T23:10:05Z"),
    ] {
        let result = due(&cn(), Shanghai, from, target, true).unwrap();
        assert_eq!(result.due_at, utc(expected), "{target:?}");
        assert_eq!(result.due_on, None);
    }
}

#[test]
fn due_serializes_as_due_on_and_due_at() {
    let result = due(
        &cn(),
        Shanghai,
        at_shanghai_10am("2026-04-30"),
        Target::new(5, Unit::WorkingDays),
        false,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(result).unwrap(),
        serde_json::json!({"due_on": "2026-05-11", "due_at": "2026-05-11T15:59:59Z"})
    );
    let target: Target =
        serde_json::from_str(r#"{"amount": 15, "unit": "calendar_days"}"#).unwrap();
    assert_eq!(target, Target::new(15, Unit::CalendarDays));
}

// ---------------------------------------------------------------------------------------
// 7. New years as data, tenant calendars.

/// A made-up 2027 arrangement: the real one comes from the State Council notice.
const FAKE_2027: &str = "\
# test data, not the official 2027 arrangement
date,weekday,type,holiday_name,notice_year,gov_cn_notice_url
2027-01-01,Fri,off,元旦,2027,https://example.org/2027
2027-01-02,Sat,off,元旦,2027,https://example.org/2027
2027-01-03,Sun,off,元旦,2027,https://example.org/2027
2027-01-09,Sat,makeup_workday,元旦,2027,https://example.org/2027
";

#[test]
fn with_year_loads_2027_from_csv_so_2027_dates_answer() {
    let before = cn();
    assert!(before.day(date("2027-01-04")).is_err());
    let after = before
        .clone()
        .with_year(2027, parse_overrides_csv(FAKE_2027).unwrap())
        .unwrap();
    assert_eq!(after.known_years(), Some(2024..=2027));
    assert_eq!(after.id(), "cn-mainland");
    assert_eq!(
        after.day(date("2027-01-01")).unwrap().reason,
        Some(DayReason::Holiday)
    );
    assert_eq!(
        after.day(date("2027-01-09")).unwrap().kind,
        DayKind::Working
    );
    assert_eq!(after.day(date("2027-01-04")).unwrap().reason, None);
    // 2026-12-28 (Mon) + 5: 29, 30, 31, then 2027-01-04, 05.
    assert_eq!(
        after.add_working_days(date("2026-12-28"), 5).unwrap(),
        date("2027-01-05")
    );
    assert!(after.day(date("2028-01-03")).is_err());
    // The original calendar is unchanged.
    assert!(before.day(date("2027-01-04")).is_err());
}

#[test]
fn with_year_rejects_entries_of_another_year_duplicates_and_gaps() {
    let entries = parse_overrides_csv(FAKE_2027).unwrap();
    assert_eq!(
        cn().with_year(2028, entries.clone()),
        Err(CalendarError::EntryOutsideYear {
            date: date("2027-01-01"),
            year: 2028
        })
    );
    let mut doubled = entries.clone();
    doubled.push(DayOverride::working(date("2027-01-01")));
    assert_eq!(
        cn().with_year(2027, doubled),
        Err(CalendarError::DuplicateEntry {
            date: date("2027-01-01")
        })
    );
    assert_eq!(
        cn().with_year(2029, vec![]),
        Err(CalendarError::YearNotContiguous {
            year: 2029,
            known_from: 2024,
            known_to: 2026
        })
    );
    assert_eq!(
        cn().with_year(2023, vec![]).unwrap().known_years(),
        Some(2023..=2026)
    );
}

#[test]
fn with_year_replaces_the_arrangement_of_a_year_already_known() {
    let corrected = cn()
        .with_year(2026, vec![DayOverride::rest(date("2026-03-02"))])
        .unwrap();
    assert!(!corrected.is_working_day(date("2026-03-02")).unwrap());
    // The old 2026 entries are gone: 春节 2026-02-16 is a plain Monday now.
    assert!(corrected.is_working_day(date("2026-02-16")).unwrap());
    // Other years are untouched.
    assert!(!corrected.is_working_day(date("2025-10-08")).unwrap());
}

#[test]
fn a_custom_tenant_calendar_applies_its_own_rest_and_working_days() {
    let tenant = Calendar::custom(
        "tenant-acme",
        Some(2026..=2026),
        vec![
            DayOverride::rest(date("2026-03-06")).named("office move"),
            DayOverride::working(date("2026-03-07")),
        ],
    )
    .unwrap();
    assert_eq!(tenant.id(), "tenant-acme");
    let friday = tenant.day(date("2026-03-06")).unwrap();
    assert_eq!(friday.kind, DayKind::Rest);
    assert_eq!(friday.reason, Some(DayReason::Holiday));
    assert_eq!(friday.name.as_deref(), Some("office move"));
    assert_eq!(
        tenant.day(date("2026-03-07")).unwrap().reason,
        Some(DayReason::MakeupWorkday)
    );
    // 03-05 (Thu) + 2: 03-06 is off, 03-07 (Sat) works, so 03-09.
    assert_eq!(
        tenant.add_working_days(date("2026-03-05"), 2).unwrap(),
        date("2026-03-09")
    );
    // No official holidays: 2026-10-01 is a plain Thursday here.
    assert!(tenant.is_working_day(date("2026-10-01")).unwrap());
    assert!(tenant.day(date("2025-12-31")).is_err());
    assert!(Calendar::custom(
        "x",
        Some(2026..=2026),
        vec![DayOverride::rest(date("2027-01-01"))]
    )
    .is_err());
    let (first, last) = (2027, 2026);
    assert_eq!(
        Calendar::custom("x", Some(first..=last), vec![]),
        Err(CalendarError::InvalidYears {
            start: 2027,
            end: 2026
        })
    );
}

#[test]
fn a_tenant_calendar_can_start_from_cn_mainland_and_change_single_days() {
    let tenant = cn()
        .with_id("tenant-shanghai-ca")
        .with_overrides(vec![
            DayOverride::working(date("2026-10-08")),
            DayOverride::rest(date("2026-12-31")).named("year-end closure"),
            // Opening on an official holiday replaces the official entry.
            DayOverride::working(date("2026-05-05")),
        ])
        .unwrap();
    assert_eq!(tenant.id(), "tenant-shanghai-ca");
    assert!(!tenant.is_working_day(date("2026-12-31")).unwrap());
    assert!(tenant.is_working_day(date("2026-05-05")).unwrap());
    assert!(!tenant.is_working_day(date("2026-05-04")).unwrap());
    assert!(tenant.day(date("2027-01-04")).is_err());
    assert!(cn().is_working_day(date("2026-12-31")).unwrap());
}

#[test]
fn an_unbounded_custom_calendar_answers_any_year() {
    let tenant = Calendar::custom(
        "tenant-weekdays",
        None,
        vec![DayOverride::rest(date("2030-12-25"))],
    )
    .unwrap();
    assert_eq!(tenant.known_years(), None);
    assert!(!tenant.is_working_day(date("2030-12-25")).unwrap());
    assert!(tenant.is_working_day(date("2031-12-25")).unwrap());
    assert_eq!(
        Calendar::weekdays()
            .add_working_days(date("2040-02-10"), 5)
            .unwrap(),
        date("2040-02-17")
    );
}

#[test]
fn day_overrides_serialize_for_storage_and_admin_apis() {
    let entry = DayOverride::rest(date("2027-01-01"))
        .named("元旦")
        .with_source("https://example.org/2027");
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"date": "2027-01-01", "kind": "rest", "name": "元旦", "source": "https://example.org/2027"})
    );
    let plain: DayOverride =
        serde_json::from_str(r#"{"date": "2027-01-09", "kind": "working"}"#).unwrap();
    assert_eq!(plain, DayOverride::working(date("2027-01-09")));
}
