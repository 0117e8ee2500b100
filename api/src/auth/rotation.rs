//! Signing-key rotation shared by every API process through Postgres.
//!
//! A rotation inserts a new key whose `activates_at` lies `signing_keys.publish_lead_secs`
//! ahead. Each process reloads the set every `signing_keys.reload_interval_ms` (configuration
//! refuses a lead time shorter than one reload plus one JWKS cache lifetime), so every process
//! publishes the new key, and every verifier's cached JWKS holds it, before any process signs
//! with it. The switch itself is decided by the clock at each signing ([`KeySet`]), not by
//! the reload. The old key stays published for a token lifetime plus leeway after the switch.
//!
//! The first key: an empty table takes the configured key file (or the development key) the
//! first time an API process starts; from then on the table is the source of truth and the
//! file is not read for signing.

use std::sync::Arc;

use chrono::{Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use redress_shared::{
    audit,
    config::Settings,
    db::{signing_keys, DbError, PgPool},
};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::keys::{self, KeyRing, KeySchedule, KeySet, KeyState, SigningKey};

/// How long a key stays published after it stopped signing: the longest a token it signed
/// can still be valid, with the verifiers' leeway.
pub fn retention(settings: &Settings) -> Duration {
    Duration::seconds((settings.token.lifetime_secs + settings.token.leeway_secs) as i64)
}

/// The schedule stored in the database.
pub async fn load(conn: &mut AsyncPgConnection, settings: &Settings) -> Result<KeySet, DbError> {
    let rows = signing_keys::list(conn).await?;
    Ok(KeySet::from_rows(
        rows.into_iter()
            .map(|r| (r.kid, r.algorithm, r.private_pem, r.activates_at))
            .collect(),
        retention(settings),
    ))
}

/// Puts `pem` into the table as the first key, if the table is empty; says whether it did.
pub async fn bootstrap(conn: &mut AsyncPgConnection, pem: &str) -> Result<bool, DbError> {
    use diesel::sql_types::{Jsonb, Text, Timestamptz};
    let key = SigningKey::from_pem(pem).map_err(|e| DbError::Migration(e.to_string()))?;
    let kid = key.kid.clone();
    let inserted = conn
        .transaction(async |conn| {
            signing_keys::lock_for_rotation(conn).await?;
            let n = diesel::sql_query(
                "INSERT INTO signing_keys (kid, algorithm, private_pem, public_jwk, activates_at, created_by) \
                 SELECT $1, $2, $3, $4, $5, 'bootstrap' \
                 WHERE NOT EXISTS (SELECT 1 FROM signing_keys) ON CONFLICT DO NOTHING",
            )
            .bind::<Text, _>(&kid)
            .bind::<Text, _>(keys::algorithm_name(key.algorithm))
            .bind::<Text, _>(key.pem())
            .bind::<Jsonb, _>(key.jwk())
            .bind::<Timestamptz, _>(Utc::now())
            .execute(conn)
            .await?;
            if n == 1 {
                audit::record(
                    conn,
                    audit::Entry {
                        tenant: None,
                        actor: "system:bootstrap",
                        action: "signing_key.bootstrapped",
                        target: Some(&kid),
                        details: json!({"algorithm": keys::algorithm_name(key.algorithm)}),
                    },
                )
                .await?;
            }
            Ok::<_, diesel::result::Error>(n == 1)
        })
        .await?;
    if inserted {
        tracing::info!(key.kid = %kid, "the configured signing key is the first key of the shared set");
    }
    Ok(inserted)
}

/// Loads the shared set into `ring`, first putting the bootstrap key into an empty table.
pub async fn refresh(
    pool: &PgPool,
    ring: &KeyRing,
    settings: &Settings,
    bootstrap_pem: Option<&str>,
) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    if !ring.get().from_database {
        if let Some(pem) = bootstrap_pem {
            bootstrap(&mut conn, pem).await?;
        }
    }
    let set = load(&mut conn, settings).await?;
    if set.signing_key(Utc::now()).is_none() {
        // An empty table and no bootstrap key: keep what we have rather than sign nothing.
        tracing::error!(
            "the signing_keys table holds no usable key; keeping the keys loaded before"
        );
        return Ok(());
    }
    ring.replace(set);
    Ok(())
}

/// Reloads the set periodically until `shutdown`; retries every second until the first load
/// succeeds (Postgres may come up after the API).
pub fn spawn_reloader(
    pool: PgPool,
    ring: Arc<KeyRing>,
    settings: Settings,
    bootstrap_pem: Option<String>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(settings.signing_keys.reload_interval_ms);
        loop {
            let wait = if ring.get().from_database {
                every
            } else {
                every.min(std::time::Duration::from_secs(1))
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if let Err(e) = refresh(&pool, &ring, &settings, bootstrap_pem.as_deref()).await {
                tracing::warn!(error = %e, "signing keys not reloaded; keeping the current set");
            }
        }
    })
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
pub enum NewKeyAlgorithm {
    #[value(name = "EdDSA")]
    EdDSA,
    #[value(name = "ES256")]
    ES256,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(
        "key {kid} is already waiting to take over at {activates_at}; rotate again after that"
    )]
    Pending {
        kid: String,
        activates_at: chrono::DateTime<Utc>,
    },
    #[error("{0}")]
    Key(#[from] keys::KeyError),
    #[error("{0}")]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RotateError {
    fn from(e: diesel::result::Error) -> Self {
        RotateError::Db(DbError::Query(e))
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The new key: published now, signing from `activates_at`.
    pub kid: String,
    pub algorithm: String,
    pub activates_at: chrono::DateTime<Utc>,
    /// The key it replaces, if any; it stops signing at `activates_at`.
    pub previous_kid: Option<String>,
    /// Keys that had left the JWKS and whose private half was erased now.
    pub erased_kids: Vec<String>,
}

/// Adds a new key that starts signing one publish lead time from now; erases the private
/// half of keys no longer published; records it all in the audit log. Refused while an
/// earlier rotation is still in its lead time (two keys waiting would make the first one's
/// publication shorter than promised).
pub async fn rotate(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    actor: &str,
    algorithm: NewKeyAlgorithm,
) -> Result<Rotated, RotateError> {
    let pem = match algorithm {
        NewKeyAlgorithm::EdDSA => keys::generate_ed25519_pem()?,
        NewKeyAlgorithm::ES256 => keys::generate_p256_pem()?,
    };
    let key = SigningKey::from_pem(&pem)?;
    let lead = Duration::seconds(settings.signing_keys.publish_lead_secs as i64);
    conn.transaction(async |conn| {
        signing_keys::lock_for_rotation(conn).await?;
        let now = Utc::now();
        let rows = signing_keys::list(conn).await?;
        if let Some(pending) = rows.iter().find(|r| r.activates_at > now) {
            return Err(RotateError::Pending {
                kid: pending.kid.clone(),
                activates_at: pending.activates_at,
            });
        }
        let set = KeySet::from_rows(
            rows.iter()
                .map(|r| {
                    (
                        r.kid.clone(),
                        r.algorithm.clone(),
                        r.private_pem.clone(),
                        r.activates_at,
                    )
                })
                .collect(),
            retention(settings),
        );
        let schedule = set.schedule(now);
        let previous_kid = schedule
            .iter()
            .rev()
            .find(|k| k.state == KeyState::Current)
            .map(|k| k.kid.clone());
        let erased_kids: Vec<String> = schedule
            .iter()
            .filter(|k| k.state == KeyState::Expired)
            .filter(|k| {
                rows.iter()
                    .any(|r| r.kid == k.kid && r.private_pem.is_some())
            })
            .map(|k| k.kid.clone())
            .collect();
        signing_keys::erase_private(conn, &erased_kids).await?;
        let activates_at = now + lead;
        let alg = keys::algorithm_name(key.algorithm);
        signing_keys::insert(
            conn,
            &key.kid,
            alg,
            key.pem(),
            key.jwk(),
            activates_at,
            actor,
        )
        .await?;
        audit::record(
            conn,
            audit::Entry {
                tenant: None,
                actor,
                action: "signing_key.rotated",
                target: Some(&key.kid),
                details: json!({
                    "algorithm": alg,
                    "activates_at": activates_at,
                    "previous_kid": previous_kid,
                    "erased_kids": erased_kids,
                }),
            },
        )
        .await?;
        Ok(Rotated {
            kid: key.kid.clone(),
            algorithm: alg.to_owned(),
            activates_at,
            previous_kid,
            erased_kids,
        })
    })
    .await
}

/// Every key and where it is in its life.
pub async fn list(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
) -> Result<Vec<KeySchedule>, DbError> {
    Ok(load(conn, settings).await?.schedule(Utc::now()))
}
