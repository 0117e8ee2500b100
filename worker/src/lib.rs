//! The Redress worker. A complaint filed through the API reaches it as a message from the
//! outbox; [`consumer`] takes it off RabbitMQ and [`routing`] decides where the case goes and
//! records that in Postgres.

pub mod consumer;
pub mod routing;

use redress_shared::{
    config::Settings,
    db,
    outbox::{Relay, RelayHandle},
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A running worker: its consumers and its outbox relay.
pub struct Worker {
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
}

impl Worker {
    /// Starts the consumers and (if enabled) the outbox relay on the current runtime.
    /// Connections are made in the background and retried, so a worker can start before the
    /// database or the broker is up.
    pub fn start(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let pool = db::pool(settings.database_url.expose(), settings.db_pool_size)?;
        let mut tasks = JoinSet::new();
        if settings.relay.enabled {
            let relay = Relay::new(pool.clone(), &settings, RelayHandle::default());
            tasks.spawn(relay.run(shutdown.clone()));
        }
        tasks.spawn(consumer::run_router(pool, settings, shutdown.clone()));
        Ok(Self { tasks, shutdown })
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
