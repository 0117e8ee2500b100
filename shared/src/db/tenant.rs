//! The tenant of a transaction, for Postgres row-level security (the second wall; the
//! first is the explicit tenant filter every query carries).
//!
//! The setting is transaction-local (`set_config(…, true)`): it ends with the transaction,
//! so a pooled connection that served tenant A carries nothing of A into its next use.
//! Outside such a transaction the application role sees no tenant row at all.
//!
//! [`transaction`] is the usual way in (it sets the tenant as the transaction begins, at no
//! extra round trip); [`set_tenant`] is for a caller already inside `conn.transaction`.

use diesel::{sql_types::Text, QueryResult};
use diesel_async::AsyncPgConnection;

use crate::ids::TenantId;

diesel::define_sql_function! {
    /// Postgres's `set_config(name, value, is_local)`.
    fn set_config(name: Text, value: Text, is_local: diesel::sql_types::Bool) -> Text;
}

/// The setting the row-level security policies read (`redress_tenant()` in SQL).
pub const TENANT_SETTING: &str = "redress.tenant_id";

/// Sets the tenant for the rest of the caller's transaction. Must run inside one: outside,
/// the setting would end with this statement. The usual shape:
///
/// ```ignore
/// conn.transaction(async |conn| {
///     set_tenant(conn, &tenant).await?;
///     complaints::get(conn, &scope, &id).await
/// })
/// .await
/// ```
pub async fn set_tenant(conn: &mut AsyncPgConnection, tenant: &TenantId) -> QueryResult<()> {
    use diesel_async::RunQueryDsl;
    diesel::select(set_config(TENANT_SETTING, tenant.as_str(), true))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Lets the caller's transaction commit without waiting for the disk. Only for bookkeeping
/// whose loss in a crash of Postgres itself is repaired by doing the work again, which
/// at-least-once delivery with deduplication allows: the outbox relay's record of what it
/// published and the dispatcher's of what it delivered (a lost record means a message sent
/// again with the same id). Takes a shared reference so it can go with the transaction's
/// first statements; ends with the transaction.
pub async fn relax_durability(mut conn: &AsyncPgConnection) -> QueryResult<()> {
    use diesel_async::RunQueryDsl;
    diesel::select(set_config("synchronous_commit", "off", true))
        .execute(&mut conn)
        .await
        .map(|_| ())
}

/// Runs `f` in a transaction set to `tenant`: the usual way into tenant data.
///
/// `BEGIN` and the tenant's `set_config` go to Postgres as one simple-query batch, so the
/// second wall costs no round trip of its own (intake is mostly round trips:
/// docs/PERFORMANCE.md). Commit and rollback are diesel's, as with `conn.transaction`.
/// Called inside a transaction (a caller that already holds one), it sets the tenant for
/// the rest of that transaction and runs `f` in it.
pub async fn transaction<R, E, F>(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    f: F,
) -> Result<R, E>
where
    F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<R, E>,
    E: From<diesel::result::Error>,
{
    use diesel_async::{AnsiTransactionManager, TransactionManager};

    let depth = AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map_err(E::from)?;
    if depth.is_some() {
        set_tenant(conn, tenant).await?;
        return f(conn).await;
    }
    match begin_sql(tenant) {
        Some(sql) => AnsiTransactionManager::begin_transaction_sql(conn, &sql).await?,
        None => {
            AnsiTransactionManager::begin_transaction(conn).await?;
            if let Err(e) = set_tenant(conn, tenant).await {
                let _ = AnsiTransactionManager::rollback_transaction(conn).await;
                return Err(e.into());
            }
        }
    }
    match f(conn).await {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(error) => match AnsiTransactionManager::rollback_transaction(conn).await {
            // As diesel's own `transaction`: the first error is the one worth reporting.
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// `BEGIN` plus the tenant's setting, as one batch of SQL text. The simple-query protocol
/// has no bind parameters, so the id is written into the text: only ids made of letters,
/// digits, `_` and `-` (every id this hub issues) are; anything else returns `None` and
/// takes the bound `set_config` instead, so no id can ever change the statement.
fn begin_sql(tenant: &TenantId) -> Option<String> {
    let id = tenant.as_str();
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    plain.then(|| format!("BEGIN; SELECT set_config('{TENANT_SETTING}', '{id}', true)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_written_into_the_begin_batch() {
        let sql = begin_sql(&TenantId::from_trusted("ten_01abc".into()));
        assert_eq!(
            sql.as_deref(),
            Some("BEGIN; SELECT set_config('redress.tenant_id', 'ten_01abc', true)")
        );
        assert_eq!(
            begin_sql(&TenantId::from_trusted(
                "ten_x'; DROP TABLE tenants; --".into()
            )),
            None
        );
        assert_eq!(begin_sql(&TenantId::from_trusted(String::new())), None);
    }
}
