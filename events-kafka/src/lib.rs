//! Checkout events on Kafka (SPEC section 1): the value is the CheckOut row's JSON,
//! the key the asset UPC (per-asset order), the event id a header. One idempotent
//! producer per process; one consumer per process that fans events out to in-process
//! subscribers, de-duplicating by event id.
#![deny(missing_docs)]

mod config;
mod consumer;
mod producer;
mod relay;
mod replay;

pub use config::KafkaConfig;
pub use consumer::{Delivered, EventHub};
pub use producer::EventProducer;
pub use relay::OutboxRelay;
pub use replay::{Covered, Replay, ReplayError};

/// The header carrying the unique event id.
pub const EVENT_ID_HEADER: &str = "event-id";

/// What can fail talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be created (bad settings).
    #[error("invalid Kafka client configuration")]
    Config(#[source] rdkafka::error::KafkaError),
    /// The broker did not acknowledge in time, or refused.
    #[error("Kafka delivery failed")]
    Delivery(#[source] rdkafka::error::KafkaError),
    /// Metadata or offsets could not be read (broker down?).
    #[error("Kafka metadata unavailable")]
    Metadata(#[source] rdkafka::error::KafkaError),
    /// A blocking librdkafka call did not return in time.
    #[error("Kafka call timed out")]
    Timeout,
    /// The thread running a blocking librdkafka call failed (panicked or was
    /// cancelled at shutdown).
    #[error("the Kafka call's thread did not finish")]
    Task(#[source] tokio::task::JoinError),
}
