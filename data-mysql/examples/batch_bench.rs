//! Benchmark of the batch queries on a large table, with the plans MariaDB picks.
//!
//!     set -a; . .services/env; set +a
//!     cargo run --release -p data-mysql --example batch_bench -- 1000000
//!
//! Loads N demo checkouts into `central-library-bench` (once; reused when the count
//! matches), then times `by_assets` (35 UPCs, open only and all), `by_emails` (50
//! emails) and the first `checkouts(next: 50)` page, and prints each EXPLAIN.

use std::time::Instant;

use data_mysql::{MysqlCheckouts, MysqlConfig};
use domain::{CheckoutFilter, CheckoutStore};
use mysql_async::prelude::Queryable;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} not set: source .services/env"));
    let mut config = MysqlConfig::new(
        &var("MYSQL_HOST")?,
        &var("MYSQL_USER")?,
        &var("MYSQL_PASSWORD")?,
        "central-library-bench",
    );
    config.port = var("MYSQL_PORT")?.parse()?;
    MysqlCheckouts::create_database(&config).await?;
    let store = MysqlCheckouts::connect(&config).await?;

    let url = format!(
        "mysql://{}:{}@{}:{}/central-library-bench",
        var("MYSQL_USER")?,
        var("MYSQL_PASSWORD")?,
        var("MYSQL_HOST")?,
        config.port
    );
    let mut raw = mysql_async::Conn::from_url(url).await?;
    let count: Option<u64> = raw.query_first("SELECT COUNT(*) FROM checkouts").await?;
    if count != Some(n as u64) {
        println!("loading {n} checkouts ...");
        store.delete_all().await?;
        let started = Instant::now();
        store
            .insert_rows(demo_data::checkouts(demo_data::Scale { checkouts: n }))
            .await?;
        raw.query_drop("ANALYZE TABLE checkouts").await?;
        println!("loaded in {:.1?}", started.elapsed());
    }

    let upcs: Vec<String> = (0..demo_data::COPIES).map(demo_data::copy_upc).collect();
    let emails: Vec<String> = demo_data::patrons()
        .into_iter()
        .take(50)
        .filter_map(|p| p.email)
        .collect();
    let rounds = 20;
    let time = |label: &str, total: std::time::Duration, rows: usize| {
        println!(
            "{label:<34} {:>9.2} ms/query  ({rows} rows)",
            total.as_secs_f64() * 1000.0 / rounds as f64
        );
    };
    let t = Instant::now();
    let mut rows = 0;
    for _ in 0..rounds {
        rows = store
            .by_assets(&upcs, true)
            .await?
            .values()
            .map(Vec::len)
            .sum();
    }
    time("by_assets(35 upcs, open only)", t.elapsed(), rows);
    let t = Instant::now();
    for _ in 0..3 {
        rows = store
            .by_assets(&upcs[..1], false)
            .await?
            .values()
            .map(Vec::len)
            .sum();
    }
    time(
        "by_assets(1 upc, whole history) x3",
        t.elapsed() * rounds / 3,
        rows,
    );
    let t = Instant::now();
    for _ in 0..rounds {
        rows = store
            .by_emails(&emails, true)
            .await?
            .values()
            .map(Vec::len)
            .sum();
    }
    time("by_emails(50 emails, open_only)", t.elapsed(), rows);
    let t = Instant::now();
    for _ in 0..rounds {
        rows = store
            .list(&CheckoutFilter::default(), None, Some(50))
            .await?
            .len();
    }
    time("list(next: 50)", t.elapsed(), rows);

    // Demo constants only (no input): inlined so EXPLAIN shows the real plan.
    let in_list = |v: &[String]| {
        v.iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for (label, sql) in [
        ("by_assets open", format!("EXPLAIN SELECT * FROM checkouts WHERE open_asset_upc IN ({}) ORDER BY asset_upc, checkout_date, row_id", in_list(&upcs))),
        ("by_assets all", format!("EXPLAIN SELECT * FROM checkouts WHERE asset_upc IN ({}) ORDER BY asset_upc, checkout_date, row_id", in_list(&upcs[..1]))),
        ("by_emails open", format!("EXPLAIN SELECT * FROM checkouts WHERE user_email IN ({}) AND checkin_date IS NULL ORDER BY user_email, checkout_date, row_id", in_list(&emails))),
        ("list page", "EXPLAIN SELECT * FROM checkouts ORDER BY checkout_date, row_id LIMIT 50".to_string()),
    ] {
        let plan: Vec<mysql_async::Row> = raw.query(sql).await?;
        for row in plan {
            let col = |name: &str| row.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten().unwrap_or_default();
            println!("EXPLAIN {label:<15} type={} key={} rows={} extra={}", col("type"), col("key"), col("rows"), col("Extra"));
        }
    }
    raw.disconnect().await?;
    Ok(())
}
