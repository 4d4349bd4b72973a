//! What every MySQL test file shares: the harness's servers and a fresh database per
//! test, dropped when the test ends.
#![allow(dead_code)] // each test binary uses its own part

use data_mysql::{MysqlCheckouts, MysqlConfig};
use testkit::SqlServer;

/// The harness's settings for `server` (its default database).
pub fn server_config(server: SqlServer) -> MysqlConfig {
    let s = testkit::services();
    let mut config = MysqlConfig::new(
        server.host(),
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        s.var("MYSQL_DATABASE"),
    );
    config.port = server.port();
    config
}

/// A fresh database on the harness's server, dropped when the test ends.
pub struct TestDb {
    pub config: MysqlConfig,
    pub server: SqlServer,
}

impl TestDb {
    pub async fn new(server: SqlServer) -> Self {
        let config = server_config(server).with_database(&testkit::unique_name("cl_test"));
        MysqlCheckouts::create_database(&config)
            .await
            .expect("create test database");
        TestDb { config, server }
    }

    pub async fn store(&self) -> MysqlCheckouts {
        MysqlCheckouts::connect(&self.config)
            .await
            .expect("connect")
    }

    pub async fn demo_store(&self) -> MysqlCheckouts {
        let store = self.store().await;
        let n = store
            .insert_rows(demo_data::checkouts(demo_data::Scale::default()))
            .await
            .expect("load demo");
        assert_eq!(n, demo_data::DEMO_CHECKOUTS);
        store
    }

    /// A connection of the driver's own to the test database, for statements the
    /// connector never sends (legacy DDL, inspection).
    pub async fn admin(&self) -> mysql_async::Conn {
        let url = format!("{}/{}", server_url(self.server), self.config.database);
        mysql_async::Conn::from_url(url)
            .await
            .expect("admin connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let config = self.config.clone();
        // Drop runs inside the test's runtime: clean up on a thread of our own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(MysqlCheckouts::drop_database(&config)))
        })
        .join();
    }
}

/// The harness's server, no database selected (for admin statements).
pub fn server_url(server: SqlServer) -> String {
    let s = testkit::services();
    format!(
        "mysql://{}:{}@{}:{}",
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        server.host(),
        server.port()
    )
}
