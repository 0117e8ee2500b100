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

/// Pooled connections set `backend_flush_after` for their sessions when told to
/// (`db_backend_flush_after_kb`, `db::SessionSettings`); 0, the default, leaves the server's
/// own setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_set_backend_flush_after_for_their_sessions() {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    use redress_shared::db::{pool_with, SessionSettings};

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        backend_flush_after: String,
    }
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let url = app.settings.database_url.expose().to_owned();
    assert_eq!(app.settings.db_backend_flush_after_kb, 0);
    let show = |session: SessionSettings| {
        let url = url.clone();
        async move {
            let pool = pool_with(&url, 1, session).unwrap();
            let mut conn = pool.get().await.unwrap();
            diesel::sql_query("SHOW backend_flush_after")
                .get_result::<Setting>(&mut conn)
                .await
                .unwrap()
                .backend_flush_after
        }
    };
    assert_eq!(
        show(SessionSettings {
            backend_flush_after_kb: 256
        })
        .await,
        "256kB"
    );
    assert_eq!(
        show(SessionSettings {
            backend_flush_after_kb: 1024
        })
        .await,
        "1MB"
    );
    // The server's default, as a connection without the pool's setting sees it.
    let mut plain = app.db().await;
    let server: Setting = diesel::sql_query("SHOW backend_flush_after")
        .get_result(&mut plain)
        .await
        .unwrap();
    assert_eq!(
        show(app.settings.db_session()).await,
        server.backend_flush_after
    );
    app.stop().await;
}
