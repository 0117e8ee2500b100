//! What the API takes and shows for webhooks: the event types, the endpoint body with its
//! validation, and the views of endpoints, messages and attempts. Views never carry a
//! secret; the secret is returned once, by create and rotate, next to the view.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ssrf::{check_and_resolve, CheckedResolver};
use crate::{domain::FieldError, ids::InvalidId};

pub const COMPLAINT_STATUS_CHANGED: &str = "complaint.status_changed";
pub const COMPLAINT_ROUTED: &str = "complaint.routed";
pub const COMPLAINT_ESCALATED: &str = "complaint.escalated";
pub const COMPLAINT_SLA_WARNING: &str = "complaint.sla_warning";
pub const COMPLAINT_SLA_BREACHED: &str = "complaint.sla_breached";
pub const COMPLAINT_EVIDENCE_REQUESTED: &str = "complaint.evidence_requested";
/// Sent to a tenant's other endpoints when the hub disables one of its endpoints.
pub const ENDPOINT_DISABLED: &str = "webhook_endpoint.disabled";
/// Sent only by the test-send action, to the one endpoint tested; not subscribable.
pub const TEST: &str = "webhook.test";

/// The event types an endpoint may subscribe to: CONTRACT §5's six, plus the notice that
/// another endpoint of the tenant was disabled.
pub const EVENT_TYPES: [&str; 7] = [
    COMPLAINT_STATUS_CHANGED,
    COMPLAINT_ROUTED,
    COMPLAINT_ESCALATED,
    COMPLAINT_SLA_WARNING,
    COMPLAINT_SLA_BREACHED,
    COMPLAINT_EVIDENCE_REQUESTED,
    ENDPOINT_DISABLED,
];

pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// The `webhook-id` of a message: `msg_` and a UUIDv7, the same on every attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookMessageId(String);

impl WebhookMessageId {
    pub const PREFIX: &'static str = "msg_";

    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        match raw.strip_prefix(Self::PREFIX) {
            Some(body)
                if !body.is_empty()
                    && body.len() <= 64
                    && body.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(InvalidId {
                expected_prefix: Self::PREFIX,
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }
}

impl std::fmt::Display for WebhookMessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for WebhookMessageId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<WebhookMessageId> for String {
    fn from(value: WebhookMessageId) -> String {
        value.0
    }
}

/// Body of `POST /v1/webhook-endpoints`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// HTTPS URL on the public internet (its host must resolve to public addresses).
    #[schema(
        max_length = 2048,
        pattern = r"^https://[a-z0-9.-]+\.[a-z]{2,}(/[A-Za-z0-9._~/-]*)?$"
    )]
    pub url: String,
    /// Event types to receive; at least one.
    #[schema(min_items = 1, inline, value_type = Vec<EventTypeName>)]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Defaults to true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Body of `PATCH /v1/webhook-endpoints/{id}`; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchInput {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// `true` re-enables an endpoint the hub disabled; `false` pauses it (pending messages
    /// wait until it is enabled again).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A checked endpoint, ready for [`super::store::create_endpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEndpoint {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
}

/// A checked patch, ready for [`super::store::update_endpoint`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

fn check_events(events: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if events.is_empty() {
        errors.push(FieldError::new(
            "/events",
            "must name at least one event type",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if !EVENT_TYPES.contains(&e.as_str()) {
            errors.push(FieldError::new(
                format!("/events/{i}"),
                format!(
                    "is not an event type; expected one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        } else if !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

fn check_description(d: &str, errors: &mut Vec<FieldError>) {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "/description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
}

async fn check_url_field(
    url: &str,
    resolver: &CheckedResolver,
    errors: &mut Vec<FieldError>,
) -> String {
    match check_and_resolve(url, resolver).await {
        Ok(u) => u.to_string(),
        Err(refused) => {
            errors.push(FieldError::new("/url", refused.to_string()));
            String::new()
        }
    }
}

/// Validates a new endpoint: every bad field at once, the URL against the SSRF policy with
/// its name resolved now (and again at every send).
pub async fn check_new_endpoint(
    input: &EndpointInput,
    resolver: &CheckedResolver,
) -> Result<NewEndpoint, Vec<FieldError>> {
    let mut errors = Vec::new();
    let url = check_url_field(&input.url, resolver, &mut errors).await;
    let event_types = check_events(&input.events, &mut errors);
    let description = input.description.clone().unwrap_or_default();
    check_description(&description, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewEndpoint {
        url,
        event_types,
        description,
        enabled: input.enabled.unwrap_or(true),
    })
}

/// Validates a patch the same way.
pub async fn check_patch(
    input: &EndpointPatchInput,
    resolver: &CheckedResolver,
) -> Result<EndpointPatch, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut patch = EndpointPatch {
        enabled: input.enabled,
        ..EndpointPatch::default()
    };
    if let Some(url) = &input.url {
        patch.url = Some(check_url_field(url, resolver, &mut errors).await);
    }
    if let Some(events) = &input.events {
        patch.event_types = Some(check_events(events, &mut errors));
    }
    if let Some(d) = &input.description {
        check_description(d, &mut errors);
        patch.description = Some(d.clone());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(patch)
}

/// An endpoint as the API shows it (no secret).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// Why the hub disabled it, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<DateTime<Utc>>,
    /// Deliveries have failed without a success since this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// During a rotation: when the previous secret stops signing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint with its signing secret: the answer to create and rotate, the only times the
/// secret is shown.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_…`; shown once.
    pub secret: String,
}

/// A message in the delivery log.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// The `webhook-id` header of every attempt.
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The exact JSON body sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// One attempt in the delivery log.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub id: i64,
    pub message_id: String,
    pub event_type: String,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// `timeout`, `connect`, `refused_address`, `redirect`, `http_status`, `secret`, `request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// At most 1 KiB of the receiver's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::{collections::HashMap, sync::Arc};

    use super::*;
    use crate::webhooks::ssrf::{Policy, StaticLookup};

    fn resolver() -> CheckedResolver {
        let names = HashMap::from([
            (
                "hooks.partner.example".to_owned(),
                vec!["93.184.215.14".parse().unwrap()],
            ),
            (
                "internal.partner.example".to_owned(),
                vec!["10.0.0.8".parse().unwrap()],
            ),
        ]);
        CheckedResolver::with_lookup(Policy::default(), Arc::new(StaticLookup(names)))
    }

    #[tokio::test]
    async fn a_valid_endpoint_is_accepted_with_duplicate_events_folded() {
        let input = EndpointInput {
            url: "https://hooks.partner.example/redress".into(),
            events: vec![
                COMPLAINT_ROUTED.into(),
                COMPLAINT_ROUTED.into(),
                COMPLAINT_STATUS_CHANGED.into(),
            ],
            description: Some("CRM".into()),
            enabled: None,
        };
        let ok = check_new_endpoint(&input, &resolver()).await.unwrap();
        assert_eq!(
            ok.event_types,
            vec![COMPLAINT_ROUTED, COMPLAINT_STATUS_CHANGED]
        );
        assert!(ok.enabled);
    }

    #[tokio::test]
    async fn every_bad_field_is_named_at_once() {
        let input = EndpointInput {
            url: "https://internal.partner.example/".into(),
            events: vec!["complaint.created".into(), TEST.into()],
            description: Some("x".repeat(501)),
            enabled: None,
        };
        let errors = check_new_endpoint(&input, &resolver()).await.unwrap_err();
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/url", "/events/0", "/events/1", "/description"]);
        assert!(
            errors[0].detail.contains("10.0.0.8"),
            "{}",
            errors[0].detail
        );
        let empty = EndpointInput {
            url: "https://hooks.partner.example/".into(),
            events: vec![],
            description: None,
            enabled: None,
        };
        let errors = check_new_endpoint(&empty, &resolver()).await.unwrap_err();
        assert_eq!(errors[0].pointer, "/events");
    }

    #[test]
    fn message_ids_have_their_prefix_and_refuse_dots() {
        let id = WebhookMessageId::generate();
        assert!(id.as_str().starts_with("msg_"));
        assert_eq!(WebhookMessageId::parse(id.as_str()).unwrap(), id);
        // The id is part of the signed content: a dot would make "id.ts.body" ambiguous.
        assert!(WebhookMessageId::parse("msg_a.b").is_err());
    }
}

/// An event type an endpoint can subscribe to (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum EventTypeName {
    #[schema(rename = "complaint.status_changed")]
    StatusChanged,
    #[schema(rename = "complaint.routed")]
    Routed,
    #[schema(rename = "complaint.escalated")]
    Escalated,
    #[schema(rename = "complaint.sla_warning")]
    SlaWarning,
    #[schema(rename = "complaint.sla_breached")]
    SlaBreached,
    #[schema(rename = "complaint.evidence_requested")]
    EvidenceRequested,
    #[schema(rename = "webhook_endpoint.disabled")]
    EndpointDisabled,
}
