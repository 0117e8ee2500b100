//! Routing data and case positions in Postgres. Every function takes the tenant and
//! filters by it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    model::RoutingData,
    schema::{complaint_routing, routing_versions},
    validate::{validate, CompiledRouting},
};
use crate::{
    db::schema::tenants,
    domain::FieldError,
    ids::{ComplaintId, TenantId},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = routing_versions)]
pub struct VersionRow {
    pub tenant_id: String,
    pub version: i32,
    pub snapshot: Value,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// The routing data is not valid (every problem, by JSON pointer).
    #[error("the routing data is invalid")]
    Invalid(Vec<FieldError>),
    /// The caller edited another version than the one in force.
    #[error("routing version {current} is in force, not {base}")]
    Conflict { base: i32, current: i32 },
    /// Stored data that no longer parses or validates: a bug, never the caller's fault.
    #[error("stored routing version {version} of tenant {tenant} is unusable: {detail}")]
    Corrupt {
        tenant: String,
        version: i32,
        detail: String,
    },
}

pub async fn latest(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
) -> QueryResult<Option<VersionRow>> {
    routing_versions::table
        .filter(routing_versions::tenant_id.eq(tenant.as_str()))
        .order(routing_versions::version.desc())
        .select(VersionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn latest_version_number(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
) -> QueryResult<Option<i32>> {
    routing_versions::table
        .filter(routing_versions::tenant_id.eq(tenant.as_str()))
        .select(diesel::dsl::max(routing_versions::version))
        .first(&mut conn)
        .await
}

pub async fn version(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    version: i32,
) -> QueryResult<Option<VersionRow>> {
    routing_versions::table
        .filter(routing_versions::tenant_id.eq(tenant.as_str()))
        .filter(routing_versions::version.eq(version))
        .select(VersionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Versions newest first, without their documents.
pub async fn list_versions(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    before: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<(i32, Option<String>, String, DateTime<Utc>)>> {
    let mut q = routing_versions::table
        .filter(routing_versions::tenant_id.eq(tenant.as_str()))
        .order(routing_versions::version.desc())
        .limit(limit)
        .select((
            routing_versions::version,
            routing_versions::note,
            routing_versions::created_by,
            routing_versions::created_at,
        ))
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(routing_versions::version.lt(b));
    }
    q.load(conn).await
}

/// Serialises routing edits of one tenant for the rest of the caller's transaction, so two
/// edits never both build on the same version.
pub async fn lock_tenant_routing(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(7031, hashtext($1))")
        .bind::<diesel::sql_types::Text, _>(tenant.as_str())
        .execute(conn)
        .await
        .map(|_| ())
}

/// Checks `data` and stores it as the tenant's next version, in the caller's transaction.
/// With `base`, refuses unless `base` is the version in force (optimistic concurrency for
/// editors that read, change and write back the whole document). `edit` derives the new
/// document from the current one (or from empty routing data for a tenant without any).
pub async fn save_with<F>(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    base: Option<i32>,
    note: Option<&str>,
    created_by: &str,
    edit: F,
) -> Result<VersionRow, StoreError>
where
    F: FnOnce(RoutingData) -> Result<RoutingData, StoreError>,
{
    lock_tenant_routing(conn, tenant).await?;
    let current = latest(conn, tenant).await?;
    let current_version = current.as_ref().map(|c| c.version).unwrap_or(0);
    if let Some(base) = base {
        if base != current_version {
            return Err(StoreError::Conflict {
                base,
                current: current_version,
            });
        }
    }
    let current_data = match &current {
        Some(row) => parse(tenant, row)?,
        None => RoutingData::default(),
    };
    let data = edit(current_data)?;
    let compiled = validate(data).map_err(StoreError::Invalid)?;
    let snapshot = serde_json::to_value(&compiled.data)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let row = diesel::insert_into(routing_versions::table)
        .values((
            routing_versions::tenant_id.eq(tenant.as_str()),
            routing_versions::version.eq(current_version + 1),
            routing_versions::snapshot.eq(snapshot),
            routing_versions::note.eq(note),
            routing_versions::created_by.eq(created_by),
        ))
        .returning(VersionRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(row)
}

fn parse(tenant: &TenantId, row: &VersionRow) -> Result<RoutingData, StoreError> {
    serde_json::from_value(row.snapshot.clone()).map_err(|e| StoreError::Corrupt {
        tenant: tenant.to_string(),
        version: row.version,
        detail: e.to_string(),
    })
}

/// Compiled versions are immutable, so they are cached by (tenant, version) for the life
/// of the process; the cache is cleared when it grows past this many entries.
const CACHE_LIMIT: usize = 512;

type Cache = Mutex<HashMap<(String, i32), Arc<CompiledRouting>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The tenant's routing at `version` (the latest when `None`), compiled. `None` when the
/// tenant has no routing data at all (or not that version). The latest version number is
/// read on every call, so edits take effect for the next complaint without a restart.
pub async fn compiled(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    at: Option<i32>,
) -> Result<Option<Arc<CompiledRouting>>, StoreError> {
    let number = match at {
        Some(v) => v,
        None => match latest_version_number(conn, tenant).await? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    let key = (tenant.to_string(), number);
    if let Some(hit) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(Some(hit));
    }
    let Some(row) = version(conn, tenant, number).await? else {
        return Ok(None);
    };
    let data = parse(tenant, &row)?;
    let mut compiled = validate(data).map_err(|errors| StoreError::Corrupt {
        tenant: tenant.to_string(),
        version: number,
        detail: errors
            .iter()
            .map(|e| format!("{}: {}", e.pointer, e.detail))
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    compiled.version = number;
    let compiled = Arc::new(compiled);
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CACHE_LIMIT {
            c.clear();
        }
        c.insert(key, compiled.clone());
    }
    Ok(Some(compiled))
}

/// Where a routed case stands: the rule and version that routed it, each track's ladder
/// and rung, and the channels it has been on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRouting {
    #[serde(default)]
    pub rule: Option<String>,
    /// `main` first.
    pub tracks: Vec<TrackState>,
    /// Channels the case has been routed to, in order.
    #[serde(default)]
    pub visited: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackState {
    pub track: String,
    pub ladder: String,
    /// The active rung's index; `None` once the track has ended.
    pub index: Option<usize>,
}

impl CaseRouting {
    pub fn track(&self, name: &str) -> Option<&TrackState> {
        self.tracks.iter().find(|t| t.track == name)
    }
    pub fn track_mut(&mut self, name: &str) -> Option<&mut TrackState> {
        self.tracks.iter_mut().find(|t| t.track == name)
    }
}

pub async fn load_case(
    conn: &mut AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
) -> Result<Option<(i32, CaseRouting)>, StoreError> {
    let row: Option<(i32, Value)> = complaint_routing::table
        .filter(complaint_routing::complaint_id.eq(complaint.as_str()))
        .filter(complaint_routing::tenant_id.eq(tenant.as_str()))
        .select((complaint_routing::version, complaint_routing::state))
        .first(conn)
        .await
        .optional()?;
    row.map(|(v, state)| {
        serde_json::from_value(state)
            .map(|s| (v, s))
            .map_err(|e| StoreError::Corrupt {
                tenant: tenant.to_string(),
                version: v,
                detail: format!("routing state of complaint {complaint}: {e}"),
            })
    })
    .transpose()
}

pub async fn save_case(
    conn: &AsyncPgConnection,
    tenant: &TenantId,
    complaint: &ComplaintId,
    version: i32,
    state: &CaseRouting,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    save_cases(conn, tenant, &[(complaint, version, state)], now).await
}

/// [`save_case`] for several cases of one tenant, in one statement (a routing batch's).
pub async fn save_cases(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    cases: &[(&ComplaintId, i32, &CaseRouting)],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    use crate::db::prepared::column;
    use diesel::sql_types::{Array, Integer, Jsonb, Text, Timestamptz};
    if cases.is_empty() {
        return Ok(());
    }
    let states = cases
        .iter()
        .map(|(_, _, state)| serde_json::to_value(state))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    // Fixed text kept prepared (`db::prepared`): a multi-row VALUES list is new text for
    // every batch size, parsed and planned each time.
    crate::db::prepared::reuse(
        diesel::sql_query(
            "INSERT INTO complaint_routing (complaint_id, tenant_id, version, state, updated_at) \
             SELECT u.complaint_id, $1, u.version, u.state, $2 \
             FROM unnest($3::text[], $4::int[], $5::jsonb[]) AS u(complaint_id, version, state) \
             ON CONFLICT (complaint_id) DO UPDATE \
                 SET version = EXCLUDED.version, state = EXCLUDED.state, \
                     updated_at = EXCLUDED.updated_at",
        )
        .bind::<Text, _>(tenant.as_str())
        .bind::<Timestamptz, _>(now)
        .bind::<Array<Text>, _>(column(cases, |(c, _, _)| c.as_str()))
        .bind::<Array<Integer>, _>(column(cases, |(_, v, _)| *v))
        .bind::<Array<Jsonb>, _>(&states),
    )
    .execute(&mut conn)
    .await
    .map(|_| ())
}

/// The tenant's calendar date at `now`, in its time zone (Asia/Shanghai unless set).
pub async fn tenant_today(
    mut conn: &AsyncPgConnection,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> QueryResult<NaiveDate> {
    let zone: Option<String> = tenants::table
        .find(tenant.as_str())
        .select(tenants::time_zone)
        .first(&mut conn)
        .await
        .optional()?;
    let tz: chrono_tz::Tz = zone
        .and_then(|z| z.parse().ok())
        .unwrap_or(chrono_tz::Asia::Shanghai);
    Ok(now.with_timezone(&tz).date_naive())
}
