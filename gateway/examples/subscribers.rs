//! Subscription delivery benchmark client (bench/subscribers.sh runs it): opens N
//! graphql-transport-ws subscribers on one gateway, sends M checkouts (each then
//! checked back in) to another or the same one, and reports, per checkout, the
//! time from sending the mutation to each subscriber receiving its event.
//!
//! Usage: subscribers WS_URL HTTP_URL N M
//!   env USER_TOKEN (subscribes, checks out), LIBRARIAN_TOKEN (checks in), UPC.
//! Prints one line: delivered/expected, p50/p99/max in ms, and the seconds the
//! subscribers took to open. With M = 0 it opens the subscribers, prints
//! `open N` and waits for a line on stdin (so the caller can measure memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 5, "usage: subscribers WS_URL HTTP_URL N M");
    let (ws_url, http_url) = (args[1].clone(), args[2].clone());
    let n: usize = args[3].parse()?;
    let m: usize = args[4].parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(ws_url, http_url, n, m))
}

async fn run(ws_url: String, http_url: String, n: usize, m: usize) -> anyhow::Result<()> {
    let user = std::env::var("USER_TOKEN")?;
    let librarian = std::env::var("LIBRARIAN_TOKEN")?;
    let upc = std::env::var("UPC").unwrap_or_else(|_| "9000000001".into());
    let arrivals: Arrivals = Arc::default();
    let opening = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let ws = open(&ws_url, &user).await?;
        sockets.push(tokio::spawn(listen(
            ws,
            Arc::clone(&arrivals),
            ready_tx.clone(),
        )));
    }
    let opened = opening.elapsed();
    if m == 0 {
        println!("open {n} in {:.1} s", opened.as_secs_f64());
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(());
    }
    let http = reqwest::Client::new();
    // Every subscriber is live once it has received a warm-up event.
    let mut warm = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while warm < n {
        let id = mutate(&http, &http_url, &user, &librarian, &upc).await?;
        let _ = id;
        while let Ok(Some(())) =
            tokio::time::timeout(Duration::from_millis(200), ready_rx.recv()).await
        {
            warm += 1;
            if warm == n {
                break;
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {warm} of {n} subscribers live"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clear();

    let mut sent = HashMap::new();
    for _ in 0..m {
        let started = Instant::now();
        let id = mutate(&http, &http_url, &user, &librarian, &upc).await?;
        sent.insert(id, started);
        // Paced: one checkout in flight at a time, then a short rest.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stragglers get a bounded time.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: usize = arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .iter()
            .filter(|(id, _)| sent.contains_key(*id))
            .map(|(_, v)| v.len())
            .sum();
        if got >= n * m || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrivals = arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut latencies: Vec<f64> = Vec::new();
    for (id, started) in &sent {
        for at in arrivals.get(id).into_iter().flatten() {
            latencies.push(at.duration_since(*started).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "delivered {}/{}  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (opened {} subscribers in {:.1} s)",
        latencies.len(),
        n * m,
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        n,
        opened.as_secs_f64()
    );
    for s in sockets {
        s.abort();
    }
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens one subscriber; `IDLE_STAGE` (`connect`, `init`; default: subscribed)
/// stops earlier, to see what each stage costs the server.
async fn open(url: &str, token: &str) -> anyhow::Result<Ws> {
    let stage = std::env::var("IDLE_STAGE").unwrap_or_default();
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    if stage == "connect" {
        return Ok(ws);
    }
    let init = json!({"type": "connection_init", "payload": {"authToken": token}});
    ws.send(Message::Text(init.to_string().into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("connection_ack") => break,
            Some(Ok(_)) => continue,
            other => anyhow::bail!("no ack: {other:?}"),
        }
    }
    if stage == "init" {
        return Ok(ws);
    }
    let sub = json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { checkout { id } }"}});
    ws.send(Message::Text(sub.to_string().into())).await?;
    Ok(ws)
}

/// Records when each checkout's event arrives; says once when the first one did.
async fn listen(mut ws: Ws, arrivals: Arrivals, ready: tokio::sync::mpsc::Sender<()>) {
    let mut live = false;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let at = Instant::now();
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match v["type"].as_str() {
            Some("next") => {
                if let Some(id) = v["payload"]["data"]["checkout"]["id"].as_str() {
                    if let Ok(mut a) = arrivals.lock() {
                        a.entry(id.to_string()).or_default().push(at);
                    }
                }
                if !live {
                    live = true;
                    let _ = ready.send(()).await;
                }
            }
            Some("ping") => {
                let _ = ws.send(Message::Text(r#"{"type":"pong"}"#.into())).await;
            }
            _ => {}
        }
    }
}

/// Checks `upc` out (returns the checkout id), then back in.
async fn mutate(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    librarian: &str,
    upc: &str,
) -> anyhow::Result<String> {
    let out = json!({"query": "mutation($u: String!) { checkoutAsset(assetUpc: $u, userEmail: \"apickerin0@51.la\") { id } }", "variables": {"u": upc}});
    let made: Value = http
        .post(url)
        .bearer_auth(user)
        .json(&out)
        .send()
        .await?
        .json()
        .await?;
    let id = made["data"]["checkoutAsset"]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("checkout failed: {made}"))?
        .to_string();
    let back = json!({"query": "mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }", "variables": {"u": upc}});
    let _: Value = http
        .post(url)
        .bearer_auth(librarian)
        .json(&back)
        .send()
        .await?
        .json()
        .await?;
    Ok(id)
}
