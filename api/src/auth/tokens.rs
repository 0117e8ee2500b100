//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with the hub's asymmetric key.
//!
//! Verification pins the algorithm to the one of the key named by `kid` (so `alg: none` and
//! HS256-signed-with-the-public-key tokens fail), requires `exp`, `iss`, `aud`, `sub`,
//! `tid`, `typ`, and refuses lifetimes over 15 minutes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::Utc;
use jsonwebtoken::{decode, decode_header, encode, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::KeySet;

/// The longest access-token lifetime this hub accepts (CONTRACT §1).
pub const MAX_LIFETIME_SECS: i64 = 900;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The client id.
    pub sub: String,
    /// The tenant id.
    pub tid: String,
    /// Space-separated scopes.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token header: {0}")]
    Header(String),
    #[error("token type must be at+jwt")]
    Type,
    #[error("token names no key or an unknown key")]
    UnknownKey,
    #[error("token algorithm does not match its key")]
    Algorithm,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token lifetime exceeds 15 minutes")]
    TooLong,
    #[error("signing failed: {0}")]
    Sign(String),
}

pub struct Issued {
    pub token: String,
    pub expires_in: i64,
}

pub fn issue(
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    lifetime_secs: i64,
    client_id: &str,
    tenant_id: &str,
    scopes: &[String],
) -> Result<Issued, TokenError> {
    let at = Utc::now();
    let now = at.timestamp();
    let key = keys.signing_key(at).ok_or(TokenError::UnknownKey)?;
    let claims = Claims {
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        sub: client_id.to_owned(),
        tid: tenant_id.to_owned(),
        scope: scopes.join(" "),
        iat: now,
        exp: now + lifetime_secs,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let mut header = Header::new(key.algorithm);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(key.kid.clone());
    let token =
        encode(&header, &claims, key.encoding()).map_err(|e| TokenError::Sign(e.to_string()))?;
    Ok(Issued {
        token,
        expires_in: lifetime_secs,
    })
}

/// Bearer tokens this process has verified, with their claims, so that the next request
/// with the same token is not verified again. A partner sends one token with every request
/// for up to its lifetime, and checking its Ed25519 signature each time was about a sixth
/// of the API's CPU per filed complaint (docs/PERFORMANCE.md).
///
/// An entry holds only while the key set that verified it is in force: the API reloads the
/// set every `signing_keys.reload_interval_ms`, and each reload empties the cache, so a
/// key taken out of the set stops working here no later than it would without the cache.
/// An entry holds only until its token expires, with the same leeway as a verification.
/// Only verified tokens are kept, so refused ones cannot fill it; at `capacity` the expired
/// ones are dropped, and if that is not enough, all of them.
pub struct VerifiedTokens {
    capacity: usize,
    inner: Mutex<Verified>,
}

#[derive(Default)]
struct Verified {
    keys: Option<Arc<KeySet>>,
    claims: HashMap<String, Claims>,
}

impl VerifiedTokens {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Verified::default()),
        }
    }

    /// [`verify`], answered from the cache when this token was verified with `keys` before.
    pub fn verify(
        &self,
        keys: &Arc<KeySet>,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
        token: &str,
    ) -> Result<Claims, TokenError> {
        self.verify_at(
            keys,
            issuer,
            audience,
            leeway_secs,
            token,
            Utc::now().timestamp(),
        )
    }

    fn verify_at(
        &self,
        keys: &Arc<KeySet>,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
        token: &str,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
        {
            let mut cache = self.lock();
            if cache.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
                if let Some(claims) = cache.claims.get(token) {
                    if claims.exp.saturating_add(leeway) >= now {
                        return Ok(claims.clone());
                    }
                    cache.claims.remove(token);
                    return Err(TokenError::Invalid("ExpiredSignature".into()));
                }
            }
        }
        let claims = verify(keys, issuer, audience, leeway_secs, token)?;
        let mut cache = self.lock();
        if !cache.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
            cache.keys = Some(keys.clone());
            cache.claims.clear();
        }
        if cache.claims.len() >= self.capacity {
            cache
                .claims
                .retain(|_, c| c.exp.saturating_add(leeway) >= now);
            if cache.claims.len() >= self.capacity {
                cache.claims.clear();
            }
        }
        cache.claims.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Verified> {
        // A panic while holding the lock leaves at worst a cache that misses; every entry
        // in it was verified.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().claims.len()
    }
}

pub fn verify(
    keys: &KeySet,
    issuer: &str,
    audience: &str,
    leeway_secs: u64,
    token: &str,
) -> Result<Claims, TokenError> {
    let header = decode_header(token).map_err(|e| TokenError::Header(e.to_string()))?;
    if !header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return Err(TokenError::Type);
    }
    let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let (algorithm, key) = keys
        .verifying_key(kid, Utc::now())
        .ok_or(TokenError::UnknownKey)?;
    if header.alg != algorithm {
        return Err(TokenError::Algorithm);
    }
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let data = decode::<Claims>(token, key, &validation)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let claims = data.claims;
    if claims.exp - claims.iat > MAX_LIFETIME_SECS || claims.iat > Utc::now().timestamp() + 60 {
        return Err(TokenError::TooLong);
    }
    if claims.tid.is_empty() || claims.sub.is_empty() {
        return Err(TokenError::Invalid("empty sub or tid".into()));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::auth::keys::{generate_ed25519_pem, SigningKey};

    fn key_set() -> Arc<KeySet> {
        let key = SigningKey::from_pem(&generate_ed25519_pem().unwrap()).unwrap();
        Arc::new(KeySet::new(key, Vec::new()))
    }

    fn token(keys: &KeySet, lifetime: i64) -> String {
        issue(
            keys,
            "iss",
            "aud",
            lifetime,
            "cli_1",
            "ten_1",
            &["complaints:write".into()],
        )
        .unwrap()
        .token
    }

    #[test]
    fn a_verified_token_is_answered_from_the_cache_until_it_expires() {
        let keys = key_set();
        let t = token(&keys, 600);
        let cache = VerifiedTokens::new(16);
        let now = Utc::now().timestamp();
        let first = cache.verify_at(&keys, "iss", "aud", 30, &t, now).unwrap();
        assert_eq!(cache.len(), 1);
        let again = cache
            .verify_at(&keys, "iss", "aud", 30, &t, now + 1)
            .unwrap();
        assert_eq!(again.jti, first.jti);
        // Within the leeway after expiry it still holds, as a verification would.
        assert!(cache
            .verify_at(&keys, "iss", "aud", 30, &t, first.exp + 30)
            .is_ok());
        // Past it, the cached token is refused and forgotten.
        assert!(matches!(
            cache.verify_at(&keys, "iss", "aud", 30, &t, first.exp + 31),
            Err(TokenError::Invalid(_))
        ));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_new_key_set_empties_the_cache_so_a_removed_key_stops_working() {
        let old = key_set();
        let t = token(&old, 600);
        let cache = VerifiedTokens::new(16);
        cache.verify(&old, "iss", "aud", 30, &t).unwrap();
        let new = key_set();
        assert!(matches!(
            cache.verify(&new, "iss", "aud", 30, &t),
            Err(TokenError::UnknownKey)
        ));
        // The same token under the set that signed it verifies again.
        assert!(cache.verify(&old, "iss", "aud", 30, &t).is_ok());
    }

    #[test]
    fn refused_tokens_are_not_kept_and_a_full_cache_makes_room() {
        let keys = key_set();
        let cache = VerifiedTokens::new(2);
        assert!(cache
            .verify(&keys, "iss", "aud", 30, "not.a.token")
            .is_err());
        assert_eq!(cache.len(), 0);
        for _ in 0..5 {
            cache
                .verify(&keys, "iss", "aud", 30, &token(&keys, 600))
                .unwrap();
            assert!(cache.len() <= 2);
        }
    }
}
