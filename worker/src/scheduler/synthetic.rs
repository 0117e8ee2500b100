//! Synthetic cases and clocks in bulk, for the scheduler's load test and benchmark: one
//! `INSERT … SELECT generate_series` each, so a million clocks take seconds, not hours.
//! Never used by the running hub.

use chrono::{DateTime, SecondsFormat, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// `n` routed complaints `{prefix}{00000001…}` of `tenant` on the `provider_service` rung,
/// each with one `respond` clock of 4 wall-clock seconds counted from `started_at`, warning
/// at `warn_at` (if any) and due at `due_at`, breach action `notify`.
#[allow(clippy::too_many_arguments)]
pub async fn insert_clocks(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    client: &str,
    prefix: &str,
    n: i64,
    started_at: DateTime<Utc>,
    warn_at: Option<DateTime<Utc>>,
    due_at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    // Ids and timestamps are made here, not taken from outside, so formatting them into
    // the statement is safe; binds would not reach into the jsonb_build_object calls.
    let id = format!("'{prefix}' || lpad(g::text, 8, '0')");
    let warning = match warn_at {
        Some(_) => "jsonb_build_object('fraction', 0.5)".to_owned(),
        None => "NULL".to_owned(),
    };
    let warn = match warn_at {
        Some(w) => format!("to_jsonb('{}'::text)", ts(w)),
        None => "'null'::jsonb".to_owned(),
    };
    let next_fire = ts(warn_at.unwrap_or(due_at));
    diesel::sql_query(format!(
        "INSERT INTO complaints (id, tenant_id, client_id, status, category, provider, \
             complainant_kind, details, current_rungs, created_at, updated_at) \
         SELECT {id}, '{tenant}', '{client}', 'routed', 'deposit_not_refunded', '拉卡拉', \
             'consumer', '{{}}'::jsonb, \
             jsonb_build_array(jsonb_build_object('channel', 'provider_service', \
                 'since', '{started}', 'track', 'main', 'deadlines', '[]'::jsonb)), \
             now(), now() \
         FROM generate_series(1, {n}) g",
        started = ts(started_at),
    ))
    .execute(conn)
    .await?;
    diesel::sql_query(format!(
        "INSERT INTO sla_clocks (tenant_id, complaint_id, channel, track, clock, state, spec, \
             progress, due_on, due_at, next_fire_at, updated_at) \
         SELECT '{tenant}', {id}, 'provider_service', 'main', 'respond', 'running', \
             jsonb_build_object('policy', 'synthetic', 'calendar', 'cn-mainland', \
                 'time_zone', 'Asia/Shanghai', 'roll_forward', true, 'on_breach', 'notify', \
                 'warning', {warning}, 'target', jsonb_build_object('amount', 4, 'unit', 'seconds'), \
                 'max_amount', NULL, 'started_at', '{started}'), \
             jsonb_build_object('counted_from', '{started}', \
                 'counted', jsonb_build_object('unit', 'duration', 'seconds', 4, 'nanos', 0), \
                 'warn_at', {warn}), \
             NULL, '{due}', '{next_fire}', now() \
         FROM generate_series(1, {n}) g",
        started = ts(started_at),
        due = ts(due_at),
    ))
    .execute(conn)
    .await?;
    Ok(())
}
