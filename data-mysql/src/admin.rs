//! What only tests, the seed tool and first installs need: creating and dropping
//! databases, bulk loads, emptying the tables. Behind the `admin` feature, so the
//! production gateway cannot call any of it.

use diesel_async::SimpleAsyncConnection;
use domain::{Checkout, StoreError};

use crate::{seed, Error, MysqlCheckouts, MysqlConfig};

impl MysqlCheckouts {
    /// Creates the configured database if missing (tests, the seed tool, fresh
    /// installs; production users usually lack the privilege and never call this).
    pub async fn create_database(config: &MysqlConfig) -> Result<(), Error> {
        let name = safe_identifier(&config.database)?;
        admin_exec(config, &format!("CREATE DATABASE IF NOT EXISTS `{name}`")).await
    }

    /// Drops the configured database (test clean-up).
    pub async fn drop_database(config: &MysqlConfig) -> Result<(), Error> {
        let name = safe_identifier(&config.database)?;
        admin_exec(config, &format!("DROP DATABASE IF EXISTS `{name}`")).await
    }

    /// Loads rows with their ids (the demo dataset); returns how many.
    pub async fn insert_rows(
        &self,
        rows: impl Iterator<Item = Checkout> + Send,
    ) -> Result<usize, StoreError> {
        let mut conn = self.pool.get().await?;
        let result = seed::insert_all(&mut conn, rows).await;
        conn.check(result)
    }

    /// Rows in the outbox, sent or not (the outbox benchmark watches its size).
    pub async fn outbox_rows(&self) -> Result<u64, StoreError> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        let mut conn = self.pool.get().await?;
        let result: QueryResult<i64> = crate::schema::checkout_outbox::table
            .count()
            .get_result(&mut *conn)
            .await;
        conn.check(result).map(|n| n.max(0) as u64)
    }

    /// Empties the checkouts and the outbox (the seed tool's `--reset`).
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let result = conn
            .batch_execute("DELETE FROM checkout_outbox; DELETE FROM checkouts")
            .await;
        conn.check(result)
    }
}

/// Runs one statement on a server-level connection, and quits it properly.
async fn admin_exec(config: &MysqlConfig, sql: &str) -> Result<(), Error> {
    use mysql_async::prelude::Queryable;
    let mut conn = match mysql_async::Conn::new(config.opts(false)?).await {
        Ok(conn) => conn,
        Err(e) => match config.plain_fallback(&e) {
            Some(plain) => mysql_async::Conn::new(plain.opts(false)?)
                .await
                .map_err(|e| Error::connecting(&plain, e))?,
            None => return Err(Error::connecting(config, e)),
        },
    };
    let result = conn
        .query_drop(sql)
        .await
        .map_err(|e| Error::connecting(config, e));
    let _ = conn.disconnect().await;
    result
}

/// Database names go into DDL, where no parameter can stand: allow only plain ones.
fn safe_identifier(name: &str) -> Result<&str, Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(name)
    } else {
        Err(Error::Setting {
            setting: "MYSQL_DATABASE",
            reason: format!("{name:?} is not a plain database name (letters, digits, _ and -)"),
        })
    }
}
