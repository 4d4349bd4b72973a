//! Subscriptions over WebSocket, `graphql-transport-ws` and the legacy `graphql-ws`.
//!
//! async-graphql runs the protocol; this module carries frames between it and
//! actix-ws, authenticates `connection_init`, and closes every socket with 1001
//! "Going Away" when the server drains, so clients reconnect to another instance.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use async_graphql::http::{WebSocket, WebSocketProtocols as Protocols, WsMessage};
use async_graphql::Data;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::graphql::error_response;
use super::HttpState;
use crate::graphql::Viewer;
use crate::pipeline::StreamExecutor;

/// Marks an init refused for its token, so the close code becomes 4403.
const FORBIDDEN: &str = "Forbidden: ";

/// The open WebSockets: a token to tell them to go, and a tracker to wait for them.
#[derive(Clone, Default)]
pub struct WsTracker {
    going_away: CancellationToken,
    tasks: TaskTracker,
}

impl WsTracker {
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

    /// How many are open.
    pub fn open(&self) -> usize {
        self.tasks.len()
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
    let tracker = state.websockets.clone();
    tracker.tasks.spawn_local(serve(
        state.into_inner(),
        session,
        frames,
        protocol,
        tracker.going_away.clone(),
    ));
    response
}

async fn serve(
    state: std::sync::Arc<HttpState>,
    mut session: actix_ws::Session,
    mut frames: actix_ws::MessageStream,
    protocol: Protocols,
    going_away: CancellationToken,
) {
    let (to_graphql, from_client) = futures::channel::mpsc::unbounded::<Vec<u8>>();
    let verifier = state.verifier.clone();
    // Every operation on the socket goes through the pipeline, with the viewer
    // that `connection_init` established.
    let executor = StreamExecutor(std::sync::Arc::clone(&state.pipeline));
    let mut graphql = WebSocket::new(executor, from_client, protocol)
        .on_connection_init(move |payload| async move {
            let viewer = match auth_jwt::connection_init_token(&payload) {
                Err(e) => return Err(async_graphql::Error::new(format!("{FORBIDDEN}{e}"))),
                Ok(None) => Viewer(None),
                Ok(Some(token)) => match verifier.verify(&token).await {
                    Ok(user) => Viewer(Some(user)),
                    Err(e) => return Err(async_graphql::Error::new(format!("{FORBIDDEN}{e}"))),
                },
            };
            let mut data = Data::default();
            data.insert(viewer);
            Ok(data)
        })
        .boxed();
    loop {
        tokio::select! {
            () = going_away.cancelled() => {
                // Deliver what is already pending, then say goodbye.
                while let Some(Some(WsMessage::Text(text))) = graphql.next().now_or_never() {
                    if session.text(text).await.is_err() {
                        return;
                    }
                }
                let _ = session
                    .close(Some(CloseReason {
                        code: CloseCode::Away,
                        description: Some("server shutting down".into()),
                    }))
                    .await;
                return;
            }
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if to_graphql.unbounded_send(text.as_bytes().to_vec()).is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if to_graphql.unbounded_send(bytes.to_vec()).is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = graphql.next() => match out {
                Some(WsMessage::Text(text)) => {
                    if session.text(text).await.is_err() {
                        return;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    let code = if reason.starts_with(FORBIDDEN) { 4403 } else { code };
                    let _ = session
                        .close(Some(CloseReason {
                            code: CloseCode::Other(code),
                            description: Some(reason),
                        }))
                        .await;
                    return;
                }
                None => break,
            },
        }
    }
    let _ = session.close(None).await;
}
