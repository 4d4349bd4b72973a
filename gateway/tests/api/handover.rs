//! The relay lease holder killed with SIGKILL in the middle of a burst of mutations
//! (issue 21): the standby takes over within a bounded time, a subscriber gets every
//! event once and in commit order per copy, and a subscriber resuming after an
//! event published before the kill misses nothing. Instance A is the `gateway`
//! binary (a process, so it can be killed), B an in-process app on the same
//! databases that takes the mutations and serves the subscribers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::SqlServer;

use crate::helpers::{real_settings, seed, Databases, TestApp};
use crate::process::Process;
use crate::subscriptions::{acknowledged, next, send, Ws};

/// Polls `/metrics` at `base` (the condition) until the relay lease is `held`;
/// how long that took, or a failure past `within`.
async fn until_lease(
    client: &reqwest::Client,
    base: &str,
    held: bool,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let line = format!("outbox_relay_lease_held {}", u8::from(held));
    loop {
        let text = match client.get(format!("{base}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(&line) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "no {line:?} at {base} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SUBSCRIPTION: &str = "subscription($after: ID) { checkoutStatusUpdate(after: $after) { id assetUpc userEmail checkinDate eventId } }";

/// One event as the subscriber saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Seen {
    event_id: String,
    upc: String,
    row: i64,
    checkin: bool,
}

/// A subscriber on `app`, resuming after `after` when given.
async fn subscriber(app: &TestApp, token: &str, after: Option<&str>) -> Ws {
    let mut ws = acknowledged(app, "graphql-transport-ws", json!({"authToken": token})).await;
    let payload = json!({"query": SUBSCRIPTION, "variables": {"after": after}});
    send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": payload}),
    )
    .await;
    ws
}

/// The next event of `email` on one of `upcs`; `None` past `deadline`.
async fn next_event(
    ws: &mut Ws,
    email: &str,
    upcs: &HashSet<String>,
    deadline: Instant,
) -> Option<Seen> {
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let msg = next(ws, left).await?.expect("socket open");
        assert_ne!(msg["type"], "error", "{msg}");
        let e = &msg["payload"]["data"]["checkoutStatusUpdate"];
        let upc = e["assetUpc"].as_str().unwrap_or_default();
        if msg["type"] != "next" || e["userEmail"] != email || !upcs.contains(upc) {
            continue;
        }
        return Some(Seen {
            event_id: e["eventId"].as_str().expect("an event id").to_string(),
            upc: upc.to_string(),
            row: e["id"]
                .as_str()
                .and_then(|i| i.parse().ok())
                .expect("a row id"),
            checkin: !e["checkinDate"].is_null(),
        });
    }
}

/// Per copy, consecutive events follow commit order: a checkout, then its own
/// check-in, then a later checkout.
fn assert_commit_order_per_copy(events: &[Seen]) {
    let mut per_copy: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for e in events {
        per_copy.entry(&e.upc).or_default().push(e);
    }
    for (upc, list) in per_copy {
        for pair in list.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let ok = if a.checkin {
                !b.checkin && b.row > a.row
            } else {
                b.checkin && b.row == a.row
            };
            assert!(ok, "out of order on {upc}: {a:?} then {b:?}");
        }
    }
}

async fn a_holder_killed_mid_burst_loses_reorders_and_duplicates_nothing(server: SqlServer) {
    let (settings, mysql, mongo) = real_settings(server);
    seed(&mysql, &mongo).await;
    let client = reqwest::Client::new();
    let mut a = Process::start(server, &mysql.database, &mongo.database, &[]);
    until_lease(&client, &a.base, true, Duration::from_secs(20)).await;
    let databases = Databases {
        configs: (mysql, mongo),
    };
    let b = TestApp::start(settings, Some(server), Some(databases)).await;

    // This run's patron and copies, which no other case uses (every real-services
    // app shares the topics, and a copy's events are ordered by copy): one to see
    // the subscription live, five for the burst.
    let patrons = demo_data::patrons();
    let (email, warm_up, burst) = match server {
        SqlServer::MariaDb => (&patrons[20].email, 4, [6, 8, 10, 12, 13]),
        SqlServer::Mysql => (&patrons[21].email, 14, [15, 16, 19, 21, 24]),
    };
    let email = email.clone().expect("an email");
    let upc = |n: u32| format!("90000000{n:02}");
    let warm_up = HashSet::from([upc(warm_up)]);
    let burst: HashSet<String> = burst.map(upc).into();
    let token = b.token("user2").await;
    let out =
        "mutation($u: String!, $e: String!) { checkoutAsset(assetUpc: $u, userEmail: $e) { id } }";
    let back = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";
    let vars = |upc: &str| json!({"u": upc, "e": email});
    // Some are out at the seed: in first (refused when already in; either is fine).
    for upc in warm_up.iter().chain(&burst) {
        b.gql(Some(&token), back, vars(upc)).await;
    }
    // The server subscribes asynchronously: cycle the warm-up copy until seen.
    let mut live = subscriber(&b, &token, None).await;
    let mut subscribed = false;
    for _ in 0..20 {
        let upc = warm_up.iter().next().expect("one copy");
        let (_, made) = b.gql(Some(&token), out, vars(upc)).await;
        assert!(made["data"]["checkoutAsset"]["id"].is_string(), "{made}");
        let deadline = Instant::now() + Duration::from_secs(2);
        subscribed = next_event(&mut live, &email, &warm_up, deadline)
            .await
            .is_some();
        b.gql(Some(&token), back, vars(upc)).await;
        if subscribed {
            break;
        }
    }
    assert!(subscribed, "the subscription never went live");

    // 200 mutations, 5 copies cycled concurrently; A is killed after the 60th.
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = burst
        .iter()
        .map(|upc| {
            let (app_base, token, upc, email) =
                (b.base.clone(), token.clone(), upc.clone(), email.clone());
            let (client, done) = (client.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                for _ in 0..20 {
                    for (query, field) in [(out, "checkoutAsset"), (back, "checkinAsset")] {
                        let body: Value = client
                            .post(format!("{app_base}/graphql"))
                            .bearer_auth(&token)
                            .json(&json!({"query": query, "variables": {"u": upc, "e": email}}))
                            .send()
                            .await
                            .expect("B answers")
                            .json()
                            .await
                            .expect("JSON");
                        assert!(body["data"][field]["id"].is_string(), "{body}");
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    while done.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.kill();
    let takeover = until_lease(&client, &b.base, true, Duration::from_secs(15)).await;
    for t in tasks {
        t.await.expect("every mutation succeeded");
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut events = Vec::new();
    while events.len() < 200 {
        match next_event(&mut live, &email, &burst, deadline).await {
            Some(e) => events.push(e),
            None => panic!("{} of 200 events arrived", events.len()),
        }
    }
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), 200, "each event once");
    assert_commit_order_per_copy(&events);
    eprintln!("standby took over {takeover:?} after the kill");

    // Resuming after an event published before the kill: every later event, once.
    let after = &events[30];
    let mut resumed_ws = subscriber(&b, &token, Some(&after.event_id)).await;
    let wanted: HashSet<&str> = events[31..].iter().map(|e| e.event_id.as_str()).collect();
    let mut resumed: Vec<Seen> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !wanted
        .iter()
        .all(|id| resumed.iter().any(|e| e.event_id == *id))
    {
        match next_event(&mut resumed_ws, &email, &burst, deadline).await {
            Some(e) => resumed.push(e),
            None => panic!(
                "the resumed subscriber got {} events, short of {:?}",
                resumed.len(),
                wanted.len()
            ),
        }
    }
    let unique: HashSet<&str> = resumed.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(unique.len(), resumed.len(), "each resumed event once");
    assert!(
        !unique.contains(after.event_id.as_str()),
        "not the resume point itself"
    );
    assert_commit_order_per_copy(&resumed);
}

mod a_holder_killed_mid_burst {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb() {
        super::a_holder_killed_mid_burst_loses_reorders_and_duplicates_nothing(
            testkit::SqlServer::MariaDb,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        super::a_holder_killed_mid_burst_loses_reorders_and_duplicates_nothing(
            testkit::SqlServer::Mysql,
        )
        .await;
    }
}
