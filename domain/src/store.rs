//! The store traits the gateway codes against. The MySQL and MongoDB connectors
//! implement them, and so do the gateway's embedded in-process stores, so the same
//! resolvers serve both.

use std::collections::{HashMap, HashSet};

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

    /// `checkoutFeed`'s snapshot: the filtered rows in `sort` order (id breaks
    /// ties), at most `limit` of them.
    async fn list_sorted(
        &self,
        filter: &CheckoutFilter,
        sort: &[Sort],
        limit: u32,
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

/// One page of a `checkoutFeed` snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPage {
    /// The entries of this page.
    pub entries: Vec<Checkout>,
    /// Index of the first entry in the whole snapshot (0-based).
    pub start: usize,
    /// Entries in the whole snapshot.
    pub total: usize,
    /// How long ago the snapshot was taken.
    pub age: std::time::Duration,
}

/// `checkoutFeed` snapshots (`querycache` in MongoDB for real deployments): the full
/// filtered, sorted result stored once, then paged. Each belongs to one owner.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Stores (or replaces) the snapshot `query_id` of `owner`.
    async fn save(&self, query_id: &str, owner: &str, rows: &[Checkout]) -> Result<(), StoreError>;

    /// The page after the entry with id `after_id` (from the start when `None`), at
    /// most `limit` entries (all when `None`). `None` when the snapshot does not
    /// exist, expired (or lost its entries), or belongs to someone else; `Some`
    /// with `start == total` when `after_id` is not in it.
    async fn page(
        &self,
        query_id: &str,
        owner: &str,
        after_id: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Option<SnapshotPage>, StoreError>;
}

/// The keys of one batched lookup (`patrons_by_emails`, `books_by_upcs`, ...):
/// distinct, in first-seen order.
pub fn distinct_keys<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen = HashSet::new();
    keys.filter(|k| seen.insert(*k)).cloned().collect()
}

/// The entries a page holds: from `start`, at most `limit` (all when `None`), within
/// `total`.
pub fn page_range(start: usize, limit: Option<u32>, total: usize) -> std::ops::Range<usize> {
    let start = start.min(total);
    let end = limit.map_or(total, |n| start.saturating_add(n as usize).min(total));
    start..end
}

/// Where a page starts: just after `after_id`, or at 0; `ids.len()` if not found.
pub fn page_start(ids: impl IntoIterator<Item = i32>, after_id: Option<i32>) -> usize {
    let Some(after) = after_id else { return 0 };
    let mut count = 0;
    for (i, id) in ids.into_iter().enumerate() {
        if id == after {
            return i + 1;
        }
        count = i + 1;
    }
    count
}

/// One event waiting in the outbox to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Position in the outbox; publication follows it.
    pub seq: i64,
    /// Unique event id, sent as a Kafka header for de-duplication.
    pub event_id: String,
    /// `checkout` or `checkin`.
    pub topic: String,
    /// The Kafka key: the asset UPC.
    pub key: String,
    /// The JSON value (SPEC section 1).
    pub payload: String,
    /// The trace context of the mutation that wrote it, sent as Kafka headers.
    pub trace: Option<crate::TraceContext>,
}

/// What waits in the outbox, for the relay's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxBacklog {
    /// Events not yet marked sent.
    pub events: u64,
    /// When the oldest of them was written; `None` when nothing waits.
    pub oldest: Option<DateTime<Utc>>,
}

/// Who holds the relay lease, as `Outbox::hold_lease` found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This instance held it already, continuously since the last call.
    Kept,
    /// This instance has just taken it (first time, or after losing it): what it
    /// publishes continues after whatever the previous holder published.
    Taken,
    /// Another instance holds it: stand by and try again later.
    Elsewhere,
}

impl Lease {
    /// Whether this instance holds the lease.
    pub fn is_ours(self) -> bool {
        self != Lease::Elsewhere
    }
}

/// The transactional outbox, as the relay sees it.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// The oldest unsent events, at most `limit`, in order.
    async fn unsent(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError>;
    /// Marks events sent once the broker acknowledged them.
    async fn mark_sent(&self, seqs: &[i64]) -> Result<(), StoreError>;
    /// Takes the relay lease, or confirms it is still held: only its holder relays,
    /// so several instances never publish one row twice and per-asset order holds.
    async fn hold_lease(&self) -> Result<Lease, StoreError>;
    /// Gives the lease up (on close), so a standby instance takes over at once.
    async fn release_lease(&self);
    /// Deletes at most `limit` events marked sent before `sent_before`, oldest
    /// first, and says how many went. Unsent events are never deleted.
    async fn purge_sent(&self, sent_before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
    /// How many events wait to be published, and since when.
    async fn backlog(&self) -> Result<OutboxBacklog, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_keep_first_seen_order() {
        let keys: Vec<String> = ["b", "a", "b", "c", "a"].map(String::from).into();
        assert_eq!(distinct_keys(keys.iter()), ["b", "a", "c"]);
    }
}
