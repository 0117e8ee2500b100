//! Abuse limits: the per-client rate limit, the `/oauth/token` attempt limit, and the
//! size, depth and string-length limits of request bodies.

use std::time::Duration;

use redress_tests::{example_complaint, Options, TestApp};
use serde_json::{json, Value};

async fn app_with(
    tweak: impl Fn(&mut redress_shared::config::Settings) + Send + 'static,
) -> TestApp {
    TestApp::spawn_with(Options {
        worker: false,
        tweak: Box::new(tweak),
        ..Options::default()
    })
    .await
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

async fn list(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/v1/complaints"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after_and_recovers_while_others_are_unaffected(
) {
    let app = app_with(|s| {
        s.rate_limit_per_client = 1;
        s.limits.rate_limit_burst = 3;
    })
    .await;
    let (_, busy) = app.tenant_and_token().await;
    let (_, other) = app.tenant_and_token().await;

    for _ in 0..3 {
        assert_eq!(list(&app, &busy).await.status(), 200);
    }
    let refused = list(&app, &busy).await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert!(refused.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 429);

    // Another client's budget is its own.
    assert_eq!(list(&app, &other).await.status(), 200);

    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(list(&app, &busy).await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_attempts_are_limited_per_client_id_right_or_wrong() {
    let app = app_with(|s| {
        s.limits.token_attempts_per_minute = 60;
        s.limits.token_attempts_burst = 2;
    })
    .await;
    let target = app.create_tenant(None).await;
    let bystander = app.create_tenant(None).await;
    let attempt = |id: String, secret: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        let r = attempt(target.client_id.clone(), "wrong".into()).await;
        assert_eq!(r.status(), 401);
    }
    // Even the right secret waits now: guessing speed is what the limit is about.
    let r = attempt(target.client_id.clone(), target.client_secret.clone()).await;
    assert_eq!(r.status(), 429);
    let wait = retry_after(&r);
    assert!(wait >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    let r = attempt(bystander.client_id.clone(), bystander.client_secret.clone()).await;
    assert_eq!(r.status(), 200);

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = attempt(target.client_id.clone(), target.client_secret.clone()).await;
    assert_eq!(r.status(), 200);
    app.stop().await;
}

async fn post_raw(app: &TestApp, token: &str, path: &str, body: String) -> (u16, String, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.json().await.unwrap_or(Value::Null))
}

async fn complaint_count(app: &TestApp) -> i64 {
    use diesel_async::RunQueryDsl;
    let mut db = app.db().await;
    diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM complaints")
        .get_result(&mut db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_too_deep_and_over_long_bodies_are_refused_on_every_json_route() {
    let app = app_with(|s| {
        s.http.max_body_bytes = 64 * 1024;
        s.limits.max_json_depth = 8;
        s.limits.max_json_string_chars = 1000;
    })
    .await;
    let (_, token) = app.tenant_and_token().await;

    // Too large: 413, whatever the route.
    let mut big = example_complaint();
    big["description"] = json!("押".repeat(30_000));
    for path in ["/v1/complaints", "/v1/clients", "/v1/webhook-endpoints"] {
        let (status, ct, problem) = post_raw(&app, &token, path, big.to_string()).await;
        assert_eq!(status, 413, "{path}: {problem}");
        assert!(ct.starts_with("application/problem+json"), "{path}: {ct}");
        assert_eq!(problem["status"], 413);
    }

    // Too deep: 422 naming where the nesting went too far.
    let mut deep = example_complaint();
    let mut nested = json!("bottom");
    for _ in 0..10 {
        nested = json!([nested]);
    }
    deep["evidence"][0]["description"] = nested;
    for path in ["/v1/complaints", "/v1/routing/preview", "/v1/sla-policies"] {
        let (status, ct, problem) = post_raw(&app, &token, path, deep.to_string()).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert!(ct.starts_with("application/problem+json"));
        let pointer = problem["errors"][0]["pointer"].as_str().unwrap();
        assert_eq!(pointer, "/evidence/0/description/0/0/0/0/0", "{problem}");
        assert!(problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("deeper than 8"));
    }

    // Too long: 422 naming the field.
    let mut long = example_complaint();
    long["complainant"]["name"] = json!("名".repeat(1001));
    let (status, _, problem) = post_raw(&app, &token, "/v1/complaints", long.to_string()).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/complainant/name");
    assert!(problem["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("1000 characters"));
    let (status, _, problem) = post_raw(
        &app,
        &token,
        "/v1/clients",
        json!({"name": "x".repeat(5000), "scopes": []}).to_string(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["pointer"], "/name");

    // Nothing was stored; a body within the limits still goes through.
    assert_eq!(complaint_count(&app).await, 0);
    let r = app.file(&token, &example_complaint()).await;
    assert_eq!(r.status(), 202);
    app.stop().await;
}
