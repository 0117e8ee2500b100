//! The transactional outbox. A change and the message announcing it commit together in
//! Postgres; the relay then publishes the message with publisher confirms and `mandatory`,
//! and marks it sent only after a clean ack. Nothing is lost between the database and the
//! broker: a message is sent at least once, and consumers deduplicate on its id.

mod relay;

pub use relay::{Relay, RelayHandle};

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{db::schema::outbox, domain::events::QueueMessage};

/// Queues `message` in the caller's transaction. Takes a shared reference so intake can
/// pipeline it with the complaint's own inserts.
pub async fn enqueue(conn: &AsyncPgConnection, message: &QueueMessage) -> QueryResult<()> {
    let payload = serde_json::to_value(message)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let mut conn = conn;
    diesel::insert_into(outbox::table)
        .values((
            outbox::message_id.eq(message.message_id),
            outbox::tenant_id.eq(&message.tenant_id),
            outbox::routing_key.eq(&message.message_type),
            outbox::payload.eq(payload),
        ))
        .execute(&mut conn)
        .await
        .map(|_| ())
}

/// Rows not yet confirmed by the broker, and the age in seconds of the oldest (outbox lag).
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<(i64, f64)> {
    #[derive(QueryableByName)]
    struct Backlog {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        unsent: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        oldest_secs: f64,
    }
    // Over every tenant, through a SECURITY DEFINER function (migration 000006): the
    // application role sees no tenant's rows outside a tenant transaction.
    let b: Backlog = diesel::sql_query("SELECT unsent, oldest_secs FROM redress_outbox_backlog()")
        .get_result(conn)
        .await?;
    Ok((b.unsent, b.oldest_secs))
}
