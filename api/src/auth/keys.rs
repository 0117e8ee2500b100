//! Access-token signing keys: loaded from a PKCS#8 PEM (Ed25519 or P-256), named by their
//! RFC 7638 thumbprint (`kid`), published as a JWK Set, and rotated on a schedule shared
//! by every API process through Postgres (`signing_keys`; see [`KeySet`] and
//! `crate::auth::rotation`).

use std::{
    path::Path,
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Duration, Utc};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read signing key {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("signing key is neither an Ed25519 nor a P-256 PKCS#8 PEM private key")]
    Unsupported,
    #[error("signing key: {0}")]
    Invalid(String),
    #[error(
        "no signing key configured: set REDRESS_SIGNING_KEY_PATH (make one with `redress-api admin keygen --out PATH`), \
         or REDRESS_DEV_SIGNING_KEY=generate for a throwaway development key"
    )]
    Missing,
}

/// A key that can sign tokens, with its public half as a JWK.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    /// The private key as given; kept to store it in the database's key set.
    pem: String,
}

impl SigningKey {
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
            let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
            let encoding = EncodingKey::from_ed_pem(pem.as_bytes())
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
            let decoding = DecodingKey::from_ed_components(&x)
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
            return Ok(Self {
                kid,
                algorithm: Algorithm::EdDSA,
                encoding,
                decoding,
                jwk,
                pem: pem.to_owned(),
            });
        }
        if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let point = key.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(KeyError::Unsupported);
            };
            let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
            let kid = thumbprint(&format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
            ));
            let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
            let decoding = DecodingKey::from_ec_components(&x, &y)
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
            return Ok(Self {
                kid,
                algorithm: Algorithm::ES256,
                encoding,
                decoding,
                jwk,
                pem: pem.to_owned(),
            });
        }
        Err(KeyError::Unsupported)
    }

    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        Self::from_pem(&pem)
    }

    pub fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The public half, as published in the JWKS.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }
}

/// RFC 7638: base64url(SHA-256(the required members in lexicographic order, no spaces)).
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A new Ed25519 private key as PKCS#8 PEM.
pub fn generate_ed25519_pem() -> Result<String, KeyError> {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::Invalid(e.to_string()))
}

/// A new P-256 private key as PKCS#8 PEM.
pub fn generate_p256_pem() -> Result<String, KeyError> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    secret
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::Invalid(e.to_string()))
}

/// Where a key is in its life at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing (and published).
    Current,
    /// No longer signing; published until the tokens it signed have expired.
    Retired,
    /// Gone from the JWKS for good.
    Expired,
}

/// A key whose private half was erased: its schedule, for the record.
struct Erased {
    kid: String,
    algorithm: String,
    activates_at: DateTime<Utc>,
    signs_until: Option<DateTime<Utc>>,
}

struct Scheduled {
    key: SigningKey,
    activates_at: DateTime<Utc>,
    /// When the next key takes over; `None` while this is the newest key.
    signs_until: Option<DateTime<Utc>>,
}

/// One key's schedule, as `admin signing-key list` and the hub API show it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeySchedule {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    /// When it starts (or started) signing.
    pub activates_at: DateTime<Utc>,
    /// When the next key takes over; null while this is the newest key.
    pub signs_until: Option<DateTime<Utc>>,
    /// When it leaves the JWKS: the last token it signed has expired by then.
    pub published_until: Option<DateTime<Utc>>,
}

/// The keys this API signs with and accepts, on a schedule: every key is published from the
/// moment it is known, the newest key whose activation has come signs, and a key that
/// stopped signing stays published for `retention` (a token lifetime plus leeway), so the
/// tokens it signed verify until they expire. Which key signs is decided at each use from
/// the clock, so every process holding the same set switches at the same instant whether or
/// not it has reloaded since.
pub struct KeySet {
    /// Oldest activation first.
    keys: Vec<Scheduled>,
    /// Keys whose private half was erased, only for [`KeySet::schedule`].
    erased: Vec<Erased>,
    retention: Duration,
    /// Read from the database (the shared schedule), rather than the configured key alone.
    pub from_database: bool,
}

impl KeySet {
    /// A fixed set: `current` signs, `retired` keys only verify. Used before the database's
    /// schedule is loaded, and by tests; `current` is the bootstrap key
    /// [`KeySet::bootstrap_key`] puts into an empty database.
    pub fn new(current: SigningKey, retired: Vec<SigningKey>) -> Self {
        let far_past = DateTime::<Utc>::MIN_UTC;
        let mut keys: Vec<Scheduled> = retired
            .into_iter()
            .map(|key| Scheduled {
                key,
                activates_at: far_past,
                signs_until: Some(far_past),
            })
            .collect();
        keys.push(Scheduled {
            key: current,
            activates_at: far_past,
            signs_until: None,
        });
        Self {
            keys,
            erased: Vec::new(),
            // Retired keys of a fixed set stay published.
            retention: Duration::MAX,
            from_database: false,
        }
    }

    /// The schedule of `rows` (any order): `(kid, algorithm, private PEM, activates_at)`.
    /// Rows whose private half was erased take part in the ordering but are not loaded;
    /// a PEM that does not load is left out (and logged).
    pub fn from_rows(
        rows: Vec<(String, String, Option<String>, DateTime<Utc>)>,
        retention: Duration,
    ) -> Self {
        let mut rows = rows;
        rows.sort_by(|a, b| (a.3, &a.0).cmp(&(b.3, &b.0)));
        let next: Vec<Option<DateTime<Utc>>> = (0..rows.len())
            .map(|i| rows.get(i + 1).map(|r| r.3))
            .collect();
        let mut keys = Vec::new();
        let mut erased = Vec::new();
        for ((kid, algorithm, pem, activates_at), signs_until) in rows.into_iter().zip(next) {
            let Some(pem) = pem else {
                erased.push(Erased {
                    kid,
                    algorithm,
                    activates_at,
                    signs_until,
                });
                continue;
            };
            match SigningKey::from_pem(&pem) {
                Ok(key) => keys.push(Scheduled {
                    key,
                    activates_at,
                    signs_until,
                }),
                Err(e) => {
                    tracing::error!(error = %e, key.kid = %kid, "a stored signing key does not load; it is skipped")
                }
            }
        }
        Self {
            keys,
            erased,
            retention,
            from_database: true,
        }
    }

    /// The key a set made by [`KeySet::new`] signs with: what an empty database starts
    /// with.
    pub fn bootstrap_key(&self) -> Option<&SigningKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.signs_until.is_none())
            .map(|k| &k.key)
    }

    fn published_until(&self, k: &Scheduled) -> Option<DateTime<Utc>> {
        k.signs_until.map(|t| {
            t.checked_add_signed(self.retention)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
    }

    fn state(&self, k: &Scheduled, now: DateTime<Utc>) -> KeyState {
        if k.activates_at > now {
            KeyState::Next
        } else if k.signs_until.is_none_or(|t| t > now) {
            KeyState::Current
        } else if self.published_until(k).is_some_and(|t| t > now) {
            KeyState::Retired
        } else {
            KeyState::Expired
        }
    }

    /// The key that signs at `now`: the newest one whose activation has come. Should every
    /// key still be in its lead time (a clock behind the others), the oldest: it is
    /// published too.
    pub fn signing_key(&self, now: DateTime<Utc>) -> Option<&SigningKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.activates_at <= now)
            .or_else(|| self.keys.first())
            .map(|k| &k.key)
    }

    /// The key named `kid`, if it is published at `now`.
    pub fn verifying_key(
        &self,
        kid: &str,
        now: DateTime<Utc>,
    ) -> Option<(Algorithm, &DecodingKey)> {
        self.keys
            .iter()
            .find(|k| k.key.kid == kid && self.state(k, now) != KeyState::Expired)
            .map(|k| (k.key.algorithm, &k.key.decoding))
    }

    /// The JWK Set at `now`: the next, current and retired keys.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        let keys: Vec<&Value> = self
            .keys
            .iter()
            .filter(|k| self.state(k, now) != KeyState::Expired)
            .map(|k| &k.key.jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// Every key, erased ones included, oldest activation first.
    pub fn schedule(&self, now: DateTime<Utc>) -> Vec<KeySchedule> {
        let mut all: Vec<KeySchedule> = self
            .erased
            .iter()
            .map(|e| KeySchedule {
                kid: e.kid.clone(),
                algorithm: e.algorithm.clone(),
                state: KeyState::Expired,
                activates_at: e.activates_at,
                signs_until: e.signs_until,
                published_until: e
                    .signs_until
                    .and_then(|t| t.checked_add_signed(self.retention)),
            })
            .chain(self.keys.iter().map(|k| KeySchedule {
                kid: k.key.kid.clone(),
                algorithm: algorithm_name(k.key.algorithm).to_owned(),
                state: self.state(k, now),
                activates_at: k.activates_at,
                signs_until: k.signs_until,
                published_until: self.published_until(k),
            }))
            .collect();
        all.sort_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)));
        all
    }
}

pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        _ => "other",
    }
}

/// The key set a process uses now, replaced whole when it reloads.
pub struct KeyRing {
    inner: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    pub fn new(set: KeySet) -> Self {
        Self {
            inner: RwLock::new(Arc::new(set)),
        }
    }

    pub fn get(&self) -> Arc<KeySet> {
        // A poisoned lock only means a writer panicked between two whole-Arc swaps; the Arc
        // inside is still a complete set.
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn replace(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.inner.write() {
            Ok(mut g) => *g = set,
            Err(p) => *p.into_inner() = set,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_generated_key_loads_and_its_kid_is_its_thumbprint() {
        let pem = generate_ed25519_pem().unwrap();
        let key = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(key.algorithm, Algorithm::EdDSA);
        assert_eq!(key.kid.len(), 43); // 32 bytes, base64url without padding
        assert_eq!(SigningKey::from_pem(&pem).unwrap().kid, key.kid);
    }

    #[test]
    fn a_p256_key_loads_as_es256() {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(key.algorithm, Algorithm::ES256);
    }

    #[test]
    fn a_rotation_publishes_the_next_key_first_and_keeps_the_old_one_for_one_retention() {
        let t0 = Utc::now();
        let old = generate_ed25519_pem().unwrap();
        let new = generate_p256_pem().unwrap();
        let old_kid = SigningKey::from_pem(&old).unwrap().kid;
        let new_kid = SigningKey::from_pem(&new).unwrap().kid;
        let at = t0 + Duration::seconds(60);
        let set = KeySet::from_rows(
            vec![
                ("b".into(), "ES256".into(), Some(new), at),
                (
                    "a".into(),
                    "EdDSA".into(),
                    Some(old),
                    t0 - Duration::hours(1),
                ),
                ("z".into(), "EdDSA".into(), None, t0 - Duration::hours(2)),
            ],
            Duration::seconds(630),
        );
        let kids = |now| -> Vec<String> {
            set.jwks(now)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        // Before the switch: both published, the old one signs.
        assert_eq!(kids(t0), vec![old_kid.clone(), new_kid.clone()]);
        assert_eq!(set.signing_key(t0).unwrap().kid, old_kid);
        // After: the new one signs, the old one still verifies.
        let after = at + Duration::seconds(1);
        assert_eq!(set.signing_key(after).unwrap().kid, new_kid);
        assert!(set.verifying_key(&old_kid, after).is_some());
        // One retention later the old key is gone.
        let gone = at + Duration::seconds(631);
        assert_eq!(kids(gone), vec![new_kid.clone()]);
        assert!(set.verifying_key(&old_kid, gone).is_none());
        let states: Vec<KeyState> = set.schedule(after).iter().map(|k| k.state).collect();
        assert_eq!(
            states,
            vec![KeyState::Expired, KeyState::Retired, KeyState::Current]
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
