//! The HTTP surface (SPEC section 5): `/graphql` (POST, GET, WebSocket), GraphiQL
//! outside production, health endpoints, and the dev token endpoints in embedded mode.

mod graphql;
mod health;
mod metrics;
mod middleware;
mod streaming;
mod ws;

use std::sync::Arc;

use actix_web::web;
#[cfg(feature = "dev")]
use auth_jwt::dev::DevIssuer;
use auth_jwt::Verifier;
use shutdown::Readiness;

#[cfg(feature = "fuzzing")]
pub(crate) use graphql::request_from_body;
pub use health::DependencyCheck;
pub use metrics::{Metrics, SampledCounter, SampledGauge, Sampler, SubscriptionCount};
pub use ws::{ConnectionFd, WsTracker};

use crate::pipeline::Pipeline;

/// What every handler shares.
pub struct HttpState {
    /// The one path every GraphQL operation takes.
    pub pipeline: Arc<Pipeline>,
    /// Token verification.
    pub verifier: Verifier,
    /// Starting / ready / draining.
    pub readiness: Readiness,
    /// Production mode: no GraphiQL, masked errors.
    pub production: bool,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Open WebSockets, closed with 1001 on drain.
    pub websockets: WsTracker,
    /// Required dependencies, for `/health/ready`.
    pub dependencies: Vec<Arc<dyn DependencyCheck>>,
    /// Dependencies the gateway serves without (Kafka: events wait in the
    /// outbox), named in `/health/ready`'s body when down.
    pub optional: Vec<Arc<dyn DependencyCheck>>,
    /// Embedded mode's token issuer, mounted under `/dev`.
    #[cfg(feature = "dev")]
    pub dev_issuer: Option<Arc<DevIssuer>>,
    /// Prometheus metrics (the pipeline records into the same).
    pub metrics: Arc<Metrics>,
}

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<HttpState>) {
    #[cfg(feature = "dev")]
    let dev_issuer = state.dev_issuer.clone();
    cfg.app_data(state)
        .app_data(web::PayloadConfig::new(usize::MAX))
        .route("/health", web::get().to(health::health))
        .route("/health/live", web::get().to(health::live))
        .route("/health/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(metrics::metrics))
        .service(
            web::resource("/graphql")
                .route(web::post().to(graphql::post))
                .route(web::get().to(graphql::get))
                .route(web::route().to(graphql::method_not_allowed)),
        );
    #[cfg(feature = "dev")]
    if let Some(issuer) = dev_issuer {
        let for_token = Arc::clone(&issuer);
        cfg.service(
            web::scope("/dev")
                .app_data(web::Data::from(for_token))
                .route("/token/{username}", web::get().to(health::dev_token))
                .configure(move |c| auth_jwt::dev::configure(c, issuer)),
        );
    }
}

pub use middleware::request_context;

/// CORS for browser apps on other origins (SPEC section 5: `CORS_ORIGINS`, default
/// `*` as the seed's Apollo Server 2). Preflights may send the headers Apollo's
/// clients use; answers are cached by browsers for a day. Credentials are allowed
/// only with an explicit list of origins (a browser refuses them with `*`).
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::{header, Method};
    let cors = actix_cors::Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("apollo-require-preflight"),
            header::HeaderName::from_static("x-apollo-operation-name"),
            header::HeaderName::from_static("traceparent"),
            header::HeaderName::from_static("tracestate"),
        ])
        .max_age(86_400);
    if origins.iter().any(|o| o == "*") {
        cors.allow_any_origin().send_wildcard()
    } else {
        origins
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin))
            .supports_credentials()
    }
}
