//! WebSocket limits and lifecycles (SPEC section 5b), over real clients of both
//! protocols: `connection_init` timeout, keep-alives, subscriptions per socket,
//! sockets per instance and per user, token expiry, a reader that stops reading
//! (WebSocket or HTTP stream), shared executions.
//! On embedded apps (the rules are the socket loop's, whatever feeds the events),
//! but for the stop with a stalled reader, which needs the binary on real services.

use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway::Settings;
use serde_json::{json, Value};
use testkit::SqlServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::TestApp;
use crate::process::Process;
use crate::subscriptions::{acknowledged, acknowledged_port, connect, next, send, Ws};

const LEGACY: &str = "graphql-ws";
const MODERN: &str = "graphql-transport-ws";
const BOTH: [(&str, &str); 2] = [(MODERN, "subscribe"), (LEGACY, "start")];
const CHECKOUTS: &str = "subscription { checkout { id } }";

async fn app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::development();
    settings.server.port = 0;
    tweak(&mut settings);
    TestApp::with_settings(settings).await
}

async fn authed(app: &TestApp, protocol: &str, user: &str) -> Ws {
    let token = app.token(user).await;
    acknowledged(app, protocol, json!({ "authToken": token })).await
}

/// Reads until the socket closes: the close code, and every message before it.
async fn until_closed(ws: &mut Ws, within: Duration) -> (Option<u16>, Vec<Value>) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(ws, left).await {
            Some(Ok(msg)) => seen.push(msg),
            Some(Err(code)) => return (Some(code), seen),
            None => return (None, seen),
        }
    }
}

#[tokio::test]
async fn a_socket_that_never_initialises_is_closed() {
    let app = app_with(|s| s.subscriptions.init_timeout = Duration::from_millis(300)).await;
    let mut modern = connect(&app, MODERN).await;
    let started = Instant::now();
    let (code, _) = until_closed(&mut modern, Duration::from_secs(10)).await;
    assert_eq!(code, Some(4408));
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut legacy = connect(&app, LEGACY).await;
    let (code, seen) = until_closed(&mut legacy, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["type"], "connection_error", "{seen:?}");
    assert!(code.is_some(), "then closed");

    // An initialised socket outlives the timeout.
    let mut open = authed(&app, MODERN, "user3").await;
    send(
        &mut open,
        json!({"id": "q", "type": "subscribe", "payload": {"query": "{ books { title } }"}}),
    )
    .await;
    let answer = next(&mut open, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer["type"], "next", "{answer}");
    tokio::time::sleep(Duration::from_millis(600)).await; // past the init timeout
    send(
        &mut open,
        json!({"id": "r", "type": "subscribe", "payload": {"query": "{ books { title } }"}}),
    )
    .await;
    let mut types = Vec::new();
    while let Some(Ok(m)) = next(&mut open, Duration::from_secs(2)).await {
        types.push(m["type"].as_str().unwrap_or_default().to_string());
        if m["id"] == "r" && m["type"] == "next" {
            break;
        }
    }
    assert!(types.contains(&"next".to_string()), "{types:?}");
}

#[tokio::test]
async fn keepalives_flow_on_both_protocols_and_a_silent_client_is_dropped() {
    let app = app_with(|s| s.subscriptions.keepalive = Duration::from_millis(200)).await;
    let mut legacy = authed(&app, LEGACY, "user3").await;
    let ka = next(&mut legacy, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ka, json!({"type": "ka"}));

    let mut modern = authed(&app, MODERN, "user3").await;
    let ping = next(&mut modern, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ping["type"], "ping");
    // A client that answers (a pong, and tungstenite's automatic WebSocket pongs
    // while it reads) stays open well past three periods.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        match next(&mut modern, Duration::from_millis(300)).await {
            Some(Ok(m)) if m["type"] == "ping" => send(&mut modern, json!({"type": "pong"})).await,
            Some(Ok(_)) | None => {}
            Some(Err(code)) => panic!("an answering client was closed ({code})"),
        }
    }

    // One that stops reading (so answers nothing) is closed after three.
    let mut silent = authed(&app, MODERN, "user3").await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // not reading: that is the case
    let (code, _) = until_closed(&mut silent, Duration::from_secs(5)).await;
    assert_eq!(code, Some(1001));
}

#[tokio::test]
async fn subscriptions_per_socket_are_bounded() {
    let app = app_with(|s| s.subscriptions.max_subscriptions = 2).await;
    for (protocol, start) in BOTH {
        let mut ws = authed(&app, protocol, "user3").await;
        for id in ["1", "2", "3"] {
            send(
                &mut ws,
                json!({"id": id, "type": start, "payload": {"query": CHECKOUTS}}),
            )
            .await;
        }
        let refused = next(&mut ws, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(refused["type"], "error", "{protocol}: {refused}");
        assert_eq!(refused["id"], "3");
        let error = if protocol == MODERN {
            &refused["payload"][0]
        } else {
            &refused["payload"]
        };
        assert_eq!(
            error["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
            "{refused}"
        );

        // Ending one makes room: a query on the socket is answered.
        let stop = if protocol == MODERN {
            "complete"
        } else {
            "stop"
        };
        send(&mut ws, json!({"id": "1", "type": stop})).await;
        send(
            &mut ws,
            json!({"id": "4", "type": start, "payload": {"query": "{ books { title } }"}}),
        )
        .await;
        let mut answered = None;
        while let Some(Ok(m)) = next(&mut ws, Duration::from_secs(5)).await {
            if m["id"] == "4" {
                answered = Some(m);
                break;
            }
        }
        let answered = answered.expect("the fourth operation is answered");
        assert_ne!(answered["type"], "error", "{protocol}: {answered}");
        assert!(
            answered["payload"]["data"]["books"].is_array(),
            "{answered}"
        );
    }

    // graphql-transport-ws: an id already running closes the socket (4409).
    let mut ws = authed(&app, MODERN, "user3").await;
    for _ in 0..2 {
        send(
            &mut ws,
            json!({"id": "same", "type": "subscribe", "payload": {"query": CHECKOUTS}}),
        )
        .await;
    }
    let (code, _) = until_closed(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, Some(4409));
}

#[tokio::test]
async fn sockets_per_instance_are_bounded() {
    let app = app_with(|s| s.subscriptions.max_sockets = 2).await;
    let first = connect(&app, MODERN).await;
    let _second = connect(&app, LEGACY).await;
    let mut req = format!("ws://127.0.0.1:{}/graphql", app.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", MODERN.parse().unwrap());
    match tokio_tungstenite::connect_async(req.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .expect("a JSON error body");
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "TOO_MANY_SOCKETS",
                "{body}"
            );
        }
        other => panic!("a third socket was not refused: {:?}", other.map(|_| ())),
    }
    // A closed socket frees its place (once the server has seen the close).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio_tungstenite::connect_async(req.clone()).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sockets_per_user_are_bounded() {
    let app = app_with(|s| s.subscriptions.max_sockets_per_user = 1).await;
    let _held = authed(&app, MODERN, "user3").await;
    let token = app.token("user3").await;

    let mut modern = connect(&app, MODERN).await;
    send(
        &mut modern,
        json!({"type": "connection_init", "payload": {"authToken": token}}),
    )
    .await;
    let (code, _) = until_closed(&mut modern, Duration::from_secs(5)).await;
    assert_eq!(code, Some(4429));

    let mut legacy = connect(&app, LEGACY).await;
    send(
        &mut legacy,
        json!({"type": "connection_init", "payload": {"authToken": token}}),
    )
    .await;
    let refused = next(&mut legacy, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused["type"], "connection_error", "{refused}");

    // Another user is not affected.
    let _other = authed(&app, MODERN, "user2").await;
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let app = app_with(|_| {}).await;
    for (protocol, start) in BOTH {
        // 1 s of life, plus the verifier's 5 s of tolerated clock skew.
        let token = app
            .get("/dev/token/user3?ttl=1")
            .await
            .text()
            .await
            .unwrap();
        let mut ws = acknowledged(&app, protocol, json!({ "authToken": token })).await;
        send(
            &mut ws,
            json!({"id": "1", "type": start, "payload": {"query": CHECKOUTS}}),
        )
        .await;
        let started = Instant::now();
        let (code, seen) = until_closed(&mut ws, Duration::from_secs(20)).await;
        assert!(
            started.elapsed() > Duration::from_millis(500),
            "not before it expires"
        );
        match protocol {
            MODERN => assert_eq!(code, Some(4403), "{seen:?}"),
            _ => {
                let said = seen.iter().find(|m| m["type"] == "connection_error");
                assert!(said.is_some(), "{seen:?}");
                assert!(code.is_some());
            }
        }
    }
}

/// A subscriber that stops reading is dropped once a send to it takes longer than
/// `WS_SEND_TIMEOUT`, while another subscriber keeps getting every event.
#[tokio::test]
async fn a_reader_that_stops_reading_is_dropped_without_slowing_others() {
    let app = app_with(|s| s.subscriptions.send_timeout = Duration::from_millis(500)).await;
    let token = app.token("user1").await;
    let _stalled = stall_and_flood(app.port, &app.base, &token, "9000000020").await;
    // The stalled socket is gone, the reader is not.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.metrics().await.contains("graphql_websockets_open 1\n") {
        assert!(
            Instant::now() < deadline,
            "the stalled socket was never dropped: {}",
            app.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A subscriber that falls its buffer of events behind (`SUBSCRIPTION_BUFFER_EVENTS`,
/// 16 here; its socket full, the send timeout far off) is told
/// `SUBSCRIBER_TOO_SLOW` and its subscription ends,
/// while another subscriber of the same subscription (the same shared execution)
/// gets every event promptly; the late one's socket stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_falls_behind_is_told_and_dropped() {
    let app = app_with(|s| {
        s.subscriptions.send_timeout = Duration::from_secs(600);
        s.subscriptions.keepalive = Duration::from_secs(600);
        s.subscriptions.buffer = 16;
        s.limits.max_aliases = 120;
    })
    .await;
    let token = app.token("user1").await;
    // A client with a small receive buffer that stops reading once subscribed.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = socket
        .connect(([127, 0, 0, 1], app.port).into())
        .await
        .expect("connect");
    let mut req = format!("ws://127.0.0.1:{}/graphql", app.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", MODERN.parse().unwrap());
    let (mut late, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrade");
    send(
        &mut late,
        json!({"type": "connection_init", "payload": {"authToken": token}}),
    )
    .await;
    let ack = next(&mut late, Duration::from_secs(10)).await;
    assert_eq!(ack.unwrap().unwrap()["type"], "connection_ack");
    let query = wide_subscription(50);
    send(
        &mut late,
        json!({"id": "late", "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
    until_metric(
        &app,
        "graphql_subscriptions_active{transport=\"graphql-transport-ws\"} 1\n",
    )
    .await;
    // 8 MiB due to it: about twice what its socket's buffers and 16 events hold.
    let _reader = flood(
        app.port,
        &app.base,
        &token,
        &["9000000022"],
        50,
        (1, 8 << 20),
    )
    .await;
    // It reads again: what was buffered, then the error, then the end.
    let mut events = 0;
    let error = loop {
        let msg = next(&mut late, Duration::from_secs(10))
            .await
            .expect("a message within 10 s")
            .expect("the socket open");
        assert_eq!(msg["id"], "late", "{msg}");
        assert_eq!(msg["type"], "next", "ended after {events} events: {msg}");
        if msg["payload"]["errors"].is_array() {
            break msg["payload"].clone();
        }
        events += 1;
    };
    assert_eq!(
        error["errors"][0]["extensions"]["code"], "SUBSCRIBER_TOO_SLOW",
        "{error}"
    );
    let complete = next(&mut late, Duration::from_secs(10)).await;
    assert_eq!(
        complete.unwrap().unwrap(),
        json!({"id": "late", "type": "complete"})
    );
    // The socket itself is still served.
    send(&mut late, json!({"type": "ping"})).await;
    let pong = next(&mut late, Duration::from_secs(10)).await;
    assert_eq!(pong.unwrap().unwrap()["type"], "pong");
}

/// The issue's trial: a subscriber that stopped reading while its socket's buffers
/// filled, then SIGTERM. The stop does not wait for it: exit 0, every Closeable
/// closed, well within the send timeout (the drain abandons blocked sends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_hold_the_stop() {
    let owner = TestApp::real(SqlServer::MariaDb).await;
    let (mysql, mongo) = owner.databases().expect("real services").clone();
    let mut gateway = Process::start(
        SqlServer::MariaDb,
        &mysql.database,
        &mongo.database,
        &[("SHUTDOWN_TIMEOUT", "30"), ("WS_SEND_TIMEOUT", "20")],
    );
    let token = owner.token("user1").await;
    let (_stalled, _reader) = stall_and_flood(
        gateway.port,
        &gateway.base,
        &token,
        owner.copy("9000000023"),
    )
    .await;
    stops_cleanly_and_soon(&mut gateway);
}

/// SIGTERM to `gateway`: exit 0 well within the send timeout, every Closeable
/// closed.
fn stops_cleanly_and_soon(gateway: &mut Process) {
    let (code, took) = gateway.terminate(Duration::from_secs(60));
    let log = gateway.log();
    assert_eq!(code, 0, "{log}");
    assert!(
        took < Duration::from_secs(10),
        "the stop took {took:?}: {log}"
    );
    for name in [
        "kafka-consumer",
        "outbox-relay",
        "kafka-producer",
        "mysql-pool",
        "mongodb-client",
    ] {
        assert!(
            log.contains(&format!("closed closeable={name}")),
            "{name} did not close:\n{log}"
        );
    }
}

/// The same with HTTP streams: 5 SSE and 5 multipart subscriptions whose client
/// never reads, then SIGTERM. Each is cut off once the drain's closing bytes are
/// not taken: exit 0, every Closeable closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http_streams_do_not_hold_the_stop() {
    let owner = TestApp::real(SqlServer::MariaDb).await;
    let (mysql, mongo) = owner.databases().expect("real services").clone();
    let mut gateway = Process::start(
        SqlServer::MariaDb,
        &mysql.database,
        &mongo.database,
        // Events of about 17 KiB (100 aliases): the kernel lets a socket's send
        // buffer grow to 4 MiB, which takes fewer of them to fill.
        &[
            ("SHUTDOWN_TIMEOUT", "30"),
            ("WS_SEND_TIMEOUT", "20"),
            ("GRAPHQL_MAX_ALIASES", "120"),
        ],
    );
    let token = owner.token("user1").await;
    let mut stalled = Vec::new();
    for accept in [
        "text/event-stream",
        r#"multipart/mixed;subscriptionSpec="1.0""#,
    ] {
        for _ in 0..5 {
            stalled.push(stalled_stream(gateway.port, &token, accept, 50).await);
        }
    }
    let _reader = flood(
        gateway.port,
        &gateway.base,
        &token,
        &["9000000024", "9000000021", "9000000019", "9000000014"],
        50,
        // 6 MiB each: more than the socket's buffers (4 MiB sending, 4 KiB
        // receiving) and actix's write buffer hold.
        (stalled.len(), stalled.len() * (6 << 20)),
    )
    .await;
    stops_cleanly_and_soon(&mut gateway);
    drop(stalled);
}

/// Opens a socket with 50 wide subscriptions that never reads, and a reader with
/// one; floods (see `flood`) until far more than kernel buffers and the session's
/// channel hold is due to the stalled socket. Returns both sockets.
async fn stall_and_flood(port: u16, base: &str, token: &str, upc: &str) -> (Ws, Ws) {
    let query = wide_subscription(7);
    let mut stalled = acknowledged_port(port, MODERN, json!({ "authToken": token })).await;
    for id in 0..50 {
        send(
            &mut stalled,
            json!({"id": id.to_string(), "type": "subscribe", "payload": {"query": query}}),
        )
        .await;
    }
    let reader = flood(port, base, token, &[upc], 7, (50, 24 << 20)).await;
    (stalled, reader)
}

/// Opens a reader with one wide subscription (`pairs` of aliases), then checks `upcs` out and in
/// through `base` (all at once) until `due` bytes are due to `stalled` copies of
/// the subscription that never read, checking that the reader gets each checkout
/// promptly meanwhile. Returns the reader.
async fn flood(
    port: u16,
    base: &str,
    token: &str,
    upcs: &[&str],
    pairs: usize,
    (stalled, due): (usize, usize),
) -> Ws {
    let query = wide_subscription(pairs);
    let mut reader = acknowledged_port(port, MODERN, json!({ "authToken": token })).await;
    send(
        &mut reader,
        json!({"id": "r", "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
    let client = reqwest::Client::new();
    let gql = |query: &'static str, upc: &str| {
        let request = client
            .post(format!("{base}/graphql"))
            .bearer_auth(token)
            .json(&json!({"query": query, "variables": {"u": upc}}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // Any copy the demo data has out comes back first (an error for the others).
    futures::future::join_all(upcs.iter().map(|upc| gql(BACK, upc))).await;
    let mut pushed = 0usize;
    let mut mutations = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while pushed < due {
        assert!(Instant::now() < deadline, "too slow: {mutations} mutations");
        let made = futures::future::join_all(upcs.iter().map(|upc| gql(OUT, upc))).await;
        let mut ids: Vec<String> = made
            .iter()
            .map(|made| {
                made["data"]["checkoutAsset"]["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{made}"))
                    .to_string()
            })
            .collect();
        futures::future::join_all(upcs.iter().map(|upc| gql(BACK, upc))).await;
        mutations += upcs.len();
        // The reader sees these checkouts promptly, whatever the stalled client does.
        while !ids.is_empty() {
            match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    if let Some(at) = ids
                        .iter()
                        .position(|id| t.contains(&format!("\"id\":\"{id}\"")))
                    {
                        ids.swap_remove(at);
                        pushed += t.len() * stalled;
                    }
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("the reader stalled after {mutations} mutations: {other:?}"),
            }
        }
    }
    reader
}

/// An HTTP stream (`protocol`'s `Accept`) of the wide subscription from a client
/// that never reads, on a socket with a small receive buffer.
async fn stalled_stream(
    port: u16,
    token: &str,
    accept: &str,
    pairs: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut tcp = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let body = json!({ "query": wide_subscription(pairs) }).to_string();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\naccept: {accept}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("request head");
    tcp.write_all(body.as_bytes()).await.expect("request body");
    tcp
}

const OUT: &str =
    "mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }";
const BACK: &str = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";

/// A checkout subscription with `pairs` of patron and book aliases: with 7 (14
/// aliases, within the default limit) its events are over 2 KiB each.
fn wide_subscription(pairs: usize) -> String {
    let fields: String = (0..pairs)
        .map(|i| format!(" p{i}: patron {{ id firstName lastName email phoneCell yearRegistered }} b{i}: book {{ id title author genre isbn13 yearPublished }}"))
        .collect();
    format!("subscription {{ checkout {{ id assetUpc userEmail{fields} }} }}")
}

/// `graphql_subscriptions_active` counts running subscriptions per transport:
/// up when one starts, down when its client completes it.
#[tokio::test]
async fn subscriptions_are_counted_per_transport() {
    let app = TestApp::embedded().await;
    let until = |line: &'static str| until_metric(&app, line);
    let mut ws = authed(&app, MODERN, "user1").await;
    send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": CHECKOUTS}}),
    )
    .await;
    until("graphql_subscriptions_active{transport=\"graphql-transport-ws\"} 1\n").await;
    assert!(app
        .metrics()
        .await
        .contains("graphql_subscriptions_active{transport=\"sse\"} 0\n"));
    send(&mut ws, json!({"id": "1", "type": "complete"})).await;
    until("graphql_subscriptions_active{transport=\"graphql-transport-ws\"} 0\n").await;
}

/// Polls `/metrics` (the condition) until it has `line`, for at most 10 s.
async fn until_metric(app: &TestApp, line: &str) {
    until_metric_at(&app.base, line).await;
}

/// `until_metric` on the gateway at `base` (a child process, say).
async fn until_metric_at(base: &str, line: &str) {
    let metrics = || async {
        let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
        r.text().await.unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics().await.contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in {}",
            metrics().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next `next` message on subscription `id` of `ws`: its `checkout`.
async fn next_checkout(ws: &mut Ws, id: &str) -> Value {
    loop {
        let msg = next(ws, Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
            .expect("socket open");
        if msg["type"] == "next" && msg["id"] == id {
            return msg["payload"]["data"]["checkout"].clone();
        }
    }
}

/// Subscribers of the same subscription (document, variables and viewer scope)
/// share one execution, each still getting every event; one leaving does not stop
/// the others', the last leaving stops it. A selection that reaches a patron's
/// private fields is shared only by the same user.
#[tokio::test]
async fn subscribers_of_one_subscription_share_one_execution() {
    let app = TestApp::embedded().await;
    let shared = "subscription { checkout { id assetUpc } }";
    let personal = "subscription { checkout { id patron { firstName } } }";
    let mut sockets = Vec::new();
    for (user, query) in [
        // Two users with the same roles.
        ("user3", shared),
        ("user3", shared),
        ("apickerin0@51.la", shared),
        ("user3", personal),
        ("apickerin0@51.la", personal),
    ] {
        let mut ws = authed(&app, MODERN, user).await;
        send(
            &mut ws,
            json!({"id": "1", "type": "subscribe", "payload": {"query": query}}),
        )
        .await;
        sockets.push(ws);
    }
    until_metric(
        &app,
        "graphql_subscriptions_active{transport=\"graphql-transport-ws\"} 5\n",
    )
    .await;
    let executions = |n: usize| format!("graphql_subscription_executions_active {n}\n");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(&executions(3)),
        "one shared, one per user: {metrics}"
    );

    let token = app.token("user1").await;
    let upc = "9000000021";
    let check_out = || async {
        app.gql(Some(&token), BACK, json!({"u": upc})).await;
        let (_, made) = app.gql(Some(&token), OUT, json!({"u": upc})).await;
        made["data"]["checkoutAsset"]["id"].clone()
    };
    let id = check_out().await;
    assert!(id.is_string(), "{id}");
    for ws in &mut sockets {
        assert_eq!(next_checkout(ws, "1").await["id"], id);
    }

    // The first member leaves: the others' execution goes on.
    send(&mut sockets[0], json!({"id": "1", "type": "complete"})).await;
    until_metric(
        &app,
        "graphql_subscriptions_active{transport=\"graphql-transport-ws\"} 4\n",
    )
    .await;
    assert!(app.metrics().await.contains(&executions(3)));
    let id = check_out().await;
    for ws in &mut sockets[1..] {
        assert_eq!(next_checkout(ws, "1").await["id"], id);
    }
    // The last members of the shared one leave: it stops.
    drop(sockets.drain(..3));
    until_metric(&app, &executions(2)).await;
}

/// An HTTP stream whose client stops reading, with no stop in sight, is cut off
/// once its body has gone unpolled for a heartbeat period plus `WS_SEND_TIMEOUT`,
/// while a reader keeps getting every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http_stream_is_cut_off() {
    let app = app_with(|s| {
        s.subscriptions.send_timeout = Duration::from_millis(500);
        s.limits.max_aliases = 120;
    })
    .await;
    let token = app.token("user1").await;
    let multipart = r#"multipart/mixed;subscriptionSpec="1.0""#;
    let stalled = stalled_stream(app.port, &token, multipart, 50).await;
    let streams =
        |n: usize| format!("graphql_subscriptions_active{{transport=\"multipart\"}} {n}\n");
    until_metric(&app, &streams(1)).await;
    // 6 MiB due: more than the socket's buffers and actix's write buffer hold.
    let _reader = flood(
        app.port,
        &app.base,
        &token,
        &["9000000022"],
        50,
        (1, 6 << 20),
    )
    .await;
    until_metric(&app, &streams(0)).await;
    drop(stalled);
}

/// Issue 19's budget: an idle subscriber (a graphql-transport-ws socket with one
/// subscription, waiting for events) costs the gateway at most 16 KiB. Measured as
/// the resident memory that 400 more of them add to a gateway process that 100 have
/// warmed up (one-off allocations are no subscriber's). actix-http's idle
/// connection buffers alone were 16 KiB (vendor/README.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_subscriber_costs_at_most_16_kib() {
    let gateway = Process::embedded(&[("WS_MAX_SOCKETS_PER_USER", "1000")]);
    let token = reqwest::get(format!("{}/dev/token/user3", gateway.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut sockets = Vec::new();
    idle_subscribers(&gateway, &token, 100, &mut sockets).await;
    let before = gateway.rss_kib();
    idle_subscribers(&gateway, &token, 400, &mut sockets).await;
    let each = gateway.rss_kib().saturating_sub(before) as f64 / 400.0;
    assert!(each <= 16.0, "{each:.1} KiB per idle subscriber");
}

/// Opens `n` more subscribers of `CHECKOUTS` on `gateway` into `sockets`; returns
/// once the gateway counts them all running.
async fn idle_subscribers(gateway: &Process, token: &str, n: usize, sockets: &mut Vec<Ws>) {
    for _ in 0..n {
        let mut ws = acknowledged_port(gateway.port, MODERN, json!({ "authToken": token })).await;
        send(
            &mut ws,
            json!({"id": "1", "type": "subscribe", "payload": {"query": CHECKOUTS}}),
        )
        .await;
        sockets.push(ws);
    }
    let running = format!(
        "graphql_subscriptions_active{{transport=\"graphql-transport-ws\"}} {}\n",
        sockets.len()
    );
    until_metric_at(&gateway.base, &running).await;
}
