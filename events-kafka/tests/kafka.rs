//! Against the harness's Kafka-API broker (nisshi), topics `checkout` and `checkin`.

use std::time::Duration;

use domain::{Checkout, CheckoutEvent, EventKind};
use events_kafka::{EventHub, EventProducer, KafkaConfig};
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
            .publish("checkout", &upc, &format!("{upc}-{i}"), &payload)
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
        .publish("checkin", &upc, "dup-id", &first)
        .await
        .unwrap();
    // A redelivery of the same event (at-least-once), then a new one.
    producer
        .publish("checkin", &upc, "dup-id", &first)
        .await
        .unwrap();
    producer
        .publish("checkin", &upc, "next-id", &second)
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
async fn close_returns_within_its_bound() {
    let mut config = config();
    config.call_timeout = Duration::from_secs(2);
    let hub = EventHub::start(&config).await.unwrap();
    let producer = EventProducer::new(&config).unwrap();
    let closing = async {
        producer.close().await.unwrap();
        hub.close().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(6), closing)
        .await
        .expect("closed within the bounds");
}

#[tokio::test]
async fn an_unreachable_broker_is_a_typed_error() {
    let mut config = KafkaConfig::new("127.0.0.1:9");
    config.call_timeout = Duration::from_millis(500);
    match EventHub::start(&config).await {
        Err(events_kafka::Error::Metadata(_)) => {}
        Err(other) => panic!("wrong error {other}"),
        Ok(_) => panic!("started without a broker"),
    }
}
