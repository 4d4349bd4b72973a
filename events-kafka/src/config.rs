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
    /// How often the live consumer looks for the broker (while it is down) and
    /// for new partitions and topics (5 s).
    pub metadata_refresh: Duration,
    /// The longest the broker may hold the live consumer's fetch when there is
    /// nothing new (`fetch.wait.max.ms`; 10 ms). librdkafka's default (500 ms)
    /// makes an event wait for the fetch in flight: the broker answers a fetch
    /// when it expires, not when a message arrives. The cost is one small
    /// request per broker this often while idle.
    pub fetch_wait: Duration,
    /// Resumes (`after`) reading the log at once; more wait their turn (4).
    pub replay_concurrency: usize,
    /// The longest the live consumer holds an event for the rest of its wave, the
    /// wave before, or its copy's previous event (500 ms), and a resume waits for
    /// the rest of a wave it read in part: only when a relay died mid-wave or
    /// events were lost, as waves normally arrive within milliseconds.
    pub order_hold: Duration,
    /// Messages one resume may read before it is refused (10,000): the events
    /// are held in memory until the subscriber has them.
    pub replay_max_events: usize,
}

impl KafkaConfig {
    /// Defaults for `brokers`.
    pub fn new(brokers: &str) -> Self {
        KafkaConfig {
            brokers: brokers.to_string(),
            client_id: "central-library-gateway".into(),
            delivery_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(5),
            metadata_refresh: Duration::from_secs(5),
            fetch_wait: Duration::from_millis(10),
            order_hold: Duration::from_millis(500),
            replay_concurrency: 4,
            replay_max_events: 10_000,
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
