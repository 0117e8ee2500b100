//! `redress-api admin calendar load-year`: a new year's holiday arrangement (e.g. the State
//! Council's notice for 2027) is loaded as data into the running hub; no release needed.

use std::path::Path;

use diesel_async::{AsyncConnection, AsyncPgConnection};
use redress_shared::{
    calendar::parse_overrides_csv,
    deadlines::{calendars, DeadlineError},
};

/// Parses the CSV (the format of `calendar/data/cn-mainland.csv`), checks the year against
/// the calendar, and stores it in one transaction; clocks that waited for the year get
/// their due dates in the same transaction.
pub async fn load_year(
    database_url: &str,
    calendar: &str,
    year: i32,
    file: &Path,
    source: Option<&str>,
) -> anyhow::Result<calendars::YearLoaded> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let entries =
        parse_overrides_csv(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    let now = chrono::Utc::now();
    let loaded = conn
        .transaction(async |conn| {
            let loaded = calendars::load_year(conn, calendar, year, entries, source, now).await?;
            // A built-in calendar is every tenant's: a hub-wide entry.
            redress_shared::audit::record(
                conn,
                redress_shared::audit::Entry {
                    tenant: None,
                    actor: &crate::admin::cli_actor(),
                    action: "calendar.year_loaded",
                    target: Some(calendar),
                    details: serde_json::json!({ "year": year, "source": source }),
                },
            )
            .await?;
            Ok::<_, DeadlineError>(loaded)
        })
        .await
        .map_err(|e| match e {
            DeadlineError::Invalid(errors) => anyhow::anyhow!(
                "{}",
                errors
                    .iter()
                    .map(|e| e.detail.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => anyhow::anyhow!("{other}"),
        })?;
    Ok(loaded)
}
