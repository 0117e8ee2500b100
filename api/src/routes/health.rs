use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::{error::ApiError, state::AppState};

/// The process is alive.
#[utoipa::path(tag = "operations", responses((status = 200, description = "alive")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Postgres and RabbitMQ are reachable: the API can take complaints and have them routed.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "ready"),
        (status = 503, description = "a dependency is down", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let db = tokio::time::timeout(Duration::from_secs(2), async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    match db {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(ApiError::Unavailable(format!("postgres: {e}"))),
        Err(_) => {
            return Err(ApiError::Unavailable(
                "postgres: no answer within 2 s".into(),
            ))
        }
    }
    if state.settings.relay.enabled && !state.relay.broker_connected() {
        return Err(ApiError::Unavailable(
            "rabbitmq: the outbox relay is not connected".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

/// Prometheus metrics of this process in the text exposition format: request latencies by
/// route, outbox lag, queue depths, pool usage (docs/OPERATIONS.md lists every series).
/// Sampling takes at most about two seconds when a dependency is down.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(redress_shared::metrics::CONTENT_TYPE)
        .body(state.metrics.render().await)
}
