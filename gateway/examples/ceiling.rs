//! The throughput ceiling of a checkouts page: a plain client doing only the page's
//! three round trips (the MySQL page of 50, then the page's patrons and books from
//! MongoDB, concurrently), with no HTTP and no GraphQL, through the same connectors
//! and pool sizes as the gateway. `bench/run.sh` runs it before the gateway so the
//! two numbers come from the same machine state.
//!
//!     set -a; . .services/env; set +a
//!     cargo run --release -p gateway --example ceiling -- [seconds] [concurrency]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use data_mongo::{MongoCatalog, MongoConfig};
use data_mysql::{MysqlCheckouts, MysqlConfig};
use domain::{distinct_keys, CatalogStore, CheckoutFilter, CheckoutStore};

/// The gateway's allocator, so the comparison is like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} not set: source .services/env"));

    let mut mysql = MysqlConfig::new(
        &var("MYSQL_HOST")?,
        &var("MYSQL_USER")?,
        &var("MYSQL_PASSWORD")?,
        &var("MYSQL_DATABASE")?,
    );
    mysql.port = var("MYSQL_PORT")?.parse()?;
    let checkouts = Arc::new(MysqlCheckouts::connect(&mysql).await?);
    let catalog = Arc::new(
        MongoCatalog::connect(&MongoConfig::new(
            &var("MONGO_URL")?,
            &var("MONGO_DATABASE")?,
        ))
        .await?,
    );

    // One set, checked once: the page must be full and every patron and book found.
    let (rows, patrons, books) = one_set(&*checkouts, &*catalog).await?;
    if rows < 50 || patrons == 0 || books == 0 {
        return Err(
            format!("seed first: {rows} checkouts, {patrons} patrons, {books} books").into(),
        );
    }

    let done = Arc::new(AtomicBool::new(false));
    let sets = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (checkouts, catalog) = (Arc::clone(&checkouts), Arc::clone(&catalog));
        let (done, sets) = (Arc::clone(&done), Arc::clone(&sets));
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if one_set(&*checkouts, &*catalog).await.is_ok() {
                    sets.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    let sets = sets.load(Ordering::Relaxed) as f64;
    println!(
        "ceiling    {:10.2} sets/s  cpu/set {:6.3} ms  (concurrency {concurrency}, {seconds} s)",
        sets / elapsed,
        cpu * 1000.0 / sets
    );
    Ok(())
}

/// The three round trips of one page: (checkouts, patrons found, books found).
async fn one_set(
    checkouts: &dyn CheckoutStore,
    catalog: &dyn CatalogStore,
) -> Result<(usize, usize, usize), domain::StoreError> {
    let rows = checkouts
        .list(&CheckoutFilter::default(), None, Some(50))
        .await?;
    let emails = distinct_keys(rows.iter().map(|r| &r.user_email));
    let upcs = distinct_keys(rows.iter().map(|r| &r.asset_upc));
    let (patrons, books) = futures::try_join!(
        catalog.patrons_by_emails(&emails),
        catalog.books_by_upcs(&upcs)
    )?;
    Ok((rows.len(), patrons.len(), books.len()))
}

/// User + system CPU time of this process, from `/proc/self/stat`.
fn cpu_seconds() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("unreadable /proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // CLK_TCK is 100 on Linux.
    Ok(ticks / 100.0)
}
