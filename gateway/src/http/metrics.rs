//! Prometheus metrics at `/metrics`: requests and latency per operation, errors per
//! code, open WebSockets, the MySQL pool's connections and the outbox relay's
//! backlog, rate and lease. One registry per
//! application (no global state, so tests can run several apps in one process).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use events_kafka::RelayStats;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use super::HttpState;

/// A gauge read at scrape time (pool sizes).
pub type Sampler = Arc<dyn Fn() -> Vec<(&'static str, i64)> + Send + Sync>;

/// A counter a connector keeps itself (e.g. MySQL's lock retries), copied into a
/// Prometheus counter at scrape time.
pub struct SampledCounter {
    /// The metric's name.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Reads the connector's count (it only goes up).
    pub read: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// A gauge read at scrape time from the component that keeps it (the Kafka
/// consumer's state, replays running, limits).
pub struct SampledGauge {
    /// The metric's name.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Reads the value now.
    pub read: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// The application's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    errors: IntCounterVec,
    websockets: IntGauge,
    pool: IntGaugeVec,
    datasource_calls: IntCounterVec,
    persisted: IntCounterVec,
    subscriptions: IntGaugeVec,
    executions: IntGauge,
    ready: IntGauge,
    samplers: Vec<Sampler>,
    counters: Vec<(IntCounter, Arc<dyn Fn() -> u64 + Send + Sync>)>,
    gauges: Vec<(IntGauge, Arc<dyn Fn() -> i64 + Send + Sync>)>,
    relay: Option<RelayMetrics>,
}

/// The outbox relay's gauges, set from its `RelayStats` at each scrape (its
/// counters are `SampledCounter`s: see `relay_counters`).
struct RelayMetrics {
    stats: Arc<RelayStats>,
    backlog: IntGauge,
    oldest_unsent: Gauge,
    lease_held: IntGauge,
}

impl RelayMetrics {
    fn new(registry: &Registry, stats: Arc<RelayStats>) -> Result<Self, prometheus::Error> {
        let m = RelayMetrics {
            stats,
            backlog: IntGauge::new(
                "outbox_backlog_events",
                "Outbox events not yet published (measured every 10 s)",
            )?,
            oldest_unsent: Gauge::new(
                "outbox_oldest_unsent_seconds",
                "Age of the oldest outbox event not yet published (0 when none)",
            )?,
            lease_held: IntGauge::new(
                "outbox_relay_lease_held",
                "1 on the instance holding the relay lease (the one publishing)",
            )?,
        };
        registry.register(Box::new(m.backlog.clone()))?;
        registry.register(Box::new(m.oldest_unsent.clone()))?;
        registry.register(Box::new(m.lease_held.clone()))?;
        Ok(m)
    }

    fn sample(&self) {
        let s = &self.stats;
        self.backlog.set(s.backlog() as i64);
        self.oldest_unsent.set(s.oldest_unsent_age().as_secs_f64());
        self.lease_held.set(i64::from(s.lease_held()));
    }
}

/// The relay's counters, read from its stats at each scrape.
fn relay_counters(stats: &Arc<RelayStats>) -> [SampledCounter; 2] {
    let (published, purged) = (Arc::clone(stats), Arc::clone(stats));
    [
        SampledCounter {
            name: "outbox_published_events_total",
            help: "Outbox events this instance published (broker-acknowledged)",
            read: Arc::new(move || published.published()),
        },
        SampledCounter {
            name: "outbox_purged_events_total",
            help: "Sent outbox events this instance deleted after the retention",
            read: Arc::new(move || purged.purged()),
        },
    ]
}

impl Metrics {
    /// Registers every metric; `samplers` feed the pool gauge at each scrape,
    /// `counters` and `gauges` their own metrics, and `relay` (with real
    /// services) the outbox metrics.
    pub fn new(
        samplers: Vec<Sampler>,
        counters: Vec<SampledCounter>,
        gauges: Vec<SampledGauge>,
        relay: Option<Arc<RelayStats>>,
    ) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "graphql_requests_total",
                "GraphQL requests by operation and outcome",
            ),
            &["operation", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "graphql_request_duration_seconds",
                "GraphQL request latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["operation"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("graphql_errors_total", "GraphQL errors by extensions.code"),
            &["code"],
        )?;
        let websockets = IntGauge::new("graphql_websockets_open", "Open subscription WebSockets")?;
        let pool = IntGaugeVec::new(
            Opts::new("datasource_pool_connections", "Pooled connections by state"),
            &["pool", "state"],
        )?;
        let datasource_calls = IntCounterVec::new(
            Opts::new(
                "datasource_calls_total",
                "Data-source calls (database round trips) by store and call",
            ),
            &["store", "call"],
        )?;
        let persisted = IntCounterVec::new(
            Opts::new(
                "graphql_persisted_queries_total",
                "Automatic persisted queries: hit (hash found), miss (hash unknown), registered (query stored)",
            ),
            &["result"],
        )?;
        let subscriptions = IntGaugeVec::new(
            Opts::new(
                "graphql_subscriptions_active",
                "Subscriptions running, by transport",
            ),
            &["transport"],
        )?;
        let executions = IntGauge::new(
            "graphql_subscription_executions_active",
            "Subscription executions running: subscribers with the same document, variables and viewer scope share one",
        )?;
        let ready = IntGauge::new(
            "gateway_ready",
            "1 when the last readiness probe answered 200, 0 when 503",
        )?;
        registry.register(Box::new(ready.clone()))?;
        // Every series present from the start, at 0: a rate or an alert needs no
        // first event to see it.
        for result in ["hit", "miss", "registered"] {
            persisted.with_label_values(&[result]);
        }
        for transport in ["graphql-transport-ws", "graphql-ws", "sse", "multipart"] {
            subscriptions.with_label_values(&[transport]);
        }
        registry.register(Box::new(persisted.clone()))?;
        registry.register(Box::new(subscriptions.clone()))?;
        registry.register(Box::new(executions.clone()))?;
        registry.register(Box::new(datasource_calls.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(websockets.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        let relay_counters = relay.iter().flat_map(relay_counters);
        let counters = counters
            .into_iter()
            .chain(relay_counters)
            .map(|c| {
                let counter = IntCounter::new(c.name, c.help)?;
                registry.register(Box::new(counter.clone()))?;
                Ok((counter, c.read))
            })
            .collect::<Result<Vec<_>, prometheus::Error>>()?;
        let gauges = gauges
            .into_iter()
            .map(|g| {
                let gauge = IntGauge::new(g.name, g.help)?;
                registry.register(Box::new(gauge.clone()))?;
                Ok((gauge, g.read))
            })
            .collect::<Result<Vec<_>, prometheus::Error>>()?;
        let relay = relay
            .map(|stats| RelayMetrics::new(&registry, stats))
            .transpose()?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            errors,
            websockets,
            pool,
            datasource_calls,
            persisted,
            subscriptions,
            executions,
            ready,
            samplers,
            counters,
            gauges,
            relay,
        })
    }

    /// The counter the stores increment per call (see `counted`).
    pub fn datasource_calls(&self) -> IntCounterVec {
        self.datasource_calls.clone()
    }

    /// Records one executed operation under its (bounded) label.
    pub fn observe(&self, operation: &str, seconds: f64, codes: &[String]) {
        let outcome = if codes.is_empty() { "ok" } else { "error" };
        self.requests.with_label_values(&[operation, outcome]).inc();
        self.latency
            .with_label_values(&[operation])
            .observe(seconds);
        self.observe_errors(codes);
    }

    /// Records a readiness probe's answer.
    pub fn observe_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Counts a persisted-query lookup (`hit`, `miss`, `registered`).
    pub fn observe_persisted(&self, result: &str) {
        self.persisted.with_label_values(&[result]).inc();
    }

    /// Counts a subscription running on `transport` until the guard is dropped.
    pub fn subscription(&self, transport: &str) -> SubscriptionCount {
        let gauge = self.subscriptions.with_label_values(&[transport]);
        gauge.inc();
        SubscriptionCount(gauge)
    }

    /// Counts a shared subscription execution running until the guard is dropped.
    pub fn subscription_execution(&self) -> SubscriptionCount {
        self.executions.inc();
        SubscriptionCount(self.executions.clone())
    }

    /// Counts errors by code (a subscription's later events).
    pub fn observe_errors(&self, codes: &[String]) {
        for code in codes {
            self.errors.with_label_values(&[code.as_str()]).inc();
        }
    }

    fn render(&self, open_websockets: usize) -> Vec<u8> {
        self.websockets.set(open_websockets as i64);
        for sampler in &self.samplers {
            for (name, value) in sampler() {
                let (pool, state) = name.split_once(':').unwrap_or((name, "total"));
                self.pool.with_label_values(&[pool, state]).set(value);
            }
        }
        for (counter, read) in &self.counters {
            // Counters only go up: add what was counted since the last scrape.
            counter.inc_by(read().saturating_sub(counter.get()));
        }
        for (gauge, read) in &self.gauges {
            gauge.set(read());
        }
        if let Some(relay) = &self.relay {
            relay.sample();
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// One running subscription (or shared execution) in its gauge.
pub struct SubscriptionCount(IntGauge);

impl Drop for SubscriptionCount {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`, Prometheus text format.
pub async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    let body = state.metrics.render(state.websockets.open());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_renders() {
        let retries = Arc::new(std::sync::atomic::AtomicU64::new(7));
        let read = Arc::clone(&retries);
        let counter = SampledCounter {
            name: "mysql_lock_retries_total",
            help: "retries",
            read: Arc::new(move || read.load(std::sync::atomic::Ordering::Relaxed)),
        };
        let gauge = SampledGauge {
            name: "kafka_broker_reachable",
            help: "reachable",
            read: Arc::new(|| 1),
        };
        let m = Metrics::new(
            vec![Arc::new(|| vec![("mysql:idle", 3)])],
            vec![counter],
            vec![gauge],
            None,
        )
        .unwrap();
        m.observe("Books", 0.004, &[]);
        m.observe("anonymous", 0.2, &["NOT_AUTHORIZED".into()]);
        m.observe("other", 0.2, &[]);
        let text = String::from_utf8(m.render(2)).unwrap();
        assert!(
            text.contains(r#"graphql_requests_total{operation="Books",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"graphql_requests_total{operation="anonymous",outcome="error"} 1"#));
        assert!(text.contains(r#"operation="other""#));
        assert!(text.contains(r#"graphql_errors_total{code="NOT_AUTHORIZED"} 1"#));
        assert!(text.contains("graphql_websockets_open 2"));
        assert!(text.contains(r#"datasource_pool_connections{pool="mysql",state="idle"} 3"#));
        assert!(!text.contains("outbox_"), "no relay, no outbox metrics");
        assert!(text.contains("mysql_lock_retries_total 7"), "{text}");
        assert!(text.contains("kafka_broker_reachable 1"), "{text}");
        retries.store(9, std::sync::atomic::Ordering::Relaxed);
        let text = String::from_utf8(m.render(2)).unwrap();
        assert!(text.contains("mysql_lock_retries_total 9"), "{text}");
    }

    #[test]
    fn the_relay_metrics_start_at_zero() {
        let m = Metrics::new(
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Some(Arc::new(RelayStats::default())),
        )
        .unwrap();
        let text = String::from_utf8(m.render(0)).unwrap();
        for line in [
            "outbox_backlog_events 0",
            "outbox_oldest_unsent_seconds 0",
            "outbox_published_events_total 0",
            "outbox_purged_events_total 0",
            "outbox_relay_lease_held 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
