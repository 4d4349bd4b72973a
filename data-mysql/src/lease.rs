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

use domain::{Lease, StoreError, StoreErrorKind};

use crate::{Error, MysqlConfig};

/// The longest name `GET_LOCK` accepts (Oracle MySQL refuses longer ones; MariaDB
/// takes them).
const MAX_LOCK_NAME: usize = 64;

/// A server-wide lock name, `prefix` then `database`, at most 64 characters: the
/// database's name when it fits, else a stable digest of it (so two long names that
/// share a prefix never share a lock, and every build computes the same name).
/// Prefixes never change: instances of two releases must agree during a rollout.
pub(crate) fn lock_name(prefix: &str, database: &str) -> String {
    let plain = format!("{prefix}{database}");
    if plain.len() <= MAX_LOCK_NAME {
        return plain;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(database.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = format!("{prefix}{hex}");
    name.truncate(MAX_LOCK_NAME);
    name
}

pub(crate) struct RelayLease {
    name: String,
    opts: mysql_async::Opts,
    conn: Mutex<Option<mysql_async::Conn>>,
}

impl RelayLease {
    /// One lease per database: instances sharing the outbox share the lease.
    pub(crate) fn new(config: &MysqlConfig) -> Result<Self, Error> {
        let opts = config.opts(true)?;
        let name = lock_name("central-library.outbox-relay.", &config.database);
        Ok(RelayLease {
            name,
            opts,
            conn: Mutex::new(None),
        })
    }

    /// Whether this instance holds the lease (taking it when free).
    pub(crate) async fn hold(&self) -> Result<Lease, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_mut() {
            let ours: Result<Option<Option<i64>>, _> = conn
                .exec_first("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", (&self.name,))
                .await;
            match ours {
                Ok(Some(Some(1))) => return Ok(Lease::Kept),
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
        Ok(if taken == Some(Some(1)) {
            Lease::Taken
        } else {
            Lease::Elsewhere
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_and_stay_distinct() {
        assert_eq!(lock_name("m:", "central-library"), "m:central-library");
        let a = lock_name("m:", &format!("{}a", "x".repeat(63)));
        let b = lock_name("m:", &format!("{}b", "x".repeat(63)));
        assert!(a.len() <= MAX_LOCK_NAME && b.len() <= MAX_LOCK_NAME);
        assert_ne!(a, b);
        assert_eq!(a, lock_name("m:", &format!("{}a", "x".repeat(63))));
    }
}
