//! The one path every GraphQL operation takes, whatever carried it: HTTP POST and
//! GET, both WebSocket protocols, and the streaming HTTP transports only turn bytes
//! into a `Request` and a `Viewer`, and a `Response` (or a stream of them) back into
//! bytes. Everything in between is here, once: the parsed-document cache, the alias
//! limit, loaders per operation (per event for subscriptions), the execution
//! timeout, error codes and production masking, nulls where fields failed, and the
//! metrics with bounded labels.

mod encode;
mod errors;
mod nulls;
mod operations;
mod persisted;
mod shared;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Data, Request, Response};
use domain::TraceContext;
use futures::stream::BoxStream;
use futures::StreamExt;
use tracing::Instrument;

use crate::graphql::loaders::LoaderScope;
use crate::graphql::{AliasLimit, AppSchema, DocumentCache, Stores, Viewer};
use crate::http::Metrics;
use crate::telemetry;
pub use errors::Failure;
use nulls::{FieldTypes, Shape};
pub use operations::OperationLabels;
pub use persisted::PersistedQueries;
use persisted::{Persisted, PersistedError};

/// An admitted operation: what its responses are finished and labelled by.
struct Ran {
    label: &'static str,
    parsed: bool,
    document: Option<Arc<ExecutableDocument>>,
    operation_name: Option<String>,
}

/// An operation refused before it ran, already finished.
struct Refused {
    response: Response,
    failure: Option<Failure>,
    label: &'static str,
}

/// What the pipeline needs besides the schema.
pub struct PipelineConfig {
    /// Production: internal error messages are masked.
    pub production: bool,
    /// Longest a query or mutation may run (`GRAPHQL_REQUEST_TIMEOUT`).
    pub timeout: Duration,
    /// The alias limit.
    pub aliases: AliasLimit,
    /// Distinct operation names that become metric labels (`GRAPHQL_METRICS_MAX_OPERATIONS`).
    pub max_operation_labels: usize,
    /// Automatic persisted queries kept, at most (`GRAPHQL_APQ_MAX_ENTRIES`).
    pub persisted_entries: usize,
    /// Their text, at most, in bytes (`GRAPHQL_APQ_MAX_BYTES`).
    pub persisted_bytes: usize,
    /// The largest reply to one operation (`GRAPHQL_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
    /// Responses a subscriber may fall behind by (`SUBSCRIPTION_BUFFER_EVENTS`).
    pub subscriber_buffer: usize,
}

/// The pipeline; shared by every transport.
pub struct Pipeline {
    schema: AppSchema,
    stores: Stores,
    documents: DocumentCache,
    config: PipelineConfig,
    metrics: Arc<Metrics>,
    labels: OperationLabels,
    persisted: PersistedQueries,
    field_types: FieldTypes,
    shared: shared::SharedExecutions,
}

/// One executed query or mutation.
pub struct Executed {
    /// The GraphQL response, with codes, masking and nulls applied.
    pub response: Response,
    /// Why it did not execute, if it did not.
    pub failure: Option<Failure>,
}

impl Pipeline {
    /// The pipeline over `schema` (whose data holds `stores`).
    pub fn new(
        schema: AppSchema,
        stores: Stores,
        config: PipelineConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let labels = OperationLabels::new(config.max_operation_labels);
        let persisted = PersistedQueries::new(config.persisted_entries, config.persisted_bytes);
        let schema_sdl = schema.sdl();
        let shared = shared::SharedExecutions::new(config.subscriber_buffer);
        Pipeline {
            schema,
            stores,
            documents: DocumentCache::default(),
            config,
            metrics,
            labels,
            persisted,
            field_types: FieldTypes::from_sdl(&schema_sdl),
            shared,
        }
    }

    /// The operation `request` would run, parsed once (from the cache when it can),
    /// `None` when the document does not parse or names no operation it holds.
    pub fn operation_type(&self, request: &mut Request) -> Option<OperationType> {
        self.resolve_persisted(request, false).ok()?;
        self.documents.prepare(request);
        operations::selected(request).map(|(ty, _)| ty)
    }

    /// Runs a query or mutation for `viewer`, traced under the current span (the
    /// HTTP request's).
    pub async fn execute(&self, request: Request, viewer: Viewer) -> Executed {
        let started = Instant::now();
        let (mut request, ran) = match self.admit(request) {
            Ok(admitted) => admitted,
            Err(refused) => return self.refused(*refused, started),
        };
        let ty = operations::selected(&mut request).map(|(ty, _)| ty);
        let span = operation_span(ty, ran.label);
        // A mutation's events carry its context to their subscribers.
        let events_trace = match ty {
            Some(OperationType::Mutation) => telemetry::w3c(&span),
            _ => None,
        };
        let request = self.with_context(request, viewer, &span);
        let run = domain::trace::within(events_trace, self.schema.execute(request))
            .instrument(span.clone());
        let response = match tokio::time::timeout(self.config.timeout, run).await {
            Ok(response) => response,
            // Dropping the execution cancels its data-source calls.
            Err(_) => {
                failed(&span);
                return self.timed_out(ran.label, started);
            }
        };
        let (response, failure) = self.finish(response, &ran);
        if !response.errors.is_empty() {
            failed(&span);
        }
        self.observe(ran.label, started, &response);
        Executed { response, failure }
    }

    /// Runs any operation as a stream of responses (one for a query or mutation,
    /// one per event for a subscription), for the streaming transports; `viewer`
    /// comes from the request's header or the WebSocket's `connection_init`.
    /// `parent`, from the WebSocket's `connection_init` payload, is the trace the
    /// operation continues (else the current span's); `transport` names the
    /// protocol in the subscription count.
    pub fn stream(
        self: &Arc<Self>,
        request: Request,
        viewer: Viewer,
        parent: Option<&TraceContext>,
        transport: &'static str,
    ) -> BoxStream<'static, Response> {
        let started = Instant::now();
        let (mut request, ran) = match self.admit(request) {
            Ok(admitted) => admitted,
            Err(refused) => {
                let response = self.refused(*refused, started).response;
                return futures::stream::once(async move { response }).boxed();
            }
        };
        let ty = operations::selected(&mut request).map(|(ty, _)| ty);
        let is_subscription = ty == Some(OperationType::Subscription);
        // A subscription's span covers its start only: each event is delivered in
        // a span of the trace of the mutation that caused it.
        let span = operation_span(ty, ran.label);
        telemetry::join(&span, parent, true);
        let sharing = is_subscription
            .then(|| shared::Key::of(&request, &viewer))
            .flatten();
        let pipeline = Arc::clone(self);
        let responses: BoxStream<'static, Response> = if let Some(key) = sharing {
            // Only the subscriber that starts the execution needs its context.
            let starter = Arc::clone(self);
            self.shared.join(
                key,
                move || {
                    let request = starter.with_context(request, viewer, &span);
                    starter.schema.execute_stream(request)
                },
                || self.metrics.subscription_execution(),
            )
        } else if is_subscription {
            self.schema
                .execute_stream(self.with_context(request, viewer, &span))
        } else {
            let events_trace = match ty {
                Some(OperationType::Mutation) => telemetry::w3c(&span),
                _ => None,
            };
            let request = self.with_context(request, viewer, &span);
            let mut responses = self.schema.execute_stream(request);
            // A query or mutation over a stream: one response, under the same
            // timeout as over HTTP, in its span (a mutation's events with its context).
            let timeout = self.config.timeout;
            let timed = async move {
                match tokio::time::timeout(timeout, responses.next()).await {
                    Ok(Some(response)) => Some(response),
                    Ok(None) => None,
                    Err(_) => Some(Response::from_errors(vec![errors::timeout_error(timeout)])),
                }
            };
            let timed = domain::trace::within(events_trace, timed).instrument(span);
            futures::stream::once(timed)
                .filter_map(std::future::ready)
                .boxed()
        };
        let mut first = true;
        let counted = is_subscription.then(|| self.metrics.subscription(transport));
        responses
            .map(move |response| {
                let _counted = &counted;
                let (mut response, _) = pipeline.finish(response, &ran);
                // Subscription events are one checkout each, bounded by the argument
                // caps; a query's or mutation's reply is checked like over HTTP.
                let max = pipeline.config.max_response_bytes;
                if !is_subscription && !encode::fits(&response, max) {
                    response = encode::too_large(&encode::TooLarge { max });
                }
                if std::mem::take(&mut first) {
                    pipeline.observe(ran.label, started, &response);
                } else {
                    pipeline.metrics.observe_errors(&errors::codes(&response));
                }
                response
            })
            .boxed()
    }

    /// `response` as JSON (without `data` unless `with_data`), within
    /// `GRAPHQL_MAX_RESPONSE_BYTES`: past it, the `RESPONSE_TOO_LARGE` error's.
    pub fn encode(&self, response: &Response, with_data: bool) -> Vec<u8> {
        let max = self.config.max_response_bytes;
        match encode::encode(response, with_data, max) {
            Ok(json) => json,
            Err(e) => {
                self.metrics
                    .observe_errors(&["RESPONSE_TOO_LARGE".to_string()]);
                let refusal = encode::too_large(&e);
                // A few hundred bytes: within any cap worth setting.
                serde_json::to_vec(&refusal).unwrap_or_default()
            }
        }
    }

    /// What every operation goes through before it may run, on every transport:
    /// its persisted query resolved, its document parsed once, its metric label
    /// chosen, the alias limit.
    fn admit(&self, mut request: Request) -> Result<(Request, Ran), Box<Refused>> {
        if let Err(e) = self.resolve_persisted(&mut request, true) {
            return Err(Box::new(Refused {
                response: persisted_error(&e),
                failure: (e != PersistedError::NotFound).then_some(Failure::Request),
                label: operations::OTHER,
            }));
        }
        let document = self.documents.prepare(&mut request);
        let label = self.labels.label_for(&mut request);
        let ran = Ran {
            label,
            parsed: document.is_some(),
            document,
            operation_name: request.operation_name.clone(),
        };
        if let Err(refused) = self.config.aliases.check(&mut request) {
            let (response, failure) = self.finish(Response::from_errors(vec![refused]), &ran);
            return Err(Box::new(Refused {
                response,
                failure,
                label,
            }));
        }
        Ok((request, ran))
    }

    /// The request's persisted query resolved (see `PersistedQueries::resolve`),
    /// counted once: a resolved request no longer carries the extension, so the
    /// transports that look at the operation before `admit` do not count it twice;
    /// a miss, which keeps it, is counted by `admit` alone.
    fn resolve_persisted(
        &self,
        request: &mut Request,
        admitting: bool,
    ) -> Result<(), PersistedError> {
        let resolved = self.persisted.resolve(request);
        match &resolved {
            Ok(Persisted::NotAsked) => return Ok(()),
            Ok(Persisted::Hit) => self.metrics.observe_persisted("hit"),
            Ok(Persisted::Registered) => self.metrics.observe_persisted("registered"),
            Err(PersistedError::NotFound) if admitting => self.metrics.observe_persisted("miss"),
            Err(_) => {}
        }
        if resolved.is_ok() {
            request.extensions.0.remove("persistedQuery");
        }
        resolved.map(|_| ())
    }

    /// The error policy for a response of the operation `ran`.
    fn finish(&self, response: Response, ran: &Ran) -> (Response, Option<Failure>) {
        let shape = Shape {
            types: &self.field_types,
            document: ran.document.as_deref(),
            operation_name: ran.operation_name.as_deref(),
        };
        errors::finish(response, ran.parsed, self.config.production, shape)
    }

    fn refused(&self, refused: Refused, started: Instant) -> Executed {
        self.observe(refused.label, started, &refused.response);
        Executed {
            response: refused.response,
            failure: refused.failure,
        }
    }

    /// The request with what resolvers reach per operation: the caller and loaders
    /// (whose batches are traced under `span`).
    fn with_context(&self, request: Request, viewer: Viewer, span: &tracing::Span) -> Request {
        let loaders = LoaderScope::new(
            &self.stores.catalog,
            &self.stores.checkouts,
            telemetry::context_of(span),
        );
        request.data(viewer).data(loaders)
    }

    fn timed_out(&self, label: &'static str, started: Instant) -> Executed {
        let response = Response::from_errors(vec![errors::timeout_error(self.config.timeout)]);
        self.observe(label, started, &response);
        Executed {
            response,
            failure: Some(Failure::Timeout),
        }
    }

    fn observe(&self, label: &str, started: Instant, response: &Response) {
        self.metrics.observe(
            label,
            started.elapsed().as_secs_f64(),
            &errors::codes(response),
        );
    }
}

/// The span of one operation, named as the GraphQL semantic conventions say
/// (`{type} {name}`, with the bounded metric label as the name).
fn operation_span(ty: Option<OperationType>, label: &str) -> tracing::Span {
    if !telemetry::enabled() {
        return tracing::Span::none();
    }
    let ty = match ty {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    };
    tracing::info_span!(
        target: telemetry::TARGET,
        "graphql operation",
        otel.name = %format_args!("{ty} {label}"),
        graphql.operation.type = ty,
        graphql.operation.name = label,
        otel.status_code = tracing::field::Empty,
    )
}

/// Marks an operation's span failed.
fn failed(span: &tracing::Span) {
    span.record("otel.status_code", "ERROR");
}

/// A persisted-query refusal as a response (`PersistedQueryNotFound` is the exact
/// message Apollo's clients look for).
fn persisted_error(e: &PersistedError) -> Response {
    let mut error = async_graphql::ServerError::new(e.to_string(), None);
    errors::set_code(&mut error, e.code());
    Response::from_errors(vec![error])
}

/// The WebSocket protocols' executor: what async-graphql's protocol handler runs
/// each `subscribe`/`start` message through. The viewer comes from the socket's
/// `connection_init` (its session data).
#[derive(Clone)]
pub struct StreamExecutor {
    /// The pipeline.
    pub pipeline: Arc<Pipeline>,
    /// The socket's subprotocol, for the subscription count.
    pub protocol: &'static str,
}

impl async_graphql::Executor for StreamExecutor {
    async fn execute(&self, request: Request) -> Response {
        self.pipeline
            .execute(request, Viewer::default())
            .await
            .response
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let viewer = session_data
            .as_deref()
            .and_then(|data| data.get(&std::any::TypeId::of::<Viewer>()))
            .and_then(|v| v.downcast_ref::<Viewer>())
            .cloned()
            .unwrap_or_default();
        let parent = session_data
            .as_deref()
            .and_then(|data| data.get(&std::any::TypeId::of::<TraceContext>()))
            .and_then(|v| v.downcast_ref::<TraceContext>());
        self.pipeline.stream(request, viewer, parent, self.protocol)
    }
}
