//! CONTRACT §5: webhook endpoints over HTTP, deliveries through the real dispatcher to a
//! local receiver, verified with the independent `standardwebhooks` crate; and, at the
//! database level, the dispatcher's concurrency, throttling, disabling and leasing.

use std::time::Duration;

use chrono::Utc;
use diesel_async::RunQueryDsl;
use redress_shared::{
    config::Settings,
    db,
    ids::{TenantId, WebhookEndpointId},
    webhooks::{
        model::{self, EndpointPatch, NewEndpoint},
        schedule::Decision,
        sender::{DeliveryOutcome, WebhookSender},
        ssrf::Policy,
        store,
        testing::{Received, Receiver, Reply},
    },
};
use redress_tests::{example_complaint, fresh_database, Options, TestApp};
use redress_worker::webhooks::Dispatcher;
use serde_json::{json, Value};

const PHONE: &str = "13800138000";

/// Retries after 1 s, no jitter, a dispatcher that looks every 50 ms: the whole retry story
/// plays out within a test's patience.
fn fast_webhooks(s: &mut Settings) {
    s.webhooks.retry_schedule_secs = vec![1, 1];
    s.webhooks.jitter = 0.0;
    s.webhooks.timeout_ms = 2_000;
    s.webhooks.poll_interval_ms = 50;
}

async fn spawn_fast() -> TestApp {
    TestApp::spawn_with(Options {
        tweak: Box::new(fast_webhooks),
        ..Default::default()
    })
    .await
}

async fn api_only() -> TestApp {
    TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await
}

async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(app, token, reqwest::Method::POST, path, Some(body)).await
}

/// Registers an endpoint and returns it with its secret.
async fn register(app: &TestApp, token: &str, url: &str, events: &[&str]) -> Value {
    let (status, body) = post(
        app,
        token,
        "/v1/webhook-endpoints",
        json!({"url": url, "events": events, "description": "CRM"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Waits until the receiver has seen at least `n` requests.
async fn wait_for_requests(rx: &Receiver, n: usize, within: Duration) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = rx.requests();
        if seen.len() >= n {
            return seen;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "the receiver saw {} request(s), expected {n} within {within:?}",
                seen.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `path` until `done` holds for its body, or panics after `within`.
async fn wait_for_json(
    app: &TestApp,
    token: &str,
    path: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, body) = app.get_json(token, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        if done(&body) {
            return body;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{path} did not reach the expected state within {within:?}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn verify(secret: &str, r: &Received) -> Result<(), standardwebhooks::WebhookError> {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&r.body, &r.headers)
}

fn body_of(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

// ---------------------------------------------------------------------------------------
// End to end through the API, the router and the dispatcher
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_complaint_sends_routed_and_status_changed_webhooks_that_the_reference_library_verifies(
) {
    let app = spawn_fast().await;
    let (_, token) = app.tenant_and_token().await;
    let rx = Receiver::always(Reply::status(204)).await.unwrap();
    let endpoint = register(
        &app,
        &token,
        &rx.url("/hooks/redress"),
        &["complaint.routed", "complaint.status_changed"],
    )
    .await;
    let secret = str_of(&endpoint, "secret");
    assert!(secret.starts_with("whsec_"));
    let endpoint_id = str_of(&endpoint, "id");
    assert!(endpoint_id.starts_with("whe_"));
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(
        endpoint["events"],
        json!(["complaint.routed", "complaint.status_changed"])
    );

    let complaint = example_complaint();
    let r = app.file(&token, &complaint).await;
    assert_eq!(r.status(), 202);
    let filed: Value = r.json().await.unwrap();
    let complaint_id = str_of(&filed, "id");

    let seen = wait_for_requests(&rx, 2, Duration::from_secs(10)).await;
    let mut types = Vec::new();
    for r in &seen {
        verify(secret, r).unwrap_or_else(|e| panic!("the reference library refused {r:?}: {e:?}"));
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/redress");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("webhook-id").unwrap().starts_with("msg_"));
        let raw = String::from_utf8(r.body.clone()).unwrap();
        assert!(
            !raw.contains(PHONE),
            "the phone number is in a webhook body: {raw}"
        );
        let body = body_of(r);
        assert!(body["timestamp"].is_string(), "{body}");
        let data = &body["data"];
        assert_eq!(data["complaint_id"], complaint_id);
        assert_eq!(data["external_ref"], complaint["external_ref"]);
        assert_eq!(data["status"], "routed");
        assert_eq!(data["previous_status"], "submitted");
        assert_eq!(data["channel"], "provider_service");
        assert!(data["sequence"].as_i64().unwrap() >= 2, "{data}");
        assert!(data["deadlines"].is_array(), "{data}");
        types.push(str_of(&body, "type").to_owned());
    }
    types.sort();
    assert_eq!(types, ["complaint.routed", "complaint.status_changed"]);
    assert_ne!(
        seen[0].header("webhook-id"),
        seen[1].header("webhook-id"),
        "one message per event type"
    );
    // A signature made with another secret does not verify.
    let stranger =
        standardwebhooks::Webhook::new(&redress_shared::webhooks::signing::generate_secret())
            .unwrap();
    assert!(stranger.verify(&seen[0].body, &seen[0].headers).is_err());

    // The delivery log and the messages agree with what the receiver saw.
    let messages = wait_for_json(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/messages"),
        Duration::from_secs(5),
        |b| {
            b["data"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d.iter().all(|m| m["status"] == "delivered"))
        },
    )
    .await;
    for m in messages["data"].as_array().unwrap() {
        assert_eq!(m["attempts"], 1);
        assert_eq!(m["payload"]["data"]["complaint_id"], complaint_id);
        assert!(seen
            .iter()
            .any(|r| r.header("webhook-id") == m["id"].as_str()));
    }
    let (status, log) = app
        .get_json(
            &token,
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"),
        )
        .await;
    assert_eq!(status, 200);
    let attempts = log["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{log}");
    for a in attempts {
        assert_eq!(a["status_code"], 204);
        assert_eq!(a["attempt"], 1);
        assert!(a["latency_ms"].as_i64().unwrap() >= 0);
        assert!(a["attempted_at"].is_string());
        assert!(a.get("error").is_none(), "{a}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_same_webhook_id_with_a_fresh_signature_until_it_recovers() {
    let app = spawn_fast().await;
    let (_, token) = app.tenant_and_token().await;
    let rx = Receiver::start(|n| {
        if n == 0 {
            Reply::status(500).body("database down")
        } else {
            Reply::status(200)
        }
    })
    .await
    .unwrap();
    let endpoint = register(&app, &token, &rx.url("/"), &["complaint.status_changed"]).await;
    let (secret, endpoint_id) = (str_of(&endpoint, "secret"), str_of(&endpoint, "id"));

    assert_eq!(app.file(&token, &example_complaint()).await.status(), 202);
    let seen = wait_for_requests(&rx, 2, Duration::from_secs(10)).await;
    assert_eq!(seen[0].header("webhook-id"), seen[1].header("webhook-id"));
    assert_ne!(
        seen[0].header("webhook-timestamp"),
        seen[1].header("webhook-timestamp")
    );
    assert_ne!(
        seen[0].header("webhook-signature"),
        seen[1].header("webhook-signature")
    );
    assert_eq!(
        seen[0].body, seen[1].body,
        "every attempt sends the bytes stored once"
    );
    assert!(
        seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(900),
        "the retry waited for its schedule"
    );
    for r in &seen {
        verify(secret, r).unwrap();
    }
    let msg_id = seen[0].header("webhook-id").unwrap().to_owned();

    let path = format!("/v1/webhook-endpoints/{endpoint_id}/deliveries?message={msg_id}");
    let log = wait_for_json(&app, &token, &path, Duration::from_secs(5), |b| {
        b["data"].as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    let attempts = log["data"].as_array().unwrap();
    // Newest first.
    assert_eq!(attempts[0]["attempt"], 2);
    assert_eq!(attempts[0]["status_code"], 200);
    assert!(attempts[0].get("error_kind").is_none());
    assert_eq!(attempts[1]["attempt"], 1);
    assert_eq!(attempts[1]["status_code"], 500);
    assert_eq!(attempts[1]["error_kind"], "http_status");
    assert_eq!(attempts[1]["error"], "HTTP 500");
    assert_eq!(attempts[1]["response_excerpt"], "database down");
    assert_eq!(attempts[1]["message_id"], msg_id.as_str());
    assert_eq!(attempts[1]["event_type"], "complaint.status_changed");

    let message = wait_for_json(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}"),
        Duration::from_secs(5),
        |m| m["status"] == "delivered",
    )
    .await;
    assert_eq!(message["attempts"], 2);
    assert!(message.get("last_error").is_none(), "{message}");
    let (_, ep) = app
        .get_json(&token, &format!("/v1/webhook-endpoints/{endpoint_id}"))
        .await;
    assert!(
        ep.get("failing_since").is_none(),
        "a success closes the failure window: {ep}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_answering_410_is_disabled_the_tenant_is_told_and_it_can_be_enabled_again() {
    let app = spawn_fast().await;
    let (_, token) = app.tenant_and_token().await;
    let gone = Receiver::always(Reply::status(410)).await.unwrap();
    let ops = Receiver::always(Reply::status(200)).await.unwrap();
    let endpoint = register(
        &app,
        &token,
        &gone.url("/old"),
        &["complaint.status_changed"],
    )
    .await;
    let endpoint_id = str_of(&endpoint, "id");
    let ops_endpoint = register(
        &app,
        &token,
        &ops.url("/ops"),
        &["webhook_endpoint.disabled"],
    )
    .await;

    let (status, sent) = post(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/test"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    wait_for_requests(&gone, 1, Duration::from_secs(10)).await;

    let ep = wait_for_json(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}"),
        Duration::from_secs(5),
        |e| e["enabled"] == false,
    )
    .await;
    assert!(str_of(&ep, "disabled_reason").contains("410"), "{ep}");
    assert!(ep["disabled_at"].is_string());

    // The tenant's endpoint for the notice hears about it, signed with its own secret.
    let notice = wait_for_requests(&ops, 1, Duration::from_secs(10)).await;
    verify(str_of(&ops_endpoint, "secret"), &notice[0]).unwrap();
    let body = body_of(&notice[0]);
    assert_eq!(body["type"], "webhook_endpoint.disabled");
    assert_eq!(body["data"]["endpoint_id"], endpoint_id);

    // Nothing more goes to a disabled endpoint.
    assert_eq!(app.file(&token, &example_complaint()).await.status(), 202);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(gone.requests().len(), 1);

    // The tenant switches it back on: the hub's reason is forgotten.
    let (status, ep) = send(
        &app,
        &token,
        reqwest::Method::PATCH,
        &format!("/v1/webhook-endpoints/{endpoint_id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{ep}");
    assert_eq!(ep["enabled"], true);
    assert!(
        ep.get("disabled_reason").is_none() && ep.get("failing_since").is_none(),
        "{ep}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_verify_and_after_the_overlap_only_the_new_one() {
    let app = spawn_fast().await;
    let (_, token) = app.tenant_and_token().await;
    let rx = Receiver::always(Reply::status(204)).await.unwrap();
    let endpoint = register(&app, &token, &rx.url("/"), &["complaint.routed"]).await;
    let (old, endpoint_id) = (
        str_of(&endpoint, "secret").to_owned(),
        str_of(&endpoint, "id"),
    );

    let (status, rotated) = post(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = str_of(&rotated, "secret").to_owned();
    assert!(new.starts_with("whsec_"));
    assert_ne!(new, old);
    let expires =
        chrono::DateTime::parse_from_rfc3339(str_of(&rotated, "previous_secret_expires_at"))
            .unwrap();
    let overlap = expires.with_timezone(&Utc) - Utc::now();
    assert!(
        (23..=24).contains(&overlap.num_hours()),
        "overlap {overlap}"
    );

    // Secrets are shown by create and rotate only.
    let (_, ep) = app
        .get_json(&token, &format!("/v1/webhook-endpoints/{endpoint_id}"))
        .await;
    assert!(ep.get("secret").is_none(), "{ep}");
    let (_, list) = app.get_json(&token, "/v1/webhook-endpoints").await;
    assert!(!list.to_string().contains("whsec_"), "{list}");

    let (status, _) = post(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/test"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let seen = wait_for_requests(&rx, 1, Duration::from_secs(10)).await;
    assert_eq!(
        seen[0]
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    verify(&old, &seen[0]).expect("the previous secret still verifies during the overlap");
    verify(&new, &seen[0]).expect("the new secret verifies");

    // The overlap ends (moved into the past: the test owns its database).
    let mut conn = app.db().await;
    diesel::sql_query(format!(
        "UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 second' WHERE id = '{endpoint_id}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let (status, _) = post(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/test"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let seen = wait_for_requests(&rx, 2, Duration::from_secs(10)).await;
    assert_eq!(
        seen[1]
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    verify(&new, &seen[1]).unwrap();
    assert!(
        verify(&old, &seen[1]).is_err(),
        "the retired secret must no longer verify"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_and_a_manual_redelivery_appear_in_the_delivery_log_under_one_webhook_id() {
    let app = spawn_fast().await;
    let (_, token) = app.tenant_and_token().await;
    let rx = Receiver::always(Reply::status(200).body("ok"))
        .await
        .unwrap();
    let endpoint = register(&app, &token, &rx.url("/"), &["complaint.escalated"]).await;
    let (secret, endpoint_id) = (str_of(&endpoint, "secret"), str_of(&endpoint, "id"));

    let r = app
        .http
        .post(app.url(&format!("/v1/webhook-endpoints/{endpoint_id}/test")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let sent: Value = r.json().await.unwrap();
    let msg_id = str_of(&sent, "message_id").to_owned();
    assert!(msg_id.starts_with("msg_"));
    assert_eq!(
        location,
        format!("/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}")
    );

    let seen = wait_for_requests(&rx, 1, Duration::from_secs(10)).await;
    verify(secret, &seen[0]).unwrap();
    assert_eq!(seen[0].header("webhook-id"), Some(msg_id.as_str()));
    let test_body = body_of(&seen[0]);
    assert_eq!(test_body["type"], "webhook.test");
    assert_eq!(test_body["data"]["endpoint_id"], endpoint_id);
    wait_for_json(&app, &token, &location, Duration::from_secs(5), |m| {
        m["status"] == "delivered"
    })
    .await;

    // Redelivery by hand: same webhook-id and body, a fresh attempt in the log.
    let (status, redelivered) = post(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}/redeliver"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{redelivered}");
    assert_eq!(redelivered["id"], msg_id.as_str());
    assert_eq!(redelivered["status"], "pending");
    let seen = wait_for_requests(&rx, 2, Duration::from_secs(10)).await;
    assert_eq!(seen[1].header("webhook-id"), Some(msg_id.as_str()));
    assert_eq!(seen[1].body, seen[0].body);
    verify(secret, &seen[1]).unwrap();

    let log = wait_for_json(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"),
        Duration::from_secs(5),
        |b| b["data"].as_array().is_some_and(|d| d.len() == 2),
    )
    .await;
    let attempts = log["data"].as_array().unwrap();
    assert!(attempts.iter().all(|a| a["message_id"] == msg_id.as_str()
        && a["status_code"] == 200
        && a["event_type"] == "webhook.test"));
    assert_eq!(attempts[0]["attempt"], 2);
    assert_eq!(attempts[0]["response_excerpt"], "ok");
    let message = wait_for_json(&app, &token, &location, Duration::from_secs(5), |m| {
        m["status"] == "delivered"
    })
    .await;
    assert_eq!(message["attempts"], 2);

    // The log pages backwards with `before`.
    let (_, page) = app
        .get_json(
            &token,
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=1"),
        )
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let before = page["next_before"].as_i64().unwrap();
    assert_eq!(page["data"][0]["id"], attempts[0]["id"]);
    let (_, older) = app
        .get_json(
            &token,
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=1&before={before}"),
        )
        .await;
    assert_eq!(older["data"][0]["id"], attempts[1]["id"]);
    assert!(older["next_before"].is_null());
    let (_, msgs) = app
        .get_json(
            &token,
            &format!("/v1/webhook-endpoints/{endpoint_id}/messages?status=delivered"),
        )
        .await;
    assert_eq!(msgs["data"].as_array().unwrap().len(), 1);
    let (status, problem) = app
        .get_json(
            &token,
            &format!(
                "/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=0&message=nope&before=x"
            ),
        )
        .await;
    assert_eq!(status, 422);
    let params: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["limit", "message", "before"]);

    // An unknown message is 404.
    let (status, _) = post(
        &app,
        &token,
        &format!("/v1/webhook-endpoints/{endpoint_id}/messages/msg_0000000000000000/redeliver"),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// The API alone
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_refused_at_registration_with_a_422_naming_the_url() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        tweak: Box::new(|s| s.webhook_allow_loopback = false),
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://100.64.0.1/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://2130706433/hook",
        "https://localhost/hook",
        "http://hooks.partner.example/redress",
    ] {
        let r = app
            .http
            .post(app.url("/v1/webhook-endpoints"))
            .bearer_auth(&token)
            .json(&json!({"url": url, "events": ["complaint.routed"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{url} was accepted");
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let problem: Value = r.json().await.unwrap();
        let errors = problem["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{url}: {problem}");
        assert_eq!(errors[0]["pointer"], "/url", "{url}: {problem}");
        assert!(!str_of(&errors[0], "detail").is_empty());
    }
    // The decimal form is named for the address it encodes.
    let (_, problem) = post(
        &app,
        &token,
        "/v1/webhook-endpoints",
        json!({"url": "https://2130706433/", "events": ["complaint.routed"]}),
    )
    .await;
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{problem}"
    );
    let (_, list) = app.get_json(&token, "/v1/webhook-endpoints").await;
    assert_eq!(list["data"], json!([]), "nothing refused was stored");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowing_loopback_opens_only_loopback_and_every_bad_field_is_named() {
    let app = api_only().await;
    let (_, token) = app.tenant_and_token().await;
    for url in [
        "http://10.0.0.1/hook",
        "https://169.254.169.254/",
        "https://[::ffff:127.0.0.1]/",
        "https://0.0.0.0/",
        "https://[fd00::1]/",
        "http://hooks.partner.example/",
    ] {
        let (status, problem) = post(
            &app,
            &token,
            "/v1/webhook-endpoints",
            json!({"url": url, "events": ["complaint.routed"]}),
        )
        .await;
        assert_eq!(status, 422, "{url} was accepted with loopback allowed");
        assert_eq!(problem["errors"][0]["pointer"], "/url");
    }
    let (status, _) = post(
        &app,
        &token,
        "/v1/webhook-endpoints",
        json!({"url": "http://127.0.0.1:9/hook", "events": ["complaint.routed"]}),
    )
    .await;
    assert_eq!(status, 201);

    let (status, problem) = post(
        &app,
        &token,
        "/v1/webhook-endpoints",
        json!({"url": "https://10.0.0.1/", "events": ["complaint.created", "complaint.routed"], "description": "x".repeat(501)}),
    )
    .await;
    assert_eq!(status, 422);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/url", "/events/0", "/description"]);
    let (status, problem) = post(
        &app,
        &token,
        "/v1/webhook-endpoints",
        json!({"url": 7, "events": "all", "secret": "mine"}),
    )
    .await;
    assert_eq!(status, 422);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/secret", "/url", "/events"]);
    let (status, problem) = post(
        &app,
        &token,
        "/v1/webhook-endpoints",
        json!({"url": "https://93.184.215.14/", "events": []}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/events");
    let r = app
        .http
        .post(app.url("/v1/webhook-endpoints"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_listed_oldest_first_with_cursors_and_can_be_changed_and_deleted() {
    let app = api_only().await;
    let (_, token) = app.tenant_and_token().await;
    let mut ids = Vec::new();
    for port in [9001, 9002, 9003] {
        let ep = register(
            &app,
            &token,
            &format!("http://127.0.0.1:{port}/"),
            &["complaint.routed"],
        )
        .await;
        ids.push(str_of(&ep, "id").to_owned());
    }
    let (_, first) = app.get_json(&token, "/v1/webhook-endpoints?limit=2").await;
    let page: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(e, "id"))
        .collect();
    assert_eq!(page, [ids[0].as_str(), ids[1].as_str()]);
    let cursor = str_of(&first, "next_cursor");
    let (_, second) = app
        .get_json(
            &token,
            &format!("/v1/webhook-endpoints?limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(second["data"][0]["id"], ids[2].as_str());
    assert!(second["next_cursor"].is_null());
    let (status, _) = app
        .get_json(&token, "/v1/webhook-endpoints?cursor=bogus&limit=500")
        .await;
    assert_eq!(status, 422);

    let path = format!("/v1/webhook-endpoints/{}", ids[1]);
    let (status, ep) = send(
        &app,
        &token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"events": ["complaint.sla_breached", "complaint.sla_warning"], "description": "SLA desk", "enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{ep}");
    assert_eq!(
        ep["events"],
        json!(["complaint.sla_breached", "complaint.sla_warning"])
    );
    assert_eq!(ep["description"], "SLA desk");
    assert_eq!(ep["enabled"], false);
    assert_eq!(ep["url"], "http://127.0.0.1:9002/", "absent fields stay");
    let (status, problem) = send(
        &app,
        &token,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"url": "https://169.254.169.254/"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/url");

    let (status, _) = send(&app, &token, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(app.get_json(&token, &path).await.0, 404);
    assert_eq!(
        send(&app, &token, reqwest::Method::DELETE, &path, None)
            .await
            .0,
        404
    );
    assert_eq!(
        app.get_json(&token, "/v1/webhook-endpoints/not-an-id")
            .await
            .0,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_endpoint_is_not_found_by_any_route() {
    let app = api_only().await;
    let (_, owner) = app.tenant_and_token().await;
    let (_, stranger) = app.tenant_and_token().await;
    let ep = register(
        &app,
        &owner,
        "http://127.0.0.1:9/hook",
        &["complaint.routed"],
    )
    .await;
    let id = str_of(&ep, "id");
    let (status, sent) = post(
        &app,
        &owner,
        &format!("/v1/webhook-endpoints/{id}/test"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let msg = str_of(&sent, "message_id");

    let base = format!("/v1/webhook-endpoints/{id}");
    let cases: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, base.clone(), None),
        (
            reqwest::Method::PATCH,
            base.clone(),
            Some(json!({"enabled": false})),
        ),
        (reqwest::Method::POST, format!("{base}/rotate-secret"), None),
        (reqwest::Method::GET, format!("{base}/deliveries"), None),
        (reqwest::Method::GET, format!("{base}/messages"), None),
        (reqwest::Method::GET, format!("{base}/messages/{msg}"), None),
        (
            reqwest::Method::POST,
            format!("{base}/messages/{msg}/redeliver"),
            None,
        ),
        (reqwest::Method::POST, format!("{base}/test"), None),
        (reqwest::Method::DELETE, base.clone(), None),
    ];
    for (method, path, body) in cases {
        let (status, problem) = send(&app, &stranger, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {problem}");
        assert_eq!(problem["status"], 404);
    }
    let (_, list) = app.get_json(&stranger, "/v1/webhook-endpoints").await;
    assert_eq!(list["data"], json!([]));
    // The owner's endpoint is untouched.
    let (status, still) = app.get_json(&owner, &base).await;
    assert_eq!(status, 200);
    assert_eq!(still["enabled"], true);
    assert!(still.get("previous_secret_expires_at").is_none());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_routes_need_the_webhooks_manage_scope() {
    let app = api_only().await;
    let (tenant, full) = app.tenant_and_token().await;
    let ep = register(
        &app,
        &full,
        "http://127.0.0.1:9/hook",
        &["complaint.routed"],
    )
    .await;
    let id = str_of(&ep, "id");
    let reader = app
        .token(
            &tenant.client_id,
            &tenant.client_secret,
            Some("complaints:read complaints:write"),
        )
        .await;
    for (method, path) in [
        (reqwest::Method::POST, "/v1/webhook-endpoints".to_owned()),
        (reqwest::Method::GET, "/v1/webhook-endpoints".to_owned()),
        (reqwest::Method::GET, format!("/v1/webhook-endpoints/{id}")),
        (
            reqwest::Method::POST,
            format!("/v1/webhook-endpoints/{id}/rotate-secret"),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/webhook-endpoints/{id}/deliveries"),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/webhook-endpoints/{id}/test"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/webhook-endpoints/{id}"),
        ),
    ] {
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(&reader)
            .json(&json!({"url": "http://127.0.0.1:9/", "events": ["complaint.routed"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("insufficient_scope") && challenge.contains("webhooks:manage"),
            "{challenge}"
        );
    }
    let r = app
        .http
        .get(app.url("/v1/webhook-endpoints"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nothing changed: the endpoint is still there, with one.
    assert_eq!(
        app.get_json(&full, &format!("/v1/webhook-endpoints/{id}"))
            .await
            .0,
        200
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// The dispatcher against Postgres, step by step
// ---------------------------------------------------------------------------------------

/// A migrated database of the test's own with one tenant, and a dispatcher on it that
/// the test drives round by round (`dispatch_due`).
struct DbCase {
    url: String,
    pool: db::PgPool,
    tenant: TenantId,
}

impl DbCase {
    async fn new() -> Self {
        let url = fresh_database().await;
        let pool = db::pool(&url, 4).unwrap();
        let tenant = TenantId::generate();
        let mut conn = pool.get().await.unwrap();
        db::tenants::insert_tenant(&mut conn, &tenant, "Webhook test tenant", None)
            .await
            .unwrap();
        Self { url, pool, tenant }
    }

    async fn conn(&self) -> db::PooledConn {
        self.pool.get().await.unwrap()
    }

    fn dispatcher(&self, tweak: impl FnOnce(&mut Settings)) -> Dispatcher {
        let mut s = Settings::defaults().unwrap();
        fast_webhooks(&mut s);
        tweak(&mut s);
        let sender = WebhookSender::new(
            Policy {
                allow_loopback: true,
            },
            Duration::from_millis(s.webhooks.timeout_ms),
        )
        .unwrap();
        Dispatcher::with_sender(self.pool.clone(), &s.webhooks, sender)
    }

    async fn endpoint(&self, url: &str, events: &[&str]) -> WebhookEndpointId {
        let new = NewEndpoint {
            url: url.to_owned(),
            event_types: events.iter().map(|e| (*e).to_owned()).collect(),
            description: String::new(),
            enabled: true,
        };
        let (row, _) =
            store::create_endpoint(&mut *self.conn().await, &self.tenant, &new, Utc::now())
                .await
                .unwrap();
        WebhookEndpointId::from_trusted(row.id)
    }

    async fn enqueue(&self, event_type: &str, data: Value) -> usize {
        store::enqueue_for_event(
            &mut *self.conn().await,
            &self.tenant,
            event_type,
            data,
            Utc::now(),
        )
        .await
        .unwrap()
        .len()
    }

    async fn messages(&self, endpoint: &WebhookEndpointId) -> Vec<store::MessageRow> {
        let filter = store::MessageFilter {
            limit: 100,
            ..Default::default()
        };
        store::list_messages(&mut *self.conn().await, &self.tenant, endpoint, &filter)
            .await
            .unwrap()
            .unwrap()
    }

    async fn endpoint_row(&self, endpoint: &WebhookEndpointId) -> store::EndpointRow {
        store::get_endpoint(&mut *self.conn().await, &self.tenant, endpoint)
            .await
            .unwrap()
            .unwrap()
    }

    async fn finish(self) {
        drop(self.pool);
        redress_tests::drop_database(&self.url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_at_its_concurrency_limit_is_sent_one_message_per_round_and_the_rest_stay_unleased(
) {
    let case = DbCase::new().await;
    let rx = Receiver::always(Reply::status(204).after(Duration::from_millis(100)))
        .await
        .unwrap();
    let endpoint = case
        .endpoint(&rx.url("/"), &[model::COMPLAINT_ROUTED])
        .await;
    for n in 0..3 {
        assert_eq!(
            case.enqueue(model::COMPLAINT_ROUTED, json!({"n": n})).await,
            1
        );
    }
    let d = case.dispatcher(|s| s.webhooks.per_endpoint_concurrency = 1);
    assert_eq!(d.dispatch_due().await.unwrap(), 1);
    // The two it could not start were never leased (the claim asked only for free slots).
    let waiting: Vec<_> = case
        .messages(&endpoint)
        .await
        .into_iter()
        .filter(|m| m.status == store::STATUS_PENDING)
        .collect();
    assert_eq!(waiting.len(), 2);
    assert!(
        waiting
            .iter()
            .all(|m| m.claimed_until.is_none() && m.attempts == 0),
        "{waiting:?}"
    );
    assert_eq!(d.dispatch_due().await.unwrap(), 1);
    assert_eq!(d.dispatch_due().await.unwrap(), 1);
    assert_eq!(d.dispatch_due().await.unwrap(), 0);
    assert_eq!(rx.requests().len(), 3);
    assert!(case
        .messages(&endpoint)
        .await
        .iter()
        .all(|m| m.status == store::STATUS_DELIVERED));
    case.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_to_one_endpoint_drains_as_fast_as_it_answers_not_one_batch_per_poll_interval() {
    let case = DbCase::new().await;
    let rx = Receiver::always(Reply::status(204).after(Duration::from_millis(20)))
        .await
        .unwrap();
    let endpoint = case
        .endpoint(&rx.url("/"), &[model::COMPLAINT_ROUTED])
        .await;
    for n in 0..40 {
        case.enqueue(model::COMPLAINT_ROUTED, json!({"n": n})).await;
    }
    // A poll interval long enough that one batch per poll would take 20 s for 40 messages.
    let d = case.dispatcher(|s| {
        s.webhooks.per_endpoint_concurrency = 2;
        s.webhooks.poll_interval_ms = 1_000;
    });
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(d.run(shutdown.clone()));
    let started = std::time::Instant::now();
    wait_for_delivered(&case, &endpoint, 40, Duration::from_secs(8)).await;
    let took = started.elapsed();
    shutdown.cancel();
    running.await.unwrap();
    assert!(took < Duration::from_secs(8), "40 messages took {took:?}");
    assert_eq!(rx.requests().len(), 40, "each message sent once");
    case.finish().await;
}

async fn wait_for_delivered(
    case: &DbCase,
    endpoint: &WebhookEndpointId,
    n: usize,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let delivered = case
            .messages(endpoint)
            .await
            .iter()
            .filter(|m| m.status == store::STATUS_DELIVERED)
            .count();
        if delivered >= n {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{delivered} of {n} messages delivered within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_holds_back_every_message_to_that_endpoint() {
    let case = DbCase::new().await;
    let slow = Receiver::always(Reply::status(429).header("Retry-After", "30"))
        .await
        .unwrap();
    let other = Receiver::always(Reply::status(200)).await.unwrap();
    let throttled = case
        .endpoint(&slow.url("/"), &[model::COMPLAINT_SLA_WARNING])
        .await;
    case.endpoint(&other.url("/"), &[model::COMPLAINT_SLA_BREACHED])
        .await;
    case.enqueue(model::COMPLAINT_SLA_WARNING, json!({"n": 1}))
        .await;
    let d = case.dispatcher(|_| {});
    assert_eq!(d.dispatch_due().await.unwrap(), 1);
    let row = case.endpoint_row(&throttled).await;
    let until = row.throttled_until.unwrap();
    assert!(
        until > Utc::now() + chrono::Duration::seconds(25),
        "{until}"
    );
    let first = &case.messages(&throttled).await[0];
    assert!(
        first.next_attempt_at.unwrap() >= until - chrono::Duration::seconds(1),
        "Retry-After beats the 1 s schedule"
    );

    // A new message to the throttled endpoint waits; another endpoint's goes out.
    case.enqueue(model::COMPLAINT_SLA_WARNING, json!({"n": 2}))
        .await;
    case.enqueue(model::COMPLAINT_SLA_BREACHED, json!({})).await;
    assert_eq!(d.dispatch_due().await.unwrap(), 1);
    assert_eq!(slow.requests().len(), 1);
    assert_eq!(other.requests().len(), 1);
    case.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_days_is_disabled_its_backlog_failed_and_reenabling_gives_a_fresh_window(
) {
    let case = DbCase::new().await;
    let failing = Receiver::always(Reply::status(503)).await.unwrap();
    let ops = Receiver::always(Reply::status(200)).await.unwrap();
    let endpoint = case
        .endpoint(&failing.url("/"), &[model::COMPLAINT_SLA_BREACHED])
        .await;
    case.endpoint(&ops.url("/ops"), &[model::ENDPOINT_DISABLED])
        .await;
    let d = case.dispatcher(|_| {});

    // One failure opens the window; it is not enough to disable.
    case.enqueue(model::COMPLAINT_SLA_BREACHED, json!({"n": 1}))
        .await;
    assert_eq!(d.dispatch_due().await.unwrap(), 1);
    let row = case.endpoint_row(&endpoint).await;
    assert!(row.enabled && row.failing_since.is_some(), "{row:?}");

    // Six days later (moved back in the database the test owns), the next failure disables.
    diesel::sql_query(format!(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' WHERE id = '{endpoint}'"
    ))
    .execute(&mut *case.conn().await)
    .await
    .unwrap();
    case.enqueue(model::COMPLAINT_SLA_BREACHED, json!({"n": 2}))
        .await;
    d.dispatch_due().await.unwrap();
    let row = case.endpoint_row(&endpoint).await;
    assert!(!row.enabled, "{row:?}");
    assert!(
        row.disabled_reason
            .as_deref()
            .unwrap()
            .contains("no successful delivery since"),
        "{row:?}"
    );
    let messages = case.messages(&endpoint).await;
    assert!(
        messages.iter().all(|m| m.status == store::STATUS_FAILED),
        "the backlog is given up: {messages:?}"
    );
    assert!(messages.iter().all(|m| m.next_attempt_at.is_none()));

    // The notice goes out in the next round.
    assert_eq!(d.dispatch_due().await.unwrap(), 1);
    let notice = ops.requests();
    assert_eq!(notice.len(), 1);
    let body = body_of(&notice[0]);
    assert_eq!(body["type"], model::ENDPOINT_DISABLED);
    assert_eq!(body["data"]["endpoint_id"], endpoint.as_str());

    let patch = EndpointPatch {
        enabled: Some(true),
        ..Default::default()
    };
    let back = store::update_endpoint(
        &mut *case.conn().await,
        &case.tenant,
        &endpoint,
        &patch,
        Utc::now(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        back.enabled
            && back.failing_since.is_none()
            && back.disabled_reason.is_none()
            && back.disabled_at.is_none()
    );
    case.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_takes_no_more_per_endpoint_than_the_endpoint_has_free_slots() {
    let case = DbCase::new().await;
    let busy = case
        .endpoint(
            "http://127.0.0.1:9/a",
            &[model::COMPLAINT_EVIDENCE_REQUESTED],
        )
        .await;
    let quiet = case
        .endpoint(
            "http://127.0.0.1:9/b",
            &[model::COMPLAINT_EVIDENCE_REQUESTED],
        )
        .await;
    // Each event goes to both endpoints: 10 messages each.
    for _ in 0..10 {
        case.enqueue(model::COMPLAINT_EVIDENCE_REQUESTED, json!({}))
            .await;
    }
    let mut conn = case.conn().await;
    let lease = Duration::from_secs(60);
    let in_flight = vec![(busy.to_string(), 3)];
    let claimed = store::claim_due(&mut conn, Utc::now(), 64, lease, &in_flight, 4)
        .await
        .unwrap();
    let to = |ep: &WebhookEndpointId| {
        claimed
            .iter()
            .filter(|m| m.endpoint_id == ep.as_str())
            .count()
    };
    assert_eq!(to(&busy), 1, "3 of 4 slots of the busy endpoint are in use");
    assert_eq!(to(&quiet), 4, "the quiet endpoint has all 4 slots free");
    // The batch limit still holds across endpoints.
    let more = store::claim_due(&mut conn, Utc::now(), 2, lease, &[], 4)
        .await
        .unwrap();
    assert_eq!(more.len(), 2);
    assert!(more.iter().all(|m| !claimed.iter().any(|c| c.id == m.id)));
    case.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_message_is_leased_and_an_attempt_finishing_after_its_endpoint_was_deleted_is_dropped(
) {
    let case = DbCase::new().await;
    let endpoint = case
        .endpoint(
            "http://127.0.0.1:9/",
            &[model::COMPLAINT_EVIDENCE_REQUESTED],
        )
        .await;
    case.enqueue(model::COMPLAINT_EVIDENCE_REQUESTED, json!({}))
        .await;
    let mut conn = case.conn().await;
    let lease = Duration::from_secs(60);
    let claimed = store::claim_due(&mut conn, Utc::now(), 10, lease, &[], 4)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].tenant_id, case.tenant.as_str());
    assert!(
        store::claim_due(&mut conn, Utc::now(), 10, lease, &[], 4)
            .await
            .unwrap()
            .is_empty(),
        "a leased message is not claimed twice"
    );
    // An expired lease (a dispatcher that died mid-send) makes it claimable again.
    let later = Utc::now() + chrono::Duration::seconds(61);
    let reclaimed = store::claim_due(&mut conn, later, 10, lease, &[], 4)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(
        reclaimed[0].id, claimed[0].id,
        "same message, same webhook-id"
    );

    assert!(store::delete_endpoint(&mut conn, &case.tenant, &endpoint)
        .await
        .unwrap());
    let outcome = DeliveryOutcome {
        status: Some(200),
        latency: Duration::from_millis(3),
        retry_after: None,
        response_excerpt: None,
        error: None,
        timestamp: Utc::now().timestamp(),
    };
    let recorded = store::record_attempt(
        &mut conn,
        &claimed[0],
        &outcome,
        &Decision::Delivered,
        Duration::from_secs(3600),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(recorded, store::Recorded::default());
    let attempts: i64 =
        diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM webhook_attempts")
            .get_result(&mut *conn)
            .await
            .unwrap();
    assert_eq!(attempts, 0, "deleting an endpoint takes its log with it");
    drop(conn);
    case.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_recorded_together_skip_a_message_whose_endpoint_was_deleted_during_the_send() {
    let case = DbCase::new().await;
    let gone = case
        .endpoint(
            "http://127.0.0.1:9/gone",
            &[model::COMPLAINT_EVIDENCE_REQUESTED],
        )
        .await;
    let kept = case
        .endpoint(
            "http://127.0.0.1:9/kept",
            &[model::COMPLAINT_EVIDENCE_REQUESTED],
        )
        .await;
    assert_eq!(
        case.enqueue(model::COMPLAINT_EVIDENCE_REQUESTED, json!({}))
            .await,
        2
    );
    let mut conn = case.conn().await;
    let claimed = store::claim_due(&mut conn, Utc::now(), 10, Duration::from_secs(60), &[], 4)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(store::delete_endpoint(&mut conn, &case.tenant, &gone)
        .await
        .unwrap());
    let outcome = DeliveryOutcome {
        status: Some(204),
        latency: Duration::from_millis(3),
        retry_after: None,
        response_excerpt: None,
        error: None,
        timestamp: Utc::now().timestamp(),
    };
    let delivered: Vec<_> = claimed
        .iter()
        .map(|m| (m.clone(), outcome.clone()))
        .collect();
    store::record_delivered(&mut conn, &case.tenant, &delivered, Utc::now())
        .await
        .unwrap();
    drop(conn);

    let kept_messages = case.messages(&kept).await;
    assert_eq!(kept_messages.len(), 1);
    let m = &kept_messages[0];
    assert_eq!(m.status, "delivered");
    assert_eq!(m.attempts, 1);
    assert!(m.delivered_at.is_some());
    assert!(m.claimed_until.is_none() && m.next_attempt_at.is_none());
    let mut conn = case.conn().await;
    let logged: Vec<(String, Option<i32>)> =
        diesel::dsl::sql::<(
            diesel::sql_types::Text,
            diesel::sql_types::Nullable<diesel::sql_types::Integer>,
        )>("SELECT endpoint_id, status_code FROM webhook_attempts")
        .load(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        logged,
        vec![(kept.to_string(), Some(204))],
        "one log row, for the message still there"
    );
    drop(conn);
    case.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_cases_hand_their_webhooks_leased_to_the_dispatcher_and_a_throttled_endpoint_leaves_them_to_the_claim(
) {
    use redress_worker::routing::{process_batch_handing_over, Outcome};

    // No worker: the test routes and dispatches itself.
    let app = api_only().await;
    let (_, token) = app.tenant_and_token().await;
    let rx = Receiver::always(Reply::status(204).after(Duration::from_millis(300)))
        .await
        .unwrap();
    let open = register(&app, &token, &rx.url("/open"), &[model::COMPLAINT_ROUTED]).await;
    let throttled = register(
        &app,
        &token,
        &rx.url("/throttled"),
        &[model::COMPLAINT_ROUTED],
    )
    .await;
    let (open_id, throttled_id) = (str_of(&open, "id"), str_of(&throttled, "id"));
    let mut owner = app.db().await;
    diesel::sql_query(format!(
        "UPDATE webhook_endpoints SET throttled_until = now() + interval '1 hour' \
         WHERE id = '{throttled_id}'"
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    let mut messages = Vec::new();
    for _ in 0..2 {
        messages.push(app.file_for_router(&token).await);
    }

    let pool = db::pool(app.settings.database_url.expose(), 2).unwrap();
    let lease = Duration::from_secs(90);
    let before = Utc::now();
    let done = process_batch_handing_over(&pool, &messages, Some(lease))
        .await
        .unwrap();
    assert!(
        done.outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Routed { .. })),
        "{:?}",
        done.outcomes
    );
    // One message per case for the open endpoint, handed over as a claim would read it;
    // the throttled endpoint's are queued for the claim, which waits out the throttle.
    assert_eq!(done.handed_over.len(), 2, "{:?}", done.handed_over);
    assert!(done.queued_for_claim);
    for m in &done.handed_over {
        assert_eq!(m.endpoint_id, open_id);
        assert_eq!(m.url, rx.url("/open"));
        assert_eq!(m.attempts, 0);
        assert_eq!(m.event_type, model::COMPLAINT_ROUTED);
        let body: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(body["type"], model::COMPLAINT_ROUTED);
        assert!(messages
            .iter()
            .any(|q| body["data"]["complaint_id"] == q.complaint_id.as_str()));
    }
    let leases: Vec<(String, Option<chrono::DateTime<Utc>>)> = {
        use diesel::QueryDsl;
        use redress_shared::webhooks::schema::webhook_messages as m;
        m::table
            .select((m::endpoint_id, m::claimed_until))
            .load(&mut owner)
            .await
            .unwrap()
    };
    assert_eq!(leases.len(), 4, "{leases:?}");
    for (endpoint, until) in &leases {
        if endpoint == open_id {
            let until = until.expect("a handed-over message is leased");
            assert!(until >= before + chrono::Duration::seconds(85), "{until}");
        } else {
            assert_eq!(endpoint, throttled_id);
            assert_eq!(
                *until, None,
                "the throttled endpoint's messages wait for the claim"
            );
        }
    }

    // A dispatcher with one request in flight at a time starts the first at once; the
    // second waits for the slot and follows, without a claim (none runs here).
    let mut settings = app.settings.clone();
    fast_webhooks(&mut settings);
    settings.webhooks.concurrency = 1;
    let dispatcher = |settings: &Settings| {
        let sender = WebhookSender::new(
            Policy {
                allow_loopback: true,
            },
            Duration::from_millis(settings.webhooks.timeout_ms),
        )
        .unwrap();
        Dispatcher::with_sender(pool.clone(), &settings.webhooks, sender)
    };
    let running = dispatcher(&settings);
    running.handle().hand_over(done.handed_over);
    let seen = wait_for_requests(&rx, 2, Duration::from_secs(10)).await;
    assert!(
        seen.iter().all(|r| r.path == "/open"),
        "nothing went to the throttled endpoint"
    );
    assert!(
        seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(250),
        "one at a time"
    );
    for r in &seen {
        verify(str_of(&open, "secret"), r).unwrap();
    }
    let mut ids: Vec<&str> = seen
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "each message once");
    let count = |sql: String| {
        let conn = app.db();
        async move {
            diesel::dsl::sql::<diesel::sql_types::BigInt>(&sql)
                .get_result::<i64>(&mut conn.await)
                .await
                .unwrap()
        }
    };
    let delivered = format!(
        "SELECT count(*) FROM webhook_messages \
         WHERE endpoint_id = '{open_id}' AND status = 'delivered' AND attempts = 1"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count(delivered.clone()).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "both recorded as delivered on their first attempt"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A dispatcher that has stopped gives what it is handed back to the claim at once.
    let third = app.file_for_router(&token).await;
    let done = process_batch_handing_over(&pool, &[third], Some(lease))
        .await
        .unwrap();
    assert_eq!(done.handed_over.len(), 1);
    let stopped = dispatcher(&settings);
    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    stopped.clone().run(stop).await;
    stopped.handle().hand_over(done.handed_over);
    let unleased = format!(
        "SELECT count(*) FROM webhook_messages \
         WHERE endpoint_id = '{open_id}' AND claimed_until IS NULL AND attempts = 0"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count(unleased.clone()).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        running.dispatch_due().await.unwrap(),
        1,
        "the claim sends it"
    );
    assert_eq!(rx.requests().len(), 3);
    drop(pool);
    app.stop().await;
}
