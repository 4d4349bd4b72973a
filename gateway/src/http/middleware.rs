//! Per-request context: a request id (from `x-request-id` or new) on the log span and
//! the response; the caller's trace continued (W3C `traceparent`), its ids on the
//! log span; and `Connection: close` once draining, so keep-alive clients move
//! to another instance after the response they are in.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{web, Error};
use tracing::Instrument;

use super::HttpState;
use crate::telemetry::{self, HeaderExtractor};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware function (`actix_web::middleware::from_fn`).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        http.method = %req.method(),
        url.path = %req.path(),
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    // What only an exported span needs: not formatted when traces are off.
    if telemetry::enabled() {
        span.record(
            "otel.name",
            tracing::field::display(format_args!("{} {}", req.method(), req.path())),
        );
        span.record("otel.kind", "server");
    }
    if let Some(ids) = telemetry::continue_trace(&span, HeaderExtractor(req.headers())) {
        span.record("trace_id", tracing::field::display(&ids.trace_id));
        span.record("span_id", tracing::field::display(&ids.span_id));
    }
    span.in_scope(|| tracing::debug!("request received"));
    let mut res = next.call(req).instrument(span.clone()).await?;
    span.in_scope(|| tracing::debug!(http.status = res.status().as_u16(), "response"));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    // Checked after the response: a request that began before the signal still
    // tells its client to reconnect elsewhere.
    let draining = res
        .request()
        .app_data::<web::Data<HttpState>>()
        .is_some_and(|s| s.readiness.is_draining());
    if draining {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}
