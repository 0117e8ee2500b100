//! Personal data of complainants (PIPL): the export of everything the hub holds about one
//! complainant, and the erasure of their personal data that keeps the anonymised case.
//! docs/PRIVACY.md says which fields are personal and what erasure does; this module is
//! the one place that knows it.
//!
//! A complainant has no id of their own: they are the person behind a phone number (in the
//! normalised form of `redress_phone_key` in SQL), or behind one complaint (and then also
//! every other complaint of the tenant with that complaint's phone number).

use chrono::{DateTime, Utc};
use diesel::{
    dsl::sql,
    prelude::*,
    sql_types::{Array, Bool, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{
    audit::{self, Recorded},
    db::{
        complaints::{ComplaintRow, EventRow},
        schema::{audit_log, complaint_events, complaints, idempotency_keys, outbox},
    },
    ids::{ComplaintId, TenantId},
    webhooks::{
        schema::{webhook_attempts, webhook_messages},
        store::{AttemptRow, MessageRow},
    },
};

/// What replaces an erased text. Required fields keep a value so the case still reads as
/// a complaint; optional ones are removed.
pub const ERASED: &str = "[erased]";

/// Who the request is about.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// The complainant's phone number in any usual form (`138 0013 8000`, `+86 13800138000`).
    Phone(String),
    /// The complainant of this complaint (and of every other complaint of the tenant with
    /// the same phone number).
    ComplaintId(String),
}

impl Subject {
    fn kind(&self) -> &'static str {
        match self {
            Subject::Phone(_) => "phone",
            Subject::ComplaintId(_) => "complaint_id",
        }
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

/// The complaint ids of the subject within the tenant, oldest first. Empty when nothing
/// matches (an unknown phone, another tenant's complaint).
pub async fn complaint_ids(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    subject: &Subject,
) -> QueryResult<Vec<String>> {
    const BY_PHONE: &str = "SELECT id FROM complaints \
         WHERE tenant_id = $1 AND details #>> '{complainant,phone}' IS NOT NULL \
         AND redress_phone_key(details #>> '{complainant,phone}') = redress_phone_key($2) \
         ORDER BY id";
    let (phone, anchor) = match subject {
        Subject::Phone(p) => (Some(p.clone()), None),
        Subject::ComplaintId(raw) => {
            let Ok(id) = ComplaintId::parse(raw) else {
                return Ok(Vec::new());
            };
            let found: Option<Value> = complaints::table
                .filter(complaints::id.eq(id.as_str()))
                .filter(complaints::tenant_id.eq(tenant.as_str()))
                .select(complaints::details)
                .first(conn)
                .await
                .optional()?;
            let Some(details) = found else {
                return Ok(Vec::new());
            };
            let phone = details
                .pointer("/complainant/phone")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (phone, Some(id.to_string()))
        }
    };
    let mut ids = match phone {
        Some(p) => diesel::sql_query(BY_PHONE)
            .bind::<Text, _>(tenant.as_str())
            .bind::<Text, _>(p)
            .load::<IdRow>(conn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect(),
        None => Vec::new(),
    };
    if let Some(anchor) = anchor {
        if !ids.contains(&anchor) {
            ids.push(anchor);
            ids.sort();
        }
    }
    Ok(ids)
}

/// Webhook messages of the tenant whose payload names one of `ids`. Bodies are JSON text;
/// a cheap text match narrows them, the parsed payload decides.
async fn messages_about(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    ids: &[String],
) -> QueryResult<Vec<MessageRow>> {
    let mut out = Vec::new();
    for id in ids {
        let rows: Vec<MessageRow> = webhook_messages::table
            .filter(webhook_messages::tenant_id.eq(tenant.as_str()))
            .filter(webhook_messages::body.like(format!("%{id}%")))
            .order(webhook_messages::id.asc())
            .select(MessageRow::as_select())
            .load(conn)
            .await?;
        out.extend(rows.into_iter().filter(|m| {
            serde_json::from_str::<Value>(&m.body)
                .ok()
                .and_then(|b| {
                    b.pointer("/data/complaint_id")
                        .and_then(Value::as_str)
                        .map(|c| c == id)
                })
                .unwrap_or(false)
        }));
    }
    Ok(out)
}

/// Audit entries about these complaints: those that target one, and exports and erasures
/// that list one in `details.complaints`.
async fn audit_about(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    ids: &[String],
) -> QueryResult<Vec<Recorded>> {
    audit_log::table
        .filter(audit_log::tenant_id.eq(tenant.as_str()))
        .filter(
            audit_log::target.eq_any(ids).or(sql::<Bool>("details -> 'complaints' ?| ")
                .bind::<Array<Text>, _>(ids.to_vec())),
        )
        .order(audit_log::id.asc())
        .select(Recorded::as_select())
        .load(conn)
        .await
}

/// Key, answer status, when, and the complaint it answered with.
type IdempotencyRecord = (String, Option<i32>, DateTime<Utc>, Option<String>);

fn complaint_json(row: &ComplaintRow, erased_at: Option<DateTime<Utc>>) -> Value {
    json!({
        "id": row.id,
        "client_id": row.client_id,
        "external_ref": row.external_ref,
        "status": row.status,
        "category": row.category,
        "provider": row.provider,
        "complainant_kind": row.complainant_kind,
        "details": row.details,
        "current": row.current_rungs,
        "missing_evidence": row.missing_evidence,
        "last_sequence": row.last_sequence,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "personal_data_erased_at": erased_at,
    })
}

fn attempt_json(a: &AttemptRow) -> Value {
    json!({
        "id": a.id,
        "attempt": a.attempt,
        "attempted_at": a.attempted_at,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error_kind": a.error_kind,
        "error": a.error,
        "response_excerpt": a.response_excerpt,
    })
}

/// Everything held about the subject within the tenant, as one JSON document: each
/// complaint as stored, its evidence, its history, its webhook messages with their delivery
/// attempts, the idempotency records that answered with it, and the audit entries about it.
/// Runs in the caller's transaction (which has set the tenant). Nothing held is an empty
/// `complaints` list: the answer to a request about someone the tenant does not know.
pub async fn export(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    subject: &Subject,
    now: DateTime<Utc>,
) -> QueryResult<Value> {
    let ids = complaint_ids(conn, tenant, subject).await?;
    let rows: Vec<(ComplaintRow, Option<DateTime<Utc>>)> = complaints::table
        .filter(complaints::tenant_id.eq(tenant.as_str()))
        .filter(complaints::id.eq_any(&ids))
        .order(complaints::id.asc())
        .select((
            ComplaintRow::as_select(),
            complaints::personal_data_erased_at,
        ))
        .load(conn)
        .await?;
    let events: Vec<EventRow> = complaint_events::table
        .filter(complaint_events::tenant_id.eq(tenant.as_str()))
        .filter(complaint_events::complaint_id.eq_any(&ids))
        .order((
            complaint_events::complaint_id.asc(),
            complaint_events::sequence.asc(),
        ))
        .select(EventRow::as_select())
        .load(conn)
        .await?;
    let messages = messages_about(conn, tenant, &ids).await?;
    let message_ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let attempts: Vec<AttemptRow> = webhook_attempts::table
        .filter(webhook_attempts::tenant_id.eq(tenant.as_str()))
        .filter(webhook_attempts::message_id.eq_any(&message_ids))
        .order(webhook_attempts::id.asc())
        .select(AttemptRow::as_select())
        .load(conn)
        .await?;
    let idempotency: Vec<IdempotencyRecord> = idempotency_keys::table
        .filter(idempotency_keys::resource_id.eq_any(&ids))
        .select((
            idempotency_keys::idempotency_key,
            idempotency_keys::response_status,
            idempotency_keys::created_at,
            idempotency_keys::resource_id,
        ))
        .load(conn)
        .await?;
    let audit = audit_about(conn, tenant, &ids).await?;

    let complaints_out: Vec<Value> = rows
        .iter()
        .map(|(row, erased_at)| {
            let own_events: Vec<Value> = events
                .iter()
                .filter(|e| e.complaint_id == row.id)
                .map(|e| json!(e.to_view()))
                .collect();
            let own_messages: Vec<Value> = messages
                .iter()
                .filter(|m| m.body.contains(&row.id))
                .map(|m| {
                    let mut v = json!(m.to_view());
                    v["delivery_attempts"] = Value::Array(
                        attempts
                            .iter()
                            .filter(|a| a.message_id == m.id)
                            .map(attempt_json)
                            .collect(),
                    );
                    v
                })
                .collect();
            let own_keys: Vec<Value> = idempotency
                .iter()
                .filter(|k| k.3.as_deref() == Some(row.id.as_str()))
                .map(|(key, status, at, _)| {
                    json!({"idempotency_key": key, "response_status": status, "created_at": at})
                })
                .collect();
            json!({
                "complaint": complaint_json(row, *erased_at),
                "evidence": row.details.get("evidence").cloned().unwrap_or_else(|| json!([])),
                "events": own_events,
                "webhook_messages": own_messages,
                "idempotency_records": own_keys,
            })
        })
        .collect();
    Ok(json!({
        "tenant_id": tenant.as_str(),
        "generated_at": now,
        "found_by": subject.kind(),
        "complaints": complaints_out,
        "audit": audit,
    }))
}

/// What an erasure did, for its answer and its audit entry (ids and counts only).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    /// The complaints whose personal data is now erased (also those erased before).
    pub complaints: Vec<String>,
    pub events_changed: usize,
    pub webhook_messages_changed: usize,
    pub idempotency_records_changed: usize,
    pub outbox_messages_changed: usize,
}

/// Strings to blank wherever they appear in text that is otherwise kept (a routing
/// explanation quoting the name, a receiver's answer echoing the phone). Short values are
/// left out: blanking every "王" of a text would destroy it and identify no one.
fn literals_of(details: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |v: Option<&Value>, min_chars: usize| {
        if let Some(s) = v.and_then(Value::as_str) {
            let s = s.trim();
            if s.chars().count() >= min_chars && s != ERASED {
                out.push(s.to_owned());
            }
        }
    };
    add(details.pointer("/complainant/name"), 2);
    add(details.pointer("/complainant/phone"), 7);
    add(details.pointer("/respondent/merchant_no"), 6);
    add(details.pointer("/respondent/terminal_sn"), 6);
    if let Some(phone) = details
        .pointer("/complainant/phone")
        .and_then(Value::as_str)
    {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 7 {
            if let Some(national) = digits
                .strip_prefix("0086")
                .or_else(|| digits.strip_prefix("86"))
                .filter(|d| d.len() == 11)
            {
                out.push(national.to_owned());
            }
            out.push(digits);
        }
    }
    // Longest first, so a number is blanked whole before any part of it.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn blank_literals(text: &str, literals: &[String]) -> String {
    let mut out = text.to_owned();
    for l in literals {
        if out.contains(l.as_str()) {
            out = out.replace(l.as_str(), ERASED);
        }
    }
    out
}

fn blank_literals_in(value: &mut Value, literals: &[String]) {
    match value {
        Value::String(s) => {
            let blanked = blank_literals(s, literals);
            if blanked != *s {
                *s = blanked;
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| blank_literals_in(v, literals)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| blank_literals_in(v, literals)),
        _ => {}
    }
}

/// Replaces the string value of every key in `keys`, at any depth, with [`ERASED`].
fn blank_keys(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| blank_keys(v, keys)),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if keys.contains(&k.as_str()) && v.is_string() {
                    *v = Value::String(ERASED.into());
                } else {
                    blank_keys(v, keys);
                }
            }
        }
        _ => {}
    }
}

/// The complaint as filed (its `details`, or a complaint view of it, which has the same
/// fields at the top) with every personal field erased. Kept: kind and region of the
/// complainant, the provider, category, amount, dates, desired outcomes, evidence kinds,
/// prior contacts' channels, dates and outcomes, and `external_ref` (the partner's own id).
pub fn erase_complaint_fields(details: &mut Value) {
    let Some(root) = details.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(c)) = root.get_mut("complainant") {
        c.insert("name".into(), Value::String(ERASED.into()));
        c.remove("phone");
    }
    if let Some(Value::Object(r)) = root.get_mut("respondent") {
        r.remove("merchant_no");
        r.remove("terminal_sn");
    }
    if root.contains_key("summary") {
        root.insert("summary".into(), Value::String(ERASED.into()));
    }
    root.remove("description");
    for (list, fields) in [
        ("evidence", &["description", "sha256"][..]),
        ("prior_contacts", &["reference"][..]),
    ] {
        if let Some(Value::Array(items)) = root.get_mut(list) {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                for f in fields {
                    item.remove(*f);
                }
            }
        }
    }
}

/// Free text in an event's data that a person (partner or operator) typed: notes, reasons,
/// comments, channel references, evidence descriptions and hashes. The router's own
/// reasons are fixed text and stay.
const TYPED_TEXT: [&str; 7] = [
    "note",
    "comment",
    "reason",
    "channel_reference",
    "description",
    "sha256",
    "reference",
];
/// Blanked in every event whoever wrote it.
const ALWAYS: [&str; 3] = ["description", "sha256", "reference"];

fn erase_event_data(data: &mut Value, actor: &str, literals: &[String]) {
    if actor.starts_with("client:") {
        blank_keys(data, &TYPED_TEXT);
    } else {
        blank_keys(data, &ALWAYS);
    }
    blank_literals_in(data, literals);
}

/// Erases the personal data of the subject's complaints, in the caller's transaction (one
/// per complainant, which has set the tenant): the complaint rows, their events, the
/// webhook messages and delivery answers about them, the idempotency records that answered
/// with them and any outbox message naming them. Status, category, provider, timestamps
/// (`updated_at` included), event types, sequences and counts are untouched, so statistics
/// and SLA timings stay true. Recorded in the audit log with ids and counts only.
/// Idempotent: a second run changes nothing more. Nothing matched is an empty erasure,
/// recorded all the same.
pub async fn erase(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    subject: &Subject,
    actor: &str,
    now: DateTime<Utc>,
) -> QueryResult<Erasure> {
    let ids = complaint_ids(conn, tenant, subject).await?;
    // Locked, so an operator's transition cannot write a note into a case half-erased.
    let rows: Vec<(String, Value)> = complaints::table
        .filter(complaints::tenant_id.eq(tenant.as_str()))
        .filter(complaints::id.eq_any(&ids))
        .order(complaints::id.asc())
        .select((complaints::id, complaints::details))
        .for_update()
        .load(conn)
        .await?;
    let mut literals = Vec::new();
    for (_, details) in &rows {
        literals.extend(literals_of(details));
    }
    literals.sort_by_key(|s| std::cmp::Reverse(s.len()));
    literals.dedup();

    let mut result = Erasure {
        complaints: rows.iter().map(|(id, _)| id.clone()).collect(),
        ..Erasure::default()
    };
    for (id, details) in &rows {
        let mut erased = details.clone();
        erase_complaint_fields(&mut erased);
        blank_literals_in(&mut erased, &literals);
        diesel::update(
            complaints::table
                .filter(complaints::id.eq(id))
                .filter(complaints::tenant_id.eq(tenant.as_str())),
        )
        .set((
            complaints::details.eq(erased),
            complaints::personal_data_erased_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(
                "coalesce(personal_data_erased_at, now())"
            )),
        ))
        .execute(conn)
        .await?;
    }

    let events: Vec<(String, String, Value)> = complaint_events::table
        .filter(complaint_events::tenant_id.eq(tenant.as_str()))
        .filter(complaint_events::complaint_id.eq_any(&ids))
        .select((
            complaint_events::id,
            complaint_events::actor,
            complaint_events::data,
        ))
        .load(conn)
        .await?;
    for (event_id, actor_of_event, data) in events {
        let mut erased = data.clone();
        erase_event_data(&mut erased, &actor_of_event, &literals);
        if erased != data {
            diesel::update(complaint_events::table.filter(complaint_events::id.eq(&event_id)))
                .set(complaint_events::data.eq(erased))
                .execute(conn)
                .await?;
            result.events_changed += 1;
        }
    }

    for m in messages_about(conn, tenant, &ids).await? {
        let body = blank_literals(&m.body, &literals);
        if body != m.body {
            diesel::update(webhook_messages::table.filter(webhook_messages::id.eq(&m.id)))
                .set(webhook_messages::body.eq(body))
                .execute(conn)
                .await?;
            result.webhook_messages_changed += 1;
        }
        let attempts: Vec<(i64, Option<String>, Option<String>)> = webhook_attempts::table
            .filter(webhook_attempts::message_id.eq(&m.id))
            .select((
                webhook_attempts::id,
                webhook_attempts::error,
                webhook_attempts::response_excerpt,
            ))
            .load(conn)
            .await?;
        for (attempt_id, error, excerpt) in attempts {
            let e2 = error.as_deref().map(|t| blank_literals(t, &literals));
            let x2 = excerpt.as_deref().map(|t| blank_literals(t, &literals));
            if e2 != error || x2 != excerpt {
                diesel::update(webhook_attempts::table.filter(webhook_attempts::id.eq(attempt_id)))
                    .set((
                        webhook_attempts::error.eq(e2),
                        webhook_attempts::response_excerpt.eq(x2),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
    }

    let stored: Vec<(String, String, Option<Value>)> = idempotency_keys::table
        .filter(idempotency_keys::resource_id.eq_any(&ids))
        .select((
            idempotency_keys::client_id,
            idempotency_keys::idempotency_key,
            idempotency_keys::response_body,
        ))
        .load(conn)
        .await?;
    for (client, key, body) in stored {
        let Some(body) = body else { continue };
        let mut erased = body.clone();
        erase_complaint_fields(&mut erased);
        blank_literals_in(&mut erased, &literals);
        if erased != body {
            diesel::update(
                idempotency_keys::table
                    .filter(idempotency_keys::client_id.eq(&client))
                    .filter(idempotency_keys::idempotency_key.eq(&key)),
            )
            .set(idempotency_keys::response_body.eq(erased))
            .execute(conn)
            .await?;
            result.idempotency_records_changed += 1;
        }
    }

    // Outbox messages are pointers (ids and types), never the complaint; blanking them is a
    // safety net for whatever a later message type may carry.
    let queued: Vec<(i64, Value)> = outbox::table
        .filter(outbox::tenant_id.eq(tenant.as_str()))
        .filter(
            sql::<Bool>("payload ->> 'complaint_id' = ANY(")
                .bind::<Array<Text>, _>(ids.clone())
                .sql(")"),
        )
        .select((outbox::id, outbox::payload))
        .load(conn)
        .await?;
    for (row_id, payload) in queued {
        let mut erased = payload.clone();
        blank_literals_in(&mut erased, &literals);
        if erased != payload {
            diesel::update(outbox::table.filter(outbox::id.eq(row_id)))
                .set(outbox::payload.eq(erased))
                .execute(conn)
                .await?;
            result.outbox_messages_changed += 1;
        }
    }

    audit::record(
        conn,
        audit::Entry {
            tenant: Some(tenant),
            actor,
            action: "complainant.erased",
            target: None,
            details: json!({
                "found_by": subject.kind(),
                "complaints": result.complaints,
                "events_changed": result.events_changed,
                "webhook_messages_changed": result.webhook_messages_changed,
                "idempotency_records_changed": result.idempotency_records_changed,
                "outbox_messages_changed": result.outbox_messages_changed,
                "at": now,
            }),
        },
    )
    .await?;
    Ok(result)
}

/// Records an export in the caller's transaction (ids only: what was exported, not what
/// it contained).
pub async fn record_export(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    subject: &Subject,
    actor: &str,
    document: &Value,
) -> QueryResult<()> {
    let ids: Vec<Value> = document["complaints"]
        .as_array()
        .map(|cs| cs.iter().map(|c| c["complaint"]["id"].clone()).collect())
        .unwrap_or_default();
    let mut details = Map::new();
    details.insert("found_by".into(), json!(subject.kind()));
    details.insert("complaints".into(), Value::Array(ids));
    audit::record(
        conn,
        audit::Entry {
            tenant: Some(tenant),
            actor,
            action: "complainant.exported",
            target: None,
            details: Value::Object(details),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn details() -> Value {
        json!({
            "external_ref": "app-1",
            "complainant": {"name": "张三", "phone": "+86 138 0013 8000", "kind": "consumer", "region": "310115"},
            "respondent": {"provider": "拉卡拉", "merchant_no": "822290070111234", "terminal_sn": "N5NL0123456"},
            "category": "deposit_not_refunded",
            "summary": "张三的押金",
            "description": "卡号 622202*********0128",
            "amount_claimed": {"value": "299.00", "currency": "CNY"},
            "desired_outcomes": ["refund"],
            "evidence": [{"kind": "payment_receipt", "description": "收据", "sha256": "ab"}],
            "prior_contacts": [{"channel": "provider_service", "on": "2026-10-10", "reference": "A123", "outcome": "refused"}]
        })
    }

    #[test]
    fn erasing_a_complaint_keeps_what_statistics_need_and_nothing_personal() {
        let mut d = details();
        let literals = literals_of(&d);
        erase_complaint_fields(&mut d);
        blank_literals_in(&mut d, &literals);
        let text = d.to_string();
        for personal in [
            "张三",
            "138",
            "822290070111234",
            "N5NL0123456",
            "0128",
            "收据",
            "A123",
        ] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
        assert_eq!(d["category"], "deposit_not_refunded");
        assert_eq!(d["respondent"]["provider"], "拉卡拉");
        assert_eq!(d["complainant"]["region"], "310115");
        assert_eq!(d["evidence"][0]["kind"], "payment_receipt");
        assert_eq!(d["prior_contacts"][0]["outcome"], "refused");
        // The erased form still reads as a complaint.
        serde_json::from_value::<crate::domain::ComplaintInput>(d).unwrap();
    }

    #[test]
    fn an_operators_note_is_erased_and_the_routers_reason_kept() {
        let literals = literals_of(&details());
        let mut by_operator =
            json!({"note": "called 13800138000", "status": "rejected", "reason": "spam"});
        erase_event_data(&mut by_operator, "client:cli_1", &literals);
        assert_eq!(by_operator["note"], ERASED);
        assert_eq!(by_operator["reason"], ERASED);
        assert_eq!(by_operator["status"], "rejected");
        let mut by_router = json!({"reason": "no rung left", "why": "张三 is a consumer"});
        erase_event_data(&mut by_router, "system:router", &literals);
        assert_eq!(by_router["reason"], "no rung left");
        assert_eq!(by_router["why"], "[erased] is a consumer");
    }
}
