//! CONTRACT §6: `GET /metrics` in the Prometheus text format, on the API and on the worker.

use std::time::Duration;

use redress_tests::{example_complaint, TestApp};

/// The series names a scrape must carry (each name appears on a `# TYPE` line).
const API_SERIES: [&str; 11] = [
    "redress_http_request_duration_seconds",
    "redress_outbox_unsent",
    "redress_outbox_lag_seconds",
    "redress_deadline_clocks_waiting_for_calendar",
    "redress_queue_messages",
    "redress_queue_consumers",
    "redress_db_pool_connections",
    "redress_db_pool_max_connections",
    "redress_db_pool_waiting",
    "redress_probe_up",
    "redress_process_resident_memory_bytes",
];
const WORKER_SERIES: [&str; 9] = [
    "redress_deadline_clocks_waiting_for_calendar",
    "redress_router_messages_total",
    "redress_cases_routed_total",
    "redress_route_delay_seconds",
    "redress_deadlines_breached_total",
    "redress_webhook_attempts_total",
    "redress_webhook_attempt_duration_seconds",
    "redress_outbox_lag_seconds",
    "redress_queue_messages",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_worker_each_serve_their_metrics_in_the_prometheus_text_format() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let filed = app.file(&token, &example_complaint()).await;
    assert_eq!(filed.status(), 202);
    let id = filed.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_status(&token, &id, "routed", Duration::from_secs(20))
        .await;

    let api = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(api.status(), 200);
    assert!(api.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let api = api.text().await.unwrap();
    for name in API_SERIES {
        assert!(
            api.contains(&format!("# TYPE {name} ")),
            "{name} missing from the API's metrics:\n{api}"
        );
    }
    // The intake request is counted under its route pattern, not its path.
    assert!(
        api.lines().any(
            |l| l.starts_with("redress_http_request_duration_seconds_count{")
                && l.contains("route=\"/v1/complaints\"")
                && l.contains("status=\"202\"")
        ),
        "{api}"
    );
    // Both dependencies were sampled, and the routing queue is declared and consumed.
    assert!(
        api.contains("redress_probe_up{dependency=\"postgres\",process=\"api\"} 1"),
        "{api}"
    );
    assert!(
        api.contains("redress_probe_up{dependency=\"rabbitmq\",process=\"api\"} 1"),
        "{api}"
    );

    let worker_url = app
        .worker_metrics
        .clone()
        .expect("the worker serves /metrics");
    let worker = app.http.get(&worker_url).send().await.unwrap();
    assert_eq!(worker.status(), 200);
    let worker = worker.text().await.unwrap();
    for name in WORKER_SERIES {
        assert!(
            worker.contains(&format!("# TYPE {name} ")),
            "{name} missing from the worker's metrics:\n{worker}"
        );
    }
    assert!(
        worker.contains("redress_cases_routed_total{process=\"worker\"} 1"),
        "{worker}"
    );
    app.stop().await;
}
