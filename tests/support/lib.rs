//! Test harness: each test gets its own Postgres database (cloned from a migrated template),
//! its own RabbitMQ namespace, and the real API and worker started in-process on port 0.
//! Tests own their data and run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod proxy;

use std::{net::TcpListener, time::Duration};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use redress_api::{
    admin::CreatedTenant,
    auth::keys::{self, KeySet, SigningKey},
    startup::Application,
};
use redress_shared::config::{Secret, Settings};
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Where the scripts told us to put scratch data; defaults for a plain `cargo test` on a
/// machine with local services.
fn database_base_url() -> String {
    std::env::var("REDRESS_TEST_DATABASE_URL").unwrap_or_else(|_| {
        static DEFAULT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                format!(
                    "postgres://postgres@127.0.0.1:5432/redress_test_{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                )
            })
            .clone()
    })
}

pub fn amqp_url() -> String {
    std::env::var("REDRESS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn split_db_url(url: &str) -> (String, String) {
    let (server, name) = url.rsplit_once('/').expect("database url has a name");
    (server.to_owned(), name.to_owned())
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The migrated template database, made once per test process.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let (server, name) = split_db_url(&database_base_url());
            let mut admin = AsyncPgConnection::establish(&format!("{server}/postgres"))
                .await
                .expect("postgres reachable");
            // Another test process may be making the same template.
            diesel::sql_query("SELECT pg_advisory_lock(727272)")
                .execute(&mut admin)
                .await
                .unwrap();
            let exists: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
            ))
            .get_result(&mut admin)
            .await
            .unwrap();
            if exists == 0 {
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                redress_shared::db::migrate(&format!("{server}/{name}"))
                    .await
                    .expect("migrations apply");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(727272)")
                .execute(&mut admin)
                .await
                .unwrap();
            name
        })
        .await
}

/// A fresh database for one test, cloned from the template.
pub async fn fresh_database() -> String {
    let template = template().await;
    let (server, _) = split_db_url(&database_base_url());
    let name = format!(
        "{template}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut admin = AsyncPgConnection::establish(&format!("{server}/postgres"))
        .await
        .unwrap();
    // Cloning reads the template's files; retry if a concurrent clone holds it for a moment.
    let mut last = None;
    for _ in 0..20 {
        match diesel::sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
        ))
        .execute(&mut admin)
        .await
        {
            Ok(_) => return format!("{server}/{name}"),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("cannot create test database: {last:?}");
}

pub async fn drop_database(url: &str) {
    let (server, name) = split_db_url(url);
    if let Ok(mut admin) = AsyncPgConnection::establish(&format!("{server}/postgres")).await {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

/// What a test may change before the app starts.
pub struct Options {
    pub worker: bool,
    /// The URL the API's outbox relay uses (e.g. through a [`proxy::Proxy`]).
    pub api_amqp_url: Option<String>,
    pub tweak: Box<dyn Fn(&mut Settings) + Send>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            worker: true,
            api_amqp_url: None,
            tweak: Box::new(|_| {}),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub settings: Settings,
    pub http: reqwest::Client,
    pub signing_pem: String,
    pub kid: String,
    /// The worker's `/metrics` URL, when a worker runs and its listener is on.
    pub worker_metrics: Option<String>,
    shutdown: CancellationToken,
    worker_shutdown: CancellationToken,
    api: Option<tokio::task::JoinHandle<()>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

pub struct Tenant {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        redress_shared::telemetry::init(
            &std::env::var("REDRESS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        let database_url = fresh_database().await;
        let mut settings = Settings::defaults().unwrap();
        // The app connects as the application role, held by row-level security like in a
        // deployment; the harness (`db()`, `create_tenant`) keeps the owner's URL.
        settings.database_url = Secret::new(
            redress_shared::db::url_with_user(&database_url, redress_shared::db::APP_ROLE)
                .expect("database url has a host"),
        );
        settings.admin_database_url = Secret::new(database_url.clone());
        settings.amqp_url = Secret::new(amqp_url());
        settings.amqp_namespace = format!(
            "{}.{}",
            std::env::var("REDRESS_TEST_AMQP_NAMESPACE").unwrap_or_else(|_| "redress_test".into()),
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        settings.db_pool_size = 5;
        settings.http.workers = 1;
        settings.relay.poll_interval_ms = 100;
        settings.webhook_allow_loopback = true;
        // Tests run in parallel: each worker's /metrics listener takes a free port.
        settings.worker_metrics_addr = "127.0.0.1:0".into();
        // The rate limits have their own tests (tests/it/limits.rs), which turn them on;
        // elsewhere tests poll and fetch tokens as fast as they like.
        settings.rate_limit_per_client = 0;
        settings.limits.token_attempts_per_minute = 0;
        (options.tweak)(&mut settings);
        settings.validate().unwrap();

        let signing_pem = keys::generate_ed25519_pem().unwrap();
        let key = SigningKey::from_pem(&signing_pem).unwrap();
        let kid = key.kid.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let shutdown = CancellationToken::new();
        let mut api_settings = settings.clone();
        if let Some(url) = &options.api_amqp_url {
            api_settings.amqp_url = Secret::new(url.clone());
        }
        let app = Application::build_with(
            api_settings,
            KeySet::new(key, Vec::new()),
            listener,
            shutdown.clone(),
        )
        .await
        .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let api = tokio::spawn(async move {
            let _ = app.run_until_stopped().await;
        });

        let worker_shutdown = CancellationToken::new();
        let mut worker_metrics = None;
        let worker = if options.worker {
            let mut worker_settings = settings.clone();
            // One relay (the API's) is enough in tests; the worker's own relay would publish
            // the same rows and hide a broken API relay.
            worker_settings.relay.enabled = false;
            let w =
                redress_worker::Worker::start(worker_settings, worker_shutdown.clone()).unwrap();
            worker_metrics = w.metrics_addr().map(|a| format!("http://{a}/metrics"));
            Some(tokio::spawn(w.wait()))
        } else {
            None
        };

        let app = TestApp {
            base,
            database_url,
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            signing_pem,
            kid,
            worker_metrics,
            shutdown,
            worker_shutdown,
            api: Some(api),
            worker,
        };
        app.wait_ready().await;
        app
    }

    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("app never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn create_tenant(&self, template: Option<&str>) -> Tenant {
        let CreatedTenant {
            tenant_id,
            client_id,
            client_secret,
        } = redress_api::admin::create_tenant(
            &self.database_url,
            "Test consumer association",
            template,
        )
        .await
        .unwrap();
        Tenant {
            tenant_id,
            client_id,
            client_secret,
        }
    }

    /// A cn-pos tenant and a token with every scope.
    pub async fn tenant_and_token(&self) -> (Tenant, String) {
        let t = self.create_tenant(Some("cn-pos")).await;
        let token = self.token(&t.client_id, &t.client_secret, None).await;
        (t, token)
    }

    pub async fn token(&self, client_id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let r = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(client_id, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token request failed");
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn file(&self, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/complaints"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Files `body` with an `Idempotency-Key`, as partners do when they may retry.
    pub async fn file_with_key(&self, token: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/complaints"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Files the example complaint, expects it accepted and returns its id.
    pub async fn file_example(&self, token: &str) -> String {
        let r = self.file(token, &example_complaint()).await;
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn get_json(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls the complaint until it has `status`, or panics after `within`.
    pub async fn wait_for_status(
        &self,
        token: &str,
        id: &str,
        status: &str,
        within: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (code, body) = self.get_json(token, &format!("/v1/complaints/{id}")).await;
            assert_eq!(code, 200, "{body}");
            if body["status"] == status {
                return body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "complaint {id} did not reach {status} within {within:?}; it is {}",
                    body["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A connection as the application role (`redress_app`), to check what row-level
    /// security lets the app see.
    pub async fn app_db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(self.settings.database_url.expose())
            .await
            .unwrap()
    }

    /// Files the example complaint and returns the queue message its intake committed, for
    /// a test that routes it itself.
    pub async fn file_for_router(
        &self,
        token: &str,
    ) -> redress_shared::domain::events::QueueMessage {
        let r = self.file(token, &example_complaint()).await;
        assert_eq!(r.status(), 202);
        let filed: Value = r.json().await.unwrap();
        self.queue_message_for(filed["id"].as_str().unwrap()).await
    }

    /// The queue message the outbox holds for a complaint (what the router is sent).
    pub async fn queue_message_for(
        &self,
        complaint_id: &str,
    ) -> redress_shared::domain::events::QueueMessage {
        let mut conn = self.db().await;
        let payload: Value = diesel::dsl::sql::<diesel::sql_types::Jsonb>(&format!(
            "SELECT payload FROM outbox WHERE payload->>'complaint_id' = '{complaint_id}'"
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        serde_json::from_value(payload).unwrap()
    }

    /// A connection as the owner (sees every tenant), for setup and inspection.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .unwrap()
    }

    /// Stops the worker alone (the API keeps running).
    pub async fn stop_worker(&mut self) {
        self.worker_shutdown.cancel();
        if let Some(w) = self.worker.take() {
            let _ = w.await;
        }
    }

    /// Stops everything and drops the test's database and queues.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.worker_shutdown.cancel();
        if let Some(api) = self.api.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), api).await;
        }
        if let Some(w) = self.worker.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), w).await;
        }
        delete_topology(&self.settings).await;
        drop_database(&self.database_url).await;
    }
}

async fn delete_topology(settings: &Settings) {
    let topology = redress_shared::amqp::Topology::new(
        &settings.amqp_namespace,
        settings.worker.max_deliveries,
    );
    if let Ok(conn) =
        redress_shared::amqp::connect(settings.amqp_url.expose(), "redress-tests-cleanup").await
    {
        if let Ok(ch) = conn.create_channel().await {
            for q in [&topology.routing_queue, &topology.dead_letter_queue] {
                let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
            }
            for e in [&topology.events_exchange, &topology.dead_exchange] {
                let _ = ch
                    .exchange_delete(e.as_str().into(), Default::default())
                    .await;
            }
        }
        let _ = conn.close(200, "cleanup".into()).await;
    }
}

/// The contract's example complaint, with a unique external_ref.
pub fn example_complaint() -> Value {
    json!({
        "external_ref": format!("app-{}", uuid::Uuid::new_v4().simple()),
        "complainant": {"name": "张三", "phone": "13800138000", "kind": "consumer", "region": "310115"},
        "respondent": {"provider": "拉卡拉", "merchant_no": "822290070111234", "terminal_sn": "N5NL0123456"},
        "category": "deposit_not_refunded",
        "summary": "POS机押金299元申请退还被拒",
        "description": "退机后申请退还押金，客服拒绝。",
        "amount_claimed": {"value": "299.00", "currency": "CNY"},
        "occurred_on": "2026-09-03",
        "desired_outcomes": ["refund"],
        "evidence": [{"kind": "payment_receipt", "description": "押金转账记录", "sha256": "9e64789a89f46800396c3665e90de689cf80f269ec768e39c774caa71c7d30e4"}],
        "prior_contacts": []
    })
}
