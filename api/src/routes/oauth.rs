//! `POST /oauth/token` (client credentials, RFC 6749 §4.4) and the public keys.

use actix_web::{get, http::header, post, web, HttpRequest, HttpResponse};
use base64::{engine::general_purpose::STANDARD, Engine};
use redress_shared::{db::tenants, ids::ClientId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    auth::{secrets, tokens, SCOPES},
    state::AppState,
};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Space-separated subset of the client's scopes; all of them when omitted.
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

/// RFC 6749 §5.2 error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthError {
    pub error: &'static str,
    pub error_description: String,
}

fn oauth_error(status: u16, error: &'static str, description: &str, basic: bool) -> HttpResponse {
    let mut r = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    );
    r.insert_header((header::CACHE_CONTROL, "no-store"));
    if status == 401 {
        let challenge = if basic {
            "Basic realm=\"redress\""
        } else {
            "Basic realm=\"redress\", Bearer"
        };
        r.insert_header((header::WWW_AUTHENTICATE, challenge));
    }
    r.json(OAuthError {
        error,
        error_description: description.to_owned(),
    })
}

/// Credentials from `Authorization: Basic` (preferred by RFC 6749) or the form.
fn credentials(
    req: &HttpRequest,
    form: &TokenRequest,
) -> Result<(String, String, bool), &'static str> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let raw = value
            .to_str()
            .map_err(|_| "malformed Authorization header")?;
        let encoded = raw
            .strip_prefix("Basic ")
            .or_else(|| raw.strip_prefix("basic "))
            .ok_or("only Basic client authentication is accepted here")?;
        let decoded = STANDARD
            .decode(encoded.trim())
            .map_err(|_| "malformed Basic credentials")?;
        let text = String::from_utf8(decoded).map_err(|_| "malformed Basic credentials")?;
        let (id, secret) = text.split_once(':').ok_or("malformed Basic credentials")?;
        if form.client_secret.is_some() {
            return Err("use one client authentication method, not two");
        }
        return Ok((id.to_owned(), secret.to_owned(), true));
    }
    match (&form.client_id, &form.client_secret) {
        (Some(id), Some(secret)) => Ok((id.clone(), secret.clone(), false)),
        _ => Err("client authentication is required (HTTP Basic or client_id and client_secret)"),
    }
}

/// Exchanges client credentials for an access token.
#[utoipa::path(
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = OAuthError, description = "invalid_request, unsupported_grant_type or invalid_scope"),
        (status = 401, body = OAuthError, description = "invalid_client"),
        (status = 429, body = OAuthError, description = "Too many attempts for this client id (`limits.token_attempts_per_minute`); see `Retry-After`"),
    )
)]
#[post("/oauth/token")]
pub async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let form: TokenRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return oauth_error(
                400,
                "invalid_request",
                &format!("the body must be form-encoded: {e}"),
                false,
            )
        }
    };
    let (client_id, secret, basic) = match credentials(&req, &form) {
        Ok(c) => c,
        Err(why) => {
            return oauth_error(
                401,
                "invalid_client",
                why,
                req.headers().contains_key(header::AUTHORIZATION),
            )
        }
    };
    if let Err(retry_after) = state.limits.check_token_attempt(&client_id) {
        tracing::info!(retry_after_secs = retry_after, "token attempts limited");
        let mut r = oauth_error(
            429,
            "temporarily_unavailable",
            &format!("too many attempts for this client; retry in {retry_after} s"),
            basic,
        );
        if let Ok(v) = header::HeaderValue::from_str(&retry_after.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "only client_credentials is supported",
                basic,
            )
        }
        None => return oauth_error(400, "invalid_request", "grant_type is required", basic),
    }

    let client = match ClientId::parse(&client_id) {
        Ok(id) => match state.pool.get().await {
            Ok(mut conn) => match tenants::find_client(&mut conn, &id).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "client lookup failed");
                    return oauth_error(503, "temporarily_unavailable", "try again shortly", basic);
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no database connection for the token endpoint");
                return oauth_error(503, "temporarily_unavailable", "try again shortly", basic);
            }
        },
        Err(_) => None,
    };
    let stored = client
        .as_ref()
        .map(|c| c.secret_hash.clone())
        .unwrap_or_else(|| state.dummy_secret_hash.clone());
    let secret_ok = secrets::verify(secret, stored).await;
    let Some(client) = client.filter(|_| secret_ok) else {
        return oauth_error(
            401,
            "invalid_client",
            "unknown client or wrong secret",
            basic,
        );
    };

    let granted: Vec<String> = match form
        .scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => client.scopes.clone(),
        Some(requested) => {
            let mut granted = Vec::new();
            for s in requested.split_whitespace() {
                if !SCOPES.contains(&s) || !client.scopes.iter().any(|c| c == s) {
                    return oauth_error(
                        400,
                        "invalid_scope",
                        &format!("scope `{s}` is not granted to this client"),
                        basic,
                    );
                }
                if !granted.iter().any(|g| g == s) {
                    granted.push(s.to_owned());
                }
            }
            granted
        }
    };
    let t = &state.settings.token;
    match tokens::issue(
        &state.keys,
        &t.issuer,
        &t.audience,
        t.lifetime_secs as i64,
        &client.id,
        &client.tenant_id,
        &granted,
    ) {
        Ok(issued) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(TokenResponse {
                access_token: issued.token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
                scope: granted.join(" "),
            }),
        Err(e) => {
            tracing::error!(error = %e, "token signing failed");
            oauth_error(500, "server_error", "the token could not be issued", basic)
        }
    }
}

/// The public keys that verify access tokens (JWK Set).
#[utoipa::path(tag = "auth", responses((status = 200, description = "JWK Set", body = Object)))]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!(state.keys.jwks()))
}
