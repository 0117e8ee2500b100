//! Typed, layered configuration: built-in defaults, then an optional TOML file named by
//! `REDRESS_CONFIG`, then `REDRESS_…` environment variables (nested keys with `__`, e.g.
//! `REDRESS_WORKER__CONCURRENCY=8`). Validated once at start and passed in; never global.

use std::{fmt, path::PathBuf};

use serde::Deserialize;

/// A value that must never reach a log line.
#[derive(Clone, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Postgres URL the API and the worker connect with, as `redress_app`: a role that owns
    /// no table and cannot bypass row-level security, so every transaction sees only the
    /// tenant it set (shared/src/db/tenant.rs). May carry a password, hence secret; when it
    /// does, `redress-api migrate` makes it that role's password.
    pub database_url: Secret,
    /// Postgres URL of the tables' owner, for `redress-api migrate` and the cross-tenant
    /// `redress-api admin …` commands (which record what they did in the audit log). Must
    /// be a superuser or a role with BYPASSRLS: the tenant tables' policies are FORCEd,
    /// so they hold their owner too. `serve` and the worker never connect with it.
    pub admin_database_url: Secret,
    /// AMQP URL; the vhost in the path is honoured (`%2f` is the default vhost).
    pub amqp_url: Secret,
    /// Prefix of every exchange and queue this deployment declares, so several deployments
    /// (or test runs) can share one broker vhost without seeing each other's messages.
    pub amqp_namespace: String,
    /// Address the API listens on.
    pub http_addr: String,
    /// PKCS#8 PEM private key (Ed25519 or P-256) that signs access tokens.
    pub signing_key_path: Option<PathBuf>,
    /// `generate` makes an ephemeral development key when no key path is set. Off by default:
    /// a production API without a configured key refuses to start instead of guessing.
    pub dev_signing_key: Option<String>,
    /// Tracing filter for the JSON logs.
    pub log: String,
    /// Connections in each process's Postgres pool.
    pub db_pool_size: usize,
    /// `backend_flush_after` (kB) each pooled connection sets for its session, so the
    /// buffers a busy backend writes out itself reach the disk as it goes instead of in
    /// one burst of the kernel's (`db::SessionSettings`); 0 leaves the server's setting.
    pub db_backend_flush_after_kb: u32,
    /// Requests per second for one authenticated client (keyed by its client id); 0 turns
    /// the limit off. Bursts up to `limits.rate_limit_burst` are allowed.
    pub rate_limit_per_client: u32,
    /// Allows plain HTTP webhooks to 127.0.0.1/localhost (development and tests only).
    pub webhook_allow_loopback: bool,
    /// Where the worker serves `GET /metrics` (Prometheus text format); empty turns the
    /// listener off. Port 0 takes any free port (tests).
    pub worker_metrics_addr: String,
    pub token: TokenSettings,
    pub signing_keys: SigningKeySettings,
    pub client_auth: ClientAuthSettings,
    pub relay: RelaySettings,
    pub intake: IntakeSettings,
    pub worker: WorkerSettings,
    pub http: HttpSettings,
    pub webhooks: WebhookSettings,
    pub scheduler: SchedulerSettings,
    pub limits: LimitSettings,
}

/// Abuse limits beyond the body size (`http.max_body_bytes`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Requests one client may send at once above its steady `rate_limit_per_client`.
    pub rate_limit_burst: u32,
    /// Attempts at `POST /oauth/token` per minute for one client id, right or wrong, so a
    /// secret cannot be guessed at speed and argon2 cannot be used to burn our CPU; 0 turns
    /// the limit off.
    pub token_attempts_per_minute: u32,
    /// Attempts at `/oauth/token` one client id may make at once.
    pub token_attempts_burst: u32,
    /// How often the limiters forget clients that have been quiet for a full period, so
    /// their memory is bounded by the clients active in one interval.
    pub limiter_sweep_secs: u64,
    /// Deepest nesting of arrays and objects accepted in a JSON body.
    pub max_json_depth: usize,
    /// Longest string (in characters) accepted anywhere in a JSON body, keys included.
    pub max_json_string_chars: usize,
}
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// `iss` of the access tokens this hub issues and accepts.
    pub issuer: String,
    /// `aud` of the access tokens: the hub's API.
    pub audience: String,
    /// Lifetime of issued tokens; the contract caps it at 900 s.
    pub lifetime_secs: u64,
    /// Clock skew tolerated when checking `exp`/`iat` of access tokens and client
    /// assertions. A retired signing key stays published this much longer than the
    /// token lifetime.
    pub leeway_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeySettings {
    /// How long a new signing key is published in the JWKS before it signs anything. Must
    /// cover every API process reloading the key set and every verifier's JWKS cache.
    pub publish_lead_secs: u64,
    /// How often each API process reloads the key set from Postgres.
    pub reload_interval_ms: u64,
    /// `Cache-Control: max-age` of `GET /.well-known/jwks.json`.
    pub jwks_max_age_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthSettings {
    /// How long a client's previous secret keeps working after a rotation (the default;
    /// a rotation may ask for less, e.g. 0 when the secret leaked).
    pub secret_overlap_secs: u64,
    /// The longest lifetime (`exp - iat`) accepted for a `private_key_jwt` assertion.
    pub assertion_max_lifetime_secs: u64,
    /// Public keys one client may register for `private_key_jwt`.
    pub max_keys_per_client: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Whether this process publishes the outbox. Both binaries may; claims are leased.
    pub enabled: bool,
    /// Fallback poll for rows written by other processes; rows written here wake it at once.
    pub poll_interval_ms: u64,
    /// Shortest time between the starts of two rounds of a relay that keeps up: a round
    /// takes what was committed meanwhile, so a message waits up to this much longer on its
    /// way to the broker and the hub pays a claim and a publish per round rather than per
    /// intake commit. A round that claimed a full batch is followed at once.
    pub round_gap_ms: u64,
    /// Rows claimed per round.
    pub batch_size: i64,
    /// How long a claim is held before another relay may take the rows over.
    pub lease_secs: i64,
}

/// How an API process writes the complaints it is sent (`api/src/intake.rs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSettings {
    /// Filing transactions in flight at once in one API process; each holds one pooled
    /// connection while it writes, so no more than `db_pool_size` of them run.
    pub writers: usize,
    /// Most filings written in one transaction. A writer takes what is waiting when it is
    /// free (it never waits to fill a batch), so a quiet API files one complaint at a time.
    pub max_batch: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Routing transactions in flight at once in one worker process, at most.
    pub concurrency: usize,
    /// Smallest batch that runs beside another routing transaction. Smaller batches run
    /// one at a time: a worker that keeps up routes in one transaction, with larger
    /// batches, and leaves the cores to intake; a backlog (batches this large) gets up to
    /// `concurrency` at once.
    pub concurrent_from: usize,
    /// Shortest time between the starts of two routing transactions of a worker that keeps
    /// up (batches smaller than `concurrent_from`): the next batch takes what arrived
    /// meanwhile, so under load a complaint waits up to this much longer and the hub pays
    /// a transaction per batch rather than per complaint. A quiet worker, whose last
    /// transaction started longer ago, does not wait. 0: no wait.
    pub round_gap_ms: u64,
    /// Unacknowledged messages the broker may push to one consumer.
    pub prefetch: u16,
    /// Most messages routed in one transaction. The router takes what has already arrived
    /// (never waits to fill a batch), so a quiet hub routes one message at a time and a
    /// busy one pays a commit and a few round trips per batch instead of per message.
    pub batch_size: usize,
    /// Deliveries of one message before the broker dead-letters it (quorum `x-delivery-limit`).
    pub max_deliveries: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Whether this worker process runs the webhook dispatcher. Several may; claims are leased.
    pub dispatcher_enabled: bool,
    /// Seconds to wait before each retry; the first attempt is immediate, so a message gets
    /// one attempt more than the list is long. A TOML array, or `5,300,1800` in the environment.
    #[serde(deserialize_with = "secs_list")]
    pub retry_schedule_secs: Vec<u64>,
    /// Each delay moves by up to this fraction either way, so endpoints that failed together
    /// are not all retried in the same second.
    pub jitter: f64,
    /// Whole-request timeout (connect, send, answer, body excerpt) in milliseconds.
    pub timeout_ms: u64,
    /// Requests in flight at once from one worker process.
    pub concurrency: usize,
    /// Requests in flight at once to one endpoint from one worker process.
    pub per_endpoint_concurrency: usize,
    /// An endpoint that has not had a single success for this long is disabled.
    pub disable_after_hours: u64,
    /// How often the dispatcher looks for due messages when it found none.
    pub poll_interval_ms: u64,
    /// The longest `Retry-After` honoured; a longer one is capped so no receiver can park a
    /// message forever.
    pub max_retry_after_secs: u64,
    /// How long the previous secret keeps signing after a rotation.
    pub rotation_overlap_hours: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Whether this worker process fires SLA warnings and breaches. Several may; claims
    /// are leased.
    pub enabled: bool,
    /// How often the scheduler looks for due clocks when the last look found none.
    pub poll_interval_ms: u64,
    /// Clocks claimed per round.
    pub batch_size: i64,
    /// Clocks acted on at once by one process, each in its own transaction.
    pub concurrency: usize,
    /// How long a claim is held before another scheduler may take the clocks over.
    pub lease_secs: u64,
}

fn secs_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<u64>),
        // The environment source turns a lone `5` into a number.
        One(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::List(v) => Ok(v),
        Raw::One(n) => Ok(vec![n]),
        Raw::Text(t) => t
            .split(',')
            .map(|p| p.trim().parse::<u64>().map_err(serde::de::Error::custom))
            .collect(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Read(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

const DEFAULTS: &str = r#"
# The application role (created by the migrations; trust auth locally, so no password).
database_url = "postgres://redress_app@127.0.0.1:5432/redress"
# The owner, for migrations and admin commands only.
admin_database_url = "postgres://postgres@127.0.0.1:5432/redress"
amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f"
amqp_namespace = "redress"
http_addr = "127.0.0.1:8080"
log = "info"
db_pool_size = 16
# backend_flush_after for the pooled connections' sessions, in kB: a backend then asks the
# kernel to start writing what it wrote out itself every so many kB, instead of leaving it
# in the page cache to be written back in one burst that stalls commits. 0 (the default)
# leaves the server's setting; 2048 at most (docs/PERFORMANCE.md, session 9).
db_backend_flush_after_kb = 0
# Requests per second for one client, after a burst of limits.rate_limit_burst.
rate_limit_per_client = 50
webhook_allow_loopback = false
# Loopback only by default: metrics are for the operator's Prometheus, not the internet.
# Several workers on one host each need their own port (or 0.0.0.0:PORT in a container).
worker_metrics_addr = "127.0.0.1:9091"

[token]
issuer = "https://redress.local"
audience = "redress-api"
lifetime_secs = 600
leeway_secs = 30

[signing_keys]
# A new key is in the JWKS an hour before it signs: far longer than any process takes to
# reload the set (reload_interval_ms) and than verifiers cache the JWKS (jwks_max_age_secs).
publish_lead_secs = 3600
reload_interval_ms = 30000
jwks_max_age_secs = 300

[client_auth]
# A day for partners to deploy a rotated secret.
secret_overlap_secs = 86400
# RFC 7523 assertions are meant to be short-lived; five minutes tolerates slow clocks.
assertion_max_lifetime_secs = 300
max_keys_per_client = 10

[relay]
enabled = true
poll_interval_ms = 500
# Rounds at least 30 ms apart. On two shared cores at 720 complaints a second
# (docs/PERFORMANCE.md, session 8), 30 ms against 10 ms took the machine from 51-52 to
# 46-47 CPU-seconds of 59 and intake's p99 from 18 to 12-15 ms, for about 10 ms more on
# the way to routing.
round_gap_ms = 30
batch_size = 200
lease_secs = 30

[intake]
# Filings that arrive while every writer is busy wait for the next free one and are
# written together: one statement and one commit for the batch. Eight filings in one
# transaction took about 0.5 ms of the machine's CPU each, against 0.7-0.8 ms alone
# (docs/PERFORMANCE.md). Fewer writers than pooled connections leave connections to reads.
writers = 4
max_batch = 32

[worker]
# Routing transactions in flight per worker. Each routes up to a batch of what has
# arrived, so under load the batches grow to take the backlog; two transactions of up to
# 64 keep up where one could not (one at a time, routing's round trips bound it), and
# leave the cores to intake where four or eight crowded its queries. Measured on two
# shared cores at half the closed-loop maximum (docs/PERFORMANCE.md, session 5): two of
# up to 64 kept up at 502/s (routed p99 122 ms); one of up to 64 fell behind at 542/s.
# Scale routing out with more worker processes (docs/SCALING.md). Prefetch keeps the next
# batches ready while these are applied.
concurrency = 2
# A second transaction only for a backlog. Measured on two shared cores at about 600
# complaints a second (docs/PERFORMANCE.md, session 7): two transactions whatever the
# batch size made intake's p99 53 ms and the webhook's 339 ms; one at a time 28 and 191 ms.
# One alone could not carry the load of a backlog (it fell behind at 674/s after the
# closed loop), which is what the second is for.
concurrent_from = 32
# Routing transactions at least 40 ms apart while the worker keeps up. On two shared cores
# at 720 complaints a second (docs/PERFORMANCE.md, session 8), 40 ms against none took the
# machine from 54-55 to 48-52 CPU-seconds of 59 and intake's p99 from 21-24 to 13-16 ms;
# routing's p99 stayed under 100 ms.
round_gap_ms = 40
prefetch = 128
batch_size = 64
max_deliveries = 5

[http]
max_body_bytes = 262144
workers = 0

[limits]
rate_limit_burst = 100
# A client needs one token per 10 minutes or so; 30 a minute is generous for retries and
# several processes of one partner, and slow for guessing.
token_attempts_per_minute = 30
token_attempts_burst = 10
limiter_sweep_secs = 60
max_json_depth = 32
# Above the longest field of the API (a complaint's description, 10 000 characters).
max_json_string_chars = 16384

[webhooks]
dispatcher_enabled = true
# Standard Webhooks' example schedule: ten attempts over about three days (CONTRACT §5):
# immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h.
retry_schedule_secs = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
jitter = 0.2
# CONTRACT §5: a 2xx within 15 s is success.
timeout_ms = 15000
concurrency = 64
# Enough to keep up with a healthy receiver, few enough not to flood a struggling one. A
# dispatcher claims at most every 10 ms and only into free slots, so the slots also bound
# one endpoint's rate: with 4, a receiver answering in a few milliseconds queued messages
# at 150 a second (docs/PERFORMANCE.md).
per_endpoint_concurrency = 8
# Five days without a success: longer than one message's schedule, so an endpoint is
# disabled only after messages from more than one day have failed.
disable_after_hours = 120
poll_interval_ms = 1000
max_retry_after_secs = 86400
rotation_overlap_hours = 24

[scheduler]
enabled = true
# A deadline is at worst this late; one indexed query per interval costs well under 1 ms.
poll_interval_ms = 1000
batch_size = 200
# Each clock is its own short transaction; eight in flight let Postgres flush their commits
# together (group commit), which is what bounds the rate when many clocks fall due at once.
concurrency = 8
# Far longer than acting on one batch takes, short enough that a crashed worker's clocks
# fire within a minute.
lease_secs = 30
"#;

impl Settings {
    /// What the processes' pooled connections set for their sessions.
    pub fn db_session(&self) -> crate::db::SessionSettings {
        crate::db::SessionSettings {
            backend_flush_after_kb: self.db_backend_flush_after_kb,
        }
    }

    /// Defaults, then the file named by `REDRESS_CONFIG` (if set), then `REDRESS_…` variables.
    pub fn load() -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Ok(path) = std::env::var("REDRESS_CONFIG") {
            builder = builder.add_source(config::File::with_name(&path).required(true));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("REDRESS")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    // REDRESS_CONFIG names the file; it is not a setting.
                    .source(Some(
                        std::env::vars()
                            .filter(|(k, _)| {
                                k != "REDRESS_CONFIG" && !k.starts_with("REDRESS_TEST_")
                            })
                            .collect(),
                    )),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults alone, for tests that then set what they need.
    pub fn defaults() -> Result<Self, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.token.lifetime_secs == 0 || self.token.lifetime_secs > 900 {
            return Err(ConfigError::Invalid(
                "token.lifetime_secs must be between 1 and 900 (the contract caps access tokens at 15 minutes)".into(),
            ));
        }
        if self.token.leeway_secs > 300 {
            return Err(ConfigError::Invalid(
                "token.leeway_secs must be at most 300".into(),
            ));
        }
        let sk = &self.signing_keys;
        if sk.reload_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "signing_keys.reload_interval_ms must be at least 1".into(),
            ));
        }
        // A new key must be known to every process (one reload) and to every verifier
        // holding a cached JWKS (one max-age) before it signs, or its first tokens fail.
        if sk.publish_lead_secs.saturating_mul(1000)
            < sk.reload_interval_ms
                .saturating_add(sk.jwks_max_age_secs.saturating_mul(1000))
        {
            return Err(ConfigError::Invalid(
                "signing_keys.publish_lead_secs must be at least reload_interval_ms + jwks_max_age_secs".into(),
            ));
        }
        let ca = &self.client_auth;
        if ca.assertion_max_lifetime_secs == 0 || ca.assertion_max_lifetime_secs > 3600 {
            return Err(ConfigError::Invalid(
                "client_auth.assertion_max_lifetime_secs must be between 1 and 3600".into(),
            ));
        }
        if ca.max_keys_per_client == 0 {
            return Err(ConfigError::Invalid(
                "client_auth.max_keys_per_client must be at least 1".into(),
            ));
        }
        if self.intake.writers == 0 {
            return Err(ConfigError::Invalid(
                "intake.writers must be at least 1".into(),
            ));
        }
        if self.intake.max_batch == 0 || self.intake.max_batch > 1000 {
            return Err(ConfigError::Invalid(
                "intake.max_batch must be between 1 and 1000".into(),
            ));
        }
        if self.db_backend_flush_after_kb > 2048 {
            return Err(ConfigError::Invalid(
                "db_backend_flush_after_kb must be between 0 and 2048 (Postgres' limit for backend_flush_after)".into(),
            ));
        }
        if self.db_pool_size == 0 {
            return Err(ConfigError::Invalid(
                "db_pool_size must be at least 1".into(),
            ));
        }
        if self.worker.concurrency == 0 || self.worker.prefetch == 0 || self.worker.batch_size == 0
        {
            return Err(ConfigError::Invalid(
                "worker.concurrency, worker.prefetch and worker.batch_size must be at least 1"
                    .into(),
            ));
        }
        if self.worker.concurrent_from == 0 {
            return Err(ConfigError::Invalid(
                "worker.concurrent_from must be at least 1".into(),
            ));
        }
        if self.worker.max_deliveries < 1 {
            return Err(ConfigError::Invalid(
                "worker.max_deliveries must be at least 1".into(),
            ));
        }
        if self.amqp_namespace.is_empty()
            || !self
                .amqp_namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(ConfigError::Invalid(
                "amqp_namespace must be non-empty and use only letters, digits, '_', '-', '.'"
                    .into(),
            ));
        }
        let wh = &self.webhooks;
        if !(0.0..=0.5).contains(&wh.jitter) {
            return Err(ConfigError::Invalid(
                "webhooks.jitter must be between 0 and 0.5".into(),
            ));
        }
        if wh.timeout_ms == 0 || wh.timeout_ms > 60_000 {
            return Err(ConfigError::Invalid(
                "webhooks.timeout_ms must be between 1 and 60000".into(),
            ));
        }
        if wh.concurrency == 0 || wh.per_endpoint_concurrency == 0 || wh.poll_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.concurrency, webhooks.per_endpoint_concurrency and webhooks.poll_interval_ms must be at least 1"
                    .into(),
            ));
        }
        if wh.disable_after_hours == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.disable_after_hours must be at least 1".into(),
            ));
        }
        let sc = &self.scheduler;
        if sc.poll_interval_ms == 0
            || sc.batch_size < 1
            || sc.concurrency == 0
            || sc.lease_secs == 0
        {
            return Err(ConfigError::Invalid(
                "scheduler.poll_interval_ms, scheduler.batch_size, scheduler.concurrency and scheduler.lease_secs must be at least 1"
                    .into(),
            ));
        }
        if !self.worker_metrics_addr.is_empty()
            && self
                .worker_metrics_addr
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(ConfigError::Invalid(
                "worker_metrics_addr must be an address such as 127.0.0.1:9091, or empty to turn the listener off"
                    .into(),
            ));
        }
        let l = &self.limits;
        if self.rate_limit_per_client > 0 && l.rate_limit_burst == 0 {
            return Err(ConfigError::Invalid(
                "limits.rate_limit_burst must be at least 1 when rate_limit_per_client is set"
                    .into(),
            ));
        }
        if l.token_attempts_per_minute > 0 && l.token_attempts_burst == 0 {
            return Err(ConfigError::Invalid(
                "limits.token_attempts_burst must be at least 1 when limits.token_attempts_per_minute is set"
                    .into(),
            ));
        }
        if l.limiter_sweep_secs == 0 || l.max_json_depth == 0 || l.max_json_string_chars == 0 {
            return Err(ConfigError::Invalid(
                "limits.limiter_sweep_secs, limits.max_json_depth and limits.max_json_string_chars must be at least 1"
                    .into(),
            ));
        }
        if let Some(mode) = &self.dev_signing_key {
            if mode != "generate" {
                return Err(ConfigError::Invalid(
                    "dev_signing_key accepts only \"generate\"".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_keep_secrets_out_of_debug_output() {
        let s = Settings::defaults().unwrap();
        s.validate().unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("guest:guest"), "{printed}");
        assert!(s.database_url.expose().contains("redress_app@"));
    }

    #[test]
    fn a_webhook_schedule_reads_from_a_comma_separated_environment_value() {
        #[derive(Deserialize)]
        struct Only {
            #[serde(deserialize_with = "secs_list")]
            s: Vec<u64>,
        }
        let parsed: Only = serde_json::from_str(r#"{"s": "0, 1,2"}"#).unwrap();
        assert_eq!(parsed.s, vec![0, 1, 2]);
        let parsed: Only = serde_json::from_str(r#"{"s": [0, 5]}"#).unwrap();
        assert_eq!(parsed.s, vec![0, 5]);
        let mut s = Settings::defaults().unwrap();
        s.webhooks.jitter = 0.9;
        assert!(s.validate().is_err());
    }

    #[test]
    fn a_token_lifetime_over_fifteen_minutes_is_refused() {
        let mut s = Settings::defaults().unwrap();
        s.token.lifetime_secs = 901;
        assert!(s.validate().is_err());
    }

    #[test]
    fn a_publish_lead_shorter_than_a_reload_plus_a_jwks_cache_is_refused() {
        let mut s = Settings::defaults().unwrap();
        s.signing_keys.publish_lead_secs = 10;
        s.signing_keys.reload_interval_ms = 5_000;
        s.signing_keys.jwks_max_age_secs = 6;
        assert!(s.validate().is_err());
        s.signing_keys.jwks_max_age_secs = 5;
        s.validate().unwrap();
    }
}
