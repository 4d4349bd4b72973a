//! Assembly: the data sources (real or embedded), the schema, the HTTP server, and
//! the shutdown coordinator that owns the stop.

use std::cell::RefCell;
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
#[cfg(feature = "dev")]
use auth_jwt::dev::{self, DevIssuer};
use auth_jwt::{KeySource, KeySourceConfig, Verifier, VerifierConfig};
use data_mongo::MongoCatalog;
use data_mysql::MysqlCheckouts;
use domain::Outbox;
use events_kafka::{EventHub, EventProducer, KafkaConfig, OutboxRelay};
use shutdown::{Closeable, Coordinator, Readiness, ShutdownConfig};

use crate::config::{Services, Settings};
use crate::counted::Counted;
#[cfg(feature = "dev")]
use crate::embedded::{MemoryCatalog, MemoryCheckouts, MemorySnapshots};
use crate::events::EventFeed;
use crate::graphql::{self, AliasLimit, Limits, Stores};
use crate::http::{
    self, DependencyCheck, HttpState, Metrics, SampledCounter, SampledGauge, Sampler, WsTracker,
};
use crate::pipeline::{Pipeline, PipelineConfig};

/// The same stores, each call counted in `metrics` (and traced as a call to
/// MySQL and MongoDB, or to memory when embedded).
fn counted(stores: Stores, metrics: &Metrics, embedded: bool) -> Stores {
    let calls = metrics.datasource_calls();
    let (mysql, mongodb) = match embedded {
        true => ("memory", "memory"),
        false => ("mysql", "mongodb"),
    };
    Stores {
        checkouts: Counted::new(stores.checkouts, "checkouts", mysql, calls.clone()),
        catalog: Counted::new(stores.catalog, "catalog", mongodb, calls.clone()),
        snapshots: Counted::new(stores.snapshots, "snapshots", mongodb, calls),
        ..stores
    }
}

/// What the data side of the gateway is made of.
struct Backends {
    stores: Stores,
    samplers: Vec<Sampler>,
    /// Connectors' own counters and gauges, with real services.
    counters: Vec<SampledCounter>,
    gauges: Vec<SampledGauge>,
    /// The outbox relay's figures, with real services.
    relay: Option<Arc<events_kafka::RelayStats>>,
    verifier: Verifier,
    #[cfg(feature = "dev")]
    dev_issuer: Option<Arc<DevIssuer>>,
    dependencies: Vec<Arc<dyn DependencyCheck>>,
    /// Served without when down (Kafka), reported by readiness.
    optional: Vec<Arc<dyn DependencyCheck>>,
    /// In close order.
    closeables: Vec<Arc<dyn Closeable>>,
}

/// A built, listening application.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    coordinator: Coordinator,
    readiness: Readiness,
    websockets: WsTracker,
    workers: WorkerThreads,
    signals: shutdown::Signals,
}

/// The HTTP worker threads still running. A connector's connection is driven by the
/// runtime of the worker that opened it, and actix reports a worker stopped before
/// its thread has dropped that runtime: closing the MySQL pool in that window left
/// its quit waiting on a reactor nobody polled, until the drain deadline (2 stops in
/// 30 in `on_real_services_every_closeable_closes_in_order`). So the stop waits for
/// the threads to end before closing the connectors.
#[derive(Clone, Default)]
struct WorkerThreads(Arc<WorkerCount>);

/// A count under a std mutex and condvar, not atomics and a tokio `Notify`: the
/// guard drops during its thread's exit, when tokio's own thread-locals may be gone
/// already, and waking a tokio task from there aborted the process once in CI
/// ("cannot access a Thread Local Storage value during or after destruction",
/// after "shutdown complete"). Std's condvar touches no thread-local.
#[derive(Default)]
struct WorkerCount {
    live: std::sync::Mutex<usize>,
    exited: std::sync::Condvar,
}

impl WorkerCount {
    fn live(&self) -> std::sync::MutexGuard<'_, usize> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Dropped with its thread's locals, after the thread's runtime.
struct ExitGuard(Arc<WorkerCount>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let mut live = self.0.live();
        *live = live.saturating_sub(1);
        self.0.exited.notify_all();
    }
}

thread_local! {
    static EXIT_GUARD: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

impl WorkerThreads {
    /// Counts the calling thread (a worker building its app) until it exits.
    fn enter(&self) {
        EXIT_GUARD.with(|guard| {
            let mut guard = guard.borrow_mut();
            if guard.is_none() {
                *self.0.live() += 1;
                *guard = Some(ExitGuard(Arc::clone(&self.0)));
            }
        });
    }

    /// Resolves once every counted thread has exited (waited for on a blocking
    /// thread; the stop's own deadline bounds it).
    async fn all_exited(&self) {
        let count = Arc::clone(&self.0);
        let waited = tokio::task::spawn_blocking(move || {
            let mut live = count.live();
            while *live > 0 {
                live = count.exited.wait(live).unwrap_or_else(|e| e.into_inner());
            }
        })
        .await;
        if let Err(e) = waited {
            tracing::warn!(error = %e, "waiting for the HTTP worker threads failed");
        }
    }
}

impl Application {
    /// Connects the data sources, binds the listener (port 0 picks a free one) and
    /// prepares the server; nothing is served until [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Installed first: a signal during startup is not lost.
        let signals = shutdown::signals().context("installing signal handlers")?;
        let readiness = Readiness::new();
        let backends = match &settings.services {
            None => embedded(&settings)?,
            Some(services) => real(services, &settings).await?,
        };
        let mut coordinator = Coordinator::new(
            ShutdownConfig {
                delay: settings.shutdown.delay,
                timeout: settings.shutdown.timeout,
                close_timeout: settings.shutdown.close_timeout,
            },
            readiness.clone(),
        );
        for c in backends.closeables {
            coordinator.register(c);
        }
        let max_sockets = settings.subscriptions.max_sockets as i64;
        let limit = SampledGauge {
            name: "graphql_websockets_max",
            help: "WS_MAX_SOCKETS: WebSockets this instance accepts at once",
            read: Arc::new(move || max_sockets),
        };
        let metrics = Arc::new(
            Metrics::new(
                backends.samplers,
                backends.counters,
                backends.gauges.into_iter().chain([limit]).collect(),
                backends.relay,
            )
            .context("metrics")?,
        );
        let stores = counted(backends.stores, &metrics, settings.services.is_none());
        let pipeline = Arc::new(pipeline(&settings, stores, Arc::clone(&metrics)));
        let websockets = WsTracker::new(settings.subscriptions.clone());
        let state = web::Data::new(HttpState {
            pipeline,
            verifier: backends.verifier,
            readiness: readiness.clone(),
            production: settings.production,
            max_body_bytes: settings.limits.max_body_bytes,
            websockets: websockets.clone(),
            dependencies: backends.dependencies,
            optional: backends.optional,
            #[cfg(feature = "dev")]
            dev_issuer: backends.dev_issuer,
            metrics,
        });
        let listener =
            std::net::TcpListener::bind((settings.server.host.as_str(), settings.server.port))
                .with_context(|| {
                    format!("binding {}:{}", settings.server.host, settings.server.port)
                })?;
        let port = listener.local_addr()?.port();
        let workers = WorkerThreads::default();
        let counted_workers = workers.clone();
        let cors_origins = settings.server.cors_origins.clone();
        let server = HttpServer::new(move || {
            counted_workers.enter();
            let state = state.clone();
            App::new()
                .wrap(http::cors(&cors_origins))
                .wrap(from_fn(http::request_context))
                .configure(move |cfg| http::configure(cfg, state))
        })
        .on_connect(http::ConnectionFd::record)
        .workers(http_workers())
        .disable_signals()
        .shutdown_timeout(settings.shutdown.timeout.as_secs().max(1))
        .listen(listener)?
        .run();
        tracing::info!(
            port,
            embedded = settings.services.is_none(),
            production = settings.production,
            closeables = ?coordinator.names(),
            "gateway built"
        );
        Ok(Application {
            port,
            server,
            coordinator,
            readiness,
            websockets,
            workers,
            signals,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT, then runs the graceful stop; returns the exit
    /// code (0 clean, 1 forced).
    pub async fn run_until_stopped(self) -> i32 {
        let Application {
            port,
            server,
            coordinator,
            readiness,
            websockets,
            workers,
            mut signals,
        } = self;
        let handle = server.handle();
        let mut serving = tokio::spawn(server);
        readiness.set_ready();
        tracing::info!(port, "ready: GraphQL on /graphql");
        tokio::select! {
            signal = signals.recv() => tracing::info!(signal, "stop signal received"),
            result = &mut serving => {
                tracing::error!(?result, "the HTTP server stopped on its own");
                return 1;
            }
        }
        let drain = async move {
            tokio::join!(websockets.close_all(), handle.stop(true));
            let _ = serving.await;
            workers.all_exited().await;
        };
        let force = async move {
            let signal = signals.recv().await;
            tracing::warn!(signal, "second signal: exiting now");
        };
        coordinator.shutdown(drain, force).await.exit_code()
    }
}

/// One HTTP worker (a single-threaded runtime) per core, as actix-web's default.
fn http_workers() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Built without the `dev` feature (the production image): there are no embedded
/// stores to fall back on.
#[cfg(not(feature = "dev"))]
fn embedded(_: &Settings) -> anyhow::Result<Backends> {
    anyhow::bail!(
        "this build has no embedded stores: configure MySQL, MongoDB and Kafka (MYSQL_HOST, MONGO_URL, KAFKA_BROKERS)"
    )
}

#[cfg(feature = "dev")]
fn embedded(settings: &Settings) -> anyhow::Result<Backends> {
    anyhow::ensure!(
        !settings.production,
        "embedded stores are for development only: configure MySQL, MongoDB and Kafka"
    );
    let stores = embedded_stores(settings);
    let issuer = Arc::new(DevIssuer::generate(dev::default_users()).context("dev key")?);
    let (keys, dependencies) = match &settings.auth.key_url {
        Some(url) => {
            let keys = key_source(url, settings)?;
            let held: Arc<dyn DependencyCheck> = Arc::new(KeysReady(keys.clone()));
            (keys, vec![held])
        }
        None => (KeySource::fixed_pem(issuer.public_pem())?, Vec::new()),
    };
    tracing::warn!("embedded mode: in-memory demo data, dev tokens at /dev/token/{{username}}");
    Ok(Backends {
        stores,
        samplers: Vec::new(),
        counters: Vec::new(),
        gauges: Vec::new(),
        relay: None,
        verifier: verifier(keys, settings),
        dev_issuer: Some(issuer),
        dependencies,
        optional: Vec::new(),
        closeables: Vec::new(),
    })
}

/// The in-memory demo stores, with their local event bus.
#[cfg(feature = "dev")]
pub(crate) fn embedded_stores(settings: &Settings) -> Stores {
    let bus = Arc::new(crate::embedded::LocalBus::default());
    Stores {
        checkouts: Arc::new(MemoryCheckouts::demo(Arc::clone(&bus))),
        catalog: Arc::new(MemoryCatalog::demo()),
        snapshots: Arc::new(MemorySnapshots::new(settings.snapshot_ttl)),
        events: EventFeed::Local(bus),
        after_commit: Arc::new(|| {}),
    }
}

/// The request pipeline over `stores`, as `settings` configure it.
pub(crate) fn pipeline(settings: &Settings, stores: Stores, metrics: Arc<Metrics>) -> Pipeline {
    let schema = graphql::build(
        stores.clone(),
        Limits {
            depth: settings.limits.max_depth,
            complexity: settings.limits.max_complexity,
        },
        settings.limits.arguments,
        settings.production,
    );
    Pipeline::new(
        schema,
        stores,
        PipelineConfig {
            production: settings.production,
            timeout: settings.limits.request_timeout,
            aliases: AliasLimit(settings.limits.max_aliases),
            max_operation_labels: settings.limits.max_operation_labels,
            persisted_entries: settings.limits.persisted_entries,
            persisted_bytes: settings.limits.persisted_bytes,
            max_response_bytes: settings.limits.max_response_bytes,
            subscriber_buffer: settings.subscriptions.buffer,
        },
        metrics,
    )
}

fn key_source(url: &str, settings: &Settings) -> anyhow::Result<KeySource> {
    let mut config = KeySourceConfig::new(url);
    config.ttl = settings.auth.key_cache_ttl;
    if let Some(path) = &settings.auth.key_ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("PUBLIC_JWT_KEY_CA: reading {}", path.display()))?;
        config.ca_pem = Some(pem);
    }
    let source = KeySource::new(config).context("PUBLIC_JWT_KEY_CA")?;
    // The first fetch runs in the background: a key URL that is down at start-up
    // leaves the gateway running and not ready (`KeysReady`) until one is held.
    source.spawn_refresher();
    Ok(source)
}

fn verifier(keys: KeySource, settings: &Settings) -> Verifier {
    Verifier::new(
        keys,
        VerifierConfig {
            issuer: settings.auth.issuer.clone(),
            audience: settings.auth.audience.clone(),
            ..VerifierConfig::default()
        },
    )
}

async fn real(services: &Services, settings: &Settings) -> anyhow::Result<Backends> {
    let mysql = Arc::new(
        MysqlCheckouts::connect(&services.mysql)
            .await
            .context("connecting to MySQL")?,
    );
    let mut mongo_config = services.mongo.clone();
    mongo_config.snapshot_ttl = settings.snapshot_ttl;
    // The catalog keeps a client per runtime, so a pool per HTTP worker: the
    // configured size is shared out, and the gateway's total stays about that size.
    mongo_config.pool_size = mongo_config.pool_size.div_ceil(http_workers() as u32);
    let mongo = Arc::new(
        MongoCatalog::connect(&mongo_config)
            .await
            .context("connecting to MongoDB")?,
    );
    let mut kafka = KafkaConfig::new(&services.kafka_brokers);
    kafka.replay_concurrency = settings.subscriptions.replay_concurrency;
    kafka.replay_max_events = settings.subscriptions.replay_max_events;
    let producer = Arc::new(EventProducer::new(&kafka).context("Kafka producer")?);
    let hub = Arc::new(
        EventHub::start(&kafka)
            .await
            .context("starting the Kafka consumer")?,
    );
    let mut relay_config = services.relay.clone();
    // Each publication a span in its mutation's trace (deliveries its children).
    relay_config.trace =
        crate::telemetry::enabled().then_some(crate::telemetry::child_of as domain::trace::Joiner);
    // One sequence of waves per outbox, whichever instance relays it.
    let m = &services.mysql;
    relay_config.sequence = format!("mysql://{}:{}/{}", m.host, m.port, m.database);
    let relay = Arc::new(OutboxRelay::spawn(
        Arc::clone(&mysql) as Arc<dyn Outbox>,
        Arc::clone(&producer),
        relay_config,
    ));
    let kicker = relay.kicker();
    let url = settings
        .auth
        .key_url
        .as_deref()
        .context("PUBLIC_JWT_KEY_URL")?;
    let keys = key_source(url, settings)?;
    let stores = Stores {
        checkouts: Arc::clone(&mysql) as _,
        catalog: Arc::clone(&mongo) as _,
        snapshots: Arc::clone(&mongo) as _,
        events: EventFeed::Kafka(Arc::clone(&hub)),
        after_commit: Arc::new(move || kicker.notify_one()),
    };
    let (pool, retried) = (Arc::clone(&mysql), Arc::clone(&mysql));
    let sampler: Sampler = Arc::new(move || {
        let (connections, idle) = pool.pool_state();
        vec![
            ("mysql:open", i64::from(connections)),
            ("mysql:idle", i64::from(idle)),
        ]
    });
    Ok(Backends {
        stores,
        samplers: vec![sampler],
        counters: vec![SampledCounter {
            name: "mysql_lock_retries_total",
            help: "MySQL statements retried after a lock conflict (deadlock or lock wait timeout)",
            read: Arc::new(move || retried.lock_retries()),
        }],
        gauges: hub_gauges(&hub),
        relay: Some(relay.stats()),
        verifier: verifier(keys.clone(), settings),
        #[cfg(feature = "dev")]
        dev_issuer: None,
        dependencies: vec![
            Arc::new(MysqlReady(Arc::clone(&mysql))),
            Arc::new(MongoReady(Arc::clone(&mongo))),
            Arc::new(KeysReady(keys)),
        ],
        optional: vec![Arc::new(KafkaReady(Arc::clone(&hub)))],
        // SPEC section 7's order: consumer, relay, producer flush, MySQL, MongoDB.
        closeables: vec![hub, relay, producer, mysql, mongo],
    })
}

/// Ready once a verification key is held: before that every authenticated request
/// would fail (`AUTH_KEY_UNAVAILABLE`); after, an outage of the key URL is served
/// from the last good key, so it no longer matters.
struct KeysReady(KeySource);

impl DependencyCheck for KeysReady {
    fn name(&self) -> &str {
        "jwt-key"
    }
    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if self.0.has_keys().await {
                Ok(())
            } else {
                Err("no verification key fetched yet from PUBLIC_JWT_KEY_URL".into())
            }
        })
    }
}

/// The live consumer's view of the broker, as metrics.
fn hub_gauges(hub: &Arc<EventHub>) -> Vec<SampledGauge> {
    let (reachable, partitions, replays, lag) = (
        Arc::clone(hub),
        Arc::clone(hub),
        Arc::clone(hub),
        Arc::clone(hub),
    );
    vec![
        SampledGauge {
            name: "kafka_broker_reachable",
            help: "1 when the event consumer's last look at the broker succeeded",
            read: Arc::new(move || i64::from(reachable.status().unreachable.is_none())),
        },
        SampledGauge {
            name: "kafka_consumer_partitions",
            help: "Partitions of the event topics this instance consumes",
            read: Arc::new(move || partitions.status().partitions as i64),
        },
        SampledGauge {
            name: "subscription_replays_running",
            help: "Resumes (`after`) reading the event log now",
            read: Arc::new(move || replays.replays_running() as i64),
        },
        SampledGauge {
            name: "kafka_consumer_lag_events",
            help: "Events published on the consumed partitions and not yet read by this instance",
            read: Arc::new(move || lag.lag()),
        },
    ]
}

/// Kafka is optional for readiness: without it queries and mutations go on and
/// events wait in the outbox; only live delivery pauses.
struct KafkaReady(Arc<EventHub>);

impl DependencyCheck for KafkaReady {
    fn name(&self) -> &str {
        "kafka"
    }
    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        let status = self.0.status();
        Box::pin(async move {
            match status.unreachable {
                None => Ok(()),
                Some(why) => Err(format!("unreachable ({why}); events wait in the outbox")),
            }
        })
    }
}

struct MysqlReady(Arc<MysqlCheckouts>);
struct MongoReady(Arc<MongoCatalog>);

impl DependencyCheck for MysqlReady {
    fn name(&self) -> &str {
        "mysql"
    }
    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}

impl DependencyCheck for MongoReady {
    fn name(&self) -> &str {
        "mongodb"
    }
    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}
