//! Starting on a database as an operator finds it, on MariaDB and Oracle MySQL alike:
//! the legacy table as the Node server left it, data the guard cannot accept, wrong
//! settings, sign-in with and without TLS. A refusal is one line that names what to
//! change, and writes nothing.

use data_mysql::{Error, MysqlCheckouts, MysqlConfig, OpenTwice, SslMode};
use domain::{CheckoutError, CheckoutFilter, CheckoutStore};
use mysql_async::prelude::Queryable;
use testkit::SqlServer;

mod common;
use common::{server_config, TestDb};

/// The legacy table's DDL exactly as the Node server's database has it (SPEC section 1).
const LEGACY_DDL: &str = "CREATE TABLE checkouts (
    row_id INT AUTO_INCREMENT PRIMARY KEY,
    user_email VARCHAR(254) NOT NULL,
    asset_upc VARCHAR(10) NOT NULL,
    checkout_date DATETIME NOT NULL DEFAULT NOW(),
    checkin_date DATETIME DEFAULT NULL,
    INDEX (user_email)
)";

/// Rows as the legacy server wrote them: plain INSERTs of (email, upc, out, in).
async fn legacy_rows(admin: &mut mysql_async::Conn, rows: &[(&str, &str, &str, Option<&str>)]) {
    admin.query_drop(LEGACY_DDL).await.expect("legacy table");
    admin
        .exec_batch(
            "INSERT INTO checkouts (user_email, asset_upc, checkout_date, checkin_date) \
             VALUES (?, ?, ?, ?)",
            rows.iter().copied(),
        )
        .await
        .expect("legacy rows");
}

/// The objects in the test database, to show that a refused start wrote nothing.
async fn objects(admin: &mut mysql_async::Conn) -> (Vec<String>, Vec<String>) {
    let tables: Vec<String> = admin
        .query(
            "SELECT TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
        )
        .await
        .unwrap();
    let columns: Vec<String> = admin
        .query(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'checkouts' \
             ORDER BY ORDINAL_POSITION",
        )
        .await
        .unwrap();
    (tables, columns)
}

fn connect_err(result: Result<MysqlCheckouts, Error>) -> Error {
    match result {
        Ok(_) => panic!("connected, but a refusal was expected"),
        Err(e) => e,
    }
}

async fn the_legacy_table_is_served_as_it_is(server: SqlServer) {
    let db = TestDb::new(server).await;
    let mut admin = db.admin().await;
    legacy_rows(
        &mut admin,
        &[
            (
                "a@b.org",
                "9000000001",
                "2000-03-02 14:30:17",
                Some("2000-03-03 13:25:46"),
            ),
            ("c@d.org", "9000000001", "2000-06-03 14:55:13", None),
            ("e@f.org", "9000000002", "2001-01-01 00:00:00", None),
        ],
    )
    .await;
    let store = db.store().await;
    let rows = store
        .list(&CheckoutFilter::default(), None, None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].user_email, "c@d.org");
    assert_eq!(
        rows[0].checkin_date.map(|d| d.to_rfc3339()),
        Some("2000-03-03T13:25:46+00:00".into()),
        "legacy DATETIMEs are read as UTC"
    );
    // The guard was built over the legacy rows and holds at once.
    assert!(matches!(
        store.check_out("9000000001", "x@y.org").await,
        Err(CheckoutError::AlreadyCheckedOut)
    ));
    let back = store.check_in("9000000001").await.unwrap();
    assert_eq!(back.id, 2);
    store.check_out("9000000001", "x@y.org").await.unwrap();
    let (_, columns) = objects(&mut admin).await;
    assert_eq!(
        &columns[..5],
        [
            "row_id",
            "user_email",
            "asset_upc",
            "checkout_date",
            "checkin_date"
        ],
        "the legacy columns are untouched"
    );
    admin.disconnect().await.unwrap();
}

async fn copies_open_twice_refuse_the_guard_and_name_the_fix(server: SqlServer) {
    let db = TestDb::new(server).await;
    let mut admin = db.admin().await;
    legacy_rows(
        &mut admin,
        &[
            ("a@b.org", "9000000007", "2000-01-01 10:00:00", None), // row 1
            ("c@d.org", "9000000003", "2000-01-02 10:00:00", None), // row 2
            ("e@f.org", "9000000007", "2000-01-03 10:00:00", None), // row 3
            ("g@h.org", "9000000003", "2000-01-04 10:00:00", None), // row 4
            ("i@j.org", "9000000003", "2000-01-05 10:00:00", None), // row 5
            ("k@l.org", "9000000009", "2000-01-06 10:00:00", None), // row 6
        ],
    )
    .await;
    let before = objects(&mut admin).await;
    let err = connect_err(MysqlCheckouts::connect(&db.config).await);
    let Error::DuplicateOpenCheckouts { copies } = &err else {
        panic!("expected duplicate open checkouts, got {err:?}");
    };
    assert_eq!(
        copies,
        &[
            OpenTwice {
                asset_upc: "9000000003".into(),
                row_ids: vec![2, 4, 5]
            },
            OpenTwice {
                asset_upc: "9000000007".into(),
                row_ids: vec![1, 3]
            },
        ]
    );
    let line = err.to_string();
    assert!(line.contains("WHERE row_id IN (2, 4, 1)"), "{line}");
    assert!(!line.contains('\n'));
    assert_eq!(objects(&mut admin).await, before, "nothing was written");

    // Doing what the message says lets the next start through.
    admin
        .query_drop("UPDATE checkouts SET checkin_date = UTC_TIMESTAMP() WHERE row_id IN (2, 4, 1)")
        .await
        .unwrap();
    let store = db.store().await;
    let open = store
        .by_assets(&["9000000003".into(), "9000000007".into()], true)
        .await
        .unwrap();
    assert_eq!(open["9000000003"][0].id, 5);
    assert_eq!(open["9000000007"][0].id, 3);
    admin.disconnect().await.unwrap();
}

async fn a_table_of_another_shape_is_refused(server: SqlServer) {
    let db = TestDb::new(server).await;
    let mut admin = db.admin().await;
    admin
        .query_drop(
            "CREATE TABLE checkouts (row_id INT AUTO_INCREMENT PRIMARY KEY, \
             user_email VARCHAR(254) NOT NULL, asset_upc VARCHAR(10) NOT NULL, \
             checkout_date VARCHAR(32) NOT NULL, checkin_date DATETIME NULL)",
        )
        .await
        .unwrap();
    let before = objects(&mut admin).await;
    let err = connect_err(MysqlCheckouts::connect(&db.config).await);
    assert!(matches!(err, Error::NotLegacyTable { .. }), "{err:?}");
    let line = err.to_string();
    assert!(
        line.contains("checkout_date is varchar, expected datetime")
            && line.contains("MYSQL_DATABASE"),
        "{line}"
    );
    assert_eq!(objects(&mut admin).await, before, "nothing was written");
    admin.disconnect().await.unwrap();
}

async fn wrong_settings_name_the_setting(server: SqlServer) {
    let base = server_config(server);
    let wrong_password = MysqlConfig {
        password: "not-the-password".to_string().into(),
        ..base.clone()
    };
    let err = connect_err(MysqlCheckouts::connect(&wrong_password).await);
    assert!(matches!(err, Error::Credentials { .. }), "{err:?}");
    let line = err.to_string();
    assert!(
        line.contains("MYSQL_PASSWORD") && line.contains("\"graphql\""),
        "{line}"
    );
    assert!(!format!("{err:?}").contains("not-the-password"));

    let unknown = base.with_database("cl_test_no_such_database");
    let err = connect_err(MysqlCheckouts::connect(&unknown).await);
    assert!(matches!(err, Error::UnknownDatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("MYSQL_DATABASE"));
}

/// A sign-in the server has not cached: MySQL's `caching_sha2_password` (MariaDB's
/// default plugin elsewhere) takes the full exchange, over plain TCP (the password
/// RSA-encrypted with the server's key) and over TLS. The harness's `cl_signin`
/// user exists for this; resetting its password empties MySQL's cache for it.
async fn an_uncached_sign_in_works_without_and_with_tls(server: SqlServer) {
    let db = TestDb::new(server).await;
    let mut admin = db.admin().await;
    admin
        .query_drop(
            "ALTER USER 'cl_signin'@'127.0.0.1' IDENTIFIED BY 'cl-signin-pw'; \
             ALTER USER 'cl_signin'@'localhost' IDENTIFIED BY 'cl-signin-pw'",
        )
        .await
        .unwrap();
    admin.disconnect().await.unwrap();
    let as_signin = |mode| {
        let mut c = db.config.clone();
        c.user = "cl_signin".into();
        c.password = "cl-signin-pw".to_string().into();
        c.ssl_mode = mode;
        c.prefer_socket = false;
        c
    };
    let plain = MysqlCheckouts::connect(&as_signin(SslMode::Disabled))
        .await
        .expect("plain TCP sign-in");
    assert_eq!(plain.tls_cipher(), None);
    plain.check_out("9000000001", "a@b.org").await.unwrap();
    if server == SqlServer::Mysql {
        let tls = MysqlCheckouts::connect(&as_signin(SslMode::Required))
            .await
            .expect("TLS sign-in");
        assert!(tls.tls_cipher().is_some());
        tls.check_in("9000000001").await.unwrap();
    }
}

testkit::on_each_sql_server!(
    the_legacy_table_is_served_as_it_is,
    copies_open_twice_refuse_the_guard_and_name_the_fix,
    a_table_of_another_shape_is_refused,
    wrong_settings_name_the_setting,
    an_uncached_sign_in_works_without_and_with_tls,
);

/// Each TLS mode against the harness's Oracle MySQL, whose certificate a private CA
/// signed for 127.0.0.1 only.
#[tokio::test]
async fn tls_modes_on_mysql_with_a_private_ca() {
    let db = TestDb::new(SqlServer::Mysql).await;
    let s = testkit::services();
    let ca = std::path::PathBuf::from(s.var("ORACLE_MYSQL_TLS_CA"));
    let other_ca = std::path::PathBuf::from(s.var("ORACLE_MYSQL_TLS_OTHER_CA"));
    let with = |mode, ca: Option<&std::path::Path>, host: &str| MysqlConfig {
        ssl_mode: mode,
        ssl_ca: ca.map(Into::into),
        host: host.to_string(),
        ..db.config.clone()
    };
    let cipher = |store: MysqlCheckouts| store.tls_cipher().map(str::to_string);

    let disabled = MysqlCheckouts::connect(&with(SslMode::Disabled, None, "127.0.0.1"))
        .await
        .expect("disabled");
    assert_eq!(cipher(disabled), None);
    for mode in [SslMode::Preferred, SslMode::Required] {
        let store = MysqlCheckouts::connect(&with(mode, None, "127.0.0.1"))
            .await
            .expect("unverified TLS");
        assert!(cipher(store).is_some(), "{mode}: the session is encrypted");
    }
    let verified = MysqlCheckouts::connect(&with(SslMode::VerifyIdentity, Some(&ca), "127.0.0.1"))
        .await
        .expect("verify_identity with the right CA and name");
    assert!(verified.tls_cipher().is_some());
    verified.check_out("9000000001", "a@b.org").await.unwrap();
    // `localhost` is not a name in the certificate: only verify_identity minds.
    MysqlCheckouts::connect(&with(SslMode::VerifyCa, Some(&ca), "localhost"))
        .await
        .expect("verify_ca ignores the name");

    for (config, what) in [
        (
            with(SslMode::VerifyCa, Some(&other_ca), "127.0.0.1"),
            "a CA that signed nothing",
        ),
        (
            with(SslMode::VerifyIdentity, Some(&ca), "localhost"),
            "a name not in the certificate",
        ),
        (
            with(SslMode::VerifyCa, None, "127.0.0.1"),
            "only the public CAs",
        ),
    ] {
        let err = connect_err(MysqlCheckouts::connect(&config).await);
        assert!(matches!(err, Error::Tls { .. }), "{what}: {err:?}");
        assert!(err.to_string().contains("MYSQL_SSL_CA"), "{what}: {err}");
    }
}
