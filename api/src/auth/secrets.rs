//! Client secrets: generated once, shown once, stored as argon2id hashes. Hashing is
//! deliberately slow and memory-hard (19 MiB per hash with the default parameters), so it
//! runs on the blocking pool, never on the async runtime, and at most [`AT_ONCE`] hashes run
//! at a time, each in a memory buffer kept for the next one.
//!
//! Why the bound: every blocking thread that ran a hash used to allocate its own 19 MiB,
//! and the allocator kept them. Sixteen token requests took the API from 40 MB to 330 MB
//! of resident memory for good (docs/PERFORMANCE.md), and a burst of bad client
//! credentials could take as much memory as it liked. Two buffers now bound that at about
//! 40 MB, and requests beyond two wait their turn (tokens are fetched once per 10 minutes
//! per client, so a queue here is rare and short).

use std::sync::{Mutex, OnceLock};

use argon2::{
    password_hash::{Output, PasswordHash, PasswordHasher, SaltString},
    Algorithm, Argon2, Block, Params, Version,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use tokio::sync::Semaphore;

/// Hashes computed at once by one process; two keeps both cores of a small machine useful
/// for everything else.
const AT_ONCE: usize = 2;

/// Process-wide on purpose: this is a limit on the process's memory, like a thread pool,
/// not configuration, and every caller (the token endpoint, client creation, the admin
/// command) must share it for the bound to hold.
fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| Semaphore::new(AT_ONCE))
}

/// Memory buffers of finished hashes, reused by the next (at most [`AT_ONCE`] are kept).
fn buffers() -> &'static Mutex<Vec<Vec<Block>>> {
    static BUFFERS: OnceLock<Mutex<Vec<Vec<Block>>>> = OnceLock::new();
    BUFFERS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Runs `f` on the blocking pool with a reusable argon2 memory buffer, once a slot is free.
async fn with_memory<R: Send + 'static>(
    f: impl FnOnce(&mut Vec<Block>) -> R + Send + 'static,
) -> anyhow::Result<R> {
    let _slot = gate().acquire().await?;
    tokio::task::spawn_blocking(move || {
        let take = || buffers().lock().ok().and_then(|mut b| b.pop());
        let mut blocks = take().unwrap_or_default();
        let result = f(&mut blocks);
        if let Ok(mut b) = buffers().lock() {
            if b.len() < AT_ONCE {
                b.push(blocks);
            }
        }
        result
    })
    .await
    .map_err(anyhow::Error::from)
}

/// A new client secret: 32 random bytes, base64url, with a prefix that secret scanners and
/// people can recognise.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("rcs_{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub async fn hash(secret: String) -> anyhow::Result<String> {
    with_memory(move |_| {
        // Rare (client creation): the crate's own allocation is fine here; the gate still
        // bounds how many run at once.
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
}

/// Constant-time verification against a stored PHC string.
pub async fn verify(secret: String, stored: String) -> bool {
    with_memory(move |blocks| matches(&secret, &stored, blocks).unwrap_or(false))
        .await
        .unwrap_or(false)
}

/// What `PasswordVerifier::verify_password` does, with the caller's memory.
fn matches(
    secret: &str,
    stored: &str,
    blocks: &mut Vec<Block>,
) -> Result<bool, argon2::password_hash::Error> {
    let parsed = PasswordHash::new(stored)?;
    let params = Params::try_from(&parsed)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    if blocks.len() < params.block_count() {
        blocks.resize(params.block_count(), Block::default());
    }
    let argon = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        Ok(argon.hash_password_into_with_memory(secret.as_bytes(), salt, out, &mut blocks[..])?)
    })?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_secret_verifies_against_its_hash_and_nothing_else_does() {
        let secret = generate();
        let stored = hash(secret.clone()).await.unwrap();
        assert!(verify(secret.clone(), stored.clone()).await);
        assert!(!verify(generate(), stored.clone()).await);
        assert!(!verify(secret, "not a phc string".into()).await);
        // The crate's own verifier agrees with ours.
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&stored).unwrap();
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
    }
}
