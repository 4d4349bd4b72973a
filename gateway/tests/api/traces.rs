//! Traces (SPEC section 8), as a collector receives them: the gateway binary on
//! the real services, exporting OTLP/HTTP to the suite's own receiver.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::SqlServer;

use crate::helpers::{dev_login, Databases};
use crate::otlp::{Receiver, Span};
use crate::process::Process;
use crate::subscriptions::{acknowledged_port, next, send};

/// A caller's trace: its id and the span the gateway's server span continues.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN}-01")
}

/// The binary on `databases`, exporting to `receiver` as `service`. Only such
/// instances run on them, so the outbox relay's lease holder is traced too.
fn traced(databases: &Databases, receiver: &Receiver, service: &str) -> Process {
    let (mysql, mongo) = &databases.configs;
    Process::start(
        SqlServer::MariaDb,
        &mysql.database,
        &mongo.database,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_SERVICE_NAME", service),
            // Export every 50 ms instead of 5 s: the test waits for what arrives.
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("RUST_LOG", "info,gateway::http::middleware=debug"),
        ],
    )
}

async fn post(base: &str, token: &str, trace: &str, query: &str, variables: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .header("traceparent", trace)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .expect("request");
    response.json().await.expect("JSON")
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name:?} span expected in {spans:#?}");
    found[0]
}

/// Whether `span` descends from `ancestor` within `spans`.
fn descends(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut at = span;
    for _ in 0..spans.len() {
        if at.parent == ancestor.span_id {
            return true;
        }
        match spans.iter().find(|s| s.span_id == at.parent) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
    false
}

fn db_calls<'a>(spans: &'a [Span], system: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.attributes.get("db.system").map(String::as_str) == Some(system))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_is_one_trace_with_its_mysql_and_mongodb_calls() {
    let databases = Databases::seeded(SqlServer::MariaDb).await;
    let receiver = Receiver::start();
    let gateway = traced(&databases, &receiver, "gateway-a");
    let token = dev_login(&reqwest::Client::new(), "user1").await;
    // The page's patrons and books are fetched ahead for the whole list; their
    // histories through a loader, on a task of its own.
    let query = "query Page { checkouts(next: 5) { id patron { firstName checkOuts { id } } book { title } } }";
    let body = post(
        &gateway.base,
        &token,
        &traceparent(TRACE_ID),
        query,
        json!({}),
    )
    .await;
    assert!(
        body["data"]["checkouts"][4]["book"]["title"].is_string(),
        "{body}"
    );

    let spans = receiver
        .trace(TRACE_ID, Duration::from_secs(20), |spans| {
            named(spans, "query Page").len() == 1
                && db_calls(spans, "mysql").len() >= 2
                && db_calls(spans, "mongodb").len() >= 2
        })
        .await;
    let server = one(&spans, "POST /graphql");
    assert_eq!(
        server.parent, CALLER_SPAN,
        "the caller's trace is continued"
    );
    assert_eq!(server.service, "gateway-a");
    let operation = one(&spans, "query Page");
    assert_eq!(operation.parent, server.span_id);
    assert_eq!(operation.attributes["graphql.operation.type"], "query");
    assert_eq!(operation.attributes["graphql.operation.name"], "Page");
    // The batched load runs on a task of its own, yet stays under the operation.
    let load = one(&spans, "load checkouts by patron");
    assert_eq!(load.parent, operation.span_id);
    assert_eq!(one(&spans, "mysql by_emails").parent, load.span_id);
    for call in db_calls(&spans, "mysql")
        .into_iter()
        .chain(db_calls(&spans, "mongodb"))
    {
        assert!(
            descends(&spans, call, operation),
            "{call:?} outside the operation"
        );
        assert!(
            call.attributes.contains_key("db.operation.name"),
            "{call:?}"
        );
    }
    // The request's log lines carry its trace id.
    assert!(
        gateway.log().contains(&format!("trace_id={TRACE_ID}")),
        "{}",
        gateway.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_and_its_delivery_on_another_instance_are_one_trace() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let databases = Databases::seeded(SqlServer::MariaDb).await;
    let receiver = Receiver::start();
    let writer = traced(&databases, &receiver, "gateway-writer");
    let reader = traced(&databases, &receiver, "gateway-reader");
    let token = dev_login(&reqwest::Client::new(), "user1").await;
    let upc = "9000000016";

    // The subscriber's own trace travels in its connection_init payload.
    const SUBSCRIBER: &str = "2bf92f3577b34da6a3ce929d0e0e4731";
    let mut ws = acknowledged_port(
        reader.port,
        "graphql-transport-ws",
        json!({ "authToken": token, "traceparent": traceparent(SUBSCRIBER) }),
    )
    .await;
    let subscription = "subscription Watch { checkout { id eventId patron { firstName } } }";
    send(
        &mut ws,
        json!({"id": "1", "type": "subscribe", "payload": {"query": subscription}}),
    )
    .await;
    // The server subscribes asynchronously: check the copy out (and in again)
    // until the subscriber sees a checkout of it. Every mutation is in one trace.
    let out = "mutation Borrow($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }";
    let back = "mutation Return($u: String!) { checkinAsset(assetUpc: $u) { id } }";
    let parent = traceparent(TRACE);
    post(&writer.base, &token, &parent, back, json!({"u": upc})).await;
    let mut seen = None;
    for _ in 0..10 {
        let made = post(&writer.base, &token, &parent, out, json!({"u": upc})).await;
        let id = made["data"]["checkoutAsset"]["id"].clone();
        assert!(id.is_string(), "{made}");
        while let Some(msg) = next(&mut ws, Duration::from_secs(2)).await {
            let msg = msg.expect("socket open");
            let event = &msg["payload"]["data"]["checkout"];
            if msg["type"] == "next" && event["id"] == id {
                seen = event["eventId"].as_str().map(str::to_string);
                break;
            }
        }
        if seen.is_some() {
            break;
        }
        post(&writer.base, &token, &parent, back, json!({"u": upc})).await;
    }
    let seen = seen.expect("an event reached the subscriber");
    let subscribed = receiver
        .trace(SUBSCRIBER, Duration::from_secs(20), |spans| {
            !named(spans, "subscription Watch").is_empty()
        })
        .await;
    let watch = one(&subscribed, "subscription Watch");
    assert_eq!(
        watch.parent, CALLER_SPAN,
        "connection_init's trace is continued"
    );
    assert_eq!(watch.service, "gateway-reader");

    let spans = receiver
        .trace(TRACE, Duration::from_secs(20), |spans| {
            !named(spans, "deliver checkout").is_empty()
                && !named(spans, "load patrons").is_empty()
                && !named(spans, "publish checkout").is_empty()
        })
        .await;
    let delivery = named(&spans, "deliver checkout")[0];
    assert_eq!(delivery.service, "gateway-reader");
    assert_eq!(delivery.attributes["messaging.system"], "kafka");
    // Its parent is the event's publication (by whichever instance holds the
    // relay's lease), whose parent is the mutation's operation span, on the
    // other instance, whose parent is the server span that continued the
    // caller's trace.
    let parent_of = |span: &Span| {
        spans
            .iter()
            .find(|s| s.span_id == span.parent)
            .unwrap_or_else(|| panic!("{span:?}'s parent is not in the trace: {spans:#?}"))
    };
    let publish = parent_of(delivery);
    assert_eq!(publish.name, "publish checkout");
    assert_eq!(publish.attributes["messaging.system"], "kafka");
    let mutation = parent_of(publish);
    assert_eq!(mutation.name, "mutation Borrow");
    assert_eq!(mutation.service, "gateway-writer");
    let server = parent_of(mutation);
    assert_eq!(server.parent, CALLER_SPAN);
    // The delivery's own patron load is its child, on the reader.
    let load = named(&spans, "load patrons")
        .into_iter()
        .find(|s| s.parent == delivery.span_id)
        .unwrap_or_else(|| panic!("no load under the delivery: {spans:#?}"));
    assert_eq!(load.service, "gateway-reader");
    assert!(
        db_calls(&spans, "mysql")
            .iter()
            .any(|call| call.name == "mysql check_out" && call.parent == mutation.span_id),
        "the checkout's MySQL call is the mutation's: {spans:#?}"
    );

    // A client resuming after that event is replayed the next checkout: its
    // delivery links to that mutation's trace (long over, in general) instead of
    // joining it.
    const LATER: &str = "1bf92f3577b34da6a3ce929d0e0e4739";
    let later = traceparent(LATER);
    post(&writer.base, &token, &later, back, json!({"u": upc})).await;
    let made = post(&writer.base, &token, &later, out, json!({"u": upc})).await;
    let id = made["data"]["checkoutAsset"]["id"].clone();
    assert!(id.is_string(), "{made}");
    // Published once the live subscriber has it.
    loop {
        let msg = next(&mut ws, Duration::from_secs(10))
            .await
            .expect("the later checkout")
            .expect("socket open");
        if msg["payload"]["data"]["checkout"]["id"] == id {
            break;
        }
    }
    let resume = "subscription Resume($after: ID) { checkout(after: $after) { id } }";
    send(
        &mut ws,
        json!({"id": "2", "type": "subscribe", "payload": {"query": resume, "variables": {"after": seen}}}),
    )
    .await;
    let replayed = receiver
        .linked_to(LATER, Duration::from_secs(20), |spans| {
            spans.iter().any(|s| s.name == "deliver checkout")
        })
        .await;
    let replay = replayed
        .iter()
        .find(|s| s.name == "deliver checkout")
        .expect("a replayed delivery");
    assert_eq!(replay.attributes["replayed"], "true");
    assert_ne!(replay.trace_id, LATER, "linked, not a child");
    let later_spans = receiver
        .trace(LATER, Duration::from_secs(20), |spans| {
            !named(spans, "publish checkout").is_empty()
        })
        .await;
    let later_publish = named(&later_spans, "publish checkout")[0];
    assert!(replay
        .links
        .contains(&(LATER.to_string(), later_publish.span_id.clone())));
}
