//! The worker's only HTTP listener: `GET /metrics` for Prometheus and `GET /healthz`. The
//! worker has no other HTTP surface, so one actix worker thread is plenty.

use std::{net::TcpListener, sync::Arc};

use actix_web::{web, App, HttpResponse, HttpServer};
use redress_shared::metrics::{self, Exporter};
use tokio_util::sync::CancellationToken;

/// Starts serving on `listener` and returns the task; it stops when `shutdown` is cancelled.
pub fn spawn(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let data = web::Data::from(exporter);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(scrape))
            .route(
                "/healthz",
                web::get()
                    .to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
            )
            .default_service(web::to(|| async { HttpResponse::NotFound().finish() }))
    })
    .workers(1)
    .disable_signals()
    // A scrape takes at most a couple of seconds; nothing else is worth waiting for.
    .shutdown_timeout(2)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    Ok(tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "metrics listener failed");
        }
    }))
}

async fn scrape(exporter: web::Data<Exporter>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(exporter.render().await)
}
