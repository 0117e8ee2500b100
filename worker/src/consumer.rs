//! Takes messages off the router's queue and hands them to [`crate::routing`].
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
    webhooks::DispatchWaker,
};

pub async fn run_router(
    pool: PgPool,
    settings: Settings,
    metrics: Arc<Metrics>,
    dispatcher: Option<DispatchWaker>,
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
    dispatcher: Option<&DispatchWaker>,
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
    let consumer = channel
        .basic_consume(
            topology.routing_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(), // manual acks: no_ack is false
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %topology.routing_queue, prefetch = settings.worker.prefetch, concurrency = settings.worker.concurrency, "router consuming");

    let mut broker_error = None;
    // Concurrency is bounded separately from prefetch: at most this many messages hold a
    // database connection at once, which keeps the pool from being exhausted.
    consumer
        .take_until(shutdown.cancelled())
        .for_each_concurrent(settings.worker.concurrency, |delivery| {
            let pool = pool.clone();
            let shutdown = shutdown.clone();
            let metrics = metrics.clone();
            match delivery {
                Ok(delivery) => futures::future::Either::Left(async move {
                    handle(&pool, delivery, &metrics, dispatcher, &shutdown).await;
                }),
                Err(e) => {
                    broker_error.get_or_insert(e);
                    futures::future::Either::Right(futures::future::ready(()))
                }
            }
        })
        .await;
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

async fn handle(
    pool: &PgPool,
    delivery: Delivery,
    metrics: &Metrics,
    dispatcher: Option<&DispatchWaker>,
    shutdown: &CancellationToken,
) {
    let message: QueueMessage = match serde_json::from_slice(&delivery.data) {
        Ok(m) => m,
        Err(error) => {
            tracing::error!(%error, routing_key = %delivery.routing_key, "unparseable message; dead-lettering it");
            metrics.observe_router("unparseable");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    let mut wait = Duration::from_millis(100);
    loop {
        match routing::process(pool, &message).await {
            Ok(outcome) => {
                tracing::info!(message.id = %message.message_id, tenant.id = %message.tenant_id, complaint.id = %message.complaint_id, outcome = ?outcome, "message applied");
                let label = outcome_label(&outcome);
                if label == "routed" {
                    metrics.cases_routed.inc();
                    let delay = chrono::Utc::now() - message.occurred_at;
                    metrics
                        .route_delay
                        .observe(delay.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
                }
                metrics.observe_router(&label);
                // A decision commits the event that announces it, and its webhooks with it.
                if outcome != routing::Outcome::Duplicate {
                    if let Some(d) = dispatcher {
                        d.wake();
                    }
                }
                if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                    // The effects are committed and recorded; a redelivery will be a no-op.
                    tracing::warn!(%error, "ack failed after commit");
                }
                return;
            }
            Err(ProcessError::Transient(error)) if !shutdown.is_cancelled() => {
                tracing::warn!(%error, message.id = %message.message_id, retry_in_ms = wait.as_millis() as u64, "database unavailable; holding the message");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(error) => {
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
                return;
            }
        }
    }
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
}
