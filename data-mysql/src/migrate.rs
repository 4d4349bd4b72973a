//! Versioned migrations, embedded in the binary. They only add objects (SPEC
//! section 1). A named server lock serialises instances that start at once.

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::pool::connection_source;
use crate::{Error, MysqlConfig};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The server-wide lock name; per database, so test databases do not wait on each other.
fn lock_name(database: &str) -> String {
    format!("central-library-migrations:{database}")
}

/// Applies pending migrations; a no-op when up to date. Safe to run from several
/// instances at once: each waits for the lock, then finds nothing left to do.
pub(crate) async fn run(config: &MysqlConfig) -> Result<Vec<String>, Error> {
    let source = connection_source(config, 1)?;
    let raw = source
        .get_conn()
        .await
        .map_err(|e| Error::Connect(Box::new(e)))?;
    let mut conn = AsyncMysqlConnection::try_from(raw)
        .await
        .map_err(|e| Error::Connect(Box::new(e)))?;
    let name = lock_name(&config.database);
    let got: Option<i32> = diesel::select(
        diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Integer>>("GET_LOCK(")
            .bind::<diesel::sql_types::Text, _>(&name)
            .sql(", 60)"),
    )
    .get_result(&mut conn)
    .await?;
    if got != Some(1) {
        return Err(Error::Migrate(
            "timed out waiting for the migration lock".into(),
        ));
    }
    // The sync migration harness blocks: run it off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        let mut wrapper: AsyncConnectionWrapper<AsyncMysqlConnection> =
            AsyncConnectionWrapper::from(conn);
        let applied = wrapper
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>());
        (wrapper.into_inner(), applied)
    })
    .await
    .map_err(|e| Error::Migrate(Box::new(e)))?;
    let (mut conn, applied) = result;
    // Released explicitly; closing the connection would release it too.
    let _ = diesel::select(
        diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Integer>>(
            "RELEASE_LOCK(",
        )
        .bind::<diesel::sql_types::Text, _>(&name)
        .sql(")"),
    )
    .get_result::<Option<i32>>(&mut conn)
    .await;
    drop(conn);
    let _ = source.disconnect().await;
    applied.map_err(Error::Migrate)
}
