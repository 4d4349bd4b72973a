//! The one path every GraphQL operation takes, whatever carried it: HTTP POST and
//! GET, both WebSocket protocols, and the streaming HTTP transports only turn bytes
//! into a `Request` and a `Viewer`, and a `Response` (or a stream of them) back into
//! bytes. Everything in between is here, once: the parsed-document cache, the alias
//! limit, loaders per operation (per event for subscriptions), the execution
//! timeout, error codes and production masking, nulls where fields failed, and the
//! metrics with bounded labels.

mod errors;
mod operations;
mod persisted;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Request, Response};
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::graphql::loaders::LoaderScope;
use crate::graphql::{AliasLimit, AppSchema, DocumentCache, Stores, Viewer};
use crate::http::Metrics;
pub use errors::Failure;
pub use operations::OperationLabels;
use persisted::PersistedError;
pub use persisted::PersistedQueries;

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
        Pipeline {
            schema,
            stores,
            documents: DocumentCache::default(),
            config,
            metrics,
            labels,
            persisted,
        }
    }

    /// The operation `request` would run, parsed once (from the cache when it can),
    /// `None` when the document does not parse or names no operation it holds.
    pub fn operation_type(&self, request: &mut Request) -> Option<OperationType> {
        self.persisted.resolve(request).ok()?;
        self.documents.prepare(request);
        operations::selected(request).map(|(ty, _)| ty)
    }

    /// Runs a query or mutation for `viewer`.
    pub async fn execute(&self, mut request: Request, viewer: Viewer) -> Executed {
        let started = Instant::now();
        if let Err(e) = self.persisted.resolve(&mut request) {
            let response = persisted_error(&e);
            self.observe("other", started, &response);
            let failure = (e != PersistedError::NotFound).then_some(Failure::Request);
            return Executed { response, failure };
        }
        self.documents.prepare(&mut request);
        let label = self.labels.label_for(&mut request);
        let parsed = request.parsed_query().is_ok();
        let response = match self.config.aliases.check(&mut request) {
            Err(refused) => Response::from_errors(vec![refused]),
            Ok(()) => {
                let request = self.with_context(request, viewer);
                match tokio::time::timeout(self.config.timeout, self.schema.execute(request)).await
                {
                    Ok(response) => response,
                    // Dropping the execution cancels its data-source calls.
                    Err(_) => return self.timed_out(label, started),
                }
            }
        };
        let (response, failure) = errors::finish(response, parsed, self.config.production);
        self.observe(label, started, &response);
        Executed { response, failure }
    }

    /// Runs any operation as a stream of responses (one for a query or mutation,
    /// one per event for a subscription), for the streaming transports; `viewer`
    /// comes from the request's header or the WebSocket's `connection_init`.
    pub fn stream(
        self: &Arc<Self>,
        mut request: Request,
        viewer: Viewer,
    ) -> BoxStream<'static, Response> {
        let started = Instant::now();
        self.documents.prepare(&mut request);
        let label = self.labels.label_for(&mut request);
        let parsed = request.parsed_query().is_ok();
        if let Err(refused) = self.config.aliases.check(&mut request) {
            let (response, _) = errors::finish(
                Response::from_errors(vec![refused]),
                parsed,
                self.config.production,
            );
            self.observe(label, started, &response);
            return futures::stream::once(async move { response }).boxed();
        }
        let is_subscription = matches!(
            operations::selected(&mut request),
            Some((OperationType::Subscription, _))
        );
        let request = self.with_context(request, viewer);
        let pipeline = Arc::clone(self);
        let responses = self.schema.execute_stream(request);
        let responses: BoxStream<'static, Response> = if is_subscription {
            responses
        } else {
            // A query or mutation over a stream obeys the same timeout as over HTTP.
            let timeout = self.config.timeout;
            let mut responses = responses;
            let timed = async move {
                match tokio::time::timeout(timeout, responses.next()).await {
                    Ok(Some(response)) => Some(response),
                    Ok(None) => None,
                    Err(_) => Some(Response::from_errors(vec![errors::timeout_error(timeout)])),
                }
            };
            futures::stream::once(timed)
                .filter_map(std::future::ready)
                .boxed()
        };
        let mut first = true;
        responses
            .map(move |response| {
                let (response, _) = errors::finish(response, parsed, pipeline.config.production);
                if std::mem::take(&mut first) {
                    pipeline.observe(label, started, &response);
                } else {
                    pipeline.metrics.observe_errors(&errors::codes(&response));
                }
                response
            })
            .boxed()
    }

    /// The request with what resolvers reach per operation: the caller and loaders.
    fn with_context(&self, request: Request, viewer: Viewer) -> Request {
        let loaders = LoaderScope::new(&self.stores.catalog, &self.stores.checkouts);
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
pub struct StreamExecutor(pub Arc<Pipeline>);

impl async_graphql::Executor for StreamExecutor {
    async fn execute(&self, request: Request) -> Response {
        self.0.execute(request, Viewer::default()).await.response
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
        self.0.stream(request, viewer)
    }
}
