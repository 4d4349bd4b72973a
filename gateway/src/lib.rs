//! The Central Library GraphQL gateway. Its binaries and tests use only what is
//! re-exported here; every module is private to the crate.
#![deny(missing_docs)]

mod config;
mod counted;
#[cfg(feature = "dev")]
mod embedded;
mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod graphql;
mod http;
mod pipeline;
mod startup;
pub mod telemetry;

pub use config::{ConfigError, Services, Settings, KNOWN_NAMES};
pub use graphql::sdl;
pub use startup::Application;
