//! `POST /oauth/token` (client credentials, RFC 6749 §4.4) and the public keys.

use actix_web::{get, http::header, post, web, HttpRequest, HttpResponse};
use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::Utc;
use diesel_async::AsyncConnection;
use redress_shared::{
    db::{
        client_auth::{self, ClientSecrets},
        tenant::set_tenant,
        DbError,
    },
    ids::{ClientId, TenantId},
};
use serde::{Deserialize, Serialize};

use crate::{
    auth::{assertion, grantable, secrets, tokens},
    state::AppState,
};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` for `private_key_jwt`.
    pub client_assertion_type: Option<String>,
    /// The signed client assertion (RFC 7523 §2.2).
    pub client_assertion: Option<String>,
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

/// How the client authenticates.
enum Credentials {
    /// `client_secret_basic` (`basic: true`) or `client_secret_post`.
    Secret {
        client_id: String,
        secret: String,
        basic: bool,
    },
    /// `private_key_jwt`; the client id is `client_id` if given, else the assertion's `sub`.
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
}

/// Credentials from `Authorization: Basic` (preferred by RFC 6749), the form's
/// `client_id`/`client_secret`, or a `client_assertion` (RFC 7523). Exactly one method.
fn credentials(req: &HttpRequest, form: &TokenRequest) -> Result<Credentials, &'static str> {
    if form.client_assertion.is_some() || form.client_assertion_type.is_some() {
        if req.headers().contains_key(header::AUTHORIZATION) || form.client_secret.is_some() {
            return Err("use one client authentication method, not two");
        }
        if form.client_assertion_type.as_deref() != Some(assertion::JWT_BEARER) {
            return Err("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        }
        let Some(jwt) = form.client_assertion.as_deref().filter(|a| !a.is_empty()) else {
            return Err("client_assertion is required with client_assertion_type");
        };
        return Ok(Credentials::Assertion {
            client_id: form.client_id.clone(),
            assertion: jwt.to_owned(),
        });
    }
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
        return Ok(Credentials::Secret {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
            basic: true,
        });
    }
    match (&form.client_id, &form.client_secret) {
        (Some(id), Some(secret)) => Ok(Credentials::Secret {
            client_id: id.clone(),
            secret: secret.clone(),
            basic: false,
        }),
        _ => Err("client authentication is required (HTTP Basic, client_id and client_secret, or a client_assertion)"),
    }
}

/// Why the client was not authenticated.
enum Refusal {
    /// 401 `invalid_client`.
    Client(&'static str),
    /// 503: the database could not be asked.
    Unavailable,
}

/// The client whose secret this is. The previous secret counts during its overlap.
async fn by_secret(
    state: &AppState,
    client_id: &str,
    secret: String,
) -> Result<ClientSecrets, Refusal> {
    let found = match ClientId::parse(client_id) {
        Ok(id) => lookup(state, &id, false).await?,
        Err(_) => None,
    };
    let Some(found) = found else {
        // Same cost as a wrong secret, so ids cannot be probed by timing.
        secrets::verify(secret, state.dummy_secret_hash.clone()).await;
        return Err(Refusal::Client("unknown client or wrong secret"));
    };
    let client = found.client;
    if secrets::verify(secret.clone(), client.secret_hash.clone()).await {
        return Ok(client);
    }
    if let Some(previous) = client.previous_hash_at(Utc::now()) {
        if secrets::verify(secret, previous.to_owned()).await {
            return Ok(client);
        }
    }
    Err(Refusal::Client("unknown client or wrong secret"))
}

/// The client that signed this assertion with one of its registered keys.
async fn by_assertion(
    state: &AppState,
    client_id: Option<String>,
    jwt: &str,
) -> Result<ClientSecrets, Refusal> {
    const REFUSED: &str = "the client assertion is not valid";
    let claimed = match client_id {
        Some(id) => id,
        None => assertion::claimed_client(jwt).map_err(|e| {
            tracing::info!(error = %e, "client assertion refused");
            Refusal::Client(REFUSED)
        })?,
    };
    let Ok(id) = ClientId::parse(&claimed) else {
        return Err(Refusal::Client(REFUSED));
    };
    let Some(found) = lookup(state, &id, true).await? else {
        tracing::info!(client.id = %claimed, "client assertion for an unknown client");
        return Err(Refusal::Client(REFUSED));
    };
    let settings = &state.settings;
    let issuer = settings.token.issuer.trim_end_matches('/');
    let audiences = [
        format!("{issuer}/oauth/token"),
        settings.token.issuer.clone(),
    ];
    let now = Utc::now();
    let accepted = assertion::verify(
        jwt,
        &found.keys,
        &assertion::Policy {
            client_id: id.as_str(),
            audiences: &audiences,
            max_lifetime_secs: settings.client_auth.assertion_max_lifetime_secs,
            leeway_secs: settings.token.leeway_secs,
            now,
        },
    )
    .map_err(|e| {
        tracing::info!(client.id = %id, error = %e, "client assertion refused");
        Refusal::Client(REFUSED)
    })?;
    let tenant = TenantId::parse(&found.client.tenant_id).map_err(|_| Refusal::Unavailable)?;
    let fresh = async {
        let mut conn = state.pool.get().await.map_err(DbError::from)?;
        conn.transaction(async |conn| {
            set_tenant(conn, &tenant).await?;
            client_auth::use_jti(
                conn,
                &tenant,
                &id,
                &accepted.jti,
                accepted.remember_until,
                now,
            )
            .await
        })
        .await
        .map_err(DbError::from)
    }
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "recording the assertion's jti failed");
        Refusal::Unavailable
    })?;
    if !fresh {
        tracing::info!(client.id = %id, error = %assertion::AssertionError::Replayed, "client assertion refused");
        return Err(Refusal::Client(REFUSED));
    }
    Ok(found.client)
}

/// The one lookup of the token endpoint ([`client_auth::find_for_authentication`]).
async fn lookup(
    state: &AppState,
    id: &ClientId,
    with_keys: bool,
) -> Result<Option<client_auth::ClientCredentials>, Refusal> {
    let mut conn = state.pool.get().await.map_err(|e| {
        tracing::warn!(error = %e, "no database connection for the token endpoint");
        Refusal::Unavailable
    })?;
    client_auth::find_for_authentication(&mut conn, id, with_keys)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "client lookup failed");
            Refusal::Unavailable
        })
}

/// Exchanges client credentials for an access token. The client authenticates with its
/// secret (HTTP Basic or form fields) or with `private_key_jwt` (RFC 7523:
/// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a
/// `client_assertion` signed by a key registered with `POST /v1/clients/{id}/keys`; `iss` and
/// `sub` the client id, `aud` the token endpoint URL or the issuer, `exp`, `iat`, a `jti`
/// never used before, a lifetime of at most 5 minutes by default).
#[utoipa::path(
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = OAuthError, description = "invalid_request, unsupported_grant_type or invalid_scope"),
        (status = 401, body = OAuthError, description = "invalid_client"),
        (status = 503, body = OAuthError, description = "temporarily_unavailable"),
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
    let credentials = match credentials(&req, &form) {
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
    let basic = matches!(credentials, Credentials::Secret { basic: true, .. });
    // Attempts are counted per claimed client id to slow down secret guessing. An assertion
    // has nothing to guess (it must be signed by a registered key), so it is not counted.
    if let Credentials::Secret { client_id, .. } = &credentials {
        if let Err(retry_after) = state.limits.check_token_attempt(client_id) {
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
    let keys = state.keys.get();
    if !keys.from_database {
        // Signing with the configured key before the shared set is known could sign with a
        // key the other processes do not publish.
        return oauth_error(503, "temporarily_unavailable", "try again shortly", basic);
    }

    let authenticated = match credentials {
        Credentials::Secret {
            client_id, secret, ..
        } => by_secret(&state, &client_id, secret).await,
        Credentials::Assertion {
            client_id,
            assertion,
        } => by_assertion(&state, client_id, &assertion).await,
    };
    let client = match authenticated {
        Ok(c) => c,
        Err(Refusal::Client(why)) => return oauth_error(401, "invalid_client", why, basic),
        Err(Refusal::Unavailable) => {
            return oauth_error(503, "temporarily_unavailable", "try again shortly", basic)
        }
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
                if !grantable(s) || !client.scopes.iter().any(|c| c == s) {
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
        &keys,
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
    // A key is published a lead time before it signs, longer than this cache lives
    // (checked by the configuration), so a cached copy always holds the signing key.
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!(
                "public, max-age={}",
                state.settings.signing_keys.jwks_max_age_secs
            ),
        ))
        .json(state.keys.get().jwks(Utc::now()))
}
