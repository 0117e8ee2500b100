//! `redress-worker`: consumes RabbitMQ, routes complaints, relays the outbox.

use redress_shared::config::Settings;
use tokio_util::sync::CancellationToken;

// mimalloc instead of glibc malloc: allocation was a tenth of the API's CPU under load and
// glibc's per-thread arenas most of its resident memory (docs/PERFORMANCE.md). A global
// allocator can only be declared as a static.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The multi-threaded runtime, deliberately: on a single-threaded one the router never saw
// RabbitMQ go away (lapin's connection is driven beside the consumer stream) and stopped
// routing after a broker restart (the stop-rabbitmq drill, docs/PERFORMANCE.md).
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
