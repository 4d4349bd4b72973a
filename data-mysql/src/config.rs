//! Connection settings, from SPEC section 6's MYSQL_* variables.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Where and how to connect. The password never prints (`SecretString`).
#[derive(Debug, Clone)]
pub struct MysqlConfig {
    /// `MYSQL_HOST`
    pub host: String,
    /// `MYSQL_PORT` (3306)
    pub port: u16,
    /// `MYSQL_USER`
    pub user: String,
    /// `MYSQL_PASSWORD`
    pub password: SecretString,
    /// `MYSQL_DATABASE`
    pub database: String,
    /// `MYSQL_CONNECTION_POOL_LIMIT` (10)
    pub pool_limit: u32,
    /// How long a request waits for a pooled connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// On close, how long in-flight queries may run before connections are dropped.
    pub drain_timeout: Duration,
    /// Whether a TCP connection to a server on this host switches to the server's
    /// Unix socket (mysql_async's `prefer_socket`; faster). Off forces TCP, e.g.
    /// through a proxy.
    pub prefer_socket: bool,
}

impl MysqlConfig {
    /// Settings with the seed's defaults for everything but the location.
    pub fn new(host: &str, user: &str, password: &str, database: &str) -> Self {
        MysqlConfig {
            host: host.to_string(),
            port: 3306,
            user: user.to_string(),
            password: SecretString::from(password.to_string()),
            database: database.to_string(),
            pool_limit: 10,
            acquire_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            prefer_socket: true,
        }
    }

    /// The same server, another database (tests use a fresh one each).
    pub fn with_database(&self, database: &str) -> Self {
        MysqlConfig {
            database: database.to_string(),
            ..self.clone()
        }
    }

    /// The connection URL; it holds the password, so it is never logged.
    pub(crate) fn url(&self) -> String {
        format!(
            "mysql://{}:{}@{}:{}/{}?prefer_socket={}",
            encode(&self.user),
            encode(self.password.expose_secret()),
            self.host,
            self.port,
            encode(&self.database),
            self.prefer_socket
        )
    }

    /// The URL of the server without a database (to create one).
    pub(crate) fn server_url(&self) -> String {
        format!(
            "mysql://{}:{}@{}:{}?prefer_socket={}",
            encode(&self.user),
            encode(self.password.expose_secret()),
            self.host,
            self.port,
            self.prefer_socket
        )
    }
}

/// Percent-encodes a URL component (user, password, database may hold `@`, `/`, `-`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_and_debug_hides_the_password() {
        let c = MysqlConfig::new("127.0.0.1", "graphql", "p@ss/word", "central-library");
        assert_eq!(
            c.url(),
            "mysql://graphql:p%40ss%2Fword@127.0.0.1:3306/central-library?prefer_socket=true"
        );
        assert!(!format!("{c:?}").contains("p@ss"));
    }
}
