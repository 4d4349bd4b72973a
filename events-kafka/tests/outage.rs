//! The outbox relay through a broker outage: a broker of this test's own (nisshi, from
//! the harness's cache) is frozen with SIGSTOP for 10 s while 100 events are written,
//! then resumed; the subscriber receives all 100, each once, in order per asset.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use data_mysql::{MysqlCheckouts, MysqlConfig};
use domain::{CheckoutStore, EventKind, Outbox};
use events_kafka::{EventHub, EventProducer, KafkaConfig, OutboxRelay, RelayConfig};
use shutdown::Closeable;
use testkit::{free_port, OwnBroker, SqlServer};

/// What each case starts from: a broker of its own, a fresh database with its
/// store, and a hub subscribed to the broker.
struct Rig {
    broker: OwnBroker,
    kafka: KafkaConfig,
    db: MysqlConfig,
    store: Arc<MysqlCheckouts>,
    hub: EventHub,
}

impl Rig {
    async fn start(server: SqlServer) -> Self {
        let broker = OwnBroker::start();
        let kafka = KafkaConfig::new(&format!("127.0.0.1:{}", broker.port()));
        let db = common::fresh_mysql_config(server);
        MysqlCheckouts::create_database(&db).await.unwrap();
        let store = Arc::new(MysqlCheckouts::connect(&db).await.unwrap());
        let hub = EventHub::start(&kafka).await.unwrap();
        Rig {
            broker,
            kafka,
            db,
            store,
            hub,
        }
    }

    /// Closes the hub and the store, and drops the database.
    async fn finish(self) {
        self.hub.close().await.unwrap();
        self.store.close().await.unwrap();
        MysqlCheckouts::drop_database(&self.db).await.unwrap();
    }
}

async fn a_broker_outage_loses_nothing_and_duplicates_nothing(server: SqlServer) {
    let rig = Rig::start(server).await;
    let (kafka, store) = (&rig.kafka, &rig.store);
    let mut rx = rig.hub.subscribe();
    let producer = Arc::new(EventProducer::new(kafka).unwrap());
    let relay = OutboxRelay::spawn(
        Arc::clone(store) as Arc<dyn Outbox>,
        Arc::clone(&producer),
        RelayConfig::default(),
    );

    rig.broker.freeze();
    // 100 events while the broker is frozen: 50 checkouts and 50 checkins.
    for i in 0..50 {
        let upc = demo_data::copy_upc(i % 10);
        store.check_out(&upc, "a@b.org").await.unwrap();
        store.check_in(&upc).await.unwrap();
        relay.kick();
    }
    // The outage lasts 10 s (the scenario, not a synchronisation).
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !store.unsent(200).await.unwrap().is_empty(),
        "nothing could be sent meanwhile"
    );
    rig.broker.thaw();

    receive_once_in_order(&mut rx, 100, 5).await;
    relay.close().await.unwrap();
    assert!(
        store.unsent(200).await.unwrap().is_empty(),
        "all marked sent"
    );
    producer.close().await.unwrap();
    rig.finish().await;
}

/// Receives `n` events, each once (bounded, so a loss fails), and checks that per
/// topic and key (asset), `each` of them, they arrive in commit order.
async fn receive_once_in_order(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<events_kafka::Delivered>>,
    n: usize,
    each: usize,
) {
    let mut seen = HashSet::new();
    let mut per_key: HashMap<(String, EventKind), Vec<i32>> = HashMap::new();
    let received = tokio::time::timeout(Duration::from_secs(90), async {
        while seen.len() < n {
            let d = rx.recv().await.expect("hub open");
            assert!(
                seen.insert(d.event_id.clone().unwrap()),
                "duplicate {:?}",
                d.event_id
            );
            per_key
                .entry((d.event.asset_upc.clone(), d.kind))
                .or_default()
                .push(d.event.id);
        }
    })
    .await;
    assert!(
        received.is_ok(),
        "only {} of {n} events arrived",
        seen.len()
    );
    for ((asset, kind), ids) in &per_key {
        assert_eq!(ids.len(), each, "{asset} {kind:?}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "order on {asset} {kind:?}: {ids:?}"
        );
    }
}

/// The outbox, with a gate the test opens: the relay takes its lease (and continues
/// its clock from the broker) and then waits at its first read until the test has
/// written the backlog and frozen the broker.
struct Gated {
    store: Arc<MysqlCheckouts>,
    reading: tokio::sync::watch::Sender<bool>,
    open: tokio::sync::watch::Sender<bool>,
}

#[async_trait::async_trait]
impl Outbox for Gated {
    async fn unsent(&self, limit: u32) -> Result<Vec<domain::OutboxEvent>, domain::StoreError> {
        self.reading.send_replace(true);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
        self.store.unsent(limit).await
    }
    async fn mark_sent(&self, seqs: &[i64]) -> Result<(), domain::StoreError> {
        self.store.mark_sent(seqs).await
    }
    async fn hold_lease(&self) -> Result<domain::Lease, domain::StoreError> {
        self.store.hold_lease().await
    }
    async fn release_lease(&self) {
        self.store.release_lease().await;
    }
    async fn purge_sent(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, domain::StoreError> {
        self.store.purge_sent(before, limit).await
    }
    async fn backlog(&self) -> Result<domain::OutboxBacklog, domain::StoreError> {
        self.store.backlog().await
    }
}

/// A backlog on distinct copies is queued as one batch (pipelined: all of it in
/// flight at once, not one event per broker round trip); closing while the broker
/// hangs is bounded by the drain timeout, marks nothing it could not confirm and
/// frees the lease; the next relay publishes everything, each event once and in
/// order per asset.
async fn a_backlog_goes_out_as_one_batch_and_close_is_bounded_while_the_broker_hangs(
    server: SqlServer,
) {
    let rig = Rig::start(server).await;
    let (kafka, store) = (&rig.kafka, &rig.store);
    let mut rx = rig.hub.subscribe();
    let gated = Arc::new(Gated {
        store: Arc::clone(store),
        reading: tokio::sync::watch::Sender::new(false),
        open: tokio::sync::watch::Sender::new(false),
    });
    let mut reading = gated.reading.subscribe();
    let producer = Arc::new(EventProducer::new(kafka).unwrap());
    let config = RelayConfig {
        drain_timeout: Duration::from_secs(1),
        ..RelayConfig::default()
    };
    let relay = OutboxRelay::spawn(
        Arc::clone(&gated) as Arc<dyn Outbox>,
        Arc::clone(&producer),
        config,
    );
    tokio::time::timeout(Duration::from_secs(20), reading.wait_for(|r| *r))
        .await
        .expect("the relay took its lease and reads")
        .unwrap();
    // 100 copies (a copy's events are not queued together: see the relay).
    for i in 0..100 {
        store
            .check_out(&format!("9{i:09}"), "a@b.org")
            .await
            .unwrap();
    }
    rig.broker.freeze();
    gated.open.send_replace(true);
    // Polls the producer (the condition), bounded.
    let queued = tokio::time::timeout(Duration::from_secs(20), async {
        while producer.in_flight() < 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(queued.is_ok(), "{} of 100 in flight", producer.in_flight());
    assert!(relay.stats().lease_held());

    let started = std::time::Instant::now();
    relay.close().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "close took {took:?}");
    assert!(!relay.stats().lease_held());
    assert_eq!(relay.stats().published(), 0);
    assert_eq!(
        store.unsent(200).await.unwrap().len(),
        100,
        "nothing unconfirmed is marked sent"
    );
    rig.broker.thaw();

    // A new relay (as a standby would) takes the lease at once and sends it all.
    let next_producer = Arc::new(EventProducer::new(kafka).unwrap());
    let next = OutboxRelay::spawn(
        Arc::clone(store) as Arc<dyn Outbox>,
        Arc::clone(&next_producer),
        RelayConfig::default(),
    );
    // What the first relay had on the wire may land too: each event still
    // arrives once.
    receive_once_in_order(&mut rx, 100, 1).await;
    // The outbox drains (polled: the relay's progress is the condition).
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while !store.unsent(1).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(drained.is_ok(), "all marked sent");
    next.close().await.unwrap();
    assert_eq!(next.stats().published(), 100);
    // The first producer's flush may time out on what it had in flight: bounded.
    let _ = producer.close().await;
    next_producer.close().await.unwrap();
    rig.finish().await;
}

/// A new lease holder continues after the newest timestamp on the topics: here a
/// previous holder's clock ran two minutes ahead, and the new holder's event still
/// comes after its last one in publication order.
async fn a_new_holder_continues_after_the_newest_timestamp_on_the_topics(server: SqlServer) {
    let rig = Rig::start(server).await;
    let (kafka, store) = (&rig.kafka, &rig.store);
    let mut rx = rig.hub.subscribe();
    let producer = Arc::new(EventProducer::new(kafka).unwrap());
    let ahead_ms = chrono::Utc::now().timestamp_millis() + 120_000;
    let earlier = domain::Checkout {
        id: 1,
        user_email: "a@b.org".into(),
        asset_upc: demo_data::copy_upc(1),
        checkout_date: chrono::Utc::now(),
        checkin_date: None,
    };
    let payload = serde_json::to_string(&domain::CheckoutEvent::from(&earlier)).unwrap();
    producer
        .publish(
            "checkin",
            &earlier.asset_upc,
            "previous-holder",
            &payload,
            ahead_ms,
        )
        .await
        .unwrap();
    store
        .check_out(&demo_data::copy_upc(2), "a@b.org")
        .await
        .unwrap();
    let relay = OutboxRelay::spawn(
        Arc::clone(store) as Arc<dyn Outbox>,
        Arc::clone(&producer),
        RelayConfig::default(),
    );
    let mut stamps = HashMap::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while stamps.len() < 2 {
            let d = rx.recv().await.expect("hub open");
            stamps.insert(d.event.asset_upc.clone(), d.timestamp_ms);
        }
    })
    .await
    .expect("both events arrive");
    assert_eq!(stamps[&demo_data::copy_upc(1)], ahead_ms);
    assert!(
        stamps[&demo_data::copy_upc(2)] > ahead_ms,
        "the new holder's event is stamped after the newest: {stamps:?}"
    );
    relay.close().await.unwrap();
    producer.close().await.unwrap();
    rig.finish().await;
}

testkit::on_each_sql_server!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_broker_outage_loses_nothing_and_duplicates_nothing,
    a_backlog_goes_out_as_one_batch_and_close_is_bounded_while_the_broker_hangs,
    a_new_holder_continues_after_the_newest_timestamp_on_the_topics,
);

/// The hub's settings for a broker on `port`, looking for it every 200 ms.
fn watching(port: u16) -> KafkaConfig {
    let mut kafka = KafkaConfig::new(&format!("127.0.0.1:{port}"));
    kafka.metadata_refresh = Duration::from_millis(200);
    kafka.call_timeout = Duration::from_secs(2);
    kafka
}

/// Polls the hub's status (the condition) until `ok`, bounded.
async fn until_status(hub: &EventHub, ok: impl Fn(&events_kafka::HubStatus) -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !ok(&hub.status()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("hub status stayed {:?}", hub.status()));
}

/// Publishes one checkout event for `upc` and waits for the hub to deliver it.
async fn delivered_through(hub: &EventHub, kafka: &KafkaConfig, upc: &str) {
    let mut rx = hub.subscribe();
    let producer = EventProducer::new(kafka).unwrap();
    let event = domain::CheckoutEvent::from(&domain::Checkout {
        id: 1,
        user_email: "a@b.org".into(),
        asset_upc: upc.into(),
        checkout_date: chrono::Utc::now(),
        checkin_date: None,
    });
    let payload = serde_json::to_string(&event).unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    producer
        .publish(
            "checkout",
            upc,
            &id,
            &payload,
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        .expect("acknowledged");
    let got = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("delivered within 30 s")
        .expect("hub open");
    assert_eq!(got.event_id.as_deref(), Some(id.as_str()));
    producer.close().await.unwrap();
}

/// The broker absent when the hub starts: the hub starts anyway, says so, and
/// consumes once the broker appears; topics created after that are picked up.
#[tokio::test]
async fn a_hub_started_without_a_broker_consumes_once_it_appears() {
    let port = free_port();
    let kafka = watching(port);
    let started = std::time::Instant::now();
    let hub = EventHub::start(&kafka)
        .await
        .expect("starts without a broker");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(hub.status().unreachable.is_some(), "{:?}", hub.status());

    // The broker appears, without topics yet: reachable, nothing to consume.
    let broker = OwnBroker::start_on(port, false);
    until_status(&hub, |s| s.unreachable.is_none()).await;
    // Topics created now are picked up (from their beginning) and delivered.
    broker.create_topics();
    until_status(&hub, |s| s.partitions == 6).await;
    delivered_through(&hub, &kafka, "T000000001").await;
    hub.close().await.unwrap();
}

/// An event published after the broker came back but before the hub's next look is
/// not missed: partitions first seen after an unreachable start are read from the
/// hub's start time, not from their end.
#[tokio::test]
async fn events_published_before_the_hub_sees_the_broker_again_are_delivered() {
    let broker = OwnBroker::start();
    broker.freeze();
    let mut kafka = watching(broker.port());
    // Long enough that the publication below lands before the hub looks again.
    kafka.metadata_refresh = Duration::from_secs(3);
    let hub = EventHub::start(&kafka)
        .await
        .expect("starts without a broker");
    assert!(hub.status().unreachable.is_some());
    broker.thaw();
    delivered_through(&hub, &kafka, "T000000002").await;
    // Right after the thaw a topic's metadata may still be incomplete: the rest
    // is picked up at a later look.
    until_status(&hub, |s| s.partitions == 6).await;
    hub.close().await.unwrap();
}
