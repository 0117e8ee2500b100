//! A local webhook receiver: records when each complaint's `complaint.routed` webhook
//! arrived, checks every signature with the endpoint's secret, and counts repeats (delivery
//! is at least once; a repeat carries the same `webhook-id`).

use std::{
    collections::{HashMap, HashSet},
    net::TcpListener,
    sync::{Arc, Mutex},
};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use redress_shared::webhooks::signing::SigningKey;

use crate::stack::lock;

#[derive(Default)]
pub struct Received {
    /// complaint id → when its `complaint.routed` webhook first arrived.
    pub routed_at: HashMap<String, DateTime<Utc>>,
    pub webhook_ids: HashSet<String>,
    pub deliveries: u64,
    pub repeats: u64,
    pub bad_signatures: u64,
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    pub received: Arc<Mutex<Received>>,
    /// tenant id → the endpoint's signing key.
    keys: Arc<Mutex<HashMap<String, SigningKey>>>,
}

impl Receiver {
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let this = Receiver {
            port,
            received: Arc::default(),
            keys: Arc::default(),
        };
        let data = web::Data::new(this.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/hook/{tenant}", web::post().to(hook))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        tokio::spawn(server);
        Ok(this)
    }

    pub fn url_for(&self, tenant_id: &str) -> String {
        format!("http://127.0.0.1:{}/hook/{tenant_id}", self.port)
    }

    pub fn add_key(&self, tenant_id: &str, secret: &str) -> anyhow::Result<()> {
        let key = SigningKey::parse(secret).map_err(|e| anyhow::anyhow!("{e}"))?;
        lock(&self.keys).insert(tenant_id.to_owned(), key);
        Ok(())
    }

    pub fn count(&self) -> usize {
        lock(&self.received).routed_at.len()
    }
}

async fn hook(
    req: HttpRequest,
    body: web::Bytes,
    path: web::Path<String>,
    me: web::Data<Receiver>,
) -> HttpResponse {
    let now = Utc::now();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let msg_id = header("webhook-id").to_owned();
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
    let signature = header("webhook-signature").to_owned();
    let verified = lock(&me.keys)
        .get(path.as_str())
        .is_some_and(|k| k.verify(&msg_id, timestamp, &body, &signature));
    // Only the type and the complaint id are read; the rest of the body is skipped, not
    // built into a tree (the receiver shares the machine with the hub it measures).
    let parsed: Option<Delivery> = serde_json::from_slice(&body).ok();
    let mut r = lock(&me.received);
    r.deliveries += 1;
    if !verified {
        r.bad_signatures += 1;
    }
    if !r.webhook_ids.insert(msg_id) {
        r.repeats += 1;
    }
    if let Some(Delivery {
        kind,
        data: DeliveryData {
            complaint_id: Some(id),
        },
    }) = parsed
    {
        if kind == "complaint.routed" {
            r.routed_at.entry(id.into_owned()).or_insert(now);
        }
    }
    HttpResponse::NoContent().finish()
}

/// What the receiver reads of a webhook body.
#[derive(serde::Deserialize)]
struct Delivery<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: DeliveryData<'a>,
}

#[derive(serde::Deserialize)]
struct DeliveryData<'a> {
    #[serde(borrow, default)]
    complaint_id: Option<std::borrow::Cow<'a, str>>,
}
