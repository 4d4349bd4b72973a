//! Settings from SPEC section 6's MONGO_* variables.

use std::time::Duration;

use secrecy::SecretString;

/// Where and how to connect; the password never prints.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// `MONGO_URL`, e.g. `mongodb://127.0.0.1:27017`.
    pub url: String,
    /// `MONGO_USER` (authenticates against the database itself).
    pub user: Option<String>,
    /// `MONGO_PASSWORD`.
    pub password: Option<SecretString>,
    /// `MONGO_DATABASE`.
    pub database: String,
    /// `MONGO_CONNECTION_POOL_SIZE` (10).
    pub pool_size: u32,
    /// How long server selection may take before a request fails `Unavailable`.
    pub server_selection_timeout: Duration,
    /// `checkoutFeed` snapshot lifetime, enforced by a TTL index (24 h).
    pub snapshot_ttl: Duration,
    /// Snapshot entries per stored chunk (1,000: about 100 KiB, far inside
    /// MongoDB's 16 MiB document limit, and two chunks cover any page).
    pub snapshot_chunk_rows: usize,
}

impl MongoConfig {
    /// Defaults for everything but the location.
    pub fn new(url: &str, database: &str) -> Self {
        MongoConfig {
            url: url.to_string(),
            user: None,
            password: None,
            database: database.to_string(),
            pool_size: 10,
            server_selection_timeout: Duration::from_secs(5),
            snapshot_ttl: Duration::from_secs(24 * 60 * 60),
            snapshot_chunk_rows: 1000,
        }
    }

    /// The same server, another database (tests use a fresh one each).
    pub fn with_database(&self, database: &str) -> Self {
        MongoConfig {
            database: database.to_string(),
            ..self.clone()
        }
    }
}
