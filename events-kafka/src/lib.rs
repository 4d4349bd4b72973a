//! Checkout events on Kafka (SPEC section 1): the value is the CheckOut row's JSON,
//! the key the asset UPC (per-asset order), the event id a header. One idempotent
//! producer per process; one consumer per process that fans events out to in-process
//! subscribers, de-duplicating by event id.
#![deny(missing_docs)]

mod config;
mod consumer;
mod delivered;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod order;
mod producer;
mod relay;
mod replay;
mod sequence;

pub use config::KafkaConfig;
pub use consumer::{EventHub, HubStatus};
pub use delivered::{Delivered, Wave};
pub use error::Error;
pub use producer::{EventProducer, Pending};
pub use relay::{OutboxRelay, RelayConfig, RelayStats};
pub use replay::{Covered, Replay, ReplayError};

/// The header carrying the unique event id.
pub const EVENT_ID_HEADER: &str = "event-id";
/// The header naming the sequence of waves the message belongs to (see `Wave`).
pub const WAVE_SEQUENCE_HEADER: &str = "wave-sequence";
/// The header carrying the number of events in the message's wave (see `Wave`).
pub const WAVE_SIZE_HEADER: &str = "wave-size";
/// The header carrying the timestamp of the wave before the message's own.
pub const PREVIOUS_WAVE_HEADER: &str = "previous-wave";
