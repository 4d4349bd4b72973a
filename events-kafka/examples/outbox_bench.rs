//! The outbox under load (issue 21), against the harness's services (start them with
//! `scripts/services.sh up`); `bench/outbox.sh` runs both modes.
//!
//! - `drain N`: N events written while no relay runs (the mutation rate this MySQL
//!   sustains, measured), then the relay started while the same writers go on at
//!   full speed: its events per second, and the backlog and oldest unsent age each
//!   second until it has caught up (the relay must not be the bottleneck).
//! - `retention N`: N mutations in phases of a tenth, alternating no purge and a 20 s
//!   retention purged every 2 s: every 10 s the outbox's size, what was purged and
//!   the checkout latency (p50, p99), then both kinds of phase side by side.
//!
//! `cargo run --release -p events-kafka --example outbox_bench -- drain 100000 [mariadb|mysql]`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use data_mysql::{MysqlCheckouts, MysqlConfig};
use domain::{CheckoutStore, Outbox};
use events_kafka::{EventProducer, KafkaConfig, OutboxRelay, RelayConfig};
use shutdown::Closeable;
use testkit::SqlServer;

/// Errors end the run with their message.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Concurrent writers, each cycling copies of its own.
const WRITERS: usize = 32;
/// Copies per writer (UPCs `8` + writer + copy: 10 characters).
const COPIES: usize = 50;

/// The writers: check-outs and check-ins as fast as the store takes them.
struct Load {
    done: AtomicU64,
    stop: AtomicBool,
    /// Check-out latencies (µs) since the last `take_latencies`.
    latencies: Mutex<Vec<u32>>,
    writers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Load {
    fn start(
        store: Arc<MysqlCheckouts>,
        relay: Arc<Mutex<Option<Arc<OutboxRelay>>>>,
        limit: u64,
    ) -> Arc<Self> {
        let load = Arc::new(Load {
            done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            latencies: Mutex::new(Vec::new()),
            writers: Mutex::new(Vec::new()),
        });
        for w in 0..WRITERS {
            let (me, store, relay) = (Arc::clone(&load), Arc::clone(&store), Arc::clone(&relay));
            let writer = tokio::spawn(async move {
                let mut cycle = 0usize;
                while !me.stop.load(Ordering::Relaxed) && me.done.load(Ordering::Relaxed) < limit {
                    let upc = format!("8{w:03}{:06}", cycle % COPIES);
                    cycle += 1;
                    let started = Instant::now();
                    if let Err(e) = store.check_out(&upc, "bench@example.org").await {
                        eprintln!("check-out failed: {e}");
                        continue;
                    }
                    let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    lock(&me.latencies).push(took);
                    if let Err(e) = store.check_in(&upc).await {
                        eprintln!("check-in failed: {e}");
                    }
                    me.done.fetch_add(2, Ordering::Relaxed);
                    if let Some(r) = lock(&relay).as_ref() {
                        r.kick();
                    }
                }
            });
            lock(&load.writers).push(writer);
        }
        load
    }

    /// Stops the writers after their mutation in progress.
    async fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let writers = std::mem::take(&mut *lock(&self.writers));
        for w in writers {
            let _ = w.await;
        }
    }

    fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut *lock(&self.latencies))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn spawn_relay(
    store: &Arc<MysqlCheckouts>,
    producer: &Arc<EventProducer>,
    config: RelayConfig,
) -> Arc<OutboxRelay> {
    Arc::new(OutboxRelay::spawn(
        Arc::clone(store) as Arc<dyn Outbox>,
        Arc::clone(producer),
        config,
    ))
}

async fn drain(store: Arc<MysqlCheckouts>, producer: Arc<EventProducer>, n: u64) -> Result<()> {
    let relay_slot = Arc::new(Mutex::new(None));
    let load = Load::start(Arc::clone(&store), Arc::clone(&relay_slot), u64::MAX);
    let started = Instant::now();
    while load.done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fill = started.elapsed();
    let written = load.done.load(Ordering::Relaxed);
    let rate = written as f64 / fill.as_secs_f64();
    println!(
        "backlog written: {written} events in {:.1} s = {rate:.0} mutations/s (no relay)",
        fill.as_secs_f64()
    );

    let relay = spawn_relay(&store, &producer, RelayConfig::default());
    *lock(&relay_slot) = Some(Arc::clone(&relay));
    let (start, mut last_published, mut last_done) = (Instant::now(), 0, written);
    println!("   t  published/s  mutations/s  backlog  oldest unsent (s)");
    let mut caught_up = 0;
    while caught_up < 3 && start.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let published = relay.stats().published();
        let done = load.done.load(Ordering::Relaxed);
        let backlog = store.backlog().await?;
        let oldest = backlog.oldest.map_or(0.0, |t| {
            (chrono::Utc::now() - t).num_milliseconds() as f64 / 1000.0
        });
        println!(
            "{:4.0}  {:11}  {:11}  {:7}  {oldest:17.2}",
            start.elapsed().as_secs_f64(),
            published - last_published,
            done - last_done,
            backlog.events,
        );
        caught_up = if oldest < 1.0 { caught_up + 1 } else { 0 };
        (last_published, last_done) = (published, done);
    }
    let took = start.elapsed();
    load.finish().await;
    let published = relay.stats().published();
    println!(
        "relay: {published} events in {:.1} s = {:.0} events/s while writers ran at full speed; caught up: {}",
        took.as_secs_f64(),
        published as f64 / took.as_secs_f64(),
        caught_up >= 3
    );
    relay.close().await?;
    Ok(())
}

async fn retention(store: Arc<MysqlCheckouts>, producer: Arc<EventProducer>, n: u64) -> Result<()> {
    let config = |purge: bool| RelayConfig {
        retention: Duration::from_secs(if purge { 20 } else { 100 * 365 * 24 * 3600 }),
        housekeeping_every: Duration::from_secs(2),
        ..RelayConfig::default()
    };
    let relay_slot = Arc::new(Mutex::new(Some(spawn_relay(
        &store,
        &producer,
        config(false),
    ))));
    let load = Load::start(Arc::clone(&store), Arc::clone(&relay_slot), n);
    let start = Instant::now();
    let (mut last_done, mut last_purged, mut purge) = (0, 0, false);
    // Every latency of each kind of phase, for the side-by-side summary.
    let mut by_phase: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    let mut max_rows = [0u64; 2];
    println!("   t  phase     mutations/s  outbox rows  purged  checkout p50 (ms)  p99 (ms)");
    while load.done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let done = load.done.load(Ordering::Relaxed);
        let relay = lock(&relay_slot).clone().ok_or("no relay")?;
        let purged = relay.stats().purged();
        let mut lat = load.take_latencies();
        lat.sort_unstable();
        let rows = store.outbox_rows().await?;
        println!(
            "{:4.0}  {:8}  {:11.0}  {:11}  {:6}  {:17.2}  {:8.2}",
            start.elapsed().as_secs_f64(),
            if purge { "purge" } else { "no purge" },
            (done - last_done) as f64 / 10.0,
            rows,
            purged - last_purged,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
        );
        by_phase[usize::from(purge)].extend(lat);
        max_rows[usize::from(purge)] = max_rows[usize::from(purge)].max(rows);
        (last_done, last_purged) = (done, purged);
        // Phases of a tenth each, alternating, so both kinds see the same tables.
        let phase_purges = (done / (n / 10).max(1)) % 2 == 1;
        if phase_purges != purge {
            // The other relay takes over (as a new lease holder would).
            let old = lock(&relay_slot).take();
            if let Some(old) = old {
                old.close().await?;
            }
            *lock(&relay_slot) = Some(spawn_relay(&store, &producer, config(phase_purges)));
            (purge, last_purged) = (phase_purges, 0);
        }
    }
    load.finish().await;
    let relay = lock(&relay_slot).take();
    if let Some(relay) = relay {
        relay.close().await?;
    }
    println!(
        "{} mutations in {:.0} s; final outbox rows {}",
        load.done.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        store.outbox_rows().await?
    );
    for (i, name) in ["no purge", "purge"].iter().enumerate() {
        let lat = &mut by_phase[i];
        lat.sort_unstable();
        println!(
            "{name:8}: {} check-outs, p50 {:.2} ms, p99 {:.2} ms, largest outbox {} rows",
            lat.len(),
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            max_rows[i]
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, n) = match args.as_slice() {
        [mode, n, ..] => (mode.as_str(), n.parse::<u64>()?),
        _ => return Err("usage: outbox_bench drain|retention N [mariadb|mysql]".into()),
    };
    let server = match args.get(2).map(String::as_str) {
        None | Some("mariadb") => SqlServer::MariaDb,
        Some("mysql") => SqlServer::Mysql,
        Some(other) => return Err(format!("unknown server {other:?}").into()),
    };
    let s = testkit::services();
    let mut config = MysqlConfig::new(
        server.host(),
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        "x",
    );
    config.port = server.port();
    config.pool_limit = WRITERS as u32 + 4;
    let config = config.with_database(&testkit::unique_name("cl_test_bench"));
    MysqlCheckouts::create_database(&config).await?;
    let store = Arc::new(MysqlCheckouts::connect(&config).await?);
    let producer = Arc::new(EventProducer::new(&KafkaConfig::new(
        s.var("KAFKA_BROKERS"),
    ))?);
    println!("{mode} {n} on {server:?}: {WRITERS} writers, {COPIES} copies each");
    let result = match mode {
        "drain" => drain(Arc::clone(&store), Arc::clone(&producer), n).await,
        "retention" => retention(Arc::clone(&store), Arc::clone(&producer), n).await,
        other => Err(format!("unknown mode {other:?}").into()),
    };
    let _ = producer.close().await;
    let _ = store.close().await;
    MysqlCheckouts::drop_database(&config).await?;
    result
}
