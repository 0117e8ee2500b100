//! Tenants and their OAuth clients. Routing data lives in `crate::routing`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{clients, tenants};
use crate::ids::{ClientId, TenantId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub template: Option<String>,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub secret_hash: String,
    pub scopes: Vec<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_tenant(
    conn: &mut AsyncPgConnection,
    id: &TenantId,
    name: &str,
    template: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(tenants::table)
        .values((
            tenants::id.eq(id.as_str()),
            tenants::name.eq(name),
            tenants::template.eq(template),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn find_tenant(
    mut conn: &AsyncPgConnection,
    id: &TenantId,
) -> QueryResult<Option<TenantRow>> {
    tenants::table
        .find(id.as_str())
        .select(TenantRow::as_select())
        .first(&mut conn)
        .await
        .optional()
}

pub async fn insert_client(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    id: &ClientId,
    name: &str,
    secret_hash: &str,
    scopes: &[String],
) -> QueryResult<ClientRow> {
    diesel::insert_into(clients::table)
        .values((
            clients::id.eq(id.as_str()),
            clients::tenant_id.eq(tenant.as_str()),
            clients::name.eq(name),
            clients::secret_hash.eq(secret_hash),
            clients::scopes.eq(scopes),
        ))
        .returning(ClientRow::as_returning())
        .get_result(conn)
        .await
}

/// Looks a client up by id alone: the token endpoint does not know the tenant yet, the
/// client id is what tells it.
///
/// Row-level security hides every client until a tenant is set, so the tenant is asked
/// first of a SECURITY DEFINER function that answers only that (migration 000006), and
/// the row itself (secret hash, scopes, state) is read in a transaction set to it. A
/// policy branch letting a transaction read "the client it names" would save that one
/// statement, but widens the policy every query on `clients` is checked against; the
/// function is narrower and the token endpoint is not a hot path.
pub async fn find_client(
    conn: &mut AsyncPgConnection,
    id: &ClientId,
) -> QueryResult<Option<ClientRow>> {
    let Some(tenant) = tenant_of_client(conn, id).await? else {
        return Ok(None);
    };
    super::tenant::transaction(conn, &tenant, async |conn| {
        clients::table
            .find(id.as_str())
            .filter(clients::tenant_id.eq(tenant.as_str()))
            .filter(clients::disabled_at.is_null())
            .select(ClientRow::as_select())
            .first(conn)
            .await
            .optional()
    })
    .await
}

/// The tenant of a client, before any tenant is known: the one cross-tenant read of the
/// token endpoint, through the narrow SECURITY DEFINER function of migration 000006.
pub async fn tenant_of_client(
    conn: &mut AsyncPgConnection,
    id: &ClientId,
) -> QueryResult<Option<TenantId>> {
    let tenant: Option<String> = diesel::select(client_tenant(id.as_str()))
        .get_result(conn)
        .await?;
    Ok(tenant.map(TenantId::from_trusted))
}

diesel::define_sql_function! {
    /// The tenant of a client, across tenants (migration 000006).
    #[sql_name = "redress_client_tenant"]
    fn client_tenant(client: diesel::sql_types::Text) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}
