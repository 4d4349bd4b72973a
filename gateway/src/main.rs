//! `gateway`: reads the configuration, builds the application, serves until a
//! signal, and exits with the shutdown's code.

use anyhow::Context;
use clap::Parser;
use gateway::Application;
use gateway::{ConfigError, Settings};

/// mimalloc: glibc malloc was a fifth of the CPU profile under load (many small
/// allocations per GraphQL response).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Central Library GraphQL gateway (configuration: environment, see README)")]
struct Args {
    /// Print the schema (SDL) and exit.
    #[arg(long)]
    print_schema: bool,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if Args::parse().print_schema {
        print!("{}", gateway::sdl());
        return Ok(());
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(ConfigError::Missing(names)) => {
            eprintln!("missing required configuration:");
            for name in names {
                eprintln!("  {name}");
            }
            std::process::exit(1);
        }
        Err(e) => return Err(e).context("reading the configuration"),
    };
    let telemetry = gateway::telemetry::init(settings.production);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            // One line an operator reads in the pod's last log: what failed, the
            // cause chain (each layer names its setting or object), nothing else.
            tracing::error!(error = format!("{e:#}"), "start-up failed");
            telemetry.shutdown();
            std::process::exit(1);
        }
    };
    let code = app.run_until_stopped().await;
    // After every connection closed: the drain's last spans included.
    telemetry.shutdown();
    std::process::exit(code);
}
