use chrono::{Datelike, NaiveDate};

use crate::calendar::{DayKind, DayOverride};
use crate::error::CalendarError;

/// Parses holiday arrangements in the project's CSV format, so an administrator can load
/// a new year from a file (then pass the rows to [`crate::Calendar::with_year`]).
///
/// The format is the one of `data/cn-mainland.csv`: a header row
/// `date,weekday,type,holiday_name,notice_year,gov_cn_notice_url` (columns found by
/// name, so their order is free; only `date` and `type` are required; `name` and
/// `source` are accepted as plainer names for the last two), `type` being `off` /
/// `makeup_workday` (or `rest` / `working`). Lines starting with `#` and blank lines are
/// skipped; a UTF-8 byte-order mark, CRLF line ends and double-quoted fields (as
/// spreadsheets export them) are accepted. The parser is strict otherwise: a weekday
/// that does not match its date, or a row with a missing column, is an error, because a
/// typo here silently moves legal deadlines.
pub fn parse_overrides_csv(text: &str) -> Result<Vec<DayOverride>, CalendarError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut header: Option<Columns> = None;
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let error = |message: String| CalendarError::Csv { line, message };
        let fields = split_fields(content).map_err(error)?;
        match &header {
            None => header = Some(Columns::from_header(&fields).map_err(error)?),
            Some(columns) => entries.push(columns.parse_row(&fields).map_err(error)?),
        }
    }
    if header.is_none() {
        return Err(CalendarError::Csv {
            line: 0,
            message: "no header row (expected date,weekday,type,holiday_name,…)".to_owned(),
        });
    }
    Ok(entries)
}

struct Columns {
    count: usize,
    date: usize,
    kind: usize,
    weekday: Option<usize>,
    name: Option<usize>,
    source: Option<usize>,
    notice_year: Option<usize>,
}

impl Columns {
    fn from_header(fields: &[String]) -> Result<Self, String> {
        let names: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(format!("column {name:?} appears twice in the header"));
            }
        }
        let find = |aliases: &[&str]| names.iter().position(|n| aliases.contains(&n.as_str()));
        let required = |aliases: &[&str]| {
            find(aliases).ok_or_else(|| format!("header lacks a {:?} column", aliases[0]))
        };
        Ok(Self {
            count: names.len(),
            date: required(&["date"])?,
            kind: required(&["type", "kind"])?,
            weekday: find(&["weekday"]),
            name: find(&["holiday_name", "name"]),
            source: find(&["gov_cn_notice_url", "source"]),
            notice_year: find(&["notice_year"]),
        })
    }

    fn parse_row(&self, fields: &[String]) -> Result<DayOverride, String> {
        if fields.len() != self.count {
            return Err(format!(
                "{} fields, the header has {} (quote fields that contain commas)",
                fields.len(),
                self.count
            ));
        }
        let optional = |column: Option<usize>| {
            column
                .map(|i| fields[i].as_str())
                .filter(|value| !value.is_empty())
        };
        let raw_date = fields[self.date].as_str();
        let date = NaiveDate::parse_from_str(raw_date, "%Y-%m-%d")
            .map_err(|_| format!("date {raw_date:?} is not YYYY-MM-DD"))?;
        let kind = match fields[self.kind].to_ascii_lowercase().as_str() {
            "off" | "rest" => DayKind::Rest,
            "makeup_workday" | "working" => DayKind::Working,
            other => {
                return Err(format!(
                    "type {other:?} is neither \"off\" nor \"makeup_workday\""
                ))
            }
        };
        if let Some(weekday) = optional(self.weekday) {
            let actual = date.weekday().to_string();
            if !weekday.eq_ignore_ascii_case(&actual) {
                return Err(format!("{date} is a {actual}, not a {weekday}"));
            }
        }
        if let Some(year) = optional(self.notice_year) {
            year.parse::<i32>()
                .map_err(|_| format!("notice_year {year:?} is not a year"))?;
        }
        Ok(DayOverride {
            date,
            kind,
            name: optional(self.name).map(str::to_owned),
            source: optional(self.source).map(str::to_owned),
        })
    }
}

/// RFC 4180 fields within one line: `"` starts a quoted field, `""` inside it is a quote.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".to_owned()),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_owned());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const HEADER: &str = "date,weekday,type,holiday_name,notice_year,gov_cn_notice_url";

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_reference_format_with_comments_bom_and_crlf_parses() {
        let text = format!(
            "\u{feff}# a comment\r\n\r\n{HEADER}\r\n\
             2026-02-14,Sat,makeup_workday,春节,2026,https://example.org/n\r\n\
             2026-02-15,Sun,off,春节,2026,\r\n"
        );
        let entries = parse_overrides_csv(&text).unwrap();
        assert_eq!(
            entries,
            vec![
                DayOverride::working(date(2026, 2, 14))
                    .named("春节")
                    .with_source("https://example.org/n"),
                DayOverride::rest(date(2026, 2, 15)).named("春节"),
            ]
        );
    }

    #[test]
    fn quoted_fields_may_hold_commas_and_quotes() {
        let text = "date,type,name\n2027-01-01,off,\"New Year, \"\"official\"\"\"\n";
        let entries = parse_overrides_csv(text).unwrap();
        assert_eq!(entries[0].name.as_deref(), Some("New Year, \"official\""));
    }

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let text = "type,date\nworking,2027-02-06\n";
        let entries = parse_overrides_csv(text).unwrap();
        assert_eq!(entries, vec![DayOverride::working(date(2027, 2, 6))]);
    }

    #[test]
    fn a_weekday_that_contradicts_its_date_is_rejected_with_its_line_number() {
        let text = format!("# header follows\n{HEADER}\n2026-02-16,Sun,off,春节,2026,\n");
        let err = parse_overrides_csv(&text).unwrap_err();
        assert!(
            matches!(&err, CalendarError::Csv { line: 3, message } if message.contains("Mon")),
            "{err}"
        );
    }

    #[test]
    fn unknown_types_bad_dates_and_short_rows_are_rejected() {
        for row in [
            "2026-02-16,Mon,holiday,春节,2026,",
            "2026-02-30,Mon,off,春节,2026,",
            "2026-02-16,Mon,off,春节",
            "2026-02-16,Mon,off,春节,twenty,",
            "2026-02-16,Mon,off,\"春节,2026,",
        ] {
            let text = format!("{HEADER}\n{row}\n");
            assert!(
                matches!(
                    parse_overrides_csv(&text),
                    Err(CalendarError::Csv { line: 2, .. })
                ),
                "{row}"
            );
        }
    }

    #[test]
    fn a_file_without_header_or_required_columns_is_rejected() {
        assert!(parse_overrides_csv("# only a comment\n").is_err());
        assert!(parse_overrides_csv("date,weekday\n2026-01-01,Thu\n").is_err());
        assert!(parse_overrides_csv("date,type,date\n").is_err());
        assert_eq!(parse_overrides_csv(HEADER).unwrap(), vec![]);
    }
}
