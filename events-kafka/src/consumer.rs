//! One consumer per process, fanning events out to subscribers.
//!
//! Partitions are assigned manually (no consumer group: restarts leave nothing
//! behind on the broker, and every instance sees every event). Fan-out uses a
//! bounded broadcast channel: a subscriber that falls behind gets `Lagged` and is
//! dropped by its owner, never slowing the others. Duplicates (at-least-once
//! delivery) are filtered by the event-id header.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use domain::{CheckoutEvent, EventKind};
use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::{Error, KafkaConfig, EVENT_ID_HEADER};

/// One event as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The unique id from the header (absent from foreign producers).
    pub event_id: Option<String>,
    /// Which topic.
    pub kind: EventKind,
    /// The value.
    pub event: CheckoutEvent,
    /// Where it sits in the log.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The message timestamp (publication time, strictly increasing per relay), in
    /// milliseconds since the epoch; 0 when the broker gave none.
    pub timestamp_ms: i64,
}

impl Delivered {
    /// Publication order: timestamp, then topic, partition and offset.
    pub fn position(&self) -> (i64, &'static str, i32, i64) {
        (
            self.timestamp_ms,
            self.kind.topic(),
            self.partition,
            self.offset,
        )
    }
}

/// A message of `checkout` or `checkin` as an event; `None` (logged) when it is
/// from another topic or its value is unreadable.
pub(crate) fn decode(message: &impl Message) -> Option<Delivered> {
    let kind = EventKind::from_topic(message.topic())?;
    let Some(event) = message
        .payload()
        .and_then(|p| serde_json::from_slice::<CheckoutEvent>(p).ok())
    else {
        tracing::warn!(
            topic = message.topic(),
            offset = message.offset(),
            "skipping an unreadable event"
        );
        return None;
    };
    let event_id = message.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == EVENT_ID_HEADER)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
    });
    Some(Delivered {
        event_id,
        kind,
        event,
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
    })
}

/// Subscribers this far behind are cut off (they get `Lagged`).
const FANOUT_CAPACITY: usize = 1024;
/// How many recent event ids are remembered for de-duplication.
const DEDUP_WINDOW: usize = 10_000;

/// The process's consumer and its fan-out.
pub struct EventHub {
    sender: broadcast::Sender<Arc<Delivered>>,
    stop: CancellationToken,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    consumer: Arc<StreamConsumer>,
    config: KafkaConfig,
}

impl EventHub {
    /// Assigns every partition of `checkout` and `checkin` at its current end, then
    /// starts consuming. Events published after this returns are all delivered.
    pub async fn start(config: &KafkaConfig) -> Result<Self, Error> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            // librdkafka wants a group id even for manual assignment. With assign()
            // and no commits, no group ever forms on the broker: nothing is left
            // behind when the process restarts.
            .set(
                "group.id",
                format!("{}-{}", config.client_id, std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(Error::Config)?;
        let consumer = Arc::new(consumer);
        let assign = {
            let consumer = Arc::clone(&consumer);
            let timeout = config.call_timeout;
            tokio::task::spawn_blocking(move || -> Result<(), Error> {
                let mut list = TopicPartitionList::new();
                for kind in [EventKind::Checkout, EventKind::Checkin] {
                    let topic = kind.topic();
                    let meta = consumer
                        .fetch_metadata(Some(topic), timeout)
                        .map_err(Error::Metadata)?;
                    for t in meta.topics() {
                        for p in t.partitions() {
                            let (_, high) = consumer
                                .fetch_watermarks(topic, p.id(), timeout)
                                .map_err(Error::Metadata)?;
                            list.add_partition_offset(topic, p.id(), Offset::Offset(high))
                                .map_err(Error::Metadata)?;
                        }
                    }
                }
                consumer.assign(&list).map_err(Error::Metadata)
            })
        };
        assign.await.map_err(Error::Task)??;

        let (sender, _) = broadcast::channel(FANOUT_CAPACITY);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(Arc::clone(&consumer), sender.clone(), stop.clone()));
        Ok(EventHub {
            sender,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
            consumer,
            config: config.clone(),
        })
    }

    /// A new subscriber: every event from now on, until it lags or the hub closes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivered>> {
        self.sender.subscribe()
    }

    /// What followed event `after` on `kinds`' topics (see `replay`). Subscribe
    /// first, then replay, then skip the live events the replay `covers`: nothing
    /// is missed and nothing is seen twice.
    pub async fn replay_after(
        &self,
        kinds: &[EventKind],
        after: &str,
    ) -> Result<crate::Replay, crate::ReplayError> {
        crate::replay::replay_after(&self.config, kinds, after).await
    }
}

async fn run(
    consumer: Arc<StreamConsumer>,
    sender: broadcast::Sender<Arc<Delivered>>,
    stop: CancellationToken,
) {
    let mut seen: VecDeque<String> = VecDeque::new();
    let mut seen_set: HashSet<String> = HashSet::new();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            m = consumer.recv() => m,
        };
        // Everything else already received goes out with it, in publication order:
        // librdkafka hands a fetch over partition by partition, and a subscriber
        // that resumes after an event must have seen every event published before
        // it (see `replay`). `recv` is cancellation safe: polling it once loses nothing.
        let mut batch = Vec::new();
        let mut next = Some(message);
        while let Some(message) = next.take() {
            match message {
                Ok(m) => batch.extend(decode(&m)),
                Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
            }
            next = consumer.recv().now_or_never();
        }
        for delivered in in_publication_order(batch) {
            if let Some(id) = &delivered.event_id {
                if !seen_set.insert(id.clone()) {
                    continue; // a redelivery
                }
                seen.push_back(id.clone());
                if seen.len() > DEDUP_WINDOW {
                    if let Some(old) = seen.pop_front() {
                        seen_set.remove(&old);
                    }
                }
            }
            // No subscriber is fine: live events are not stored here.
            let _ = sender.send(Arc::new(delivered));
        }
    }
}

/// Merges a batch by publication order (`Delivered::position`) across partitions
/// while keeping each partition's own order, whatever its timestamps say.
pub(crate) fn in_publication_order(batch: Vec<Delivered>) -> Vec<Delivered> {
    let mut queues: Vec<VecDeque<Delivered>> = Vec::new();
    for d in batch {
        match queues.iter_mut().find(|q| {
            q.front()
                .is_some_and(|f| f.kind == d.kind && f.partition == d.partition)
        }) {
            Some(q) => q.push_back(d),
            None => queues.push(VecDeque::from([d])),
        }
    }
    let mut out = Vec::new();
    while let Some(q) = queues
        .iter_mut()
        .filter(|q| !q.is_empty())
        .min_by_key(|q| q.front().map(Delivered::position))
    {
        out.extend(q.pop_front());
    }
    out
}

#[async_trait]
impl shutdown::Closeable for EventHub {
    fn name(&self) -> &str {
        "kafka-consumer"
    }

    /// Stops the loop, then drops the consumer on a blocking thread, bounded:
    /// librdkafka's close can block on an unreachable broker.
    async fn close(&self) -> Result<(), shutdown::BoxError> {
        self.stop.cancel();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
        let consumer = Arc::clone(&self.consumer);
        let closed = tokio::time::timeout(
            self.config.call_timeout,
            tokio::task::spawn_blocking(move || consumer.unassign()),
        )
        .await;
        match closed {
            Ok(_) => Ok(()),
            Err(_) => Err(Box::new(Error::Timeout)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event of copy 9000000001 at a given place and time (shared with `replay`).
    pub(crate) fn delivered(
        id: &str,
        kind: EventKind,
        partition: i32,
        offset: i64,
        ts: i64,
    ) -> Delivered {
        Delivered {
            event_id: Some(id.into()),
            kind,
            event: CheckoutEvent {
                id: 1,
                user_email: "a@b.org".into(),
                asset_upc: "9000000001".into(),
                checkout_date: "2019-01-01T10:00:00.000Z".into(),
                checkin_date: None,
            },
            partition,
            offset,
            timestamp_ms: ts,
        }
    }

    fn at(kind: EventKind, partition: i32, offset: i64, ts: i64) -> Delivered {
        delivered(
            &format!("{kind:?}-{partition}-{offset}"),
            kind,
            partition,
            offset,
            ts,
        )
    }

    #[test]
    fn a_batch_goes_out_in_publication_order_and_each_partition_in_its_own() {
        use EventKind::{Checkin, Checkout};
        // As a fetch hands them over: partition by partition.
        let batch = vec![
            at(Checkout, 1, 7, 30),
            at(Checkout, 1, 8, 10), // a foreign producer's clock: stays after offset 7
            at(Checkout, 0, 3, 20),
            at(Checkin, 1, 5, 25),
        ];
        let order: Vec<_> = in_publication_order(batch)
            .into_iter()
            .map(|d| (d.kind, d.partition, d.offset))
            .collect();
        assert_eq!(
            order,
            [
                (Checkout, 0, 3),
                (Checkin, 1, 5),
                (Checkout, 1, 7),
                (Checkout, 1, 8)
            ]
        );
    }
}
