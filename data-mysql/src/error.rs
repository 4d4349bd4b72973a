//! This crate's error, and how a query's error becomes the domain's `StoreError`.
//!
//! Each set-up variant is named after its cause and its message says, in one line,
//! which setting or object to look at: an operator reads it in a pod's last log line.

use domain::{StoreError, StoreErrorKind};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can fail while setting up the connector (connecting, checking, migrating).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting's value cannot be used.
    #[error("invalid {setting}: {reason}")]
    Setting {
        /// The variable's name.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the address.
    #[error("cannot reach MySQL at {address}: check MYSQL_HOST and MYSQL_PORT")]
    Unreachable {
        /// `host:port`
        address: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The server refused the user name or password.
    #[error("MySQL refused the sign-in of user {user:?}: check MYSQL_USER and MYSQL_PASSWORD")]
    Credentials {
        /// `MYSQL_USER`
        user: String,
        /// The server's error.
        #[source]
        source: BoxError,
    },
    /// The database does not exist.
    #[error("MySQL has no database {database:?}: create it, or correct MYSQL_DATABASE")]
    UnknownDatabase {
        /// `MYSQL_DATABASE`
        database: String,
    },
    /// The user may not use the database.
    #[error("MySQL user {user:?} may not use database {database:?}: grant it, or correct MYSQL_DATABASE")]
    DatabaseAccess {
        /// `MYSQL_USER`
        user: String,
        /// `MYSQL_DATABASE`
        database: String,
    },
    /// TLS could not be set up as the mode asks.
    #[error(
        "TLS to MySQL failed with MYSQL_SSL_MODE={mode}: check MYSQL_SSL_MODE and MYSQL_SSL_CA"
    )]
    Tls {
        /// The mode asked for.
        mode: crate::SslMode,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// Connecting failed for another reason.
    #[error("cannot connect to MySQL at {address}")]
    Connect {
        /// `host:port`
        address: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The server is of a kind or version the gateway is not built for.
    #[error(
        "MySQL server {version} is not supported: the one-open-checkout guard needs \
         Oracle MySQL 8.0.13 or later, or MariaDB 10.6 or later"
    )]
    UnsupportedServer {
        /// What `SELECT VERSION()` answered.
        version: String,
    },
    /// The existing `checkouts` table is not the legacy table.
    #[error(
        "table `checkouts` in database {database:?} is not the legacy table ({problem}); \
         the gateway never alters its columns: point MYSQL_DATABASE at the library's database"
    )]
    NotLegacyTable {
        /// `MYSQL_DATABASE`
        database: String,
        /// The column that differs, and how.
        problem: String,
    },
    /// Some copies are checked out twice, so the one-open-per-copy index cannot exist.
    #[error(
        "the one-open-checkout guard cannot be built: {} copies have more than one open \
         checkout ({}); keep one open checkout per copy, e.g. \
         `UPDATE checkouts SET checkin_date = UTC_TIMESTAMP() WHERE row_id IN ({})` \
         closes all but each copy's newest, then restart",
        .copies.len(), describe(.copies), older_ids(.copies)
    )]
    DuplicateOpenCheckouts {
        /// Each such copy with its open rows (at most the first 20 copies).
        copies: Vec<OpenTwice>,
    },
    /// Another instance held the migration lock for too long.
    #[error("timed out waiting for the migration lock on database {database:?}: another instance is migrating it; restart when it has finished")]
    MigrationLock {
        /// `MYSQL_DATABASE`
        database: String,
    },
    /// A migration failed on the server; the ones before it stay applied.
    #[error("migration failed; the database keeps the migrations applied before it")]
    Migration(#[source] BoxError),
    /// A query failed while setting up.
    #[error("MySQL query failed while setting up")]
    Query(#[from] diesel::result::Error),
}

/// A copy with more than one open checkout in the legacy data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTwice {
    /// The copy's UPC.
    pub asset_upc: String,
    /// Its open rows' ids, oldest first.
    pub row_ids: Vec<i64>,
}

fn describe(copies: &[OpenTwice]) -> String {
    copies
        .iter()
        .map(|c| format!("{}: rows {}", c.asset_upc, join(&c.row_ids)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every open row but each copy's newest.
fn older_ids(copies: &[OpenTwice]) -> String {
    let older: Vec<i64> = copies
        .iter()
        .flat_map(|c| {
            c.row_ids[..c.row_ids.len().saturating_sub(1)]
                .iter()
                .copied()
        })
        .collect();
    join(&older)
}

fn join(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// A driver error met while connecting, told apart by its server error code.
    pub(crate) fn connecting(config: &crate::MysqlConfig, e: mysql_async::Error) -> Self {
        use mysql_async::{DriverError, Error as E, IoError};
        match &e {
            // ER_ACCESS_DENIED_ERROR, and MySQL 8's ER_ACCESS_DENIED_NO_PASSWORD_ERROR
            E::Server(s) if s.code == 1045 || s.code == 1698 => Error::Credentials {
                user: config.user.clone(),
                source: Box::new(e),
            },
            E::Server(s) if s.code == 1049 => Error::UnknownDatabase {
                database: config.database.clone(),
            },
            E::Server(s) if s.code == 1044 => Error::DatabaseAccess {
                user: config.user.clone(),
                database: config.database.clone(),
            },
            E::Io(IoError::Tls(_)) | E::Driver(DriverError::NoClientSslFlagFromServer) => {
                Error::Tls {
                    mode: config.ssl_mode,
                    source: Box::new(e),
                }
            }
            E::Io(IoError::Io(io))
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>()) =>
            {
                Error::Tls {
                    mode: config.ssl_mode,
                    source: Box::new(e),
                }
            }
            E::Io(IoError::Io(io))
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::HostUnreachable
                        | std::io::ErrorKind::NetworkUnreachable
                        | std::io::ErrorKind::AddrNotAvailable
                ) =>
            {
                Error::Unreachable {
                    address: config.address(),
                    source: Box::new(e),
                }
            }
            _ => Error::Connect {
                address: config.address(),
                source: Box::new(e),
            },
        }
    }
}

/// A diesel error as the domain sees it: a lost connection is `Unavailable`.
pub(crate) fn query_error(e: diesel::result::Error) -> StoreError {
    use diesel::result::{DatabaseErrorKind, Error as D};
    let kind = match &e {
        D::DatabaseError(DatabaseErrorKind::ClosedConnection, _) | D::BrokenTransactionManager => {
            StoreErrorKind::Unavailable
        }
        D::DatabaseError(_, info) if is_connection_lost(info.message()) => {
            StoreErrorKind::Unavailable
        }
        _ => StoreErrorKind::Query,
    };
    StoreError::new(kind, e)
}

/// Whether a transaction failed only because of another's locks: InnoDB rolled it
/// back (deadlock) or gave up waiting (lock-wait timeout), and running it again is
/// safe. diesel keeps the server's message, not its code; sessions ask for English
/// messages (`config.rs`), so the text is stable.
pub(crate) fn is_lock_conflict(e: &diesel::result::Error) -> bool {
    match e {
        diesel::result::Error::DatabaseError(_, info) => {
            let m = info.message();
            m.starts_with("Deadlock found when trying to get lock")
                || m.starts_with("Lock wait timeout exceeded")
        }
        _ => false,
    }
}

/// mysql_async reports I/O failures as unknown database errors; tell them apart by
/// their text so callers can answer "service unavailable" rather than "bad query".
fn is_connection_lost(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "connection",
        "broken pipe",
        "io error",
        "server disconnected",
        "killed",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_open_checkouts_name_copies_rows_and_the_fix() {
        let e = Error::DuplicateOpenCheckouts {
            copies: vec![
                OpenTwice {
                    asset_upc: "9000000001".into(),
                    row_ids: vec![3, 9],
                },
                OpenTwice {
                    asset_upc: "9000000002".into(),
                    row_ids: vec![4, 5, 7],
                },
            ],
        };
        let text = e.to_string();
        assert!(text.contains("9000000001: rows 3, 9; 9000000002: rows 4, 5, 7"));
        assert!(text.contains("WHERE row_id IN (3, 4, 5)"), "{text}");
        assert!(!text.contains('\n'), "one line");
    }
}
