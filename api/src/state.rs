//! What every handler can reach: the pool, the keys, the settings, the relay's handle, the
//! metrics.

use std::sync::Arc;

use redress_shared::{config::Settings, db::PgPool, metrics::Exporter, outbox::RelayHandle};

use crate::auth::keys::KeyRing;

pub struct AppState {
    /// Verified against when a client id is unknown, so a wrong id costs the same time as
    /// a wrong secret and ids cannot be probed by timing.
    pub dummy_secret_hash: String,
    pub pool: PgPool,
    /// The signing keys, reloaded from Postgres in the background.
    pub keys: Arc<KeyRing>,
    /// Bearer tokens verified with the key set in force, so a partner's next request with
    /// the same token skips the signature check.
    pub verified_tokens: crate::auth::tokens::VerifiedTokens,
    pub settings: Settings,
    pub relay: RelayHandle,
    /// Writes filed complaints, several to a transaction when they arrive together.
    pub intake: crate::intake::IntakeWriter,
    /// This process's metrics and what samples them for `GET /metrics`.
    pub metrics: Arc<Exporter>,
    /// The per-client rate limit and the `/oauth/token` attempt limit.
    pub limits: Arc<crate::limits::Limiters>,
    /// Each tenant's routing in force as last read, for intake's category check.
    pub routing_in_force: crate::routes::routing::RoutingInForce,
}
