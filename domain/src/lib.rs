//! The library's domain: checkouts (MySQL), patrons and books (MongoDB), and the
//! checkout event that travels on Kafka. Connectors convert their rows into these
//! types; the gateway only ever sees these.
#![deny(missing_docs)]

mod catalog;
mod checkout;
mod store;
mod time;
pub mod trace;

pub use catalog::{Book, BookCondition, BookCopy, Patron};
pub use checkout::{Checkout, CheckoutEvent, EventKind};
pub use store::{
    distinct_keys, page_range, page_start, CatalogStore, CheckoutError, CheckoutFilter,
    CheckoutStore, Lease, Outbox, OutboxBacklog, OutboxEvent, SnapshotPage, SnapshotStore, Sort,
    SortField, StoreError, StoreErrorKind,
};
pub use time::{format_iso_millis, parse_iso};
pub use trace::TraceContext;
