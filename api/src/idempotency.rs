//! `Idempotency-Key` (CONTRACT §2): the first answer is stored with the complaint, in the
//! same transaction, and replayed for a retry with the same body.
//!
//! A request holds its key with a transaction-scoped advisory lock for the length of the
//! transaction that does the work, so a concurrent retry with the same key finds the lock
//! taken and answers 409 at once instead of waiting. The lock is released when that
//! transaction ends however it ends: committed, rolled back, or its connection cut because
//! the API process died. A retry after a crash therefore goes ahead at once, and a request
//! costs one commit, not two (a reservation committed on its own, then the work).

use chrono::{Duration, Utc};
// `filter` on an upsert (its `DO UPDATE … WHERE`) is not in the prelude.
use diesel::{prelude::*, query_dsl::methods::FilterDsl, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use redress_shared::{db::schema::idempotency_keys as ik, ids::ClientId};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A row without an answer comes from an earlier version of the API, which reserved keys in
/// a statement of their own; one younger than this may still be in flight there (during a
/// rolling deploy), an older one belongs to a request that died.
const ABANDONED_AFTER_SECS: i64 = 60;

/// The first key of the two-key advisory lock: keeps idempotency locks apart from any other
/// advisory lock a deployment's tools may take.
const LOCK_CLASS: i32 = 0x1de7;

/// request_hash, response_status, response_body, resource_id, created_at
type StoredKey = (
    String,
    Option<i32>,
    Option<Value>,
    Option<String>,
    chrono::DateTime<Utc>,
);

pub enum Reservation {
    /// Go ahead; [`complete`] stores the answer in the same transaction.
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

diesel::define_sql_function! {
    /// Takes a transaction-scoped advisory lock if it is free; never waits.
    fn pg_try_advisory_xact_lock(class: sql_types::Integer, key: sql_types::Integer) -> sql_types::Bool;
}
diesel::define_sql_function! {
    /// Postgres's 32-bit hash of a text.
    fn hashtext(value: sql_types::Text) -> sql_types::Integer;
}

/// Takes the key for the caller's transaction, or says why not. Must run inside the
/// transaction that then does the work and calls [`complete`].
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    client: &ClientId,
    key: &str,
    hash: &str,
) -> QueryResult<Reservation> {
    // The lock and the look-up are pipelined: one round trip. Postgres runs them in order,
    // and the look-up's snapshot is taken when it starts, after the lock is held, so it
    // sees the answer of any request that held the key before. (Both statements are built
    // with the query builder, not raw SQL, so they are prepared once per connection and
    // cannot be reordered by a prepare round trip of one of them.)
    //
    // hashtext is 32 bits: two different keys in flight at the same moment sharing a lock
    // would only make one of them answer 409 and be retried.
    let shared: &AsyncPgConnection = conn;
    let lock = async {
        let mut c = shared;
        diesel::select(pg_try_advisory_xact_lock(
            LOCK_CLASS,
            hashtext(format!("{}\n{key}", client.as_str())),
        ))
        .get_result::<bool>(&mut c)
        .await
    };
    let lookup = async {
        let mut c = shared;
        ik::table
            .find((client.as_str(), key))
            .select((
                ik::request_hash,
                ik::response_status,
                ik::response_body,
                ik::resource_id,
                ik::created_at,
            ))
            .first::<StoredKey>(&mut c)
            .await
            .optional()
    };
    let (locked, stored) = futures::join!(lock, lookup);
    if !locked? {
        return Ok(Reservation::InFlight);
    }
    let stored = stored?;
    let Some((stored_hash, status, body, resource_id, created_at)) = stored else {
        return Ok(Reservation::Fresh);
    };
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
            Ok(Reservation::Fresh)
        }
        _ => Ok(Reservation::InFlight),
    }
}

/// Stores the answer; called inside the transaction that holds the key and created the
/// resource. `false` when another request completed the key meanwhile, which the lock
/// rules out; the caller then rolls back rather than answer twice for one key.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    client: &ClientId,
    key: &str,
    hash: &str,
    status: u16,
    body: &Value,
    resource_id: &str,
) -> QueryResult<bool> {
    diesel::insert_into(ik::table)
        .values((
            ik::client_id.eq(client.as_str()),
            ik::idempotency_key.eq(key),
            ik::request_hash.eq(hash),
            ik::response_status.eq(i32::from(status)),
            ik::response_body.eq(body),
            ik::resource_id.eq(resource_id),
        ))
        // An abandoned reservation of an earlier version is taken over; a completed key
        // never is.
        .on_conflict((ik::client_id, ik::idempotency_key))
        .do_update()
        .set((
            ik::request_hash.eq(hash),
            ik::response_status.eq(i32::from(status)),
            ik::response_body.eq(body),
            ik::resource_id.eq(resource_id),
            ik::created_at.eq(diesel::dsl::now),
        ))
        .filter(ik::response_status.is_null())
        .execute(conn)
        .await
        .map(|n| n == 1)
}
