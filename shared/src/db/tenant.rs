//! The tenant of a transaction, for Postgres row-level security (the second wall; the
//! first is the explicit tenant filter every query carries).
//!
//! The setting is transaction-local (`set_config(…, true)`): it ends with the transaction,
//! so a pooled connection that served tenant A carries nothing of A into its next use.
//! Outside such a transaction the application role sees no tenant row at all.

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
