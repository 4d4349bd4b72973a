//! This crate's error.

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
    /// The producer was dropped before the broker acknowledged an event.
    #[error("the Kafka producer ended before the broker acknowledged")]
    ProducerGone,
    /// A blocking librdkafka call did not return in time.
    #[error("Kafka call timed out")]
    Timeout,
    /// The thread running a blocking librdkafka call failed (panicked or was
    /// cancelled at shutdown).
    #[error("the Kafka call's thread did not finish")]
    Task(#[source] tokio::task::JoinError),
}
