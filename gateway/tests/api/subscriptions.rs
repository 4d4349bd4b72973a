//! Subscriptions over both WebSocket protocols, fed by mutations.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::contract;
use crate::helpers::TestApp;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(app: &TestApp, protocol: &str) -> Ws {
    connect_port(app.port, protocol).await
}

/// `connect` to a gateway on `port` (a child process, say).
pub(crate) async fn connect_port(port: u16, protocol: &str) -> Ws {
    let mut req = format!("ws://127.0.0.1:{port}/graphql")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    ws
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON text message, or the close code; bounded so a hang fails.
pub(crate) async fn next(ws: &mut Ws, within: Duration) -> Option<Result<Value, u16>> {
    let msg = tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Some(Ok(serde_json::from_str(&t).unwrap())),
                Some(Ok(Message::Close(frame))) => {
                    return Some(Err(frame.map_or(1005, |f| f.code.into())))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await;
    msg.ok().flatten()
}

/// Checks copy `upc` out (and back in) until the subscriber sees the checkout: the
/// server subscribes asynchronously, so the first event may precede it.
async fn trigger_until_seen(app: &TestApp, ws: &mut Ws, upc: &str, data_type: &str) -> Value {
    let out = "mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }";
    let back = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";
    for _ in 0..10 {
        let made = app.as_user("user3", out, json!({"u": upc})).await;
        let id = made["data"]["checkoutAsset"]["id"].clone();
        assert!(id.is_string(), "{made}");
        while let Some(msg) = next(ws, Duration::from_secs(2)).await {
            let msg = msg.expect("socket open");
            if msg["type"] == data_type {
                let event = &msg["payload"]["data"]["checkoutStatusUpdate"];
                if event["id"] == id && event["assetUpc"] == upc {
                    return event.clone();
                }
            }
        }
        app.as_user("user2", back, json!({"u": upc})).await;
    }
    panic!("no event reached the subscriber");
}

const SUBSCRIPTION: &str = "subscription { checkoutStatusUpdate { id assetUpc userEmail checkinDate eventId patron { firstName } } }";

/// Connects with `protocol`, sends `connection_init` with `payload`, expects the ack.
pub(crate) async fn acknowledged(app: &TestApp, protocol: &str, payload: Value) -> Ws {
    acknowledged_port(app.port, protocol, payload).await
}

/// `acknowledged` on a gateway on `port`.
pub(crate) async fn acknowledged_port(port: u16, protocol: &str, payload: Value) -> Ws {
    let mut ws = connect_port(port, protocol).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": payload}),
    )
    .await;
    let ack = next(&mut ws, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws
}

/// `acknowledged`, then starts `SUBSCRIPTION` with the protocol's `start_type` message.
async fn subscribed(app: &TestApp, protocol: &str, payload: Value, start_type: &str) -> Ws {
    let mut ws = acknowledged(app, protocol, payload).await;
    send(
        &mut ws,
        json!({"id": "1", "type": start_type, "payload": {"query": SUBSCRIPTION}}),
    )
    .await;
    ws
}

async fn graphql_transport_ws_delivers_events(app: &TestApp) {
    let token = app.token("user3").await;
    let mut ws = subscribed(
        app,
        "graphql-transport-ws",
        json!({"authToken": token}),
        "subscribe",
    )
    .await;
    let event = trigger_until_seen(app, &mut ws, app.copy("9000000030"), "next").await;
    assert!(event["eventId"].is_string(), "{event}");
    assert_eq!(event["patron"]["firstName"], "Averill");
    assert_eq!(event["userEmail"], "apickerin0@51.la");
}
contract!(graphql_transport_ws_delivers_events);

async fn legacy_graphql_ws_delivers_events(app: &TestApp) {
    let token = app.token("user3").await;
    let payload = json!({"Authorization": format!("Bearer {token}")});
    let mut ws = subscribed(app, "graphql-ws", payload, "start").await;
    let event = trigger_until_seen(app, &mut ws, app.copy("9000000031"), "data").await;
    assert!(event["eventId"].is_string());
}
contract!(legacy_graphql_ws_delivers_events);

async fn bad_tokens_and_anonymous_subscribers_are_refused(app: &TestApp) {
    let mut ws = connect(app, "graphql-transport-ws").await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"authToken": "a.b.c"}}),
    )
    .await;
    assert_eq!(
        next(&mut ws, Duration::from_secs(10)).await,
        Some(Err(4403))
    );

    let mut legacy = connect(app, "graphql-ws").await;
    send(
        &mut legacy,
        json!({"type": "connection_init", "payload": {"authToken": "a.b.c"}}),
    )
    .await;
    let msg = next(&mut legacy, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg["type"], "connection_error");

    let mut anon = subscribed(app, "graphql-transport-ws", json!({}), "subscribe").await;
    let refused = next(&mut anon, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    // An execution error arrives as a result with errors (graphql-transport-ws).
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "NOT_AUTHORIZED"
    );
    // The refused (nullable) root field is present as null.
    assert_eq!(
        refused["payload"]["data"],
        json!({"checkoutStatusUpdate": null}),
        "{refused}"
    );
}
contract!(bad_tokens_and_anonymous_subscribers_are_refused);

/// A graphql-transport-ws subscription to `query` with `variables`.
async fn subscribe_to(app: &TestApp, query: &str, variables: Value) -> Ws {
    let token = app.token("user3").await;
    let mut ws = acknowledged(app, "graphql-transport-ws", json!({"authToken": token})).await;
    send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}),
    )
    .await;
    ws
}

/// The next `n` events on copy `upc` (other tests' events skipped); bounded.
async fn events_for(ws: &mut Ws, upc: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let msg = next(ws, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("only {} of {n} events arrived", got.len()))
            .expect("socket open");
        assert_eq!(msg["type"], "next", "{msg}");
        let event = &msg["payload"]["data"]["checkoutStatusUpdate"];
        if event["assetUpc"] == upc {
            got.push(event.clone());
        }
    }
    got
}

async fn a_client_resuming_after_its_last_event_misses_nothing(app: &TestApp) {
    let upc = app.copy("9000000032");
    let mut ws = subscribe_to(app, SUBSCRIPTION, json!({})).await;
    let seen = trigger_until_seen(app, &mut ws, upc, "next").await;
    let last_seen = seen["eventId"].as_str().expect("an eventId").to_string();
    drop(ws); // the client goes away

    // Missed while away: the copy is checked in, then out again.
    let back = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";
    let out = "mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }";
    let r = app.as_user("user2", back, json!({"u": upc})).await;
    assert_eq!(r["data"]["checkinAsset"]["id"], seen["id"], "{r}");
    let r = app.as_user("user3", out, json!({"u": upc})).await;
    let reopened = r["data"]["checkoutAsset"]["id"].clone();
    assert!(reopened.is_string(), "{r}");

    let resume = "subscription($after: ID) { checkoutStatusUpdate(after: $after) { id assetUpc checkinDate eventId } }";
    let mut ws = subscribe_to(app, resume, json!({"after": last_seen})).await;
    let missed = events_for(&mut ws, upc, 2).await;
    assert_eq!(missed[0]["id"], seen["id"], "first the checkin: {missed:?}");
    assert!(missed[0]["checkinDate"].is_string());
    assert_eq!(missed[1]["id"], reopened, "then the checkout: {missed:?}");
    assert!(missed[1]["checkinDate"].is_null());

    // Then live events, none of them a repeat.
    let r = app.as_user("user2", back, json!({"u": upc})).await;
    assert_eq!(r["data"]["checkinAsset"]["id"], reopened, "{r}");
    let live = events_for(&mut ws, upc, 1).await;
    assert_eq!(
        live[0]["id"], reopened,
        "live {live:?} after missed {missed:?} from {seen}"
    );
    assert!(live[0]["checkinDate"].is_string());
    let ids: std::collections::HashSet<_> = missed
        .iter()
        .chain(&live)
        .map(|e| e["eventId"].as_str().unwrap().to_string())
        .chain([last_seen])
        .collect();
    assert_eq!(ids.len(), 4, "every event once");

    // An id the server cannot place is an error, not a silent gap.
    let mut ws = subscribe_to(
        app,
        resume,
        json!({"after": "00000000-0000-7000-8000-000000000000"}),
    )
    .await;
    let refused = next(&mut ws, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );
}
contract!(a_client_resuming_after_its_last_event_misses_nothing);

/// Operations over WebSocket obey the same alias limit as over HTTP (they run on a
/// schema of their own, see `graphql::Schemas`): 15 aliases answer, 16 are refused.
async fn websocket_operations_obey_the_alias_limit(app: &TestApp) {
    let aliased = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("b{i}: books {{ title }}")).collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let mut ws = subscribe_to(app, &aliased(15), json!({})).await;
    let fine = next(&mut ws, Duration::from_secs(10))
        .await
        .expect("an answer")
        .expect("socket open");
    assert_eq!(fine["type"], "next", "{fine}");
    assert!(fine["payload"]["data"]["b14"].is_array(), "{fine}");

    let mut ws = subscribe_to(app, &aliased(16), json!({})).await;
    let refused = next(&mut ws, Duration::from_secs(10))
        .await
        .expect("an answer")
        .expect("socket open");
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(refused["payload"]["data"], Value::Null, "{refused}");
    assert!(
        refused["payload"]["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("aliases")),
        "{refused}"
    );
}
contract!(websocket_operations_obey_the_alias_limit);

/// The codes HTTP attaches are the WebSocket's too (one pipeline): a syntax error,
/// a validation error, and a failed field that stays present as `null`.
async fn websocket_errors_carry_the_same_codes_and_nulls(app: &TestApp) {
    let first_payload = |msg: Value| -> Value {
        match msg["type"].as_str() {
            // graphql-transport-ws sends request errors as `error` (a list) or `next`.
            Some("error") => json!({"errors": msg["payload"]}),
            _ => msg["payload"].clone(),
        }
    };
    for (query, code) in [
        ("{ books { title ", "GRAPHQL_PARSE_FAILED"),
        ("{ books { nope } }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let mut ws = subscribe_to(app, query, json!({})).await;
        let msg = next(&mut ws, Duration::from_secs(10))
            .await
            .expect("an answer")
            .expect("socket open");
        let payload = first_payload(msg);
        assert_eq!(
            payload["errors"][0]["extensions"]["code"], code,
            "{query}: {payload}"
        );
    }
    // user3 is no librarian: `patron` fails, and is present as null with its code.
    let q = r#"{ books { title } patron(email: "apickerin0@51.la") { firstName } }"#;
    let mut ws = subscribe_to(app, q, json!({})).await;
    let msg = next(&mut ws, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let data = msg["payload"]["data"].as_object().expect("data");
    assert_eq!(data.get("patron"), Some(&Value::Null), "{msg}");
    assert!(data["books"].is_array());
    assert_eq!(
        msg["payload"]["errors"][0]["extensions"]["code"], "NOT_AUTHORIZED",
        "{msg}"
    );
}
contract!(websocket_errors_carry_the_same_codes_and_nulls);

/// Each subscription event resolves with fresh loaders: a patron renamed between two
/// events shows the new name on the second (a socket-wide loader cache would not).
#[tokio::test]
async fn each_event_sees_the_patron_as_it_is_now() {
    let app = TestApp::real(testkit::SqlServer::MariaDb).await;
    let upc = "9000000026";
    let mut ws = subscribe_to(&app, SUBSCRIPTION, json!({})).await;
    let first = trigger_until_seen(&app, &mut ws, upc, "next").await;
    assert_eq!(first["patron"]["firstName"], "Averill", "{first}");

    let (_, mongo) = app.databases().expect("real services");
    let client = mongodb::Client::with_uri_str(&mongo.url).await.unwrap();
    let patrons = client
        .database(&mongo.database)
        .collection::<mongodb::bson::Document>("patrons");
    let renamed = patrons
        .update_one(
            mongodb::bson::doc! {"email": "apickerin0@51.la"},
            mongodb::bson::doc! {"$set": {"first_name": "Averell"}},
        )
        .await
        .unwrap();
    assert_eq!(renamed.modified_count, 1);

    let back = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";
    app.as_user("user2", back, json!({"u": upc})).await;
    let second = events_for(&mut ws, upc, 1).await;
    assert_eq!(second[0]["patron"]["firstName"], "Averell", "{second:?}");
}

/// Production masking reaches subscription events on both protocols: an instance
/// whose MongoDB goes away answers its subscribers' events with the masked message
/// and the code, never the driver's text. The events come from a second instance.
#[tokio::test]
async fn production_masks_internal_errors_in_events_on_both_protocols() {
    let writer = TestApp::real(testkit::SqlServer::MariaDb).await;
    let (_, mongo) = writer.databases().expect("real services").clone();
    let target: std::net::SocketAddr = mongo
        .url
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .parse()
        .expect("the harness's MongoDB URL is host:port");
    let proxy = testkit::FreezableProxy::start(target).await;
    let proxied = format!("mongodb://{}/?directConnection=true", proxy.addr());
    let reader = TestApp::sharing(&writer, |s| {
        s.production = true;
        if let Some(services) = s.services.as_mut() {
            services.mongo.url = proxied;
        }
    })
    .await;
    let token = reader.token("user3").await;
    let query = "subscription { checkoutStatusUpdate { id assetUpc patron { firstName } } }";
    let mut modern =
        acknowledged(&reader, "graphql-transport-ws", json!({"authToken": token})).await;
    send(
        &mut modern,
        json!({"id": "1", "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
    let legacy_init = json!({"Authorization": format!("Bearer {token}")});
    let mut legacy = acknowledged(&reader, "graphql-ws", legacy_init).await;
    send(
        &mut legacy,
        json!({"id": "1", "type": "start", "payload": {"query": query}}),
    )
    .await;
    drop(proxy); // the reader's MongoDB is gone; the writer's is not

    let upc = "9000000025";
    let out = "mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }";
    let back = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";
    // The reader subscribes asynchronously: mutate until both sockets have an event.
    let mut seen: [Option<Value>; 2] = [None, None];
    for round in 0..10 {
        let m = if round % 2 == 0 { out } else { back };
        writer.as_user("user2", m, json!({"u": upc})).await;
        for (ws, slot, data_type) in [(&mut modern, 0, "next"), (&mut legacy, 1, "data")] {
            while seen[slot].is_none() {
                let Some(msg) = next(ws, Duration::from_secs(8)).await else {
                    break;
                };
                let msg = msg.expect("socket open");
                if msg["type"] == data_type && msg["payload"]["errors"].is_array() {
                    seen[slot] = Some(msg["payload"].clone());
                }
            }
        }
        if seen.iter().all(Option::is_some) {
            break;
        }
    }
    for payload in seen {
        let payload = payload.expect("an event reached each protocol's subscriber");
        let error = &payload["errors"][0];
        assert_eq!(error["message"], "Internal server error", "{payload}");
        assert_eq!(
            error["extensions"]["code"], "INTERNAL_SERVER_ERROR",
            "{payload}"
        );
        assert_eq!(
            error["path"],
            json!(["checkoutStatusUpdate", "patron"]),
            "{payload}"
        );
    }
}

/// Opens `SUBSCRIPTION` as a streaming HTTP response (`accept`), then checks copy
/// `upc` out and in until an event for it arrives. Returns the content type and the
/// events' JSON documents (`split` cuts the text read into messages).
async fn over_http_stream(
    app: &TestApp,
    accept: &str,
    upc: &str,
    split: fn(&str) -> Vec<Value>,
) -> (String, Vec<Value>) {
    let token = app.token("user3").await;
    let mut resp = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(token)
        .header("accept", accept)
        .json(&json!({"query": SUBSCRIPTION}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    let out = "mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }";
    let back = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }";
    let mut text = String::new();
    for round in 0..10 {
        let m = if round % 2 == 0 { out } else { back };
        app.as_user("user2", m, json!({"u": upc})).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            let messages = split(&text);
            let ours = |m: &Value| {
                m["data"]["checkoutStatusUpdate"]["assetUpc"] == upc
                    || m["payload"]["data"]["checkoutStatusUpdate"]["assetUpc"] == upc
            };
            if messages.iter().any(ours) {
                return (content_type, messages);
            }
        }
    }
    panic!("no event reached the HTTP stream: {text:?}");
}

/// Apollo Client's HttpLink subscriptions: multipart parts, each `{"payload": …}`,
/// heartbeats `{}` between them.
async fn multipart_subscriptions_deliver_events(app: &TestApp) {
    let accept = r#"multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json"#;
    let parts = |text: &str| -> Vec<Value> {
        text.split("\r\n--graphql")
            .filter_map(|part| part.split_once("\r\n\r\n"))
            .filter_map(|(_, body)| serde_json::from_str(body.trim()).ok())
            .collect()
    };
    let (content_type, messages) =
        over_http_stream(app, accept, app.copy("9000000022"), parts).await;
    assert!(
        content_type.starts_with("multipart/mixed") && content_type.contains("subscriptionSpec"),
        "{content_type}"
    );
    assert_eq!(messages[0], json!({}), "a heartbeat first");
    let event = messages
        .iter()
        .find(|m| m["payload"]["data"].is_object())
        .expect("an event part");
    assert!(event["payload"]["data"]["checkoutStatusUpdate"]["eventId"].is_string());
    assert_eq!(
        event["payload"]["data"]["checkoutStatusUpdate"]["patron"]["firstName"],
        "Averill"
    );
}
contract!(multipart_subscriptions_deliver_events);

/// graphql-sse's distinct connections mode: `event: next` with the result as data.
async fn sse_subscriptions_deliver_events(app: &TestApp) {
    let events = |text: &str| -> Vec<Value> {
        text.split("\n\n")
            .filter(|e| e.starts_with("event: next\n"))
            .filter_map(|e| e.strip_prefix("event: next\ndata: "))
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    };
    let (content_type, messages) =
        over_http_stream(app, "text/event-stream", app.copy("9000000023"), events).await;
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let event = &messages[0]["data"]["checkoutStatusUpdate"];
    assert!(event["eventId"].is_string(), "{messages:?}");
}
contract!(sse_subscriptions_deliver_events);

/// The HTTP streams obey the same auth as every transport: a bad token is a 401
/// before any stream starts, and anonymous subscribers are refused in-band.
async fn http_streams_share_the_auth(app: &TestApp) {
    let r = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth("not-a-token")
        .header("accept", "text/event-stream")
        .json(&json!({"query": SUBSCRIPTION}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut r = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("accept", "text/event-stream")
        .json(&json!({"query": SUBSCRIPTION}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(5), r.chunk()).await {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if text.contains("event: complete") {
            break;
        }
    }
    assert!(text.contains("NOT_AUTHORIZED"), "{text}");
    assert!(text.ends_with("event: complete\ndata:\n\n"), "{text:?}");
}
contract!(http_streams_share_the_auth);
