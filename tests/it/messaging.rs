//! No message lost between Postgres and RabbitMQ; none applied twice; poison dead-lettered.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use lapin::{
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
    BasicProperties,
};
use redress_shared::{amqp::Topology, domain::events::QueueMessage};
use redress_tests::{amqp_url, example_complaint, proxy::Proxy, Options, TestApp};
use serde_json::Value;

async fn publish(app: &TestApp, routing_key: &str, body: &[u8], message_id: &str) {
    let topology = Topology::new(
        &app.settings.amqp_namespace,
        app.settings.worker.max_deliveries,
    );
    let conn = redress_shared::amqp::connect(&amqp_url(), "test-publisher")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            topology.events_exchange.as_str().into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            BasicProperties::default().with_message_id(message_id.into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(confirm, lapin::Confirmation::Ack(None)),
        "the test message was routed to a queue"
    );
    let _ = conn.close(200, "done".into()).await;
}

/// Waits until the dead-letter queue holds a message and returns its body.
async fn dead_letter(app: &TestApp, within: Duration) -> Vec<u8> {
    let topology = Topology::new(
        &app.settings.amqp_namespace,
        app.settings.worker.max_deliveries,
    );
    let conn = redress_shared::amqp::connect(&amqp_url(), "test-dlq-reader")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(m) = ch
            .basic_get(
                topology.dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            let data = m.delivery.data.clone();
            let _ = conn.close(200, "done".into()).await;
            return data;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = app.db().await;
    diesel::dsl::sql::<diesel::sql_types::BigInt>(sql)
        .get_result(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_filed_while_the_broker_is_unreachable_are_accepted_and_all_routed_once_it_is_back(
) {
    let target = {
        let url = amqp_url();
        let host = url.split_once('@').unwrap().1;
        host.split('/').next().unwrap().to_owned()
    };
    let proxy = Proxy::start(target).await;
    let app = TestApp::spawn_with(Options {
        api_amqp_url: Some(proxy.amqp_url(&amqp_url())),
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;

    proxy.cut();
    // The API notices the broker is gone and says so on /readyz.
    let mut not_ready = false;
    for _ in 0..100 {
        if app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 503
        {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(not_ready, "readyz reports the broker outage");

    let mut ids = Vec::new();
    for _ in 0..20 {
        let r = app.file(&token, &example_complaint()).await;
        assert_eq!(r.status(), 202, "intake does not depend on the broker");
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        let (_, c) = app.get_json(&token, &format!("/v1/complaints/{id}")).await;
        assert_eq!(
            c["status"], "submitted",
            "nothing can be routed while the broker is away"
        );
    }

    proxy.restore();
    for id in &ids {
        app.wait_for_status(&token, id, "routed", Duration::from_secs(20))
            .await;
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM outbox WHERE sent_at IS NULL").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM complaint_events WHERE event_type = 'complaint.routed'"
        )
        .await,
        20,
        "each complaint routed exactly once"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, token) = app.tenant_and_token().await;
    let id = app
        .file(&token, &example_complaint())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_status(&token, &id, "routed", Duration::from_secs(5))
        .await;

    // The very message the outbox sent, sent again (as a broker redelivery would).
    let message = app.queue_message_for(&id).await;
    let payload = serde_json::to_value(&message).unwrap();
    publish(
        &app,
        &message.message_type,
        payload.to_string().as_bytes(),
        &message.message_id.to_string(),
    )
    .await;

    // Applied directly as well, to see the outcome the worker computes for it.
    let pool = redress_shared::db::pool(app.settings.database_url.expose(), 1).unwrap();
    let outcome = redress_worker::routing::process(&pool, &message)
        .await
        .unwrap();
    assert_eq!(outcome, redress_worker::routing::Outcome::Duplicate);

    // Give the worker time to consume the republished copy, then check nothing moved.
    let mut consumed = false;
    let topology = Topology::new(
        &app.settings.amqp_namespace,
        app.settings.worker.max_deliveries,
    );
    let c = redress_shared::amqp::connect(&amqp_url(), "test-inspector")
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    for _ in 0..100 {
        let q = ch
            .queue_declare(
                topology.routing_queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        if q.message_count() == 0 {
            consumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(consumed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, events) = app
        .get_json(&token, &format!("/v1/complaints/{id}/events"))
        .await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        2,
        "still submitted + routed only"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_ends_in_the_dead_letter_queue() {
    let app = TestApp::spawn().await;
    publish(
        &app,
        "complaint.submitted",
        b"\x00not json at all",
        "poison-1",
    )
    .await;
    let dead = dead_letter(&app, Duration::from_secs(10)).await;
    assert_eq!(dead, b"\x00not json at all");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_dead_lettered_after_bounded_attempts_and_the_complaint_stays_readable(
) {
    // The relay is off so the only message about this complaint is the broken one we send.
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(|s| {
            s.relay.enabled = false;
            s.worker.max_deliveries = 3;
        }),
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let (other, _) = app.tenant_and_token().await;
    let id = app
        .file(&token, &example_complaint())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Names the complaint under the wrong tenant: the worker can never apply it.
    let message = QueueMessage {
        message_id: uuid::Uuid::now_v7(),
        message_type: "complaint.submitted".into(),
        tenant_id: other.tenant_id.clone(),
        complaint_id: id.clone(),
        occurred_at: chrono::Utc::now(),
    };
    let body = serde_json::to_vec(&message).unwrap();
    publish(
        &app,
        "complaint.submitted",
        &body,
        &message.message_id.to_string(),
    )
    .await;
    let dead = dead_letter(&app, Duration::from_secs(20)).await;
    assert_eq!(
        serde_json::from_slice::<QueueMessage>(&dead).unwrap(),
        message
    );

    let (status, c) = app.get_json(&token, &format!("/v1/complaints/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(c["status"], "submitted", "the last good status stands");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_routes_each_of_its_complaints_once_or_changes_nothing() {
    use redress_worker::routing::{process, process_batch, Outcome, ProcessError};

    // No worker: the test applies the messages itself, in batches of its choosing.
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Options::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    let mut messages = Vec::new();
    for _ in 0..5 {
        messages.push(app.file_for_router(&token).await);
    }
    let pool = redress_shared::db::pool(app.settings.database_url.expose(), 2).unwrap();
    let routed = |o: &Outcome| matches!(o, Outcome::Routed { .. });

    // Two new cases in one transaction: both routed.
    let outcomes = process_batch(&pool, &messages[0..2]).await.unwrap();
    assert!(outcomes.iter().all(routed), "{outcomes:?}");

    // A redelivered message beside a new one: the first changes nothing, the second routes.
    let outcomes = process_batch(&pool, &[messages[1].clone(), messages[2].clone()])
        .await
        .unwrap();
    assert_eq!(outcomes[0], Outcome::Duplicate);
    assert!(routed(&outcomes[1]), "{outcomes:?}");

    // A message about a complaint that does not exist fails its batch, and the other
    // message in it is not recorded as applied: applied on its own, it routes its case.
    let mut stray = messages[3].clone();
    stray.message_id = uuid::Uuid::new_v4();
    stray.complaint_id = "cmp_00000000000000000000000000".into();
    let failed = process_batch(&pool, &[messages[3].clone(), stray]).await;
    assert!(
        matches!(failed, Err(ProcessError::Permanent(ref m)) if m.contains("not found")),
        "{failed:?}"
    );
    let (_, c) = app
        .get_json(
            &token,
            &format!("/v1/complaints/{}", messages[3].complaint_id),
        )
        .await;
    assert_eq!(c["status"], "submitted", "the failed batch changed nothing");
    assert!(routed(&process(&pool, &messages[3]).await.unwrap()));

    // Two messages about one case never share a batch.
    let mut again = messages[4].clone();
    again.message_id = uuid::Uuid::new_v4();
    assert!(process_batch(&pool, &[messages[4].clone(), again])
        .await
        .is_err());
    assert!(routed(&process(&pool, &messages[4]).await.unwrap()));

    for m in &messages {
        let (_, events) = app
            .get_json(&token, &format!("/v1/complaints/{}/events", m.complaint_id))
            .await;
        let types: Vec<&str> = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["complaint.submitted", "complaint.routed"],
            "{}",
            m.complaint_id
        );
        let (_, c) = app
            .get_json(&token, &format!("/v1/complaints/{}", m.complaint_id))
            .await;
        assert_eq!(c["status"], "routed");
        assert!(!c["current"].as_array().unwrap().is_empty(), "{c}");
    }
    app.stop().await;
}

/// Files the example complaint and waits until it is routed: its id and how long that took.
async fn file_until_routed(app: &TestApp, token: &str) -> (String, Duration) {
    let filed = tokio::time::Instant::now();
    let id = app.file_example(token).await;
    app.wait_for_status(token, &id, "routed", Duration::from_secs(20))
        .await;
    (id, filed.elapsed())
}

/// The complaint's `complaint.routed` event: when it was written and by which transaction.
async fn routed_at(app: &TestApp, id: &str) -> (chrono::DateTime<chrono::Utc>, String) {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        at: chrono::DateTime<chrono::Utc>,
        #[diesel(sql_type = diesel::sql_types::Text)]
        xid: String,
    }
    let mut conn = app.db().await;
    let row: Row = diesel::sql_query(
        "SELECT at, xmin::text AS xid FROM complaint_events \
         WHERE complaint_id = $1 AND event_type = 'complaint.routed'",
    )
    .bind::<diesel::sql_types::Text, _>(id)
    .get_result(&mut conn)
    .await
    .unwrap();
    (row.at, row.xid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_keeps_up_routes_what_arrives_within_the_round_gap_in_one_transaction_and_a_quiet_one_does_not_wait(
) {
    let gap = Duration::from_millis(1500);
    let app = TestApp::spawn_with(Options {
        tweak: Box::new(move |s| {
            s.worker.round_gap_ms = gap.as_millis() as u64;
            s.relay.round_gap_ms = 0;
        }),
        ..Default::default()
    })
    .await;
    let (_, token) = app.tenant_and_token().await;
    // The first complaint is routed at once: no transaction started before it.
    let (first, took) = file_until_routed(&app, &token).await;
    assert!(
        took < gap,
        "a quiet worker does not wait for the gap: {took:?}"
    );
    let (first_at, first_xid) = routed_at(&app, &first).await;

    // Filed right after it, one by one: they wait for the gap and go in one transaction.
    let mut next = Vec::new();
    for _ in 0..4 {
        next.push(app.file_example(&token).await);
    }
    for id in &next {
        app.wait_for_status(&token, id, "routed", Duration::from_secs(20))
            .await;
    }
    let mut transactions = std::collections::BTreeSet::new();
    for id in &next {
        let (at, xid) = routed_at(&app, id).await;
        assert!(
            at - first_at >= chrono::TimeDelta::milliseconds(1400),
            "routed {} after the transaction before it, within the gap",
            at - first_at
        );
        transactions.insert(xid);
    }
    assert!(!transactions.contains(&first_xid));
    assert_eq!(
        transactions.len(),
        1,
        "what arrived during the gap is one batch"
    );

    // Once the gap has passed, a new complaint is routed at once again.
    tokio::time::sleep(gap).await;
    let (_, took) = file_until_routed(&app, &token).await;
    assert!(
        took < gap,
        "a worker whose last transaction started longer ago than the gap does not wait: {took:?}"
    );
    app.stop().await;
}
