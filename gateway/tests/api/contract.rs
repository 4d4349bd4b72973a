//! Queries, mutations, the auth table, error codes, dates, emails, and the HTTP
//! refusals; each case runs on the embedded stores and on the real services.

use serde_json::{json, Value};

use crate::contract;
use crate::helpers::{codes, TestApp};

const PAGE: &str = "{ checkouts(next: 50) { id userEmail assetUpc checkoutDate checkinDate patron { firstName } book { title } } }";

async fn public_books(app: &TestApp) {
    let (status, body) = app
        .gql(
            None,
            "{ books { id title isbn13 copies { libraryUPC condition } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let books = body["data"]["books"].as_array().unwrap();
    assert_eq!(books.len(), 10);
    let copies: usize = books
        .iter()
        .map(|b| b["copies"].as_array().unwrap().len())
        .sum();
    assert_eq!(copies, 35);
    let first = &books[0];
    let by_id = app
        .gql(
            None,
            "query($id: ID) { book(id: $id) { title } }",
            json!({"id": first["id"]}),
        )
        .await
        .1;
    assert_eq!(by_id["data"]["book"]["title"], first["title"]);
    let by_isbn = app
        .gql(
            None,
            "query($i: String) { book(isbn13: $i) { title } }",
            json!({"i": first["isbn13"]}),
        )
        .await
        .1;
    assert_eq!(by_isbn["data"]["book"]["title"], first["title"]);
    let none = app
        .gql(None, "{ book(id: \"nope\") { title } }", json!({}))
        .await
        .1;
    assert_eq!(none["data"]["book"], Value::Null);
    assert!(none["errors"].is_null());
}
contract!(public_books);

async fn checkouts_need_user_and_page_by_date(app: &TestApp) {
    let (status, anon) = app.gql(None, PAGE, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(codes(&anon), ["NOT_AUTHORIZED"]);
    assert_eq!(anon["errors"][0]["message"], "not authorized");

    let body = app.as_user("user3", PAGE, json!({})).await;
    let rows = body["data"]["checkouts"].as_array().unwrap();
    assert_eq!(rows.len(), 50);
    assert!(rows
        .iter()
        .all(|r| r["patron"]["firstName"].is_string() && r["book"]["title"].is_string()));
    let dates: Vec<&str> = rows
        .iter()
        .map(|r| r["checkoutDate"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "ascending");
    assert!(
        dates[0].ends_with(".000Z") && dates[0].len() == 24,
        "{}",
        dates[0]
    );

    let next = app
        .as_user(
            "user3",
            "query($c: String) { checkouts(cursor: $c, next: 5) { checkoutDate } }",
            json!({"c": dates[49]}),
        )
        .await;
    let after: Vec<&str> = next["data"]["checkouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["checkoutDate"].as_str().unwrap())
        .collect();
    assert!(
        after.iter().all(|d| *d > dates[49]),
        "cursor: strictly after"
    );

    let email = rows[3]["userEmail"].as_str().unwrap();
    let upc = rows[3]["assetUpc"].as_str().unwrap();
    let filtered = app
        .as_user(
            "user3",
            "query($e: Email, $u: String) { checkouts(userEmail: $e, assetUpc: $u) { userEmail assetUpc } }",
            json!({"e": email, "u": upc}),
        )
        .await;
    let f = filtered["data"]["checkouts"].as_array().unwrap();
    assert!(
        !f.is_empty()
            && f.iter()
                .all(|r| r["userEmail"] == email && r["assetUpc"] == upc)
    );

    let bad = app
        .as_user(
            "user3",
            "{ checkouts(cursor: \"yesterday\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&bad), ["BAD_USER_INPUT"]);
}
contract!(checkouts_need_user_and_page_by_date);

async fn the_auth_table(app: &TestApp) {
    let patrons = "{ patrons(limit: 5) { firstName } }";
    assert_eq!(
        codes(&app.as_user("user3", patrons, json!({})).await),
        ["NOT_AUTHORIZED"]
    );
    let ok = app.as_user("user2", patrons, json!({})).await;
    assert_eq!(ok["data"]["patrons"].as_array().unwrap().len(), 5);
    let y = app
        .as_user(
            "user2",
            "{ patrons(yearRegistered: 2009) { yearRegistered } }",
            json!({}),
        )
        .await;
    assert!(y["data"]["patrons"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["yearRegistered"] == 2009));

    // patron: LIBRARIAN, or self (token sub = patron id).
    let me = "{ patron(id: \"5c33c3e9e7bbb6886d531342\") { id firstName email phoneCell } }";
    let own = app.as_user("apickerin0@51.la", me, json!({})).await;
    assert_eq!(own["data"]["patron"]["email"], "apickerin0@51.la", "{own}");
    assert!(
        own["data"]["patron"]["phoneCell"].is_string(),
        "self sees private fields"
    );
    let by_email = app
        .as_user(
            "apickerin0@51.la",
            "{ patron(email: \"apickerin0@51.la\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(by_email["data"]["patron"]["id"], "5c33c3e9e7bbb6886d531342");
    let other = "{ patron(id: \"5c33c3e9e7bbb6886d531343\") { firstName } }";
    assert_eq!(
        codes(&app.as_user("apickerin0@51.la", other, json!({})).await),
        ["NOT_AUTHORIZED"]
    );
    assert_eq!(
        codes(&app.gql(None, other, json!({})).await.1),
        ["NOT_AUTHORIZED"]
    );

    // A librarian who is not admin: private fields null with NOT_AUTHORIZED, the rest resolves.
    let lib = app
        .as_user(
            "user2",
            other
                .replace("firstName", "firstName email phoneCell")
                .as_str(),
            json!({}),
        )
        .await;
    assert!(lib["data"]["patron"]["firstName"].is_string());
    assert_eq!(lib["data"]["patron"]["email"], Value::Null);
    assert_eq!(lib["data"]["patron"]["phoneCell"], Value::Null);
    assert_eq!(codes(&lib), ["NOT_AUTHORIZED", "NOT_AUTHORIZED"]);
    let admin = app
        .as_user(
            "user1",
            other.replace("firstName", "email").as_str(),
            json!({}),
        )
        .await;
    assert!(admin["data"]["patron"]["email"].is_string());

    // Not found, or neither argument: null without error (for a librarian).
    let none = app
        .as_user(
            "user2",
            "{ patron(id: \"000000000000000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(none["data"]["patron"], Value::Null);
    assert!(none["errors"].is_null());
    let neither = app.as_user("user2", "{ patron { id } }", json!({})).await;
    assert_eq!(neither["data"]["patron"], Value::Null);
    let bad_id = app
        .as_user("user2", "{ patron(id: \"not-an-id\") { id } }", json!({}))
        .await;
    assert_eq!(
        bad_id["data"]["patron"],
        Value::Null,
        "an invalid id is not an internal error"
    );
}
contract!(the_auth_table);

async fn checkout_and_checkin(app: &TestApp) {
    let out = "mutation($u: String!, $e: Email!) { checkoutAsset(assetUpc: $u, userEmail: $e) { id assetUpc userEmail checkinDate } }";
    let back = "mutation($u: String!) { checkinAsset(assetUpc: $u) { id checkinDate } }";
    let patron = "apickerin0@51.la";
    // 9000000001 has an open checkout in the demo data.
    let dup = app
        .as_user("user3", out, json!({"u": "9000000001", "e": patron}))
        .await;
    assert_eq!(codes(&dup), ["ASSET_DUPLICATE_CHECKOUT_ATTEMPTED"]);
    assert_eq!(
        dup["errors"][0]["message"],
        "This asset appears to already be checked out, please check it back in first"
    );
    let unknown = app
        .as_user("user3", out, json!({"u": "1234567890", "e": patron}))
        .await;
    assert_eq!(codes(&unknown), ["ASSET_NOT_FOUND"]);
    let nobody = app
        .as_user(
            "user3",
            out,
            json!({"u": "9000000020", "e": "ghost@example.org"}),
        )
        .await;
    assert_eq!(codes(&nobody), ["PATRON_NOT_FOUND"]);
    assert_eq!(
        codes(
            &app.gql(None, out, json!({"u": "9000000020", "e": patron}))
                .await
                .1
        ),
        ["NOT_AUTHORIZED"]
    );

    let made = app
        .as_user("user3", out, json!({"u": "9000000020", "e": patron}))
        .await;
    let row = &made["data"]["checkoutAsset"];
    assert_eq!(row["assetUpc"], "9000000020", "{made}");
    assert_eq!(row["checkinDate"], Value::Null);

    assert_eq!(
        codes(&app.as_user("user3", back, json!({"u": "9000000020"})).await),
        ["NOT_AUTHORIZED"]
    );
    let returned = app.as_user("user2", back, json!({"u": "9000000020"})).await;
    assert_eq!(returned["data"]["checkinAsset"]["id"], row["id"]);
    assert!(returned["data"]["checkinAsset"]["checkinDate"].is_string());
    let again = app.as_user("user2", back, json!({"u": "9000000020"})).await;
    assert_eq!(codes(&again), ["ASSET_NO_CHECKOUT_FOUND"]);
    assert_eq!(
        again["errors"][0]["message"],
        "This asset does not appear be checked out"
    );
}
contract!(checkout_and_checkin);

async fn emails_are_validated_in_literals_and_variables(app: &TestApp) {
    let literal = app
        .as_user(
            "user3",
            "{ checkouts(userEmail: \"not-an-email\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&literal), ["INVALID_EMAIL"], "{literal}");
    let token = app.token("user3").await;
    let (_, variable) = app
        .gql(
            Some(&token),
            "query($e: Email) { checkouts(userEmail: $e) { id } }",
            json!({"e": "x@y.org junk"}),
        )
        .await;
    assert_eq!(codes(&variable), ["INVALID_EMAIL"], "{variable}");
    let upper = app
        .as_user(
            "user3",
            "{ checkouts(userEmail: \"APICKERIN0@51.LA\", next: 1) { id } }",
            json!({}),
        )
        .await;
    assert!(upper["errors"].is_null(), "case-insensitive: {upper}");
}
contract!(emails_are_validated_in_literals_and_variables);

async fn dates_format_with_tokens_zones_and_locales(app: &TestApp) {
    let q = r#"{ checkouts(next: 1) {
        iso: checkoutDate
        fr: checkoutDate(format: "DDD", locale: "fr", timezone: "Europe/Paris")
        ny: checkoutDate(timezone: "America/New_York")
        custom: checkoutDate(format: "yyyy-MM-dd HH:mm ZZ", timezone: "Asia/Tokyo")
    } }"#;
    let body = app.as_user("user3", q, json!({})).await;
    let row = &body["data"]["checkouts"][0];
    let iso = row["iso"].as_str().unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(iso).unwrap();
    let fr = row["fr"].as_str().unwrap();
    let months = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    assert!(
        fr.ends_with(" 2000") && months.iter().any(|m| fr.contains(m)),
        "{fr}"
    );
    assert!(row["ny"].as_str().unwrap().ends_with("-05:00"), "{row}");
    let tokyo = t.with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap());
    assert_eq!(
        row["custom"],
        tokyo.format("%Y-%m-%d %H:%M +09:00").to_string()
    );
    let bad = app
        .as_user(
            "user3",
            "{ checkouts(next: 1) { checkoutDate(timezone: \"Mars/Base\") } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&bad), ["BAD_USER_INPUT"]);
}
contract!(dates_format_with_tokens_zones_and_locales);

async fn checkout_feed_snapshots(app: &TestApp) {
    let q = "query($c: String, $q: ID) { checkoutFeed(next: 100, cursor: $c, queryId: $q, sort: [{field: assetUpc, direction: DESC}]) { pageInfo { queryId currentCursor startEntryIndex endEntryIndex totalEntries hasPreviousPage hasNextPage } entries { id assetUpc } } }";
    let first = app.as_user("user3", q, json!({})).await;
    let info = &first["data"]["checkoutFeed"]["pageInfo"];
    assert_eq!(info["totalEntries"], 421, "{first}");
    assert_eq!(info["startEntryIndex"], 0);
    assert_eq!(info["endEntryIndex"], 99);
    assert_eq!(info["hasPreviousPage"], false);
    assert_eq!(info["hasNextPage"], true);
    let entries = first["data"]["checkoutFeed"]["entries"].as_array().unwrap();
    assert_eq!(entries[0]["assetUpc"], "9000000035", "sorted DESC");
    let query_id = info["queryId"].as_str().unwrap().to_string();
    let cursor = info["currentCursor"].as_str().unwrap().to_string();

    let second = app
        .as_user("user3", q, json!({"c": cursor, "q": query_id}))
        .await;
    let info2 = &second["data"]["checkoutFeed"]["pageInfo"];
    assert_eq!(info2["startEntryIndex"], 100, "{second}");
    assert_eq!(info2["hasPreviousPage"], true);
    assert_eq!(info2["queryId"], query_id.as_str());

    // Another user never sees this snapshot.
    let stolen = app
        .as_user("user2", q, json!({"c": cursor, "q": query_id}))
        .await;
    assert_eq!(codes(&stolen), ["QUERY_NOT_FOUND"], "{stolen}");
    // Public: anonymous callers get their own snapshots.
    let (_, anon) = app.gql(None, q, json!({})).await;
    assert_eq!(
        anon["data"]["checkoutFeed"]["pageInfo"]["totalEntries"],
        421
    );
    assert_ne!(
        anon["data"]["checkoutFeed"]["pageInfo"]["queryId"],
        query_id.as_str()
    );
}
contract!(checkout_feed_snapshots);

async fn http_refusals(app: &TestApp) {
    let url = format!("{}/graphql", app.base);
    let c = &app.client;
    // GET queries work (with a preflight header); GET mutations are refused.
    let get = c
        .get(&url)
        .query(&[("query", "{ books { title } }")])
        .header("apollo-require-preflight", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let mutation = c
        .get(&url)
        .query(&[(
            "query",
            "mutation { checkinAsset(assetUpc: \"9000000001\") { id } }",
        )])
        .header("apollo-require-preflight", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    // CSRF: a simple content type without a preflight header.
    let csrf = c
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"query":"{ books { title } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(csrf.status(), 400);
    assert!(csrf
        .text()
        .await
        .unwrap()
        .contains("Cross-Site Request Forgery"));
    // Oversize body.
    let huge = format!(
        r#"{{"query":"{{ books {{ title }} }}","x":"{}"}}"#,
        "a".repeat(1_100_000)
    );
    let big = c
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    // Batching is off; malformed JSON and GraphQL get clear errors.
    let batch = c
        .post(&url)
        .json(&json!([{"query": "{ books { title } }"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 400);
    let message = |v: Value| v["errors"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(message(batch.json().await.unwrap()).contains("batched"));
    let broken = c
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"query\":")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    assert!(message(broken.json().await.unwrap()).contains("not valid JSON"));
    let shapeless = c
        .post(&url)
        .json(&json!({"query": 42}))
        .send()
        .await
        .unwrap();
    assert_eq!(shapeless.status(), 400);
    assert!(message(shapeless.json().await.unwrap()).contains("not a GraphQL request"));
    let (status, parse) = app.gql(None, "{ books { title ", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(codes(&parse), ["GRAPHQL_PARSE_FAILED"]);
    let (status, unknown) = app.gql(None, "{ nope }", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(codes(&unknown), ["GRAPHQL_VALIDATION_FAILED"]);
    // Depth and complexity limits: refused before any data is read.
    // Introspection nests deeply at no cost: it isolates the depth limit.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(14),
        "} ".repeat(14)
    );
    let (status, too_deep) = app.gql(None, &deep, json!({})).await;
    assert_eq!(status, 400);
    assert!(
        too_deep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{too_deep}"
    );
    let costly =
        "{ books { copies { checkoutHistory { book { copies { checkoutHistory { id } } } } } } }";
    let (status, too_costly) = app.gql(None, costly, json!({})).await;
    assert_eq!(status, 400);
    assert!(
        too_costly["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{too_costly}"
    );
    // Aliases: 15 are fine, 16 are refused before any data is read.
    let aliased = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("b{i}: books {{ title }}")).collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let (status, fine) = app.gql(None, &aliased(15), json!({})).await;
    assert_eq!(status, 200, "{fine}");
    assert!(fine["data"]["b14"].is_array(), "{fine}");
    let (status, too_many) = app.gql(None, &aliased(16), json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(codes(&too_many), ["GRAPHQL_VALIDATION_FAILED"]);
    assert!(
        too_many["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases"),
        "{too_many}"
    );
    // Hostile tokens: 401 AUTH_TOKEN_ERROR.
    for header in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
    ] {
        let r = c
            .post(&url)
            .header("authorization", header)
            .json(&json!({"query": "{ books { title } }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(codes(&body), ["AUTH_TOKEN_ERROR"]);
    }
    // Health is never behind auth.
    let health = c
        .get(format!("{}/health", app.base))
        .header("authorization", "Bearer junk")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "OK");
    let ready = c
        .get(format!("{}/health/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let page = c
        .get(&url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.headers().contains_key("x-request-id"));
}
contract!(http_refusals);

async fn histories_resolve_through_patrons_and_copies(app: &TestApp) {
    let q = r#"{ patron(id: "5c33c3e9e7bbb6886d531342") { checkOuts { id userEmail } open: checkOuts(currentCheckoutsOnly: true) { id } } }"#;
    let body = app.as_user("user2", q, json!({})).await;
    let all = body["data"]["patron"]["checkOuts"].as_array().unwrap();
    assert!(!all.is_empty(), "{body}");
    assert!(all.iter().all(|c| c["userEmail"] == "apickerin0@51.la"));
    let copies = app
        .gql(None, "{ books { copies { libraryUPC checkoutHistory(currentCheckoutsOnly: true) { id checkinDate } } } }", json!({}))
        .await
        .1;
    let open: usize = copies["data"]["books"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["copies"].as_array().unwrap())
        .map(|c| c["checkoutHistory"].as_array().unwrap().len())
        .sum();
    assert_eq!(open, 18, "18 open checkouts in the demo data");
}
contract!(histories_resolve_through_patrons_and_copies);

#[tokio::test]
async fn the_schema_is_the_contract() {
    let sdl = gateway::sdl();
    for line in [
        "scalar Email",
        "checkouts(userEmail: Email, assetUpc: String, cursor: String, next: Int): [CheckOut]",
        "checkoutFeed(userEmail: Email, assetUpc: String, sort: [SortObject!], cursor: String, next: Int, queryId: ID): Feed",
        "patron(email: Email, id: ID): Patron",
        "patrons(yearRegistered: Int, limit: Int): [Patron]!",
        "book(id: ID, isbn13: String): Book",
        "books: [Book]",
        "checkoutAsset(assetUpc: String!, userEmail: Email!): CheckOut!",
        "checkinAsset(assetUpc: String!): CheckOut!",
        "checkoutStatusUpdate(after: ID): CheckOut",
        "checkout(after: ID): CheckOut",
        "checkin(after: ID): CheckOut",
        "checkoutDate(format: String, timezone: String, locale: String): String!",
        "checkinDate(format: String, timezone: String, locale: String): String",
        "patron: Patron!",
        "book: Book!",
        "eventId: ID",
        "pageInfo: PageInfo",
        "entries: [CheckOut]",
        "queryId: ID!",
        "currentCursor: String",
        "startEntryIndex: Int!",
        "totalEntries: Int!",
        "hasNextPage: Boolean!",
        "yearRegistered: Int",
        "email: Email",
        "phoneCell: String",
        "checkOuts(currentCheckoutsOnly: Boolean): [CheckOut]",
        "yearPublished: Int!",
        "isbn13: String!",
        "copies: [BookCopy]",
        "libraryUPC: String!",
        "condition: BookCondition!",
        "checkoutHistory(currentCheckoutsOnly: Boolean): [CheckOut]",
        "field: SortField!",
        "direction: SortDirection",
    ] {
        assert!(sdl.contains(line), "schema lacks `{line}`:\n{sdl}");
    }
    for (name, values) in [
        ("UserRole", &["ADMIN", "LIBRARIAN", "USER"][..]),
        ("BookCondition", &["good", "fair", "damaged"][..]),
        (
            "SortField",
            &["userEmail", "assetUpc", "checkinDate", "checkoutDate"][..],
        ),
        ("SortDirection", &["ASC", "DESC"][..]),
    ] {
        let start = sdl
            .find(&format!("enum {name} {{"))
            .unwrap_or_else(|| panic!("no enum {name}"));
        let body = &sdl[start..start + sdl[start..].find('}').unwrap()];
        for v in values {
            assert!(body.contains(v), "{name} lacks {v}");
        }
    }
}

async fn metrics_count_requests_and_errors(app: &TestApp) {
    let r = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({"query": "query Shelf { books { title } }", "operationName": "Shelf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.gql(None, "{ checkouts { id } }", json!({})).await;
    let text = app.metrics().await;
    assert!(
        text.contains(r#"graphql_requests_total{operation="Shelf",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"graphql_errors_total{code="NOT_AUTHORIZED"} 1"#),
        "{text}"
    );
    assert!(text.contains("graphql_request_duration_seconds_bucket"));
    if app.real {
        assert!(
            text.contains(r#"datasource_pool_connections{pool="mysql",state="open"}"#),
            "{text}"
        );
        // This app's database is its own, so its relay takes the lease at its first
        // round: polled (the condition), bounded.
        let mut text = text;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !text.contains("outbox_relay_lease_held 1") && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            text = app.metrics().await;
        }
        for line in [
            "mysql_lock_retries_total ",
            "outbox_relay_lease_held 1",
            "outbox_backlog_events ",
            "outbox_oldest_unsent_seconds ",
            "outbox_published_events_total ",
            "outbox_purged_events_total ",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    } else {
        assert!(!text.contains("outbox_"), "no relay without Kafka: {text}");
    }
}
contract!(metrics_count_requests_and_errors);

/// The round trips (data-source calls) `query` costs, per store and call.
async fn round_trips(
    app: &TestApp,
    user: &str,
    query: &str,
    variables: Value,
) -> (Value, std::collections::BTreeMap<String, u64>) {
    let before = app.datasource_calls().await;
    // Fetching the token (dev endpoint or key service) touches no data source.
    let body = app.as_user(user, query, variables).await;
    let after = app.datasource_calls().await;
    let delta = after
        .into_iter()
        .map(|(k, n)| {
            let was = before.get(&k).copied().unwrap_or(0);
            (k, n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    (body, delta)
}

async fn a_page_costs_the_same_round_trips_whatever_its_size(app: &TestApp) {
    let page = "query($n: Int) { checkouts(next: $n) { id patron { firstName } book { title } } }";
    let (small, few) = round_trips(app, "user3", page, json!({"n": 5})).await;
    assert_eq!(small["data"]["checkouts"].as_array().unwrap().len(), 5);
    let (large, many) = round_trips(app, "user3", page, json!({"n": 50})).await;
    assert_eq!(large["data"]["checkouts"].as_array().unwrap().len(), 50);
    assert!(large["errors"].is_null(), "{large}");
    assert_eq!(few, many, "5 rows and 50 rows cost the same round trips");
    assert_eq!(
        many.values().sum::<u64>(),
        3,
        "one for the page, one for its patrons, one for its books: {many:?}"
    );

    // Nested lists too: all the patrons' checkouts in one round trip, their books in one.
    let patrons = "query($n: Int) { patrons(limit: $n) { id checkOuts { id book { title } } } }";
    let (body, calls) = round_trips(app, "user2", patrons, json!({"n": 40})).await;
    assert_eq!(
        body["data"]["patrons"].as_array().unwrap().len(),
        40,
        "{body}"
    );
    assert!(
        calls.values().all(|n| *n == 1) && calls.len() <= 3,
        "40 patrons: each kind of call once, not once per patron: {calls:?}"
    );
}
contract!(a_page_costs_the_same_round_trips_whatever_its_size);
