//! The Redress worker. A complaint filed through the API reaches it as a message from the
//! outbox; [`consumer`] takes it off RabbitMQ and [`routing`] decides where the case goes and
//! records that in Postgres.

pub mod consumer;
pub mod metrics_server;
pub mod routing;
pub mod scheduler;
pub mod webhooks;

use std::{net::SocketAddr, sync::Arc};

use redress_shared::{
    amqp::Topology,
    config::Settings,
    db,
    metrics::{BrokerProbe, Exporter, Metrics, Process},
    outbox::{Relay, RelayHandle},
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A running worker: its consumers and its outbox relay.
pub struct Worker {
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    metrics_addr: Option<SocketAddr>,
}

impl Worker {
    /// Starts the consumers and (if enabled) the outbox relay on the current runtime.
    /// Connections are made in the background and retried, so a worker can start before the
    /// database or the broker is up.
    pub fn start(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let pool = db::pool_with(
            settings.database_url.expose(),
            settings.db_pool_size,
            settings.db_session(),
        )?;
        let mut tasks = JoinSet::new();
        let metrics = Metrics::new(Process::Worker)?;
        // Bound here, before anything else starts, so a port already taken fails the start
        // loudly instead of leaving a worker nobody can scrape.
        let metrics_addr = if settings.worker_metrics_addr.is_empty() {
            None
        } else {
            let listener =
                std::net::TcpListener::bind(&settings.worker_metrics_addr).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot listen on worker_metrics_addr {}: {e}",
                        settings.worker_metrics_addr
                    )
                })?;
            let addr = listener.local_addr()?;
            let topology = Topology::new(&settings.amqp_namespace, settings.worker.max_deliveries);
            let exporter = Arc::new(Exporter::new(
                metrics.clone(),
                pool.clone(),
                BrokerProbe::new(settings.amqp_url.expose(), &topology),
            ));
            let server = metrics_server::spawn(listener, exporter, shutdown.clone())?;
            tasks.spawn(async move {
                let _ = server.await;
            });
            tracing::info!(%addr, "worker metrics at /metrics");
            Some(addr)
        };
        if settings.relay.enabled {
            let relay = Relay::new(pool.clone(), &settings, RelayHandle::default());
            tasks.spawn(relay.run(shutdown.clone()));
        }
        if settings.scheduler.enabled {
            let scheduler = scheduler::Scheduler::new(pool.clone(), settings.scheduler.clone())
                .with_metrics(metrics.clone());
            tasks.spawn(scheduler.run(shutdown.clone()));
        }
        let mut waker = None;
        if settings.webhooks.dispatcher_enabled {
            let dispatcher =
                webhooks::Dispatcher::new(pool.clone(), &settings)?.with_metrics(metrics.clone());
            waker = Some(dispatcher.handle());
            tasks.spawn(dispatcher.run(shutdown.clone()));
        }
        tasks.spawn(consumer::run_router(
            pool,
            settings,
            metrics,
            waker,
            shutdown.clone(),
        ));
        Ok(Self {
            tasks,
            shutdown,
            metrics_addr,
        })
    }

    /// Where `/metrics` is served (with the real port when the setting asked for port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Asks every task to drain and stop.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Waits until every task has stopped (after a shutdown signal or [`Worker::stop`]).
    pub async fn wait(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "worker task ended abnormally");
            }
        }
        tracing::info!("worker stopped");
    }
}
