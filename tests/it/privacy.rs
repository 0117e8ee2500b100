//! Personal data (PIPL): masking in error answers, the export of everything held about one
//! complainant, erasure that keeps the anonymised case, and the audit log of both.

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use diesel::{sql_types::Text, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use redress_tests::{example_complaint, TestApp};
use serde_json::{json, Value};

const PHONE: &str = "13800138000";
const NAME: &str = "王小明";
const MERCHANT_NO: &str = "822290070999999";
const TERMINAL_SN: &str = "N5NLA0000001";
const SUMMARY: &str = "押金未退还，王小明专用摘要";
const PAN: &str = "6222021234567890128";
const MASKED_PAN: &str = "622202*********0128";
const NOTE: &str = "已回电 13800138000 核实押金";

fn complaint_of_a(phone: &str) -> Value {
    let mut c = example_complaint();
    c["complainant"] =
        json!({"name": NAME, "phone": phone, "kind": "consumer", "region": "310115"});
    c["respondent"]["merchant_no"] = json!(MERCHANT_NO);
    c["respondent"]["terminal_sn"] = json!(TERMINAL_SN);
    c["summary"] = json!(SUMMARY);
    c["description"] = json!(format!("卡号 {PAN} 被扣押金，联系 {NAME}"));
    c
}

fn complaint_of_b() -> Value {
    let mut c = example_complaint();
    c["complainant"] =
        json!({"name": "李四", "phone": "13900139000", "kind": "consumer", "region": "110101"});
    c["respondent"]["merchant_no"] = json!("822290070555555");
    c
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Files a complaint with an Idempotency-Key (so a key record exists for erasure to reach)
/// and returns its id.
async fn file(app: &TestApp, token: &str, body: &Value) -> String {
    let r = app
        .file_with_key(token, &uuid::Uuid::new_v4().to_string(), body)
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

struct Setup {
    app: TestApp,
    token: String,
    a: Vec<String>,
    b: String,
}

/// A tenant with a webhook endpoint, two complaints of A (the phone written two ways), one
/// of B, all routed, and an operator's note on A's first naming A's phone.
async fn setup() -> Setup {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let (status, ep) = post(
        &app,
        &token,
        "/v1/webhook-endpoints",
        &json!({"url": "http://127.0.0.1:9/hooks", "events": ["complaint.routed", "complaint.status_changed"]}),
    )
    .await;
    assert_eq!(status, 201, "{ep}");
    let a1 = file(&app, &token, &complaint_of_a(PHONE)).await;
    let a2 = file(&app, &token, &complaint_of_a("+86 138-0013-8000")).await;
    let b = file(&app, &token, &complaint_of_b()).await;
    for id in [&a1, &a2, &b] {
        app.wait_for_status(&token, id, "routed", Duration::from_secs(10))
            .await;
    }
    let (status, body) = post(
        &app,
        &token,
        &format!("/v1/complaints/{a1}/transitions"),
        &json!({"action": "acknowledge", "note": NOTE, "channel_reference": "CS-7781"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    Setup {
        app,
        token,
        a: vec![a1, a2],
        b,
    }
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Every `table.column` of text, character or JSON type (arrays of them included) that
/// holds `needle` anywhere.
async fn occurrences(db: &mut AsyncPgConnection, needle: &str) -> Vec<String> {
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name \
         FROM information_schema.columns c \
         JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
           AND (c.data_type IN ('text', 'jsonb', 'json', 'character varying', 'character') \
                OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar', '_jsonb')))",
    )
    .load(db)
    .await
    .unwrap();
    assert!(
        columns.len() > 20,
        "the catalog query found too few columns"
    );
    let mut found = Vec::new();
    for c in columns {
        let q = format!(
            "SELECT count(*) AS n FROM \"{}\" WHERE \"{}\"::text LIKE $1",
            c.table_name, c.column_name
        );
        let n: Count = diesel::sql_query(q)
            .bind::<Text, _>(format!("%{needle}%"))
            .get_result(db)
            .await
            .unwrap();
        if n.n > 0 {
            found.push(format!("{}.{}", c.table_name, c.column_name));
        }
    }
    found
}

#[derive(QueryableByName, Debug, PartialEq)]
struct CaseFacts {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    category: String,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    last_sequence: i32,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    history: String,
    #[diesel(sql_type = Text)]
    clocks: String,
}

/// What statistics and SLA reports read of a case: must survive erasure unchanged.
async fn facts(db: &mut AsyncPgConnection, id: &str) -> CaseFacts {
    diesel::sql_query(
        "SELECT status, category, provider, last_sequence, created_at, updated_at, \
           (SELECT string_agg(sequence || ':' || event_type || ':' || at, ',' ORDER BY sequence) \
              FROM complaint_events e WHERE e.complaint_id = c.id) AS history, \
           coalesce((SELECT string_agg(clock || ':' || state || ':' || coalesce(due_at::text, ''), ',' ORDER BY id) \
              FROM sla_clocks s WHERE s.complaint_id = c.id), '') AS clocks \
         FROM complaints c WHERE id = $1",
    )
    .bind::<Text, _>(id)
    .get_result(db)
    .await
    .unwrap()
}

async fn ids_of(db: &mut AsyncPgConnection, sql: &str, ids: &[String]) -> BTreeSet<String> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let rows: Vec<Id> = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Array<Text>, _>(ids.to_vec())
        .load(db)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_every_record_of_the_complainant_and_nothing_of_another() {
    let s = setup().await;
    let app = &s.app;
    let (status, first) = post(
        app,
        &s.token,
        "/v1/complainants/export",
        &json!({"phone": "138 0013 8000"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    // A second export by complaint id finds the same complainant, and the first export in
    // its audit part.
    let (status, doc) = post(
        app,
        &s.token,
        "/v1/complainants/export",
        &json!({"complaint_id": s.a[1]}),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["found_by"], "complaint_id");

    let mut db = app.db().await;
    let exported: BTreeSet<String> = doc["complaints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["complaint"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(exported, s.a.iter().cloned().collect::<BTreeSet<_>>());

    let events_in_db = ids_of(
        &mut db,
        "SELECT id FROM complaint_events WHERE complaint_id = ANY($1)",
        &s.a,
    )
    .await;
    let messages_in_db = ids_of(
        &mut db,
        "SELECT m.id FROM webhook_messages m, unnest($1::text[]) c(id) WHERE m.body LIKE '%' || c.id || '%'",
        &s.a,
    )
    .await;
    assert!(
        !messages_in_db.is_empty(),
        "the setup should have queued webhooks"
    );
    let mut events = BTreeSet::new();
    let mut messages = BTreeSet::new();
    let mut idempotency = 0;
    for c in doc["complaints"].as_array().unwrap() {
        assert_eq!(c["complaint"]["details"]["complainant"]["name"], NAME);
        assert_eq!(c["evidence"][0]["kind"], "payment_receipt");
        for e in c["events"].as_array().unwrap() {
            events.insert(e["id"].as_str().unwrap().to_owned());
        }
        for m in c["webhook_messages"].as_array().unwrap() {
            messages.insert(m["id"].as_str().unwrap().to_owned());
            assert!(m["delivery_attempts"].is_array());
        }
        idempotency += c["idempotency_records"].as_array().unwrap().len();
    }
    assert_eq!(events, events_in_db);
    assert_eq!(messages, messages_in_db);
    assert_eq!(idempotency, 2);
    let audit = doc["audit"].as_array().unwrap();
    assert!(
        audit.iter().any(|e| e["action"] == "complainant.exported"),
        "{audit:?}"
    );

    // Nothing of B.
    let text = doc.to_string();
    for other in [s.b.as_str(), "李四", "13900139000", "822290070555555"] {
        assert!(!text.contains(other), "{other} leaked into the export");
    }
    assert!(text.contains(PHONE) && text.contains(NOTE));
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_personal_field_anywhere_and_keeps_counts_status_and_timings() {
    let s = setup().await;
    let app = &s.app;
    let mut db = app.db().await;
    let needles = [
        PHONE,
        "138-0013-8000",
        NAME,
        MERCHANT_NO,
        TERMINAL_SN,
        SUMMARY,
        MASKED_PAN,
        "CS-7781",
    ];
    // The search works: before erasure every needle is somewhere, and the full PAN nowhere.
    for n in needles {
        assert!(
            !occurrences(&mut db, n).await.is_empty(),
            "{n} not found before erasure"
        );
    }
    assert!(occurrences(&mut db, PAN).await.is_empty());
    let mut before = Vec::new();
    for id in &s.a {
        before.push(facts(&mut db, id).await);
    }

    let (status, erased) = post(
        app,
        &s.token,
        "/v1/complainants/erase",
        &json!({"phone": "+8613800138000"}),
    )
    .await;
    assert_eq!(status, 200, "{erased}");
    let erased_ids: BTreeSet<String> = erased["complaints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(erased_ids, s.a.iter().cloned().collect::<BTreeSet<_>>());

    for n in needles {
        let left = occurrences(&mut db, n).await;
        assert!(left.is_empty(), "{n} is still in {left:?}");
    }
    for (id, was) in s.a.iter().zip(&before) {
        assert_eq!(&facts(&mut db, id).await, was, "{id} changed");
    }
    // B keeps everything.
    assert!(!occurrences(&mut db, "13900139000").await.is_empty());
    assert!(!occurrences(&mut db, "李四").await.is_empty());

    // The anonymised case still reads as a complaint.
    let (code, view) = app
        .get_json(&s.token, &format!("/v1/complaints/{}", s.a[0]))
        .await;
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["complainant"]["name"], "[erased]");
    assert_eq!(view["category"], "deposit_not_refunded");
    assert!(view["complainant"].get("phone").is_none());

    // Idempotent: by complaint id it finds the case again and changes nothing more.
    let (status, again) = post(
        app,
        &s.token,
        "/v1/complainants/erase",
        &json!({"complaint_id": s.a[0]}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["events_changed"], 0);
    assert_eq!(again["idempotency_records_changed"], 0);
    for (id, was) in s.a.iter().zip(&before) {
        assert_eq!(&facts(&mut db, id).await, was);
    }

    // Both are in the audit log, newest first, without the erased data.
    let (_, export) = post(
        app,
        &s.token,
        "/v1/complainants/export",
        &json!({"complaint_id": s.a[0]}),
    )
    .await;
    assert!(!export.to_string().contains(PHONE));
    let (code, audit) = app.get_json(&s.token, "/v1/audit?limit=100").await;
    assert_eq!(code, 200, "{audit}");
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "complainant.exported", "{actions:?}");
    assert_eq!(actions[1], "complainant.erased");
    assert_eq!(actions[2], "complainant.erased");
    assert!(actions.contains(&"webhook_endpoint.created"), "{actions:?}");
    assert!(!audit.to_string().contains(PHONE));
    let (code, page) = app.get_json(&s.token, "/v1/audit?limit=1").await;
    assert_eq!(code, 200);
    let before_id = page["next_before"].as_i64().unwrap();
    let (_, older) = app
        .get_json(&s.token, &format!("/v1/audit?limit=1&before={before_id}"))
        .await;
    assert_eq!(older["data"][0]["action"], "complainant.erased");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_can_neither_export_nor_erase_nor_read_the_audit_log() {
    let s = setup().await;
    let app = &s.app;
    let (_, intruder) = app.tenant_and_token().await;
    for subject in [json!({"phone": PHONE}), json!({"complaint_id": s.a[0]})] {
        let (status, doc) = post(app, &intruder, "/v1/complainants/export", &subject).await;
        assert_eq!(status, 200);
        assert_eq!(doc["complaints"], json!([]));
        let (status, erased) = post(app, &intruder, "/v1/complainants/erase", &subject).await;
        assert_eq!(status, 200);
        assert_eq!(erased["complaints"], json!([]));
    }
    let mut db = app.db().await;
    assert!(!occurrences(&mut db, NAME).await.is_empty());
    let (_, audit) = app.get_json(&intruder, "/v1/audit").await;
    assert!(!audit.to_string().contains(&s.a[0]));
    assert!(!audit.to_string().contains("webhook_endpoint.created"));

    // Partners without tenant:admin may not ask at all.
    let t = app.create_tenant(Some("cn-pos")).await;
    let partner = app
        .token(
            &t.client_id,
            &t.client_secret,
            Some("complaints:write complaints:read"),
        )
        .await;
    let (status, _) = post(
        app,
        &partner,
        "/v1/complainants/export",
        &json!({"phone": PHONE}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, problem) = post(
        app,
        &s.token,
        "/v1/complainants/erase",
        &json!({"phone": PHONE, "complaint_id": s.a[0]}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_error_never_echoes_a_full_phone_or_card_number() {
    let app = TestApp::spawn_with(redress_tests::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let mut bad = complaint_of_a(PAN);
    bad["amount_claimed"] = json!(PHONE.parse::<u64>().unwrap());
    bad["occurred_on"] = json!(PHONE);
    let r = app.file(&token, &bad).await;
    assert_eq!(r.status(), 422);
    let text = r.text().await.unwrap();
    assert!(!text.contains(PHONE) && !text.contains(PAN), "{text}");
    // serde's own messages quote the value they refused.
    let r = app
        .http
        .put(app.url("/v1/routing"))
        .bearer_auth(&token)
        .json(&json!({"base_version": PHONE, "routing": {}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let text = r.text().await.unwrap();
    assert!(!text.contains(PHONE), "{text}");
    app.stop().await;
}
