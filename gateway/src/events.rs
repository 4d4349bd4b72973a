//! Where subscriptions get their events: the Kafka consumer (real services) or an
//! in-process bus (embedded mode), behind one interface.

use std::sync::Arc;

use domain::EventKind;
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
    /// Resuming would read more than the replay bound.
    #[error("more than {0} events were published since; re-fetch with a query, then subscribe without `after`")]
    TooLong(usize),
}

impl From<ReplayError> for ResumeError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::NotAnEventId(id)
            | ReplayError::OutOfRange(id)
            | ReplayError::NotFound(id) => ResumeError::Unknown(id),
            ReplayError::TooLong(n) => ResumeError::TooLong(n),
            // Nobody waits for the answer any more.
            ReplayError::Abandoned => ResumeError::Unavailable,
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
    #[cfg(feature = "dev")]
    Local(Arc<crate::embedded::LocalBus>),
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
            #[cfg(feature = "dev")]
            EventFeed::Local(bus) => bus.subscribe(after),
        }
    }
}
