//! Access tokens: RFC 9068 JWTs (`typ: at+jwt`) signed with the hub's asymmetric key.
//!
//! Verification pins the algorithm to the one of the key named by `kid` (so `alg: none` and
//! HS256-signed-with-the-public-key tokens fail), requires `exp`, `iss`, `aud`, `sub`,
//! `tid`, `typ`, and refuses lifetimes over 15 minutes.

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
