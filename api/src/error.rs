//! The API's one error type and its one mapping to `application/problem+json` (RFC 9457).
//! Internal causes are logged with a correlation id and never sent.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, ResponseError,
};
use redress_shared::domain::{masking::mask_numbers, FieldError};
use serde::Serialize;
use serde_json::{json, Value};

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://redress.dev/problems/";

/// A query-string or header parameter that failed validation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ParamError {
    pub parameter: String,
    pub detail: String,
}

/// `Debug` is written out below: it is what tracing-actix-web logs for every error answer.
#[derive(thiserror::Error)]
pub enum ApiError {
    #[error("invalid request body")]
    InvalidBody(Vec<FieldError>),
    #[error("invalid parameters")]
    InvalidParams(Vec<ParamError>),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("authentication required")]
    Unauthenticated { token_presented: bool },
    #[error("missing scope {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("conflict: {detail}")]
    Conflict {
        kind: &'static str,
        detail: String,
        extra: Value,
    },
    #[error("idempotency key reused with a different body")]
    IdempotencyMismatch,
    #[error("rate limit reached")]
    RateLimited { retry_after_secs: u64 },
    #[error("payload too large")]
    PayloadTooLarge(usize),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl std::fmt::Debug for ApiError {
    /// The variant and its data, with every run of 7 or more digits masked: a refused value
    /// (serde quotes it) or a database error may hold a phone or card number, and this text
    /// goes to the log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let raw = match self {
            ApiError::InvalidBody(errors) => format!("InvalidBody({errors:?})"),
            ApiError::InvalidParams(errors) => format!("InvalidParams({errors:?})"),
            ApiError::MalformedJson(e) => format!("MalformedJson({e:?})"),
            ApiError::Unauthenticated { token_presented } => {
                format!("Unauthenticated {{ token_presented: {token_presented} }}")
            }
            ApiError::Forbidden(scope) => format!("Forbidden({scope:?})"),
            ApiError::NotFound => "NotFound".into(),
            ApiError::Conflict { kind, detail, .. } => format!("Conflict({kind}: {detail:?})"),
            ApiError::IdempotencyMismatch => "IdempotencyMismatch".into(),
            ApiError::RateLimited { retry_after_secs } => {
                format!("RateLimited {{ retry_after_secs: {retry_after_secs} }}")
            }
            ApiError::PayloadTooLarge(limit) => format!("PayloadTooLarge({limit})"),
            ApiError::Unavailable(cause) => format!("Unavailable({cause:?})"),
            ApiError::Internal(cause) => format!("Internal({cause:?})"),
        };
        f.write_str(&mask_numbers(&raw))
    }
}

impl ApiError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::InvalidBody(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The request body is invalid",
            ),
            ApiError::InvalidParams(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The request parameters are invalid",
            ),
            ApiError::MalformedJson(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "The request body is not valid JSON",
            ),
            ApiError::Unauthenticated { .. } => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "A valid access token is required",
            ),
            ApiError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "The access token lacks a required scope",
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Conflict { kind, .. } => (StatusCode::CONFLICT, kind, "Conflict"),
            ApiError::IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "The Idempotency-Key was used with a different request body",
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is too large",
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is temporarily unavailable",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

impl From<redress_shared::db::DbError> for ApiError {
    fn from(e: redress_shared::db::DbError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        redress_shared::db::DbError::from(e).into()
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

/// The problem document, for the OpenAPI description.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Present on validation problems: each bad field (`pointer`) or parameter (`parameter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<Vec<Value>>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, kind, title) = self.parts();
        let detail = match self {
            ApiError::InvalidBody(errors) => {
                format!("{} field(s) are invalid; see `errors`", errors.len())
            }
            ApiError::InvalidParams(errors) => {
                format!("{} parameter(s) are invalid; see `errors`", errors.len())
            }
            // serde's messages quote the offending value, which may be a phone number.
            ApiError::MalformedJson(e) => mask_numbers(e),
            ApiError::Unauthenticated { .. } => {
                "Send `Authorization: Bearer <access token>` from POST /oauth/token".into()
            }
            ApiError::Forbidden(scope) => format!("This operation needs the `{scope}` scope"),
            ApiError::NotFound => "No such resource".into(),
            ApiError::Conflict { detail, .. } => detail.clone(),
            ApiError::IdempotencyMismatch => {
                "Use a new Idempotency-Key for a different request; a retry must send the same body"
                    .into()
            }
            ApiError::RateLimited { retry_after_secs } => format!(
                "This client sent more requests than its rate limit allows; retry in {retry_after_secs} s"
            ),
            ApiError::PayloadTooLarge(limit) => {
                format!("Request bodies are limited to {limit} bytes")
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error.cause = %mask_numbers(cause), "answering 503");
                "A dependency is unavailable; retry shortly".into()
            }
            ApiError::Internal(cause) => {
                let incident = uuid::Uuid::new_v4();
                // A database error may quote the row it failed on: numbers are masked.
                tracing::error!(error.cause = %mask_numbers(cause), incident.id = %incident, "internal error");
                format!("Incident {incident}")
            }
        };
        let mut body = json!({
            "type": format!("{TYPE_BASE}{kind}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        match self {
            ApiError::InvalidBody(errors) => {
                let masked: Vec<FieldError> = errors
                    .iter()
                    .map(|e| FieldError::new(e.pointer.clone(), mask_numbers(&e.detail)))
                    .collect();
                body["errors"] = json!(masked)
            }
            ApiError::InvalidParams(errors) => {
                let masked: Vec<ParamError> = errors
                    .iter()
                    .map(|e| ParamError {
                        parameter: e.parameter.clone(),
                        detail: mask_numbers(&e.detail),
                    })
                    .collect();
                body["errors"] = json!(masked)
            }
            ApiError::Conflict { extra, .. } => {
                if let (Some(obj), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                    for (k, v) in extra {
                        obj.insert(k.clone(), v.clone());
                    }
                }
            }
            _ => {}
        }
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            ApiError::Unauthenticated {
                token_presented: true,
            } => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
            }
            ApiError::Unauthenticated {
                token_presented: false,
            } => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::Forbidden(scope) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
                ));
            }
            ApiError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            ApiError::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        response.body(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_as_logged_carries_no_full_phone_or_card_number() {
        let e = ApiError::InvalidBody(vec![FieldError::new(
            "/base_version",
            "invalid type: string \"13800138000\", expected i32",
        )]);
        let logged = format!("{e:?}");
        assert!(logged.contains("138****8000"), "{logged}");
        let e = ApiError::Internal("duplicate key (pan)=(6222021234567890128)".into());
        let logged = format!("{e:?}");
        assert!(!logged.contains("6222021234567890128"), "{logged}");
    }
}
