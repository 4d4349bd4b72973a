//! `/health` (the seed's, answered before any auth), `/health/live`, `/health/ready`;
//! and the embedded mode's `/dev/token/{username}`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::{web, HttpResponse};
#[cfg(feature = "dev")]
use auth_jwt::dev::DevIssuer;

use super::HttpState;

/// A required dependency readiness depends on (MySQL, MongoDB, the JWT key).
pub trait DependencyCheck: Send + Sync {
    /// Its name in the readiness body.
    fn name(&self) -> &str;
    /// One cheap round trip.
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("OK")
}

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("OK")
}

/// 503 while starting or draining, or when a required dependency does not answer
/// in 1 s; an optional one that is down is named in the body (still 200).
pub async fn ready(state: web::Data<HttpState>) -> HttpResponse {
    let phase = state.readiness.state();
    if phase != shutdown::State::Ready {
        state.metrics.observe_ready(false);
        let body = format!("{phase:?}").to_lowercase();
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(body);
    }
    let (failures, degraded) =
        futures::future::join(failing(&state.dependencies), failing(&state.optional)).await;
    state.metrics.observe_ready(failures.is_empty());
    if failures.is_empty() {
        let mut body = String::from("OK");
        for d in degraded {
            body.push_str(&format!("\n{d} (optional: serving without it)"));
        }
        HttpResponse::Ok().content_type("text/plain").body(body)
    } else {
        tracing::warn!(failures = ?failures, "not ready: dependency down");
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(failures.join("\n"))
    }
}

/// The checks among `deps` that fail (or take over 1 s), as "name: why".
async fn failing(deps: &[std::sync::Arc<dyn DependencyCheck>]) -> Vec<String> {
    let checks = deps.iter().map(|d| async move {
        match tokio::time::timeout(Duration::from_secs(1), d.check()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{}: {e}", d.name())),
            Err(_) => Some(format!("{}: timed out", d.name())),
        }
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// `/dev/token/{username}?ttl=SECONDS`.
#[cfg(feature = "dev")]
#[derive(serde::Deserialize)]
pub struct TokenQuery {
    /// Lifetime in seconds (default 24 h).
    ttl: Option<i64>,
}

#[cfg(feature = "dev")]
/// Embedded mode only: a token for a dev user, no password asked (the process runs
/// on the developer's machine with demo data); `ttl` shortens its life.
pub async fn dev_token(
    issuer: web::Data<DevIssuer>,
    username: web::Path<String>,
    query: web::Query<TokenQuery>,
) -> HttpResponse {
    let issued = issuer.user(&username).and_then(|u| match query.ttl {
        Some(ttl) => issuer.issue_for(u, ttl),
        None => issuer.issue(u),
    });
    match issued {
        Some(token) => HttpResponse::Ok().content_type("text/plain").body(token),
        None => HttpResponse::NotFound().content_type("text/plain").body(format!(
            "no dev user {username:?}; try user1 (admin, librarian, user), user2, user3 or apickerin0@51.la"
        )),
    }
}
