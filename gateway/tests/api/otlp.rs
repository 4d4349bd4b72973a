//! An OTLP/HTTP trace receiver inside the test suite: what a collector on port
//! 4318 would get from the gateway (protobuf `ExportTraceServiceRequest`s on
//! `/v1/traces`), decoded with the project's own protocol definitions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

/// One received span, ids in hex as W3C writes them.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root.
    pub parent: String,
    pub attributes: HashMap<String, String>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
}

type Received = Arc<Mutex<Vec<Span>>>;

/// The receiver; stopped when dropped.
pub struct Receiver {
    /// For `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Received,
    arrivals: tokio::sync::watch::Receiver<usize>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    /// Listens on a free loopback port, on a thread of its own.
    pub fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let spans = Received::default();
        let (arrived, arrivals) = tokio::sync::watch::channel(0usize);
        let state = (Arc::clone(&spans), Arc::new(arrived));
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(state.clone()))
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .route("/v1/traces", web::post().to(export))
                })
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run();
                let _ = handle_tx.send(server.handle());
                let _ = server.await;
            })
        });
        let server = handle_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver started");
        Receiver {
            endpoint,
            spans,
            arrivals,
            server,
        }
    }

    /// The spans of `trace_id` once `done` holds for them; fails after `within`.
    pub async fn trace(
        &self,
        trace_id: &str,
        within: Duration,
        done: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        self.spans_where(|s| s.trace_id == trace_id, within, done)
            .await
    }

    /// The spans linked to a span of `trace_id` (in traces of their own), once
    /// `done` holds for them.
    pub async fn linked_to(
        &self,
        trace_id: &str,
        within: Duration,
        done: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let linked = |s: &Span| s.links.iter().any(|(trace, _)| trace == trace_id);
        self.spans_where(linked, within, done).await
    }

    async fn spans_where(
        &self,
        wanted: impl Fn(&Span) -> bool,
        within: Duration,
        done: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let mut arrivals = self.arrivals.clone();
        let of = || {
            let spans = self.spans.lock().map(|s| s.clone()).unwrap_or_default();
            spans.into_iter().filter(|s| wanted(s)).collect::<Vec<_>>()
        };
        let waited = tokio::time::timeout(within, async {
            loop {
                let spans = of();
                if done(&spans) {
                    return spans;
                }
                if arrivals.changed().await.is_err() {
                    return spans;
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("spans incomplete: {:#?}", of()))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

async fn export(
    state: web::Data<(Received, Arc<tokio::sync::watch::Sender<usize>>)>,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut received = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .map(|r| attributes(&r.attributes))
            .and_then(|mut a| a.remove("service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                });
            }
        }
    }
    let (spans, arrived) = &**state;
    if let Ok(mut spans) = spans.lock() {
        spans.extend(received);
    }
    arrived.send_modify(|n| *n += 1);
    // An empty ExportTraceServiceResponse: full success.
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => s.clone(),
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                Some(Any::DoubleValue(d)) => d.to_string(),
                _ => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
