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
    let metrics = || async {
        app.client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
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
    let text = metrics().await;
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
