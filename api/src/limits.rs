//! Abuse limits: a rate limit per authenticated client, a limit on `/oauth/token` attempts
//! per client id, and the size, depth and string-length limits of request bodies. Every
//! number comes from [`Settings`]; each limit is enforced in one place.
//!
//! - The per-client rate limit is checked by the [`crate::auth::Caller`] extractor, right
//!   after the token is verified, so every authenticated route has it and none can forget it.
//! - The body limits are one middleware ([`check_body`]) in front of every route: the body
//!   is read once (refused with 413 above `http.max_body_bytes`), scanned for nesting depth
//!   and string length without being parsed into values (422 naming the JSON pointer), and
//!   handed on unchanged.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::Next,
    web, HttpMessage,
};
use futures::StreamExt;
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use redress_shared::{
    config::Settings,
    domain::{validation::escape_token, FieldError},
};
use tokio_util::sync::CancellationToken;

use crate::{
    error::{ApiError, ParamError},
    state::AppState,
};

/// The keyed limiters of one API process. Each client is limited on its own: one busy or
/// misbehaving partner never slows another. The limits are per process; with N API
/// processes behind a balancer a client gets up to N times the rate (documented in README).
pub struct Limiters {
    requests: Option<DefaultKeyedRateLimiter<String>>,
    token_attempts: Option<DefaultKeyedRateLimiter<String>>,
}

/// Whole seconds to wait, at least 1 (RFC 9110 `Retry-After` is an integer; 0 would invite
/// an immediate retry that is refused again).
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl Limiters {
    pub fn new(settings: &Settings) -> Self {
        let l = &settings.limits;
        let requests = NonZeroU32::new(settings.rate_limit_per_client).map(|rate| {
            let burst = NonZeroU32::new(l.rate_limit_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let token_attempts = NonZeroU32::new(l.token_attempts_per_minute).map(|rate| {
            let burst = NonZeroU32::new(l.token_attempts_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self {
            requests,
            token_attempts,
        }
    }

    fn check(limiter: &Option<DefaultKeyedRateLimiter<String>>, key: &str) -> Result<(), u64> {
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| retry_after_secs(not_until.wait_time_from(limiter.clock().now())))
    }

    /// One request of an authenticated client; `Err` is 429 with `Retry-After`.
    pub fn check_request(&self, client_id: &str) -> Result<(), ApiError> {
        Self::check(&self.requests, client_id).map_err(|retry_after_secs| {
            tracing::info!(client.id = %client_id, retry_after_secs, "rate limit reached");
            ApiError::RateLimited { retry_after_secs }
        })
    }

    /// One attempt at `/oauth/token` for `client_id` as presented (known or not); `Err`
    /// carries the seconds to wait.
    pub fn check_token_attempt(&self, client_id: &str) -> Result<(), u64> {
        // An attacker chooses the ids: only a bounded prefix becomes a key.
        let key: String = client_id.chars().take(64).collect();
        Self::check(&self.token_attempts, &key)
    }

    /// Forgets clients whose state is back to "never seen", so memory is bounded by the
    /// clients active within one sweep interval.
    pub fn sweep(&self) {
        for limiter in [&self.requests, &self.token_attempts].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Sweeps every `interval` until `shutdown`.
    pub fn spawn_sweeper(self: &Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let limiters = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => limiters.sweep(),
                }
            }
        });
    }
}

/// The middleware of the body limits (see the module documentation). Bodies of GET and
/// the like are not read; form bodies (`/oauth/token`) are size-limited, and the scan lets
/// them through as text that is not JSON.
pub async fn check_body<B: MessageBody>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // NUL can be neither stored nor looked up (Postgres text refuses it): a path segment
    // holding one names nothing, a query parameter holding one is invalid.
    if req.path().contains("%00") {
        return Ok(req.error_response(ApiError::NotFound).map_into_right_body());
    }
    if let Some(parameter) = nul_query_parameter(req.query_string()) {
        let e = ApiError::InvalidParams(vec![ParamError {
            parameter,
            detail: "must not contain NUL characters".into(),
        }]);
        return Ok(req.error_response(e).map_into_right_body());
    }
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    match read_checked(&mut req).await {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        // Answered here, not raised, so the metrics and logs around see an ordinary response.
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// The first query parameter whose value holds a NUL character.
fn nul_query_parameter(query: &str) -> Option<String> {
    if !query.contains("%00") {
        return None;
    }
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        // A name holding NUL names no parameter the API reads.
        .find(|(k, v)| !k.contains('\0') && v.contains('\0'))
        .map(|(k, _)| k)
}

/// Reads the body within the size limit, checks it, and puts it back for the route.
async fn read_checked(req: &mut ServiceRequest) -> Result<(), ApiError> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ApiError::internal("application state missing"));
    };
    let max_bytes = state.settings.http.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(ApiError::PayloadTooLarge(max_bytes));
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::MalformedJson(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > max_bytes {
            return Err(ApiError::PayloadTooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    // Whatever the declared type: the JSON routes read their body as JSON regardless, and
    // a form body (`/oauth/token`) is not JSON, which the scan lets through.
    let l = &state.settings.limits;
    scan_json(&body, l.max_json_depth, l.max_json_string_chars)
        .map_err(|error| ApiError::InvalidBody(vec![error]))?;
    req.set_payload(actix_web::dev::Payload::from(body));
    Ok(())
}

enum Frame {
    Object {
        key: Option<String>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

fn pointer(stack: &[Frame]) -> String {
    let mut p = String::new();
    for frame in stack {
        p.push('/');
        match frame {
            Frame::Object { key, .. } => p.push_str(&escape_token(key.as_deref().unwrap_or(""))),
            Frame::Array { index } => p.push_str(&index.to_string()),
        }
    }
    p
}

/// The decoded text of the JSON string spanning `raw` (quotes included).
fn decode(raw: &[u8]) -> String {
    serde_json::from_slice::<String>(raw)
        .unwrap_or_else(|_| String::from_utf8_lossy(&raw[1..raw.len().saturating_sub(1)]).into())
}

/// Checks nesting depth and string lengths of a JSON text without building it, so a body
/// of 100 000 nested arrays costs a linear scan and no recursion. Text that is not JSON is
/// let through for the route's own parser to refuse with its usual 400.
pub fn scan_json(body: &[u8], max_depth: usize, max_chars: usize) -> Result<(), FieldError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if !matches!(start.map(|i| body[i]), Some(b'{' | b'[')) {
        return Ok(());
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            open @ (b'{' | b'[') => {
                if stack.len() >= max_depth {
                    return Err(FieldError::new(
                        pointer(&stack),
                        format!("nests arrays and objects deeper than {max_depth} levels"),
                    ));
                }
                stack.push(if open == b'{' {
                    Frame::Object {
                        key: None,
                        expect_key: true,
                    }
                } else {
                    Frame::Array { index: 0 }
                });
            }
            // The guard closes the container; an unmatched close is not JSON.
            b'}' | b']' if stack.pop().is_none() => return Ok(()),
            b',' => match stack.last_mut() {
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => return Ok(()),
            },
            b':' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = false;
                }
            }
            b'"' => {
                let mut j = i + 1;
                while j < body.len() && body[j] != b'"' {
                    j += if body[j] == b'\\' { 2 } else { 1 };
                }
                if j >= body.len() {
                    return Ok(());
                }
                let raw = &body[i..=j];
                // Raw bytes are never fewer than the characters they decode to, so only a
                // long raw string needs decoding to be measured.
                let long = raw.len() - 2 > max_chars;
                match stack.last_mut() {
                    Some(Frame::Object {
                        key,
                        expect_key: expect @ true,
                    }) => {
                        let text = decode(raw);
                        *expect = false;
                        if long && text.chars().count() > max_chars {
                            // The key names no field yet: the object holding it is named.
                            let parent = pointer(&stack[..stack.len() - 1]);
                            return Err(FieldError::new(
                                parent,
                                format!("has a key longer than {max_chars} characters"),
                            ));
                        }
                        *key = Some(text);
                    }
                    _ => {
                        // Escaped NUL: Postgres text cannot hold it.
                        if raw.windows(6).any(|w| w == b"\\u0000") && decode(raw).contains('\0') {
                            return Err(FieldError::new(
                                pointer(&stack),
                                "must not contain NUL characters",
                            ));
                        }
                        if long && decode(raw).chars().count() > max_chars {
                            return Err(FieldError::new(
                                pointer(&stack),
                                format!("must be at most {max_chars} characters"),
                            ));
                        }
                    }
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_body_nested_deeper_than_the_limit_is_refused_at_the_container_that_is_too_deep() {
        let body = br#"{"a": [1, {"b": [[ ]]}]}"#;
        assert!(scan_json(body, 5, 100).is_ok());
        let e = scan_json(body, 4, 100).unwrap_err();
        assert_eq!(e.pointer, "/a/1/b/0");
        let deep = "[".repeat(100_000);
        assert_eq!(
            scan_json(deep.as_bytes(), 32, 100)
                .unwrap_err()
                .pointer
                .len(),
            64
        );
    }

    #[test]
    fn a_long_string_is_named_by_its_pointer_and_counted_in_characters() {
        let body = r#"{"c": {"n": "张三张三张三"}, "x/y": ["ok", "toolong"]}"#;
        // Six characters, eighteen bytes: within a limit of six.
        let e = scan_json(body.as_bytes(), 32, 6).unwrap_err();
        assert_eq!(e.pointer, "/x~1y/1");
        let e = scan_json(body.as_bytes(), 32, 5).unwrap_err();
        assert_eq!(e.pointer, "/c/n");
        let e = scan_json(br#"{"a": {"longkey": 1}}"#, 32, 5).unwrap_err();
        assert_eq!(e.pointer, "/a");
        let escaped = r#"{"k": "\"\"\"\""}"#;
        assert!(scan_json(escaped.as_bytes(), 32, 4).is_ok());
    }

    #[test]
    fn a_nul_in_a_string_value_is_refused_where_it_is() {
        let e = scan_json(br#"{"a": ["x", "y\u0000z"]}"#, 8, 100).unwrap_err();
        assert_eq!(e.pointer, "/a/1");
        // An escaped backslash before `u0000` is text, not NUL.
        assert!(scan_json(br#"{"a": "\\u0000"}"#, 8, 100).is_ok());
        assert_eq!(nul_query_parameter("a=1&b=x%00y").as_deref(), Some("b"));
        assert_eq!(nul_query_parameter("a=1"), None);
    }

    #[test]
    fn text_that_is_not_json_is_left_to_the_route() {
        assert!(scan_json(b"grant_type=client_credentials", 1, 1).is_ok());
        assert!(scan_json(b"{\"a\": \"unterminated", 32, 3).is_ok());
        assert!(scan_json(b"", 32, 3).is_ok());
    }

    #[test]
    fn the_wait_is_whole_seconds_and_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
