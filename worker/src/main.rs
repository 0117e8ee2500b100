//! `redress-worker`: consumes RabbitMQ, routes complaints, relays the outbox.

use redress_shared::config::Settings;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    redress_shared::telemetry::init(&settings.log);
    let shutdown = CancellationToken::new();
    redress_shared::shutdown::cancel_on_signal(shutdown.clone());
    redress_worker::Worker::start(settings, shutdown)?
        .wait()
        .await;
    Ok(())
}
