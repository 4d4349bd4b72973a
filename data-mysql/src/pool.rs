//! The connection pool, with what bb8 lacks for a graceful stop: a closed flag, a
//! count of connections in use, and a close that waits for that count to reach zero
//! and then quits every connection properly (so MariaDB's `Aborted_clients` does not
//! grow).
//!
//! Why connections come from a `mysql_async::Pool` under bb8: a standalone
//! `mysql_async::Conn` dropped without `disconnect().await` never sends COM_QUIT
//! (mysql_async 0.36 marks it disconnected before its spawned quit runs), and
//! diesel-async does not expose the inner connection to disconnect it. Connections
//! borrowed from a `mysql_async::Pool` go back to it on drop, and
//! `mysql_async::Pool::disconnect` then quits each one and waits for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel_async::SimpleAsyncConnection;

use bb8::{ManageConnection, Pool, PooledConnection};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, PoolError};
use diesel_async::AsyncMysqlConnection;
use domain::{StoreError, StoreErrorKind};
use futures::FutureExt;
use tokio::sync::Notify;

use crate::error::query_error;
use crate::{Error, MysqlConfig};

/// diesel-async's bb8 manager, plus eviction of connections a query found dead.
///
/// Why: bb8 can ping every connection it lends (`test_on_check_out`), a round trip
/// per request; diesel-async's MySQL connection only reports broken transactions,
/// so without that ping a killed connection would stay in the pool failing every
/// query. Instead the lease marks its connection broken when a query fails for a
/// connection reason, and bb8 drops it on return.
struct Manager(AsyncDieselConnectionManager<AsyncMysqlConnection>);

/// A pooled connection, whether a query found it dead, and when it was last
/// handed back (a connection busy a moment ago needs no ping).
pub(crate) struct Tracked {
    conn: AsyncMysqlConnection,
    broken: bool,
    returned: Instant,
}

impl ManageConnection for Manager {
    type Connection = Tracked;
    type Error = PoolError;

    async fn connect(&self) -> Result<Tracked, PoolError> {
        let conn = self.0.connect().await?;
        Ok(Tracked {
            conn,
            broken: false,
            returned: Instant::now(),
        })
    }

    async fn is_valid(&self, tracked: &mut Tracked) -> Result<(), PoolError> {
        self.0.is_valid(&mut tracked.conn).await
    }

    fn has_broken(&self, tracked: &mut Tracked) -> bool {
        tracked.broken || self.0.has_broken(&mut tracked.conn)
    }
}

/// A connection handed back less than this long ago is lent without a ping; an
/// older one is pinged first (HikariCP's "alive bypass window"): under load no
/// request pays a round trip for the check, and after a quiet spell or a server
/// restart a dead connection is found before a query would fail on it.
const ALIVE_BYPASS: Duration = Duration::from_millis(500);

/// Shared state between the pool and the leases it hands out.
struct Tracker {
    in_use: AtomicUsize,
    released: Notify,
}

/// One unit of the in-use count, released on drop.
struct InUse(Arc<Tracker>);

impl InUse {
    fn take(tracker: &Arc<Tracker>) -> Self {
        tracker.in_use.fetch_add(1, Ordering::AcqRel);
        InUse(Arc::clone(tracker))
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        if self.0.in_use.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.released.notify_waiters();
        }
    }
}

/// A pooled connection plus the in-use count it holds up. Fields drop in order:
/// the connection goes back to the pool before the count falls.
pub(crate) struct Lease {
    conn: PooledConnection<'static, Manager>,
    _in_use: InUse,
}

impl Lease {
    /// A query's result as the domain sees it; a lost connection is marked broken
    /// so the pool drops it instead of lending it again.
    pub(crate) fn check<T>(&mut self, result: diesel::QueryResult<T>) -> Result<T, StoreError> {
        result.map_err(|e| self.error(e))
    }

    /// A query's error as the domain sees it (see `check`).
    pub(crate) fn error(&mut self, e: diesel::result::Error) -> StoreError {
        let e = query_error(e);
        if e.is_unavailable() {
            self.conn.broken = true;
        }
        e
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.conn.returned = Instant::now();
    }
}

impl std::ops::Deref for Lease {
    type Target = AsyncMysqlConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn.conn
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn.conn
    }
}

/// The pool; `None` once closed.
pub(crate) struct MysqlPool {
    pool: Mutex<Option<Pool<Manager>>>,
    /// Where bb8's connections come from, and where they return to be quit.
    source: mysql_async::Pool,
    closed: AtomicBool,
    tracker: Arc<Tracker>,
    config: MysqlConfig,
}

impl MysqlPool {
    pub(crate) async fn connect(config: &MysqlConfig) -> Result<Self, Error> {
        let tracker = Arc::new(Tracker {
            in_use: AtomicUsize::new(0),
            released: Notify::new(),
        });
        let source = connection_source(config, config.pool_limit)?;
        let from = source.clone();
        let mut manager_config = ManagerConfig::default();
        manager_config.custom_setup = Box::new(move |_url| {
            let from = from.clone();
            async move {
                let conn = from.get_conn().await.map_err(|e| {
                    diesel::ConnectionError::BadConnection(format!("cannot connect: {e}"))
                })?;
                // Sets time_zone '+00:00' (DATETIME is UTC) and utf8mb4.
                AsyncMysqlConnection::try_from(conn).await
            }
            .boxed()
        });
        // The URL is unused by our setup callback; no secret goes into the manager.
        let manager = Manager(AsyncDieselConnectionManager::new_with_config(
            "mysql://pooled",
            manager_config,
        ));
        let pool = Pool::builder()
            .max_size(config.pool_limit.max(1))
            .min_idle(Some(0))
            // No ping per checkout (a round trip per request): `Lease::check` evicts
            // the connections queries find dead.
            .test_on_check_out(false)
            .connection_timeout(config.acquire_timeout)
            .build(manager)
            .await
            .map_err(|e| Error::Connect {
                address: config.address(),
                source: Box::new(e),
            })?;
        Ok(MysqlPool {
            pool: Mutex::new(Some(pool)),
            source,
            closed: AtomicBool::new(false),
            tracker,
            config: config.clone(),
        })
    }

    /// A connection, or `Closed` once closing began, or `Unavailable` when the
    /// server cannot be reached within the acquire timeout.
    pub(crate) async fn get(&self) -> Result<Lease, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::bare(StoreErrorKind::Closed));
        }
        let pool = lock(&self.pool)
            .clone()
            .ok_or_else(|| StoreError::bare(StoreErrorKind::Closed))?;
        let in_use = InUse::take(&self.tracker);
        // Every pooled connection may be dead (a server restart): try each at most once.
        for _ in 0..=self.config.pool_limit {
            let mut conn = pool
                .get_owned()
                .await
                .map_err(|e| StoreError::new(StoreErrorKind::Unavailable, e))?;
            if conn.returned.elapsed() > ALIVE_BYPASS
                && conn.conn.batch_execute("SELECT 1").await.is_err()
            {
                conn.broken = true; // dropped by the pool on return
                continue;
            }
            return Ok(Lease {
                conn,
                _in_use: in_use,
            });
        }
        Err(StoreError::new(
            StoreErrorKind::Unavailable,
            "every pooled connection was dead",
        ))
    }

    /// (open connections, idle connections), for metrics.
    pub(crate) fn state(&self) -> (u32, u32) {
        lock(&self.pool)
            .as_ref()
            .map(|p| {
                let s = p.state();
                (s.connections, s.idle_connections)
            })
            .unwrap_or((0, 0))
    }

    /// Stops lending, waits up to the drain timeout for connections in use, drops
    /// the pool (each connection sends COM_QUIT), then waits until the server no
    /// longer lists them, bounded by the same timeout.
    pub(crate) async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + self.config.drain_timeout;
        let mut abandoned = 0;
        loop {
            let released = self.tracker.released.notified();
            if self.tracker.in_use.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                abandoned = self.tracker.in_use.load(Ordering::Acquire);
                tracing::warn!(
                    in_use = abandoned,
                    "mysql: closing with queries still in flight"
                );
                break;
            }
        }
        // Connections go back to `source` as bb8 drops them; then quit them all.
        drop(lock(&self.pool).take());
        let quit = tokio::time::timeout_at(deadline, self.source.clone().disconnect()).await;
        match quit {
            Ok(Ok(())) if abandoned == 0 => Ok(()),
            Ok(Ok(())) => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("{abandoned} queries were still running at the drain timeout"),
            )),
            Ok(Err(e)) => Err(StoreError::new(StoreErrorKind::Unavailable, e)),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the server did not acknowledge the connections' quit in time",
            )),
        }
    }
}

/// A `mysql_async` pool of at most `limit` connections to `config`'s database.
pub(crate) fn connection_source(
    config: &MysqlConfig,
    limit: u32,
) -> Result<mysql_async::Pool, Error> {
    let constraints =
        mysql_async::PoolConstraints::new(0, limit.max(1) as usize).ok_or(Error::Setting {
            setting: "MYSQL_CONNECTION_POOL_LIMIT",
            reason: format!("{limit} is not a pool size"),
        })?;
    let opts = mysql_async::OptsBuilder::from_opts(config.opts(true)?)
        .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints));
    Ok(mysql_async::Pool::new(opts))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
