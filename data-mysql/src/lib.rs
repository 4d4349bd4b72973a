//! The checkouts connector: the legacy MySQL `checkouts` table, unchanged, plus the
//! objects our migrations add (the one-open-checkout guard, indexes, the event
//! outbox). Pooled with bb8 through diesel-async; every query is built by diesel,
//! so every value is a bound parameter.
#![deny(missing_docs)]

#[cfg(feature = "admin")]
mod admin;
mod config;
mod error;
mod lease;
mod migrate;
mod outbox;
mod pool;
mod preflight;
mod schema;
#[cfg(feature = "admin")]
mod seed;
mod store;

pub use config::{MysqlConfig, SslMode};
pub use error::{Error, OpenTwice};
pub use store::MysqlCheckouts;
