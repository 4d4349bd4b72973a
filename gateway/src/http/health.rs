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

/// 503 while starting or draining, or when a dependency does not answer in 1 s.
pub async fn ready(state: web::Data<HttpState>) -> HttpResponse {
    let phase = state.readiness.state();
    if phase != shutdown::State::Ready {
        let body = format!("{phase:?}").to_lowercase();
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(body);
    }
    let checks = state.dependencies.iter().map(|d| async move {
        match tokio::time::timeout(Duration::from_secs(1), d.check()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{}: {e}", d.name())),
            Err(_) => Some(format!("{}: timed out", d.name())),
        }
    });
    let failures: Vec<String> = futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if failures.is_empty() {
        HttpResponse::Ok().content_type("text/plain").body("OK")
    } else {
        tracing::warn!(failures = ?failures, "not ready: dependency down");
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(failures.join("\n"))
    }
}

#[cfg(feature = "dev")]
/// Embedded mode only: a token for a dev user, no password asked (the process runs
/// on the developer's machine with demo data).
pub async fn dev_token(issuer: web::Data<DevIssuer>, username: web::Path<String>) -> HttpResponse {
    match issuer.user(&username).and_then(|u| issuer.issue(u)) {
        Some(token) => HttpResponse::Ok().content_type("text/plain").body(token),
        None => HttpResponse::NotFound().content_type("text/plain").body(format!(
            "no dev user {username:?}; try user1 (admin, librarian, user), user2, user3 or apickerin0@51.la"
        )),
    }
}
