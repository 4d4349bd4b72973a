//! Concurrent checkouts and check-ins on many copies, against MariaDB and Oracle
//! MySQL in turn (the harness's servers): how many mutations failed (target: none),
//! how many ran again after a deadlock, and the latency distribution.
//!
//!     scripts/services.sh up mariadb mysql
//!     cargo run --release -p data-mysql --example mutation_bench -- [mutations=100000] [clients=32]
//!
//! Each client cycles copies of its own (out, then in), so every conflict is between
//! different copies: the case that must never fail. A fresh database per server,
//! dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use data_mysql::{MysqlCheckouts, MysqlConfig};
use domain::CheckoutStore;
use testkit::SqlServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mutations: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let clients: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    println!("{mutations} mutations from {clients} clients, each on copies of its own");
    for server in [SqlServer::MariaDb, SqlServer::Mysql] {
        run(server, mutations, clients).await?;
    }
    Ok(())
}

async fn run(
    server: SqlServer,
    mutations: usize,
    clients: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let s = testkit::services();
    let mut config = MysqlConfig::new(
        server.host(),
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        &testkit::unique_name("cl_test_mutation_bench"),
    );
    config.port = server.port();
    config.pool_limit = clients as u32;
    MysqlCheckouts::create_database(&config).await?;
    let store = Arc::new(MysqlCheckouts::connect(&config).await?);
    let per_client = mutations.div_ceil(clients * 2); // a cycle is two mutations
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client * 2);
            let mut failures = 0usize;
            for n in 0..per_client {
                // Four copies per client, in turn: UPCs 10 digits, distinct per client.
                let upc = format!("8{:09}", c * 4 + n % 4);
                let t = Instant::now();
                let out = store.check_out(&upc, &format!("c{c}@example.org")).await;
                latencies.push(t.elapsed());
                let t = Instant::now();
                let back = store.check_in(&upc).await;
                latencies.push(t.elapsed());
                failures += usize::from(out.is_err()) + usize::from(back.is_err());
            }
            (latencies, failures)
        })
    });
    let mut latencies: Vec<Duration> = Vec::with_capacity(mutations);
    let mut failures = 0;
    for task in futures::future::join_all(tasks).await {
        let (l, f) = task?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{server:?}: {} mutations in {:.1?} ({:.0}/s), failures {failures}, lock retries {}, \
         p50 {:.1?} p99 {:.1?} max {:.1?}",
        latencies.len(),
        elapsed,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        store.lock_retries(),
        at(0.50),
        at(0.99),
        latencies[latencies.len() - 1],
    );
    drop(store);
    MysqlCheckouts::drop_database(&config).await?;
    Ok(())
}
