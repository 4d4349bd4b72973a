//! Hostile requests buy bounded work (SPEC section 5b): argument caps, page sizes,
//! the response size cap, and a JWT key URL that is down at start-up.

use std::time::Duration;

use gateway::Settings;
use serde_json::{json, Value};
use testkit::SqlServer;

use crate::helpers::{codes, TestApp};

/// Every error's code is `code`, and there is at least one.
fn all_coded(body: &Value, code: &str) {
    let codes = codes(body);
    assert!(
        !codes.is_empty() && codes.iter().all(|c| c == code),
        "{code}: {body}"
    );
}

#[tokio::test]
async fn a_huge_date_format_is_refused_at_the_cost_of_its_cap() {
    let app = TestApp::embedded().await;
    let q = r#"query($f: String, $l: String, $z: String) {
        books { copies { checkoutHistory { checkoutDate(format: $f, locale: $l, timezone: $z) } } }
    }"#;
    // The request that took a pod from 38 MB to 729 MB with a 156 MB reply.
    let huge = "yyyy MMMM ".repeat(10_000);
    let r = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({"query": q, "variables": {"f": huge, "l": "fr"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.len() < 512 * 1024, "{} bytes", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    all_coded(&body, "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("GRAPHQL_MAX_DATE_FORMAT_LENGTH")),
        "{body}"
    );

    let at_cap = "yyyy".repeat(16);
    let (_, ok) = app
        .gql(
            None,
            q,
            json!({"f": at_cap, "l": "fr-CA", "z": "Europe/Paris"}),
        )
        .await;
    assert_eq!(ok["errors"], Value::Null, "64 characters are fine: {ok}");

    for variables in [
        json!({"l": "it"}),
        json!({"l": "x".repeat(10_000)}),
        json!({"z": "Mars/Olympus_Mons"}),
        json!({"z": "Europe/".repeat(10_000)}),
    ] {
        let (status, body) = app.gql(None, q, variables.clone()).await;
        assert_eq!(status, 200);
        all_coded(&body, "BAD_USER_INPUT");
        assert!(body.to_string().len() < 512 * 1024, "{variables}");
    }
}

#[tokio::test]
async fn sorts_and_strings_are_capped() {
    let app = TestApp::embedded().await;
    let feed = r#"query($s: [SortObject!]) { checkoutFeed(sort: $s, next: 2) { pageInfo { totalEntries } } }"#;
    let twice = json!([
        {"field": "checkoutDate"},
        {"field": "assetUpc", "direction": "DESC"},
        {"field": "checkoutDate", "direction": "DESC"},
    ]);
    let (_, body) = app.gql(None, feed, json!({"s": twice})).await;
    all_coded(&body, "BAD_USER_INPUT");
    assert_eq!(body["data"]["checkoutFeed"], Value::Null, "{body}");
    let (_, body) = app
        .gql(
            None,
            feed,
            json!({"s": [{"field": "checkoutDate"}, {"field": "assetUpc"}]}),
        )
        .await;
    assert!(
        body["data"]["checkoutFeed"]["pageInfo"]["totalEntries"].is_number(),
        "{body}"
    );

    let long = "9".repeat(200_000);
    for (user, q) in [
        (
            "user3",
            "query($u: String) { checkouts(assetUpc: $u) { id } }",
        ),
        (
            "user3",
            "query($u: String) { checkoutFeed(assetUpc: $u) { entries { id } } }",
        ),
        (
            "user3",
            "query($u: ID) { checkoutFeed(queryId: $u) { entries { id } } }",
        ),
        ("user3", "query($u: String) { book(isbn13: $u) { title } }"),
        ("user2", "query($u: ID) { patron(id: $u) { firstName } }"),
        (
            "user3",
            r#"mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: "apickerin0@51.la") { id } }"#,
        ),
        (
            "user2",
            "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }",
        ),
    ] {
        let body = app.as_user(user, q, json!({"u": long})).await;
        all_coded(&body, "BAD_USER_INPUT");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("GRAPHQL_MAX_STRING_LENGTH")),
            "{q}: {body}"
        );
    }
}

async fn page_sizes_default_and_are_capped(app: &TestApp) {
    // The app runs with GRAPHQL_DEFAULT_PAGE_SIZE=7, GRAPHQL_MAX_PAGE_SIZE=20.
    let body = app
        .as_user("user3", "{ checkouts { id } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["checkouts"].as_array().map(Vec::len),
        Some(7),
        "{body}"
    );
    let body = app.as_user("user2", "{ patrons { id } }", json!({})).await;
    assert_eq!(
        body["data"]["patrons"].as_array().map(Vec::len),
        Some(7),
        "{body}"
    );
    let body = app
        .as_user(
            "user3",
            "{ checkoutFeed { entries { id } pageInfo { totalEntries } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["checkoutFeed"]["entries"]
            .as_array()
            .map(Vec::len),
        Some(7),
        "{body}"
    );
    let body = app
        .as_user("user3", "{ checkouts(next: 20) { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["checkouts"].as_array().map(Vec::len), Some(20));
    for (user, q) in [
        ("user3", "{ checkouts(next: 21) { id } }"),
        ("user2", "{ patrons(limit: 21) { id } }"),
        ("user3", "{ checkoutFeed(next: 21) { entries { id } } }"),
        ("user3", "{ checkouts(next: -1) { id } }"),
    ] {
        let body = app.as_user(user, q, json!({})).await;
        all_coded(&body, "BAD_USER_INPUT");
        assert!(
            body["errors"][0]["message"].as_str().is_some_and(|m| {
                m.contains("at most 20 (GRAPHQL_MAX_PAGE_SIZE)") || m.contains("negative")
            }),
            "{q}: {body}"
        );
    }
}

fn small_pages(settings: &mut Settings) {
    settings.limits.arguments.default_page = 7;
    settings.limits.arguments.max_page = 20;
}

mod page_sizes {
    use super::*;

    #[tokio::test]
    async fn embedded() {
        let mut settings = Settings::development();
        settings.server.port = 0;
        small_pages(&mut settings);
        page_sizes_default_and_are_capped(&TestApp::with_settings(settings).await).await;
    }

    #[tokio::test]
    async fn mariadb() {
        let app = TestApp::real_with(SqlServer::MariaDb, small_pages).await;
        page_sizes_default_and_are_capped(&app).await;
    }

    #[tokio::test]
    async fn mysql() {
        let app = TestApp::real_with(SqlServer::Mysql, small_pages).await;
        page_sizes_default_and_are_capped(&app).await;
    }
}

#[tokio::test]
async fn a_reply_past_the_response_cap_is_an_error_on_every_transport() {
    let mut settings = Settings::development();
    settings.server.port = 0;
    settings.limits.max_response_bytes = 2048;
    let app = TestApp::with_settings(settings).await;
    let big = "{ books { title author isbn13 copies { libraryUPC condition } } }";
    let (status, body) = app.gql(None, big, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(codes(&body), ["RESPONSE_TOO_LARGE"]);
    assert_eq!(body["data"], Value::Null, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2048 bytes (GRAPHQL_MAX_RESPONSE_BYTES)")),
        "{body}"
    );
    let (_, small) = app.gql(None, "{ books { title } }", json!({})).await;
    assert!(small["data"]["books"].is_array(), "{small}");

    // The same through a stream (GraphQL over SSE carries queries too).
    let mut r = app
        .client
        .post(format!("{}/graphql", app.base))
        .header("accept", "text/event-stream")
        .json(&json!({"query": big}))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if text.contains("event: complete") {
            break;
        }
    }
    assert!(text.contains("RESPONSE_TOO_LARGE"), "{text}");
    assert!(!text.contains("libraryUPC"), "{text}");
    assert!(
        app.metrics().await.contains("RESPONSE_TOO_LARGE"),
        "counted with the other error codes"
    );
}

/// A key server that answers 503 until told to serve `pem`.
struct FlakyKeys {
    url: String,
    pem: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl FlakyKeys {
    async fn start() -> Self {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let pem = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let shared = std::sync::Arc::clone(&pem);
        let server = HttpServer::new(move || {
            let shared = std::sync::Arc::clone(&shared);
            App::new().route(
                "/publickey",
                web::get().to(move || {
                    let held = shared.lock().unwrap().clone();
                    async move {
                        match held {
                            Some(pem) => HttpResponse::Ok().body(pem),
                            None => HttpResponse::ServiceUnavailable().body("down"),
                        }
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        FlakyKeys {
            url: format!("http://127.0.0.1:{port}/publickey"),
            pem,
        }
    }
}

#[tokio::test]
async fn not_ready_until_a_first_jwt_key_is_held() {
    let keys = FlakyKeys::start().await;
    let mut settings = Settings::development();
    settings.server.port = 0;
    settings.auth.key_url = Some(keys.url.clone());
    let app = TestApp::with_settings(settings).await;
    let ready = || async {
        let r = app.get("/health/ready").await;
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("jwt-key"), "{body}");
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200, "liveness is not readiness");

    let issuer = auth_jwt::dev::DevIssuer::generate(auth_jwt::dev::default_users()).unwrap();
    *keys.pem.lock().unwrap() = Some(issuer.public_pem().to_string());
    // The background refresher retries after 5 s: ready within its first retries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready().await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `list_sorted` calls so far: each is one snapshot taken.
async fn snapshots_taken(app: &TestApp) -> u64 {
    app.datasource_calls()
        .await
        .into_iter()
        .filter(|(labels, _)| labels.contains("list_sorted"))
        .map(|(_, n)| n)
        .sum()
}

async fn feed_snapshots_are_reused_and_capped(app: &TestApp) {
    // The app runs with QUERYCACHE_MAX_ROWS=400 (the demo data has more checkouts).
    let q = r#"query($e: String, $u: String, $s: [SortObject!]) {
        checkoutFeed(userEmail: $e, assetUpc: $u, sort: $s, next: 2) { pageInfo { queryId totalEntries } }
    }"#;
    let (_, body) = app.gql(None, q, json!({})).await;
    all_coded(&body, "BAD_USER_INPUT");
    assert!(body.to_string().contains("QUERYCACHE_MAX_ROWS"), "{body}");

    let before = snapshots_taken(app).await;
    let mut ids = Vec::new();
    for variables in [
        json!({"e": "apickerin0@51.la", "s": [{"field": "checkoutDate"}]}),
        json!({"e": "APickerin0@51.LA", "s": [{"field": "checkoutDate", "direction": "ASC"}]}),
        json!({"e": "apickerin0@51.la", "s": [{"field": "checkoutDate"}]}),
    ] {
        let (_, body) = app.gql(None, q, variables).await;
        let info = &body["data"]["checkoutFeed"]["pageInfo"];
        assert!(
            info["totalEntries"].as_i64().is_some_and(|n| n > 0),
            "{body}"
        );
        ids.push(info["queryId"].clone());
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one snapshot: {ids:?}"
    );
    assert_eq!(
        snapshots_taken(app).await - before,
        1,
        "the same query, however spelled, reuses the live snapshot"
    );
    let (_, body) = app
        .gql(
            None,
            q,
            json!({"e": "apickerin0@51.la", "s": [{"field": "checkoutDate", "direction": "DESC"}]}),
        )
        .await;
    assert_ne!(body["data"]["checkoutFeed"]["pageInfo"]["queryId"], ids[0]);
    assert_eq!(
        snapshots_taken(app).await - before,
        2,
        "another order, another"
    );
}

fn small_snapshots(settings: &mut Settings) {
    settings.limits.arguments.snapshot_rows = 400;
}

mod feed_snapshots {
    use super::*;

    #[tokio::test]
    async fn embedded() {
        let mut settings = Settings::development();
        settings.server.port = 0;
        small_snapshots(&mut settings);
        feed_snapshots_are_reused_and_capped(&TestApp::with_settings(settings).await).await;
    }

    #[tokio::test]
    async fn mariadb() {
        let app = TestApp::real_with(SqlServer::MariaDb, small_snapshots).await;
        feed_snapshots_are_reused_and_capped(&app).await;
    }

    #[tokio::test]
    async fn mysql() {
        let app = TestApp::real_with(SqlServer::Mysql, small_snapshots).await;
        feed_snapshots_are_reused_and_capped(&app).await;
    }
}
