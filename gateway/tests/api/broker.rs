//! The broker absent when the gateway starts (issue 19, SPEC 5b): the gateway
//! starts and is ready, says so in readiness and metrics, serves queries and
//! mutations (their events wait in the outbox), and once the broker appears every
//! event reaches the subscriber that was waiting, once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{free_port, OwnBroker, SqlServer};

use crate::helpers::TestApp;
use crate::subscriptions::{acknowledged, next, send};

const OUT: &str =
    "mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }";
const BACK: &str = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_absent_at_start_up_then_started_loses_nothing() {
    let port = free_port();
    let started = Instant::now();
    let app = TestApp::real_with(SqlServer::MariaDb, |s| {
        if let Some(services) = s.services.as_mut() {
            services.kafka_brokers = format!("127.0.0.1:{port}");
        }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(30), "started");

    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.unwrap();
    assert!(body.starts_with("OK") && body.contains("kafka"), "{body}");
    assert!(app.metrics().await.contains("kafka_broker_reachable 0"));

    let books = app.as_user("user3", "{ books { title } }", json!({})).await;
    assert!(
        books["data"]["books"]
            .as_array()
            .is_some_and(|b| !b.is_empty()),
        "{books}"
    );

    let token = app.token("user3").await;
    let mut ws = acknowledged(&app, "graphql-transport-ws", json!({ "authToken": token })).await;
    send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { checkoutStatusUpdate { id eventId checkinDate } }"}}),
    )
    .await;

    // Mutations while the broker is away: they succeed.
    let upc = "9000000020";
    let mut expected = HashSet::new();
    for _ in 0..3 {
        let made = app.as_user("user3", OUT, json!({"u": upc})).await;
        let id = made["data"]["checkoutAsset"]["id"]
            .as_str()
            .expect("checked out")
            .to_string();
        expected.insert((id.clone(), false));
        let back = app.as_user("user2", BACK, json!({"u": upc})).await;
        assert_eq!(back["data"]["checkinAsset"]["id"], id.as_str(), "{back}");
        expected.insert((id, true));
    }

    let _broker = OwnBroker::start_on(port, true);
    // And after it appeared.
    let made = app.as_user("user3", OUT, json!({"u": upc})).await;
    let id = made["data"]["checkoutAsset"]["id"]
        .as_str()
        .expect("checked out")
        .to_string();
    expected.insert((id, false));

    let mut seen = HashSet::new();
    let mut event_ids = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(msg) = next(&mut ws, left).await else {
            let metrics = app.metrics().await;
            let lines: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("kafka_") || l.starts_with("outbox_"))
                .collect();
            panic!("only {seen:?} of {expected:?} arrived; {lines:#?}");
        };
        let msg = msg.expect("socket open");
        if msg["type"] != "next" {
            continue;
        }
        let event = &msg["payload"]["data"]["checkoutStatusUpdate"];
        let key = (
            event["id"].as_str().unwrap_or_default().to_string(),
            event["checkinDate"].is_string(),
        );
        assert!(
            event_ids.insert(event["eventId"].to_string()),
            "delivered twice: {event}"
        );
        seen.insert(key);
    }
    assert_eq!(seen, expected);
    assert!(app.metrics().await.contains("kafka_broker_reachable 1"));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.text().await.unwrap(), "OK");
}
