//! `Idempotency-Key` (CONTRACT §2): the key is stored with the complaint, in the same
//! statement, and a retry with the same body gets the first answer again, rendered from the
//! complaint as filed (`redress_shared::db::intake::first_answer`; migration 000019).
//!
//! Filing (`redress_shared::db::intake`, migration 000012) holds the key with a
//! transaction-scoped advisory lock while it works, so a concurrent retry with the same key
//! finds the lock taken and answers 409 at once instead of waiting. The lock is released
//! when that transaction ends however it ends: committed, rolled back, or its connection
//! cut because the API process died. A retry after a crash therefore goes ahead at once,
//! and a request costs one commit, not two (a reservation committed on its own, then the
//! work).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hash of the body's JSON value: key order and whitespace do not matter.
pub fn request_hash(body: &Value) -> String {
    // serde_json's Map is ordered by key, so this serialisation is canonical.
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}
