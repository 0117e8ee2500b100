//! Filing a complaint: the complaint row, its first event, the outbox message that wakes the
//! router and the `Idempotency-Key`'s answer, written by one call of the
//! `redress_file_complaint` function (migration 000012) in that statement's own transaction:
//! one round trip and one commit, where the same steps as separate statements were six
//! round trips (docs/PERFORMANCE.md). Either all four rows exist or none does.
//!
//! Everything written is computed here (ids, the validated details, the answer the partner
//! gets); the function decides, under the key's lock, whether to write it.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::{
    result::{DatabaseErrorKind, Error as DbError},
    sql_types::{Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
    QueryResult, QueryableByName,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use super::complaints::ComplaintRow;
use crate::{
    domain::{
        complaint::ComplaintInput,
        events::{self, QueueMessage},
        Status,
    },
    ids::{ClientId, ComplaintId, EventId, TenantId},
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
    /// The key was answered before; this is that answer.
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

/// Postgres keeps microseconds; the answer must show the same instant a later read does.
pub fn storage_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(at)
}

/// Files the complaint. Runs outside any transaction of the caller's (the statement is its
/// own transaction; the tenant is set inside it, for it alone).
pub async fn file(conn: &mut AsyncPgConnection, f: &Filing<'_>) -> QueryResult<Filed> {
    let now = storage_precision(f.now);
    let serialise = |e: serde_json::Error| DbError::SerializationError(Box::new(e));
    let details = serde_json::to_value(f.input).map_err(serialise)?;
    // The answer is the view of the row as it will be stored: built by the same code a
    // later read uses, from the same values.
    let row = ComplaintRow {
        id: f.id.to_string(),
        tenant_id: f.tenant.to_string(),
        client_id: f.client.to_string(),
        external_ref: f.input.external_ref.clone(),
        status: Status::Submitted.as_str().to_owned(),
        category: f.input.category.clone(),
        provider: f.input.respondent.provider.clone(),
        complainant_kind: f.input.complainant.kind.clone(),
        details: details.clone(),
        current_rungs: json!([]),
        missing_evidence: Vec::new(),
        last_sequence: 1,
        created_at: now,
        updated_at: now,
    };
    let view = row
        .to_view()
        .map_err(|e| DbError::SerializationError(Box::new(e)))?;
    let response = serde_json::to_value(&view).map_err(serialise)?;
    let message = QueueMessage {
        message_id: uuid::Uuid::now_v7(),
        message_type: events::SUBMITTED.to_owned(),
        tenant_id: f.tenant.to_string(),
        complaint_id: f.id.to_string(),
        occurred_at: now,
    };
    let payload = serde_json::to_value(&message).map_err(serialise)?;
    let event_data = json!({ "status": Status::Submitted, "category": f.input.category });
    let (key, hash) = match f.idempotency {
        Some((key, hash)) => (Some(key), Some(hash)),
        None => (None, None),
    };

    let result: Outcome = diesel::sql_query(
        "SELECT outcome, response_status, response_body, resource_id \
         FROM redress_file_complaint($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                                     $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind::<Text, _>(f.tenant.as_str())
    .bind::<Text, _>(f.client.as_str())
    .bind::<Integer, _>(f.routing_version)
    .bind::<Nullable<Text>, _>(key)
    .bind::<Nullable<Text>, _>(hash)
    .bind::<Text, _>(f.id.as_str())
    .bind::<Nullable<Text>, _>(f.input.external_ref.as_deref())
    .bind::<Text, _>(&f.input.category)
    .bind::<Text, _>(&f.input.respondent.provider)
    .bind::<Text, _>(&f.input.complainant.kind)
    .bind::<Jsonb, _>(&details)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(EventId::generate().as_str())
    .bind::<Text, _>(events::SUBMITTED)
    .bind::<Text, _>(events::actor_client(f.client.as_str()))
    .bind::<Jsonb, _>(&event_data)
    .bind::<SqlUuid, _>(message.message_id)
    .bind::<Jsonb, _>(&payload)
    .bind::<Jsonb, _>(&response)
    .get_result(conn)
    .await?;

    Ok(match result.outcome.as_str() {
        "created" => Filed::Created(result.response_body.unwrap_or(response)),
        "replay" => Filed::Replay {
            status: result
                .response_status
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(200),
            body: result.response_body.unwrap_or(Value::Null),
            resource_id: result.resource_id,
        },
        "mismatch" => Filed::Mismatch,
        "in_flight" => Filed::InFlight,
        "duplicate_external_ref" => Filed::DuplicateExternalRef(result.resource_id),
        "routing_changed" => Filed::RoutingChanged,
        other => {
            return Err(DbError::DeserializationError(
                format!("redress_file_complaint answered an unknown outcome {other:?}").into(),
            ))
        }
    })
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
