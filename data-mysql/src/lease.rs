//! The relay lease: a named lock (`GET_LOCK`) held on a connection of its own. Only
//! the holder relays the outbox, so several gateway instances never publish one row
//! twice and publish in one order. When the holder dies the server frees the lock
//! with its connection, and a standby instance takes it at its next attempt.
//!
//! Why a named lock and not `SELECT ... FOR UPDATE SKIP LOCKED`: skipping locked rows
//! lets two relays publish different rows of one asset at once, out of order; row
//! locks held across a broker outage would also block the checkouts' inserts.

use mysql_async::prelude::Queryable;
use tokio::sync::Mutex;

use domain::{StoreError, StoreErrorKind};

use crate::{Error, MysqlConfig};

/// The longest name `GET_LOCK` accepts.
const MAX_LOCK_NAME: usize = 64;

pub(crate) struct RelayLease {
    name: String,
    opts: mysql_async::Opts,
    conn: Mutex<Option<mysql_async::Conn>>,
}

impl RelayLease {
    /// One lease per database: instances sharing the outbox share the lease.
    pub(crate) fn new(config: &MysqlConfig) -> Result<Self, Error> {
        let opts =
            mysql_async::Opts::from_url(&config.url()).map_err(|e| Error::Connect(Box::new(e)))?;
        let mut name = format!("central-library.outbox-relay.{}", config.database);
        name.truncate(MAX_LOCK_NAME);
        Ok(RelayLease {
            name,
            opts,
            conn: Mutex::new(None),
        })
    }

    /// `Ok(true)` while this instance holds the lease (taking it when free).
    pub(crate) async fn hold(&self) -> Result<bool, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_mut() {
            let ours: Result<Option<Option<i64>>, _> = conn
                .exec_first("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", (&self.name,))
                .await;
            match ours {
                Ok(Some(Some(1))) => return Ok(true),
                Ok(_) => {} // not held (never taken, or released): try to take it below
                Err(e) => {
                    // The connection died, and the lock with it.
                    tracing::warn!(error = %e, "outbox relay lease lost with its connection");
                    *guard = None;
                }
            }
        }
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => guard.insert(
                mysql_async::Conn::new(self.opts.clone())
                    .await
                    .map_err(|e| StoreError::new(StoreErrorKind::Unavailable, e))?,
            ),
        };
        let taken: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, 0)", (&self.name,))
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Unavailable, e))?;
        Ok(taken == Some(Some(1)))
    }

    /// Quits the lease's connection, which frees the lock.
    pub(crate) async fn release(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            if let Err(e) = conn.disconnect().await {
                tracing::warn!(error = %e, "outbox relay lease: connection did not quit cleanly");
            }
        }
    }
}
