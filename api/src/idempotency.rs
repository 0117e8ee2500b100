//! `Idempotency-Key` (CONTRACT §2): the first answer is stored with the complaint, in the
//! same transaction, and replayed for a retry with the same body. The key is reserved in its
//! own short statement first, so a concurrent retry sees it in flight (409) instead of
//! waiting on the first request's lock.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use redress_shared::{db::schema::idempotency_keys as ik, ids::ClientId};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A reservation not completed within this time belongs to a request that died; a retry
/// may take it over.
const ABANDONED_AFTER_SECS: i64 = 60;

pub enum Reservation {
    /// Go ahead; complete the reservation in the transaction that does the work.
    Fresh,
    /// The same request was answered before: replay this.
    Replay {
        status: u16,
        body: Value,
        resource_id: Option<String>,
    },
    /// The first request with this key is still running.
    InFlight,
    /// The key was used with a different body.
    Mismatch,
}

/// Hash of the body's JSON value: key order and whitespace do not matter.
pub fn request_hash(body: &Value) -> String {
    // serde_json's Map is ordered by key, so this serialisation is canonical.
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

pub async fn reserve(
    conn: &mut AsyncPgConnection,
    client: &ClientId,
    key: &str,
    hash: &str,
) -> QueryResult<Reservation> {
    let inserted = diesel::insert_into(ik::table)
        .values((
            ik::client_id.eq(client.as_str()),
            ik::idempotency_key.eq(key),
            ik::request_hash.eq(hash),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(Reservation::Fresh);
    }
    let (stored_hash, status, body, resource_id, created_at): (
        String,
        Option<i32>,
        Option<Value>,
        Option<String>,
        chrono::DateTime<Utc>,
    ) = ik::table
        .find((client.as_str(), key))
        .select((
            ik::request_hash,
            ik::response_status,
            ik::response_body,
            ik::resource_id,
            ik::created_at,
        ))
        .first(conn)
        .await?;
    if stored_hash != hash {
        return Ok(Reservation::Mismatch);
    }
    match (status, body) {
        (Some(status), Some(body)) => Ok(Reservation::Replay {
            status: u16::try_from(status).unwrap_or(200),
            body,
            resource_id,
        }),
        _ if created_at < Utc::now() - Duration::seconds(ABANDONED_AFTER_SECS) => {
            // Take the abandoned reservation over; only one retry wins the update.
            let taken = diesel::update(ik::table.find((client.as_str(), key)))
                .filter(ik::created_at.eq(created_at))
                .filter(ik::response_status.is_null())
                .set(ik::created_at.eq(Utc::now()))
                .execute(conn)
                .await?;
            Ok(if taken == 1 {
                Reservation::Fresh
            } else {
                Reservation::InFlight
            })
        }
        _ => Ok(Reservation::InFlight),
    }
}

/// Stores the answer; called inside the transaction that created the resource.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    client: &ClientId,
    key: &str,
    status: u16,
    body: &Value,
    resource_id: &str,
) -> QueryResult<()> {
    diesel::update(ik::table.find((client.as_str(), key)))
        .set((
            ik::response_status.eq(i32::from(status)),
            ik::response_body.eq(body),
            ik::resource_id.eq(resource_id),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Frees a reservation whose request failed, so the client may retry with the same key.
pub async fn release(
    conn: &mut AsyncPgConnection,
    client: &ClientId,
    key: &str,
) -> QueryResult<()> {
    diesel::delete(ik::table.find((client.as_str(), key)))
        .filter(ik::response_status.is_null())
        .execute(conn)
        .await
        .map(|_| ())
}
