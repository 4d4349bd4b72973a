//! Logs and traces (SPEC section 8).
//!
//! Logs: JSON in production (one object a line, for the log pipeline), readable text
//! in development; `RUST_LOG` filters (default `info`). A request's lines carry its
//! `request_id`, and its `trace_id` and `span_id` when traces are on.
//!
//! Traces: OpenTelemetry over OTLP/HTTP (protobuf, or JSON with
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), configured by the standard `OTEL_*`
//! variables and on only when an OTLP endpoint is set. Spans meant only for traces
//! (operations, batched loads, data-source calls, deliveries) use the target
//! [`TARGET`]: the log layer never enables it, so with traces off such a span is a
//! disabled call site and costs a branch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::TraceContext;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of spans that exist only for traces.
pub const TARGET: &str = domain::trace::SPAN_TARGET;

/// The service name when `OTEL_SERVICE_NAME` is unset.
const SERVICE_NAME: &str = "central-library-gateway";

/// How long the exit waits for the last spans to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported (an OTLP endpoint is configured).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What `init` set up; [`Telemetry::shutdown`] exports what is left.
#[must_use = "call shutdown before exiting, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered, within a few seconds.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
                tracing::warn!(error = %e, "traces: the last spans were not all exported");
            }
        }
    }
}

/// Installs the global subscriber (logs, and traces when configured); call once,
/// first thing. A second call (tests start several apps in one process) keeps the
/// first subscriber.
pub fn init(production: bool) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = match format!("{TARGET}=off").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let logs = if production {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        // Colours only on a terminal: piped logs (tests, files) stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(ansi)
            .boxed()
    };
    let (provider, problem) = match traces_configured() {
        Some(protocol) => match provider(&protocol) {
            Ok(provider) => (Some(provider), unsupported(protocol)),
            Err(e) => (None, Some(format!("traces are off: {e}"))),
        },
        None => (None, None),
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("gateway"))
            .with_location(false)
            .with_threads(false)
            .with_filter(LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        ENABLED.store(true, Ordering::Relaxed);
        tracing::info!("traces: exported over OTLP");
    }
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
    Telemetry {
        provider: provider.filter(|_| installed),
    }
}

/// The configured protocol (empty when unset) when an OTLP endpoint is set and
/// the SDK is not disabled.
fn traces_configured() -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or(set("OTEL_EXPORTER_OTLP_ENDPOINT"));
    (endpoint.is_some() && !disabled).then(|| {
        set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or(set("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_default()
    })
}

/// A warning for a protocol this build does not speak (the exporter then uses
/// http/protobuf).
fn unsupported(protocol: String) -> Option<String> {
    let known = ["", "http/protobuf", "http/json"];
    (!known.contains(&protocol.to_ascii_lowercase().as_str())).then(|| {
        format!(
            "traces: OTLP protocol {protocol:?} is not built in (only http/protobuf and \
             http/json); exporting http/protobuf (the collector's port 4318)"
        )
    })
}

/// The tracer provider: batches exported on the SDK's own thread, the sampler from
/// `OTEL_TRACES_SAMPLER`, the resource from `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`.
fn provider(protocol: &str) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    // The specification's default is http/protobuf; the exporter's own default,
    // with both encodings built in, would be JSON.
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "http/json" => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Continues the caller's trace: `span`'s parent becomes the context in `headers`
/// (W3C `traceparent`/`tracestate`), when traces are on and there is one. Returns
/// the span's own ids for the logs.
pub fn continue_trace<'a>(span: &tracing::Span, headers: impl Extractor + 'a) -> Option<SpanIds> {
    if !enabled() {
        return None;
    }
    let parent = TraceContextPropagator::new().extract(&headers);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    SpanIds::of(span)
}

/// A span's trace and span id, as logged.
pub struct SpanIds {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
}

impl SpanIds {
    fn of(span: &tracing::Span) -> Option<SpanIds> {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then(|| SpanIds {
            trace_id: span_context.trace_id().to_string(),
            span_id: span_context.span_id().to_string(),
        })
    }
}

/// `span`'s context as W3C strings, for an event to carry (the outbox row and the
/// Kafka headers); `None` when traces are off or it is not sampled.
pub fn w3c(span: &tracing::Span) -> Option<TraceContext> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_sampled() {
        return None;
    }
    let mut carrier = W3cCarrier::default();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    TraceContext::parse(&carrier.traceparent, &carrier.tracestate)
}

/// [`domain::trace::Joiner`]: `span` becomes a child of `trace`; its own context
/// is what travels on.
pub fn child_of(span: &tracing::Span, trace: &TraceContext) -> Option<TraceContext> {
    join(span, Some(trace), true);
    w3c(span)
}

/// Makes `span` part of the trace `trace` names: its child (a live delivery), or
/// linked to it (a replay, long after the mutation's trace ended).
pub fn join(span: &tracing::Span, trace: Option<&TraceContext>, as_child: bool) {
    let Some(trace) = trace.filter(|_| enabled()) else {
        return;
    };
    let remote = TraceContextPropagator::new().extract(&Carried(trace));
    let remote_span = remote.span().span_context().clone();
    if !remote_span.is_valid() {
        return;
    }
    if as_child {
        let _ = span.set_parent(remote);
    } else {
        span.add_link(remote_span);
    }
}

/// The OpenTelemetry context of `span`, for work it starts elsewhere (a batched
/// load runs on its own task, outside the span of the operation that asked).
pub fn context_of(span: &tracing::Span) -> Option<opentelemetry::Context> {
    enabled().then(|| span.context())
}

/// Makes `span` a child of `parent` (from [`context_of`]).
pub fn set_parent(span: &tracing::Span, parent: Option<&opentelemetry::Context>) {
    if let Some(parent) = parent {
        let _ = span.set_parent(parent.clone());
    }
}

/// An event's context as the propagator reads it.
struct Carried<'a>(&'a TraceContext);

impl Extractor for Carried<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            domain::trace::TRACEPARENT => Some(&self.0.traceparent),
            domain::trace::TRACESTATE => Some(&self.0.tracestate),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec![domain::trace::TRACEPARENT, domain::trace::TRACESTATE]
    }
}

/// Where the propagator writes a context.
#[derive(Default)]
struct W3cCarrier {
    traceparent: String,
    tracestate: String,
}

impl Injector for W3cCarrier {
    fn set(&mut self, key: &str, value: String) {
        match key {
            domain::trace::TRACEPARENT => self.traceparent = value,
            domain::trace::TRACESTATE => self.tracestate = value,
            _ => {}
        }
    }
}

/// Request headers as the propagator reads them.
pub struct HeaderExtractor<'a>(pub &'a actix_web::http::header::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
