//! Settings: `KAFKA_BROKERS` and a few bounds.

use std::time::Duration;

/// Where the brokers are and how long calls may take.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `KAFKA_BROKERS`, comma-separated `host:port`.
    pub brokers: String,
    /// Client id, visible in broker logs.
    pub client_id: String,
    /// How long a publish may wait for the broker's acknowledgement (30 s).
    pub delivery_timeout: Duration,
    /// Bound on metadata calls and on close (5 s).
    pub call_timeout: Duration,
}

impl KafkaConfig {
    /// Defaults for `brokers`.
    pub fn new(brokers: &str) -> Self {
        KafkaConfig {
            brokers: brokers.to_string(),
            client_id: "central-library-gateway".into(),
            delivery_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(5),
        }
    }
}

impl KafkaConfig {
    /// A consumer's settings for reading by manual assignment, never committing:
    /// librdkafka wants a group id even then, but with `assign()` and no commits no
    /// group ever forms on the broker, so nothing is left behind. Shared by the
    /// live hub and the short-lived log readers (resume, the relay's clock).
    pub(crate) fn assigned_consumer(&self, group_id: String) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        c
    }
}
