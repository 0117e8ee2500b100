//! From a complaint's history to its webhooks. Every complaint event is written by
//! [`crate::db::complaints`] (`append_event`; the first, `complaint.submitted`, is written by
//! [`crate::db::intake`] and has no webhook), which calls
//! [`enqueue_for_complaint_event`] in the same transaction, so an event and its webhooks
//! commit together or not at all.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use super::{model::*, store};
use crate::{db::complaints::EventRow, db::schema::complaints, ids::TenantId};

/// The webhook types a history event produces: its own type when the contract names it,
/// and `complaint.status_changed` whenever the event moved the complaint to another status
/// (its data has `from` and `status`, and they differ).
pub fn webhook_types_for(event_type: &str, data: &Value) -> Vec<&'static str> {
    let mut types = Vec::new();
    if let Some(own) = EVENT_TYPES
        .iter()
        .find(|t| **t == event_type && **t != ENDPOINT_DISABLED)
    {
        types.push(*own);
    }
    let from = data.get("from").and_then(Value::as_str);
    let to = data.get("status").and_then(Value::as_str);
    if let (Some(from), Some(to)) = (from, to) {
        if from != to && !types.contains(&COMPLAINT_STATUS_CHANGED) {
            types.push(COMPLAINT_STATUS_CHANGED);
        }
    }
    types
}

/// The complaint's side of the webhook `data`, as the caller's transaction sees it.
pub struct ComplaintFacts {
    pub external_ref: Option<String>,
    pub status: String,
    pub current_rungs: Value,
    pub missing_evidence: Vec<String>,
}

/// The webhook `data` of CONTRACT §5. Built from named fields only, never by copying the
/// event's data or the complaint's details, so neither the complainant's phone number nor
/// any free text an operator typed can leak into a payload.
fn data_of(event: &EventRow, facts: &ComplaintFacts) -> Value {
    let status = event
        .data
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or(&facts.status);
    let previous = event.data.get("from").and_then(Value::as_str);
    let rungs: Vec<Value> = facts.current_rungs.as_array().cloned().unwrap_or_default();
    let channel = event
        .data
        .get("channel")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            rungs
                .iter()
                .find_map(|r| r.get("channel").and_then(Value::as_str).map(str::to_owned))
        });
    let deadlines = channel
        .as_deref()
        .and_then(|c| {
            rungs
                .iter()
                .find(|r| r.get("channel").and_then(Value::as_str) == Some(c))
        })
        .and_then(|r| r.get("deadlines").cloned())
        .unwrap_or_else(|| json!([]));
    let current: Vec<Value> = rungs
        .iter()
        .map(|r| {
            json!({
                "channel": r.get("channel"),
                "track": r.get("track"),
                "since": r.get("since"),
                "deadlines": r.get("deadlines").cloned().unwrap_or_else(|| json!([])),
            })
        })
        .collect();
    json!({
        "complaint_id": event.complaint_id,
        "external_ref": facts.external_ref,
        "status": status,
        "previous_status": previous,
        "sequence": event.sequence,
        "event_id": event.id,
        "event_type": event.event_type,
        "occurred_at": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "channel": channel,
        "deadlines": deadlines,
        "current": current,
        "missing_evidence": facts.missing_evidence,
    })
}

/// Queues the webhooks of one history event. Reads nothing more when the event maps to no
/// webhook type or no endpoint of the tenant subscribes, which is the common case.
pub async fn enqueue_for_complaint_event(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    event: &EventRow,
) -> QueryResult<()> {
    let types = webhook_types_for(&event.event_type, &event.data);
    if types.is_empty() {
        return Ok(());
    }
    let subscribed = store::subscribers(conn, tenant, &types).await?;
    if subscribed.is_empty() {
        return Ok(());
    }
    let (external_ref, status, current_rungs, missing_evidence) = complaints::table
        .filter(complaints::id.eq(&event.complaint_id))
        .filter(complaints::tenant_id.eq(tenant.as_str()))
        .select((
            complaints::external_ref,
            complaints::status,
            complaints::current_rungs,
            complaints::missing_evidence,
        ))
        .first::<(Option<String>, String, Value, Vec<String>)>(conn)
        .await?;
    let facts = ComplaintFacts {
        external_ref,
        status,
        current_rungs,
        missing_evidence,
    };
    enqueue_known(conn, tenant, event, &subscribed, &facts).await
}

/// The same for a caller that already holds the complaint's facts as this transaction
/// wrote them and the tenant's `subscribed` endpoints (from [`store::subscribers`] for
/// the event's [`webhook_types_for`]): no read at all, and the messages of every type in
/// one statement.
pub async fn enqueue_known(
    conn: &AsyncPgConnection,
    tenant: &TenantId,
    event: &EventRow,
    subscribed: &[store::Subscriber],
    facts: &ComplaintFacts,
) -> QueryResult<()> {
    let messages = messages_known(event, subscribed, facts)?;
    store::insert_new(conn, tenant, &messages).await
}

/// The webhook messages of one history event, one per type it produces and endpoint
/// subscribed to that type, not yet inserted (a caller writing several events inserts
/// their messages together).
pub fn messages_known(
    event: &EventRow,
    subscribed: &[store::Subscriber],
    facts: &ComplaintFacts,
) -> QueryResult<Vec<store::NewMessage>> {
    if subscribed.is_empty() {
        return Ok(Vec::new());
    }
    let data = data_of(event, facts);
    let mut messages = Vec::new();
    for t in webhook_types_for(&event.event_type, &event.data) {
        let endpoints = subscribed
            .iter()
            .filter(|s| s.wants(t))
            .map(|s| s.id.as_str());
        messages.extend(store::NewMessage::for_endpoints(
            endpoints, t, &data, event.at,
        )?);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::Utc;

    fn event(event_type: &str, data: Value) -> EventRow {
        EventRow {
            id: "evt_1".into(),
            tenant_id: "ten_1".into(),
            complaint_id: "cmp_1".into(),
            sequence: 3,
            event_type: event_type.into(),
            actor: "system:router".into(),
            data,
            at: Utc::now(),
        }
    }

    #[test]
    fn a_routing_event_produces_routed_and_status_changed() {
        let t = webhook_types_for(
            "complaint.routed",
            &json!({"from": "submitted", "status": "routed"}),
        );
        assert_eq!(t, vec![COMPLAINT_ROUTED, COMPLAINT_STATUS_CHANGED]);
    }

    #[test]
    fn an_escalation_to_the_next_rung_keeps_its_status_and_produces_only_escalated() {
        let t = webhook_types_for(
            "complaint.escalated",
            &json!({"from": "routed", "status": "routed"}),
        );
        assert_eq!(t, vec![COMPLAINT_ESCALATED]);
    }

    #[test]
    fn events_outside_the_contract_produce_status_changed_only_when_the_status_moved() {
        assert_eq!(
            webhook_types_for(
                "complaint.rejected",
                &json!({"from": "submitted", "status": "rejected"})
            ),
            vec![COMPLAINT_STATUS_CHANGED]
        );
        assert!(
            webhook_types_for("complaint.submitted", &json!({"status": "submitted"})).is_empty()
        );
        assert!(webhook_types_for("complaint.note_added", &json!({})).is_empty());
        assert_eq!(
            webhook_types_for(
                "complaint.status_changed",
                &json!({"from": "routed", "status": "in_progress"})
            ),
            vec![COMPLAINT_STATUS_CHANGED]
        );
        assert_eq!(
            webhook_types_for("complaint.sla_breached", &json!({})),
            vec![COMPLAINT_SLA_BREACHED]
        );
        assert!(webhook_types_for(ENDPOINT_DISABLED, &json!({})).is_empty());
    }

    #[test]
    fn the_payload_names_the_complaint_and_its_rung_and_never_carries_the_phone() {
        let e = event(
            "complaint.routed",
            json!({"from": "submitted", "status": "routed", "channel": "pboc_12363",
                   "why": "call me on 13800138000", "phone": "13800138000"}),
        );
        let facts = ComplaintFacts {
            external_ref: Some("app-42".into()),
            status: "routed".into(),
            current_rungs: json!([
                {"channel": "provider_service", "since": "2026-11-20T00:00:00Z", "track": "police", "deadlines": []},
                {"channel": "pboc_12363", "since": "2026-11-21T00:00:00Z", "track": "main",
                 "deadlines": [{"clock": "respond", "due_on": "2026-12-05"}]}
            ]),
            missing_evidence: vec![],
        };
        let d = data_of(&e, &facts);
        assert_eq!(d["complaint_id"], "cmp_1");
        assert_eq!(d["external_ref"], "app-42");
        assert_eq!(d["status"], "routed");
        assert_eq!(d["previous_status"], "submitted");
        assert_eq!(d["sequence"], 3);
        assert_eq!(d["channel"], "pboc_12363");
        assert_eq!(d["deadlines"][0]["due_on"], "2026-12-05");
        assert_eq!(d["current"].as_array().unwrap().len(), 2);
        assert!(!d.to_string().contains("13800138000"), "{d}");
    }
}
