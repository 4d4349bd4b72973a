//! Shared by the integration tests that need the harness's MariaDB.

use data_mysql::MysqlConfig;

/// Settings for a fresh database (not yet created) on the harness's MariaDB.
pub fn fresh_mysql_config() -> MysqlConfig {
    let s = testkit::services();
    let mut base = MysqlConfig::new(
        s.var("MYSQL_HOST"),
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        "x",
    );
    base.port = s.var("MYSQL_PORT").parse().expect("MYSQL_PORT");
    base.with_database(&testkit::unique_name("cl_test"))
}
