//! The decoder the consumer and the replay run every message through, callable on
//! arbitrary bytes (feature `fuzzing`, for the fuzz target in `fuzz/`).

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

use crate::delivered::{decode as decode_message, Delivered};
use crate::EVENT_ID_HEADER;

/// A message of `topic` with `payload` and, if given, an event-id header.
pub fn decode(
    topic: &str,
    payload: &[u8],
    event_id: Option<&[u8]>,
    timestamp_ms: i64,
) -> Option<Delivered> {
    let headers = event_id.map(|value| {
        OwnedHeaders::new().insert(Header {
            key: EVENT_ID_HEADER,
            value: Some(value),
        })
    });
    let message = OwnedMessage::new(
        Some(payload.to_vec()),
        None,
        topic.to_string(),
        Timestamp::CreateTime(timestamp_ms),
        0,
        0,
        headers,
    );
    decode_message(&message)
}
