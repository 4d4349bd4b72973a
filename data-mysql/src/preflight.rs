//! What is checked before any migration writes: the server's kind and version, the
//! shape of an existing `checkouts` table, and the legacy rows the one-open-checkout
//! guard would refuse. A failed check is an `Error` that says what to do, and the
//! database is left exactly as it was.

use mysql_async::prelude::Queryable;

use crate::error::OpenTwice;
use crate::Error;

/// The servers the portable dialect is built and tested for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// Oracle MySQL 8.0.13 or later (functional defaults, STORED columns, atomic DDL).
    Mysql,
    /// MariaDB 10.6 or later.
    MariaDb,
}

/// The server named by `SELECT VERSION()` (`9.7.4-2`, `10.11.19-MariaDB-0+deb12u1`),
/// if supported.
pub(crate) fn server(version: &str) -> Result<Server, Error> {
    let unsupported = || Error::UnsupportedServer {
        version: version.to_string(),
    };
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().map_err(|_| unsupported()))
        .collect::<Result<_, _>>()?;
    let [major, minor, patch] = numbers[..] else {
        return Err(unsupported());
    };
    let v = (major, minor, patch);
    if version.to_ascii_lowercase().contains("mariadb") {
        (v >= (10, 6, 0))
            .then_some(Server::MariaDb)
            .ok_or_else(unsupported)
    } else {
        (v >= (8, 0, 13))
            .then_some(Server::Mysql)
            .ok_or_else(unsupported)
    }
}

/// The legacy columns and the types the connector reads them as.
const LEGACY_COLUMNS: [(&str, &[&str], bool); 5] = [
    ("row_id", &["int"], false),
    ("user_email", &["varchar", "char"], false),
    ("asset_upc", &["varchar", "char"], false),
    ("checkout_date", &["datetime"], false),
    ("checkin_date", &["datetime"], true),
];

/// Copies listed in a refusal, at most.
const LISTED_COPIES: usize = 20;

/// What the first session found.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The server's kind.
    pub(crate) server: Server,
    /// The TLS cipher of the session, `None` without TLS.
    pub(crate) tls_cipher: Option<String>,
}

/// Runs every check on `conn` (connected to `database`); writes nothing.
pub(crate) async fn check(conn: &mut mysql_async::Conn, database: &str) -> Result<Session, Error> {
    let connecting = |e| Error::Migration(Box::new(e));
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(connecting)?;
    let server = server(version.as_deref().unwrap_or("unknown"))?;
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .map_err(connecting)?;
    let session = Session {
        server,
        tls_cipher: cipher.map(|(_, c)| c).filter(|c| !c.is_empty()),
    };

    let columns: Vec<(String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'checkouts'",
            (),
        )
        .await
        .map_err(connecting)?;
    if columns.is_empty() {
        return Ok(session); // a fresh database: the first migration creates the table
    }
    if let Some(problem) = legacy_shape_problem(&columns) {
        return Err(Error::NotLegacyTable {
            database: database.to_string(),
            problem,
        });
    }
    let guarded = columns.iter().any(|(name, ..)| name == "open_asset_upc");
    if !guarded {
        let twice: Vec<(String, String)> = conn
            .query(format!(
                "SELECT asset_upc, CAST(GROUP_CONCAT(row_id ORDER BY row_id) AS CHAR) \
                 FROM checkouts WHERE checkin_date IS NULL \
                 GROUP BY asset_upc HAVING COUNT(*) > 1 ORDER BY asset_upc LIMIT {LISTED_COPIES}"
            ))
            .await
            .map_err(connecting)?;
        if !twice.is_empty() {
            let copies = twice
                .into_iter()
                .map(|(asset_upc, ids)| OpenTwice {
                    asset_upc,
                    row_ids: ids.split(',').filter_map(|id| id.parse().ok()).collect(),
                })
                .collect();
            return Err(Error::DuplicateOpenCheckouts { copies });
        }
    }
    Ok(session)
}

/// What keeps `columns` (name, data type, nullable) from being the legacy table.
fn legacy_shape_problem(columns: &[(String, String, String)]) -> Option<String> {
    for (name, types, nullable) in LEGACY_COLUMNS {
        let Some((_, found, is_nullable)) = columns.iter().find(|(n, ..)| n == name) else {
            return Some(format!("column {name} is missing"));
        };
        let found = found.to_ascii_lowercase();
        if !types.contains(&found.as_str()) {
            return Some(format!(
                "column {name} is {found}, expected {}",
                types.join(" or ")
            ));
        }
        if !nullable && is_nullable == "YES" {
            return Some(format!("column {name} allows NULL, expected NOT NULL"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_servers_by_version_text() {
        assert_eq!(server("9.7.4-2").unwrap(), Server::Mysql);
        assert_eq!(server("8.0.13").unwrap(), Server::Mysql);
        assert_eq!(server("8.4.3-log").unwrap(), Server::Mysql);
        assert_eq!(
            server("10.11.19-MariaDB-0+deb12u1").unwrap(),
            Server::MariaDb
        );
        assert_eq!(server("11.4.2-MariaDB").unwrap(), Server::MariaDb);
        assert_eq!(server("10.6.0-MariaDB").unwrap(), Server::MariaDb);
        for old in ["5.7.44", "8.0.12", "10.5.27-MariaDB", "garbage", ""] {
            let err = server(old).unwrap_err().to_string();
            assert!(
                err.contains("8.0.13") && err.contains("10.6"),
                "{old}: {err}"
            );
        }
    }

    fn col(name: &str, ty: &str, nullable: bool) -> (String, String, String) {
        let n = if nullable { "YES" } else { "NO" };
        (name.into(), ty.into(), n.into())
    }

    #[test]
    fn the_legacy_shape_and_what_breaks_it() {
        let legacy = vec![
            col("row_id", "int", false),
            col("user_email", "varchar", false),
            col("asset_upc", "varchar", false),
            col("checkout_date", "datetime", false),
            col("checkin_date", "datetime", true),
        ];
        assert_eq!(legacy_shape_problem(&legacy), None);

        let mut missing = legacy.clone();
        missing.remove(4);
        assert_eq!(
            legacy_shape_problem(&missing).unwrap(),
            "column checkin_date is missing"
        );
        let mut text_date = legacy.clone();
        text_date[3] = col("checkout_date", "varchar", false);
        assert_eq!(
            legacy_shape_problem(&text_date).unwrap(),
            "column checkout_date is varchar, expected datetime"
        );
        let mut nullable = legacy;
        nullable[2] = col("asset_upc", "varchar", true);
        assert!(legacy_shape_problem(&nullable)
            .unwrap()
            .contains("asset_upc allows NULL"));
    }
}
