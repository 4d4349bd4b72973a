//! Every data-source call counted, per store and call: `datasource_calls_total` on
//! `/metrics`. Each call is one database round trip (the connectors batch inside
//! one), so operators see what a query costs, and the contract suite checks that a
//! page of N checkouts costs the same few round trips whatever N is.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    Book, CatalogStore, Checkout, CheckoutError, CheckoutFilter, CheckoutStore, Patron,
    SnapshotPage, SnapshotStore, Sort, StoreError,
};
use prometheus::IntCounterVec;

/// A store that counts its calls.
pub struct Counted<S: ?Sized> {
    inner: Arc<S>,
    store: &'static str,
    calls: IntCounterVec,
}

impl<S: ?Sized> Counted<S> {
    /// Wraps `inner`, counting under `store` in `calls` (labels: store, call).
    pub fn new(inner: Arc<S>, store: &'static str, calls: IntCounterVec) -> Arc<Self> {
        Arc::new(Counted {
            inner,
            store,
            calls,
        })
    }

    fn count(&self, call: &str) -> &S {
        self.calls.with_label_values(&[self.store, call]).inc();
        &self.inner
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
        self.count("list").list(filter, after, limit).await
    }
    async fn list_sorted(
        &self,
        filter: &CheckoutFilter,
        sort: &[Sort],
        limit: u32,
    ) -> Result<Vec<Checkout>, StoreError> {
        self.count("list_sorted")
            .list_sorted(filter, sort, limit)
            .await
    }
    async fn by_id(&self, id: i32) -> Result<Option<Checkout>, StoreError> {
        self.count("by_id").by_id(id).await
    }
    async fn by_assets(
        &self,
        upcs: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        self.count("by_assets").by_assets(upcs, open_only).await
    }
    async fn by_emails(
        &self,
        emails: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        self.count("by_emails").by_emails(emails, open_only).await
    }
    async fn check_out(
        &self,
        asset_upc: &str,
        user_email: &str,
    ) -> Result<Checkout, CheckoutError> {
        self.count("check_out")
            .check_out(asset_upc, user_email)
            .await
    }
    async fn check_in(&self, asset_upc: &str) -> Result<Checkout, CheckoutError> {
        self.count("check_in").check_in(asset_upc).await
    }
}

#[async_trait]
impl CatalogStore for Counted<dyn CatalogStore> {
    async fn patron_by_id(&self, id: &str) -> Result<Option<Patron>, StoreError> {
        self.count("patron_by_id").patron_by_id(id).await
    }
    async fn patron_by_email(&self, email: &str) -> Result<Option<Patron>, StoreError> {
        self.count("patron_by_email").patron_by_email(email).await
    }
    async fn patrons(
        &self,
        year_registered: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Vec<Patron>, StoreError> {
        self.count("patrons").patrons(year_registered, limit).await
    }
    async fn patrons_by_emails(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Patron>, StoreError> {
        self.count("patrons_by_emails")
            .patrons_by_emails(emails)
            .await
    }
    async fn book_by_id(&self, id: &str) -> Result<Option<Book>, StoreError> {
        self.count("book_by_id").book_by_id(id).await
    }
    async fn book_by_isbn(&self, isbn13: &str) -> Result<Option<Book>, StoreError> {
        self.count("book_by_isbn").book_by_isbn(isbn13).await
    }
    async fn books(&self) -> Result<Vec<Book>, StoreError> {
        self.count("books").books().await
    }
    async fn books_by_upcs(&self, upcs: &[String]) -> Result<HashMap<String, Book>, StoreError> {
        self.count("books_by_upcs").books_by_upcs(upcs).await
    }
}

#[async_trait]
impl SnapshotStore for Counted<dyn SnapshotStore> {
    async fn save(&self, query_id: &str, owner: &str, rows: &[Checkout]) -> Result<(), StoreError> {
        self.count("save").save(query_id, owner, rows).await
    }
    async fn page(
        &self,
        query_id: &str,
        owner: &str,
        after_id: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Option<SnapshotPage>, StoreError> {
        self.count("page")
            .page(query_id, owner, after_id, limit)
            .await
    }
}
