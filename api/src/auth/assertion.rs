//! `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): a client authenticates at the
//! token endpoint with a short-lived JWT signed by its own private key.
//!
//! The public keys are the ones the client registered ([`parse_keys`] checks them on the
//! way in); a key named or carried by the assertion itself (`jku`, `x5u`, `jwk`, `x5c`) is
//! never used, and such an assertion is refused outright. The algorithm is pinned by the
//! registered key, so `alg: none`, HMAC and an algorithm other than the key's fail.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use redress_shared::{db::client_auth::ClientKeyRow, domain::FieldError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest `kid` and `jti` accepted.
const MAX_ID_LEN: usize = 200;

/// Why an assertion was refused: logged, never sent (the client gets `invalid_client`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    #[error("malformed assertion: {0}")]
    Malformed(String),
    #[error("the assertion names a key outside the registered set ({0})")]
    ForeignKey(&'static str),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("the assertion's algorithm does not match the registered key")]
    AlgorithmMismatch,
    #[error("no registered key matches the assertion")]
    UnknownKey,
    #[error("signature does not verify")]
    Signature,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is not valid yet")]
    NotYetValid,
    #[error("the assertion is not addressed to this token endpoint")]
    Audience,
    #[error("iss and sub must both be the client id")]
    Subject,
    #[error("the assertion lives longer than {0} s")]
    TooLong(u64),
    #[error("the assertion lacks {0}")]
    Missing(&'static str),
    #[error("the assertion was used before")]
    Replayed,
}

/// What a verified assertion leaves to check against the database.
#[derive(Debug)]
pub struct Accepted {
    pub jti: String,
    /// How long the `jti` must be remembered: until no clock could accept the assertion.
    pub remember_until: DateTime<Utc>,
}

pub struct Policy<'a> {
    pub client_id: &'a str,
    /// The token endpoint's URL and the issuer.
    pub audiences: &'a [String],
    pub max_lifetime_secs: u64,
    pub leeway_secs: u64,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    sub: String,
    exp: i64,
    iat: Option<i64>,
    jti: Option<String>,
}

/// The client an assertion claims to come from (`sub`, else `iss`), read without
/// verification, only to find the keys to verify it with.
pub fn claimed_client(assertion: &str) -> Result<String, AssertionError> {
    let payload = assertion
        .split('.')
        .nth(1)
        .ok_or_else(|| AssertionError::Malformed("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AssertionError::Malformed("payload is not base64url".into()))?;
    let claims: Value = serde_json::from_slice(&bytes)
        .map_err(|_| AssertionError::Malformed("payload is not JSON".into()))?;
    claims
        .get("sub")
        .or_else(|| claims.get("iss"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(AssertionError::Missing("sub"))
}

fn accepted_algorithm(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256)
}

fn algorithm_of(name: &str) -> Option<Algorithm> {
    match name {
        "EdDSA" => Some(Algorithm::EdDSA),
        "ES256" => Some(Algorithm::ES256),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

fn decoding_key(jwk: &Value) -> Option<DecodingKey> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    match s("kty")? {
        "OKP" => DecodingKey::from_ed_components(s("x")?).ok(),
        "EC" => DecodingKey::from_ec_components(s("x")?, s("y")?).ok(),
        "RSA" => DecodingKey::from_rsa_components(s("n")?, s("e")?).ok(),
        _ => None,
    }
}

/// Verifies `assertion` against the client's registered `keys` under `policy`. The `jti`
/// is checked for replay by the caller, in the database.
pub fn verify(
    assertion: &str,
    keys: &[ClientKeyRow],
    policy: &Policy<'_>,
) -> Result<Accepted, AssertionError> {
    let header = decode_header(assertion).map_err(|e| match e.kind() {
        // `none` and unknown names fail to parse as an algorithm.
        ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => {
            AssertionError::Algorithm("none or unknown".into())
        }
        _ => AssertionError::Malformed(e.to_string()),
    })?;
    if header.jku.is_some() {
        return Err(AssertionError::ForeignKey("jku"));
    }
    if header.x5u.is_some() {
        return Err(AssertionError::ForeignKey("x5u"));
    }
    if header.jwk.is_some() {
        return Err(AssertionError::ForeignKey("jwk"));
    }
    if header.x5c.is_some() {
        return Err(AssertionError::ForeignKey("x5c"));
    }
    if header.crit.is_some() {
        return Err(AssertionError::Malformed("crit is not supported".into()));
    }
    if !accepted_algorithm(header.alg) {
        return Err(AssertionError::Algorithm(format!("{:?}", header.alg)));
    }
    let candidates: Vec<&ClientKeyRow> = match header.kid.as_deref() {
        Some(kid) => keys.iter().filter(|k| k.kid == kid).collect(),
        // No kid: the registered keys of the assertion's algorithm (usually one).
        None => keys
            .iter()
            .filter(|k| algorithm_of(&k.alg) == Some(header.alg))
            .collect(),
    };
    if candidates.is_empty() {
        return Err(AssertionError::UnknownKey);
    }
    let mut last = AssertionError::UnknownKey;
    for key in candidates {
        let Some(alg) = algorithm_of(&key.alg) else {
            continue;
        };
        if alg != header.alg {
            last = AssertionError::AlgorithmMismatch;
            continue;
        }
        let Some(decoding) = decoding_key(&key.jwk) else {
            tracing::error!(client.id = %key.client_id, key.kid = %key.kid, "a registered client key does not load");
            continue;
        };
        match check(assertion, alg, &decoding, policy) {
            Ok(accepted) => return Ok(accepted),
            Err(AssertionError::Signature) => last = AssertionError::Signature,
            Err(other) => return Err(other),
        }
    }
    Err(last)
}

fn check(
    assertion: &str,
    alg: Algorithm,
    key: &DecodingKey,
    policy: &Policy<'_>,
) -> Result<Accepted, AssertionError> {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[policy.client_id]);
    validation.sub = Some(policy.client_id.to_owned());
    validation.set_audience(policy.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = policy.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let data =
        decode::<AssertionClaims>(assertion, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AssertionError::Signature,
            ErrorKind::ExpiredSignature => AssertionError::Expired,
            ErrorKind::ImmatureSignature => AssertionError::NotYetValid,
            ErrorKind::InvalidAudience => AssertionError::Audience,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => AssertionError::Subject,
            ErrorKind::InvalidAlgorithm => AssertionError::AlgorithmMismatch,
            _ => AssertionError::Malformed(e.to_string()),
        })?;
    let claims = data.claims;
    if claims.sub != policy.client_id {
        return Err(AssertionError::Subject);
    }
    let iat = claims.iat.ok_or(AssertionError::Missing("iat"))?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_ID_LEN)
        .ok_or(AssertionError::Missing("jti (1 to 200 characters)"))?;
    let now = policy.now.timestamp();
    let leeway = policy.leeway_secs as i64;
    if iat > now + leeway {
        return Err(AssertionError::NotYetValid);
    }
    let max = policy.max_lifetime_secs as i64;
    if claims.exp.saturating_sub(iat) > max {
        return Err(AssertionError::TooLong(policy.max_lifetime_secs));
    }
    let remember_until = Utc
        .timestamp_opt(claims.exp.saturating_add(leeway), 0)
        .single()
        .ok_or(AssertionError::Malformed("exp out of range".into()))?;
    Ok(Accepted {
        jti,
        remember_until,
    })
}

// ---------------------------------------------------------------------------------------
// Registering public keys
// ---------------------------------------------------------------------------------------

/// A public key ready to store: `(kid, alg, the public JWK)`.
pub type NewKey = (String, String, Value);

/// Members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A JWK or a JWK Set (`{"keys": [...]}`) of public keys: EdDSA (OKP Ed25519), ES256 (EC
/// P-256) or RS256 (RSA, 2048 to 8192 bits). Errors name the member by JSON pointer.
pub fn parse_keys(body: &Value, max: usize) -> Result<Vec<NewKey>, Vec<FieldError>> {
    let (items, base): (Vec<&Value>, &str) = match body.get("keys") {
        Some(Value::Array(items)) => (items.iter().collect(), "/keys"),
        Some(_) => return Err(vec![FieldError::new("/keys", "must be an array of JWKs")]),
        None if body.is_object() => (vec![body], ""),
        None => return Err(vec![FieldError::new("", "must be a JWK or a JWK Set")]),
    };
    if items.is_empty() {
        return Err(vec![FieldError::new(base, "must hold at least one key")]);
    }
    if items.len() > max {
        return Err(vec![FieldError::new(
            base,
            format!("at most {max} keys per client"),
        )]);
    }
    let mut errors = Vec::new();
    let mut keys: Vec<NewKey> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = if base.is_empty() {
            String::new()
        } else {
            format!("{base}/{i}")
        };
        match parse_key(item, &at) {
            Ok(k) => {
                if keys.iter().any(|(kid, ..)| *kid == k.0) {
                    errors.push(FieldError::new(format!("{at}/kid"), "appears twice"));
                } else {
                    keys.push(k);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

fn b64_member(obj: &Map<String, Value>, at: &str, name: &str) -> Result<Vec<u8>, FieldError> {
    let text = obj
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| FieldError::new(format!("{at}/{name}"), "is required (base64url)"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| FieldError::new(format!("{at}/{name}"), "must be base64url without padding"))
}

fn parse_key(item: &Value, at: &str) -> Result<NewKey, FieldError> {
    let Some(obj) = item.as_object() else {
        return Err(FieldError::new(at, "must be a JWK object"));
    };
    for member in PRIVATE_MEMBERS {
        if obj.contains_key(member) {
            return Err(FieldError::new(
                format!("{at}/{member}"),
                "is private key material: register the public key only (and treat this private key as exposed)",
            ));
        }
    }
    if let Some(u) = obj.get("use") {
        if u != "sig" {
            return Err(FieldError::new(format!("{at}/use"), "must be \"sig\""));
        }
    }
    let kty = obj.get("kty").and_then(Value::as_str).unwrap_or_default();
    let crv = obj.get("crv").and_then(Value::as_str);
    let (alg, public, canonical) = match kty {
        "OKP" => {
            if crv != Some("Ed25519") {
                return Err(FieldError::new(format!("{at}/crv"), "must be Ed25519"));
            }
            let x = b64_member(obj, at, "x")?;
            let bytes: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| FieldError::new(format!("{at}/x"), "must be 32 bytes"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| FieldError::new(format!("{at}/x"), "is not an Ed25519 public key"))?;
            let x = URL_SAFE_NO_PAD.encode(x);
            (
                "EdDSA",
                json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            )
        }
        "EC" => {
            if crv != Some("P-256") {
                return Err(FieldError::new(format!("{at}/crv"), "must be P-256"));
            }
            let x = b64_member(obj, at, "x")?;
            let y = b64_member(obj, at, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(FieldError::new(at, "x and y must be 32 bytes each"));
            }
            let mut sec1 = vec![4u8];
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            p256::PublicKey::from_sec1_bytes(&sec1)
                .map_err(|_| FieldError::new(at, "is not a point on P-256"))?;
            let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
            (
                "ES256",
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            )
        }
        "RSA" => {
            let n = b64_member(obj, at, "n")?;
            let e = b64_member(obj, at, "e")?;
            let n_trimmed: &[u8] = {
                let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
                &n[first..]
            };
            let bits = n_trimmed.len() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err(FieldError::new(
                    format!("{at}/n"),
                    "must be an RSA modulus of 2048 to 8192 bits",
                ));
            }
            let e_trimmed: Vec<u8> = e.iter().copied().skip_while(|b| *b == 0).collect();
            if e_trimmed.is_empty()
                || e_trimmed.len() > 4
                || e_trimmed.last().is_some_and(|b| b % 2 == 0)
            {
                return Err(FieldError::new(
                    format!("{at}/e"),
                    "is not a usable RSA exponent",
                ));
            }
            let (n, e) = (
                URL_SAFE_NO_PAD.encode(n_trimmed),
                URL_SAFE_NO_PAD.encode(&e_trimmed),
            );
            (
                "RS256",
                json!({"kty": "RSA", "n": n, "e": e}),
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            )
        }
        _ => {
            return Err(FieldError::new(
                format!("{at}/kty"),
                "must be OKP (Ed25519), EC (P-256) or RSA",
            ))
        }
    };
    if let Some(given) = obj.get("alg") {
        if given != alg {
            return Err(FieldError::new(
                format!("{at}/alg"),
                format!("must be {alg} for this key type (EdDSA, ES256 and RS256 are accepted)"),
            ));
        }
    }
    let kid = match obj.get("kid") {
        None => URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
        Some(Value::String(k))
            if !k.is_empty()
                && k.len() <= MAX_ID_LEN
                && k.chars().all(|c| c.is_ascii_graphic()) =>
        {
            k.clone()
        }
        Some(_) => {
            return Err(FieldError::new(
                format!("{at}/kid"),
                "must be 1 to 200 printable ASCII characters",
            ))
        }
    };
    let mut public = public;
    public["kid"] = json!(kid);
    public["alg"] = json!(alg);
    public["use"] = json!("sig");
    Ok((kid, alg.to_owned(), public))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_private_jwk_is_refused_and_a_public_one_gets_its_thumbprint_as_kid() {
        let private = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"});
        let errs = parse_keys(&private, 10).unwrap_err();
        assert_eq!(errs[0].pointer, "/d");
        let public = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
        let keys = parse_keys(&public, 10).unwrap();
        // RFC 8037 appendix A.3's thumbprint of this key.
        assert_eq!(keys[0].0, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert_eq!(keys[0].1, "EdDSA");
    }

    #[test]
    fn a_key_of_the_wrong_curve_or_algorithm_is_refused_naming_the_member() {
        let errs = parse_keys(
            &json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
            10,
        )
        .unwrap_err();
        assert_eq!(errs[0].pointer, "/crv");
        let errs = parse_keys(
            &json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "alg": "HS256"}]}),
            10,
        )
        .unwrap_err();
        assert_eq!(errs[0].pointer, "/keys/0/alg");
        let errs = parse_keys(&json!({"kty": "oct", "k": "c2VjcmV0"}), 10).unwrap_err();
        assert_eq!(errs[0].pointer, "/k");
    }
}
