//! The monitoring shipped in `deploy/monitoring/` names only metrics the gateway
//! exports: every metric in the alert rules' and the dashboard's queries appears on
//! a real-services instance's `/metrics` once it has served a little.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use testkit::SqlServer;

use crate::helpers::TestApp;

const RULES: &str = include_str!("../../../deploy/monitoring/alerts.yml");
const DASHBOARD: &str = include_str!("../../../deploy/monitoring/dashboard.json");

/// PromQL words that are not metric names.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];

/// The metric names a PromQL expression reads: identifiers outside label matchers,
/// ranges and grouping clauses that are neither functions nor keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut plain = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    // Tokens: words, and each other character on its own.
    let mut tokens: Vec<String> = Vec::new();
    let mut in_word = false;
    for c in plain.chars() {
        let wordy = c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '$');
        match tokens.last_mut() {
            Some(last) if wordy && in_word => last.push(c),
            _ if c.is_whitespace() => {}
            _ => tokens.push(c.to_string()),
        }
        in_word = wordy;
    }
    tokens.retain(|t| !t.starts_with('$'));
    let mut i = 0;
    while i < tokens.len() {
        let word = tokens[i].as_str();
        // A function's or an aggregation's name: `f(` or `sum by (`.
        let call = tokens
            .get(i + 1)
            .is_some_and(|t| t == "(" || t == "by" || t == "without");
        if KEYWORDS.contains(&word) && tokens.get(i + 1).is_some_and(|t| t == "(") {
            // `by (labels)` and the like: skip to the closing parenthesis.
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
        } else if word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && !call
            && !KEYWORDS.contains(&word)
        {
            names.insert(word.to_string());
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (job, le) (rate(a_seconds_bucket{code=~"X|Y"}[5m]))) / clamp_min(sum without (pod) (b_total), 1e-9) > 0.5"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["a_seconds_bucket", "b_total"]
    );
}

/// Every query in the rules and the dashboard.
fn expressions() -> Vec<String> {
    let rules: serde_yaml::Value = serde_yaml::from_str(RULES).expect("alerts.yml");
    let mut exprs: Vec<String> = rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| r["expr"].as_str().map(str::to_string))
        .collect();
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboard.json");
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.extend(target["expr"].as_str().map(str::to_string));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["query"].as_str() {
            if let Some(inner) = query.strip_prefix("label_values(") {
                exprs.push(inner.split(',').next().unwrap_or_default().to_string());
            }
        }
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_and_the_dashboard_name_only_exported_metrics() {
    let exprs = expressions();
    assert!(exprs.len() >= 20, "{exprs:?}");
    let app = TestApp::real(SqlServer::MariaDb).await;
    // A little traffic: an operation, an error, a readiness probe.
    let token = app.token("user1").await;
    let (status, _) = app
        .gql(Some(&token), "{ checkouts(next: 2) { id } }", json!({}))
        .await;
    assert_eq!(status, 200);
    app.gql(None, "{ checkouts { id } }", json!({})).await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let exported: BTreeSet<String> = app
        .metrics()
        .await
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let mut unknown = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            if !exported.contains(&name) {
                unknown.insert(name);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?}\nexported: {exported:?}"
    );
}
