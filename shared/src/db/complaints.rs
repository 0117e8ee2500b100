//! Complaints and their append-only history. Every function takes the tenant (a [`Scope`]
//! or a [`TenantId`]) and filters by it: there is no query here that can read across tenants.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::schema::{complaint_events, complaints};
use crate::{
    domain::{
        complaint::{ComplaintInput, Tracking},
        ComplaintView, EventView, Rung, Status,
    },
    ids::{ClientId, ComplaintId, EventId, TenantId},
    tenancy::Scope,
};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = complaints)]
pub struct ComplaintRow {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub external_ref: Option<String>,
    pub status: String,
    pub category: String,
    pub provider: String,
    pub complainant_kind: String,
    pub details: Value,
    pub current_rungs: Value,
    pub missing_evidence: Vec<String>,
    pub last_sequence: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("stored complaint {0} does not parse: {1}")]
    Corrupt(String, String),
}

impl ComplaintRow {
    pub fn status(&self) -> Result<Status, RowError> {
        Status::parse(&self.status)
            .ok_or_else(|| RowError::Corrupt(self.id.clone(), format!("status {}", self.status)))
    }

    pub fn input(&self) -> Result<ComplaintInput, RowError> {
        serde_json::from_value(self.details.clone())
            .map_err(|e| RowError::Corrupt(self.id.clone(), e.to_string()))
    }

    pub fn rungs(&self) -> Result<Vec<Rung>, RowError> {
        serde_json::from_value(self.current_rungs.clone())
            .map_err(|e| RowError::Corrupt(self.id.clone(), e.to_string()))
    }

    pub fn to_view(&self) -> Result<ComplaintView, RowError> {
        Ok(ComplaintView {
            id: self.id.clone(),
            status: self.status()?,
            input: self.input()?,
            current: self.rungs()?,
            missing_evidence: self.missing_evidence.clone(),
            tracking: Tracking {
                last_sequence: self.last_sequence,
                events_url: format!("/v1/complaints/{}/events", self.id),
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = complaint_events)]
pub struct EventRow {
    pub id: String,
    pub tenant_id: String,
    pub complaint_id: String,
    pub sequence: i32,
    pub event_type: String,
    pub actor: String,
    pub data: Value,
    pub at: DateTime<Utc>,
}

impl EventRow {
    pub fn to_view(&self) -> EventView {
        EventView {
            id: self.id.clone(),
            sequence: self.sequence,
            event_type: self.event_type.clone(),
            at: self.at,
            actor: self.actor.clone(),
            data: self.data.clone(),
        }
    }
}

/// The client's complaint with this `external_ref`, if any.
pub async fn id_by_external_ref(
    conn: &mut AsyncPgConnection,
    client: &ClientId,
    external_ref: &str,
) -> QueryResult<Option<String>> {
    complaints::table
        .filter(complaints::client_id.eq(client.as_str()))
        .filter(complaints::external_ref.eq(external_ref))
        .select(complaints::id)
        .first(conn)
        .await
        .optional()
}

/// Appends one event, numbering it after the complaint's last. The complaint row is updated
/// first, which locks it, so concurrent appends to one complaint queue up instead of racing
/// for the same sequence number.
pub async fn append_event(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    event_type: &str,
    actor: &str,
    data: Value,
    now: DateTime<Utc>,
) -> QueryResult<EventRow> {
    let sequence: i32 = diesel::update(
        complaints::table
            .filter(complaints::id.eq(complaint.as_str()))
            .filter(complaints::tenant_id.eq(tenant.as_str())),
    )
    .set((
        complaints::last_sequence.eq(complaints::last_sequence + 1),
        complaints::updated_at.eq(now),
    ))
    .returning(complaints::last_sequence)
    .get_result(conn)
    .await?;
    let event = insert_event_row(
        conn, tenant, complaint, sequence, event_type, actor, data, now,
    )
    .await?;
    // Same transaction: an event and the webhooks announcing it commit together.
    crate::webhooks::complaint_events::enqueue_for_complaint_event(conn, tenant, &event).await?;
    Ok(event)
}

/// Writes event number `sequence` and queues its webhooks, for a caller that has already
/// numbered it on the complaint row (bumped `last_sequence` and `updated_at` under the
/// row's lock, in this transaction): the SLA scheduler, whose clock write does that.
#[allow(clippy::too_many_arguments)]
pub async fn append_numbered_event(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    sequence: i32,
    event_type: &str,
    actor: &str,
    data: Value,
    now: DateTime<Utc>,
) -> QueryResult<EventRow> {
    let event = insert_event_row(
        conn, tenant, complaint, sequence, event_type, actor, data, now,
    )
    .await?;
    crate::webhooks::complaint_events::enqueue_for_complaint_event(conn, tenant, &event).await?;
    Ok(event)
}

/// Writes event number `sequence`. Callers own the numbering ([`append_event`] under the
/// complaint's row lock; `redress_file_complaint` writes event 1 of a complaint it files) and
/// queue the event's webhooks right after. Takes a shared reference so it can be pipelined
/// with other statements of the transaction.
#[allow(clippy::too_many_arguments)]
async fn insert_event_row(
    conn: &AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    sequence: i32,
    event_type: &str,
    actor: &str,
    data: Value,
    now: DateTime<Utc>,
) -> QueryResult<EventRow> {
    let mut c = conn;
    diesel::insert_into(complaint_events::table)
        .values((
            complaint_events::id.eq(EventId::generate().as_str()),
            complaint_events::tenant_id.eq(tenant.as_str()),
            complaint_events::complaint_id.eq(complaint.as_str()),
            complaint_events::sequence.eq(sequence),
            complaint_events::event_type.eq(event_type),
            complaint_events::actor.eq(actor),
            complaint_events::data.eq(data),
            complaint_events::at.eq(now),
        ))
        .returning(EventRow::as_returning())
        .get_result(&mut c)
        .await
}

/// One complaint, if the scope may see it.
pub async fn find(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: &ComplaintId,
) -> QueryResult<Option<ComplaintRow>> {
    let mut q = complaints::table
        .filter(complaints::id.eq(id.as_str()))
        .filter(complaints::tenant_id.eq(scope.tenant_id.as_str()))
        .select(ComplaintRow::as_select())
        .into_boxed();
    if let Some(client) = &scope.client_id {
        q = q.filter(complaints::client_id.eq(client.as_str()));
    }
    q.first(conn).await.optional()
}

/// The same, locking the row for the rest of the caller's transaction.
pub async fn find_for_update(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
) -> QueryResult<Option<ComplaintRow>> {
    complaints::table
        .filter(complaints::id.eq(id.as_str()))
        .filter(complaints::tenant_id.eq(tenant.as_str()))
        .select(ComplaintRow::as_select())
        .for_update()
        .first(&mut conn)
        .await
        .optional()
}

/// Locks several complaints of one tenant, in one statement and in the order of their ids
/// (so two transactions locking overlapping sets cannot deadlock), and answers those found.
///
/// Each row is looked up by its key in a subquery of its own (`LATERAL`, which a locking
/// clause keeps apart): the plain `tenant_id = $1 AND id = ANY($2)` was planned, on stale
/// statistics, as a scan of the tenant's every complaint (a tenant the statistics take for
/// a few rows; tests/it/intake.rs), locking nothing more but reading everything.
pub async fn find_many_for_update(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    ids: &[&str],
) -> QueryResult<Vec<ComplaintRow>> {
    use diesel::sql_types::{Array, Text};
    super::prepared::reuse(
        diesel::sql_query(
            "SELECT c.id, c.tenant_id, c.client_id, c.external_ref, c.status, c.category, \
                    c.provider, c.complainant_kind, c.details, c.current_rungs, \
                    c.missing_evidence, c.last_sequence, c.created_at, c.updated_at \
             FROM (SELECT u.id FROM unnest($2::text[]) AS u(id) ORDER BY u.id) AS wanted \
             CROSS JOIN LATERAL ( \
                 SELECT * FROM complaints \
                 WHERE tenant_id = $1 AND id = wanted.id \
                 FOR UPDATE) AS c \
             ORDER BY c.id",
        )
        .bind::<Text, _>(tenant.as_str())
        .bind::<Array<Text>, _>(ids),
    )
    .load(&mut conn)
    .await
}

/// Moves several new cases of one tenant to the same `status` with no missing evidence, in
/// one statement, for a caller holding their rows' locks that numbers the events announcing
/// the change itself: each `(id, rungs, sequence)` gets its rungs, and `last_sequence`
/// becomes its event's number, so the events can be written in the same round trip
/// ([`insert_events`]). The rows must be locked by the caller. An error if not
/// every row was found (the caller rolls back).
pub async fn set_states_numbered(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    status: Status,
    cases: &[(&ComplaintId, &Value, i32)],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::sql_types::{Array, Integer, Jsonb, Text, Timestamptz};
    if cases.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = cases.iter().map(|(id, _, _)| id.as_str()).collect();
    let rungs: Vec<&Value> = cases.iter().map(|(_, r, _)| *r).collect();
    let sequences: Vec<i32> = cases.iter().map(|(_, _, n)| *n).collect();
    #[derive(QueryableByName)]
    struct Updated {
        #[diesel(sql_type = Integer)]
        updated: i32,
    }
    // One statement for the batch: a statement per row cost its executor start-up and
    // checks again for each (docs/PERFORMANCE.md). The function probes the primary key per
    // row whatever the statistics say; a plain UPDATE … FROM unnest was planned, on stale
    // statistics, as a read of the tenant's every complaint (migration 000018).
    let Updated { updated } = super::prepared::reuse(
        diesel::sql_query("SELECT redress_set_routed_states($1, $2, $3, $4, $5, $6) AS updated")
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(status.as_str())
            .bind::<Timestamptz, _>(now)
            .bind::<Array<Text>, _>(&ids)
            .bind::<Array<Jsonb>, _>(&rungs)
            .bind::<Array<Integer>, _>(&sequences),
    )
    .get_result(&mut conn)
    .await?;
    let updated = usize::try_from(updated).unwrap_or(0);
    if updated != cases.len() {
        return Err(diesel::result::Error::NotFound);
    }
    Ok(())
}

/// Inserts events built and numbered by the caller under their complaints' locks (see
/// [`set_states_numbered`]), in one statement. Their webhooks are the caller's to queue, in
/// the same transaction (`webhooks::complaint_events::messages_known`).
pub async fn insert_events(mut conn: &AsyncPgConnection, events: &[&EventRow]) -> QueryResult<()> {
    use super::prepared::column;
    use diesel::sql_types::{Array, Integer, Jsonb, Text, Timestamptz};
    if events.is_empty() {
        return Ok(());
    }
    // Fixed text with a column of values per array, kept prepared (`db::prepared`): a
    // multi-row VALUES list is new text for every batch size, parsed and planned each time.
    super::prepared::reuse(
        diesel::sql_query(
            "INSERT INTO complaint_events \
                 (id, tenant_id, complaint_id, sequence, event_type, actor, data, at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], \
                                  $6::text[], $7::jsonb[], $8::timestamptz[])",
        )
        .bind::<Array<Text>, _>(column(events, |e| e.id.as_str()))
        .bind::<Array<Text>, _>(column(events, |e| e.tenant_id.as_str()))
        .bind::<Array<Text>, _>(column(events, |e| e.complaint_id.as_str()))
        .bind::<Array<Integer>, _>(column(events, |e| e.sequence))
        .bind::<Array<Text>, _>(column(events, |e| e.event_type.as_str()))
        .bind::<Array<Text>, _>(column(events, |e| e.actor.as_str()))
        .bind::<Array<Jsonb>, _>(column(events, |e| &e.data))
        .bind::<Array<Timestamptz>, _>(column(events, |e| e.at)),
    )
    .execute(&mut conn)
    .await
    .map(|_| ())
}

/// Filters of `GET /v1/complaints`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub category: Option<String>,
    pub provider: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
    /// Only ids after this one (the cursor).
    pub after: Option<String>,
    pub limit: i64,
}

/// A page of complaints in filing order (ids are time-ordered). Fetches one row more than
/// asked so the caller knows whether there is a next page.
pub async fn list(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    f: &ListFilter,
) -> QueryResult<Vec<ComplaintRow>> {
    let mut q = complaints::table
        .filter(complaints::tenant_id.eq(scope.tenant_id.as_str()))
        .select(ComplaintRow::as_select())
        .order(complaints::id.asc())
        .limit(f.limit + 1)
        .into_boxed();
    if let Some(client) = &scope.client_id {
        q = q.filter(complaints::client_id.eq(client.as_str()));
    }
    if let Some(s) = f.status {
        q = q.filter(complaints::status.eq(s.as_str()));
    }
    if let Some(c) = &f.category {
        q = q.filter(complaints::category.eq(c.clone()));
    }
    if let Some(p) = &f.provider {
        q = q.filter(complaints::provider.eq(p.clone()));
    }
    if let Some(t) = f.updated_since {
        // Every change that moves updated_at appends an event at the same time, so the
        // complaints updated since `t` are those with an event since `t`: an index on the
        // events answers it, and routing's update of the row stays HOT (migration 000016).
        let changed = complaint_events::table
            .filter(complaint_events::tenant_id.eq(scope.tenant_id.as_str()))
            .filter(complaint_events::at.ge(t))
            .select(complaint_events::complaint_id);
        q = q.filter(complaints::id.eq_any(changed));
    }
    if let Some(after) = &f.after {
        q = q.filter(complaints::id.gt(after.clone()));
    }
    q.load(conn).await
}

/// A complaint's history in order, or None when the scope may not see the complaint.
pub async fn events(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    id: &ComplaintId,
) -> QueryResult<Option<Vec<EventRow>>> {
    if find(conn, scope, id).await?.is_none() {
        return Ok(None);
    }
    complaint_events::table
        .filter(complaint_events::complaint_id.eq(id.as_str()))
        .filter(complaint_events::tenant_id.eq(scope.tenant_id.as_str()))
        .order(complaint_events::sequence.asc())
        .select(EventRow::as_select())
        .load(conn)
        .await
        .map(Some)
}

/// Moves a complaint to a new status with its active rungs and missing evidence. The
/// caller has checked the move with [`Status::can_move_to`] on a row it locked.
pub async fn set_state(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ComplaintId,
    status: Status,
    rungs: &[Rung],
    missing_evidence: &[String],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let rungs = serde_json::to_value(rungs)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::update(
        complaints::table
            .filter(complaints::id.eq(id.as_str()))
            .filter(complaints::tenant_id.eq(tenant.as_str())),
    )
    .set((
        complaints::status.eq(status.as_str()),
        complaints::current_rungs.eq(rungs),
        complaints::missing_evidence.eq(missing_evidence),
        complaints::updated_at.eq(now),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}
