//! What the one request pipeline guarantees on HTTP: failed fields present as
//! `null`, the GraphQL-over-HTTP media type, and metric labels a client cannot
//! multiply.

use serde_json::{json, Value};

use crate::contract;
use crate::helpers::{codes, TestApp};

/// The value at `pointer`, which must be present (a missing key is not `null`).
fn present<'a>(body: &'a Value, pointer: &str) -> &'a Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let object = body
        .pointer(parent)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no object at {parent}: {body}"));
    object
        .get(key)
        .unwrap_or_else(|| panic!("{key} is missing from {parent}: {body}"))
}

async fn failed_fields_are_present_as_null(app: &TestApp) {
    // A librarian who is not admin nor this patron: email and phoneCell fail.
    let q = r#"{ patron(email: "apickerin0@51.la") { firstName email phoneCell } }"#;
    let body = app.as_user("user2", q, json!({})).await;
    assert!(present(&body, "/data/patron/firstName").is_string());
    assert_eq!(present(&body, "/data/patron/email"), &Value::Null);
    assert_eq!(present(&body, "/data/patron/phoneCell"), &Value::Null);
    assert_eq!(codes(&body), ["NOT_AUTHORIZED", "NOT_AUTHORIZED"]);
    let paths: Vec<&Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["path"])
        .collect();
    assert_eq!(
        paths,
        [&json!(["patron", "email"]), &json!(["patron", "phoneCell"])]
    );

    // A refused nullable root field: present, null, beside the fields that resolved.
    let (_, body) = app
        .gql(
            None,
            r#"{ books { title } patron(email: "apickerin0@51.la") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(present(&body, "/data/patron"), &Value::Null);
    assert!(present(&body, "/data/books").is_array());
    assert_eq!(codes(&body), ["NOT_AUTHORIZED"]);

    // A failed non-null field (`checkoutDate: String!`, here under an alias) nulls
    // its nearest nullable parent: the list item `CheckOut`, not the whole list.
    let q = r#"{ checkouts(next: 2) { id when: checkoutDate(format: "DDD", locale: "it") } }"#;
    let body = app.as_user("user3", q, json!({})).await;
    assert_eq!(
        present(&body, "/data/checkouts"),
        &json!([null, null]),
        "{body}"
    );
    assert_eq!(codes(&body), ["BAD_USER_INPUT", "BAD_USER_INPUT"]);
    assert_eq!(body["errors"][0]["path"], json!(["checkouts", 0, "when"]));
}
contract!(failed_fields_are_present_as_null);

async fn the_graphql_response_media_type(app: &TestApp) {
    let post = |accept: &'static str, query: &'static str| {
        app.client
            .post(format!("{}/graphql", app.base))
            .header("accept", accept)
            .json(&json!({"query": query}))
            .send()
    };
    let ok = post("application/graphql-response+json", "{ books { title } }")
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-type"],
        "application/graphql-response+json"
    );
    let body: Value = ok.json().await.unwrap();
    assert!(body["data"]["books"].is_array());

    let bad = post("application/graphql-response+json", "{ books { title ")
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.headers()["content-type"],
        "application/graphql-response+json"
    );
    let body: Value = bad.json().await.unwrap();
    assert!(
        body.get("data").is_none(),
        "no data when nothing executed: {body}"
    );
    assert_eq!(codes(&body), ["GRAPHQL_PARSE_FAILED"]);

    // The seed's clients: application/json, 400 on a validation failure.
    let seed = post("application/json", "{ books { nope } }")
        .await
        .unwrap();
    assert_eq!(seed.status(), 400);
    assert_eq!(seed.headers()["content-type"], "application/json");
    let body: Value = seed.json().await.unwrap();
    assert_eq!(codes(&body), ["GRAPHQL_VALIDATION_FAILED"]);
}
contract!(the_graphql_response_media_type);

async fn operation_names_become_labels_only_when_defined_and_bounded(app: &TestApp) {
    // Names the document does not define are never labels.
    for i in 0..30 {
        let name = format!("MadeUp{i}");
        let r = app
            .client
            .post(format!("{}/graphql", app.base))
            .json(&json!({"query": "{ books { title } }", "operationName": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "an operation the document lacks");
    }
    // Defined names: the first 100 distinct ones, then `other`.
    for i in 0..120 {
        let query = format!("query Defined{i} {{ books {{ title }} }}");
        let (status, _) = app.gql(None, &query, json!({})).await;
        assert_eq!(status, 200);
    }
    let text = app.metrics().await;
    let labels: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("graphql_requests_total{"))
        .filter_map(|l| l.split("operation=\"").nth(1)?.split('"').next())
        .collect();
    assert!(
        !labels.iter().any(|l| l.starts_with("MadeUp")),
        "{labels:?}"
    );
    assert!(
        labels.contains("Defined0") && labels.contains("other"),
        "{labels:?}"
    );
    let defined = labels.iter().filter(|l| l.starts_with("Defined")).count();
    assert!(defined <= 100, "{defined} operation labels");
}
contract!(operation_names_become_labels_only_when_defined_and_bounded);

/// `GRAPHQL_REQUEST_TIMEOUT`: a query held in the database past it is answered with
/// `REQUEST_TIMEOUT` (504) at the limit, and the gateway serves the next one once the
/// database lets go (the connection the cancelled query held is usable or replaced).
#[tokio::test]
async fn a_query_held_past_the_timeout_is_cancelled() {
    use mysql_async::prelude::Queryable;
    let app = TestApp::real_with(testkit::SqlServer::MariaDb, |s| {
        s.limits.request_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let (mysql, _) = app.databases().expect("real services");
    let s = testkit::services();
    let mut admin = mysql_async::Conn::from_url(format!(
        "mysql://{}:{}@{}:{}/{}",
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        mysql.host,
        mysql.port,
        mysql.database
    ))
    .await
    .unwrap();
    admin
        .query_drop("LOCK TABLES checkouts WRITE")
        .await
        .unwrap();
    let token = app.token("user3").await;
    let query = "{ checkouts(next: 2) { id } }";
    let started = std::time::Instant::now();
    let (status, body) = app.gql(Some(&token), query, json!({})).await;
    let waited = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert_eq!(codes(&body), ["REQUEST_TIMEOUT"]);
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
    admin.query_drop("UNLOCK TABLES").await.unwrap();
    admin.disconnect().await.unwrap();
    let (status, body) = app.gql(Some(&token), query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["checkouts"].as_array().map(Vec::len), Some(2));
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Automatic persisted queries as Apollo Server 2 gave them: a hash alone misses
/// once, hash plus query stores and runs it, then the hash alone runs it, over POST
/// and GET; a hash that does not match its query is a 400; GET still never writes.
async fn automatic_persisted_queries(app: &TestApp) {
    // Unique per run of the case, so an earlier test's store cannot answer.
    let query = format!("query Apq{} {{ books {{ title }} }}", app.port);
    let hash = sha256_hex(&query);
    let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let post = |body: Value| {
        app.client
            .post(format!("{}/graphql", app.base))
            .json(&body)
            .send()
    };
    let r = post(json!({"extensions": ext})).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(codes(&body), ["PERSISTED_QUERY_NOT_FOUND"]);

    let r = post(json!({"query": query, "extensions": ext}))
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body["data"]["books"].is_array(), "{body}");

    let url = format!(
        "{}/graphql?extensions={}&operationName=Apq{}",
        app.base,
        urlencode(&ext.to_string()),
        app.port
    );
    let r = app
        .client
        .get(&url)
        .header("apollo-require-preflight", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["data"]["books"].is_array(), "GET by hash: {body}");

    let wrong =
        json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex("{ books { author } }")}});
    let r = post(json!({"query": query, "extensions": wrong}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        "provided sha does not match query"
    );

    // A stored mutation is still refused over GET.
    let mutation = "mutation { checkinAsset(assetUpc: \"9000000001\") { id } }";
    let m_ext = json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(mutation)}});
    let token = app.token("user2").await;
    let stored = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&token)
        .json(&json!({"query": mutation, "extensions": m_ext}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200, "stored (and run) over POST");
    let get = format!(
        "{}/graphql?extensions={}",
        app.base,
        urlencode(&m_ext.to_string())
    );
    let r = app
        .client
        .get(&get)
        .bearer_auth(&token)
        .header("apollo-require-preflight", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        405,
        "a GET never runs a mutation, stored or not"
    );
    // Operators see the hits and misses: one miss, two stored, two found by hash
    // (the mismatch is neither).
    let metrics = app.metrics().await;
    for (result, n) in [("miss", 1), ("registered", 2), ("hit", 2)] {
        let line = format!("graphql_persisted_queries_total{{result=\"{result}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}
contract!(automatic_persisted_queries);

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// CORS as the seed's Apollo Server 2 gave it (`CORS_ORIGINS=*`): a browser-shaped
/// preflight is answered with the headers Apollo's clients send, and the actual
/// request carries `Access-Control-Allow-Origin`.
async fn browser_apps_on_other_origins_are_allowed(app: &TestApp) {
    let url = format!("{}/graphql", app.base);
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example.org")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,apollo-require-preflight,x-apollo-operation-name",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "apollo-require-preflight",
        "x-apollo-operation-name",
    ] {
        assert!(allowed.contains(name), "{name} not allowed: {allowed}");
    }
    assert!(h.contains_key("access-control-max-age"));
    let r = app
        .client
        .post(&url)
        .header("origin", "https://app.example.org")
        .json(&json!({"query": "{ books { title } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}
contract!(browser_apps_on_other_origins_are_allowed);

/// An explicit origin list allows exactly those origins, with credentials.
#[tokio::test]
async fn an_origin_list_allows_only_its_origins_with_credentials() {
    let mut settings = gateway::Settings::development();
    settings.server.port = 0;
    settings.server.cors_origins = vec!["https://app.example.org".into()];
    let app = TestApp::with_settings(settings).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("https://app.example.org").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}
