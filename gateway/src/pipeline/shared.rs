//! One execution per event for every subscriber of the same subscription. A
//! thousand clients subscribed to `checkout { id }` used to execute the selection a
//! thousand times per event; now the first one's execution is shared: each event
//! is resolved and finished once, and its response handed to every member through
//! a bounded broadcast (a member that falls behind is told and dropped, as with
//! the event hub). The execution stops when its last member leaves.
//!
//! Shared only when the responses cannot differ between the members: the same
//! document, operation, variables and viewer scope (the roles; the identity too
//! when the document can reach a patron's private fields), and no `after` (each
//! resume replays from its own point).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_graphql::{Request, Response};
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::errors::subscriber_too_slow;
use crate::graphql::Viewer;
use crate::http::SubscriptionCount;

/// Which subscriptions share an execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    query: String,
    operation: Option<String>,
    variables: String,
    scope: String,
}

impl Key {
    /// The key of `request` for `viewer`; `None` when it must run on its own.
    pub(crate) fn of(request: &Request, viewer: &Viewer) -> Option<Key> {
        if request.query.contains("after") {
            return None;
        }
        // A patron's private fields depend on who asks, not only on the roles.
        let scope = match &viewer.0 {
            Some(_) if request.query.contains("patron") => viewer.identity(),
            Some(user) => format!("{:?}", user.roles),
            None => "anonymous".into(),
        };
        Some(Key {
            query: request.query.clone(),
            operation: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
            scope,
        })
    }
}

/// A running shared execution.
struct Execution {
    /// Taken when the execution ends, so its members' streams end too.
    sender: Mutex<Option<broadcast::Sender<Arc<Response>>>>,
    task: tokio::task::JoinHandle<()>,
    _counted: SubscriptionCount,
}

impl Drop for Execution {
    /// The last member left: stop executing.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Execution {
    fn join(self: &Arc<Self>) -> Option<broadcast::Receiver<Arc<Response>>> {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        sender.as_ref().map(broadcast::Sender::subscribe)
    }
}

/// The shared executions by key.
pub(crate) struct SharedExecutions {
    running: Mutex<HashMap<Key, Weak<Execution>>>,
    /// Responses a member may fall behind by before it is dropped.
    capacity: usize,
}

impl SharedExecutions {
    pub(crate) fn new(capacity: usize) -> Self {
        SharedExecutions {
            running: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// A member's stream of `key`'s responses: joins the running execution, or
    /// starts `start()` as a new one, counted by `counted()`.
    pub(crate) fn join(
        &self,
        key: Key,
        start: impl FnOnce() -> BoxStream<'static, Response>,
        counted: impl FnOnce() -> SubscriptionCount,
    ) -> BoxStream<'static, Response> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let joined = running
            .get(&key)
            .and_then(Weak::upgrade)
            .and_then(|execution| execution.join().map(|rx| (execution, rx)));
        let (execution, rx) = match joined {
            Some(joined) => joined,
            None => {
                running.retain(|_, e| e.strong_count() > 0);
                let (sender, rx) = broadcast::channel(self.capacity);
                let counted = counted();
                let execution = Arc::new_cyclic(|me: &Weak<Execution>| {
                    let me = me.clone();
                    let mut responses = start();
                    let sending = sender.clone();
                    let task = tokio::spawn(async move {
                        while let Some(response) = responses.next().await {
                            // No member listening is fine: it is about to drop us.
                            let _ = sending.send(Arc::new(response));
                        }
                        drop(sending);
                        if let Some(me) = me.upgrade() {
                            me.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
                        }
                    });
                    Execution {
                        sender: Mutex::new(Some(sender)),
                        task,
                        _counted: counted,
                    }
                });
                running.insert(key, Arc::downgrade(&execution));
                (execution, rx)
            }
        };
        drop(running);
        member(execution, rx)
    }
}

/// One member's responses; holding the execution keeps it running.
fn member(
    execution: Arc<Execution>,
    rx: broadcast::Receiver<Arc<Response>>,
) -> BoxStream<'static, Response> {
    futures::stream::unfold(Some((execution, rx)), |state| async move {
        let (execution, mut rx) = state?;
        match rx.recv().await {
            Ok(response) => Some((copy(&response), Some((execution, rx)))),
            Err(broadcast::error::RecvError::Lagged(n)) => Some((subscriber_too_slow(n), None)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
    .boxed()
}

/// A member's own copy of a shared response (async-graphql's is not `Clone`).
fn copy(shared: &Response) -> Response {
    let mut response = Response::new(shared.data.clone());
    response.extensions = shared.extensions.clone();
    response.errors = shared.errors.clone();
    response
}
