//! The outbox relay: publishes the events written in checkout/checkin transactions,
//! in outbox order, and marks them sent only after the broker acknowledged them. A
//! broker outage stalls it (retrying with backoff) without losing or reordering
//! anything; a crash between publish and mark re-publishes, and consumers drop the
//! duplicate by event id. Only the instance holding the outbox's lease relays: the
//! others stand by, so one row is never published twice by two instances.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::Outbox;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::EventProducer;

/// Events fetched per round.
const BATCH: u32 = 100;
/// How often the outbox is polled when nobody kicks the relay.
const POLL: Duration = Duration::from_millis(500);
/// Backoff bounds while the broker or the database is down.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The running relay; a `Closeable`.
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    kick: Arc<Notify>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl OutboxRelay {
    /// Starts relaying from `outbox` through `producer`.
    pub fn spawn(outbox: Arc<dyn Outbox>, producer: Arc<EventProducer>) -> Self {
        let kick = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::clone(&outbox),
            producer,
            Arc::clone(&kick),
            stop.clone(),
        ));
        OutboxRelay {
            outbox,
            kick,
            stop,
            task: Mutex::new(Some(task)),
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
}

async fn run(
    outbox: Arc<dyn Outbox>,
    producer: Arc<EventProducer>,
    kick: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut clock = PublishClock::default();
    loop {
        let round = match outbox.hold_lease().await {
            Ok(true) => relay_once(&*outbox, &producer, &stop, &mut clock).await,
            // Another instance relays; this one stands by and retries at the next
            // poll or kick (taking over when the holder goes away).
            Ok(false) => Ok(false),
            Err(e) => Err(e.into()),
        };
        match round {
            Ok(true) => {
                backoff = BACKOFF_MIN;
                continue; // a full batch: there may be more
            }
            Ok(false) => backoff = BACKOFF_MIN,
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "outbox relay stalled");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = kick.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Message timestamps that strictly increase across every topic and partition, so
/// that (with one relay holding the lease) the broker's time index orders all events
/// the way they were published: what `replay` relies on to resume after an event.
#[derive(Default)]
struct PublishClock {
    last_ms: i64,
}

impl PublishClock {
    fn next(&mut self) -> i64 {
        let now = chrono::Utc::now().timestamp_millis();
        self.last_ms = now.max(self.last_ms + 1);
        self.last_ms
    }
}

/// Publishes one batch; `Ok(true)` when it was full. Stops between events (never
/// mid-publish) when told to: what was published is marked sent first.
async fn relay_once(
    outbox: &dyn Outbox,
    producer: &EventProducer,
    stop: &CancellationToken,
    clock: &mut PublishClock,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let batch = outbox.unsent(BATCH).await?;
    let full = batch.len() == BATCH as usize;
    let mut sent = Vec::with_capacity(batch.len());
    let mut failure = None;
    for event in &batch {
        if stop.is_cancelled() {
            break;
        }
        match producer
            .publish(
                &event.topic,
                &event.key,
                &event.event_id,
                &event.payload,
                clock.next(),
            )
            .await
        {
            Ok(_) => sent.push(event.seq),
            Err(e) => {
                // Later events wait: publishing them now would reorder per asset.
                failure = Some(e);
                break;
            }
        }
    }
    outbox.mark_sent(&sent).await?;
    match failure {
        Some(e) => Err(Box::new(e)),
        None => Ok(full && !stop.is_cancelled()),
    }
}

#[async_trait]
impl shutdown::Closeable for OutboxRelay {
    fn name(&self) -> &str {
        "outbox-relay"
    }

    /// Finishes the event in flight, marks what was sent, gives the lease up (a
    /// standby instance takes over at once) and stops.
    async fn close(&self) -> Result<(), shutdown::BoxError> {
        self.stop.cancel();
        if let Some(task) = self.task.lock().await.take() {
            task.await?;
        }
        self.outbox.release_lease().await;
        Ok(())
    }
}
