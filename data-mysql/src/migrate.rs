//! Versioned migrations, embedded in the binary. They only add objects (SPEC
//! section 1), in one dialect for Oracle MySQL and MariaDB; the migration table
//! makes each run once. A named server lock serialises instances that start at
//! once, and the preflight checks run under it before anything is written.

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use mysql_async::prelude::Queryable;

use crate::lease::lock_name;
use crate::pool::connection_source;
use crate::preflight::{self, Session};
use crate::{Error, MysqlConfig};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long an instance waits for another's migrations.
const LOCK_WAIT_SECONDS: u32 = 60;

/// What a successful start found and did.
pub(crate) struct Migrated {
    /// The settings to connect with from now on (`Preferred` TLS resolved).
    pub(crate) config: MysqlConfig,
    /// What the first session found.
    pub(crate) session: Session,
    /// Versions applied by this call.
    pub(crate) applied: Vec<String>,
}

/// A first connection: one that works tells the credentials, database and TLS apart
/// from later failures. `Preferred` falls back to plain TCP when the server has no TLS.
async fn first_connection(
    config: &MysqlConfig,
) -> Result<(mysql_async::Pool, mysql_async::Conn, MysqlConfig), Error> {
    let mut config = config.clone();
    // At most two fallbacks: preferred without TLS, verify_ca with the certificate's name.
    for _ in 0..3 {
        let source = connection_source(&config, 1)?;
        let e = match source.get_conn().await {
            Ok(conn) => return Ok((source, conn, config)),
            Err(e) => e,
        };
        let _ = source.disconnect().await;
        if let Some(plain) = config.plain_fallback(&e) {
            tracing::info!(
                "mysql: the server offers no TLS; connecting without (MYSQL_SSL_MODE=preferred)"
            );
            config = plain;
        } else if let Some(named) = config.name_fallback(&e) {
            config = named;
        } else {
            return Err(Error::connecting(&config, e));
        }
    }
    Err(Error::Connect {
        address: config.address(),
        source: "no connection after the TLS fallbacks".into(),
    })
}

/// Checks the server and the legacy table, then applies pending migrations (a no-op
/// when up to date). Safe to run from several instances at once: each waits for the
/// lock, then finds nothing left to do.
pub(crate) async fn run(config: &MysqlConfig) -> Result<Migrated, Error> {
    let (source, conn, config) = first_connection(config).await?;
    // The connection goes back to `source` when dropped; `disconnect` quits it.
    let result = locked(conn, &config).await;
    let _ = source.disconnect().await;
    let (session, applied) = result?;
    Ok(Migrated {
        config,
        session,
        applied,
    })
}

/// Under the migration lock: preflight, then the migrations.
async fn locked(
    mut conn: mysql_async::Conn,
    config: &MysqlConfig,
) -> Result<(Session, Vec<String>), Error> {
    let failed = |e: mysql_async::Error| Error::Migration(Box::new(e));
    // Per database, so test databases do not wait on each other.
    let name = lock_name("central-library-migrations:", &config.database);
    let got: Option<Option<i64>> = conn
        .exec_first(format!("SELECT GET_LOCK(?, {LOCK_WAIT_SECONDS})"), (&name,))
        .await
        .map_err(failed)?;
    if got != Some(Some(1)) {
        return Err(Error::MigrationLock {
            database: config.database.clone(),
        });
    }
    let session = match preflight::check(&mut conn, &config.database).await {
        Ok(session) => session,
        Err(e) => {
            let _ = conn.exec_drop("SELECT RELEASE_LOCK(?)", (&name,)).await;
            return Err(e);
        }
    };
    apply(conn, name).await.map(|applied| (session, applied))
}

/// Runs the pending migrations on `conn` (the session holding the lock named
/// `lock`), then releases the lock.
async fn apply(conn: mysql_async::Conn, lock: String) -> Result<Vec<String>, Error> {
    let diesel_conn = AsyncMysqlConnection::try_from(conn)
        .await
        .map_err(|e| Error::Migration(Box::new(e)))?;
    // The sync migration harness blocks: run it off the async workers.
    let (mut diesel_conn, applied) = tokio::task::spawn_blocking(move || {
        let mut wrapper: AsyncConnectionWrapper<AsyncMysqlConnection> =
            AsyncConnectionWrapper::from(diesel_conn);
        let applied = wrapper
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>());
        (wrapper.into_inner(), applied)
    })
    .await
    .map_err(|e| Error::Migration(Box::new(e)))?;
    // Released explicitly; quitting the connection would release it too.
    let _ = diesel::select(
        diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Integer>>(
            "RELEASE_LOCK(",
        )
        .bind::<diesel::sql_types::Text, _>(&lock)
        .sql(")"),
    )
    .get_result::<Option<i32>>(&mut diesel_conn)
    .await;
    applied.map_err(Error::Migration)
}
