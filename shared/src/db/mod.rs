//! Postgres: the pool, the migrations, and the queries both binaries run.

pub mod client_auth;
pub mod complaints;
pub mod intake;
pub mod prepared;
pub mod schema;
pub mod signing_keys;
pub mod tenant;
pub mod tenants;

use diesel_async::{
    pooled_connection::{
        deadpool::Pool, AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
    },
    AsyncConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub type PgPool = Pool<AsyncPgConnection>;
pub type PooledConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

/// The role the API and the worker connect as (migration 000005).
pub const APP_ROLE: &str = "redress_app";

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
    pool_with(database_url, size, SessionSettings::default())
}

/// What each pooled connection sets for its own session when it is made. The default sets
/// nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionSettings {
    /// `backend_flush_after`, in kB; 0 (the default) leaves the server's setting.
    ///
    /// The buffers a backend writes out itself only reach the kernel's page cache, and
    /// PostgreSQL's default for backends never asks the kernel to start writing them, so
    /// they can pile up and go to the disk in one burst that commits wait behind. Set, the
    /// backend asks every so many kB, as the checkpointer and the background writer do. Off
    /// by default: it shrank the bursts, but intake's p99 was no better with it in three
    /// full benchmark runs against three without (docs/PERFORMANCE.md, session 9).
    pub backend_flush_after_kb: u32,
}

/// A pool as [`pool`], whose connections set `session` when they are made.
pub fn pool_with(
    database_url: &str,
    size: usize,
    session: SessionSettings,
) -> Result<PgPool, DbError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let flush_after = session.backend_flush_after_kb;
    if flush_after > 0 {
        config.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                // One round trip when the connection is made, none per checkout.
                conn.batch_execute(&format!("SET backend_flush_after = '{flush_after}kB'"))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
    }
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

/// Gives the application role the password in `app_database_url`, when that URL carries
/// one; run by `redress-api migrate` over the admin connection. One setting (the serving
/// processes' URL) is then the only place the password lives, and the role and the URL
/// cannot disagree. Returns the role whose password was set. Local development runs with
/// trust authentication and a URL without password, and nothing is changed.
pub async fn set_app_role_password(
    admin_database_url: &str,
    app_database_url: &str,
) -> Result<Option<String>, DbError> {
    use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

    // Only the role the migrations made for the application: a URL naming another role
    // (a superuser, say) never changes that role's password.
    let Some((user, password)) =
        url_credentials(app_database_url).filter(|(user, _)| user == APP_ROLE)
    else {
        return Ok(None);
    };
    let mut conn = AsyncPgConnection::establish(admin_database_url)
        .await
        .map_err(|e| DbError::Migration(e.to_string()))?;
    // ALTER ROLE takes no bind parameters: Postgres itself quotes both into the statement.
    #[derive(diesel::QueryableByName)]
    struct Statement {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }
    let Statement { sql } =
        diesel::sql_query("SELECT format('ALTER ROLE %I PASSWORD %L', $1, $2) AS sql")
            .bind::<diesel::sql_types::Text, _>(&user)
            .bind::<diesel::sql_types::Text, _>(&password)
            .get_result(&mut conn)
            .await?;
    conn.batch_execute(&sql).await?;
    Ok(Some(user))
}

/// `url` with its user (and password) replaced by `user`, no password: how the test
/// harness and the benchmark, which know the owner's URL, reach the same database as the
/// application role (trust authentication, as on a development machine).
pub fn url_with_user(url: &str, user: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host_and_rest = match rest.split(['/', '?']).next()?.rsplit_once('@') {
        Some((userinfo, _)) => &rest[userinfo.len() + 1..],
        None => rest,
    };
    Some(format!("{scheme}://{user}@{host_and_rest}"))
}

/// The user and the (percent-decoded) password of a `postgres://user:password@…` URL,
/// when it has both.
fn url_credentials(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _host) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let (user, password) = (percent_decode(user)?, percent_decode(password)?);
    (!user.is_empty() && !password.is_empty()).then_some((user, password))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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

    use super::{url_credentials, DbError};

    #[test]
    fn the_app_password_is_read_from_the_url_only_when_there_is_one() {
        assert_eq!(
            url_credentials("postgres://redress_app:s%40cr%3At@db:5432/redress"),
            Some(("redress_app".into(), "s@cr:t".into()))
        );
        assert_eq!(
            url_credentials("postgres://redress_app@127.0.0.1/redress"),
            None
        );
        assert_eq!(url_credentials("postgres://127.0.0.1/redress"), None);
        assert_eq!(
            super::url_with_user(
                "postgres://postgres:pw@127.0.0.1:5432/db?x=1",
                "redress_app"
            )
            .as_deref(),
            Some("postgres://redress_app@127.0.0.1:5432/db?x=1")
        );
        assert_eq!(
            super::url_with_user("postgres://127.0.0.1/db", "redress_app").as_deref(),
            Some("postgres://redress_app@127.0.0.1/db")
        );
    }

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
