//! After the load: wait for the pipeline to drain, then read what Postgres holds and compare
//! it with what partners were told. End-to-end latency comes from the database's own
//! timestamps (the routed event's `at` minus the complaint's `created_at`) and from the
//! receiver's clock for webhooks; everything runs on one machine, so one clock.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use diesel::{
    sql_types::{BigInt, Nullable, Text, Timestamptz},
    QueryableByName,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::{receiver::Receiver, report::Percentiles, stack::lock};

#[derive(QueryableByName)]
struct RowSql {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    routed_events: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    routed_at: Option<DateTime<Utc>>,
}

pub struct Row {
    pub created_at: DateTime<Utc>,
    pub status: String,
    pub routed_events: i64,
    pub routed_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = BigInt)]
    submitted: i64,
    #[diesel(sql_type = BigInt)]
    unsent: i64,
    #[diesel(sql_type = BigInt)]
    routed: i64,
}

/// How the pipeline drained after the load stopped.
#[derive(Debug, Default, Serialize)]
pub struct Drain {
    /// Until no complaint was left in `submitted` and the outbox was empty.
    pub routed_after_s: Option<f64>,
    /// Until the receiver had a webhook for every routed complaint.
    pub webhooks_after_s: Option<f64>,
}

async fn connect(database_url: &str) -> anyhow::Result<AsyncPgConnection> {
    Ok(AsyncPgConnection::establish(database_url).await?)
}

/// Waits until nothing is left to route (or `timeout`), then for the webhooks.
pub async fn drain(database_url: &str, receiver: &Receiver, timeout: Duration) -> Drain {
    let start = Instant::now();
    let mut out = Drain::default();
    let mut routed = 0;
    while start.elapsed() < timeout {
        // A fresh connection each time: a drill may have restarted Postgres.
        let w = async {
            let mut conn = connect(database_url).await?;
            let w: Waiting = diesel::sql_query(
                // One pass over the complaints (it was two, 80 ms each with 60,000 rows,
                // polled four times a second: a third of a core taken from the pipeline
                // whose drain this waits for).
                "SELECT count(*) FILTER (WHERE status = 'submitted') AS submitted, \
                        (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent, \
                        count(*) FILTER (WHERE status <> 'submitted') AS routed \
                 FROM complaints",
            )
            .get_result(&mut conn)
            .await?;
            anyhow::Ok(w)
        }
        .await;
        if let Ok(w) = w {
            if w.submitted == 0 && w.unsent == 0 {
                out.routed_after_s = Some(start.elapsed().as_secs_f64());
                routed = w.routed;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    while start.elapsed() < timeout {
        if receiver.count() as i64 >= routed {
            out.webhooks_after_s = Some(start.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    out
}

/// Every complaint in the database with its routing facts.
pub async fn load(database_url: &str) -> anyhow::Result<HashMap<String, Row>> {
    let mut conn = connect(database_url).await?;
    let rows: Vec<RowSql> = diesel::sql_query(
        "SELECT c.id, c.created_at, c.status, \
                count(e.id) FILTER (WHERE e.event_type = 'complaint.routed') AS routed_events, \
                min(e.at) FILTER (WHERE e.event_type = 'complaint.routed') AS routed_at \
         FROM complaints c LEFT JOIN complaint_events e ON e.complaint_id = c.id \
         GROUP BY c.id",
    )
    .load(&mut conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.id,
                Row {
                    created_at: r.created_at,
                    status: r.status,
                    routed_events: r.routed_events,
                    routed_at: r.routed_at,
                },
            )
        })
        .collect())
}

/// What partners were told against what the hub holds.
#[derive(Debug, Default, Serialize)]
pub struct Integrity {
    /// Distinct complaint ids acknowledged (202) to partners.
    pub acknowledged: usize,
    pub present: usize,
    /// Present and routed (a `complaint.routed` event exists).
    pub routed: usize,
    /// Acknowledged but not present and routed: the number that must be zero.
    pub lost: usize,
    /// Of the lost: not in the database at all.
    pub missing: usize,
    /// Of the lost: present, by status (still `submitted`, or held in `awaiting_evidence`).
    pub not_routed_by_status: BTreeMap<String, usize>,
    /// Complaints with more than one `complaint.routed` event (any complaint in the run).
    pub routed_twice: usize,
    /// In the database but never acknowledged (the answer was lost and the retries gave up).
    pub present_unacknowledged: usize,
    pub webhooks_received: usize,
    pub webhook_repeats: u64,
    pub webhook_bad_signatures: u64,
}

impl Integrity {
    /// Lost or routed twice: what no run may do.
    pub fn failed(&self) -> bool {
        self.lost > 0 || self.routed_twice > 0
    }
}

pub fn integrity(
    rows: &HashMap<String, Row>,
    acked: &HashSet<String>,
    receiver: &Receiver,
) -> Integrity {
    let mut i = Integrity {
        acknowledged: acked.len(),
        ..Integrity::default()
    };
    for id in acked {
        match rows.get(id) {
            None => i.missing += 1,
            Some(r) => {
                i.present += 1;
                if r.routed_events > 0 {
                    i.routed += 1;
                } else {
                    *i.not_routed_by_status.entry(r.status.clone()).or_insert(0) += 1;
                }
            }
        }
    }
    i.lost = i.acknowledged - i.routed;
    i.routed_twice = rows.values().filter(|r| r.routed_events > 1).count();
    i.present_unacknowledged = rows.keys().filter(|id| !acked.contains(*id)).count();
    let r = lock(&receiver.received);
    i.webhooks_received = r.routed_at.len();
    i.webhook_repeats = r.repeats;
    i.webhook_bad_signatures = r.bad_signatures;
    i
}

/// End-to-end latencies of `ids`: submission to routed (database), and submission to the
/// webhook's arrival (receiver).
pub fn end_to_end(
    rows: &HashMap<String, Row>,
    ids: &[String],
    receiver: &Receiver,
) -> (Percentiles, Percentiles) {
    let received = lock(&receiver.received);
    let mut routed = Vec::with_capacity(ids.len());
    let mut hooked = Vec::with_capacity(ids.len());
    let micros = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
    for id in ids {
        let Some(row) = rows.get(id) else { continue };
        if let Some(at) = row.routed_at {
            routed.push(micros(at - row.created_at));
        }
        if let Some(at) = received.routed_at.get(id) {
            hooked.push(micros(*at - row.created_at));
        }
    }
    (
        Percentiles::of_micros(&mut routed),
        Percentiles::of_micros(&mut hooked),
    )
}
