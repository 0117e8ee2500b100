//! Webhook rows in Postgres. Every query an API route runs takes the [`TenantId`] and
//! filters by it; only the dispatcher's claim reads across tenants, and it hands each
//! message back with the tenant it belongs to.
//!
//! The dispatcher never holds a transaction across an HTTP call: [`claim_due`] leases
//! messages in one statement (committed at once), the send happens outside any
//! transaction, and [`record_attempt`] writes the outcome in a short transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use super::{
    model::{
        AttemptView, EndpointPatch, EndpointView, MessageView, NewEndpoint, WebhookMessageId,
        ENDPOINT_DISABLED, TEST,
    },
    schedule::{should_disable, Decision},
    schema::{webhook_attempts, webhook_endpoints, webhook_messages},
    sender::DeliveryOutcome,
    signing::{generate_secret, SecretError, SigningKey},
};
use crate::db::prepared::reuse;
use crate::ids::{TenantId, WebhookEndpointId};

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_DELIVERED: &str = "delivered";
pub const STATUS_FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
pub struct EndpointRow {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub throttled_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EndpointRow {
    pub fn to_view(&self) -> EndpointView {
        EndpointView {
            id: self.id.clone(),
            url: self.url.clone(),
            events: self.event_types.clone(),
            description: self.description.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            disabled_at: self.disabled_at,
            failing_since: self.failing_since,
            previous_secret_expires_at: self.previous_secret_expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// The keys that sign a message now: the current secret, then the previous one while its
/// rotation overlap lasts.
pub fn signing_keys(
    secret: &str,
    previous: Option<&str>,
    previous_expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Vec<SigningKey>, SecretError> {
    let mut keys = vec![SigningKey::parse(secret)?];
    if let (Some(previous), Some(until)) = (previous, previous_expires_at) {
        if until > now {
            keys.push(SigningKey::parse(previous)?);
        }
    }
    Ok(keys)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_messages)]
pub struct MessageRow {
    pub id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl MessageRow {
    pub fn to_view(&self) -> MessageView {
        MessageView {
            id: self.id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            event_type: self.event_type.clone(),
            status: self.status.clone(),
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
            created_at: self.created_at,
            delivered_at: self.delivered_at,
            payload: serde_json::from_str(&self.body).unwrap_or(Value::Null),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts)]
pub struct AttemptRow {
    pub id: i64,
    pub message_id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

impl AttemptRow {
    pub fn to_view(&self, event_type: &str) -> AttemptView {
        AttemptView {
            id: self.id,
            message_id: self.message_id.clone(),
            event_type: event_type.to_owned(),
            attempt: self.attempt,
            attempted_at: self.attempted_at,
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            error_kind: self.error_kind.clone(),
            error: self.error.clone(),
            response_excerpt: self.response_excerpt.clone(),
        }
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// When a lease of `lease` taken at `now` ends: by a dispatcher's claim, or given with a
/// message its router inserts leased. A lease too long to represent ends at the last
/// representable instant.
pub fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now.checked_add_signed(to_chrono(lease))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

// ---------------------------------------------------------------------------------------
// Endpoints (scope webhooks:manage)
// ---------------------------------------------------------------------------------------

/// Registers an endpoint with a fresh secret. Returns the row and the secret, which the API
/// shows once.
pub async fn create_endpoint(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    new: &NewEndpoint,
    now: DateTime<Utc>,
) -> QueryResult<(EndpointRow, String)> {
    let secret = generate_secret();
    let row = diesel::insert_into(webhook_endpoints::table)
        .values((
            webhook_endpoints::id.eq(WebhookEndpointId::generate().as_str()),
            webhook_endpoints::tenant_id.eq(tenant.as_str()),
            webhook_endpoints::url.eq(&new.url),
            webhook_endpoints::event_types.eq(&new.event_types),
            webhook_endpoints::description.eq(&new.description),
            webhook_endpoints::enabled.eq(new.enabled),
            webhook_endpoints::secret.eq(&secret),
            webhook_endpoints::created_at.eq(now),
            webhook_endpoints::updated_at.eq(now),
        ))
        .returning(EndpointRow::as_returning())
        .get_result(conn)
        .await?;
    Ok((row, secret))
}

/// A page of the tenant's endpoints in creation order, one more than `limit` so the caller
/// knows whether there is a next page.
pub async fn list_endpoints(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    after: Option<&WebhookEndpointId>,
    limit: i64,
) -> QueryResult<Vec<EndpointRow>> {
    let mut q = webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant.as_str()))
        .select(EndpointRow::as_select())
        .order(webhook_endpoints::id.asc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(webhook_endpoints::id.gt(after.as_str().to_owned()));
    }
    q.load(conn).await
}

pub async fn get_endpoint(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &WebhookEndpointId,
) -> QueryResult<Option<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(id.as_str()))
        .filter(webhook_endpoints::tenant_id.eq(tenant.as_str()))
        .select(EndpointRow::as_select())
        .first(conn)
        .await
        .optional()
}

#[derive(AsChangeset)]
#[diesel(table_name = webhook_endpoints)]
struct Changes<'a> {
    url: Option<&'a str>,
    event_types: Option<&'a Vec<String>>,
    description: Option<&'a str>,
    enabled: Option<bool>,
    updated_at: DateTime<Utc>,
}

/// Applies a checked patch. Enabling an endpoint also forgets why it was disabled and when
/// it started failing, so it gets a full failure window again.
pub async fn update_endpoint(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &WebhookEndpointId,
    patch: &EndpointPatch,
    now: DateTime<Utc>,
) -> QueryResult<Option<EndpointRow>> {
    let scoped = webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(id.as_str()))
        .filter(webhook_endpoints::tenant_id.eq(tenant.as_str()));
    let updated = diesel::update(scoped)
        .set(&Changes {
            url: patch.url.as_deref(),
            event_types: patch.event_types.as_ref(),
            description: patch.description.as_deref(),
            enabled: patch.enabled,
            updated_at: now,
        })
        .returning(EndpointRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if updated.is_none() || patch.enabled != Some(true) {
        return Ok(updated);
    }
    diesel::update(scoped)
        .set((
            webhook_endpoints::disabled_reason.eq(None::<String>),
            webhook_endpoints::disabled_at.eq(None::<DateTime<Utc>>),
            webhook_endpoints::failing_since.eq(None::<DateTime<Utc>>),
            webhook_endpoints::throttled_until.eq(None::<DateTime<Utc>>),
        ))
        .returning(EndpointRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Deletes an endpoint with its messages and delivery log. `false` when the tenant has no
/// such endpoint.
pub async fn delete_endpoint(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &WebhookEndpointId,
) -> QueryResult<bool> {
    let n = diesel::delete(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(id.as_str()))
            .filter(webhook_endpoints::tenant_id.eq(tenant.as_str())),
    )
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Replaces the secret. The old one keeps signing, next to the new one, for `overlap`, so
/// the receiver can switch without dropping a delivery. A second rotation inside the
/// overlap retires the oldest secret at once. Returns the row and the new secret.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &WebhookEndpointId,
    overlap: Duration,
    now: DateTime<Utc>,
) -> QueryResult<Option<(EndpointRow, String)>> {
    let secret = generate_secret();
    // Postgres evaluates every right-hand side against the old row, so previous_secret
    // receives the secret being replaced.
    let row = diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(id.as_str()))
            .filter(webhook_endpoints::tenant_id.eq(tenant.as_str())),
    )
    .set((
        webhook_endpoints::previous_secret.eq(webhook_endpoints::secret.nullable()),
        webhook_endpoints::previous_secret_expires_at.eq(now + to_chrono(overlap)),
        webhook_endpoints::secret.eq(&secret),
        webhook_endpoints::updated_at.eq(now),
    ))
    .returning(EndpointRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| (r, secret)))
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// The body every attempt sends, serialised once: `{"type","timestamp","data"}`.
fn body_of(event_type: &str, data: &Value, at: DateTime<Utc>) -> QueryResult<String> {
    serde_json::to_string(&json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    }))
    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Queues one `event_type` message with `data` for each of `endpoint_ids` (enabled endpoints
/// of the tenant subscribed to it, as [`subscribers`] found them in this transaction). Takes
/// a shared reference so several can be sent to Postgres together.
pub async fn enqueue_for_endpoints(
    conn: &AsyncPgConnection,
    tenant: &TenantId,
    endpoint_ids: &[String],
    event_type: &str,
    data: Value,
    at: DateTime<Utc>,
) -> QueryResult<Vec<WebhookMessageId>> {
    if endpoint_ids.is_empty() {
        return Ok(Vec::new());
    }
    let messages = NewMessage::for_endpoints(
        endpoint_ids.iter().map(String::as_str),
        event_type,
        &data,
        at,
    )?;
    insert_new(conn, tenant, &messages).await?;
    Ok(messages.into_iter().map(|m| m.id).collect())
}

/// An enabled endpoint subscribed to some of the types asked for, with what a dispatcher
/// needs to send to it: a message the router queues can go out without being claimed.
#[derive(Debug, Clone, Queryable)]
pub struct Subscriber {
    pub id: String,
    pub event_types: Vec<String>,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub throttled_until: Option<DateTime<Utc>>,
}

impl Subscriber {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }

    /// Whether a dispatcher may send to it now (the claim skips a throttled endpoint).
    pub fn open_at(&self, now: DateTime<Utc>) -> bool {
        self.throttled_until.is_none_or(|t| t <= now)
    }
}

/// The tenant's enabled endpoints subscribed to any of `event_types`.
pub async fn subscribers(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    event_types: &[&str],
) -> QueryResult<Vec<Subscriber>> {
    let wanted: Vec<String> = event_types.iter().map(|t| (*t).to_owned()).collect();
    webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant.as_str()))
        .filter(webhook_endpoints::enabled.eq(true))
        .filter(webhook_endpoints::event_types.overlaps_with(wanted))
        .select((
            webhook_endpoints::id,
            webhook_endpoints::event_types,
            webhook_endpoints::url,
            webhook_endpoints::secret,
            webhook_endpoints::previous_secret,
            webhook_endpoints::previous_secret_expires_at,
            webhook_endpoints::throttled_until,
        ))
        .order(webhook_endpoints::id.asc())
        .load(&mut conn)
        .await
}

/// A webhook message not yet inserted.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: WebhookMessageId,
    pub endpoint_id: String,
    pub event_type: String,
    /// What every attempt sends, serialised once.
    pub body: String,
    pub at: DateTime<Utc>,
    /// Set when the message is leased as it is inserted, to the dispatcher the caller hands
    /// it to after the commit; otherwise a dispatcher's claim finds it.
    pub claimed_until: Option<DateTime<Utc>>,
}

impl NewMessage {
    /// One `event_type` message with `data` for each of `endpoint_ids`, not leased.
    pub fn for_endpoints<'a>(
        endpoint_ids: impl IntoIterator<Item = &'a str>,
        event_type: &str,
        data: &Value,
        at: DateTime<Utc>,
    ) -> QueryResult<Vec<NewMessage>> {
        let body = body_of(event_type, data, at)?;
        Ok(endpoint_ids
            .into_iter()
            .map(|endpoint| NewMessage {
                id: WebhookMessageId::generate(),
                endpoint_id: endpoint.to_owned(),
                event_type: event_type.to_owned(),
                body: body.clone(),
                at,
                claimed_until: None,
            })
            .collect())
    }

    /// The message as a dispatcher sends it, for a leased message handed over after the
    /// commit: what a claim would have read back.
    pub fn handed_over(&self, tenant: &TenantId, endpoint: &Subscriber) -> ClaimedMessage {
        ClaimedMessage {
            id: self.id.to_string(),
            tenant_id: tenant.to_string(),
            endpoint_id: self.endpoint_id.clone(),
            event_type: self.event_type.clone(),
            body: self.body.clone(),
            attempts: 0,
            url: endpoint.url.clone(),
            secret: endpoint.secret.clone(),
            previous_secret: endpoint.previous_secret.clone(),
            previous_secret_expires_at: endpoint.previous_secret_expires_at,
        }
    }
}

/// Inserts messages in one statement, in the caller's transaction. Takes a shared
/// reference so it can be sent to Postgres with the transaction's other writes.
pub async fn insert_new(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    messages: &[NewMessage],
) -> QueryResult<()> {
    use crate::db::prepared::column;
    use diesel::sql_types::{Array, Nullable, Text, Timestamptz};
    if messages.is_empty() {
        return Ok(());
    }
    // Fixed text kept prepared (`db::prepared`): a multi-row VALUES list is new text for
    // every batch size, parsed and planned each time.
    crate::db::prepared::reuse(
        diesel::sql_query(
            "INSERT INTO webhook_messages (id, tenant_id, endpoint_id, event_type, body, status, \
                                           next_attempt_at, claimed_until, created_at) \
             SELECT u.id, $1, u.endpoint_id, u.event_type, u.body, $2, u.at, u.claimed_until, \
                    u.at \
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], \
                         $8::timestamptz[]) \
                 AS u(id, endpoint_id, event_type, body, at, claimed_until)",
        )
        .bind::<Text, _>(tenant.as_str())
        .bind::<Text, _>(STATUS_PENDING)
        .bind::<Array<Text>, _>(column(messages, |m| m.id.as_str()))
        .bind::<Array<Text>, _>(column(messages, |m| m.endpoint_id.as_str()))
        .bind::<Array<Text>, _>(column(messages, |m| m.event_type.as_str()))
        .bind::<Array<Text>, _>(column(messages, |m| m.body.as_str()))
        .bind::<Array<Timestamptz>, _>(column(messages, |m| m.at))
        .bind::<Array<Nullable<Timestamptz>>, _>(column(messages, |m| m.claimed_until)),
    )
    .execute(&mut conn)
    .await
    .map(|_| ())
}

/// Queues one message for every enabled endpoint of the tenant subscribed to `event_type`,
/// in the caller's transaction, so the event and its webhooks commit together. The body is
/// serialised here, once. Returns the message ids (the `webhook-id`s).
pub async fn enqueue_for_event(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    event_type: &str,
    data: Value,
    at: DateTime<Utc>,
) -> QueryResult<Vec<WebhookMessageId>> {
    let endpoints: Vec<String> = subscribers(conn, tenant, &[event_type])
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    enqueue_for_endpoints(conn, tenant, &endpoints, event_type, data, at).await
}

/// Queues a `webhook.test` message for one endpoint (the test-send action). It goes through
/// the dispatcher like any message and shows in the delivery log. `None` when the tenant
/// has no such endpoint; a paused endpoint gets it when it is enabled again.
pub async fn enqueue_test(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    now: DateTime<Utc>,
) -> QueryResult<Option<WebhookMessageId>> {
    if get_endpoint(conn, tenant, endpoint).await?.is_none() {
        return Ok(None);
    }
    let data =
        json!({ "endpoint_id": endpoint.as_str(), "message": "A test delivery from Redress." });
    let messages = NewMessage::for_endpoints([endpoint.as_str()], TEST, &data, now)?;
    insert_new(conn, tenant, &messages).await?;
    Ok(messages.into_iter().next().map(|m| m.id))
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// Only messages older than this one (the cursor; newest first).
    pub before: Option<WebhookMessageId>,
    pub limit: i64,
}

/// An endpoint's messages, newest first, one more than `limit`. `None` when the tenant has
/// no such endpoint.
pub async fn list_messages(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    f: &MessageFilter,
) -> QueryResult<Option<Vec<MessageRow>>> {
    if get_endpoint(conn, tenant, endpoint).await?.is_none() {
        return Ok(None);
    }
    let mut q = webhook_messages::table
        .filter(webhook_messages::endpoint_id.eq(endpoint.as_str()))
        .filter(webhook_messages::tenant_id.eq(tenant.as_str()))
        .select(MessageRow::as_select())
        .order(webhook_messages::id.desc())
        .limit(f.limit + 1)
        .into_boxed();
    if let Some(s) = &f.status {
        q = q.filter(webhook_messages::status.eq(s.clone()));
    }
    if let Some(before) = &f.before {
        q = q.filter(webhook_messages::id.lt(before.as_str().to_owned()));
    }
    q.load(conn).await.map(Some)
}

pub async fn get_message(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    message: &WebhookMessageId,
) -> QueryResult<Option<MessageRow>> {
    webhook_messages::table
        .filter(webhook_messages::id.eq(message.as_str()))
        .filter(webhook_messages::endpoint_id.eq(endpoint.as_str()))
        .filter(webhook_messages::tenant_id.eq(tenant.as_str()))
        .select(MessageRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Filters of `GET /v1/webhook-endpoints/{id}/deliveries`.
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    /// Only the attempts of one message.
    pub message: Option<WebhookMessageId>,
    /// Only attempts older than this one (the cursor; newest first).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Every attempt to an endpoint, newest first, one more than `limit`, each with its
/// message's event type. `None` when the tenant has no such endpoint.
pub async fn list_deliveries(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    f: &AttemptFilter,
) -> QueryResult<Option<Vec<(AttemptRow, String)>>> {
    if get_endpoint(conn, tenant, endpoint).await?.is_none() {
        return Ok(None);
    }
    let mut q = webhook_attempts::table
        .inner_join(webhook_messages::table)
        .filter(webhook_attempts::endpoint_id.eq(endpoint.as_str()))
        .filter(webhook_attempts::tenant_id.eq(tenant.as_str()))
        .select((AttemptRow::as_select(), webhook_messages::event_type))
        .order(webhook_attempts::id.desc())
        .limit(f.limit + 1)
        .into_boxed();
    if let Some(m) = &f.message {
        q = q.filter(webhook_attempts::message_id.eq(m.as_str().to_owned()));
    }
    if let Some(before) = f.before {
        q = q.filter(webhook_attempts::id.lt(before));
    }
    q.load(conn).await.map(Some)
}

/// Manual redelivery: the message (delivered, failed or waiting) is due again at once,
/// with the same webhook-id and body. If it fails, it continues on the retry schedule
/// where it left off; a message whose schedule was used up gets this one attempt.
/// `None` when the tenant has no such message on that endpoint.
pub async fn redeliver(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    endpoint: &WebhookEndpointId,
    message: &WebhookMessageId,
    now: DateTime<Utc>,
) -> QueryResult<Option<MessageRow>> {
    diesel::update(
        webhook_messages::table
            .filter(webhook_messages::id.eq(message.as_str()))
            .filter(webhook_messages::endpoint_id.eq(endpoint.as_str()))
            .filter(webhook_messages::tenant_id.eq(tenant.as_str())),
    )
    .set((
        webhook_messages::status.eq(STATUS_PENDING),
        webhook_messages::next_attempt_at.eq(Some(now)),
    ))
    .returning(MessageRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

// ---------------------------------------------------------------------------------------
// The dispatcher's side
// ---------------------------------------------------------------------------------------

/// A message leased to one dispatcher, with what it needs to send it.
#[derive(QueryableByName, Debug, Clone)]
pub struct ClaimedMessage {
    #[diesel(sql_type = sql_types::Text)]
    pub id: String,
    #[diesel(sql_type = sql_types::Text)]
    pub tenant_id: String,
    #[diesel(sql_type = sql_types::Text)]
    pub endpoint_id: String,
    #[diesel(sql_type = sql_types::Text)]
    pub event_type: String,
    #[diesel(sql_type = sql_types::Text)]
    pub body: String,
    /// Attempts made before this one.
    #[diesel(sql_type = sql_types::Integer)]
    pub attempts: i32,
    #[diesel(sql_type = sql_types::Text)]
    pub url: String,
    #[diesel(sql_type = sql_types::Text)]
    pub secret: String,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub previous_secret: Option<String>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl ClaimedMessage {
    pub fn keys(&self, now: DateTime<Utc>) -> Result<Vec<SigningKey>, SecretError> {
        signing_keys(
            &self.secret,
            self.previous_secret.as_deref(),
            self.previous_secret_expires_at,
            now,
        )
    }
}

/// Leases up to `limit` due messages of enabled, unthrottled endpoints until `now + lease`,
/// at most `per_endpoint` minus what this process already has in flight to each endpoint
/// (`in_flight`: endpoint id and count, for endpoints with any). One statement: the lease
/// is committed before any HTTP call, and `SKIP LOCKED` lets several dispatchers claim side
/// by side without waiting on each other.
///
/// Each endpoint is looked at through its own index range (`webhook_messages_endpoint_due`)
/// and asked only for as many messages as it has free slots. An earlier version took the
/// oldest due messages of all endpoints and handed back those it could not start: with a
/// backlog to a few busy endpoints every claim walked the whole backlog and rewrote dozens
/// of rows per delivery, which made the claim most of the database's work under load
/// (docs/PERFORMANCE.md).
///
/// Due messages are found across tenants, before any tenant is known, so the lease goes
/// through a SECURITY DEFINER function (migrations 000006 and 000009) that returns only
/// ids and tenants; what the send needs (body, URL, secrets) is then read per tenant, in a
/// transaction set to it.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
    lease: Duration,
    in_flight: &[(String, i32)],
    per_endpoint: i32,
) -> QueryResult<Vec<ClaimedMessage>> {
    #[derive(QueryableByName)]
    struct Leased {
        #[diesel(sql_type = sql_types::Text)]
        id: String,
        #[diesel(sql_type = sql_types::Text)]
        tenant_id: String,
    }
    let (busy_ids, busy_counts): (Vec<&str>, Vec<i32>) =
        in_flight.iter().map(|(id, n)| (id.as_str(), *n)).unzip();
    let leased: Vec<Leased> = reuse(
        diesel::sql_query(
            "SELECT id, tenant_id FROM redress_claim_webhook_messages($1, $2, $3, $4, $5, $6)",
        )
        .bind::<sql_types::Timestamptz, _>(now)
        .bind::<sql_types::BigInt, _>(limit)
        .bind::<sql_types::Timestamptz, _>(lease_end(now, lease))
        .bind::<sql_types::Array<sql_types::Text>, _>(busy_ids)
        .bind::<sql_types::Array<sql_types::Integer>, _>(busy_counts)
        .bind::<sql_types::Integer, _>(per_endpoint),
    )
    .load(conn)
    .await?;
    let mut by_tenant: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for l in leased {
        by_tenant.entry(l.tenant_id).or_default().push(l.id);
    }
    let mut claimed = Vec::new();
    for (tenant, ids) in by_tenant {
        let tenant = TenantId::from_trusted(tenant);
        let rows: Vec<ClaimedMessage> =
            crate::db::tenant::transaction(conn, &tenant, async |conn| {
                reuse(
                    diesel::sql_query(
                        "SELECT m.id, m.tenant_id, m.endpoint_id, m.event_type, m.body, m.attempts, \
                                e.url, e.secret, e.previous_secret, e.previous_secret_expires_at \
                         FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id \
                         WHERE m.id = ANY($1) AND m.tenant_id = $2",
                    )
                    .bind::<sql_types::Array<sql_types::Text>, _>(&ids)
                    .bind::<sql_types::Text, _>(tenant.as_str()),
                )
                .load(conn)
                .await
            })
            .await?;
        claimed.extend(rows);
    }
    Ok(claimed)
}

/// Gives leased messages back untouched (no attempt counted), for messages this process
/// claimed but cannot send now; one transaction per tenant.
pub async fn release(conn: &mut AsyncPgConnection, messages: &[ClaimedMessage]) -> QueryResult<()> {
    let mut by_tenant: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for m in messages {
        by_tenant.entry(&m.tenant_id).or_default().push(&m.id);
    }
    for (tenant, ids) in by_tenant {
        let tenant = TenantId::from_trusted(tenant.to_owned());
        crate::db::tenant::transaction(conn, &tenant, async |conn| {
            diesel::update(webhook_messages::table.filter(webhook_messages::id.eq_any(&ids)))
                .set(webhook_messages::claimed_until.eq(None::<DateTime<Utc>>))
                .execute(conn)
                .await
        })
        .await?;
    }
    Ok(())
}

/// What recording an attempt did besides logging it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recorded {
    /// The endpoint was disabled by this attempt (410, or failing for too long), with why.
    pub endpoint_disabled: Option<String>,
}

#[derive(QueryableByName)]
struct FailingState {
    #[diesel(sql_type = sql_types::Bool)]
    enabled: bool,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    failing_since: Option<DateTime<Utc>>,
}

/// Records deliveries (attempts that ended in [`Decision::Delivered`]) of one tenant's
/// messages in one short transaction, as [`record_attempt`] records one: the delivery log
/// rows, each message's new state, and the endpoints' failure windows cleared. A dispatcher
/// sending many messages writes them in a few round trips and one commit instead of as
/// many of each per message. A message the tenant deleted during the send (its endpoint
/// deleted) is skipped, as there.
pub async fn record_delivered(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    delivered: &[(ClaimedMessage, DeliveryOutcome)],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if delivered.is_empty() {
        return Ok(());
    }
    crate::db::tenant::transaction(conn, tenant, async move |conn| {
        let ids: Vec<&str> = delivered.iter().map(|(m, _)| m.id.as_str()).collect();
        let shared: &AsyncPgConnection = conn;
        // The lock (against a concurrent manual redelivery) and the update go in one round
        // trip: the update finds only the messages still there and still pending, and
        // nothing more is written for one the tenant deleted during the send. A record
        // lost in a crash of Postgres means the message is delivered again with the same
        // webhook-id, which receivers deduplicate on (at least once, CONTRACT §5); so it
        // does not wait for the disk, which was the webhook path's longest wait.
        let (relaxed, still_there, updated) = futures::join!(
            crate::db::tenant::relax_durability(shared),
            async {
                let mut c = shared;
                webhook_messages::table
                    .filter(webhook_messages::id.eq_any(&ids))
                    .select(webhook_messages::id)
                    .for_update()
                    .load::<String>(&mut c)
                    .await
            },
            async {
                let mut c = shared;
                reuse(
                    diesel::update(
                        webhook_messages::table
                            .filter(webhook_messages::id.eq_any(&ids))
                            .filter(webhook_messages::status.eq(STATUS_PENDING)),
                    )
                    .set((
                        webhook_messages::status.eq(STATUS_DELIVERED),
                        // The message is leased to this dispatcher: nothing else counted an
                        // attempt since the claim read `attempts`.
                        webhook_messages::attempts.eq(webhook_messages::attempts + 1),
                        webhook_messages::next_attempt_at.eq(None::<DateTime<Utc>>),
                        webhook_messages::claimed_until.eq(None::<DateTime<Utc>>),
                        webhook_messages::last_error.eq(None::<String>),
                        webhook_messages::delivered_at.eq(Some(now)),
                    )),
                )
                .execute(&mut c)
                .await
            }
        );
        relaxed?;
        updated?;
        let still_there: std::collections::HashSet<String> = still_there?.into_iter().collect();
        let rows: Vec<NewAttempt<'_>> = delivered
            .iter()
            .filter(|(m, _)| still_there.contains(&m.id))
            .map(|(m, outcome)| attempt_row(m, tenant, m.attempts + 1, outcome, now))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint_id).collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        let (logged, cleared) = futures::join!(
            async {
                let mut c = shared;
                diesel::insert_into(webhook_attempts::table)
                    .values(&rows)
                    .execute(&mut c)
                    .await
            },
            async {
                let mut c = shared;
                // Only where there is something to clear: an unconditional update locked
                // the endpoint's row until commit, so every delivery to one endpoint
                // waited for the previous one's commit (docs/PERFORMANCE.md).
                reuse(
                    diesel::update(
                        webhook_endpoints::table
                            .filter(webhook_endpoints::id.eq_any(&endpoints))
                            .filter(webhook_endpoints::failing_since.is_not_null()),
                    )
                    .set(webhook_endpoints::failing_since.eq(None::<DateTime<Utc>>)),
                )
                .execute(&mut c)
                .await
            }
        );
        logged?;
        cleared?;
        Ok(())
    })
    .await
}

/// Writes one attempt and its consequences in one short transaction: the delivery log row,
/// the message's new state, the endpoint's failure window and throttle, and, when the
/// endpoint is disabled, the notice to the tenant.
pub async fn record_attempt(
    conn: &mut AsyncPgConnection,
    claimed: &ClaimedMessage,
    outcome: &DeliveryOutcome,
    decision: &Decision,
    disable_after: Duration,
    now: DateTime<Utc>,
) -> QueryResult<Recorded> {
    let tenant = TenantId::from_trusted(claimed.tenant_id.clone());
    if let Decision::Delivered = decision {
        // A delivery (the common case) is recorded as the dispatcher records many.
        let delivered = [(claimed.clone(), outcome.clone())];
        record_delivered(conn, &tenant, &delivered, now).await?;
        return Ok(Recorded::default());
    }
    let claimed = claimed.clone();
    let outcome = outcome.clone();
    let decision = decision.clone();
    let tenant_ref = tenant.clone();
    crate::db::tenant::transaction(conn, &tenant_ref, async move |conn| {
        let attempt = claimed.attempts + 1;
        let error = outcome.error.as_ref();
        // Locks the message against a concurrent manual redelivery, and finds out whether
        // the tenant deleted the endpoint (and with it the message) during the send.
        let still_there: Option<String> = webhook_messages::table
            .filter(webhook_messages::id.eq(&claimed.id))
            .select(webhook_messages::id)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if still_there.is_none() {
            return Ok(Recorded::default());
        }
        diesel::insert_into(webhook_attempts::table)
            .values(attempt_row(&claimed, &tenant, attempt, &outcome, now))
            .execute(conn)
            .await?;

        // A failed attempt (a delivery returned above). Guarded by status: a message failed
        // meanwhile (its endpoint disabled by another attempt) stays failed; its attempt is
        // still in the log.
        let (status, next_at) = match &decision {
            Decision::Retry { at, .. } => (STATUS_PENDING, Some(*at)),
            _ => (STATUS_FAILED, None),
        };
        diesel::update(
            webhook_messages::table
                .filter(webhook_messages::id.eq(&claimed.id))
                .filter(webhook_messages::status.eq(STATUS_PENDING)),
        )
        .set((
            webhook_messages::status.eq(status),
            webhook_messages::attempts.eq(attempt),
            webhook_messages::next_attempt_at.eq(next_at),
            webhook_messages::claimed_until.eq(None::<DateTime<Utc>>),
            webhook_messages::last_error.eq(error.map(|e| e.1.clone())),
        ))
        .execute(conn)
        .await?;

        let endpoint = EndpointRef {
            tenant: &tenant,
            id: &claimed.endpoint_id,
        };
        match &decision {
            // Not reached: a delivery is recorded by record_delivered at the top.
            Decision::Delivered => Ok(Recorded::default()),
            Decision::Gone => {
                let reason = "the endpoint answered 410 Gone".to_owned();
                let disabled = disable(conn, endpoint, &reason, now).await?;
                Ok(Recorded {
                    endpoint_disabled: disabled.then_some(reason),
                })
            }
            Decision::Retry { .. } | Decision::Exhausted => {
                let throttle = match &decision {
                    Decision::Retry { throttle_until, .. } => *throttle_until,
                    _ => None,
                };
                let state: FailingState = diesel::sql_query(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2), \
                     throttled_until = CASE WHEN $3::timestamptz IS NULL THEN throttled_until \
                                            ELSE GREATEST(throttled_until, $3) END \
                     WHERE id = $1 RETURNING enabled, failing_since",
                )
                .bind::<sql_types::Text, _>(&claimed.endpoint_id)
                .bind::<sql_types::Timestamptz, _>(now)
                .bind::<sql_types::Nullable<sql_types::Timestamptz>, _>(throttle)
                .get_result(conn)
                .await?;
                match state.failing_since {
                    Some(since) if state.enabled && should_disable(since, now, disable_after) => {
                        let reason = format!(
                            "no successful delivery since {}",
                            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        );
                        let disabled = disable(conn, endpoint, &reason, now).await?;
                        Ok(Recorded {
                            endpoint_disabled: disabled.then_some(reason),
                        })
                    }
                    _ => Ok(Recorded::default()),
                }
            }
        }
    })
    .await
}

/// An attempt's row in the delivery log.
#[derive(Insertable)]
#[diesel(table_name = webhook_attempts)]
struct NewAttempt<'a> {
    message_id: &'a str,
    tenant_id: &'a str,
    endpoint_id: &'a str,
    attempt: i32,
    attempted_at: DateTime<Utc>,
    status_code: Option<i32>,
    latency_ms: i32,
    error_kind: Option<&'a str>,
    error: Option<&'a str>,
    response_excerpt: Option<&'a str>,
}

fn attempt_row<'a>(
    claimed: &'a ClaimedMessage,
    tenant: &'a TenantId,
    attempt: i32,
    outcome: &'a DeliveryOutcome,
    now: DateTime<Utc>,
) -> NewAttempt<'a> {
    let error = outcome.error.as_ref();
    NewAttempt {
        message_id: &claimed.id,
        tenant_id: tenant.as_str(),
        endpoint_id: &claimed.endpoint_id,
        attempt,
        attempted_at: now - to_chrono(outcome.latency),
        status_code: outcome.status.map(i32::from),
        latency_ms: i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX),
        error_kind: error.map(|e| e.0.as_str()),
        error: error.map(|e| e.1.as_str()),
        response_excerpt: outcome.response_excerpt.as_deref(),
    }
}

#[derive(Clone, Copy)]
struct EndpointRef<'a> {
    tenant: &'a TenantId,
    id: &'a str,
}

/// Switches an endpoint off on the hub's initiative: gives up its pending messages (the
/// receiver is gone or has been broken for days; the tenant can redeliver by hand) and
/// tells the tenant through a `webhook_endpoint.disabled` message to its other endpoints
/// subscribed to that type. Returns false when it was already off.
async fn disable(
    conn: &mut AsyncPgConnection,
    ep: EndpointRef<'_>,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let url: Option<String> = diesel::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(ep.id))
            .filter(webhook_endpoints::tenant_id.eq(ep.tenant.as_str()))
            .filter(webhook_endpoints::enabled.eq(true)),
    )
    .set((
        webhook_endpoints::enabled.eq(false),
        webhook_endpoints::disabled_reason.eq(reason),
        webhook_endpoints::disabled_at.eq(Some(now)),
        webhook_endpoints::updated_at.eq(now),
    ))
    .returning(webhook_endpoints::url)
    .get_result(conn)
    .await
    .optional()?;
    let Some(url) = url else {
        return Ok(false);
    };
    diesel::update(
        webhook_messages::table
            .filter(webhook_messages::endpoint_id.eq(ep.id))
            .filter(webhook_messages::status.eq(STATUS_PENDING)),
    )
    .set((
        webhook_messages::status.eq(STATUS_FAILED),
        webhook_messages::next_attempt_at.eq(None::<DateTime<Utc>>),
        webhook_messages::last_error.eq(format!("endpoint disabled: {reason}")),
    ))
    .execute(conn)
    .await?;
    enqueue_for_event(
        conn,
        ep.tenant,
        ENDPOINT_DISABLED,
        json!({
            "endpoint_id": ep.id,
            "url": url,
            "reason": reason,
            "disabled_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
        now,
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::webhooks::signing::generate_secret;

    #[test]
    fn the_previous_secret_signs_only_until_its_overlap_ends() {
        let now = Utc::now();
        let (current, previous) = (generate_secret(), generate_secret());
        let later = now + chrono::Duration::hours(1);
        assert_eq!(
            signing_keys(&current, Some(&previous), Some(later), now)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            signing_keys(&current, Some(&previous), Some(now), now)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(signing_keys(&current, None, None, now).unwrap().len(), 1);
    }

    #[test]
    fn the_body_is_the_standard_webhooks_envelope() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = body_of("complaint.routed", &json!({"complaint_id": "cmp_1"}), at).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "complaint.routed");
        assert_eq!(v["timestamp"], "2026-11-21T08:00:00.000Z");
        assert_eq!(v["data"]["complaint_id"], "cmp_1");
    }
}
