//! `redress-worker`: consumes RabbitMQ, routes complaints, relays the outbox.

use redress_shared::config::Settings;
use tokio_util::sync::CancellationToken;

// mimalloc instead of glibc malloc: allocation was a tenth of the API's CPU under load and
// glibc's per-thread arenas most of its resident memory (docs/PERFORMANCE.md). A global
// allocator can only be declared as a static.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: the worker waits on Postgres, RabbitMQ and receivers nearly all the time, and
// with a thread per core its tasks woke each other across threads; measured under load it
// used about a sixth less CPU this way and routed faster (docs/PERFORMANCE.md). Several
// worker processes are how a deployment uses more cores.
#[tokio::main(flavor = "current_thread")]
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
