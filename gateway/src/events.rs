//! Where subscriptions get their events: the Kafka consumer (real services) or an
//! in-process bus (embedded mode), behind one interface.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use domain::{Checkout, CheckoutEvent, EventKind};
use events_kafka::{Covered, Delivered, EventHub, ReplayError};
use tokio::sync::broadcast;

/// A new subscriber's view: the events it missed (when resuming), then live ones.
pub struct Subscribed {
    /// Replayed first, in order.
    pub missed: Vec<Arc<Delivered>>,
    /// Everything after.
    pub live: broadcast::Receiver<Arc<Delivered>>,
    /// Live events the replay already accounts for, to skip (Kafka; else empty).
    pub covered: Covered,
}

/// Why `after` could not be honoured.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The id is not in the retained history.
    #[error("unknown event id {0:?}: older than the retained history, or never seen")]
    Unknown(String),
    /// The event log cannot be read now (broker down); the client may retry.
    #[error("the event log cannot be read to resume; retry later")]
    Unavailable,
}

impl From<ReplayError> for ResumeError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::NotAnEventId(id)
            | ReplayError::OutOfRange(id)
            | ReplayError::NotFound(id) => ResumeError::Unknown(id),
            ReplayError::Kafka(inner) => {
                tracing::warn!(error = %inner, "resume: event log unreadable");
                ResumeError::Unavailable
            }
        }
    }
}

/// The event source of this process.
#[derive(Clone)]
pub enum EventFeed {
    /// The per-process Kafka consumer.
    Kafka(Arc<EventHub>),
    /// The embedded bus.
    Local(Arc<LocalBus>),
}

impl EventFeed {
    /// Subscribes to `kinds`, replaying what followed `after` when given.
    pub async fn subscribe(
        &self,
        kinds: &[EventKind],
        after: Option<&str>,
    ) -> Result<Subscribed, ResumeError> {
        match self {
            EventFeed::Kafka(hub) => {
                // Live first, then the replay up to the log's current end: the two
                // overlap (never gap), and `covers` drops the overlap.
                let live = hub.subscribe();
                let Some(after) = after else {
                    return Ok(Subscribed {
                        missed: Vec::new(),
                        live,
                        covered: Covered::default(),
                    });
                };
                let replay = hub.replay_after(kinds, after).await?;
                Ok(Subscribed {
                    missed: replay.events,
                    live,
                    covered: replay.covered,
                })
            }
            EventFeed::Local(bus) => bus.subscribe(after),
        }
    }
}

/// Subscribers this far behind are dropped with an error.
const BUS_CAPACITY: usize = 1024;
/// Events kept for `after` replays.
const HISTORY: usize = 10_000;

/// The in-process event bus of embedded mode: publish after commit, fan out to
/// subscribers, keep recent history for replays.
pub struct LocalBus {
    sender: broadcast::Sender<Arc<Delivered>>,
    /// Held while publishing and while subscribing, so a replay and the live
    /// stream meet exactly: no gap, no duplicate.
    history: Mutex<(VecDeque<Arc<Delivered>>, i64)>,
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus {
            sender: broadcast::channel(BUS_CAPACITY).0,
            history: Mutex::new((VecDeque::new(), 0)),
        }
    }
}

impl LocalBus {
    /// Publishes the event for `row` with a fresh event id.
    pub fn publish(&self, kind: EventKind, row: &Checkout) {
        let mut guard = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let (history, offset) = &mut *guard;
        *offset += 1;
        let delivered = Arc::new(Delivered {
            event_id: Some(uuid::Uuid::now_v7().to_string()),
            kind,
            event: CheckoutEvent::from(row),
            partition: 0,
            offset: *offset,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        });
        history.push_back(Arc::clone(&delivered));
        if history.len() > HISTORY {
            history.pop_front();
        }
        let _ = self.sender.send(delivered);
    }

    fn subscribe(&self, after: Option<&str>) -> Result<Subscribed, ResumeError> {
        let guard = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.sender.subscribe();
        let missed = match after {
            None => Vec::new(),
            Some(id) => {
                let position = guard
                    .0
                    .iter()
                    .position(|d| d.event_id.as_deref() == Some(id))
                    .ok_or_else(|| ResumeError::Unknown(id.to_string()))?;
                guard.0.iter().skip(position + 1).cloned().collect()
            }
        };
        Ok(Subscribed {
            missed,
            live,
            covered: Covered::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32) -> Checkout {
        Checkout {
            id,
            user_email: "a@b.org".into(),
            asset_upc: "9000000001".into(),
            checkout_date: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            checkin_date: None,
        }
    }

    #[tokio::test]
    async fn resume_replays_exactly_what_was_missed_then_goes_live() {
        let bus = LocalBus::default();
        bus.publish(EventKind::Checkout, &row(1));
        let first = bus.subscribe(None).unwrap();
        assert!(first.missed.is_empty());
        bus.publish(EventKind::Checkin, &row(1));
        bus.publish(EventKind::Checkout, &row(2));
        let mut live = first.live;
        let seen = live.recv().await.unwrap();
        let resumed = bus.subscribe(seen.event_id.as_deref()).unwrap();
        assert_eq!(resumed.missed.len(), 1);
        assert_eq!(resumed.missed[0].event.id, 2);
        bus.publish(EventKind::Checkin, &row(2));
        let mut again = resumed.live;
        assert_eq!(again.recv().await.unwrap().event.id, 2);
        assert!(matches!(
            bus.subscribe(Some("nope")),
            Err(ResumeError::Unknown(_))
        ));
    }
}
