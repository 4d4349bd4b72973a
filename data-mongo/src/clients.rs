//! One driver client per tokio runtime that uses the catalog.
//!
//! Hand-written, as no crate covers it: the official driver runs a client's
//! connection pool and server monitors as tasks on the runtime that built the
//! client, and every connection checkout and check-in is a message to the pool's
//! task. actix-web runs each worker on its own single-threaded runtime, so with one
//! shared client every query woke the thread that had built it and waited for its
//! answer (under the checkouts benchmark that thread spent 60 % of its samples
//! switching tasks, about 0.09 ms of CPU per page). A client per runtime keeps those
//! messages on the runtime that sends them, and a runtime that ends takes only its
//! own client's tasks with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use domain::{StoreError, StoreErrorKind};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use tokio::runtime::{self, Handle};

use crate::error::store_error;

/// The clients by runtime; all built from the same options.
pub(crate) struct Clients {
    options: ClientOptions,
    database: String,
    by_runtime: RwLock<HashMap<runtime::Id, Local>>,
    closed: AtomicBool,
}

/// A runtime's client, and that runtime, to close the client where its tasks run.
#[derive(Clone)]
struct Local {
    client: Client,
    db: Database,
    runtime: Handle,
}

/// Why no client could be had on this thread.
#[derive(Debug, thiserror::Error)]
enum NoClient {
    #[error("the MongoDB catalog is used outside a tokio runtime")]
    NoRuntime,
    #[error("the MongoDB catalog is closed")]
    Closed,
}

impl Clients {
    /// Builds the calling runtime's client now, so that invalid options fail here.
    pub(crate) fn new(
        options: ClientOptions,
        database: &str,
    ) -> Result<Self, mongodb::error::Error> {
        let clients = Clients {
            options,
            database: database.to_string(),
            by_runtime: RwLock::new(HashMap::new()),
            closed: AtomicBool::new(false),
        };
        if let Ok(runtime) = Handle::try_current() {
            let local = clients.build(runtime)?;
            clients.write().insert(local.runtime.id(), local);
        }
        Ok(clients)
    }

    fn build(&self, runtime: Handle) -> Result<Local, mongodb::error::Error> {
        // The driver spawns its tasks on the current runtime: `runtime` here.
        let client = Client::with_options(self.options.clone())?;
        let db = client.database(&self.database);
        Ok(Local {
            client,
            db,
            runtime,
        })
    }

    // The map is only ever inserted into whole: a panic elsewhere cannot leave it
    // half-updated, so a poisoned lock is still sound to use.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<runtime::Id, Local>> {
        self.by_runtime
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<runtime::Id, Local>> {
        self.by_runtime
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The database handle of the calling runtime's client, built on first use.
    pub(crate) fn db(&self) -> Result<Database, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::new(StoreErrorKind::Closed, NoClient::Closed));
        }
        let runtime = Handle::try_current()
            .map_err(|_| StoreError::new(StoreErrorKind::Query, NoClient::NoRuntime))?;
        let id = runtime.id();
        if let Some(local) = self.read().get(&id) {
            return Ok(local.db.clone());
        }
        let mut map = self.write();
        if let Some(local) = map.get(&id) {
            return Ok(local.db.clone());
        }
        let local = self.build(runtime).map_err(store_error)?;
        let db = local.db.clone();
        map.insert(id, local);
        Ok(db)
    }

    /// Closes every client on its own runtime, each bounded by `graceful` before it
    /// is closed immediately. A runtime that has ended cancels its part: its
    /// client's tasks, and their connections, ended with it. Later calls fail
    /// `Closed`.
    pub(crate) async fn close(&self, graceful: Duration) {
        self.closed.store(true, Ordering::Release);
        let all: Vec<Local> = self.read().values().cloned().collect();
        let closes = all.into_iter().map(|local| async move {
            let client = local.client;
            let _ = local.runtime.spawn(shut_down(client, graceful)).await;
        });
        futures::future::join_all(closes).await;
    }
}

/// Waits for operations in flight (at most `graceful`), then ends sessions and
/// closes connections; live cursors or sessions past that bound are dropped.
async fn shut_down(client: Client, graceful: Duration) {
    if tokio::time::timeout(graceful, client.clone().shutdown())
        .await
        .is_err()
    {
        // A cursor or session still alive would keep a graceful shutdown waiting.
        tracing::warn!("mongodb: operations still open; closing immediately");
        client.shutdown().immediate(true).await;
    }
}
