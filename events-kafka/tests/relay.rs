//! Several gateway instances relaying one outbox: every row is published once, by
//! the instance holding the lease, and a standby takes over when the holder leaves.
//! Against the harness's MariaDB and broker.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use data_mysql::MysqlCheckouts;
use domain::{CheckoutStore, Lease, Outbox, OutboxBacklog, OutboxEvent, StoreError};
use events_kafka::{EventHub, EventProducer, KafkaConfig, OutboxRelay, RelayConfig};
use shutdown::Closeable;
use testkit::SqlServer;

/// One instance's view of the outbox, recording which rows it marked sent (which it
/// published).
struct Instance {
    store: MysqlCheckouts,
    marked: Mutex<Vec<i64>>,
}

#[async_trait]
impl Outbox for Instance {
    async fn unsent(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        self.store.unsent(limit).await
    }
    async fn mark_sent(&self, seqs: &[i64]) -> Result<(), StoreError> {
        self.marked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(seqs);
        self.store.mark_sent(seqs).await
    }
    async fn hold_lease(&self) -> Result<Lease, StoreError> {
        self.store.hold_lease().await
    }
    async fn release_lease(&self) {
        self.store.release_lease().await;
    }
    async fn purge_sent(
        &self,
        sent_before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.store.purge_sent(sent_before, limit).await
    }
    async fn backlog(&self) -> Result<OutboxBacklog, StoreError> {
        self.store.backlog().await
    }
}

impl Instance {
    fn marked(&self) -> Vec<i64> {
        self.marked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A 10-character UPC unique to this run, so other tests' events do not mix in.
fn upc(run: &str, i: usize) -> String {
    format!("{run}{i:02}")
}

/// Waits until `n` events for this run's UPCs arrived; bounded so a loss fails.
async fn receive(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<events_kafka::Delivered>>,
    run: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while ids.len() < n {
            let d = rx.recv().await.expect("hub open");
            if d.event.asset_upc.starts_with(run) {
                ids.push(d.event_id.clone().expect("an event id"));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {n} events arrived", ids.len()));
    ids
}

/// Polls (the relays' progress is the condition) until nothing is left unsent.
async fn until_all_sent(store: &MysqlCheckouts) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !store.unsent(1).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the outbox drains");
}

async fn two_instances_never_publish_a_row_twice_and_a_standby_takes_over(server: SqlServer) {
    let db = common::fresh_mysql_config(server);
    MysqlCheckouts::create_database(&db).await.unwrap();
    let a = Arc::new(Instance {
        store: MysqlCheckouts::connect(&db).await.unwrap(),
        marked: Mutex::default(),
    });
    let b = Arc::new(Instance {
        store: MysqlCheckouts::connect(&db).await.unwrap(),
        marked: Mutex::default(),
    });
    let kafka = KafkaConfig::new(testkit::services().var("KAFKA_BROKERS"));
    let hub = EventHub::start(&kafka).await.unwrap();
    let mut rx = hub.subscribe();
    let producer = Arc::new(EventProducer::new(&kafka).unwrap());
    let spawn = |i: &Arc<Instance>| {
        OutboxRelay::spawn(
            Arc::clone(i) as Arc<dyn Outbox>,
            Arc::clone(&producer),
            RelayConfig::default(),
        )
    };
    let (relay_a, relay_b) = (spawn(&a), spawn(&b));

    // The run's UPC prefix: 8 digits from the unique name's tail.
    let name = testkit::unique_name("r");
    let run: String = name
        .chars()
        .rev()
        .filter(char::is_ascii_digit)
        .take(8)
        .collect();
    for i in 0..20 {
        a.store.check_out(&upc(&run, i), "a@b.org").await.unwrap();
        relay_a.kick();
        relay_b.kick();
    }
    let first = receive(&mut rx, &run, 20).await;
    until_all_sent(&a.store).await;
    let (holder, standby, holder_relay, standby_relay) = if a.marked().is_empty() {
        (&b, &a, relay_b, relay_a)
    } else {
        (&a, &b, relay_a, relay_b)
    };
    assert_eq!(
        holder.marked().len(),
        20,
        "the holder relayed every row once"
    );
    assert!(standby.marked().is_empty(), "the standby published nothing");
    assert!(holder_relay.stats().lease_held() && !standby_relay.stats().lease_held());
    assert_eq!(
        (
            holder_relay.stats().published(),
            standby_relay.stats().published()
        ),
        (20, 0)
    );

    // The holder leaves (its lease goes with it); the standby relays what follows.
    holder_relay.close().await.unwrap();
    for i in 0..10 {
        a.store.check_in(&upc(&run, i)).await.unwrap();
        standby_relay.kick();
    }
    let second = receive(&mut rx, &run, 10).await;
    until_all_sent(&a.store).await;
    assert_eq!(standby.marked().len(), 10, "the standby took over");

    let all: Vec<i64> = a.marked().into_iter().chain(b.marked()).collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no row was published twice");
    let ids: HashSet<_> = first.iter().chain(&second).collect();
    assert_eq!(ids.len(), 30, "each event arrived once");

    standby_relay.close().await.unwrap();
    hub.close().await.unwrap();
    producer.close().await.unwrap();
    a.store.close().await.unwrap();
    b.store.close().await.unwrap();
    MysqlCheckouts::drop_database(&db).await.unwrap();
}

testkit::on_each_sql_server!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    two_instances_never_publish_a_row_twice_and_a_standby_takes_over,
);
