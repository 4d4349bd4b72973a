//! An event as received from the broker, how a message becomes one, and the order
//! a batch is handed out in. Shared by the live consumer and the replay.

use std::collections::VecDeque;

use domain::{CheckoutEvent, EventKind, TraceContext};
use rdkafka::message::{Headers, Message};

use crate::{EVENT_ID_HEADER, PREVIOUS_WAVE_HEADER, WAVE_SEQUENCE_HEADER, WAVE_SIZE_HEADER};

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
    /// The trace context of the mutation that caused it (its W3C headers).
    pub trace: Option<TraceContext>,
    /// Its wave in the relay's sequence; `None` from other producers.
    pub wave: Option<Wave>,
}

/// Where an event sits in the relay's sequence (headers `wave-sequence`,
/// `wave-size` and `previous-wave`). The relay publishes in waves, one timestamp
/// each, a wave only once the one before is acknowledged; the consumer fetches
/// partitions independently, so without these a wave can arrive split and
/// interleaved with the next. With them the hub hands each wave out whole, after
/// the one before it, in publication order (`sequence`): the order a resume
/// replays in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// Whose waves: one outbox's, whichever instance relays it (deployments that
    /// share the topics have their own).
    pub sequence: String,
    /// The timestamp of the last wave published before this one (0: none known).
    pub previous_ms: i64,
    /// How many events this wave has, on every topic and partition.
    pub size: u32,
}

/// Events waited for at most per wave: a forged size cannot make a wave hoard.
const MAX_WAVE: usize = 10_000;

impl Wave {
    /// How many events make it whole.
    pub(crate) fn expected(&self) -> usize {
        (self.size as usize).clamp(1, MAX_WAVE)
    }
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
    let header = |name: &str| {
        message.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
        })
    };
    let event_id = header(EVENT_ID_HEADER).map(str::to_string);
    let trace = header(domain::trace::TRACEPARENT).and_then(|parent| {
        TraceContext::parse(
            parent,
            header(domain::trace::TRACESTATE).unwrap_or_default(),
        )
    });
    let wave = match (
        header(WAVE_SEQUENCE_HEADER),
        header(WAVE_SIZE_HEADER).and_then(|v| v.parse().ok()),
        header(PREVIOUS_WAVE_HEADER).and_then(|v| v.parse().ok()),
    ) {
        (Some(sequence), Some(size), Some(previous_ms)) => Some(Wave {
            sequence: sequence.to_string(),
            previous_ms,
            size,
        }),
        _ => None,
    };
    Some(Delivered {
        event_id,
        kind,
        event,
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        trace,
        wave,
    })
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event of copy 9000000001 at a given place and time (shared with `replay`'s tests).
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
            trace: None,
            wave: None,
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
