//! `seed`: loads the deterministic demo dataset into the configured MySQL and
//! MongoDB (same environment as the gateway; e.g. `set -a; . .services/env`).
//! `--checkouts 1000000` makes a benchmark-sized set.

use anyhow::{bail, Context};
use clap::Parser;
use data_mongo::MongoCatalog;
use data_mysql::MysqlCheckouts;
use gateway::Settings;

#[derive(Parser)]
#[command(about = "Load the demo dataset (SPEC section 1) into MySQL and MongoDB")]
struct Args {
    /// How many checkouts (the demo has 421).
    #[arg(long, default_value_t = demo_data::DEMO_CHECKOUTS)]
    checkouts: usize,
    /// Empty the tables and collections first.
    #[arg(long)]
    reset: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings::from_env().context("reading the configuration")?;
    let Some(services) = settings.services else {
        bail!("no MYSQL_/MONGO_ settings: nothing to seed (the embedded mode seeds itself)");
    };
    MysqlCheckouts::create_database(&services.mysql).await.ok();
    let mysql = MysqlCheckouts::connect(&services.mysql)
        .await
        .context("MySQL")?;
    let mongo = MongoCatalog::connect(&services.mongo)
        .await
        .context("MongoDB")?;
    if args.reset {
        mysql.delete_all().await.context("emptying checkouts")?;
        mongo
            .delete_catalog()
            .await
            .context("emptying patrons and books")?;
    }
    mongo
        .insert_demo(
            &demo_data::patrons(),
            &demo_data::books(),
            demo_data::has_postal_code,
        )
        .await
        .context("loading patrons and books")?;
    let n = mysql
        .insert_rows(demo_data::checkouts(demo_data::Scale {
            checkouts: args.checkouts,
        }))
        .await
        .context("loading checkouts")?;
    println!(
        "loaded {} patrons, {} books, {n} checkouts",
        demo_data::PATRONS,
        demo_data::books().len()
    );
    Ok(())
}
