//! The dev key service: `dev-key-service --listen 127.0.0.1:8081 --key-file dev-key.pem`.
//! Development and tests only; it hands out tokens to anyone who knows the dev
//! passwords.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer};
use anyhow::Context;
use auth_jwt::dev::{self, DevIssuer};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Dev-only JWT issuer: /publickey, /.well-known/jwks.json, POST /login")]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "DEV_KEY_SERVICE_LISTEN", default_value = "127.0.0.1:8081")]
    listen: String,
    /// PKCS#8 private key; generated (RSA-2048) and saved there when missing.
    #[arg(long, env = "DEV_KEY_SERVICE_KEY_FILE", default_value = "dev-key.pem")]
    key_file: PathBuf,
    /// JSON list of users `{username, password, sub, roles}`; SPEC defaults if absent.
    #[arg(long, env = "DEV_KEY_SERVICE_USERS_FILE")]
    users_file: Option<PathBuf>,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let users = match &args.users_file {
        Some(path) => dev::load_users(path).context("loading the users file")?,
        None => dev::default_users(),
    };
    let issuer = Arc::new(
        DevIssuer::load_or_generate(&args.key_file, users).context("loading the dev key")?,
    );
    tracing::info!(listen = %args.listen, "dev key service listening");
    HttpServer::new(move || {
        let issuer = Arc::clone(&issuer);
        App::new().configure(move |cfg| dev::configure(cfg, issuer))
    })
    .workers(1)
    .bind(&args.listen)
    .with_context(|| format!("binding {}", args.listen))?
    .run()
    .await?;
    Ok(())
}
