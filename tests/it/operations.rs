//! CONTRACT §6 and the operating basics: health, docs, OpenAPI drift, migrations.

use redress_tests::{fresh_database, Options, TestApp};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_docs_and_the_openapi_document_are_served_without_a_token() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/complaints"]["post"].is_object());
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    // The UI's assets are served from the binary, not fetched from the internet.
    assert_eq!(
        app.http
            .get(app.url("/docs/swagger-ui.css"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let missing = app
        .http
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_path_asked_with_a_method_it_does_not_serve_is_405_with_allow() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let trace = reqwest::Method::from_bytes(b"TRACE").unwrap();
    for (method, path, allow) in [
        (trace.clone(), "/healthz", "GET"),
        (
            reqwest::Method::DELETE,
            "/v1/webhook-endpoints",
            "GET, POST",
        ),
        (trace.clone(), "/v1/complaints/cmp_0/events", "GET"),
        (reqwest::Method::PUT, "/v1/routing/preview", "POST"),
    ] {
        let res = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(
            res.headers().get("allow").unwrap(),
            allow,
            "{method} {path}"
        );
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], 405);
    }
    // An unknown path stays 404, whatever the method.
    let res = app
        .http
        .request(trace, app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.stop().await;
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("docs/openapi.json is committed");
    let generated = redress_api::openapi::document();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `cargo run -p redress-api -- openapi > docs/openapi.json`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_up_down_and_up_again() {
    let url = fresh_database().await;
    redress_shared::db::revert_all(&url).await.unwrap();
    let applied = redress_shared::db::migrate(&url).await.unwrap();
    assert!(!applied.is_empty());
    redress_tests::drop_database(&url).await;
}
