//! The catalog connector: `patrons` and `books` in MongoDB, read as the legacy
//! documents are (snake_case fields, numbers stored as doubles or ints,
//! `postal_code` never returned). Only standard commands a real mongod 6+ accepts.
#![deny(missing_docs)]

#[cfg(feature = "admin")]
mod admin;
mod clients;
mod config;
mod convert;
mod error;
mod snapshots;
mod store;

pub use config::MongoConfig;
pub use error::Error;
pub use store::MongoCatalog;
