//! Access-token signing keys: loaded from a PKCS#8 PEM (Ed25519 or P-256), named by their
//! RFC 7638 thumbprint (`kid`), and published as a JWK Set.

use std::{collections::HashMap, path::Path};

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

/// The keys this API signs with and accepts. One key signs; every key in the set verifies,
/// so a rotated-out key keeps verifying the tokens it signed until they expire.
pub struct KeySet {
    current: SigningKey,
    verifying: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Value,
}

impl KeySet {
    pub fn new(current: SigningKey, retired: Vec<SigningKey>) -> Self {
        let mut verifying = HashMap::new();
        let mut keys = Vec::new();
        for k in std::iter::once(&current).chain(retired.iter()) {
            verifying.insert(k.kid.clone(), (k.algorithm, k.decoding.clone()));
            keys.push(k.jwk.clone());
        }
        Self {
            current,
            verifying,
            jwks: json!({ "keys": keys }),
        }
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&(Algorithm, DecodingKey)> {
        self.verifying.get(kid)
    }

    pub fn jwks(&self) -> &Value {
        &self.jwks
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
    fn garbage_is_refused() {
        assert!(SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
