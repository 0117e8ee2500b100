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
    /// Postgres URL; may carry a password, hence secret.
    pub database_url: Secret,
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
    /// Requests per second for one client; 0 turns the limit off.
    pub rate_limit_per_client: u32,
    /// Allows plain HTTP webhooks to 127.0.0.1/localhost (development and tests only).
    pub webhook_allow_loopback: bool,
    pub token: TokenSettings,
    pub relay: RelaySettings,
    pub worker: WorkerSettings,
    pub http: HttpSettings,
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
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Whether this process publishes the outbox. Both binaries may; claims are leased.
    pub enabled: bool,
    /// Fallback poll for rows written by other processes; rows written here wake it at once.
    pub poll_interval_ms: u64,
    /// Rows claimed per round.
    pub batch_size: i64,
    /// How long a claim is held before another relay may take the rows over.
    pub lease_secs: i64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Messages processed at once by one worker process.
    pub concurrency: usize,
    /// Unacknowledged messages the broker may push to one consumer.
    pub prefetch: u16,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Read(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

const DEFAULTS: &str = r#"
database_url = "postgres://postgres@127.0.0.1:5432/redress"
amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2f"
amqp_namespace = "redress"
http_addr = "127.0.0.1:8080"
log = "info"
db_pool_size = 16
rate_limit_per_client = 0
webhook_allow_loopback = false

[token]
issuer = "https://redress.local"
audience = "redress-api"
lifetime_secs = 600

[relay]
enabled = true
poll_interval_ms = 500
batch_size = 200
lease_secs = 30

[worker]
# Eight complaints in flight per worker keeps both cores busy while a transaction waits on
# Postgres, without holding more pooled connections than the pool has.
concurrency = 8
prefetch = 16
max_deliveries = 5

[http]
max_body_bytes = 262144
workers = 0
"#;

impl Settings {
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
                            .filter(|(k, _)| k != "REDRESS_CONFIG" && !k.starts_with("REDRESS_TEST_"))
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
        if self.db_pool_size == 0 {
            return Err(ConfigError::Invalid("db_pool_size must be at least 1".into()));
        }
        if self.worker.concurrency == 0 || self.worker.prefetch == 0 {
            return Err(ConfigError::Invalid(
                "worker.concurrency and worker.prefetch must be at least 1".into(),
            ));
        }
        if self.worker.max_deliveries < 1 {
            return Err(ConfigError::Invalid("worker.max_deliveries must be at least 1".into()));
        }
        if self.amqp_namespace.is_empty()
            || !self
                .amqp_namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(ConfigError::Invalid(
                "amqp_namespace must be non-empty and use only letters, digits, '_', '-', '.'".into(),
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
    }

    #[test]
    fn a_token_lifetime_over_fifteen_minutes_is_refused() {
        let mut s = Settings::defaults().unwrap();
        s.token.lifetime_secs = 901;
        assert!(s.validate().is_err());
    }
}
