//! One consumer per process, fanning events out to subscribers.
//!
//! Partitions are assigned manually (no consumer group: restarts leave nothing
//! behind on the broker, and every instance sees every event). Fan-out uses a
//! bounded broadcast channel: a subscriber that falls behind gets `Lagged` and is
//! dropped by its owner, never slowing the others. Duplicates (at-least-once
//! delivery) are filtered by the event-id header, and a copy's events go out in
//! commit order across the two topics (`order`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::EventKind;
use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::delivered::{decode, in_publication_order, Delivered};
use crate::order::CopyOrder;
use crate::{Error, KafkaConfig};

/// Subscribers this far behind are cut off (they get `Lagged`).
const FANOUT_CAPACITY: usize = 1024;
/// How many recent event ids are remembered for de-duplication.
const DEDUP_WINDOW: usize = 10_000;
/// The longest an event waits for its copy's previous event (see `order`).
const MAX_HOLD: Duration = Duration::from_millis(500);

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
        let consumer: StreamConsumer = config
            .assigned_consumer(format!("{}-{}", config.client_id, std::process::id()))
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
    let mut order = CopyOrder::new(MAX_HOLD);
    loop {
        let due = order.next_due();
        let message = tokio::select! {
            () = stop.cancelled() => return,
            () = sleep_until(due) => {
                for d in order.expired(Instant::now()) {
                    let _ = sender.send(Arc::new(d));
                }
                continue;
            }
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
            for d in order.admit(delivered, Instant::now()) {
                let _ = sender.send(Arc::new(d));
            }
        }
    }
}

/// Sleeps until `due`; forever when there is nothing due.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
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
