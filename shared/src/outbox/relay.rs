//! Publishes the outbox. Claims rows with a short lease (one statement, committed at once)
//! so no transaction is held open across the publish and several relays can run; publishes
//! the batch with confirms; records each row's outcome. Rows whose confirm never came (the
//! connection dropped) are released and published again.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions},
    BasicProperties, Channel, Confirmation, Connection,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    amqp::Topology,
    config::Settings,
    db::{prepared::reuse, PgPool},
};

/// Lets the rest of the process wake the relay right after it commits an outbox row, and
/// tells readiness checks whether the broker is reachable.
#[derive(Clone, Default)]
pub struct RelayHandle {
    wake: Arc<Notify>,
    connected: Arc<AtomicBool>,
}

impl RelayHandle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
    pub fn broker_connected(&self) -> bool {
        AtomicBool::load(&self.connected, Ordering::Relaxed)
    }
}

pub struct Relay {
    pool: PgPool,
    amqp_url: String,
    topology: Topology,
    poll: Duration,
    round_gap: Duration,
    batch: i64,
    lease_secs: i64,
    handle: RelayHandle,
}

#[derive(QueryableByName, Debug)]
struct Claimed {
    #[diesel(sql_type = sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = sql_types::Uuid)]
    message_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    tenant_id: String,
    #[diesel(sql_type = sql_types::Text)]
    routing_key: String,
    #[diesel(sql_type = sql_types::Jsonb)]
    payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
}

impl Relay {
    pub fn new(pool: PgPool, settings: &Settings, handle: RelayHandle) -> Self {
        Self {
            pool,
            amqp_url: settings.amqp_url.expose().to_owned(),
            topology: Topology::new(&settings.amqp_namespace, settings.worker.max_deliveries),
            poll: Duration::from_millis(settings.relay.poll_interval_ms),
            round_gap: Duration::from_millis(settings.relay.round_gap_ms),
            batch: settings.relay.batch_size,
            lease_secs: settings.relay.lease_secs,
            handle,
        }
    }

    /// Runs until `shutdown` is cancelled: connect, publish, and on any broker failure
    /// reconnect with a capped backoff. Database outages are waited out the same way.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match self.connect().await {
                Ok((conn, channel)) => {
                    self.handle.connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(200);
                    let outcome = self.publish_until_error(&channel, &shutdown).await;
                    self.handle.connected.store(false, Ordering::Relaxed);
                    // A close on a dead connection waits for an answer that never comes.
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(2),
                        conn.close(200, "relay stopping".into()),
                    )
                    .await;
                    if let Err(error) = outcome {
                        tracing::warn!(%error, "outbox relay lost its broker connection; reconnecting");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "outbox relay cannot reach the broker");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn connect(&self) -> lapin::Result<(Connection, Channel)> {
        let conn = crate::amqp::connect(&self.amqp_url, "redress-outbox-relay").await?;
        let channel = conn.create_channel().await?;
        self.topology.declare(&channel).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok((conn, channel))
    }

    async fn publish_until_error(
        &self,
        channel: &Channel,
        shutdown: &CancellationToken,
    ) -> Result<(), RoundError> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            // An idle relay publishes nothing, so it would not notice a dead connection
            // until the next complaint; checking here keeps /readyz honest.
            if !channel.status().connected() {
                return Err(RoundError::Broker(lapin::Error::from(
                    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
                )));
            }
            let started = tokio::time::Instant::now();
            match self.round(channel).await {
                Ok(n) if n as i64 >= self.batch => continue,
                Ok(_) => {}
                Err(RoundError::Db(error)) => {
                    tracing::warn!(%error, "outbox relay cannot reach the database");
                }
                Err(e @ RoundError::Broker(_)) => return Err(e),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.handle.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
            // Every intake commit wakes the relay; a round per wake-up mostly carried one
            // row, and a claim is planned on every call. Rounds at least `round_gap`
            // apart take what was committed meanwhile (docs/PERFORMANCE.md).
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(started + self.round_gap) => {}
            }
        }
    }

    /// One claim-publish-record round. Returns how many rows it claimed.
    async fn round(&self, channel: &Channel) -> Result<usize, RoundError> {
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut pending = Vec::with_capacity(claimed.len());
        let mut publish_error = None;
        for row in &claimed {
            let body = match serde_json::to_vec(&row.payload) {
                Ok(b) => b,
                Err(e) => {
                    pending.push((row.id, Err(format!("payload does not serialise: {e}"))));
                    continue;
                }
            };
            let props = BasicProperties::default()
                .with_message_id(row.message_id.to_string().into())
                .with_content_type("application/json".into())
                .with_type(row.routing_key.as_str().into())
                .with_delivery_mode(2)
                .with_timestamp(chrono::Utc::now().timestamp() as u64);
            match channel
                .basic_publish(
                    self.topology.events_exchange.as_str().into(),
                    row.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    props,
                )
                .await
            {
                Ok(confirm) => pending.push((row.id, Ok(confirm))),
                Err(e) => {
                    publish_error = Some(e);
                    break;
                }
            }
        }

        let mut sent = Vec::new();
        let mut failed: Vec<(i64, String)> = Vec::new();
        for (id, confirm) in pending {
            match confirm {
                Err(reason) => failed.push((id, reason)),
                Ok(confirm) => match tokio::time::timeout(Duration::from_secs(10), confirm).await {
                    Ok(Ok(Confirmation::Ack(None))) => sent.push(id),
                    // lapin reports a mandatory message the broker could not route as an
                    // ack carrying the returned message: that is a failure, not a send.
                    Ok(Ok(Confirmation::Ack(Some(returned)))) => failed.push((
                        id,
                        format!("returned by the broker: {}", returned.reply_text),
                    )),
                    Ok(Ok(Confirmation::Nack(_))) => {
                        failed.push((id, "nacked by the broker".into()))
                    }
                    Ok(Ok(Confirmation::NotRequested)) => {
                        failed.push((id, "confirms not enabled".into()))
                    }
                    Ok(Err(e)) => {
                        failed.push((id, format!("confirm lost: {e}")));
                        publish_error.get_or_insert(e);
                    }
                    Err(_) => failed.push((id, "no confirm within 10 s".into())),
                },
            }
        }
        // Rows claimed but never published (the loop broke) are released too.
        let handled: std::collections::HashSet<i64> = sent
            .iter()
            .copied()
            .chain(failed.iter().map(|(id, _)| *id))
            .collect();
        for row in &claimed {
            if !handled.contains(&row.id) {
                failed.push((row.id, "not published: connection lost".into()));
            }
        }
        self.record(&claimed, &sent, &failed).await?;
        if !failed.is_empty() {
            tracing::warn!(failed = failed.len(), first_error = %failed[0].1, "outbox messages not confirmed; they will be published again");
        }
        match publish_error {
            Some(e) => Err(RoundError::Broker(e)),
            None => Ok(claimed.len()),
        }
    }

    /// Claims unsent rows of every tenant: the one look across tenants the relay needs,
    /// through a SECURITY DEFINER function (migration 000006); the statement commits alone.
    async fn claim(&self) -> Result<Vec<Claimed>, crate::db::DbError> {
        let mut conn = self.pool.get().await?;
        let rows = reuse(
            diesel::sql_query(
                "SELECT id, message_id, tenant_id, routing_key, payload FROM redress_claim_outbox($1, $2)",
            )
            .bind::<sql_types::Double, _>(self.lease_secs as f64)
            .bind::<sql_types::BigInt, _>(self.batch),
        )
        .load::<Claimed>(&mut conn)
        .await?;
        let mut rows = rows;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Records each row's outcome, in one transaction per tenant (row-level security lets
    /// a transaction see one tenant's rows).
    async fn record(
        &self,
        claimed: &[Claimed],
        sent: &[i64],
        failed: &[(i64, String)],
    ) -> Result<(), crate::db::DbError> {
        use crate::db::schema::outbox;
        type Outcomes<'a> = (Vec<i64>, Vec<&'a (i64, String)>);
        let tenant_of: std::collections::HashMap<i64, &str> = claimed
            .iter()
            .map(|r| (r.id, r.tenant_id.as_str()))
            .collect();
        let mut by_tenant: std::collections::BTreeMap<&str, Outcomes<'_>> = Default::default();
        for id in sent {
            if let Some(tenant) = tenant_of.get(id) {
                by_tenant.entry(tenant).or_default().0.push(*id);
            }
        }
        for entry in failed {
            if let Some(tenant) = tenant_of.get(&entry.0) {
                by_tenant.entry(tenant).or_default().1.push(entry);
            }
        }
        let mut conn = self.pool.get().await?;
        for (tenant, (sent, failed)) in by_tenant {
            let tenant = crate::ids::TenantId::from_trusted(tenant.to_owned());
            crate::db::tenant::transaction(&mut conn, &tenant, async |conn| {
                // A lost record only means the messages are published again, and the
                // router deduplicates on their id.
                crate::db::tenant::relax_durability(conn).await?;
                if !sent.is_empty() {
                    reuse(
                        diesel::update(outbox::table.filter(outbox::id.eq_any(&sent))).set((
                            outbox::sent_at.eq(diesel::dsl::now),
                            outbox::claimed_until.eq(None::<chrono::DateTime<chrono::Utc>>),
                        )),
                    )
                    .execute(conn)
                    .await?;
                }
                for (id, error) in &failed {
                    diesel::update(outbox::table.filter(outbox::id.eq(id)))
                        .set((
                            outbox::claimed_until.eq(None::<chrono::DateTime<chrono::Utc>>),
                            outbox::last_error.eq(error),
                        ))
                        .execute(conn)
                        .await?;
                }
                Ok::<_, diesel::result::Error>(())
            })
            .await?;
        }
        Ok(())
    }
}
