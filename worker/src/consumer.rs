//! Takes messages off the router's queue and hands them to [`crate::routing`], in batches
//! of the messages that have already arrived (one tenant each, a complaint at most once).
//!
//! Acknowledgement rules: a message is acked only after the transaction that applied it
//! committed. A message that cannot be parsed is rejected at once and the broker
//! dead-letters it. A message whose processing fails is returned to the queue after a pause;
//! the quorum queue counts deliveries and dead-letters it at `worker.max_deliveries`. While
//! the database is unreachable the message is held and retried in place: an outage is not
//! the message's fault and must not use up its attempts.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::FieldTable,
};
use redress_shared::{
    amqp::Topology, config::Settings, db::PgPool, domain::events::QueueMessage, metrics::Metrics,
};
use tokio_util::sync::CancellationToken;

use crate::{
    routing::{self, ProcessError},
    webhooks::DispatchHandle,
};

pub async fn run_router(
    pool: PgPool,
    settings: Settings,
    metrics: Arc<Metrics>,
    dispatcher: Option<DispatchHandle>,
    shutdown: CancellationToken,
) {
    let topology = Topology::new(&settings.amqp_namespace, settings.worker.max_deliveries);
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match consume(
            &pool,
            &settings,
            &topology,
            &metrics,
            dispatcher.as_ref(),
            &shutdown,
        )
        .await
        {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "router consumer lost the broker; reconnecting");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn consume(
    pool: &PgPool,
    settings: &Settings,
    topology: &Topology,
    metrics: &Arc<Metrics>,
    dispatcher: Option<&DispatchHandle>,
    shutdown: &CancellationToken,
) -> lapin::Result<()> {
    let conn =
        redress_shared::amqp::connect(settings.amqp_url.expose(), "redress-worker-router").await?;
    let channel = conn.create_channel().await?;
    topology.declare(&channel).await?;
    // Prefetch bounds what the broker pushes ahead of processing: twice the concurrency keeps
    // the next message ready when one finishes, without parking hundreds of messages on a
    // worker that might die (they would wait for its connection to time out).
    channel
        .basic_qos(settings.worker.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            topology.routing_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(), // manual acks: no_ack is false
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %topology.routing_queue, prefetch = settings.worker.prefetch, concurrency = settings.worker.concurrency, "router consuming");

    let mut broker_error = None;
    // Concurrency is bounded separately from prefetch: at most this many transactions hold
    // a database connection at once, which keeps the pool from being exhausted. A batch is
    // the messages that have arrived, up to `batch_size`; a batch smaller than
    // `concurrent_from` waits for the routing transaction in flight (`alone`) and for
    // `round_gap_ms` since the last one started, and takes what arrived meanwhile: a worker
    // that keeps up routes one batch at a time, in batches that grow with the load, and
    // leaves the cores to intake; only a backlog gets a second transaction. Forming the
    // batch after the wait (not before) is what lets it take what arrived meanwhile.
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.worker.concurrency));
    let alone = Arc::new(tokio::sync::Mutex::new(()));
    let concurrent_from = settings.worker.concurrent_from;
    let batch_size = settings.worker.batch_size;
    let round_gap = Duration::from_millis(settings.worker.round_gap_ms);
    let mut last_start: Option<tokio::time::Instant> = None;
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let mut chunk = Vec::with_capacity(batch_size);
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = consumer.next() => next,
        };
        match first {
            Some(Ok(delivery)) => chunk.push(delivery),
            Some(Err(e)) => {
                broker_error.get_or_insert(e);
                continue;
            }
            None => break,
        }
        if take_ready(&mut consumer, &mut chunk, batch_size, &mut broker_error) {
            break;
        }
        let turn = if chunk.len() >= concurrent_from {
            None
        } else {
            let turn = tokio::select! {
                _ = shutdown.cancelled() => break,
                turn = alone.clone().lock_owned() => turn,
            };
            if let Some(at) = last_start {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(at + round_gap) => {}
                }
            }
            if take_ready(&mut consumer, &mut chunk, batch_size, &mut broker_error) {
                break;
            }
            Some(turn)
        };
        last_start = Some(tokio::time::Instant::now());
        let pool = pool.clone();
        let shutdown = shutdown.clone();
        let metrics = metrics.clone();
        let dispatcher = dispatcher.cloned();
        running.spawn(async move {
            let _slot = permit;
            let _turn = turn;
            handle_chunk(&pool, chunk, &metrics, dispatcher.as_ref(), &shutdown).await;
        });
    }
    // The batches in flight finish (or, on shutdown, give their messages back unacked).
    while running.join_next().await.is_some() {}
    // Unacked messages go back to the queue when the channel closes.
    // A close on a dead connection waits for an answer that never comes.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        channel.close(200, "worker stopping".into()),
    )
    .await;
    // A close on a dead connection waits for an answer that never comes.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        conn.close(200, "worker stopping".into()),
    )
    .await;
    match broker_error {
        Some(e) => Err(e),
        None if shutdown.is_cancelled() => Ok(()),
        None => Err(lapin::Error::from(
            lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
        )),
    }
}

/// Adds the deliveries that have already arrived to `chunk`, up to `limit`, without
/// waiting. True when the consumer ended (the broker closed it).
fn take_ready(
    consumer: &mut lapin::Consumer,
    chunk: &mut Vec<Delivery>,
    limit: usize,
    broker_error: &mut Option<lapin::Error>,
) -> bool {
    use futures::FutureExt;
    while chunk.len() < limit {
        match consumer.next().now_or_never() {
            None => return false,
            Some(Some(Ok(delivery))) => chunk.push(delivery),
            Some(Some(Err(e))) => {
                broker_error.get_or_insert(e);
            }
            Some(None) => return true,
        }
    }
    false
}

/// Applies the messages that arrived together: parses them, splits them into batches
/// (one tenant each, a complaint at most once, a complaint's messages in arrival order) and
/// applies each batch in one transaction.
async fn handle_chunk(
    pool: &PgPool,
    deliveries: Vec<Delivery>,
    metrics: &Metrics,
    dispatcher: Option<&DispatchHandle>,
    shutdown: &CancellationToken,
) {
    let mut parsed = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match serde_json::from_slice::<QueueMessage>(&delivery.data) {
            Ok(message) => parsed.push((delivery, message)),
            Err(error) => {
                tracing::error!(%error, routing_key = %delivery.routing_key, "unparseable message; dead-lettering it");
                metrics.observe_router("unparseable");
                let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            }
        }
    }
    for batch in batches(parsed) {
        let Some((batch, error)) = apply(pool, batch, metrics, dispatcher, shutdown).await else {
            continue;
        };
        if batch.len() == 1 {
            return_to_queue(batch, &error, metrics).await;
            continue;
        }
        // So that only the message at fault goes back to the queue.
        tracing::warn!(%error, messages = batch.len(), "batch failed; applying its messages one by one");
        for one in batch {
            if let Some((one, error)) = apply(pool, vec![one], metrics, dispatcher, shutdown).await
            {
                return_to_queue(one, &error, metrics).await;
            }
        }
    }
}

/// Splits messages into batches [`routing::process_batch`] takes: one tenant each, each
/// complaint at most once, and a later message about a complaint in a later batch than an
/// earlier one, so a case sees its messages in the order they arrived. A message the router
/// does not handle goes alone (and fails alone).
fn batches<T>(messages: Vec<(T, QueueMessage)>) -> Vec<Vec<(T, QueueMessage)>> {
    let mut batches: Vec<Vec<(T, QueueMessage)>> = Vec::new();
    let mut last_batch_of = std::collections::HashMap::<String, usize>::new();
    for (item, message) in messages {
        if !routing::handles(&message.message_type) {
            batches.push(vec![(item, message)]);
            continue;
        }
        let after = last_batch_of
            .get(&message.complaint_id)
            .map_or(0, |&b| b + 1);
        let fits = |batch: &Vec<(T, QueueMessage)>| {
            batch.first().is_some_and(|(_, m)| {
                m.tenant_id == message.tenant_id && routing::handles(&m.message_type)
            })
        };
        let index = match (after..batches.len()).find(|&b| fits(&batches[b])) {
            Some(b) => b,
            None => {
                batches.push(Vec::new());
                batches.len() - 1
            }
        };
        last_batch_of.insert(message.complaint_id.clone(), index);
        batches[index].push((item, message));
    }
    batches
}

/// Applies a batch in one transaction and acks it, holding it while the database is
/// unavailable (an outage is not the messages' fault and must not use up their attempts).
/// Any other failure gives the batch back, unacked, with the error.
async fn apply(
    pool: &PgPool,
    batch: Vec<(Delivery, QueueMessage)>,
    metrics: &Metrics,
    dispatcher: Option<&DispatchHandle>,
    shutdown: &CancellationToken,
) -> Option<(Vec<(Delivery, QueueMessage)>, ProcessError)> {
    let messages: Vec<QueueMessage> = batch.iter().map(|(_, m)| m.clone()).collect();
    let lease = dispatcher.map(DispatchHandle::lease);
    let mut wait = Duration::from_millis(100);
    loop {
        match routing::process_batch_handing_over(pool, &messages, lease).await {
            Ok(done) => {
                for (message, outcome) in messages.iter().zip(&done.outcomes) {
                    observe(message, outcome, metrics);
                }
                // A decision commits the event that announces it, and its webhooks with it:
                // those leased to this process's dispatcher go to it now, and a claim finds
                // the others.
                if let Some(d) = dispatcher {
                    d.hand_over(done.handed_over);
                    if done.queued_for_claim {
                        d.wake();
                    }
                }
                let acks = batch
                    .iter()
                    .map(|(delivery, _)| delivery.ack(BasicAckOptions::default()));
                for result in futures::future::join_all(acks).await {
                    if let Err(error) = result {
                        // The effects are committed and recorded; a redelivery is a no-op.
                        tracing::warn!(%error, "ack failed after commit");
                    }
                }
                return None;
            }
            Err(ProcessError::Transient(error)) if !shutdown.is_cancelled() => {
                tracing::warn!(%error, messages = messages.len(), retry_in_ms = wait.as_millis() as u64, "database unavailable; holding the messages");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(error) => return Some((batch, error)),
        }
    }
}

/// Returns a message that failed to the queue after a pause; the quorum queue counts its
/// deliveries and dead-letters it at `worker.max_deliveries`.
async fn return_to_queue(
    batch: Vec<(Delivery, QueueMessage)>,
    error: &ProcessError,
    metrics: &Metrics,
) {
    for (delivery, message) in batch {
        tracing::error!(%error, message.id = %message.message_id, complaint.id = %message.complaint_id, "message failed; returning it to the queue");
        metrics.observe_router("failed");
        // A short pause so a message that fails every time does not spin.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await;
    }
}

/// Logs and counts an applied message; true when it changed something (and so may have
/// queued webhooks).
fn observe(message: &QueueMessage, outcome: &routing::Outcome, metrics: &Metrics) {
    tracing::info!(message.id = %message.message_id, tenant.id = %message.tenant_id, complaint.id = %message.complaint_id, outcome = ?outcome, "message applied");
    let label = outcome_label(outcome);
    if label == "routed" {
        metrics.cases_routed.inc();
        let delay = chrono::Utc::now() - message.occurred_at;
        metrics
            .route_delay
            .observe(delay.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
    }
    metrics.observe_router(&label);
}

/// The outcome's variant in snake case (`Routed { .. }` → `routed`, `AwaitingEvidence` →
/// `awaiting_evidence`): a metric label with one value per variant, whatever variants the
/// routing engine grows, and never data from the message.
fn outcome_label(outcome: &routing::Outcome) -> String {
    let debug = format!("{outcome:?}");
    let variant = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    let mut label = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                label.push('_');
            }
            label.push(c.to_ascii_lowercase());
        } else {
            label.push(c);
        }
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_the_variant_names_in_snake_case() {
        assert_eq!(
            outcome_label(&routing::Outcome::Routed {
                channel: "provider_service".into()
            }),
            "routed"
        );
        assert_eq!(outcome_label(&routing::Outcome::Duplicate), "duplicate");
    }

    fn message(n: u8, tenant: &str, complaint: &str, message_type: &str) -> (u8, QueueMessage) {
        (
            n,
            QueueMessage {
                message_id: uuid::Uuid::new_v4(),
                message_type: message_type.into(),
                tenant_id: tenant.into(),
                complaint_id: complaint.into(),
                occurred_at: chrono::Utc::now(),
            },
        )
    }

    #[test]
    fn batches_hold_one_tenant_each_and_a_complaint_once_in_arrival_order() {
        use redress_shared::domain::events::{EVIDENCE_ADDED, SUBMITTED};
        let split = batches(vec![
            message(1, "ten_a", "cmp_1", SUBMITTED),
            message(2, "ten_b", "cmp_2", SUBMITTED),
            message(3, "ten_a", "cmp_3", SUBMITTED),
            message(4, "ten_a", "cmp_1", EVIDENCE_ADDED),
            message(5, "ten_a", "cmp_4", "complaint.withdrawn"),
            message(6, "ten_a", "cmp_5", SUBMITTED),
            message(7, "ten_a", "cmp_1", EVIDENCE_ADDED),
        ]);
        let numbers: Vec<Vec<u8>> = split
            .iter()
            .map(|b| b.iter().map(|(n, _)| *n).collect())
            .collect();
        // cmp_1's second message waits for a batch after its first, its third for one
        // after that; a type the router does not handle goes alone; cmp_5 joins the
        // tenant's first batch, which cmp_1 does not hold twice.
        assert_eq!(
            numbers,
            vec![vec![1, 3, 6], vec![2], vec![4], vec![5], vec![7]]
        );
    }
}
