//! A message from the broker, as the consumer and the replay decode it: any topic,
//! payload and event-id header; never a panic, and what decodes is one of ours.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    topic: u8,
    payload: &'a [u8],
    event_id: Option<&'a [u8]>,
    timestamp_ms: i64,
}

fuzz_target!(|input: Input| {
    let topic = match input.topic % 3 {
        0 => "checkout",
        1 => "checkin",
        _ => "elsewhere",
    };
    if let Some(event) =
        events_kafka::fuzzing::decode(topic, input.payload, input.event_id, input.timestamp_ms)
    {
        assert_ne!(topic, "elsewhere", "decoded a foreign topic: {event:?}");
    }
});
