//! What resolvers reach through the context: the stores (schema-wide) and the
//! caller (per request).

use std::sync::Arc;

use async_graphql::Context;
use auth_jwt::{CurrentUser, Role};
use domain::{CatalogStore, CheckoutStore, SnapshotStore};

use crate::events::EventFeed;

/// The data sources, shared by every request.
#[derive(Clone)]
pub struct Stores {
    /// Checkouts (MySQL or embedded).
    pub checkouts: Arc<dyn CheckoutStore>,
    /// Patrons and books (MongoDB or embedded).
    pub catalog: Arc<dyn CatalogStore>,
    /// `checkoutFeed` snapshots (MongoDB `querycache` or embedded).
    pub snapshots: Arc<dyn SnapshotStore>,
    /// Live events for subscriptions.
    pub events: EventFeed,
    /// Called after a committed mutation so the outbox relay publishes at once.
    pub after_commit: Arc<dyn Fn() + Send + Sync>,
}

/// The verified caller of this request; `None` is anonymous.
#[derive(Clone, Debug, Default)]
pub struct Viewer(pub Option<CurrentUser>);

impl Viewer {
    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.0.as_ref().is_some_and(|u| u.has(role))
    }

    /// Whether the caller is the patron with this id (token `sub`).
    pub fn is(&self, patron_id: &str) -> bool {
        self.0.as_ref().is_some_and(|u| u.sub == patron_id)
    }

    /// A stable identity for snapshot ownership.
    pub fn identity(&self) -> String {
        match &self.0 {
            Some(u) => format!("sub:{}", u.sub),
            None => "anonymous".into(),
        }
    }
}

/// The caller; anonymous when the request carried no token.
pub fn viewer<'a>(ctx: &'a Context<'_>) -> std::borrow::Cow<'a, Viewer> {
    match ctx.data_opt::<Viewer>() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(Viewer::default()),
    }
}

/// The stores.
pub fn stores<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Stores> {
    ctx.data::<Stores>()
}
