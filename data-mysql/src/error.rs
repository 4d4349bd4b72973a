//! This crate's error, and how it becomes the domain's `StoreError`.

use domain::{StoreError, StoreErrorKind};

/// What can fail while setting up the connector (connecting, migrating).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pool could not be built or reach the server.
    #[error("cannot connect to MySQL")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A migration failed.
    #[error("MySQL migration failed")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A query failed.
    #[error("MySQL query failed")]
    Query(#[from] diesel::result::Error),
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
