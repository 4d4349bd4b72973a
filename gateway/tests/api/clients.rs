//! The gateway as the real client libraries from npm see it (`gateway/tests/clients`,
//! versions pinned by its lock file, installed by `scripts/test.sh`): Apollo Client
//! with its persisted-query link and HttpLink multipart subscriptions, and
//! graphql-sse's client, each configured as its users do by default.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::contract;
use crate::helpers::TestApp;

/// Runs `clients.mjs` against `app` and returns what each client saw.
async fn run_clients(app: &TestApp, upc: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    assert!(
        dir.join("node_modules/@apollo/client").is_dir(),
        "the npm clients are not installed: run `npm ci --prefix gateway/tests/clients` \
         (scripts/test.sh does)"
    );
    // A librarian who is not an admin: may check in, may not read patrons' emails.
    let token = app.token("user2").await;
    let child = tokio::process::Command::new("node")
        .arg("clients.mjs")
        .current_dir(&dir)
        .env("GATEWAY_URL", format!("{}/graphql", app.base))
        .env("TOKEN", token)
        .env("UPC", upc)
        .env("EMAIL", "apickerin0@51.la")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (20 or later) runs");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the clients finish within 2 minutes")
        .expect("node ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("one JSON line ({e}): {stderr}"))
}

async fn real_clients_use_every_transport(app: &TestApp) {
    let upc = app.copy("9000000033");
    let seen = run_clients(app, upc).await;

    // Persisted queries: a miss, the query sent once, then the hash alone over GET.
    let apq = &seen["persistedQueries"];
    let requests = apq["requests"].as_array().expect("requests").clone();
    assert_eq!(
        requests.first(),
        Some(&json!({"method": "GET", "withQueryText": false})),
        "{apq}"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r["withQueryText"] == true)
            .count(),
        1,
        "the text is sent once, after the miss: {apq}"
    );
    assert_eq!(
        requests.last(),
        Some(&json!({"method": "GET", "withQueryText": false})),
        "{apq}"
    );
    for data in [&apq["first"], &apq["second"]] {
        assert!(
            data["books"].as_array().is_some_and(|b| b.len() == 10),
            "{apq}"
        );
    }

    // A refused nullable field is present as null: Apollo Client's cache gives the
    // whole object back (a missing key would leave the result incomplete).
    let failed = &seen["failedField"];
    assert_eq!(
        failed["data"],
        json!({"patron": {"__typename": "Patron", "firstName": "Averill", "email": null}}),
        "{failed}"
    );
    assert_eq!(failed["codes"], json!(["NOT_AUTHORIZED"]), "{failed}");

    // Subscriptions over HTTP: Apollo's multipart protocol and graphql-sse.
    let multipart = &seen["multipartSubscription"];
    assert!(
        multipart["accept"]
            .as_str()
            .is_some_and(|a| a.contains("subscriptionSpec=1.0")),
        "{multipart}"
    );
    for (name, seen) in [("multipart", multipart), ("sse", &seen["sseSubscription"])] {
        assert_eq!(seen["event"]["assetUpc"], upc, "{name}: {seen}");
        assert_eq!(
            seen["event"]["userEmail"], "apickerin0@51.la",
            "{name}: {seen}"
        );
        assert_eq!(seen["errors"], json!([]), "{name}: {seen}");
    }
}
contract!(real_clients_use_every_transport);
