//! Prometheus metrics at `/metrics`: requests and latency per operation, errors per
//! code, open WebSockets, and the MySQL pool's connections. One registry per
//! application (no global state, so tests can run several apps in one process).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::HttpState;

/// A gauge read at scrape time (pool sizes).
pub type Sampler = Arc<dyn Fn() -> Vec<(&'static str, i64)> + Send + Sync>;

/// The application's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    errors: IntCounterVec,
    websockets: IntGauge,
    pool: IntGaugeVec,
    datasource_calls: IntCounterVec,
    samplers: Vec<Sampler>,
}

impl Metrics {
    /// Registers every metric; `samplers` feed the pool gauge at each scrape.
    pub fn new(samplers: Vec<Sampler>) -> Result<Self, prometheus::Error> {
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
        registry.register(Box::new(datasource_calls.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(websockets.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            errors,
            websockets,
            pool,
            datasource_calls,
            samplers,
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
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
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
        let m = Metrics::new(vec![Arc::new(|| vec![("mysql:idle", 3)])]).unwrap();
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
    }
}
