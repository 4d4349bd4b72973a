//! Subscriptions over WebSocket, `graphql-transport-ws` and the legacy `graphql-ws`.
//!
//! async-graphql runs the protocol; `session` carries frames between it and
//! actix-ws and enforces the SPEC's limits around it (`connection_init` timeout,
//! keep-alive, subscriptions per socket, token expiry, time-bounded sends); this
//! module admits sockets (per instance and per user) and closes every one with
//! 1001 "Going Away" when the server drains, so clients reconnect elsewhere.

mod frames;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::http::WebSocketProtocols as Protocols;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::graphql::error_response;
use super::HttpState;
use crate::config::SubscriptionSettings;

/// The open WebSockets: their limits, a token to tell them to go, and a tracker
/// to wait for them.
#[derive(Clone)]
pub struct WsTracker {
    going_away: CancellationToken,
    tasks: TaskTracker,
    limits: Arc<SubscriptionSettings>,
    open: Arc<AtomicUsize>,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl WsTracker {
    /// No sockets yet; `limits` bound them.
    pub fn new(limits: SubscriptionSettings) -> Self {
        WsTracker {
            going_away: CancellationToken::new(),
            tasks: TaskTracker::new(),
            limits: Arc::new(limits),
            open: Arc::default(),
            per_user: Arc::default(),
        }
    }

    /// Tells every socket to close with 1001 and waits until all have.
    pub async fn close_all(&self) {
        self.going_away.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Cancelled when the server drains: streaming HTTP responses end on it too.
    pub(crate) fn going_away(&self) -> CancellationToken {
        self.going_away.clone()
    }

    /// `WS_SEND_TIMEOUT`: how long any stream to a client (WebSocket or HTTP) may
    /// wait for it to read.
    pub(crate) fn send_timeout(&self) -> std::time::Duration {
        self.limits.send_timeout
    }

    /// How many are open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A place for one more socket, unless the instance has `max_sockets`.
    fn admit_socket(&self) -> Option<Slot> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot::Socket(Arc::clone(&self.open));
        (taken < self.limits.max_sockets).then_some(slot)
    }

    /// A place for one more socket of user `sub`, unless it has
    /// `max_sockets_per_user`.
    fn admit_user(&self, sub: &str) -> Option<Slot> {
        let mut users = self.per_user.lock().ok()?;
        let count = users.entry(sub.to_string()).or_default();
        if *count >= self.limits.max_sockets_per_user {
            return None;
        }
        *count += 1;
        Some(Slot::User(Arc::clone(&self.per_user), sub.to_string()))
    }
}

/// The file descriptor of an HTTP connection's TCP socket, recorded when it is
/// accepted (`HttpServer::on_connect`), so a WebSocket whose client stopped
/// reading can be cut off: actix has no write timeout, and a connection with
/// bytes it cannot flush would otherwise hold the server's stop until its
/// deadline. Only the number is kept (no duplicate descriptor per socket).
#[derive(Clone, Copy)]
pub struct ConnectionFd(std::os::fd::RawFd);

impl ConnectionFd {
    /// Records `conn`'s descriptor in the connection's data (any TCP connection).
    pub fn record(conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        use std::os::fd::AsRawFd;
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            data.insert(ConnectionFd(tcp.as_raw_fd()));
        }
    }

    /// Shuts the socket down both ways, so actix stops trying to flush to it and
    /// the connection ends. Only for a connection known to be open, checked in the
    /// same poll on its own worker thread (`session::still_open`, the streaming
    /// body's liveness): actix closes the descriptor on that thread, so it cannot
    /// have been closed and reused between the check and this call.
    pub(crate) fn cut_off(self) {
        use std::os::fd::FromRawFd;
        // SAFETY: the descriptor is open (see above) and stays owned by actix:
        // `ManuallyDrop` never closes it.
        let tcp = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(self.0) });
        let _ = tcp.shutdown(std::net::Shutdown::Both);
    }
}

/// A socket's place in a count, given back when dropped.
enum Slot {
    Socket(Arc<AtomicUsize>),
    User(Arc<Mutex<HashMap<String, usize>>>, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        match self {
            Slot::Socket(open) => {
                open.fetch_sub(1, Ordering::AcqRel);
            }
            Slot::User(users, sub) => {
                if let Ok(mut users) = users.lock() {
                    if let Some(count) = users.get_mut(sub.as_str()) {
                        *count -= 1;
                        if *count == 0 {
                            users.remove(sub.as_str());
                        }
                    }
                }
            }
        }
    }
}

fn protocol_of(req: &HttpRequest) -> Option<Protocols> {
    let offered = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    match offered {
        // A client that names no protocol gets the legacy one, as Apollo Server 2 did.
        None => Some(Protocols::SubscriptionsTransportWS),
        Some(list) => list
            .split(',')
            .find_map(|p| p.trim().parse::<Protocols>().ok()),
    }
}

pub async fn upgrade(
    state: web::Data<HttpState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if state.readiness.is_draining() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: connect to another instance",
            "SERVICE_UNAVAILABLE",
        );
    }
    let Some(protocol) = protocol_of(&req) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "unsupported WebSocket protocol: use graphql-transport-ws or graphql-ws",
            "BAD_REQUEST",
        );
    };
    let tracker = state.websockets.clone();
    let Some(slot) = tracker.admit_socket() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSockets on this instance (WS_MAX_SOCKETS): connect to another or retry later",
            "TOO_MANY_SOCKETS",
        );
    };
    let (mut response, session, frames) = match actix_ws::handle(&req, payload) {
        Ok(parts) => parts,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("bad WebSocket upgrade: {e}"),
                "BAD_REQUEST",
            )
        }
    };
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol.sec_websocket_protocol()),
    );
    let tcp = req.conn_data::<ConnectionFd>().copied();
    let tasks = tracker.tasks.clone();
    tasks.spawn_local(session::serve(session::Socket {
        state: state.into_inner(),
        session,
        frames,
        protocol,
        tracker,
        slot,
        tcp,
    }));
    response
}
