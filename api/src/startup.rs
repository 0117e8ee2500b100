//! The app factory: builds the HTTP server on a listener it is given (tests bind port 0),
//! starts the outbox relay beside it, and stops both on one cancellation token.

use std::{net::TcpListener, sync::Arc, time::Instant};

use actix_web::{
    body::{BoxBody, EitherBody},
    dev::{Server, Service, ServiceResponse},
    http::{header, StatusCode},
    middleware::{ErrorHandlerResponse, ErrorHandlers},
    web, App, HttpRequest, HttpResponse, HttpServer,
};
use redress_shared::{
    amqp::Topology,
    config::Settings,
    db,
    metrics::{BrokerProbe, Exporter, Metrics, Process},
    outbox::{Relay, RelayHandle},
};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::{
        keys::{self, KeyRing, KeySet, SigningKey},
        rotation, secrets,
    },
    error::{ApiError, PROBLEM_JSON},
    openapi::ApiDoc,
    routes,
    state::AppState,
};

pub struct Application {
    port: u16,
    server: Server,
    shutdown: CancellationToken,
    relay: Option<tokio::task::JoinHandle<()>>,
}

/// The signing key from configuration: the bootstrap key that an empty `signing_keys` table
/// starts with (see `auth::rotation`). A missing key is an error unless the operator
/// explicitly asked for a throwaway development key.
pub fn load_keys(settings: &Settings) -> Result<KeySet, keys::KeyError> {
    let current = match (
        &settings.signing_key_path,
        settings.dev_signing_key.as_deref(),
    ) {
        (Some(path), _) => SigningKey::from_file(path)?,
        (None, Some("generate")) => {
            tracing::warn!("REDRESS_DEV_SIGNING_KEY=generate: a throwaway key becomes the first signing key if the database holds none yet");
            SigningKey::from_pem(&keys::generate_ed25519_pem()?)?
        }
        (None, _) => return Err(keys::KeyError::Missing),
    };
    Ok(KeySet::new(current, Vec::new()))
}

impl Application {
    /// Binds `settings.http_addr` and builds the app.
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.http_addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.http_addr))?;
        let keys = load_keys(&settings)?;
        Self::build_with(settings, keys, listener, shutdown).await
    }

    /// `keys` is the bootstrap set: its signing key goes into the database's key set if that
    /// is empty, and it alone is used until the database's set is loaded (which is tried
    /// here once, then in the background until it succeeds).
    pub async fn build_with(
        settings: Settings,
        keys: KeySet,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let pool = db::pool_with(
            settings.database_url.expose(),
            settings.db_pool_size,
            settings.db_session(),
        )?;
        let bootstrap_pem = keys.bootstrap_key().map(|k| k.pem().to_owned());
        let keys = Arc::new(KeyRing::new(keys));
        if let Err(e) = rotation::refresh(&pool, &keys, &settings, bootstrap_pem.as_deref()).await {
            tracing::warn!(error = %e, "signing keys not loaded from the database yet; retrying in the background");
        }
        rotation::spawn_reloader(
            pool.clone(),
            keys.clone(),
            settings.clone(),
            bootstrap_pem,
            shutdown.clone(),
        );
        let relay_handle = RelayHandle::default();
        let relay = settings.relay.enabled.then(|| {
            let relay = Relay::new(pool.clone(), &settings, relay_handle.clone());
            tokio::spawn(relay.run(shutdown.clone()))
        });
        let dummy_secret_hash = secrets::hash(secrets::generate()).await?;
        let max_body = settings.http.max_body_bytes;
        let workers = settings.http.workers;
        let metrics = Metrics::new(Process::Api)?;
        let exporter = Arc::new(Exporter::new(
            metrics.clone(),
            pool.clone(),
            BrokerProbe::new(
                settings.amqp_url.expose(),
                &Topology::new(&settings.amqp_namespace, settings.worker.max_deliveries),
            ),
        ));
        let limits = Arc::new(crate::limits::Limiters::new(&settings));
        limits.spawn_sweeper(
            std::time::Duration::from_secs(settings.limits.limiter_sweep_secs),
            shutdown.clone(),
        );
        let intake = crate::intake::IntakeWriter::start(pool.clone(), &settings.intake);
        let state = web::Data::new(AppState {
            // Far more tokens than partners hold at once (one per client and process for
            // up to 15 minutes); each entry is a few hundred bytes.
            verified_tokens: crate::auth::tokens::VerifiedTokens::new(4096),
            intake,
            pool,
            keys,
            settings,
            relay: relay_handle,
            dummy_secret_hash,
            metrics: exporter,
            limits,
            routing_in_force: Default::default(),
        });
        let openapi = ApiDoc::openapi();
        let known = Arc::new(crate::openapi::KnownPaths::from_document(&openapi));
        let mut server = HttpServer::new(move || {
            let metrics = metrics.clone();
            let known = known.clone();
            App::new()
                // Inside the error handlers, so a refused body still gets problem+json.
                .wrap(actix_web::middleware::from_fn(crate::limits::check_body))
                .wrap(ErrorHandlers::new().default_handler(problem_for_bare_errors))
                .wrap(tracing_actix_web::TracingLogger::default())
                // Registered last, so outermost: the time includes logging and the problem+json
                // rewrite.
                .wrap_fn(move |req, srv| {
                    let started = Instant::now();
                    let method = req.method().clone();
                    let metrics = metrics.clone();
                    let call = srv.call(req);
                    async move {
                        let res = call.await?;
                        // The pattern, not the path: `/v1/complaints/{id}` is one series.
                        let route = res.request().match_pattern();
                        metrics.observe_http(
                            method.as_str(),
                            route.as_deref().unwrap_or("unmatched"),
                            res.status().as_u16(),
                            started.elapsed(),
                        );
                        Ok(res)
                    }
                })
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(routes::configure)
                .route(
                    "/openapi.json",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(crate::openapi::document())
                    }),
                )
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi-ui.json", openapi.clone()))
                .route(
                    "/docs",
                    web::get().to(|| async {
                        HttpResponse::PermanentRedirect()
                            .insert_header((header::LOCATION, "/docs/"))
                            .finish()
                    }),
                )
                // A documented path asked with a method it does not serve is 405 with `Allow`;
                // anything else nobody serves is 404.
                .default_service(web::to(move |req: HttpRequest| {
                    let known = known.clone();
                    async move { not_routed(&known, &req) }
                }))
        })
        .disable_signals()
        .shutdown_timeout(10)
        .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server.run();
        let handle = server.handle();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            handle.stop(true).await;
        });
        Ok(Self {
            port,
            server,
            shutdown,
            relay,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the shutdown token is cancelled, then drains requests and the relay.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.shutdown.cancel();
        if let Some(relay) = self.relay {
            let _ = relay.await;
        }
        result
    }
}

fn not_routed(
    known: &crate::openapi::KnownPaths,
    req: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let Some(methods) = known.methods(req.path()) else {
        return Err(ApiError::NotFound);
    };
    if methods.contains(&req.method().as_str()) {
        return Err(ApiError::NotFound);
    }
    let body = serde_json::json!({
        "type": "https://redress.dev/problems/method-not-allowed",
        "title": "Method not allowed",
        "status": 405,
        "detail": format!("{} is not served here; allowed: {}", req.method(), methods.join(", ")),
    })
    .to_string();
    Ok(HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, methods.join(", ")))
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .body(body))
}

/// Errors produced by actix itself (unknown method, oversized body, bad path) come as plain
/// text; every error of this API is problem+json, so they are rewritten here.
fn problem_for_bare_errors<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON) || ct.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (title, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "The request body is too large",
            "Request bodies are limited in size; see the API docs",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Method not allowed",
            "This resource does not support that method",
        ),
        StatusCode::NOT_FOUND => ("Not found", "No such resource"),
        s if s.is_server_error() => (
            "Internal server error",
            "The request could not be completed",
        ),
        _ => ("Bad request", "The request could not be understood"),
    };
    let body = serde_json::json!({
        "type": format!("https://redress.dev/problems/{}", status.as_u16()),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    })
    .to_string();
    let (req, _) = res.into_parts();
    let response = HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .body(body);
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, response).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
