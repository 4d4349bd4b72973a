//! The outbox relay: publishes the events written in checkout/checkin transactions,
//! in outbox order, and marks them sent only after the broker acknowledged them. A
//! broker outage stalls it (retrying with backoff) without losing or reordering
//! anything; a crash between publish and mark re-publishes, and consumers drop the
//! duplicate by event id. Only the instance holding the outbox's lease relays: the
//! others stand by, so one row is never published twice by two instances.
//!
//! A batch goes out in waves: events on distinct copies are queued and acknowledged
//! together (one broker round trip per wave, not per event; the idempotent producer
//! keeps per-partition order), while a copy's next event waits for the
//! acknowledgement of its previous one, so that its two topics hold its events in
//! commit order. Each wave is queued right after the lease is confirmed on its own
//! connection. Housekeeping, on a task of its own, measures the backlog on every
//! instance and, on the holder only, deletes sent events older than the retention
//! in short statements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::trace::Joiner;
use domain::{EventKind, Lease, Outbox, OutboxBacklog, OutboxEvent};
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{EventProducer, Pending, Wave};

/// Events fetched per round: with waves, a round costs a few broker round trips
/// whatever its size, so it is large.
const BATCH: u32 = 1000;
/// How often an instance without the lease tries to take it.
const STANDBY_POLL: Duration = Duration::from_millis(500);
/// Backoff bounds while the broker or the database is down.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How the relay keeps the outbox.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Sent events older than this are deleted (7 days): subscribers read events
    /// from Kafka, the outbox keeps them only for operators' checks.
    pub retention: Duration,
    /// Events deleted per statement (500): short statements that never hold up a
    /// checkout.
    pub purge_batch: u32,
    /// How often the backlog is measured and sent events purged (10 s).
    pub housekeeping_every: Duration,
    /// How long close waits for the acknowledgements in flight (5 s) before it
    /// cancels what is still queued; keep it under the relay's close bound.
    pub drain_timeout: Duration,
    /// How often the lease holder reads the outbox when nobody kicks it (10 ms).
    /// A commit on this instance kicks it at once; a commit on another instance
    /// (MySQL has no notifications) waits for this poll, so it bounds the
    /// cross-instance delivery latency. One indexed read of an empty range each.
    pub poll: Duration,
    /// With traces on: each publication of an event that carries a trace context
    /// is a producer span in that trace, and the span's context is what the Kafka
    /// headers carry on (so deliveries are its children). Without, the row's
    /// context is sent as it is.
    pub trace: Option<Joiner>,
    /// The name of this outbox's sequence of waves (`Wave`), the same on every
    /// instance relaying it and different from other outboxes publishing to the
    /// same topics ("outbox"; the gateway names its MySQL database).
    pub sequence: String,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            retention: Duration::from_secs(7 * 24 * 3600),
            purge_batch: 500,
            housekeeping_every: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            poll: Duration::from_millis(10),
            trace: None,
            sequence: "outbox".into(),
        }
    }
}

/// What the relay did, for metrics: read at scrape time.
#[derive(Debug, Default)]
pub struct RelayStats {
    lease_held: AtomicBool,
    published: AtomicU64,
    purged: AtomicU64,
    backlog: AtomicU64,
    /// Creation time (ms since the epoch) of the oldest unsent event; 0 for none.
    oldest_unsent_ms: AtomicI64,
}

impl RelayStats {
    /// Whether this instance holds the relay lease (relays).
    pub fn lease_held(&self) -> bool {
        self.lease_held.load(Ordering::Relaxed)
    }

    /// Events this instance published (acknowledged by the broker).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Sent events this instance deleted after the retention.
    pub fn purged(&self) -> u64 {
        self.purged.load(Ordering::Relaxed)
    }

    /// Unsent events at the last measure.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// How long the oldest unsent event (at the last measure) has waited by now;
    /// zero when nothing waited.
    pub fn oldest_unsent_age(&self) -> Duration {
        match self.oldest_unsent_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            ms => Duration::from_millis((chrono::Utc::now().timestamp_millis() - ms).max(0) as u64),
        }
    }

    fn measured(&self, backlog: OutboxBacklog) {
        self.backlog.store(backlog.events, Ordering::Relaxed);
        let oldest = backlog.oldest.map_or(0, |t| t.timestamp_millis().max(1));
        self.oldest_unsent_ms.store(oldest, Ordering::Relaxed);
    }
}

/// The running relay; a `Closeable`.
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    kick: Arc<Notify>,
    stop: CancellationToken,
    stats: Arc<RelayStats>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl OutboxRelay {
    /// Starts relaying from `outbox` through `producer`, and its housekeeping.
    pub fn spawn(
        outbox: Arc<dyn Outbox>,
        producer: Arc<EventProducer>,
        config: RelayConfig,
    ) -> Self {
        let kick = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let stats = Arc::new(RelayStats::default());
        let relay = Relay {
            outbox: Arc::clone(&outbox),
            producer,
            stop: stop.clone(),
            stats: Arc::clone(&stats),
            config,
        };
        let housekeeping = tokio::spawn(relay.clone().housekeeping());
        let relaying = tokio::spawn(relay.run(Arc::clone(&kick)));
        OutboxRelay {
            outbox,
            kick,
            stop,
            stats,
            tasks: Mutex::new(vec![relaying, housekeeping]),
        }
    }

    /// Wakes the relay now (called after a commit) instead of at the next poll.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// A cheap handle for callers that only kick.
    pub fn kicker(&self) -> Arc<Notify> {
        Arc::clone(&self.kick)
    }

    /// What the relay did, for metrics.
    pub fn stats(&self) -> Arc<RelayStats> {
        Arc::clone(&self.stats)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a round did.
enum Round {
    /// Another instance holds the lease.
    Standby,
    /// Published what there was; `true` when the batch was full (there may be more).
    Published(bool),
}

#[derive(Clone)]
struct Relay {
    outbox: Arc<dyn Outbox>,
    producer: Arc<EventProducer>,
    stop: CancellationToken,
    stats: Arc<RelayStats>,
    config: RelayConfig,
}

impl Relay {
    async fn run(self, kick: Arc<Notify>) {
        let mut backoff = BACKOFF_MIN;
        let mut clock = PublishClock::default();
        let mut poll = STANDBY_POLL;
        loop {
            match self.relay_once(&mut clock).await {
                Ok(Round::Published(true)) => {
                    backoff = BACKOFF_MIN;
                    if !self.stop.is_cancelled() {
                        continue; // a full batch: there may be more
                    }
                }
                // Another instance relays; this one stands by and retries at the
                // next standby poll or kick (taking over when the holder goes away).
                Ok(Round::Standby) => {
                    backoff = BACKOFF_MIN;
                    poll = STANDBY_POLL;
                }
                Ok(Round::Published(false)) => {
                    backoff = BACKOFF_MIN;
                    poll = self.config.poll;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "outbox relay stalled");
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = kick.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Whether this instance holds the lease. When it has just taken it, the clock
    /// first continues after the newest timestamp on the topics (the previous
    /// holder's last events, whatever its clock), before anything is published.
    async fn hold_lease(&self, clock: &mut PublishClock) -> Result<bool, BoxError> {
        let lease = self.outbox.hold_lease().await;
        let ours = matches!(lease, Ok(l) if l.is_ours());
        self.stats.lease_held.store(ours, Ordering::Relaxed);
        match lease? {
            Lease::Elsewhere => {
                clock.synced = false;
                return Ok(false);
            }
            Lease::Taken => clock.synced = false,
            Lease::Kept => {}
        }
        if !clock.synced {
            let kinds = [EventKind::Checkout, EventKind::Checkin];
            let latest = crate::replay::latest_timestamp(self.producer.config(), &kinds).await?;
            clock.continue_after(latest.unwrap_or(0));
        }
        Ok(true)
    }

    /// Publishes one batch, in `waves`. The lease is confirmed (on its own
    /// connection, so the connection is alive and the lock still ours) before each
    /// wave is queued: a relay that lost its lease queues nothing more.
    /// Acknowledgements are awaited in order and what was acknowledged is marked
    /// sent; after the first failure the rest is published again later (consumers
    /// drop duplicates by event id) rather than risk per-asset order. Told to stop,
    /// it waits for what is in flight up to `drain_timeout`, then cancels the rest.
    async fn relay_once(&self, clock: &mut PublishClock) -> Result<Round, BoxError> {
        if !self.hold_lease(clock).await? {
            return Ok(Round::Standby);
        }
        let batch = self.outbox.unsent(BATCH).await?;
        if batch.is_empty() || self.stop.is_cancelled() {
            return Ok(Round::Published(false));
        }
        let full = batch.len() == BATCH as usize;
        let mut failure: Option<BoxError> = None;
        let mut sent = Vec::with_capacity(batch.len());
        let mut deadline: Option<Instant> = None;
        let mut standby = false;
        'waves: for wave in waves(&batch) {
            if self.stop.is_cancelled() {
                break;
            }
            // Confirmed before each wave: one lock query, next to a broker round trip.
            match self.hold_lease(clock).await {
                Ok(true) => {}
                Ok(false) => {
                    standby = true;
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            // One timestamp per wave: its events are on distinct copies, so only
            // the waves need an order; a stamp per event would run the clock ahead
            // of real time by a millisecond per event past 1,000 events/s.
            let stamp = clock.next();
            let place = Wave {
                sequence: self.config.sequence.clone(),
                previous_ms: clock.published_ms,
                size: u32::try_from(wave.len()).unwrap_or(u32::MAX),
            };
            let acknowledged_before = sent.len();
            let mut pending = Vec::with_capacity(wave.len());
            // Each ends once its event is acknowledged (or given up).
            let mut spans = Vec::new();
            for event in &wave {
                let trace = match (self.config.trace, &event.trace) {
                    (Some(join), Some(context)) => {
                        let span = publish_span(event);
                        let sent = join(&span, context).or_else(|| event.trace.clone());
                        spans.push(span);
                        sent
                    }
                    _ => event.trace.clone(),
                };
                match self.producer.enqueue(
                    &event.topic,
                    &event.key,
                    &event.event_id,
                    &event.payload,
                    stamp,
                    Some(&place),
                    trace.as_ref(),
                ) {
                    Ok(p) => pending.push(p),
                    Err(e) => {
                        failure = Some(Box::new(e));
                        break;
                    }
                }
            }
            for (event, p) in wave.iter().zip(pending) {
                match self.acknowledged(p, &mut deadline).await {
                    Some(Ok(_)) => sent.push(event.seq),
                    Some(Err(e)) => {
                        failure = Some(Box::new(e));
                        break 'waves;
                    }
                    None => {
                        tracing::warn!(
                            unacknowledged = batch.len() - sent.len(),
                            "outbox relay: stopping before the broker acknowledged; cancelling what is queued"
                        );
                        self.producer.cancel_queued();
                        break 'waves;
                    }
                }
            }
            drop(spans);
            if sent.len() > acknowledged_before {
                clock.published_ms = stamp;
            }
            if failure.is_some() {
                break;
            }
        }
        self.stats
            .published
            .fetch_add(sent.len() as u64, Ordering::Relaxed);
        self.outbox.mark_sent(&sent).await?;
        match failure {
            Some(e) => Err(e),
            None if standby => Ok(Round::Standby),
            None => Ok(Round::Published(full && sent.len() == batch.len())),
        }
    }

    /// `pending`'s acknowledgement; once told to stop, waited for until `deadline`
    /// (set then, `drain_timeout` away) and `None` past it.
    async fn acknowledged(
        &self,
        pending: Pending,
        deadline: &mut Option<Instant>,
    ) -> Option<Result<(i32, i64), crate::Error>> {
        let ack = pending.acknowledged();
        tokio::pin!(ack);
        loop {
            if deadline.is_none() && self.stop.is_cancelled() {
                *deadline = Some(Instant::now() + self.config.drain_timeout);
            }
            match *deadline {
                Some(at) => return tokio::time::timeout_at(at, &mut ack).await.ok(),
                None => tokio::select! {
                    r = &mut ack => return Some(r),
                    () = self.stop.cancelled() => {}
                },
            }
        }
    }

    /// Every `housekeeping_every`: measures the backlog; on the holder, deletes sent
    /// events older than the retention until none is left (a statement at a time,
    /// stopping between them when told to).
    async fn housekeeping(self) {
        loop {
            match self.outbox.backlog().await {
                Ok(b) => self.stats.measured(b),
                Err(e) => tracing::warn!(error = %e, "outbox backlog not measured"),
            }
            if self.stats.lease_held() {
                self.purge().await;
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(self.config.housekeeping_every) => {}
            }
        }
    }

    /// Deletes in statements of `purge_batch`; after each full one it rests as long
    /// as the statement took, so that catching up on a large backlog of old events
    /// takes at most half the database's attention from checkouts.
    async fn purge(&self) {
        let Ok(retention) = chrono::Duration::from_std(self.config.retention) else {
            return; // beyond chrono's range: nothing is that old
        };
        let before = chrono::Utc::now() - retention;
        while !self.stop.is_cancelled() {
            let started = Instant::now();
            match self
                .outbox
                .purge_sent(before, self.config.purge_batch)
                .await
            {
                Ok(n) => {
                    self.stats.purged.fetch_add(n, Ordering::Relaxed);
                    if n < u64::from(self.config.purge_batch) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outbox purge failed; retried at the next housekeeping");
                    return;
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(started.elapsed()) => {}
            }
        }
    }
}

/// Message timestamps that strictly increase from wave to wave across every topic
/// and partition, so that (with one relay holding the lease) the broker's time
/// index orders a copy's events the way they were committed: what `replay` and the
/// hub's merge rely on. A new lease holder continues after the newest timestamp on
/// the topics (`synced`), so the order holds across a handover even when the
/// hosts' clocks differ.
#[derive(Default)]
struct PublishClock {
    last_ms: i64,
    /// The newest wave on the topics: the one the next wave follows (`Wave`).
    published_ms: i64,
    /// Continued from the topics since the lease was taken.
    synced: bool,
}

impl PublishClock {
    fn next(&mut self) -> i64 {
        let now = chrono::Utc::now().timestamp_millis();
        self.last_ms = now.max(self.last_ms + 1);
        self.last_ms
    }

    fn continue_after(&mut self, latest_ms: i64) {
        self.last_ms = self.last_ms.max(latest_ms);
        self.published_ms = self.published_ms.max(latest_ms);
        self.synced = true;
    }
}

/// A batch in waves, each queued together: the k-th event of each copy in the batch
/// goes in wave k, so a copy's next event is queued only once its previous one is
/// acknowledged (its two topics then hold its events in commit order), while
/// different copies travel together. A batch on distinct copies is one wave.
fn waves(batch: &[OutboxEvent]) -> Vec<Vec<&OutboxEvent>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut waves: Vec<Vec<&OutboxEvent>> = Vec::new();
    for event in batch {
        let k = seen.entry(event.key.as_str()).or_insert(0);
        if waves.len() <= *k {
            waves.push(Vec::new());
        }
        waves[*k].push(event);
        *k += 1;
    }
    waves
}

#[async_trait]
impl shutdown::Closeable for OutboxRelay {
    fn name(&self) -> &str {
        "outbox-relay"
    }

    /// Waits for the acknowledgements in flight (up to `drain_timeout`), cancels
    /// what is still queued, marks what was sent, gives the lease up (a standby
    /// instance takes over at once) and stops.
    async fn close(&self) -> Result<(), shutdown::BoxError> {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            task.await?;
        }
        self.stats.lease_held.store(false, Ordering::Relaxed);
        self.outbox.release_lease().await;
        Ok(())
    }
}

/// The producer span of one event's publication (`messaging.*` attributes).
fn publish_span(event: &OutboxEvent) -> tracing::Span {
    tracing::info_span!(
        target: domain::trace::SPAN_TARGET,
        parent: None,
        "publish",
        otel.name = %format_args!("publish {}", event.topic),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.destination.name = %event.topic,
        messaging.message.id = %event.event_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, key: &str) -> OutboxEvent {
        OutboxEvent {
            seq,
            event_id: seq.to_string(),
            topic: "checkout".into(),
            key: key.into(),
            payload: String::new(),
            trace: None,
        }
    }

    #[test]
    fn waves_hold_each_copy_once_in_order() {
        let batch: Vec<OutboxEvent> = [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "a"), (6, "b")]
            .map(|(seq, key)| event(seq, key))
            .into();
        let seqs: Vec<Vec<i64>> = waves(&batch)
            .iter()
            .map(|w| w.iter().map(|e| e.seq).collect())
            .collect();
        assert_eq!(seqs, [vec![1, 2, 4], vec![3, 6], vec![5]]);
        assert_eq!(waves(&batch[..2]).len(), 1, "distinct copies: one wave");
    }

    #[test]
    fn the_clock_strictly_increases_and_continues_after_a_later_stamp() {
        let mut clock = PublishClock::default();
        let (a, b) = (clock.next(), clock.next());
        assert!(b > a);
        let ahead = chrono::Utc::now().timestamp_millis() + 60_000;
        clock.continue_after(ahead);
        assert!(clock.synced);
        assert_eq!(clock.next(), ahead + 1);
        clock.continue_after(0);
        assert_eq!(clock.next(), ahead + 2, "never back");
    }
}
