//! One consumer per process, fanning events out to subscribers.
//!
//! Partitions are assigned manually (no consumer group: restarts leave nothing
//! behind on the broker, and every instance sees every event). Fan-out uses a
//! bounded broadcast channel: a subscriber that falls behind gets `Lagged` and is
//! dropped by its owner, never slowing the others. Duplicates (at-least-once
//! delivery) are filtered by the event-id header, and a copy's events go out in
//! commit order across the two topics (`order`).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::EventKind;
use futures::FutureExt;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::{ClientContext, Statistics};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::delivered::{decode, in_publication_order, Delivered};
use crate::order::CopyOrder;
use crate::replay::CLOCK_SLACK;
use crate::sequence::WaveOrder;
use crate::{Error, KafkaConfig};

/// Subscribers this far behind are cut off (they get `Lagged`).
const FANOUT_CAPACITY: usize = 1024;
/// How many recent event ids are remembered for de-duplication.
const DEDUP_WINDOW: usize = 10_000;

/// The process's consumer and its fan-out.
pub struct EventHub {
    sender: broadcast::Sender<Arc<Delivered>>,
    stop: CancellationToken,
    tasks: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    consumer: Arc<Consumed>,
    config: KafkaConfig,
    status: Arc<Status>,
    /// Resumes reading the log at once (`replay_concurrency`).
    replays: Arc<tokio::sync::Semaphore>,
}

/// The live consumer, its lag kept from librdkafka's statistics.
type Consumed = StreamConsumer<LagContext>;

/// How often librdkafka reports the consumer's lag.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// Keeps the consumer's lag: the sum over its partitions of the high watermark
/// less its position (librdkafka's `consumer_lag`; -1, unknown, counts 0).
#[derive(Default)]
pub struct LagContext {
    lag: std::sync::atomic::AtomicI64,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let lag = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .map(|partition| partition.consumer_lag.max(0))
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for LagContext {}

/// What the hub knows of the broker, for readiness detail, metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubStatus {
    /// Partitions of `checkout` and `checkin` being consumed.
    pub partitions: usize,
    /// Why the last look at the broker failed; `None` once it answers.
    pub unreachable: Option<String>,
}

#[derive(Default)]
struct Status {
    partitions: AtomicUsize,
    unreachable: std::sync::Mutex<Option<String>>,
}

impl Status {
    /// Records the outcome of a look at the broker; logs only the changes.
    fn record(&self, outcome: Result<usize, &Error>) {
        let Ok(mut unreachable) = self.unreachable.lock() else {
            return;
        };
        match outcome {
            Ok(partitions) => {
                if unreachable.take().is_some() {
                    tracing::info!(partitions, "kafka: broker reachable, consuming");
                }
                self.partitions.store(partitions, Ordering::Relaxed);
            }
            Err(e) => {
                let why = error_chain(e);
                if unreachable.is_none() {
                    tracing::warn!(error = %why, "kafka: broker unreachable; live events resume when it answers, mutations go on (events wait in the outbox)");
                }
                *unreachable = Some(why);
            }
        }
    }
}

fn error_chain(e: &Error) -> String {
    match std::error::Error::source(e) {
        Some(inner) => format!("{e}: {inner}"),
        None => e.to_string(),
    }
}

impl EventHub {
    /// Starts consuming `checkout` and `checkin`. When the broker answers now,
    /// every partition is assigned at its current end, so every event published
    /// after this returns is delivered. When it does not, the hub starts anyway
    /// and keeps looking (every `metadata_refresh`); once the broker answers it
    /// reads from the hub's start time, so the events the relay publishes then
    /// (they waited in the outbox) are not missed. Partitions and topics that
    /// appear later are read from their beginning.
    pub async fn start(config: &KafkaConfig) -> Result<Self, Error> {
        let consumer: Consumed = config
            .assigned_consumer(format!("{}-{}", config.client_id, std::process::id()))
            .set("enable.partition.eof", "false")
            .set(
                "fetch.wait.max.ms",
                config.fetch_wait.as_millis().to_string(),
            )
            .set(
                "statistics.interval.ms",
                LAG_INTERVAL.as_millis().to_string(),
            )
            .create_with_context(LagContext::default())
            .map_err(Error::Config)?;
        let consumer = Arc::new(consumer);
        let status = Arc::new(Status::default());
        let mut assignment = Assignment {
            consumer: Arc::clone(&consumer),
            config: config.clone(),
            assigned: HashSet::new(),
            started_ms: chrono::Utc::now().timestamp_millis(),
            looked: false,
            contacted: false,
        };
        let first = assignment.refresh().await;
        status.record(first.as_ref().copied());

        let (sender, _) = broadcast::channel(FANOUT_CAPACITY);
        let stop = CancellationToken::new();
        let consuming = tokio::spawn(run(
            Arc::clone(&consumer),
            sender.clone(),
            stop.clone(),
            config.order_hold,
        ));
        let watching = tokio::spawn(watch(assignment, Arc::clone(&status), stop.clone()));
        Ok(EventHub {
            sender,
            stop,
            tasks: tokio::sync::Mutex::new(vec![consuming, watching]),
            consumer,
            config: config.clone(),
            status,
            replays: Arc::new(tokio::sync::Semaphore::new(
                config.replay_concurrency.max(1),
            )),
        })
    }

    /// A new subscriber: every event from now on, until it lags or the hub closes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Delivered>> {
        self.sender.subscribe()
    }

    /// What followed event `after` on `kinds`' topics (see `replay`). Subscribe
    /// first, then replay, then skip the live events the replay `covers`: nothing
    /// is missed and nothing is seen twice. At most `replay_concurrency` replays
    /// read at once; the others wait here (and stop waiting if dropped).
    pub async fn replay_after(
        &self,
        kinds: &[EventKind],
        after: &str,
    ) -> Result<crate::Replay, crate::ReplayError> {
        let permit = Arc::clone(&self.replays)
            .acquire_owned()
            .await
            .map_err(|_| crate::ReplayError::Abandoned)?;
        crate::replay::replay_after(&self.config, kinds, after, permit).await
    }

    /// Replays reading the log now.
    pub fn replays_running(&self) -> usize {
        self.config.replay_concurrency.max(1) - self.replays.available_permits()
    }

    /// Events published on the consumed partitions and not yet read here, as of
    /// librdkafka's last statistics (every `LAG_INTERVAL`; no broker call, so a
    /// scrape never waits).
    pub fn lag(&self) -> i64 {
        self.consumer.context().lag.load(Ordering::Relaxed)
    }

    /// Whether the broker answered the last look, and how much is consumed.
    pub fn status(&self) -> HubStatus {
        HubStatus {
            partitions: self.status.partitions.load(Ordering::Relaxed),
            unreachable: self.status.unreachable.lock().ok().and_then(|u| u.clone()),
        }
    }
}

/// The partitions being consumed, and where newly found ones start.
struct Assignment {
    consumer: Arc<Consumed>,
    config: KafkaConfig,
    assigned: HashSet<(EventKind, i32)>,
    /// When the hub started (ms since the epoch).
    started_ms: i64,
    /// Whether the first look (at start-up) has been made.
    looked: bool,
    /// Whether the broker has answered once.
    contacted: bool,
}

/// Where a newly found partition is read from.
#[derive(Clone, Copy)]
enum StartAt {
    /// Its current end: found at start-up.
    End,
    /// The first event stamped at or after this time: found later, because the
    /// broker was down at start-up.
    Time(i64),
    /// Its beginning: it appeared after the hub's first look.
    Beginning,
}

impl Assignment {
    /// Looks at the broker and assigns the partitions not yet assigned; returns
    /// how many are assigned in all.
    async fn refresh(&mut self) -> Result<usize, Error> {
        let from = if !self.looked {
            StartAt::End
        } else if !self.contacted {
            StartAt::Time(self.started_ms - CLOCK_SLACK.as_millis() as i64)
        } else {
            StartAt::Beginning
        };
        self.looked = true;
        let consumer = Arc::clone(&self.consumer);
        let timeout = self.config.call_timeout;
        let assigned = self.assigned.clone();
        let added =
            tokio::task::spawn_blocking(move || assign_new(&consumer, &assigned, from, timeout))
                .await
                .map_err(Error::Task)??;
        self.contacted = true;
        self.assigned.extend(added);
        Ok(self.assigned.len())
    }
}

/// Assigns the partitions of both topics that `assigned` lacks, reading from
/// `from`; returns them.
fn assign_new(
    consumer: &Consumed,
    assigned: &HashSet<(EventKind, i32)>,
    from: StartAt,
    timeout: Duration,
) -> Result<Vec<(EventKind, i32)>, Error> {
    let mut found = Vec::new();
    for kind in [EventKind::Checkout, EventKind::Checkin] {
        let meta = consumer
            .fetch_metadata(Some(kind.topic()), timeout)
            .map_err(Error::Metadata)?;
        for t in meta.topics() {
            // A topic that does not exist yet has an error and no partitions.
            for p in t.partitions() {
                if !assigned.contains(&(kind, p.id())) {
                    found.push((kind, p.id()));
                }
            }
        }
    }
    if found.is_empty() {
        return Ok(found);
    }
    let mut list = TopicPartitionList::new();
    for &(kind, partition) in &found {
        let offset = match from {
            StartAt::End => {
                let (_, high) = consumer
                    .fetch_watermarks(kind.topic(), partition, timeout)
                    .map_err(Error::Metadata)?;
                Offset::Offset(high)
            }
            StartAt::Time(ms) => Offset::Offset(ms),
            StartAt::Beginning => Offset::Beginning,
        };
        list.add_partition_offset(kind.topic(), partition, offset)
            .map_err(Error::Metadata)?;
    }
    if let StartAt::Time(_) = from {
        // Each partition's first offset at or after the time; its end when none.
        list = consumer
            .offsets_for_times(list, timeout)
            .map_err(Error::Metadata)?;
    }
    consumer
        .incremental_assign(&list)
        .map_err(Error::Metadata)?;
    tracing::info!(partitions = ?found, "kafka: consuming new partitions");
    Ok(found)
}

/// Looks at the broker every `metadata_refresh` until the hub stops.
async fn watch(mut assignment: Assignment, status: Arc<Status>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(assignment.config.metadata_refresh) => {}
        }
        // A look can block on an unreachable broker: a stop does not wait for it.
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = assignment.refresh() => outcome,
        };
        status.record(outcome.as_ref().copied());
    }
}

async fn run(
    consumer: Arc<Consumed>,
    sender: broadcast::Sender<Arc<Delivered>>,
    stop: CancellationToken,
    hold: Duration,
) {
    let mut seen: VecDeque<String> = VecDeque::new();
    let mut seen_set: HashSet<String> = HashSet::new();
    let mut order = Ordered {
        waves: WaveOrder::new(hold),
        copies: CopyOrder::new(hold),
        sender,
    };
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            () = sleep_until(order.next_due()) => {
                order.expired(Instant::now());
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
            order.admit(delivered, Instant::now());
        }
    }
}

/// The two ordering stages between the consumer and the subscribers.
struct Ordered {
    waves: WaveOrder,
    copies: CopyOrder,
    sender: broadcast::Sender<Arc<Delivered>>,
}

impl Ordered {
    fn admit(&mut self, d: Delivered, now: Instant) {
        for d in self.waves.admit(d, now) {
            self.pass(d, now);
        }
    }

    fn expired(&mut self, now: Instant) {
        for d in self.waves.expired(now) {
            self.pass(d, now);
        }
        for d in self.copies.expired(now) {
            self.send(d);
        }
    }

    fn pass(&mut self, d: Delivered, now: Instant) {
        for d in self.copies.admit(d, now) {
            self.send(d);
        }
    }

    fn send(&self, d: Delivered) {
        // No subscriber is fine: live events are not stored here.
        let _ = self.sender.send(Arc::new(d));
    }

    fn next_due(&self) -> Option<Instant> {
        match (self.waves.next_due(), self.copies.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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
        for task in self.tasks.lock().await.drain(..) {
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
