//! Filing a complaint: the complaint row, its first event, the outbox message that wakes the
//! router and the `Idempotency-Key`'s answer, written by one call of the
//! `redress_file_complaint` function (migration 000012) in that statement's own transaction:
//! one round trip and one commit, where the same steps as separate statements were six
//! round trips (docs/PERFORMANCE.md). Either all four rows exist or none does.
//!
//! Everything written is computed here (ids, the validated details, the answer the partner
//! gets); the function decides, under the key's lock, whether to write it.
//!
//! The key keeps no copy of the answer (migration 000019): a replay renders the first answer
//! from the complaint row again, with [`first_answer`], the code that built it.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::{
    result::{DatabaseErrorKind, Error as DbError},
    sql_types::{Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
    QueryResult, QueryableByName,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use super::complaints::{self, ComplaintRow, RowError};
use crate::{
    domain::{
        complaint::ComplaintInput,
        events::{self, QueueMessage},
        ComplaintView, Status,
    },
    ids::{ClientId, ComplaintId, EventId, TenantId},
    tenancy::Scope,
};

/// What a complaint is filed with.
pub struct Filing<'a> {
    pub tenant: &'a TenantId,
    pub client: &'a ClientId,
    /// The routing version whose categories the caller checked `input.category` against.
    pub routing_version: i32,
    /// The `Idempotency-Key` and the hash of the request body, when the request has a key.
    pub idempotency: Option<(&'a str, &'a str)>,
    pub id: &'a ComplaintId,
    pub input: &'a ComplaintInput,
    pub now: DateTime<Utc>,
}

/// What filing did.
#[derive(Debug)]
pub enum Filed {
    /// Written; the complaint as the partner sees it (`ComplaintView` as JSON).
    Created(Value),
    /// The key was answered before; this is that answer (rendered again from the complaint
    /// with [`first_answer`] unless an earlier version stored it).
    Replay {
        status: u16,
        body: Value,
        resource_id: Option<String>,
    },
    /// The key was used with another body.
    Mismatch,
    /// Another request holds the key.
    InFlight,
    /// The client's `external_ref` is taken, by this complaint (if it is still there).
    DuplicateExternalRef(Option<String>),
    /// The routing in force is no longer `routing_version`; nothing was written.
    RoutingChanged,
}

/// The message the function raises when the key's answer was stored by another request
/// while this one held its lock, which the lock rules out: the statement is rolled back.
const KEY_TAKEN: &str = "idempotency key completed by another request meanwhile";

/// True for the error of a filing that found its key completed meanwhile (answer "in
/// flight"; the retry gets the replay).
pub fn is_key_taken(error: &DbError) -> bool {
    matches!(error, DbError::DatabaseError(DatabaseErrorKind::Unknown, info) if info.message() == KEY_TAKEN)
}

/// Postgres keeps microseconds; the answer must show the same instant a later read does.
pub fn storage_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(at)
}

/// The first answer to a filing: the complaint as filed, whatever happened to it since.
/// What filing and routing change later (status, rungs, evidence still missing, sequence,
/// `updated_at`) is set back to what it was when filed; the rest of the row is never
/// changed, except by erasure, whose blanks the answer then shows too. Filing builds its
/// answer with this, so a replay is the same answer.
pub fn first_answer(row: &ComplaintRow) -> Result<ComplaintView, RowError> {
    let as_filed = ComplaintRow {
        status: Status::Submitted.as_str().to_owned(),
        current_rungs: json!([]),
        missing_evidence: Vec::new(),
        last_sequence: 1,
        updated_at: row.created_at,
        ..row.clone()
    };
    as_filed.to_view()
}

/// Everything one filing writes, computed from a [`Filing`] before it goes to Postgres:
/// the ids, the details and the answer the partner gets. Owned, so filings can wait
/// together for one batch ([`file_many`]).
#[derive(Debug, Clone)]
pub struct FilingValues {
    tenant: String,
    client: String,
    routing_version: i32,
    key: Option<String>,
    hash: Option<String>,
    id: String,
    external_ref: Option<String>,
    category: String,
    provider: String,
    complainant_kind: String,
    details: Value,
    now: DateTime<Utc>,
    event_id: String,
    event_type: &'static str,
    actor: String,
    event_data: Value,
    message_id: uuid::Uuid,
    payload: Value,
    response: Value,
}

impl Filing<'_> {
    /// What filing writes; see [`FilingValues`].
    pub fn values(&self) -> QueryResult<FilingValues> {
        let now = storage_precision(self.now);
        let serialise = |e: serde_json::Error| DbError::SerializationError(Box::new(e));
        let details = serde_json::to_value(self.input).map_err(serialise)?;
        // The answer is the view of the row as it will be stored: built by the same code a
        // later read and a replay use, from the same values.
        let row = ComplaintRow {
            id: self.id.to_string(),
            tenant_id: self.tenant.to_string(),
            client_id: self.client.to_string(),
            external_ref: self.input.external_ref.clone(),
            status: Status::Submitted.as_str().to_owned(),
            category: self.input.category.clone(),
            provider: self.input.respondent.provider.clone(),
            complainant_kind: self.input.complainant.kind.clone(),
            details: details.clone(),
            current_rungs: json!([]),
            missing_evidence: Vec::new(),
            last_sequence: 1,
            created_at: now,
            updated_at: now,
        };
        let view = first_answer(&row).map_err(|e| DbError::SerializationError(Box::new(e)))?;
        let response = serde_json::to_value(&view).map_err(serialise)?;
        let message = QueueMessage {
            message_id: uuid::Uuid::now_v7(),
            message_type: events::SUBMITTED.to_owned(),
            tenant_id: self.tenant.to_string(),
            complaint_id: self.id.to_string(),
            occurred_at: now,
        };
        let payload = serde_json::to_value(&message).map_err(serialise)?;
        let (key, hash) = match self.idempotency {
            Some((key, hash)) => (Some(key.to_owned()), Some(hash.to_owned())),
            None => (None, None),
        };
        Ok(FilingValues {
            tenant: self.tenant.to_string(),
            client: self.client.to_string(),
            routing_version: self.routing_version,
            key,
            hash,
            id: self.id.to_string(),
            external_ref: self.input.external_ref.clone(),
            category: self.input.category.clone(),
            provider: self.input.respondent.provider.clone(),
            complainant_kind: self.input.complainant.kind.clone(),
            details,
            now,
            event_id: EventId::generate().to_string(),
            event_type: events::SUBMITTED,
            actor: events::actor_client(self.client.as_str()),
            event_data: json!({ "status": Status::Submitted, "category": self.input.category }),
            message_id: message.message_id,
            payload,
            response,
        })
    }
}

#[derive(QueryableByName)]
struct Outcome {
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Nullable<Integer>)]
    response_status: Option<i32>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    response_body: Option<Value>,
    #[diesel(sql_type = Nullable<Text>)]
    resource_id: Option<String>,
}

#[derive(QueryableByName)]
struct NumberedOutcome {
    #[diesel(sql_type = Integer)]
    ordinal: i32,
    #[diesel(embed)]
    outcome: Outcome,
}

impl Outcome {
    /// A replay of a key whose answer was not stored gets it rendered from its complaint
    /// (after the filing's statement, in a transaction of the filing's tenant). Replays are
    /// retries, rare next to filings, so the read is paid by them alone.
    async fn render_replay(
        &mut self,
        conn: &mut AsyncPgConnection,
        v: &FilingValues,
    ) -> QueryResult<()> {
        if self.outcome != "replay" || self.response_body.is_some() {
            return Ok(());
        }
        let Some(id) = self.resource_id.clone() else {
            return Err(DbError::DeserializationError(
                "a replayed Idempotency-Key names no complaint".into(),
            ));
        };
        let tenant = TenantId::from_trusted(v.tenant.clone());
        let scope = Scope::client(tenant.clone(), ClientId::from_trusted(v.client.clone()));
        let id = ComplaintId::from_trusted(id);
        let row = super::tenant::transaction(conn, &tenant, async |conn| {
            complaints::find(conn, &scope, &id).await
        })
        .await?
        .ok_or_else(|| {
            // Complaints are never deleted; a key outlives nothing it names.
            DbError::DeserializationError(
                format!("the complaint {id} of a replayed Idempotency-Key is gone").into(),
            )
        })?;
        let answer = first_answer(&row).map_err(|e| DbError::SerializationError(Box::new(e)))?;
        self.response_body = Some(
            serde_json::to_value(&answer).map_err(|e| DbError::SerializationError(Box::new(e)))?,
        );
        Ok(())
    }

    fn filed(self, response: &Value) -> QueryResult<Filed> {
        Ok(match self.outcome.as_str() {
            "created" => Filed::Created(self.response_body.unwrap_or_else(|| response.clone())),
            "replay" => Filed::Replay {
                status: self
                    .response_status
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(200),
                body: self.response_body.unwrap_or(Value::Null),
                resource_id: self.resource_id,
            },
            "mismatch" => Filed::Mismatch,
            "in_flight" => Filed::InFlight,
            "duplicate_external_ref" => Filed::DuplicateExternalRef(self.resource_id),
            "routing_changed" => Filed::RoutingChanged,
            other => {
                return Err(DbError::DeserializationError(
                    format!("redress_file_complaint answered an unknown outcome {other:?}").into(),
                ))
            }
        })
    }
}

/// Files the complaint. Runs outside any transaction of the caller's (the statement is its
/// own transaction; the tenant is set inside it, for it alone).
pub async fn file(conn: &mut AsyncPgConnection, f: &Filing<'_>) -> QueryResult<Filed> {
    file_values(conn, &f.values()?).await
}

/// Files one complaint from its values; see [`file`].
pub async fn file_values(conn: &mut AsyncPgConnection, v: &FilingValues) -> QueryResult<Filed> {
    // Reused: the text is fixed, and preparing it anew on each call cost a round trip and
    // a parse and plan in Postgres every time (`db::prepared`).
    let mut result: Outcome = super::prepared::reuse(
        diesel::sql_query(
            "SELECT outcome, response_status, response_body, resource_id \
             FROM redress_file_complaint($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                                         $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind::<Text, _>(&v.tenant)
        .bind::<Text, _>(&v.client)
        .bind::<Integer, _>(v.routing_version)
        .bind::<Nullable<Text>, _>(v.key.as_deref())
        .bind::<Nullable<Text>, _>(v.hash.as_deref())
        .bind::<Text, _>(&v.id)
        .bind::<Nullable<Text>, _>(v.external_ref.as_deref())
        .bind::<Text, _>(&v.category)
        .bind::<Text, _>(&v.provider)
        .bind::<Text, _>(&v.complainant_kind)
        .bind::<Jsonb, _>(&v.details)
        .bind::<Timestamptz, _>(v.now)
        .bind::<Text, _>(&v.event_id)
        .bind::<Text, _>(v.event_type)
        .bind::<Text, _>(&v.actor)
        .bind::<Jsonb, _>(&v.event_data)
        .bind::<SqlUuid, _>(v.message_id)
        .bind::<Jsonb, _>(&v.payload)
        // The answer is not stored (migration 000019).
        .bind::<Nullable<Jsonb>, _>(None::<Value>),
    )
    // Read to the end of the server's answer, not just to the row: this statement is its
    // own transaction, which commits after the row is sent (at the protocol's Sync), and
    // `get_result` stops at the row. A commit that failed there (Postgres shutting down in
    // a restart, a check deferred to commit) went unseen, and the partner was told a
    // complaint was filed that had been rolled back: one in 3,200 in a restart-postgres
    // drill (docs/PERFORMANCE.md, session 10).
    .load::<Outcome>(conn)
    .await?
    .into_iter()
    .next()
    .ok_or(DbError::NotFound)?;
    result.render_replay(conn, v).await?;
    result.filed(&v.response)
}

/// Files several complaints in one statement, one transaction and one commit
/// (`redress_file_complaints`, migration 000017): each as [`file_values`] would have, in
/// order, as if they had arrived one after the other. An outcome per filing, in order.
/// Either every filing's outcome holds or, when the call fails, none was written; the
/// caller may then file each alone to learn which one failed.
pub async fn file_many(
    conn: &mut AsyncPgConnection,
    filings: &[FilingValues],
) -> QueryResult<Vec<Filed>> {
    use diesel::sql_types::Array;
    match filings {
        [] => return Ok(Vec::new()),
        [one] => return Ok(vec![file_values(conn, one).await?]),
        _ => {}
    }
    fn column<'a, T: ?Sized>(
        filings: &'a [FilingValues],
        f: impl Fn(&'a FilingValues) -> &'a T,
    ) -> Vec<&'a T> {
        filings.iter().map(f).collect()
    }
    let versions: Vec<i32> = filings.iter().map(|v| v.routing_version).collect();
    let keys: Vec<Option<&str>> = filings.iter().map(|v| v.key.as_deref()).collect();
    let hashes: Vec<Option<&str>> = filings.iter().map(|v| v.hash.as_deref()).collect();
    let refs: Vec<Option<&str>> = filings.iter().map(|v| v.external_ref.as_deref()).collect();
    let times: Vec<DateTime<Utc>> = filings.iter().map(|v| v.now).collect();
    let message_ids: Vec<uuid::Uuid> = filings.iter().map(|v| v.message_id).collect();
    let rows: Vec<NumberedOutcome> = super::prepared::reuse(
        diesel::sql_query(
            "SELECT ordinal, outcome, response_status, response_body, resource_id \
             FROM redress_file_complaints($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                                          $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind::<Array<Text>, _>(column(filings, |v| v.tenant.as_str()))
        .bind::<Array<Text>, _>(column(filings, |v| v.client.as_str()))
        .bind::<Array<Integer>, _>(&versions)
        .bind::<Array<Nullable<Text>>, _>(&keys)
        .bind::<Array<Nullable<Text>>, _>(&hashes)
        .bind::<Array<Text>, _>(column(filings, |v| v.id.as_str()))
        .bind::<Array<Nullable<Text>>, _>(&refs)
        .bind::<Array<Text>, _>(column(filings, |v| v.category.as_str()))
        .bind::<Array<Text>, _>(column(filings, |v| v.provider.as_str()))
        .bind::<Array<Text>, _>(column(filings, |v| v.complainant_kind.as_str()))
        .bind::<Array<Jsonb>, _>(column(filings, |v| &v.details))
        .bind::<Array<Timestamptz>, _>(&times)
        .bind::<Array<Text>, _>(column(filings, |v| v.event_id.as_str()))
        .bind::<Array<Text>, _>(column(filings, |v| v.event_type))
        .bind::<Array<Text>, _>(column(filings, |v| v.actor.as_str()))
        .bind::<Array<Jsonb>, _>(column(filings, |v| &v.event_data))
        .bind::<Array<SqlUuid>, _>(&message_ids)
        .bind::<Array<Jsonb>, _>(column(filings, |v| &v.payload))
        // The answers are not stored (migration 000019).
        .bind::<Array<Nullable<Jsonb>>, _>(vec![None::<Value>; filings.len()]),
    )
    .load(conn)
    .await?;
    if rows.len() != filings.len() {
        return Err(DbError::DeserializationError(
            format!(
                "redress_file_complaints answered {} outcomes for {} filings",
                rows.len(),
                filings.len()
            )
            .into(),
        ));
    }
    let mut filed = Vec::with_capacity(filings.len());
    for ((expected, mut row), values) in (1..).zip(rows).zip(filings) {
        if row.ordinal != expected {
            return Err(DbError::DeserializationError(
                "redress_file_complaints answered out of order".into(),
            ));
        }
        row.outcome.render_replay(conn, values).await?;
        filed.push(row.outcome.filed(&values.response)?);
    }
    Ok(filed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_answer_carries_the_instant_postgres_will_store() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T06:30:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            storage_precision(at).to_rfc3339(),
            "2026-11-21T06:30:00.123456+00:00"
        );
    }

    #[test]
    fn the_first_event_of_a_complaint_queues_no_webhook() {
        // The function writes no webhook message: the contract has none for a complaint
        // being filed. Should it ever get one, intake must queue it and this test says so.
        let data = json!({ "status": Status::Submitted, "category": "deposit" });
        assert!(
            crate::webhooks::complaint_events::webhook_types_for(events::SUBMITTED, &data)
                .is_empty()
        );
    }
}
