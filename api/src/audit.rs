//! Admin actions of API callers, recorded with [`redress_shared::audit::record`] in the
//! transaction of the action itself, so an action and its record commit together.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use redress_shared::{audit, domain::events::actor_client};
use serde_json::Value;

use crate::auth::Caller;

/// Records `action` on `target` by the caller, in the caller's tenant. `details` never
/// holds personal data or secrets.
pub async fn record(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    action: &str,
    target: &str,
    details: Value,
) -> QueryResult<()> {
    audit::record(
        conn,
        audit::Entry {
            tenant: Some(&caller.tenant_id),
            actor: &actor_client(caller.client_id.as_str()),
            action,
            target: Some(target),
            details,
        },
    )
    .await
}
