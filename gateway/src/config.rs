//! Configuration (SPEC section 6): the seed's environment names, over an optional
//! TOML file (`CONFIG_FILE`, same names in lowercase). A missing required value is
//! reported together with every other missing one.

use std::path::PathBuf;
use std::time::Duration;

use crate::graphql::ArgumentCaps;

use secrecy::SecretString;
use serde::Deserialize;

/// Everything the gateway reads, as typed values, in sections. Each section's
/// `Default` is where its defaults are written (and the README's table states them).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_ENV=production` or `NODE_ENV=production`.
    pub production: bool,
    /// Where to listen.
    pub server: ServerSettings,
    /// Real data sources, or `None` for the embedded stores (development only).
    pub services: Option<Services>,
    /// Token verification.
    pub auth: AuthSettings,
    /// What one request may cost.
    pub limits: LimitSettings,
    /// The graceful stop.
    pub shutdown: ShutdownSettings,
    /// What WebSockets and subscriptions may hold, and for how long.
    pub subscriptions: SubscriptionSettings,
    /// `QUERYCACHE_TTL_SECONDS`: checkoutFeed snapshot lifetime.
    pub snapshot_ttl: Duration,
}

/// Where to listen.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `GRAPHQL_SERVER_HOST`: loopback in development, every interface in production.
    pub host: String,
    /// `GRAPHQL_SERVER_PORT` (0 picks a free port).
    pub port: u16,
    /// `CORS_ORIGINS`: browser origins allowed to call the API, comma-separated;
    /// `*` (the seed's default) allows any, without credentials.
    pub cors_origins: Vec<String>,
}

impl ServerSettings {
    fn defaults(production: bool) -> Self {
        ServerSettings {
            host: if production { "0.0.0.0" } else { "127.0.0.1" }.into(),
            port: 4000,
            cors_origins: vec!["*".into()],
        }
    }
}

/// Token verification.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `PUBLIC_JWT_KEY_URL`; `None` in embedded mode means the built-in dev key.
    pub key_url: Option<String>,
    /// `JWT_KEY_CACHE_SECONDS`: how long a fetched key is used.
    pub key_cache_ttl: Duration,
    /// `PUBLIC_JWT_KEY_CA`: a PEM file of CAs an `https` key URL may be signed by.
    pub key_ca_file: Option<PathBuf>,
    /// `JWT_ISSUER`: when set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: when set, tokens must name this audience in `aud`.
    pub audience: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            key_url: None,
            key_cache_ttl: Duration::from_secs(3600),
            key_ca_file: None,
            issuer: None,
            audience: None,
        }
    }
}

/// What one request may cost.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// `GRAPHQL_MAX_BODY_BYTES`: larger bodies get 413.
    pub max_body_bytes: usize,
    /// `GRAPHQL_MAX_DEPTH`
    pub max_depth: usize,
    /// `GRAPHQL_MAX_COMPLEXITY`
    pub max_complexity: usize,
    /// `GRAPHQL_MAX_ALIASES`
    pub max_aliases: usize,
    /// `GRAPHQL_REQUEST_TIMEOUT` seconds: longest a query or mutation runs.
    pub request_timeout: Duration,
    /// `GRAPHQL_METRICS_MAX_OPERATIONS`: distinct operation names labelled.
    pub max_operation_labels: usize,
    /// `GRAPHQL_APQ_MAX_ENTRIES`: automatic persisted queries kept per instance.
    pub persisted_entries: usize,
    /// `GRAPHQL_APQ_MAX_BYTES`: their text, in all.
    pub persisted_bytes: usize,
    /// `GRAPHQL_MAX_DATE_FORMAT_LENGTH`, `GRAPHQL_MAX_STRING_LENGTH`,
    /// `GRAPHQL_DEFAULT_PAGE_SIZE`, `GRAPHQL_MAX_PAGE_SIZE`, `QUERYCACHE_MAX_ROWS`,
    /// `QUERYCACHE_REUSE_SECONDS`: the argument caps.
    pub arguments: ArgumentCaps,
    /// `GRAPHQL_MAX_RESPONSE_BYTES`: a larger reply is replaced by an error.
    pub max_response_bytes: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_body_bytes: 1024 * 1024,
            max_depth: 15,
            max_complexity: 5_000,
            max_aliases: 15,
            request_timeout: Duration::from_secs(30),
            max_operation_labels: 100,
            persisted_entries: 1000,
            persisted_bytes: 8 * 1024 * 1024,
            arguments: ArgumentCaps::default(),
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The graceful stop (SPEC section 7).
#[derive(Debug, Clone)]
pub struct ShutdownSettings {
    /// `SHUTDOWN_DELAY` seconds between SIGTERM and closing the listener (load
    /// balancers notice; none needed in development).
    pub delay: Duration,
    /// `SHUTDOWN_TIMEOUT` seconds for the whole stop.
    pub timeout: Duration,
    /// `SHUTDOWN_CLOSE_TIMEOUT` seconds per Closeable.
    pub close_timeout: Duration,
}

impl ShutdownSettings {
    fn defaults(production: bool) -> Self {
        ShutdownSettings {
            delay: Duration::from_secs(if production { 5 } else { 0 }),
            timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(10),
        }
    }
}

/// What WebSockets and subscriptions may hold, and for how long (SPEC section 5b).
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    /// `WS_CONNECTION_INIT_TIMEOUT` seconds: a socket that has not sent
    /// `connection_init` by then is closed (4408).
    pub init_timeout: Duration,
    /// `WS_KEEPALIVE_INTERVAL` seconds between keep-alive messages (`ka` on the
    /// legacy protocol, `ping` on graphql-transport-ws) and WebSocket pings.
    pub keepalive: Duration,
    /// `WS_MAX_SUBSCRIPTIONS_PER_SOCKET`: operations running at once on one socket.
    pub max_subscriptions: usize,
    /// `WS_MAX_SOCKETS`: open sockets per instance; more get 503 before upgrading.
    pub max_sockets: usize,
    /// `WS_MAX_SOCKETS_PER_USER`: open sockets per token subject.
    pub max_sockets_per_user: usize,
    /// `WS_SEND_TIMEOUT` seconds: a socket that takes longer to accept one message
    /// is dropped, so no reader can hold up its events or the stop.
    pub send_timeout: Duration,
    /// `SUBSCRIPTION_REPLAY_CONCURRENCY`: `after` replays reading the log at once
    /// per instance; more wait their turn.
    pub replay_concurrency: usize,
    /// `SUBSCRIPTION_BUFFER_EVENTS`: responses one subscriber may fall behind the
    /// others of its (shared) subscription by; past that it is told
    /// `SUBSCRIBER_TOO_SLOW` and dropped, so nobody waits for it.
    pub buffer: usize,
    /// `SUBSCRIPTION_REPLAY_MAX_EVENTS`: events one replay may read before it
    /// gives up (the client re-fetches with a query instead).
    pub replay_max_events: usize,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        SubscriptionSettings {
            init_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(12),
            max_subscriptions: 50,
            max_sockets: 10_000,
            max_sockets_per_user: 50,
            send_timeout: Duration::from_secs(10),
            buffer: 1024,
            replay_concurrency: 4,
            replay_max_events: 10_000,
        }
    }
}

/// The snapshot lifetime's default, `QUERYCACHE_TTL_SECONDS`.
const SNAPSHOT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The real data sources.
#[derive(Debug, Clone)]
pub struct Services {
    /// MySQL settings.
    pub mysql: data_mysql::MysqlConfig,
    /// MongoDB settings.
    pub mongo: data_mongo::MongoConfig,
    /// `KAFKA_BROKERS`.
    pub kafka_brokers: String,
    /// The outbox relay (`OUTBOX_RETENTION_SECONDS`, 7 days).
    pub relay: events_kafka::RelayConfig,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Required values are missing; every one is named.
    #[error("missing required configuration: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    /// A value could not be read (not a number, unreadable file).
    #[error("invalid configuration")]
    Invalid(#[from] config::ConfigError),
    /// A value is readable but not one the setting takes.
    #[error("invalid {name}: {reason}")]
    Value {
        /// The variable's name.
        name: &'static str,
        /// What it takes.
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Raw {
    app_env: Option<String>,
    node_env: Option<String>,
    graphql_server_host: Option<String>,
    graphql_server_port: Option<u16>,
    cors_origins: Option<String>,
    mysql_host: Option<String>,
    mysql_port: Option<u16>,
    mysql_user: Option<String>,
    mysql_password: Option<String>,
    mysql_database: Option<String>,
    mysql_connection_pool_limit: Option<u32>,
    mysql_timezone: Option<String>,
    mysql_ssl_mode: Option<String>,
    mysql_ssl_ca: Option<String>,
    mongo_url: Option<String>,
    mongo_user: Option<String>,
    mongo_password: Option<String>,
    mongo_database: Option<String>,
    mongo_connection_pool_size: Option<u32>,
    kafka_brokers: Option<String>,
    public_jwt_key_url: Option<String>,
    jwt_key_cache_seconds: Option<f64>,
    public_jwt_key_ca: Option<PathBuf>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    shutdown_delay: Option<f64>,
    shutdown_timeout: Option<f64>,
    shutdown_close_timeout: Option<f64>,
    graphql_max_body_bytes: Option<usize>,
    graphql_max_depth: Option<usize>,
    graphql_max_complexity: Option<usize>,
    graphql_max_aliases: Option<usize>,
    querycache_ttl_seconds: Option<f64>,
    graphql_request_timeout: Option<f64>,
    graphql_metrics_max_operations: Option<usize>,
    graphql_apq_max_entries: Option<usize>,
    graphql_apq_max_bytes: Option<usize>,
    graphql_max_date_format_length: Option<usize>,
    graphql_max_string_length: Option<usize>,
    graphql_default_page_size: Option<u32>,
    graphql_max_page_size: Option<u32>,
    graphql_max_response_bytes: Option<usize>,
    querycache_max_rows: Option<u32>,
    querycache_reuse_seconds: Option<f64>,
    outbox_retention_seconds: Option<f64>,
    outbox_poll_ms: Option<u64>,
    ws_connection_init_timeout: Option<f64>,
    ws_keepalive_interval: Option<f64>,
    ws_max_subscriptions_per_socket: Option<usize>,
    ws_max_sockets: Option<usize>,
    ws_max_sockets_per_user: Option<usize>,
    ws_send_timeout: Option<f64>,
    subscription_buffer_events: Option<usize>,
    subscription_replay_concurrency: Option<usize>,
    subscription_replay_max_events: Option<usize>,
}

/// Every environment name the gateway reads (the deploy checks compare against it).
pub const KNOWN_NAMES: &[&str] = &[
    "APP_ENV",
    "NODE_ENV",
    "CONFIG_FILE",
    "RUST_LOG",
    "GRAPHQL_SERVER_HOST",
    "GRAPHQL_SERVER_PORT",
    "CORS_ORIGINS",
    "MYSQL_HOST",
    "MYSQL_PORT",
    "MYSQL_USER",
    "MYSQL_PASSWORD",
    "MYSQL_DATABASE",
    "MYSQL_CONNECTION_POOL_LIMIT",
    "MYSQL_TIMEZONE",
    "MYSQL_SSL_MODE",
    "MYSQL_SSL_CA",
    "MONGO_URL",
    "MONGO_USER",
    "MONGO_PASSWORD",
    "MONGO_DATABASE",
    "MONGO_CONNECTION_POOL_SIZE",
    "KAFKA_BROKERS",
    "PUBLIC_JWT_KEY_URL",
    "JWT_KEY_CACHE_SECONDS",
    "PUBLIC_JWT_KEY_CA",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "SHUTDOWN_DELAY",
    "SHUTDOWN_TIMEOUT",
    "SHUTDOWN_CLOSE_TIMEOUT",
    "GRAPHQL_MAX_BODY_BYTES",
    "GRAPHQL_MAX_DEPTH",
    "GRAPHQL_MAX_COMPLEXITY",
    "GRAPHQL_MAX_ALIASES",
    "QUERYCACHE_TTL_SECONDS",
    "GRAPHQL_REQUEST_TIMEOUT",
    "GRAPHQL_METRICS_MAX_OPERATIONS",
    "GRAPHQL_APQ_MAX_ENTRIES",
    "GRAPHQL_APQ_MAX_BYTES",
    "GRAPHQL_MAX_DATE_FORMAT_LENGTH",
    "GRAPHQL_MAX_STRING_LENGTH",
    "GRAPHQL_DEFAULT_PAGE_SIZE",
    "GRAPHQL_MAX_PAGE_SIZE",
    "GRAPHQL_MAX_RESPONSE_BYTES",
    "QUERYCACHE_MAX_ROWS",
    "QUERYCACHE_REUSE_SECONDS",
    "OUTBOX_RETENTION_SECONDS",
    "OUTBOX_POLL_MS",
    "WS_CONNECTION_INIT_TIMEOUT",
    "WS_KEEPALIVE_INTERVAL",
    "WS_MAX_SUBSCRIPTIONS_PER_SOCKET",
    "WS_MAX_SOCKETS",
    "WS_MAX_SOCKETS_PER_USER",
    "WS_SEND_TIMEOUT",
    "SUBSCRIPTION_BUFFER_EVENTS",
    "SUBSCRIPTION_REPLAY_CONCURRENCY",
    "SUBSCRIPTION_REPLAY_MAX_EVENTS",
];

/// Seconds as a duration; `default` when unset, negative or not finite.
fn secs(v: Option<f64>, default: Duration) -> Duration {
    v.filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(default, Duration::from_secs_f64)
}

impl Settings {
    /// Development defaults: embedded stores, port 4000 (tests set port 0 and
    /// `services` as they need).
    pub fn development() -> Self {
        match Self::from_raw(Raw::default()) {
            Ok(s) => s,
            // Unreachable: defaults require nothing. Kept total for the reader.
            Err(_) => unreachable!("development defaults need no settings"),
        }
    }

    /// Reads the process environment (and `CONFIG_FILE` under it).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(None)
    }

    /// Reads `vars` as if they were the environment (`None`: the real one).
    fn from_vars(vars: Option<config::Map<String, String>>) -> Result<Self, ConfigError> {
        let file = match &vars {
            Some(vars) => vars.get("CONFIG_FILE").map(PathBuf::from),
            None => std::env::var_os("CONFIG_FILE").map(PathBuf::from),
        };
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        // Values stay strings until their field's type asks for a number: with the
        // crate's `try_parsing`, `MYSQL_PASSWORD=0123` became the number 123.
        let raw: Raw = builder
            .add_source(config::Environment::default().source(vars))
            .build()?
            .try_deserialize()?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Self, ConfigError> {
        let is_prod = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case("production"))
        };
        let production = is_prod(&raw.app_env) || is_prod(&raw.node_env);
        let wants_services = production
            || raw.mysql_host.is_some()
            || raw.mongo_url.is_some()
            || raw.kafka_brokers.is_some();
        let mut missing = Vec::new();
        let mut need = |value: &Option<String>, name: &'static str| {
            if value.as_deref().is_none_or(str::is_empty) {
                missing.push(name);
            }
        };
        if wants_services {
            need(&raw.mysql_host, "MYSQL_HOST");
            need(&raw.mysql_user, "MYSQL_USER");
            need(&raw.mysql_password, "MYSQL_PASSWORD");
            need(&raw.mysql_database, "MYSQL_DATABASE");
            need(&raw.mongo_url, "MONGO_URL");
            need(&raw.mongo_database, "MONGO_DATABASE");
            need(&raw.kafka_brokers, "KAFKA_BROKERS");
            need(&raw.public_jwt_key_url, "PUBLIC_JWT_KEY_URL");
        }
        if !missing.is_empty() {
            return Err(ConfigError::Missing(missing));
        }
        let ssl_mode = match raw.mysql_ssl_mode.as_deref().filter(|m| !m.is_empty()) {
            None => data_mysql::SslMode::default(),
            Some(mode) => mode.parse().map_err(|_| ConfigError::Value {
                name: "MYSQL_SSL_MODE",
                reason: format!(
                    "{mode:?} is not one of disabled, preferred, required, verify_ca, verify_identity"
                ),
            })?,
        };
        let services = wants_services.then(|| {
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            let mut mysql = data_mysql::MysqlConfig::new(
                &text(&raw.mysql_host),
                &text(&raw.mysql_user),
                &text(&raw.mysql_password),
                &text(&raw.mysql_database),
            );
            mysql.port = raw.mysql_port.unwrap_or(3306);
            mysql.pool_limit = raw.mysql_connection_pool_limit.unwrap_or(10);
            mysql.ssl_mode = ssl_mode;
            mysql.ssl_ca = raw
                .mysql_ssl_ca
                .clone()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from);
            let mut mongo =
                data_mongo::MongoConfig::new(&text(&raw.mongo_url), &text(&raw.mongo_database));
            mongo.user = raw.mongo_user.clone().filter(|u| !u.is_empty());
            mongo.password = raw.mongo_password.clone().map(SecretString::from);
            mongo.pool_size = raw.mongo_connection_pool_size.unwrap_or(10);
            let mut relay = events_kafka::RelayConfig::default();
            relay.retention = secs(raw.outbox_retention_seconds, relay.retention);
            relay.poll = raw.outbox_poll_ms.map_or(relay.poll, Duration::from_millis);
            Services {
                mysql,
                mongo,
                kafka_brokers: text(&raw.kafka_brokers),
                relay,
            }
        });
        let server = ServerSettings::defaults(production);
        let auth = AuthSettings::default();
        let limits = LimitSettings::default();
        let shutdown = ShutdownSettings::defaults(production);
        let subscriptions = SubscriptionSettings::default();
        Ok(Settings {
            production,
            server: ServerSettings {
                host: raw.graphql_server_host.unwrap_or(server.host),
                port: raw.graphql_server_port.unwrap_or(server.port),
                cors_origins: raw
                    .cors_origins
                    .map(|list| {
                        list.split(',')
                            .map(|o| o.trim().to_string())
                            .filter(|o| !o.is_empty())
                            .collect::<Vec<_>>()
                    })
                    .filter(|list| !list.is_empty())
                    .unwrap_or(server.cors_origins),
            },
            services,
            auth: AuthSettings {
                key_url: raw.public_jwt_key_url.filter(|u| !u.is_empty()),
                key_cache_ttl: secs(raw.jwt_key_cache_seconds, auth.key_cache_ttl),
                key_ca_file: raw.public_jwt_key_ca.filter(|p| !p.as_os_str().is_empty()),
                issuer: raw.jwt_issuer.filter(|v| !v.is_empty()),
                audience: raw.jwt_audience.filter(|v| !v.is_empty()),
            },
            limits: LimitSettings {
                max_body_bytes: raw.graphql_max_body_bytes.unwrap_or(limits.max_body_bytes),
                max_depth: raw.graphql_max_depth.unwrap_or(limits.max_depth),
                max_complexity: raw.graphql_max_complexity.unwrap_or(limits.max_complexity),
                max_aliases: raw.graphql_max_aliases.unwrap_or(limits.max_aliases),
                request_timeout: secs(raw.graphql_request_timeout, limits.request_timeout),
                max_operation_labels: raw
                    .graphql_metrics_max_operations
                    .unwrap_or(limits.max_operation_labels),
                persisted_entries: raw
                    .graphql_apq_max_entries
                    .unwrap_or(limits.persisted_entries),
                persisted_bytes: raw.graphql_apq_max_bytes.unwrap_or(limits.persisted_bytes),
                arguments: ArgumentCaps {
                    format_chars: raw
                        .graphql_max_date_format_length
                        .unwrap_or(limits.arguments.format_chars),
                    string_chars: raw
                        .graphql_max_string_length
                        .unwrap_or(limits.arguments.string_chars),
                    default_page: raw
                        .graphql_default_page_size
                        .unwrap_or(limits.arguments.default_page),
                    max_page: raw
                        .graphql_max_page_size
                        .unwrap_or(limits.arguments.max_page),
                    snapshot_rows: raw
                        .querycache_max_rows
                        .unwrap_or(limits.arguments.snapshot_rows),
                    snapshot_reuse: secs(
                        raw.querycache_reuse_seconds,
                        limits.arguments.snapshot_reuse,
                    ),
                },
                max_response_bytes: raw
                    .graphql_max_response_bytes
                    .unwrap_or(limits.max_response_bytes),
            },
            shutdown: ShutdownSettings {
                delay: secs(raw.shutdown_delay, shutdown.delay),
                timeout: secs(raw.shutdown_timeout, shutdown.timeout),
                close_timeout: secs(raw.shutdown_close_timeout, shutdown.close_timeout),
            },
            subscriptions: SubscriptionSettings {
                init_timeout: secs(raw.ws_connection_init_timeout, subscriptions.init_timeout),
                keepalive: secs(raw.ws_keepalive_interval, subscriptions.keepalive),
                max_subscriptions: raw
                    .ws_max_subscriptions_per_socket
                    .unwrap_or(subscriptions.max_subscriptions),
                max_sockets: raw.ws_max_sockets.unwrap_or(subscriptions.max_sockets),
                max_sockets_per_user: raw
                    .ws_max_sockets_per_user
                    .unwrap_or(subscriptions.max_sockets_per_user),
                send_timeout: secs(raw.ws_send_timeout, subscriptions.send_timeout),
                buffer: raw
                    .subscription_buffer_events
                    .unwrap_or(subscriptions.buffer)
                    .max(1),
                replay_concurrency: raw
                    .subscription_replay_concurrency
                    .unwrap_or(subscriptions.replay_concurrency)
                    .max(1),
                replay_max_events: raw
                    .subscription_replay_max_events
                    .unwrap_or(subscriptions.replay_max_events),
            },
            snapshot_ttl: secs(raw.querycache_ttl_seconds, SNAPSHOT_TTL),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_settings_in_development_means_embedded() {
        let s = Settings::from_raw(Raw::default()).unwrap();
        assert!(s.services.is_none());
        assert!(!s.production);
        assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 4000));
        assert_eq!(s.shutdown.delay, Duration::ZERO);
    }

    #[test]
    fn production_lists_every_missing_name() {
        let raw = Raw {
            node_env: Some("production".into()),
            mysql_host: Some("db".into()),
            ..Raw::default()
        };
        match Settings::from_raw(raw) {
            Err(ConfigError::Missing(names)) => assert_eq!(
                names,
                vec![
                    "MYSQL_USER",
                    "MYSQL_PASSWORD",
                    "MYSQL_DATABASE",
                    "MONGO_URL",
                    "MONGO_DATABASE",
                    "KAFKA_BROKERS",
                    "PUBLIC_JWT_KEY_URL"
                ]
            ),
            other => panic!("expected missing names, got {other:?}"),
        }
    }

    #[test]
    fn mysql_tls_settings() {
        let raw = || Raw {
            mysql_host: Some("db".into()),
            mysql_user: Some("u".into()),
            mysql_password: Some("p".into()),
            mysql_database: Some("d".into()),
            mongo_url: Some("mongodb://m".into()),
            mongo_database: Some("d".into()),
            kafka_brokers: Some("k:9092".into()),
            public_jwt_key_url: Some("http://k/publickey".into()),
            ..Raw::default()
        };
        let mysql = |raw| Settings::from_raw(raw).unwrap().services.unwrap().mysql;
        assert_eq!(mysql(raw()).ssl_mode, data_mysql::SslMode::Preferred);
        let verified = mysql(Raw {
            mysql_ssl_mode: Some("VERIFY_IDENTITY".into()),
            mysql_ssl_ca: Some("/etc/ca.pem".into()),
            ..raw()
        });
        assert_eq!(verified.ssl_mode, data_mysql::SslMode::VerifyIdentity);
        assert_eq!(verified.ssl_ca, Some(PathBuf::from("/etc/ca.pem")));
        let bad = Settings::from_raw(Raw {
            mysql_ssl_mode: Some("yes".into()),
            ..raw()
        });
        assert!(
            matches!(
                bad,
                Err(ConfigError::Value {
                    name: "MYSQL_SSL_MODE",
                    ..
                })
            ),
            "{bad:?}"
        );
    }

    #[test]
    fn values_are_read_as_their_fields_ask() {
        let vars = [
            ("MYSQL_HOST", "db"),
            ("MYSQL_PORT", "3307"),
            ("MYSQL_USER", "007"),
            ("MYSQL_PASSWORD", "0123"),
            ("MYSQL_DATABASE", "1e3"),
            ("MONGO_URL", "mongodb://m"),
            ("MONGO_DATABASE", "d"),
            ("MONGO_PASSWORD", "00"),
            ("KAFKA_BROKERS", "k:9092"),
            ("PUBLIC_JWT_KEY_URL", "http://k/publickey"),
            ("SHUTDOWN_TIMEOUT", "2.5"),
        ];
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = Settings::from_vars(Some(vars)).unwrap();
        let services = s.services.unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(services.mysql.password.expose_secret(), "0123");
        assert_eq!(services.mysql.user, "007");
        assert_eq!(services.mysql.database, "1e3");
        assert_eq!(services.mysql.port, 3307);
        assert_eq!(
            services
                .mongo
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string()),
            Some("00".into())
        );
        assert_eq!(s.shutdown.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn secrets_never_print() {
        let raw = Raw {
            mysql_host: Some("db".into()),
            mysql_user: Some("u".into()),
            mysql_password: Some("hunter2".into()),
            mysql_database: Some("d".into()),
            mongo_url: Some("mongodb://m".into()),
            mongo_database: Some("d".into()),
            mongo_password: Some("sesame".into()),
            kafka_brokers: Some("k:9092".into()),
            public_jwt_key_url: Some("http://k/publickey".into()),
            ..Raw::default()
        };
        let s = Settings::from_raw(raw).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("sesame"));
        assert!(!s.production && s.services.is_some());
    }
}
