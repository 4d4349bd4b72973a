//! Connection settings, from SPEC section 6's MYSQL_* variables, and the one place
//! that turns them into driver options (pool, migrations and relay lease alike).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::Error;

/// `MYSQL_SSL_MODE`: the MySQL client's own names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, unverified; plain TCP otherwise (the MySQL
    /// client's default). Resolved once, at connect.
    #[default]
    Preferred,
    /// TLS or no connection; the certificate is not verified.
    Required,
    /// TLS with a certificate signed by `MYSQL_SSL_CA` (or a public CA); any host name.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names `MYSQL_HOST`.
    VerifyIdentity,
}

impl SslMode {
    /// The setting's spelling, as `MYSQL_SSL_MODE` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = Error;

    /// Case-insensitive; `-` and `_` alike (`VERIFY-CA`, `verify_ca`).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "disabled" => Ok(SslMode::Disabled),
            "preferred" => Ok(SslMode::Preferred),
            "required" => Ok(SslMode::Required),
            "verify_ca" => Ok(SslMode::VerifyCa),
            "verify_identity" => Ok(SslMode::VerifyIdentity),
            _ => Err(Error::Setting {
                setting: "MYSQL_SSL_MODE",
                reason: format!(
                    "{s:?} is not one of disabled, preferred, required, verify_ca, verify_identity"
                ),
            }),
        }
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// `MYSQL_SSL_MODE` (preferred)
    pub ssl_mode: SslMode,
    /// `MYSQL_SSL_CA`: a PEM file of the CA certificates to trust (verify modes);
    /// without it, the public web's CAs.
    pub ssl_ca: Option<PathBuf>,
    /// The name the server's certificate must hold in the verify modes (default:
    /// `host`). `VerifyCa` sets it to a name the certificate holds, at connect:
    /// mysql_async 0.36 (pinned by diesel-async) cannot skip the name check on
    /// rustls (its issue #404, fixed in 0.37).
    pub tls_hostname: Option<String>,
    /// How long a request waits for a pooled connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// On close, how long in-flight queries may run before connections are dropped.
    pub drain_timeout: Duration,
    /// Whether a TCP connection to a server on this host switches to the server's
    /// Unix socket (mysql_async's `prefer_socket`; faster). Off forces TCP, e.g.
    /// through a proxy; always off when TLS is required, so TLS means TLS.
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
            ssl_mode: SslMode::default(),
            ssl_ca: None,
            tls_hostname: None,
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

    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Driver options for this database (`with_database = false`: the server only,
    /// to create a database). The password goes into the options, never a log.
    pub(crate) fn opts(&self, with_database: bool) -> Result<mysql_async::Opts, Error> {
        let tls = self.ssl_opts()?;
        let prefer_socket = self.prefer_socket && tls.is_none();
        let db = with_database.then(|| self.database.clone());
        let builder = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.expose_secret().to_string()))
            .db_name(db)
            .prefer_socket(prefer_socket)
            .ssl_opts(tls)
            // Server messages in English whatever the server's `lc_messages`: the
            // deadlock and lock-wait errors are recognised by their text (diesel
            // keeps a server error's message, not its code).
            .init(vec!["SET SESSION lc_messages = 'en_US'"]);
        Ok(builder.into())
    }

    /// With `Preferred`, when `e` says the server offers no TLS: the same settings
    /// without TLS, to connect again with.
    pub(crate) fn plain_fallback(&self, e: &mysql_async::Error) -> Option<MysqlConfig> {
        let no_tls = matches!(
            e,
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
        );
        (no_tls && self.ssl_mode == SslMode::Preferred).then(|| MysqlConfig {
            ssl_mode: SslMode::Disabled,
            ..self.clone()
        })
    }

    /// With `VerifyCa`, when `e` says only the certificate's name did not match: the
    /// same settings, expecting a name the certificate holds (the CA was checked).
    pub(crate) fn name_fallback(&self, e: &mysql_async::Error) -> Option<MysqlConfig> {
        if self.ssl_mode != SslMode::VerifyCa || self.tls_hostname.is_some() {
            return None;
        }
        let name = certificate_names(e)?.into_iter().next()?;
        Some(MysqlConfig {
            tls_hostname: Some(name),
            ..self.clone()
        })
    }

    /// TLS options for the mode; `Preferred` tries TLS (see `store::connect`).
    fn ssl_opts(&self) -> Result<Option<mysql_async::SslOpts>, Error> {
        // Read here, not by the driver at its first connect: a bad path is a clear
        // start-up error naming the setting.
        let ca = || -> Result<Option<Vec<u8>>, Error> {
            self.ssl_ca
                .as_ref()
                .map(|path| {
                    std::fs::read(path).map_err(|e| Error::Setting {
                        setting: "MYSQL_SSL_CA",
                        reason: format!("cannot read {}: {e}", path.display()),
                    })
                })
                .transpose()
        };
        let opts = mysql_async::SslOpts::default();
        Ok(match self.ssl_mode {
            SslMode::Disabled => None,
            SslMode::Preferred | SslMode::Required => Some(
                opts.with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                let roots: Vec<_> = ca()?.into_iter().map(Into::into).collect();
                let own_roots = !roots.is_empty();
                Some(
                    opts.with_root_certs(roots)
                        .with_disable_built_in_roots(own_roots)
                        .with_danger_tls_hostname_override(self.tls_hostname.clone()),
                )
            }
        })
    }
}

/// The names a server certificate holds, when `e` is a name mismatch after the chain
/// verified (rustls reports them as `DnsName("a.b")` / `IpAddress(1.2.3.4)`).
fn certificate_names(e: &mysql_async::Error) -> Option<Vec<String>> {
    use rustls::{CertificateError, Error as TlsError};
    let mysql_async::Error::Io(mysql_async::IoError::Io(io)) = e else {
        return None;
    };
    let presented = match io.get_ref()?.downcast_ref::<TlsError>()? {
        TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => presented,
        _ => return None,
    };
    Some(
        presented
            .iter()
            .filter_map(|p| {
                let dns = p
                    .strip_prefix("DnsName(\"")
                    .and_then(|n| n.strip_suffix("\")"))
                    // A wildcard stands for any one label.
                    .map(|n| n.replacen("*.", "tls-name-check.", 1));
                let ip = p
                    .strip_prefix("IpAddress(")
                    .and_then(|n| n.strip_suffix(')'))
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .map(str::to_string);
                dns.or(ip)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let c = MysqlConfig::new("127.0.0.1", "graphql", "p@ss/word", "central-library");
        assert!(!format!("{c:?}").contains("p@ss"));
        let opts = c.opts(true).unwrap();
        assert_eq!(
            opts.pass(),
            Some("p@ss/word"),
            "no URL encoding to get wrong"
        );
        assert_eq!(opts.db_name(), Some("central-library"));
        assert_eq!(c.opts(false).unwrap().db_name(), None);
    }

    #[test]
    fn ssl_modes_parse_like_the_mysql_client() {
        for (text, mode) in [
            ("DISABLED", SslMode::Disabled),
            ("preferred", SslMode::Preferred),
            ("Required", SslMode::Required),
            ("verify_ca", SslMode::VerifyCa),
            ("VERIFY-IDENTITY", SslMode::VerifyIdentity),
        ] {
            assert_eq!(text.parse::<SslMode>().unwrap(), mode);
            assert_eq!(mode.as_str().parse::<SslMode>().unwrap(), mode);
        }
        let err = "on".parse::<SslMode>().unwrap_err().to_string();
        assert!(err.contains("MYSQL_SSL_MODE"), "{err}");
    }

    #[test]
    fn tls_modes_turn_off_the_socket_shortcut() {
        let mut c = MysqlConfig::new("127.0.0.1", "u", "p", "d");
        c.ssl_mode = SslMode::Disabled;
        assert!(c.opts(true).unwrap().prefer_socket());
        assert!(c.opts(true).unwrap().ssl_opts().is_none());
        c.ssl_mode = SslMode::Required;
        assert!(!c.opts(true).unwrap().prefer_socket());
        assert!(c.opts(true).unwrap().ssl_opts().is_some());
    }

    #[test]
    fn an_unreadable_ca_file_names_the_setting() {
        let mut c = MysqlConfig::new("127.0.0.1", "u", "p", "d");
        c.ssl_mode = SslMode::VerifyCa;
        c.ssl_ca = Some("/nonexistent/ca.pem".into());
        let err = c.opts(true).unwrap_err().to_string();
        assert!(err.contains("MYSQL_SSL_CA"), "{err}");
    }
}
