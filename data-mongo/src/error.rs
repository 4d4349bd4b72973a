//! This crate's error, and how a driver error becomes the domain's `StoreError`.

use domain::{StoreError, StoreErrorKind};

/// What can fail while setting up the connector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL or options are invalid, or the client could not be built.
    #[error("invalid MongoDB configuration")]
    Config(#[source] mongodb::error::Error),
    /// The server did not answer or refused a command.
    #[error("MongoDB command failed")]
    Command(#[source] mongodb::error::Error),
    /// No client could be had (the catalog was closed, or used outside a runtime).
    #[error("MongoDB client unavailable")]
    Client(#[from] StoreError),
}

/// A driver error as the domain sees it: no server, or closed, is `Unavailable` or
/// `Closed`; anything else a failed query.
pub(crate) fn store_error(e: mongodb::error::Error) -> StoreError {
    use mongodb::error::ErrorKind as K;
    let kind = match *e.kind {
        K::ServerSelection { .. } | K::Io(_) | K::ConnectionPoolCleared { .. } => {
            StoreErrorKind::Unavailable
        }
        K::Shutdown => StoreErrorKind::Closed,
        _ => StoreErrorKind::Query,
    };
    StoreError::new(kind, e)
}
