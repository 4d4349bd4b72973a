//! Resuming after an event (SPEC section 3): a client names the last event it saw;
//! the broker's retained log is read from just before that event's creation time,
//! the event is found by its id, and every later one is returned in publication
//! order. A short-lived consumer of its own does the reading (per resume, not per
//! subscriber), so the process's live consumer never seeks.
//!
//! Publication order is the message timestamp, which the relay makes strictly
//! increasing (one relay holds the lease), then topic, partition and offset.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::EventKind;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::delivered::{decode, in_publication_order, Delivered};
use crate::{Error, KafkaConfig};

/// How far before the event's creation time the search starts: the relay publishes
/// after the commit, and instance clocks differ a little.
pub(crate) const CLOCK_SLACK: Duration = Duration::from_secs(5);
/// Resume points older than this are refused without reading: a client away for a
/// day re-fetches with a query, and a forged old id cannot make us scan the log.
const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a resume point could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Not an event id this system issues (they are UUIDv7, which carry their time).
    #[error("{0:?} is not an event id")]
    NotAnEventId(String),
    /// Older than a resume may reach back (`MAX_AGE`), or dated in the future:
    /// refused without reading the log.
    #[error("event {0:?} is too old to resume from (or dated in the future)")]
    OutOfRange(String),
    /// Not in the retained log of the subscribed topics.
    #[error("event {0:?} is not in the retained log of the subscribed topics")]
    NotFound(String),
    /// Its client left before it finished.
    #[error("the subscriber left during its replay")]
    Abandoned,
    /// More than `replay_max_events` would have to be read.
    #[error("more than {0} events to read to resume; re-fetch with a query instead")]
    TooLong(usize),
    /// The broker could not be read.
    #[error("the event log cannot be read to resume")]
    Kafka(#[source] Error),
}

/// What a resuming subscriber gets before going live.
#[derive(Debug, Default)]
pub struct Replay {
    /// The events after the resume point, in publication order, each once.
    pub events: Vec<Arc<Delivered>>,
    /// How far the replay read: the live events it already accounts for.
    pub covered: Covered,
}

/// Per (topic, partition), the offset a replay read up to (exclusive): a live event
/// below it was either replayed or precedes the resume point. Empty: covers nothing.
#[derive(Debug, Default, Clone)]
pub struct Covered(HashMap<(EventKind, i32), i64>);

impl Covered {
    /// Whether a live event is already accounted for by the replay.
    pub fn covers(&self, event: &Delivered) -> bool {
        self.0
            .get(&(event.kind, event.partition))
            .is_some_and(|end| event.offset < *end)
    }
}

/// Reads what followed `after` on `kinds`' topics, up to their current ends, on a
/// blocking thread that stops reading when this future is dropped (the client
/// left), and at `replay_max_events` messages. The thread holds `permit` (one of
/// `replay_concurrency`) until it has stopped reading.
pub async fn replay_after(
    config: &KafkaConfig,
    kinds: &[EventKind],
    after: &str,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Replay, ReplayError> {
    let created_ms = created_at_ms(after)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let slack = CLOCK_SLACK.as_millis() as i64;
    if created_ms < now_ms - MAX_AGE.as_millis() as i64 || created_ms > now_ms + slack {
        return Err(ReplayError::OutOfRange(after.to_string()));
    }
    let since_ms = created_ms - slack;
    let config = config.clone();
    let kinds = kinds.to_vec();
    let after = after.to_string();
    let abandoned = Abandoned::default();
    let flag = Arc::clone(&abandoned.0);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read_log(&config, &kinds, &after, since_ms, &flag)
    })
    .await
    .map_err(|e| ReplayError::Kafka(Error::Task(e)))?
}

/// Set when the future waiting for a replay is dropped: the reading thread stops.
#[derive(Default)]
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A short-lived consumer that reads by assignment.
fn log_reader(config: &KafkaConfig) -> Result<BaseConsumer, Error> {
    config
        .assigned_consumer(format!(
            "{}-reader-{}",
            config.client_id,
            uuid::Uuid::now_v7()
        ))
        .create()
        .map_err(Error::Config)
}

/// Every partition of `kinds`' topics with its low and high watermarks.
fn partitions(
    consumer: &BaseConsumer,
    kinds: &[EventKind],
    timeout: Duration,
) -> Result<Vec<(EventKind, i32, i64, i64)>, Error> {
    let mut all = Vec::new();
    for &kind in kinds {
        let meta = consumer
            .fetch_metadata(Some(kind.topic()), timeout)
            .map_err(Error::Metadata)?;
        for t in meta.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(kind.topic(), p.id(), timeout)
                    .map_err(Error::Metadata)?;
                all.push((kind, p.id(), low, high));
            }
        }
    }
    Ok(all)
}

/// The newest message timestamp on `kinds`' topics (the last message of each
/// partition), `None` when they are empty: where a new relay lease holder continues
/// its clock, so publication order survives a handover whatever the hosts' clocks.
pub(crate) async fn latest_timestamp(
    config: &KafkaConfig,
    kinds: &[EventKind],
) -> Result<Option<i64>, Error> {
    let config = config.clone();
    let kinds = kinds.to_vec();
    tokio::task::spawn_blocking(move || read_latest_timestamp(&config, &kinds))
        .await
        .map_err(Error::Task)?
}

fn read_latest_timestamp(config: &KafkaConfig, kinds: &[EventKind]) -> Result<Option<i64>, Error> {
    let timeout = config.call_timeout;
    let consumer = log_reader(config)?;
    let mut assignment = TopicPartitionList::new();
    let mut pending = HashSet::new();
    for (kind, partition, low, high) in partitions(&consumer, kinds, timeout)? {
        if high > low {
            assignment
                .add_partition_offset(kind.topic(), partition, Offset::Offset(high - 1))
                .map_err(Error::Metadata)?;
            pending.insert((kind.topic(), partition));
        }
    }
    if pending.is_empty() {
        return Ok(None);
    }
    consumer.assign(&assignment).map_err(Error::Metadata)?;
    let deadline = Instant::now() + timeout;
    let mut latest = None;
    while !pending.is_empty() {
        if Instant::now() > deadline {
            return Err(Error::Timeout);
        }
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => return Err(Error::Metadata(e)),
            Some(Ok(m)) => m,
        };
        let Some(kind) = EventKind::from_topic(message.topic()) else {
            continue;
        };
        if pending.remove(&(kind.topic(), message.partition())) {
            let ts = message.timestamp().to_millis();
            latest = latest.max(ts);
        }
    }
    Ok(latest)
}

/// The creation time a UUIDv7 event id carries.
fn created_at_ms(id: &str) -> Result<i64, ReplayError> {
    let not_ours = || ReplayError::NotAnEventId(id.to_string());
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| not_ours())?;
    if uuid.get_version_num() != 7 {
        return Err(not_ours());
    }
    let (secs, nanos) = uuid.get_timestamp().ok_or_else(not_ours)?.to_unix();
    Ok(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
}

fn read_log(
    config: &KafkaConfig,
    kinds: &[EventKind],
    after: &str,
    since_ms: i64,
    abandoned: &AtomicBool,
) -> Result<Replay, ReplayError> {
    let kafka = |e| ReplayError::Kafka(Error::Metadata(e));
    let timeout = config.call_timeout;
    let consumer = log_reader(config).map_err(ReplayError::Kafka)?;

    // Where each partition ends now, and where the search starts in it.
    let mut ends = HashMap::new();
    let mut by_time = TopicPartitionList::new();
    for (kind, partition, low, high) in
        partitions(&consumer, kinds, timeout).map_err(ReplayError::Kafka)?
    {
        ends.insert((kind, partition), high);
        if high > low {
            by_time
                .add_partition_offset(kind.topic(), partition, Offset::Offset(since_ms))
                .map_err(kafka)?;
        }
    }
    let starts = consumer
        .offsets_for_times(by_time, timeout)
        .map_err(kafka)?;
    let mut start_of = HashMap::new();
    for e in starts.elements() {
        if let (Some(kind), Offset::Offset(start)) = (EventKind::from_topic(e.topic()), e.offset())
        {
            start_of.insert((kind, e.partition()), start);
        }
    }
    // Every partition is read: from where the search starts, or else from its end
    // (the rest of a wave read in part may land there). The partitions still being
    // read to their end:
    let mut pending = HashSet::new();
    let mut assignment = TopicPartitionList::new();
    for (&(kind, partition), &end) in &ends {
        let start = start_of.get(&(kind, partition)).copied();
        let from = match start {
            Some(start) if start < end => {
                pending.insert((kind, partition));
                start
            }
            _ => end,
        };
        assignment
            .add_partition_offset(kind.topic(), partition, Offset::Offset(from))
            .map_err(kafka)?;
    }
    if pending.is_empty() {
        return Err(ReplayError::NotFound(after.to_string()));
    }
    consumer.assign(&assignment).map_err(kafka)?;

    let deadline = Instant::now() + timeout;
    let mut read = Vec::new();
    let mut waves = WaveCounts::default();
    let mut scanned = 0;
    // Once every partition is read to its end: until when the rest of a wave read
    // in part is waited for (as long as the hub would hold it, within the bound).
    let mut whole_by: Option<Instant> = None;
    loop {
        let mut wait = Duration::from_millis(100);
        if pending.is_empty() {
            let by =
                *whole_by.get_or_insert_with(|| deadline.min(Instant::now() + config.order_hold));
            match by.checked_duration_since(Instant::now()) {
                Some(left) if !waves.all_whole() => wait = wait.min(left),
                _ => break,
            }
        }
        if Instant::now() > deadline {
            return Err(ReplayError::Kafka(Error::Timeout));
        }
        if abandoned.load(Ordering::Relaxed) {
            return Err(ReplayError::Abandoned);
        }
        let message = match consumer.poll(wait) {
            None => continue,
            Some(Err(e)) => return Err(kafka(e)),
            Some(Ok(m)) => m,
        };
        scanned += 1;
        if scanned > config.replay_max_events {
            return Err(ReplayError::TooLong(config.replay_max_events));
        }
        let Some(kind) = EventKind::from_topic(message.topic()) else {
            continue;
        };
        let key = (kind, message.partition());
        let Some(end) = ends.get_mut(&key) else {
            continue;
        };
        if message.offset() >= *end - 1 {
            pending.remove(&key);
        }
        // Read past its first end too: covered up to there.
        *end = (*end).max(message.offset() + 1);
        if let Some(d) = decode(&message) {
            waves.add(&d);
            read.push(d);
        }
    }
    Ok(Replay {
        events: after_event(read, after)?,
        covered: Covered(ends),
    })
}

/// The waves a replay has read, and how many of them are not yet whole (see
/// `Wave`): a replay that stopped inside a wave would hand out part of it, and
/// the hub the rest after whatever followed it, out of publication order.
#[derive(Default)]
struct WaveCounts {
    read: HashMap<(String, i64), (usize, usize)>,
    unwhole: usize,
}

impl WaveCounts {
    fn add(&mut self, d: &Delivered) {
        let Some(wave) = &d.wave else {
            return;
        };
        let key = (wave.sequence.clone(), d.timestamp_ms);
        let (count, expected) = self.read.entry(key).or_insert_with(|| {
            self.unwhole += 1;
            (0, wave.expected())
        });
        *count += 1;
        if *count == *expected {
            self.unwhole -= 1;
        }
    }

    fn all_whole(&self) -> bool {
        self.unwhole == 0
    }
}

/// The events that follow `after` in publication order (the hub's own merge),
/// each event id once.
fn after_event(read: Vec<Delivered>, after: &str) -> Result<Vec<Arc<Delivered>>, ReplayError> {
    let read = in_publication_order(read);
    let at = read
        .iter()
        .position(|d| d.event_id.as_deref() == Some(after))
        .ok_or_else(|| ReplayError::NotFound(after.to_string()))?;
    let mut ids = HashSet::new();
    ids.insert(after.to_string());
    Ok(read
        .into_iter()
        .skip(at + 1)
        .filter(|d| d.event_id.as_ref().is_none_or(|id| ids.insert(id.clone())))
        .map(Arc::new)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivered::tests::delivered;

    fn at(id: &str, kind: EventKind, ts: i64, partition: i32, offset: i64) -> Delivered {
        delivered(id, kind, partition, offset, ts)
    }

    #[test]
    fn replays_what_follows_in_publication_order_once() {
        let read = vec![
            at("c", EventKind::Checkin, 30, 0, 7),
            at("a", EventKind::Checkout, 10, 1, 4),
            at("b", EventKind::Checkout, 20, 0, 9),
            at("c", EventKind::Checkin, 31, 2, 1), // a re-publication of "c"
            at("d", EventKind::Checkout, 40, 1, 5),
        ];
        let ids: Vec<_> = after_event(read, "a")
            .unwrap()
            .iter()
            .map(|d| d.event_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["b", "c", "d"]);
    }

    #[test]
    fn an_unknown_or_foreign_id_is_refused() {
        assert!(matches!(
            after_event(vec![at("a", EventKind::Checkout, 1, 0, 0)], "zz"),
            Err(ReplayError::NotFound(_))
        ));
        assert!(matches!(
            created_at_ms("not-a-uuid"),
            Err(ReplayError::NotAnEventId(_))
        ));
        let v4 = "9f1c2a4e-8b1d-4c3e-9a7f-2b6d1e0c5a3f";
        assert!(matches!(
            created_at_ms(v4),
            Err(ReplayError::NotAnEventId(_))
        ));
        let v7 = uuid::Uuid::now_v7().to_string();
        let now = chrono::Utc::now().timestamp_millis();
        assert!((now - created_at_ms(&v7).unwrap()).abs() < 60_000);
    }
}

/// Against the harness's broker: a replay stops reading once its client has left.
#[cfg(test)]
mod abandoning {
    use super::*;
    use crate::EventProducer;
    use shutdown::Closeable;

    #[tokio::test]
    async fn a_replay_whose_client_left_stops_reading() {
        let config = KafkaConfig::new(testkit::services().var("KAFKA_BROKERS"));
        let producer = EventProducer::new(&config).unwrap();
        let upc = format!("A{}", &testkit::unique_name("a")[..9]);
        let ids: Vec<String> = (0..2).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let payload = serde_json::to_string(&domain::CheckoutEvent::from(&domain::Checkout {
            id: 1,
            user_email: "a@b.org".into(),
            asset_upc: upc.clone(),
            checkout_date: chrono::Utc::now(),
            checkin_date: None,
        }))
        .unwrap();
        for id in &ids {
            producer
                .publish(
                    "checkout",
                    &upc,
                    id,
                    &payload,
                    chrono::Utc::now().timestamp_millis(),
                )
                .await
                .unwrap();
        }
        let since = created_at_ms(&ids[0]).unwrap() - CLOCK_SLACK.as_millis() as i64;
        let (kinds, after) = ([EventKind::Checkout], ids[0].clone());
        let read = |left: bool| {
            let (config, after) = (config.clone(), after.clone());
            tokio::task::spawn_blocking(move || {
                read_log(&config, &kinds, &after, since, &AtomicBool::new(left))
            })
        };
        // Still waited for: it reads what followed.
        let replay = read(false).await.unwrap().expect("replayed");
        assert!(replay
            .events
            .iter()
            .any(|d| d.event_id.as_deref() == Some(&ids[1])));
        // Its client gone: it stops at its first message.
        assert!(matches!(
            read(true).await.unwrap(),
            Err(ReplayError::Abandoned)
        ));
        // Dropping the waiting side is what raises the flag.
        let abandoned = Abandoned::default();
        let flag = Arc::clone(&abandoned.0);
        drop(abandoned);
        assert!(flag.load(Ordering::Relaxed));
        producer.close().await.unwrap();
    }
}
