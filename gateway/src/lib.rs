//! The Central Library GraphQL gateway.
#![deny(missing_docs)]

pub mod config;
pub mod counted;
#[cfg(feature = "dev")]
pub mod embedded;
pub mod events;
pub mod graphql;
pub mod http;
pub mod pipeline;
pub mod startup;
pub mod telemetry;
