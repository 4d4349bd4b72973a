//! Every data-source call counted, per store and call: `datasource_calls_total` on
//! `/metrics`. Each call is one database round trip (the connectors batch inside
//! one), so operators see what a query costs, and the contract suite checks that a
//! page of N checkouts costs the same few round trips whatever N is. With traces
//! on, each call is also a client span (`db.system` and friends) under the span
//! that made it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    Book, CatalogStore, Checkout, CheckoutError, CheckoutFilter, CheckoutStore, Patron,
    SnapshotPage, SnapshotStore, Sort, StoreError,
};
use prometheus::IntCounterVec;
use tracing::instrument::Instrumented;
use tracing::Instrument;

use crate::telemetry;

/// A store that counts its calls.
pub struct Counted<S: ?Sized> {
    inner: Arc<S>,
    store: &'static str,
    system: &'static str,
    calls: IntCounterVec,
}

impl<S: ?Sized> Counted<S> {
    /// Wraps `inner`, counting under `store` in `calls` (labels: store, call);
    /// `system` is its `db.system` (`mysql`, `mongodb`, `memory`).
    pub fn new(
        inner: Arc<S>,
        store: &'static str,
        system: &'static str,
        calls: IntCounterVec,
    ) -> Arc<Self> {
        Arc::new(Counted {
            inner,
            store,
            system,
            calls,
        })
    }

    /// Counts `call` and runs it in its span.
    fn run<'a, F: std::future::Future>(
        &'a self,
        call: &'static str,
        f: impl FnOnce(&'a S) -> F,
    ) -> Instrumented<F> {
        self.calls.with_label_values(&[self.store, call]).inc();
        let span = tracing::info_span!(
            target: telemetry::TARGET,
            "datasource call",
            otel.name = %format_args!("{} {}", self.system, call),
            otel.kind = "client",
            db.system = self.system,
            db.operation.name = call,
            db.collection.name = self.store,
        );
        f(&self.inner).instrument(span)
    }
}

#[async_trait]
impl CheckoutStore for Counted<dyn CheckoutStore> {
    async fn list(
        &self,
        filter: &CheckoutFilter,
        after: Option<DateTime<Utc>>,
        limit: Option<u32>,
    ) -> Result<Vec<Checkout>, StoreError> {
        self.run("list", |s| s.list(filter, after, limit)).await
    }
    async fn list_sorted(
        &self,
        filter: &CheckoutFilter,
        sort: &[Sort],
        limit: u32,
    ) -> Result<Vec<Checkout>, StoreError> {
        self.run("list_sorted", |s| s.list_sorted(filter, sort, limit))
            .await
    }
    async fn by_id(&self, id: i32) -> Result<Option<Checkout>, StoreError> {
        self.run("by_id", |s| s.by_id(id)).await
    }
    async fn by_assets(
        &self,
        upcs: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        self.run("by_assets", |s| s.by_assets(upcs, open_only))
            .await
    }
    async fn by_emails(
        &self,
        emails: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        self.run("by_emails", |s| s.by_emails(emails, open_only))
            .await
    }
    async fn check_out(
        &self,
        asset_upc: &str,
        user_email: &str,
    ) -> Result<Checkout, CheckoutError> {
        self.run("check_out", |s| s.check_out(asset_upc, user_email))
            .await
    }
    async fn check_in(&self, asset_upc: &str) -> Result<Checkout, CheckoutError> {
        self.run("check_in", |s| s.check_in(asset_upc)).await
    }
}

#[async_trait]
impl CatalogStore for Counted<dyn CatalogStore> {
    async fn patron_by_id(&self, id: &str) -> Result<Option<Patron>, StoreError> {
        self.run("patron_by_id", |s| s.patron_by_id(id)).await
    }
    async fn patron_by_email(&self, email: &str) -> Result<Option<Patron>, StoreError> {
        self.run("patron_by_email", |s| s.patron_by_email(email))
            .await
    }
    async fn patrons(
        &self,
        year_registered: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Vec<Patron>, StoreError> {
        self.run("patrons", |s| s.patrons(year_registered, limit))
            .await
    }
    async fn patrons_by_emails(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Patron>, StoreError> {
        self.run("patrons_by_emails", |s| s.patrons_by_emails(emails))
            .await
    }
    async fn book_by_id(&self, id: &str) -> Result<Option<Book>, StoreError> {
        self.run("book_by_id", |s| s.book_by_id(id)).await
    }
    async fn book_by_isbn(&self, isbn13: &str) -> Result<Option<Book>, StoreError> {
        self.run("book_by_isbn", |s| s.book_by_isbn(isbn13)).await
    }
    async fn books(&self) -> Result<Vec<Book>, StoreError> {
        self.run("books", |s| s.books()).await
    }
    async fn books_by_upcs(&self, upcs: &[String]) -> Result<HashMap<String, Book>, StoreError> {
        self.run("books_by_upcs", |s| s.books_by_upcs(upcs)).await
    }
}

#[async_trait]
impl SnapshotStore for Counted<dyn SnapshotStore> {
    async fn save(&self, query_id: &str, owner: &str, rows: &[Checkout]) -> Result<(), StoreError> {
        self.run("save", |s| s.save(query_id, owner, rows)).await
    }
    async fn page(
        &self,
        query_id: &str,
        owner: &str,
        after_id: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Option<SnapshotPage>, StoreError> {
        self.run("page", |s| s.page(query_id, owner, after_id, limit))
            .await
    }
}
