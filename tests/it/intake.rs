//! CONTRACT §2: filing, validation, idempotency, reading.

use std::time::Duration;

use redress_tests::{example_complaint, Options, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filed_complaint_is_routed_within_a_second_with_its_events_in_order() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let r = app.file(&token, &example_complaint()).await;
    assert_eq!(r.status(), 202);
    let location = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "submitted");
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("cmp_"));
    assert_eq!(location, format!("/v1/complaints/{id}"));

    // Polling is generous so a busy CI machine does not flake; the hub's own latency is
    // checked below from the recorded timestamps.
    let routed = app
        .wait_for_status(&token, id, "routed", Duration::from_secs(5))
        .await;
    assert_eq!(routed["current"][0]["channel"], "provider_service");

    let (_, events) = app
        .get_json(&token, &format!("/v1/complaints/{id}/events"))
        .await;
    let events = events["data"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["complaint.submitted", "complaint.routed"]);
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert!(events[1]["data"]["why"]
        .as_str()
        .unwrap()
        .contains("deposit_not_refunded"));
    assert_eq!(events[1]["actor"], "system:router");
    assert!(events[0]["id"].as_str().unwrap().starts_with("evt_"));
    let filed = chrono::DateTime::parse_from_rfc3339(events[0]["at"].as_str().unwrap()).unwrap();
    let routed_at =
        chrono::DateTime::parse_from_rfc3339(events[1]["at"].as_str().unwrap()).unwrap();
    assert!(
        routed_at - filed < chrono::Duration::seconds(1),
        "routed {} ms after filing",
        (routed_at - filed).num_milliseconds()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_name_every_bad_field_and_nothing_is_stored() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let mut body = example_complaint();
    body["complainant"]["kind"] = json!("company");
    body["complainant"]["region"] = json!("31");
    body["amount_claimed"]["value"] = json!(299);
    body["category"] = json!("weather");
    body["evidence"][0]["sha256"] = json!("xyz");
    body["prior_contacts"] = json!([{"channel": "provider_service", "on": "yesterday"}]);
    body.as_object_mut().unwrap().remove("summary");
    let r = app.file(&token, &body).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let problem: Value = r.json().await.unwrap();
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for p in [
        "/complainant/kind",
        "/complainant/region",
        "/amount_claimed/value",
        "/evidence/0/sha256",
        "/prior_contacts/0/on",
        "/summary",
    ] {
        assert!(pointers.contains(&p), "{p} not named in {pointers:?}");
    }
    assert_eq!(problem["status"], 422);

    // A category the tenant does not have is named too (checked once the body is well-formed).
    let mut body = example_complaint();
    body["category"] = json!("weather");
    let problem: Value = app.file(&token, &body).await.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/category");

    // Not JSON at all.
    let r = app
        .http
        .post(app.url("/v1/complaints"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );

    let (_, list) = app.get_json(&token, "/v1/complaints").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing was stored"
    );
    let mut conn = app.db().await;
    use diesel_async::RunQueryDsl;
    let outbox: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM outbox")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(outbox, 0, "no message was queued");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_returns_the_same_complaint_and_a_changed_body_is_refused() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let body = example_complaint();
    let send = |b: Value, key: &'static str| {
        let app = &app;
        let token = token.clone();
        async move { app.file_with_key(&token, key, &b).await }
    };
    let first = send(body.clone(), "retry-1").await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone(), "retry-1").await;
    assert_eq!(again.status(), 202);
    assert_eq!(
        again.headers().get("location").unwrap().to_str().unwrap(),
        format!("/v1/complaints/{}", first["id"].as_str().unwrap())
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["id"], first["id"],
        "the retry returns the first complaint"
    );

    let mut changed = body.clone();
    changed["summary"] = json!("另一件事");
    let r = send(changed, "retry-1").await;
    assert_eq!(r.status(), 422);
    assert!(r.json::<Value>().await.unwrap()["type"]
        .as_str()
        .unwrap()
        .ends_with("idempotency-key-reused"));

    let (_, list) = app.get_json(&token, "/v1/complaints").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "one complaint, however many retries"
    );

    // The same external_ref without a key is a conflict naming the existing complaint.
    let r = app.file(&token, &body).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["complaint_id"],
        first["id"]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_while_the_first_request_holds_the_key_is_409_and_a_dead_request_frees_it_at_once()
{
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (tenant, token) = app.tenant_and_token().await;
    // One body for every retry: a retry with another body is a different request (422).
    let body = example_complaint();
    let send = || app.file_with_key(&token, "held-key", &body);
    // Hold the key the way a request in flight holds it: the transaction-scoped advisory
    // lock of its intake transaction (api/src/idempotency.rs).
    let mut first = app.db().await;
    diesel::sql_query("BEGIN")
        .execute(&mut first)
        .await
        .unwrap();
    diesel::sql_query("SELECT pg_advisory_xact_lock(7655, hashtext($1 || E'\\n' || $2))")
        .bind::<diesel::sql_types::Text, _>(&tenant.client_id)
        .bind::<diesel::sql_types::Text, _>("held-key")
        .execute(&mut first)
        .await
        .unwrap();
    let r = send().await;
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("idempotency-key-in-flight"),
        "{problem}"
    );

    // The first request dies with its connection (an API killed mid-request): the key is
    // free again without waiting for any timeout, and nothing of the first was stored.
    drop(first);
    let mut status = 0;
    for _ in 0..40 {
        status = send().await.status().as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 202);
    let replay = send().await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    app.stop().await;
}

/// CONTRACT §2: a retry gets the first answer, also after the complaint moved on. The key
/// keeps no copy of it (migration 000019); the replay renders the complaint as filed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_routing_gets_the_first_answer_again_though_the_key_stored_no_copy_of_it() {
    use diesel::sql_types::{Bool, Text};
    use diesel_async::RunQueryDsl;

    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let body = example_complaint();
    let key = format!("after-routing-{}", uuid::Uuid::new_v4().simple());
    let send = || app.file_with_key(&token, &key, &body);
    let first = send().await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    let routed = app
        .wait_for_status(&token, &id, "routed", Duration::from_secs(20))
        .await;
    assert_ne!(routed["updated_at"], first["updated_at"], "{routed}");

    #[derive(diesel::QueryableByName)]
    struct Stored {
        #[diesel(sql_type = Bool)]
        has_answer: bool,
    }
    let stored: Stored = diesel::sql_query(
        "SELECT response_body IS NOT NULL AS has_answer FROM idempotency_keys \
         WHERE idempotency_key = $1",
    )
    .bind::<Text, _>(&key)
    .get_result(&mut app.db().await)
    .await
    .unwrap();
    assert!(!stored.has_answer, "the key keeps no copy of the answer");

    let again = send().await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(
        again.headers().get("location").unwrap().to_str().unwrap(),
        format!("/v1/complaints/{id}")
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again, first,
        "the replay is the first answer, not the routed case"
    );
    app.stop().await;
}

/// A filing is its own transaction, which commits after the function has answered its row.
/// A commit that fails then (here a check deferred to commit; in a drill, Postgres shutting
/// down for a restart) must not be answered 202: the partner would be told of a complaint
/// that was rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filing_whose_commit_fails_is_not_acknowledged_and_its_retry_is_filed() {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let external_ref = format!("fails-at-commit-{}", uuid::Uuid::new_v4().simple());
    // Raises at commit, after the filing function has returned its row, while the table
    // named below holds the complaint's external_ref.
    app.db()
        .await
        .batch_execute(
            "CREATE TABLE refused_at_commit (external_ref text PRIMARY KEY);
             CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
             BEGIN
                 IF EXISTS (SELECT 1 FROM refused_at_commit r
                            WHERE r.external_ref = NEW.external_ref) THEN
                     RAISE EXCEPTION 'refused at commit';
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON complaints
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();",
        )
        .await
        .unwrap();
    diesel::sql_query("INSERT INTO refused_at_commit VALUES ($1)")
        .bind::<Text, _>(&external_ref)
        .execute(&mut app.db().await)
        .await
        .unwrap();

    let mut body = example_complaint();
    body["external_ref"] = json!(external_ref);
    let key = format!("commit-fails-{}", uuid::Uuid::new_v4().simple());
    let send = || app.file_with_key(&token, &key, &body);
    let refused = send().await;
    assert!(
        refused.status().is_server_error(),
        "a filing whose commit failed was answered {}",
        refused.status()
    );
    assert_eq!(
        refused.headers().get("content-type").unwrap(),
        "application/problem+json"
    );

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let stored: Count = diesel::sql_query(
        "SELECT (SELECT count(*) FROM complaints WHERE external_ref = $1) \
              + (SELECT count(*) FROM idempotency_keys WHERE idempotency_key = $2) AS n",
    )
    .bind::<Text, _>(&external_ref)
    .bind::<Text, _>(&key)
    .get_result(&mut app.db().await)
    .await
    .unwrap();
    assert_eq!(stored.n, 0, "nothing of the refused filing is stored");

    // Once the commit can succeed, the partner's retry with the same key files it.
    diesel::sql_query("DELETE FROM refused_at_commit")
        .execute(&mut app.db().await)
        .await
        .unwrap();
    let retried = send().await;
    assert_eq!(retried.status(), 202);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    let id = retried.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, complaint) = app.get_json(&token, &format!("/v1/complaints/{id}")).await;
    assert_eq!(status, 200, "{complaint}");
    assert_eq!(complaint["external_ref"], json!(external_ref));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_numbers_are_masked_before_storage_and_phones_in_lists() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let mut body = example_complaint();
    body["description"] = json!("被盗刷的卡号是6222 0212 3456 7890 128，请处理");
    let created: Value = app.file(&token, &body).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let (_, one) = app.get_json(&token, &format!("/v1/complaints/{id}")).await;
    assert_eq!(
        one["description"],
        "被盗刷的卡号是622202*********0128，请处理"
    );
    let mut conn = app.db().await;
    use diesel_async::RunQueryDsl;
    let stored: String = diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
        "SELECT details::text FROM complaints WHERE id = '{id}'"
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(!stored.contains("6222021234567890128") && !stored.contains("6222 0212 3456 7890 128"));
    let (_, list) = app.get_json(&token, "/v1/complaints").await;
    assert_eq!(list["data"][0]["complainant"]["phone"], "138****8000");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_page_with_a_cursor() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = example_complaint();
        if i % 2 == 1 {
            body["category"] = json!("settlement_delay");
            body["respondent"]["provider"] = json!("通联支付");
        }
        let v: Value = app.file(&token, &body).await.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let (_, page1) = app.get_json(&token, "/v1/complaints?limit=2").await;
    let got1: Vec<&str> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got1, [ids[0].as_str(), ids[1].as_str()]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get_json(&token, &format!("/v1/complaints?limit=2&cursor={cursor}"))
        .await;
    let got2: Vec<&str> = page2["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got2, [ids[2].as_str(), ids[3].as_str()]);
    let cursor = page2["next_cursor"].as_str().unwrap();
    let (_, page3) = app
        .get_json(&token, &format!("/v1/complaints?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(page3["data"].as_array().unwrap().len(), 1);
    assert!(page3["next_cursor"].is_null());

    let (_, f) = app
        .get_json(&token, "/v1/complaints?category=settlement_delay")
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 2);
    let (_, f) = app
        .get_json(
            &token,
            "/v1/complaints?provider=%E9%80%9A%E8%81%94%E6%94%AF%E4%BB%98&status=submitted",
        )
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 2);
    let (_, f) = app.get_json(&token, "/v1/complaints?status=routed").await;
    assert_eq!(f["data"].as_array().unwrap().len(), 0);
    let (_, f) = app
        .get_json(&token, "/v1/complaints?updated_since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(f["data"].as_array().unwrap().len(), 0);

    let (status, problem) = app
        .get_json(
            &token,
            "/v1/complaints?limit=500&status=lost&cursor=zzz&updated_since=yesterday",
        )
        .await;
    assert_eq!(status, 422);
    let params: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    for p in ["limit", "status", "cursor", "updated_since"] {
        assert!(params.contains(&p), "{p} in {params:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_with_413_problem_json() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        tweak: Box::new(|s| s.http.max_body_bytes = 4096),
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let mut body = example_complaint();
    body["description"] = json!("很".repeat(5000));
    let r = app.file(&token, &body).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_since_lists_the_complaints_changed_since_then_whatever_changed_them() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let v: Value = app
            .file(&token, &example_complaint())
            .await
            .json()
            .await
            .unwrap();
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The last one is withdrawn, the first gets evidence: both change after `since`.
    let r = app
        .http
        .post(app.url(&format!("/v1/complaints/{}/withdraw", ids[2])))
        .bearer_auth(&token)
        .json(&json!({"reason": "settled with the provider"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = app
        .http
        .post(app.url(&format!("/v1/complaints/{}/evidence", ids[0])))
        .bearer_auth(&token)
        .json(&json!({"evidence": [{"kind": "contract", "description": "合同"}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let listed = |query: String| {
        let app = &app;
        let token = &token;
        async move {
            let (status, page) = app
                .get_json(token, &format!("/v1/complaints?{query}"))
                .await;
            assert_eq!(status, 200, "{page}");
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let at = |t: chrono::DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B")
    };
    assert_eq!(
        listed(format!("updated_since={}", at(since))).await,
        [ids[0].clone(), ids[2].clone()],
        "the changed ones, in filing order, each once"
    );
    assert_eq!(listed(format!("updated_since={}", at(before))).await, ids);
    assert_eq!(
        listed(format!("updated_since={}&status=withdrawn", at(since))).await,
        [ids[2].clone()]
    );
    assert_eq!(
        listed(format!("updated_since={}&limit=1", at(since))).await,
        [ids[0].clone()]
    );
    app.stop().await;
}

/// A stack without a worker and a cn-pos tenant, for tests that file through
/// `db::intake` directly: the tenant, its client, the routing version in force and the
/// example complaint without an external_ref.
async fn for_direct_filing() -> (
    TestApp,
    redress_shared::ids::TenantId,
    redress_shared::ids::ClientId,
    i32,
    redress_shared::domain::complaint::ComplaintInput,
) {
    use diesel::sql_types::{Integer, Nullable};
    use diesel_async::RunQueryDsl;
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let t = app.create_tenant(Some("cn-pos")).await;
    let version: Option<i32> = diesel::dsl::sql::<Nullable<Integer>>(&format!(
        "SELECT max(version) FROM routing_versions WHERE tenant_id = '{}'",
        t.tenant_id
    ))
    .get_result(&mut app.db().await)
    .await
    .unwrap();
    let mut input = redress_shared::domain::complaint::ComplaintInput::from_json(
        &example_complaint(),
        chrono::Utc::now().date_naive(),
    )
    .unwrap();
    input.external_ref = None;
    (
        app,
        redress_shared::ids::TenantId::from_trusted(t.tenant_id),
        redress_shared::ids::ClientId::from_trusted(t.client_id),
        version.unwrap(),
        input,
    )
}

/// Filing keeps one prepared statement per connection (`db::prepared`): diesel prepared
/// its text anew for every call, a round trip and a parse and plan in Postgres each time
/// (with pgbench, the intake call ran at 2,045/s prepared anew against 3,022/s reused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filing_prepares_its_statement_once_per_connection() {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    use redress_shared::{
        db::intake::{self, Filed, Filing},
        ids::ComplaintId,
    };

    let (app, tenant, client, version, input) = for_direct_filing().await;

    let mut conn = app.app_db().await;
    let prepared = async |conn: &mut diesel_async::AsyncPgConnection| -> i64 {
        diesel::dsl::sql::<BigInt>(
            "SELECT count(*) FROM pg_prepared_statements \
             WHERE statement LIKE '%FROM redress_file_complaint(%' \
               AND statement NOT LIKE '%pg_prepared_statements%'",
        )
        .get_result(conn)
        .await
        .unwrap()
    };
    for _ in 0..3 {
        let filed = intake::file(
            &mut conn,
            &Filing {
                tenant: &tenant,
                client: &client,
                routing_version: version,
                idempotency: None,
                id: &ComplaintId::generate(),
                input: &input,
                now: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
        assert!(matches!(filed, Filed::Created(_)), "{filed:?}");
        assert_eq!(prepared(&mut conn).await, 1);
    }
    app.stop().await;
}

/// Filings written together (`redress_file_complaints`, the API's intake writers) each get
/// the outcome they would have had one after the other; a batch one filing breaks is filed
/// again one at a time, so that filing alone fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filings_written_together_get_the_outcomes_they_would_have_had_alone() {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    use redress_shared::{
        db::intake::{self, Filed, Filing, FilingValues},
        domain::complaint::ComplaintInput,
        ids::{ClientId, ComplaintId},
    };

    let (app, tenant, client, version, plain) = for_direct_filing().await;
    let stranger = ClientId::from_trusted("cli_0123456789abcdef0123456789abcdef".into());
    let mut with_ref = plain.clone();
    with_ref.external_ref = Some("batch-ref-1".into());
    let filing = |id: &ComplaintId,
                  client: &ClientId,
                  input: &ComplaintInput,
                  key: Option<(&str, &str)>,
                  version: i32|
     -> FilingValues {
        Filing {
            tenant: &tenant,
            client,
            routing_version: version,
            idempotency: key,
            id,
            input,
            now: chrono::Utc::now(),
        }
        .values()
        .unwrap()
    };
    let ids: Vec<ComplaintId> = (0..8).map(|_| ComplaintId::generate()).collect();
    let batch = vec![
        filing(&ids[0], &client, &plain, Some(("key-1", "hash-1")), version),
        // The same key and body: the answer of the filing before it.
        filing(&ids[1], &client, &plain, Some(("key-1", "hash-1")), version),
        // The same key with another body.
        filing(&ids[2], &client, &plain, Some(("key-1", "hash-2")), version),
        filing(&ids[3], &client, &with_ref, None, version),
        // The external_ref the filing before it took.
        filing(&ids[4], &client, &with_ref, None, version),
        // Checked against a routing version that is not the one in force.
        filing(&ids[5], &client, &plain, None, version + 1),
    ];
    let mut conn = app.app_db().await;
    let filed = intake::file_many(&mut conn, &batch).await.unwrap();
    assert_eq!(filed.len(), 6);
    assert!(matches!(&filed[0], Filed::Created(body) if body["id"] == ids[0].as_str()));
    match &filed[1] {
        Filed::Replay {
            status,
            body,
            resource_id,
        } => {
            assert_eq!(*status, 202);
            assert_eq!(body["id"], ids[0].as_str());
            assert_eq!(resource_id.as_deref(), Some(ids[0].as_str()));
        }
        other => panic!("expected the first filing's answer, got {other:?}"),
    }
    assert!(matches!(&filed[2], Filed::Mismatch), "{:?}", filed[2]);
    assert!(matches!(&filed[3], Filed::Created(_)), "{:?}", filed[3]);
    assert!(
        matches!(&filed[4], Filed::DuplicateExternalRef(Some(id)) if id == ids[3].as_str()),
        "{:?}",
        filed[4]
    );
    assert!(matches!(&filed[5], Filed::RoutingChanged), "{:?}", filed[5]);
    let count = |ids: Vec<String>| {
        let app = &app;
        async move {
            diesel::dsl::sql::<BigInt>(&format!(
                "SELECT count(*) FROM complaints WHERE id IN ('{}')",
                ids.join("','")
            ))
            .get_result::<i64>(&mut app.db().await)
            .await
            .unwrap()
        }
    };
    let all: Vec<String> = ids[..6].iter().map(|i| i.to_string()).collect();
    assert_eq!(count(all).await, 2, "only the two created complaints exist");

    // A filing for a client the tenant does not have fails the batch's statement; nothing
    // of it is written, and filed together again each filing gets its own outcome.
    let broken = vec![
        filing(&ids[6], &stranger, &plain, None, version),
        filing(&ids[7], &client, &plain, None, version),
    ];
    assert!(intake::file_many(&mut conn, &broken).await.is_err());
    assert_eq!(count(vec![ids[7].to_string()]).await, 0);
    let pool = redress_shared::db::pool(app.settings.database_url.expose(), 1).unwrap();
    let outcomes = redress_api::intake::file_together(&pool, &broken).await;
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes[0].is_err(), "{:?}", outcomes[0]);
    assert!(
        matches!(&outcomes[1], Ok(Filed::Created(body)) if body["id"] == ids[7].as_str()),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(count(vec![ids[6].to_string(), ids[7].to_string()]).await, 1);
    app.stop().await;
}

/// Routing's batch lock and update of the complaint rows read only those rows, whatever
/// the planner's statistics or settings say (migration 000018). On a fresh database under
/// load the plain `UPDATE … FROM unnest` was planned as a read of the tenant's every
/// complaint and a join: 5-8 ms and about 110 buffer reads per updated row
/// (docs/PERFORMANCE.md, session 7). Here the tenant's complaints were never analysed (the
/// planner takes the tenant for a couple of rows) and the transaction turns nested loops
/// off; a join of the batch with the table reads all 150 then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_reads_only_the_complaint_rows_of_its_batch_whatever_the_statistics() {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    use redress_shared::{
        db::{
            complaints::{find_many_for_update, set_states_numbered},
            intake::{self, Filed, Filing},
            tenant,
        },
        domain::status::Status,
        ids::ComplaintId,
    };

    let (app, tenant_id, client, version, input) = for_direct_filing().await;
    let mut conn = app.app_db().await;
    let mut ids = Vec::new();
    for _ in 0..150 {
        let id = ComplaintId::generate();
        let filed = intake::file(
            &mut conn,
            &Filing {
                tenant: &tenant_id,
                client: &client,
                routing_version: version,
                idempotency: None,
                id: &id,
                input: &input,
                now: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
        assert!(matches!(filed, Filed::Created(_)), "{filed:?}");
        ids.push(id);
    }
    // Rows of complaints this transaction has read so far, by any scan.
    let rows_read = async |conn: &mut diesel_async::AsyncPgConnection| -> i64 {
        diesel::dsl::sql::<BigInt>(
            "SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::bigint \
             FROM pg_stat_xact_user_tables WHERE relname = 'complaints'",
        )
        .get_result(conn)
        .await
        .unwrap()
    };
    let batch: Vec<&ComplaintId> = ids.iter().skip(40).take(3).collect();
    let rungs = serde_json::json!([]);
    let (mut read, mut lock_read) = (None, None);
    let rolled_back = tenant::transaction(&mut conn, &tenant_id, async |conn| {
        diesel::sql_query("SET LOCAL enable_nestloop = off")
            .execute(conn)
            .await?;
        let names: Vec<&str> = batch.iter().map(|id| id.as_str()).collect();
        let start = rows_read(conn).await;
        let locked = find_many_for_update(conn, &tenant_id, &names).await?;
        assert_eq!(locked.len(), 3);
        let before = rows_read(conn).await;
        lock_read = Some(before - start);
        let cases: Vec<_> = batch.iter().map(|id| (*id, &rungs, 2)).collect();
        set_states_numbered(conn, &tenant_id, Status::Routed, &cases, chrono::Utc::now()).await?;
        read = Some(rows_read(conn).await - before);
        // Nothing of this is kept: the rows would have no event for their new number.
        Err::<(), _>(diesel::result::Error::RollbackTransaction)
    })
    .await;
    assert!(
        matches!(rolled_back, Err(diesel::result::Error::RollbackTransaction)),
        "{rolled_back:?}"
    );
    let (read, lock_read) = (read.unwrap(), lock_read.unwrap());
    assert!(
        read <= 6,
        "the update of 3 rows read {read} complaint rows of a tenant with 150"
    );
    assert!(
        lock_read <= 6,
        "locking 3 rows read {lock_read} complaint rows of a tenant with 150"
    );
    app.stop().await;
}
