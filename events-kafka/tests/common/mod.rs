//! Shared by the integration tests that need the harness's MySQL servers.

use data_mysql::MysqlConfig;
use testkit::SqlServer;

/// Settings for a fresh database (not yet created) on the harness's `server`.
pub fn fresh_mysql_config(server: SqlServer) -> MysqlConfig {
    let s = testkit::services();
    let mut base = MysqlConfig::new(
        server.host(),
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        "x",
    );
    base.port = server.port();
    base.with_database(&testkit::unique_name("cl_test"))
}
