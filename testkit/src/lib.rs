//! What integration tests need to reach the real services that `scripts/services.sh up`
//! started: the env file it wrote, and names no other test run uses.
//!
//! A missing env file or variable is a test failure with a message saying how to start
//! the services: an integration test never skips silently.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

mod broker;
mod proxy;
pub use broker::{free_port, OwnBroker};
pub use proxy::FreezableProxy;

/// The variables of the harness's env file (SPEC section 6 names).
#[derive(Debug, Clone)]
pub struct Services {
    vars: HashMap<String, String>,
}

/// Where the harness writes its env file: `CL_SERVICES_ENV`, or `.services/env` at
/// the workspace root.
pub fn env_file() -> PathBuf {
    match std::env::var_os("CL_SERVICES_ENV") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.services/env"),
    }
}

/// The running services, read once per test binary.
///
/// # Panics
/// When the env file is missing or unreadable: run `scripts/services.sh up` first.
pub fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let path = env_file();
        let iter = dotenvy::from_path_iter(&path).unwrap_or_else(|e| {
            panic!(
                "no service env file at {} ({e}); start the services with `scripts/services.sh up`",
                path.display()
            )
        });
        let vars = iter
            .collect::<Result<HashMap<_, _>, _>>()
            .unwrap_or_else(|e| panic!("unreadable env file {}: {e}", path.display()));
        Services { vars }
    })
}

impl Services {
    /// A variable the harness wrote.
    ///
    /// # Panics
    /// When the harness did not write it (the service is not configured).
    pub fn var(&self, name: &str) -> &str {
        self.vars.get(name).map(String::as_str).unwrap_or_else(|| {
            panic!(
                "{name} is not in {}; is its service up?",
                env_file().display()
            )
        })
    }

    /// Every variable, for handing to a child process (the gateway binary).
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The SQL servers the MySQL connector is tested on: the same tests run on each
/// (`on_each_sql_server!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlServer {
    /// MariaDB, the harness's default (`MYSQL_PORT`).
    MariaDb,
    /// Oracle MySQL (`ORACLE_MYSQL_PORT`).
    Mysql,
}

impl SqlServer {
    /// Its host.
    pub fn host(self) -> &'static str {
        services().var("MYSQL_HOST")
    }

    /// Its port.
    ///
    /// # Panics
    /// When the harness did not start it.
    pub fn port(self) -> u16 {
        let name = match self {
            SqlServer::MariaDb => "MARIADB_PORT",
            SqlServer::Mysql => "ORACLE_MYSQL_PORT",
        };
        services()
            .var(name)
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Whether `SELECT VERSION()`'s answer is this server's.
    pub fn is_version_of(self, version: &str) -> bool {
        version.contains("MariaDB") == (self == SqlServer::MariaDb)
    }
}

/// Defines each named async test function (taking a `SqlServer`) once per server:
/// `name::mariadb` and `name::mysql`. A leading attribute replaces `#[tokio::test]`
/// (e.g. `#[tokio::test(flavor = "multi_thread")]`).
#[macro_export]
macro_rules! on_each_sql_server {
    (#[$test:meta] $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[$test]
                async fn mariadb() {
                    super::$name($crate::SqlServer::MariaDb).await;
                }

                #[$test]
                async fn mysql() {
                    super::$name($crate::SqlServer::Mysql).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_each_sql_server!(#[tokio::test] $($name),*);
    };
}

/// A name unique to this process and call (`prefix_<pid>_<n>_<time>`), for a fresh
/// database, collection, topic or consumer group per test. Lowercase ASCII, digits
/// and `_` only, so it is valid everywhere.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000_000)
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{t}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        let a = unique_name("cl_test");
        let b = unique_name("cl_test");
        assert_ne!(a, b);
        assert!(a.starts_with("cl_test_"));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }
}
