//! The baselines our figures are divided by, measured in the same run on the same machine:
//!
//! - **SQL**: the rows one intake writes (complaint, first event, outbox row, the
//!   `Idempotency-Key` with its answer), written by
//!   plain SQL transactions at the same concurrency through a pool of the API's size, into
//!   a scratch schema whose tables are copies of ours with the same indexes (`LIKE …
//!   INCLUDING ALL`), so no relay publishes them and nothing else reads them.
//! - **AMQP**: a plain publish-with-confirms loop (persistent, mandatory, a window of
//!   unconfirmed messages like the relay's batch) into a quorum queue of the run's namespace.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use diesel::sql_types::{Integer, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use lapin::{
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
    BasicProperties, Confirmation,
};
use rand::{rngs::StdRng, SeedableRng};
use redress_shared::ids::{ComplaintId, EventId};
use serde::Serialize;

use sha2::Digest;

use crate::{complaint, report::Percentiles, stack::lock};

#[derive(Debug, Default, Serialize)]
pub struct SqlBaseline {
    pub concurrency: usize,
    pub pool_size: usize,
    pub seconds: f64,
    pub transactions: u64,
    pub per_second: f64,
    pub latency_ms: Percentiles,
    pub errors: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct AmqpBaseline {
    pub window: usize,
    pub seconds: f64,
    pub confirmed: u64,
    pub per_second: f64,
    pub nacked: u64,
}

const SCHEMA: &str = "bench_baseline";

/// Writes complaint + event + outbox row + idempotency key per transaction for `duration`.
pub async fn sql(
    database_url: &str,
    tenant_id: &str,
    client_id: &str,
    concurrency: usize,
    pool_size: usize,
    duration: Duration,
) -> anyhow::Result<SqlBaseline> {
    {
        let mut conn = AsyncPgConnection::establish(database_url).await?;
        diesel::sql_query(format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .execute(&mut conn)
            .await?;
        diesel::sql_query(format!("CREATE SCHEMA {SCHEMA}"))
            .execute(&mut conn)
            .await?;
        for table in [
            "complaints",
            "complaint_events",
            "outbox",
            "idempotency_keys",
        ] {
            diesel::sql_query(format!(
                "CREATE TABLE {SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL)"
            ))
            .execute(&mut conn)
            .await?;
        }
    }
    let pool = redress_shared::db::pool(database_url, pool_size)?;
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let pool = pool.clone();
        let latencies = latencies.clone();
        let errors = errors.clone();
        let tenant = tenant_id.to_owned();
        let client = client_id.to_owned();
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker as u64);
            let mut mine = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let body = complaint::complaint(&mut rng, &format!("baseline-{worker}-{n}"));
                let t = Instant::now();
                match write_one(&pool, &tenant, &client, body).await {
                    Ok(()) => mine.push(t.elapsed().as_micros() as u64),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lock(&latencies).extend(mine);
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *lock(&latencies));
    let transactions = lat.len() as u64;
    let result = SqlBaseline {
        concurrency,
        pool_size,
        seconds,
        transactions,
        per_second: transactions as f64 / seconds,
        latency_ms: Percentiles::of_micros(&mut lat),
        errors: AtomicU64::load(&errors, Ordering::Relaxed),
    };
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    diesel::sql_query(format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .execute(&mut conn)
        .await?;
    Ok(result)
}

async fn write_one(
    pool: &redress_shared::db::PgPool,
    tenant: &str,
    client: &str,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let id = ComplaintId::generate().to_string();
    let now = Utc::now();
    let category = body["category"].as_str().unwrap_or("other").to_owned();
    let provider = body["respondent"]["provider"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let kind = body["complainant"]["kind"]
        .as_str()
        .unwrap_or("consumer")
        .to_owned();
    let external_ref = body["external_ref"].as_str().unwrap_or("").to_owned();
    let message_id = uuid::Uuid::now_v7();
    let payload = serde_json::json!({
        "message_id": message_id,
        "type": "complaint.submitted",
        "tenant_id": tenant,
        "complaint_id": id,
        "occurred_at": now,
    });
    let event_data = serde_json::json!({"status": "submitted", "category": category});
    let key = uuid::Uuid::new_v4().to_string();
    let hash = hex::encode(sha2::Sha256::digest(body.to_string().as_bytes()));
    conn.transaction(async |conn| {
        diesel::sql_query(format!(
            "INSERT INTO {SCHEMA}.complaints (id, tenant_id, client_id, external_ref, status, category, provider, complainant_kind, details, last_sequence, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'submitted', $5, $6, $7, $8, 1, $9, $9)"
        ))
        .bind::<Text, _>(&id)
        .bind::<Text, _>(tenant)
        .bind::<Text, _>(client)
        .bind::<Text, _>(&external_ref)
        .bind::<Text, _>(&category)
        .bind::<Text, _>(&provider)
        .bind::<Text, _>(&kind)
        .bind::<Jsonb, _>(&body)
        .bind::<Timestamptz, _>(now)
        .execute(conn)
        .await?;
        diesel::sql_query(format!(
            "INSERT INTO {SCHEMA}.complaint_events (id, tenant_id, complaint_id, sequence, event_type, actor, data, at) \
             VALUES ($1, $2, $3, $4, 'complaint.submitted', $5, $6, $7)"
        ))
        .bind::<Text, _>(EventId::generate().to_string())
        .bind::<Text, _>(tenant)
        .bind::<Text, _>(&id)
        .bind::<Integer, _>(1)
        .bind::<Text, _>(format!("client:{client}"))
        .bind::<Jsonb, _>(&event_data)
        .bind::<Timestamptz, _>(now)
        .execute(conn)
        .await?;
        diesel::sql_query(format!(
            "INSERT INTO {SCHEMA}.outbox (message_id, tenant_id, routing_key, payload) VALUES ($1, $2, 'complaint.submitted', $3)"
        ))
        .bind::<SqlUuid, _>(message_id)
        .bind::<Text, _>(tenant)
        .bind::<Jsonb, _>(&payload)
        .execute(conn)
        .await?;
        // The partner's Idempotency-Key (the load sends one with every complaint, as
        // careful partners do), without its answer, as intake stores it (migration 000019).
        diesel::sql_query(format!(
            "INSERT INTO {SCHEMA}.idempotency_keys (client_id, idempotency_key, request_hash, response_status, resource_id, tenant_id) \
             VALUES ($1, $2, $3, 202, $4, $5)"
        ))
        .bind::<Text, _>(client)
        .bind::<Text, _>(&key)
        .bind::<Text, _>(&hash)
        .bind::<Text, _>(&id)
        .bind::<Text, _>(tenant)
        .execute(conn)
        .await?;
        Ok::<_, diesel::result::Error>(())
    })
    .await?;
    Ok(())
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

/// Publishes with confirms for `duration`, `window` messages in flight at most.
pub async fn amqp(
    url: &str,
    namespace: &str,
    window: usize,
    duration: Duration,
) -> anyhow::Result<AmqpBaseline> {
    let conn = redress_shared::amqp::connect(url, "redress-bench-baseline").await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let queue = format!("{namespace}.bench.baseline");
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        quorum(),
    )
    .await?;
    // The relay's message, give or take the ids.
    let body = serde_json::to_vec(&serde_json::json!({
        "message_id": uuid::Uuid::now_v7(),
        "type": "complaint.submitted",
        "tenant_id": "ten_0000000000000000000000000000",
        "complaint_id": "cmp_0000000000000000000000000000",
        "occurred_at": Utc::now(),
    }))?;
    let start = Instant::now();
    let mut confirmed = 0u64;
    let mut nacked = 0u64;
    while start.elapsed() < duration {
        let mut pending = Vec::with_capacity(window);
        for _ in 0..window {
            let props = BasicProperties::default()
                .with_message_id(uuid::Uuid::now_v7().to_string().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            pending.push(
                ch.basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    props,
                )
                .await?,
            );
        }
        for confirm in pending {
            match confirm.await? {
                Confirmation::Ack(None) => confirmed += 1,
                _ => nacked += 1,
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "baseline done".into()).await;
    Ok(AmqpBaseline {
        window,
        seconds,
        confirmed,
        per_second: confirmed as f64 / seconds,
        nacked,
    })
}

/// Deletes the queues and exchanges a run declared under `namespace`.
pub async fn delete_namespace(url: &str, namespace: &str) -> anyhow::Result<()> {
    let conn = redress_shared::amqp::connect(url, "redress-bench-cleanup").await?;
    for queue in [
        format!("{namespace}.routing"),
        format!("{namespace}.routing.dead"),
        format!("{namespace}.bench.baseline"),
    ] {
        // A failed delete closes the channel: one channel per object.
        let ch = conn.create_channel().await?;
        let _ = ch
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [format!("{namespace}.events"), format!("{namespace}.dead")] {
        let ch = conn.create_channel().await?;
        let _ = ch
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "cleanup done".into()).await;
    Ok(())
}
