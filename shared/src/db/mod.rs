//! Postgres: the pool, the migrations, and the queries both binaries run.

pub mod client_auth;
pub mod complaints;
pub mod schema;
pub mod signing_keys;
pub mod tenant;
pub mod tenants;

use diesel_async::{
    pooled_connection::{
        deadpool::Pool, AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
    },
    AsyncPgConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub type PgPool = Pool<AsyncPgConnection>;
pub type PooledConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for DbError {
    fn from(value: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        DbError::Pool(value.to_string())
    }
}

impl DbError {
    /// Whether retrying later may succeed (the database is down or overloaded), as opposed to
    /// an error that will repeat for the same input.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                // The driver reports a connection that went away under a query ("connection
                // closed": Postgres restarted, or killed the backend) as a command it could
                // not send. The restart-postgres drill of redress-bench found these answered
                // as 500s and, in the worker, spending a message's delivery attempts.
                matches!(
                    kind,
                    diesel::result::DatabaseErrorKind::SerializationFailure
                        | diesel::result::DatabaseErrorKind::ClosedConnection
                        | diesel::result::DatabaseErrorKind::UnableToSendCommand
                ) || info.message().contains("terminating connection")
                    // 57P03: "the database system is starting up / shutting down / in
                    // recovery mode".
                    || info.message().starts_with("the database system is")
            }
            DbError::Query(diesel::result::Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}

/// A bounded pool. Connections are made lazily, so a process can start while Postgres is
/// still coming up and report itself not ready until it is.
///
/// A connection is checked out without a test query (`RecyclingMethod::Fast`): the default
/// sent `SELECT 1` before every checkout, one more round trip on every request and every
/// message. A connection the server closed (a restart, an idle timeout) is still never
/// handed out: its socket reader has ended, so the pool sees it as broken and opens a new
/// one. One cut without notice (a dead network path) fails the query that finds it, which
/// answers 503 or retries the message, and is then dropped the same way. The
/// `restart-postgres` drill of `redress-bench` checks that the API recovers on its own.
pub fn pool(database_url: &str, size: usize) -> Result<PgPool, DbError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

type BlockingConn =
    diesel_async::async_connection_wrapper::AsyncConnectionWrapper<AsyncPgConnection>;

/// Applies pending migrations. The migration harness is synchronous, so it runs on a
/// blocking thread with a wrapped async connection and never stalls the runtime.
pub async fn migrate(database_url: &str) -> Result<Vec<String>, DbError> {
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = <BlockingConn as diesel::Connection>::establish(&url)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}

/// Reverts every migration, for the up-down-up test.
pub async fn revert_all(database_url: &str) -> Result<(), DbError> {
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = <BlockingConn as diesel::Connection>::establish(&url)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        conn.revert_all_migrations(MIGRATIONS)
            .map(|_| ())
            .map_err(|e| DbError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::DbError;

    #[test]
    fn a_connection_lost_under_a_query_is_transient_and_a_broken_constraint_is_not() {
        let lost = DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("connection closed".to_owned()),
        ));
        assert!(lost.is_transient());
        let starting = DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("the database system is starting up".to_owned()),
        ));
        assert!(starting.is_transient());
        let duplicate = DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key value".to_owned()),
        ));
        assert!(!duplicate.is_transient());
    }
}
