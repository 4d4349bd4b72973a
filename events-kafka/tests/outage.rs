//! The outbox relay through a broker outage: a broker of this test's own (nisshi, from
//! the harness's cache) is frozen with SIGSTOP for 10 s while 100 events are written,
//! then resumed; the subscriber receives all 100, each once, in order per asset.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use data_mysql::{MysqlCheckouts, MysqlConfig};
use domain::{CheckoutStore, EventKind, Outbox};
use events_kafka::{EventHub, EventProducer, KafkaConfig, OutboxRelay};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shutdown::Closeable;
use testkit::SqlServer;

struct Broker {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start_broker() -> Broker {
    let bin = testkit::services().var("NISSHI_BIN").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(testkit::unique_name("nisshi"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .current_dir(&dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args([
            "--storage-engine",
            "memory://nisshi/",
            "--group-initial-rebalance-delay",
            "0s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nisshi");
    let broker = Broker {
        child,
        port,
        _dir: dir,
    };
    let ready = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // Poll the broker's readiness over its protocol (bounded).
    let mut up = false;
    for _ in 0..300 {
        if ready(&["topic", "list", "--broker", &url]) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "own broker did not start");
    for topic in ["checkout", "checkin"] {
        assert!(ready(&[
            "topic",
            "create",
            "--broker",
            &url,
            "--partitions",
            "3",
            "--silent",
            topic
        ]));
    }
    broker
}

async fn fresh_store(server: SqlServer) -> (MysqlCheckouts, MysqlConfig) {
    let config = common::fresh_mysql_config(server);
    MysqlCheckouts::create_database(&config).await.unwrap();
    (MysqlCheckouts::connect(&config).await.unwrap(), config)
}

async fn a_broker_outage_loses_nothing_and_duplicates_nothing(server: SqlServer) {
    let broker = start_broker();
    let kafka = KafkaConfig::new(&format!("127.0.0.1:{}", broker.port));
    let (store, db) = fresh_store(server).await;
    let store = Arc::new(store);
    let hub = EventHub::start(&kafka).await.unwrap();
    let mut rx = hub.subscribe();
    let producer = Arc::new(EventProducer::new(&kafka).unwrap());
    let relay = OutboxRelay::spawn(Arc::clone(&store) as Arc<dyn Outbox>, Arc::clone(&producer));

    let pid = Pid::from_raw(broker.child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
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
    kill(pid, Signal::SIGCONT).unwrap();

    let mut seen = HashSet::new();
    let mut per_key: HashMap<(String, EventKind), Vec<i32>> = HashMap::new();
    let received = tokio::time::timeout(Duration::from_secs(90), async {
        while seen.len() < 100 {
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
        "only {} of 100 events arrived",
        seen.len()
    );
    // Per topic and key (asset), events arrive in commit order.
    for ((asset, kind), ids) in &per_key {
        assert_eq!(ids.len(), 5, "{asset} {kind:?}");
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "order on {asset} {kind:?}: {ids:?}"
        );
    }
    relay.close().await.unwrap();
    assert!(
        store.unsent(200).await.unwrap().is_empty(),
        "all marked sent"
    );
    hub.close().await.unwrap();
    producer.close().await.unwrap();
    store.close().await.unwrap();
    MysqlCheckouts::drop_database(&db).await.unwrap();
}

testkit::on_each_sql_server!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_broker_outage_loses_nothing_and_duplicates_nothing,
);
