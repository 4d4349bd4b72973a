//! The store traits the gateway codes against. The MySQL and MongoDB connectors
//! implement them, and so do the gateway's embedded in-process stores, so the same
//! resolvers serve both.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{Book, Checkout, Patron};

/// Any error a connector reports: what went wrong at this layer, the cause in
/// `source()`. Clients only ever see a code; the chain goes to the log.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct StoreError {
    kind: StoreErrorKind,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The questions a caller may ask of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreErrorKind {
    /// The server could not be reached or the pool had no connection in time.
    #[error("data source unavailable")]
    Unavailable,
    /// The store is closing or closed.
    #[error("data source closed")]
    Closed,
    /// A query failed for another reason.
    #[error("data source query failed")]
    Query,
}

impl StoreError {
    /// An error of `kind` caused by `source`.
    pub fn new(
        kind: StoreErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        StoreError {
            kind,
            source: Some(source.into()),
        }
    }

    /// An error of `kind` with no underlying cause.
    pub fn bare(kind: StoreErrorKind) -> Self {
        StoreError { kind, source: None }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether the server is down or unreachable (a retry later may work).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Unavailable | StoreErrorKind::Closed
        )
    }
}

/// Why a checkout or a checkin was refused; each maps to a GraphQL error code.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// `ASSET_DUPLICATE_CHECKOUT_ATTEMPTED`
    #[error("This asset appears to already be checked out, please check it back in first")]
    AlreadyCheckedOut,
    /// `ASSET_NO_CHECKOUT_FOUND`
    #[error("This asset does not appear be checked out")]
    NoOpenCheckout,
    /// `ASSET_NOT_FOUND`
    #[error("No copy has this UPC")]
    AssetNotFound,
    /// `PATRON_NOT_FOUND`
    #[error("No patron has this email")]
    PatronNotFound,
    /// `ASSET_CHECKOUT_FAILURE`
    #[error("The checkout could not be recorded")]
    Store(#[from] StoreError),
}

/// The filters of `checkouts` and `checkoutFeed`, ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CheckoutFilter {
    /// Exact email.
    pub user_email: Option<String>,
    /// Exact UPC.
    pub asset_upc: Option<String>,
}

/// A sortable column of `checkoutFeed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    /// `user_email`
    UserEmail,
    /// `asset_upc`
    AssetUpc,
    /// `checkin_date`
    CheckinDate,
    /// `checkout_date`
    CheckoutDate,
}

/// One sort key; `descending` false is ASC (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    /// Which column.
    pub field: SortField,
    /// DESC when true.
    pub descending: bool,
}

/// Checkouts, in MySQL for real deployments.
#[async_trait]
pub trait CheckoutStore: Send + Sync {
    /// `checkouts`: filtered, `checkout_date` strictly after `after`, ascending by
    /// date (then id), at most `limit` rows.
    async fn list(
        &self,
        filter: &CheckoutFilter,
        after: Option<DateTime<Utc>>,
        limit: Option<u32>,
    ) -> Result<Vec<Checkout>, StoreError>;

    /// `checkoutFeed`'s snapshot: every filtered row in `sort` order (id breaks ties).
    async fn list_sorted(
        &self,
        filter: &CheckoutFilter,
        sort: &[Sort],
    ) -> Result<Vec<Checkout>, StoreError>;

    /// One row by id.
    async fn by_id(&self, id: i32) -> Result<Option<Checkout>, StoreError>;

    /// Checkouts of many copies in one round trip, grouped by UPC, date ascending.
    async fn by_assets(
        &self,
        upcs: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError>;

    /// Checkouts of many patrons in one round trip, grouped by email, date ascending.
    async fn by_emails(
        &self,
        emails: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError>;

    /// Records a checkout and its event atomically; at most one open checkout per copy.
    async fn check_out(&self, asset_upc: &str, user_email: &str)
        -> Result<Checkout, CheckoutError>;

    /// Closes the open checkout of a copy and records its event atomically.
    async fn check_in(&self, asset_upc: &str) -> Result<Checkout, CheckoutError>;
}

/// Patrons and books, in MongoDB for real deployments.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// A patron by ObjectId (hex); an invalid id is simply not found.
    async fn patron_by_id(&self, id: &str) -> Result<Option<Patron>, StoreError>;
    /// A patron by email.
    async fn patron_by_email(&self, email: &str) -> Result<Option<Patron>, StoreError>;
    /// `patrons(yearRegistered, limit)`.
    async fn patrons(
        &self,
        year_registered: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Vec<Patron>, StoreError>;
    /// Many patrons by email in one round trip, keyed by email.
    async fn patrons_by_emails(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Patron>, StoreError>;
    /// A book by ObjectId (hex).
    async fn book_by_id(&self, id: &str) -> Result<Option<Book>, StoreError>;
    /// A book by ISBN-13.
    async fn book_by_isbn(&self, isbn13: &str) -> Result<Option<Book>, StoreError>;
    /// Every book.
    async fn books(&self) -> Result<Vec<Book>, StoreError>;
    /// The books holding many copies in one round trip, keyed by copy UPC.
    async fn books_by_upcs(&self, upcs: &[String]) -> Result<HashMap<String, Book>, StoreError>;
}
