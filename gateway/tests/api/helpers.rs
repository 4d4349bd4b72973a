//! `TestApp`: the whole gateway on port 0, embedded or on real services (fresh
//! MySQL and MongoDB databases per test, loaded with the demo data).

use std::time::Duration;

use data_mongo::{MongoCatalog, MongoConfig};
use data_mysql::{MysqlCheckouts, MysqlConfig};
use gateway::Application;
use gateway::{Services, Settings};
use serde_json::{json, Value};
use testkit::SqlServer;

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub real: bool,
    /// The SQL server of a real-services app.
    pub server: Option<SqlServer>,
    cleanup: Option<Databases>,
}

/// Fresh MySQL and MongoDB databases with the demo data, on the harness's
/// services; dropped when this is.
pub struct Databases {
    pub configs: (MysqlConfig, MongoConfig),
}

impl Databases {
    /// New databases on `server`, seeded.
    pub async fn seeded(server: SqlServer) -> Self {
        let (_, mysql, mongo) = real_settings(server);
        seed(&mysql, &mongo).await;
        Databases {
            configs: (mysql, mongo),
        }
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let (mysql, mongo) = self.configs.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let _ = MysqlCheckouts::drop_database(&mysql).await;
                if let Ok(c) = MongoCatalog::connect(&mongo).await {
                    let _ = c.drop_database().await;
                }
            });
            Ok::<_, std::io::Error>(())
        })
        .join();
    }
}

/// Settings for the harness's real services, with fresh database names, on `server`.
pub fn real_settings(server: SqlServer) -> (Settings, MysqlConfig, MongoConfig) {
    let s = testkit::services();
    let mut mysql = MysqlConfig::new(
        server.host(),
        s.var("MYSQL_USER"),
        s.var("MYSQL_PASSWORD"),
        s.var("MYSQL_DATABASE"),
    );
    mysql.port = server.port();
    let name = testkit::unique_name("cl_test");
    let mysql = mysql.with_database(&name);
    let mongo = MongoConfig::new(s.var("MONGO_URL"), &name);
    let mut settings = Settings::development();
    settings.server.port = 0;
    settings.services = Some(Services {
        mysql: mysql.clone(),
        mongo: mongo.clone(),
        kafka_brokers: s.var("KAFKA_BROKERS").to_string(),
        relay: Default::default(),
    });
    settings.auth.key_url = Some(s.var("PUBLIC_JWT_KEY_URL").to_string());
    (settings, mysql, mongo)
}

pub async fn seed(mysql: &MysqlConfig, mongo: &MongoConfig) {
    MysqlCheckouts::create_database(mysql)
        .await
        .expect("create db");
    let m = MysqlCheckouts::connect(mysql).await.expect("mysql");
    m.insert_rows(demo_data::checkouts(demo_data::Scale::default()))
        .await
        .expect("seed checkouts");
    let c = MongoCatalog::connect(mongo).await.expect("mongo");
    c.insert_demo(
        &demo_data::patrons(),
        &demo_data::books(),
        demo_data::has_postal_code,
    )
    .await
    .expect("seed catalog");
}

impl TestApp {
    pub async fn embedded() -> Self {
        let mut settings = Settings::development();
        settings.server.port = 0;
        Self::start(settings, None, None).await
    }

    /// Embedded stores with these settings.
    pub async fn with_settings(settings: Settings) -> Self {
        Self::start(settings, None, None).await
    }

    pub async fn real(server: SqlServer) -> Self {
        Self::real_with(server, |_| {}).await
    }

    /// `real`, with settings changed by `tweak` first.
    pub async fn real_with(server: SqlServer, tweak: impl FnOnce(&mut Settings)) -> Self {
        let (mut settings, mysql, mongo) = real_settings(server);
        tweak(&mut settings);
        seed(&mysql, &mongo).await;
        let databases = Databases {
            configs: (mysql, mongo),
        };
        Self::start(settings, Some(server), Some(databases)).await
    }

    /// A second instance on `other`'s databases (no seeding, no clean-up: `other`
    /// owns them), with settings changed by `tweak`.
    pub async fn sharing(other: &TestApp, tweak: impl FnOnce(&mut Settings)) -> Self {
        let server = other.server.expect("a real-services app");
        let (mysql, mongo) = other.databases().expect("real services").clone();
        let (mut settings, _, _) = real_settings(server);
        if let Some(services) = settings.services.as_mut() {
            services.mysql = mysql;
            services.mongo = mongo;
        }
        tweak(&mut settings);
        Self::start(settings, Some(server), None).await
    }

    /// The fresh MySQL and MongoDB databases of a real-services app.
    pub fn databases(&self) -> Option<&(MysqlConfig, MongoConfig)> {
        self.cleanup.as_ref().map(|d| &d.configs)
    }

    /// The demo copy a case should use in place of `upc`. Every real-services app
    /// shares the broker's `checkout` and `checkin` topics, and the same case runs
    /// on MariaDB and MySQL at once (same row ids, same copies): the MySQL run uses
    /// copies three lower, so no subscriber sees the other run's events.
    pub fn copy(&self, upc: &'static str) -> &'static str {
        match (self.server, upc) {
            (Some(SqlServer::Mysql), "9000000030") => "9000000027",
            (Some(SqlServer::Mysql), "9000000031") => "9000000028",
            (Some(SqlServer::Mysql), "9000000032") => "9000000029",
            (Some(SqlServer::Mysql), "9000000022") => "9000000017",
            (Some(SqlServer::Mysql), "9000000023") => "9000000018",
            (Some(SqlServer::Mysql), "9000000033") => "9000000034",
            _ => upc,
        }
    }

    /// An app on `settings`; with `cleanup`, it drops those databases when dropped.
    pub async fn start(
        settings: Settings,
        server: Option<SqlServer>,
        cleanup: Option<Databases>,
    ) -> Self {
        let app = Application::build(settings).await.expect("build");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            real: server.is_some(),
            server,
            cleanup,
        }
    }

    /// A token for a SPEC dev user: from the embedded `/dev/token`, or the harness's
    /// dev key service `/login`.
    pub async fn token(&self, username: &str) -> String {
        if !self.real {
            let r = self.get(&format!("/dev/token/{username}")).await;
            assert_eq!(r.status(), 200);
            return r.text().await.unwrap();
        }
        dev_login(&self.client, username).await
    }

    /// GETs `path` (e.g. `/health/ready`).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// POSTs a GraphQL request; returns (status, body).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// `datasource_calls_total` from `/metrics`, per `{call=..,store=..}` label set.
    pub async fn datasource_calls(&self) -> std::collections::HashMap<String, u64> {
        let text = self.metrics().await;
        text.lines()
            .filter_map(|l| l.strip_prefix("datasource_calls_total"))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(labels, n)| (labels.to_string(), n.parse().unwrap()))
            .collect()
    }

    /// `gql` as `username`, expecting HTTP 200.
    pub async fn as_user(&self, username: &str, query: &str, variables: Value) -> Value {
        let token = self.token(username).await;
        let (status, body) = self.gql(Some(&token), query, variables).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// The `extensions.code` of every error.
pub fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Defines a contract case three times: on the embedded stores, and on the real
/// services with MariaDB and with Oracle MySQL.
#[macro_export]
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn embedded() {
                let app = $crate::helpers::TestApp::embedded().await;
                super::$name(&app).await;
            }

            #[tokio::test]
            async fn mariadb() {
                let app = $crate::helpers::TestApp::real(testkit::SqlServer::MariaDb).await;
                super::$name(&app).await;
            }

            #[tokio::test]
            async fn mysql() {
                let app = $crate::helpers::TestApp::real(testkit::SqlServer::Mysql).await;
                super::$name(&app).await;
            }
        }
    };
}

/// A token for a SPEC dev user from the harness's dev key service (`/login`).
pub async fn dev_login(client: &reqwest::Client, username: &str) -> String {
    let password = match username {
        "user1" => "password1",
        "user2" => "password2",
        "user3" => "password3",
        _ => "password",
    };
    let url = format!("{}/login", testkit::services().var("DEV_KEY_SERVICE_URL"));
    let r = client
        .post(url)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["data"]
        .as_str()
        .unwrap()
        .to_string()
}
