//! Against the harness's Kafka-API broker (nisshi), topics `checkout` and `checkin`.

use std::time::Duration;

use domain::{Checkout, CheckoutEvent, EventKind};
use events_kafka::{EventHub, EventProducer, KafkaConfig, Wave};
use shutdown::Closeable;
use tokio::sync::broadcast::Receiver;

fn config() -> KafkaConfig {
    KafkaConfig::new(testkit::services().var("KAFKA_BROKERS"))
}

/// A checkout event with a UPC unique to this test, so parallel tests don't mix.
fn event(id: i32, upc: &str) -> CheckoutEvent {
    CheckoutEvent::from(&Checkout {
        id,
        user_email: "a@b.org".into(),
        asset_upc: upc.into(),
        checkout_date: chrono::DateTime::from_timestamp(946_684_800 + i64::from(id), 0).unwrap(),
        checkin_date: None,
    })
}

/// Next event for `upc`, skipping other tests' events; bounded so a loss fails.
async fn next_for(
    rx: &mut Receiver<std::sync::Arc<events_kafka::Delivered>>,
    upc: &str,
) -> std::sync::Arc<events_kafka::Delivered> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let d = rx.recv().await.expect("hub open");
            if d.event.asset_upc == upc {
                return d;
            }
        }
    })
    .await
    .expect("event delivered within 20 s")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn unique_upc() -> String {
    // 10 characters, like a real UPC, unique per test run.
    let n = testkit::unique_name("u");
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    format!("T{}", &digits[digits.len().saturating_sub(9)..])
}

#[tokio::test]
async fn published_events_arrive_in_order_per_key_with_their_ids() {
    let config = config();
    let hub = EventHub::start(&config).await.expect("consumer");
    let mut rx = hub.subscribe();
    let producer = EventProducer::new(&config).unwrap();
    let upc = unique_upc();
    for i in 0..20 {
        let payload = serde_json::to_string(&event(i, &upc)).unwrap();
        producer
            .publish("checkout", &upc, &format!("{upc}-{i}"), &payload, now_ms())
            .await
            .expect("acknowledged");
    }
    for i in 0..20 {
        let d = next_for(&mut rx, &upc).await;
        assert_eq!(d.kind, EventKind::Checkout);
        assert_eq!(d.event, event(i, &upc), "in order for one key");
        assert_eq!(d.event_id.as_deref(), Some(format!("{upc}-{i}").as_str()));
    }
    producer.close().await.unwrap();
    hub.close().await.unwrap();
}

#[tokio::test]
async fn two_hubs_each_see_every_event_and_duplicates_are_dropped() {
    let config = config();
    let (a, b) = (
        EventHub::start(&config).await.unwrap(),
        EventHub::start(&config).await.unwrap(),
    );
    let (mut ra, mut rb) = (a.subscribe(), b.subscribe());
    let producer = EventProducer::new(&config).unwrap();
    let upc = unique_upc();
    let first = serde_json::to_string(&event(1, &upc)).unwrap();
    let second = serde_json::to_string(&event(2, &upc)).unwrap();
    producer
        .publish("checkin", &upc, "dup-id", &first, now_ms())
        .await
        .unwrap();
    // A redelivery of the same event (at-least-once), then a new one.
    producer
        .publish("checkin", &upc, "dup-id", &first, now_ms())
        .await
        .unwrap();
    producer
        .publish("checkin", &upc, "next-id", &second, now_ms())
        .await
        .unwrap();
    for rx in [&mut ra, &mut rb] {
        let d1 = next_for(rx, &upc).await;
        assert_eq!(d1.event_id.as_deref(), Some("dup-id"));
        assert_eq!(d1.kind, EventKind::Checkin);
        let d2 = next_for(rx, &upc).await;
        assert_eq!(
            d2.event_id.as_deref(),
            Some("next-id"),
            "the duplicate was skipped"
        );
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_resumed_subscriber_gets_exactly_what_followed_its_last_event() {
    let config = config();
    let hub = EventHub::start(&config).await.unwrap();
    let mut rx = hub.subscribe();
    let producer = EventProducer::new(&config).unwrap();
    let upc = unique_upc();
    // Event ids as the outbox makes them (UUIDv7), across both topics.
    let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let topics = ["checkout", "checkin", "checkout", "checkin"];
    let mut ts = now_ms();
    for (i, (id, topic)) in ids.iter().zip(topics).enumerate() {
        let payload = serde_json::to_string(&event(i as i32, &upc)).unwrap();
        ts += 1;
        producer
            .publish(topic, &upc, id, &payload, ts)
            .await
            .unwrap();
    }
    let mut live = Vec::new();
    for _ in 0..4 {
        live.push(next_for(&mut rx, &upc).await);
    }

    // A client saw ids[0] on `checkoutStatusUpdate` (both topics), then reconnected.
    let both = [EventKind::Checkout, EventKind::Checkin];
    // This test's events among everything the shared topics replay.
    let ours = |replay: &events_kafka::Replay| -> Vec<String> {
        replay
            .events
            .iter()
            .filter(|d| d.event.asset_upc == upc)
            .map(|d| d.event_id.clone().unwrap())
            .collect()
    };
    let replay = hub.replay_after(&both, &ids[0]).await.expect("replay");
    assert_eq!(
        ours(&replay),
        ids[1..],
        "what followed, in publication order"
    );
    assert!(
        live.iter().all(|d| replay.covered.covers(d)),
        "live events the replay read are skipped"
    );

    // On `checkout` only, after ids[0]: ids[2].
    let replay = hub
        .replay_after(&[EventKind::Checkout], &ids[0])
        .await
        .unwrap();
    assert_eq!(ours(&replay), [ids[2].clone()]);

    // A later event is not covered: it reaches the client live.
    let payload = serde_json::to_string(&event(9, &upc)).unwrap();
    let later = uuid::Uuid::now_v7().to_string();
    producer
        .publish("checkout", &upc, &later, &payload, ts + 1)
        .await
        .unwrap();
    let d = next_for(&mut rx, &upc).await;
    assert_eq!(d.event_id.as_deref(), Some(later.as_str()));
    assert!(!replay.covered.covers(&d));

    // Unknown, foreign and ancient ids are refused, not silently replayed from zero.
    for bad in [
        uuid::Uuid::now_v7().to_string(),
        "not-an-id".to_string(),
        "00000000-0000-7000-8000-000000000000".to_string(),
    ] {
        assert!(
            hub.replay_after(&both, &bad).await.is_err(),
            "{bad} was accepted"
        );
    }
    producer.close().await.unwrap();
    hub.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_under_load_returns_within_its_bound() {
    let mut config = config();
    config.call_timeout = Duration::from_secs(2);
    let hub = std::sync::Arc::new(EventHub::start(&config).await.unwrap());
    let mut rx = hub.subscribe();
    let mut flowing = hub.subscribe();
    let producer = std::sync::Arc::new(EventProducer::new(&config).unwrap());
    let upc = unique_upc();
    // Load: 500 events in flight while a subscriber drains them.
    let publishing = {
        let producer = std::sync::Arc::clone(&producer);
        let upc = upc.clone();
        tokio::spawn(async move {
            let sends = (0..500).map(|i| {
                let payload = serde_json::to_string(&event(i, &upc)).unwrap();
                let producer = std::sync::Arc::clone(&producer);
                let upc = upc.clone();
                async move {
                    producer
                        .publish("checkout", &upc, &format!("{upc}-{i}"), &payload, now_ms())
                        .await
                }
            });
            futures::future::join_all(sends).await
        })
    };
    let draining = tokio::spawn(async move { while rx.recv().await.is_ok() {} });
    next_for(&mut flowing, &upc).await; // the load is flowing
    drop(flowing);
    let closing = async {
        producer.close().await.expect("producer flushed");
        hub.close().await.expect("consumer closed");
    };
    // The bound under test: the flush's and the consumer's call timeouts (2 s each).
    tokio::time::timeout(Duration::from_secs(6), closing)
        .await
        .expect("closed within the bounds");
    let sent = publishing.await.unwrap();
    assert!(
        sent.iter().all(Result::is_ok),
        "the flush delivered what was queued"
    );
    draining.abort();
}

/// An unreachable broker does not stop the hub (SPEC 5b: the broker being down
/// never stops the gateway): it starts within its call timeout and says why.
#[tokio::test]
async fn an_unreachable_broker_is_reported_not_fatal() {
    let mut config = KafkaConfig::new("127.0.0.1:9");
    config.call_timeout = Duration::from_millis(500);
    let hub = EventHub::start(&config).await.expect("starts");
    let status = hub.status();
    assert_eq!(status.partitions, 0);
    let why = status.unreachable.expect("unreachable");
    assert!(why.contains("metadata"), "{why}");
    hub.close().await.unwrap();
}

/// A resume that would read more than `replay_max_events` is refused instead of
/// holding them all (a forged or very old `after` costs that much at most), and
/// gives its place back.
#[tokio::test]
async fn a_replay_past_its_bound_is_refused() {
    let mut config = config();
    config.replay_max_events = 2;
    config.replay_concurrency = 1;
    let hub = EventHub::start(&config).await.unwrap();
    let producer = EventProducer::new(&config).unwrap();
    let upc = unique_upc();
    let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut ts = now_ms();
    for (i, id) in ids.iter().enumerate() {
        ts += 1;
        let payload = serde_json::to_string(&event(i as i32, &upc)).unwrap();
        producer
            .publish("checkout", &upc, id, &payload, ts)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        match hub.replay_after(&[EventKind::Checkout], &ids[0]).await {
            Err(events_kafka::ReplayError::TooLong(2)) => {}
            other => panic!("not refused: {:?}", other.map(|r| r.events.len())),
        }
        assert_eq!(hub.replays_running(), 0, "the place is given back");
    }
    producer.close().await.unwrap();
    hub.close().await.unwrap();
}

/// Publishes one event of a relay's wave (as the relay does: with its place).
#[allow(clippy::too_many_arguments)]
async fn publish_in_wave(
    producer: &EventProducer,
    topic: &str,
    upc: &str,
    id: &str,
    ts: i64,
    sequence: &str,
    previous_ms: i64,
    size: u32,
) {
    let payload = serde_json::to_string(&event(1, upc)).unwrap();
    let wave = Wave {
        sequence: sequence.to_string(),
        previous_ms,
        size,
    };
    producer
        .enqueue(topic, upc, id, &payload, ts, Some(&wave), None)
        .unwrap()
        .acknowledged()
        .await
        .unwrap();
}

/// A wave that arrives split, the next wave between its parts, is handed out whole
/// and in publication order before the next; a resume that reads part of a wave
/// waits for the rest. So a live subscriber sees events in the order a resume
/// replays them, and a client resuming after the last event it saw misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_wave_goes_out_whole_live_and_in_a_resume() {
    let mut config = config();
    config.order_hold = Duration::from_secs(3); // the test holds a wave open
    let hub = std::sync::Arc::new(EventHub::start(&config).await.unwrap());
    let mut rx = hub.subscribe();
    let producer = EventProducer::new(&config).unwrap();
    let (upc, sequence) = (unique_upc(), testkit::unique_name("outbox"));
    let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let id = |i: usize| Some(ids[i].as_str());
    let base = now_ms();
    // Wave `base`: ids[0]. Wave base+1: ids[1] and ids[2], the latter published
    // only after wave base+2 (ids[3]).
    publish_in_wave(&producer, "checkout", &upc, &ids[0], base, &sequence, 0, 1).await;
    publish_in_wave(
        &producer,
        "checkout",
        &upc,
        &ids[1],
        base + 1,
        &sequence,
        base,
        2,
    )
    .await;
    publish_in_wave(
        &producer,
        "checkout",
        &upc,
        &ids[3],
        base + 2,
        &sequence,
        base + 1,
        1,
    )
    .await;
    assert_eq!(next_for(&mut rx, &upc).await.event_id.as_deref(), id(0));

    // A client that saw ids[0] resumes now, while wave base+1 is half published.
    let resuming = {
        let (hub, after) = (std::sync::Arc::clone(&hub), ids[0].clone());
        tokio::spawn(async move {
            let both = [EventKind::Checkout, EventKind::Checkin];
            hub.replay_after(&both, &after).await
        })
    };
    let early = tokio::time::timeout(Duration::from_millis(300), next_for(&mut rx, &upc)).await;
    assert!(
        early.is_err(),
        "handed out before its wave was whole: {early:?}"
    );
    assert!(!resuming.is_finished(), "the resume stopped inside a wave");

    publish_in_wave(
        &producer,
        "checkin",
        &upc,
        &ids[2],
        base + 1,
        &sequence,
        base,
        2,
    )
    .await;
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(next_for(&mut rx, &upc).await);
    }
    let live_ids: Vec<_> = live.iter().map(|d| d.event_id.as_deref()).collect();
    // Within a wave, publication order is topic (checkin first), then partition.
    assert_eq!(
        live_ids,
        [id(2), id(1), id(3)],
        "wave base+1 whole, then base+2"
    );

    let replay = resuming.await.unwrap().expect("replay");
    let replayed: Vec<_> = replay
        .events
        .iter()
        .filter(|d| d.event.asset_upc == upc)
        .map(|d| d.event_id.as_deref())
        .collect();
    assert_eq!(
        replayed, live_ids,
        "the resume replays what the live subscriber saw"
    );
    assert!(live.iter().all(|d| replay.covered.covers(d)));
    producer.close().await.unwrap();
    hub.close().await.unwrap();
}
