//! One WebSocket: frames between actix-ws and async-graphql's protocol state, and
//! the rules around it. Every send is bounded by `WS_SEND_TIMEOUT` and abandoned
//! when the server drains, so a client that stops reading holds up nobody: its
//! events fall behind in the shared broadcast buffer (it is told
//! `SUBSCRIBER_TOO_SLOW` when it overflows) and the socket is dropped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_ws::{CloseCode, CloseReason, Message};
use async_graphql::http::{WebSocket, WebSocketProtocols as Protocols, WsMessage};
use async_graphql::Data;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::frames::{self, ClientFrame, ServerFrame};
use super::{ConnectionFd, Slot, WsTracker};
use crate::graphql::Viewer;
use crate::http::HttpState;
use crate::pipeline::StreamExecutor;

/// Marks an init refused for its token, so the close code becomes 4403.
const FORBIDDEN: &str = "Forbidden: ";
/// Marks an init refused for the user's socket count, so the close code is 4429.
const TOO_MANY: &str = "Too many sockets: ";
/// Client messages waiting for async-graphql; a client that sends faster than
/// that is closed (1008) rather than buffered without bound.
const INBOX: usize = 64;
/// The longest a socket's goodbye (what is pending, then 1001) may take when the
/// server drains: a healthy client takes it at once; one that stopped reading is
/// not waited for.
const GOODBYE: Duration = Duration::from_secs(1);
/// Keep-alive periods without a word from the client before it counts as gone.
const SILENT_PERIODS: u32 = 3;

/// A socket just upgraded, with its place in the instance's count.
pub(super) struct Socket {
    pub state: Arc<HttpState>,
    pub session: actix_ws::Session,
    pub frames: actix_ws::MessageStream,
    pub protocol: Protocols,
    pub tracker: WsTracker,
    pub slot: Slot,
    /// Its TCP socket, to cut off if the client stops reading.
    pub tcp: Option<ConnectionFd>,
}

/// What `connection_init` established beyond the viewer: the user's place in the
/// per-user count and when its token expires.
struct Admitted {
    _slot: Option<Slot>,
    expires_at: Option<Instant>,
}

/// Why the loop ends, and how the client is told.
enum Ending {
    /// The client went: nothing more to send.
    Gone,
    /// The client stopped reading: nothing more can be sent.
    Stalled,
    /// A close frame (graphql-transport-ws) or `connection_error` then a plain
    /// close (legacy).
    Close(u16, String),
    /// async-graphql's own close.
    Protocol(u16, String),
}

/// The W3C trace context a `connection_init` payload carries (`traceparent`,
/// `tracestate`, as over HTTP), when traces are on.
fn payload_trace(payload: &serde_json::Value) -> Option<domain::TraceContext> {
    if !crate::telemetry::enabled() {
        return None;
    }
    let member = |name| payload.get(name).and_then(|v| v.as_str());
    domain::TraceContext::parse(
        member(domain::trace::TRACEPARENT)?,
        member(domain::trace::TRACESTATE).unwrap_or_default(),
    )
}

/// Serves the socket until it closes; a client that stopped reading is cut off.
pub(super) async fn serve(socket: Socket) {
    let tcp = socket.tcp;
    let mut session = socket.session.clone();
    if let Ending::Stalled = run(socket).await {
        // No await between the check and the cut: see `ConnectionFd::cut_off`.
        if let (true, Some(tcp)) = (still_open(&mut session), tcp) {
            tcp.cut_off();
        }
    }
}

/// Whether actix still holds the socket's connection: a send that is pending (the
/// channel is full) or taken means its receiver, the connection's response, lives.
fn still_open(session: &mut actix_ws::Session) -> bool {
    !matches!(session.pong(b"").now_or_never(), Some(Err(_)))
}

async fn run(socket: Socket) -> Ending {
    let Socket {
        state,
        mut session,
        mut frames,
        protocol,
        tracker,
        slot: _slot,
        tcp: _,
    } = socket;
    let limits = Arc::clone(&tracker.limits);
    let going_away = tracker.going_away.clone();
    let (mut to_graphql, from_client) = futures::channel::mpsc::channel::<Vec<u8>>(INBOX);
    let (admitted_tx, mut admitted_rx) = tokio::sync::oneshot::channel::<Admitted>();
    let verifier = state.verifier.clone();
    let users = tracker.clone();
    // Every operation on the socket goes through the pipeline, with the viewer
    // that `connection_init` established.
    let executor = StreamExecutor {
        pipeline: Arc::clone(&state.pipeline),
        protocol: protocol.sec_websocket_protocol(),
    };
    let mut graphql = WebSocket::new(executor, from_client, protocol)
        .on_connection_init(move |payload| async move {
            let refuse =
                |e: &dyn std::fmt::Display| async_graphql::Error::new(format!("{FORBIDDEN}{e}"));
            let (viewer, admitted) = match auth_jwt::connection_init_token(&payload) {
                Err(e) => return Err(refuse(&e)),
                Ok(None) => (
                    Viewer(None),
                    Admitted {
                        _slot: None,
                        expires_at: None,
                    },
                ),
                Ok(Some(token)) => {
                    let (user, until) = verifier
                        .verify_session(&token)
                        .await
                        .map_err(|e| refuse(&e))?;
                    let Some(slot) = users.admit_user(&user.sub) else {
                        return Err(async_graphql::Error::new(format!(
                            "{TOO_MANY}this user has WS_MAX_SOCKETS_PER_USER sockets open"
                        )));
                    };
                    let left = until.saturating_sub(chrono::Utc::now().timestamp()).max(0);
                    (
                        Viewer(Some(user)),
                        Admitted {
                            _slot: Some(slot),
                            expires_at: Some(Instant::now() + Duration::from_secs(left as u64)),
                        },
                    )
                }
            };
            let _ = admitted_tx.send(admitted);
            let mut data = Data::default();
            data.insert(viewer);
            // The client's trace, continued by each operation on the socket.
            if let Some(trace) = payload_trace(&payload) {
                data.insert(trace);
            }
            Ok(data)
        })
        .boxed();

    let send_timeout = limits.send_timeout;
    let mut admitted: Option<Admitted> = None;
    let init_deadline = tokio::time::sleep(limits.init_timeout);
    tokio::pin!(init_deadline);
    let expiry = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(expiry);
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + limits.keepalive, limits.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut active: HashSet<String> = HashSet::new();

    // Sends `text`, bounded: `Some(ending)` when the client cannot take it (gone,
    // or stalled past the send timeout or into the server's drain).
    macro_rules! send {
        ($text:expr) => {{
            let text = $text;
            tokio::select! {
                sent = tokio::time::timeout(send_timeout, session.text(text)) => match sent {
                    Ok(Ok(())) => None,
                    Ok(Err(_)) => Some(Ending::Gone),
                    Err(_) => Some(Ending::Stalled),
                },
                () = going_away.cancelled() => Some(Ending::Stalled),
            }
        }};
    }

    let ending = loop {
        tokio::select! {
            () = going_away.cancelled() => {
                // Deliver what is already pending, then say goodbye, all bounded.
                let goodbye = async {
                    while let Some(Some(WsMessage::Text(text))) = graphql.next().now_or_never() {
                        if session.text(text).await.is_err() {
                            return;
                        }
                    }
                    let _ = session
                        .clone()
                        .close(Some(CloseReason {
                            code: CloseCode::Away,
                            description: Some("server shutting down".into()),
                        }))
                        .await;
                };
                return match tokio::time::timeout(send_timeout.min(GOODBYE), goodbye).await {
                    Ok(()) => Ending::Gone,
                    Err(_) => Ending::Stalled,
                };
            }
            frame = frames.next() => {
                last_heard = Instant::now();
                let bytes: Bytes = match frame {
                    Some(Ok(Message::Text(text))) => text.into_bytes(),
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Ping(bytes))) => {
                        match tokio::time::timeout(send_timeout, session.pong(&bytes)).await {
                            Ok(Ok(())) => continue,
                            Ok(Err(_)) => break Ending::Gone,
                            Err(_) => break Ending::Stalled,
                        }
                    }
                    Some(Ok(Message::Close(_))) => break Ending::Close(1000, String::new()),
                    None | Some(Err(_)) => break Ending::Gone,
                    Some(Ok(_)) => continue,
                };
                match frames::client_frame(&bytes) {
                    ClientFrame::Start(id) if active.contains(&id) => {
                        if protocol == Protocols::GraphQLWS {
                            break Ending::Close(4409, format!("Subscriber for {id} already exists"));
                        }
                        let refusal = frames::operation_error(protocol, &id, "an operation with this id is already running", "BAD_REQUEST");
                        if let Some(ending) = send!(refusal) {
                            break ending;
                        }
                        continue;
                    }
                    ClientFrame::Start(id) if active.len() >= limits.max_subscriptions => {
                        let refusal = frames::operation_error(
                            protocol,
                            &id,
                            &format!("too many subscriptions on this socket (at most {}): complete one first", limits.max_subscriptions),
                            "TOO_MANY_SUBSCRIPTIONS",
                        );
                        if let Some(ending) = send!(refusal) {
                            break ending;
                        }
                        continue;
                    }
                    ClientFrame::Start(id) => {
                        active.insert(id);
                    }
                    ClientFrame::Stop(id) => {
                        active.remove(&id);
                    }
                    ClientFrame::Other => {}
                }
                match to_graphql.try_send(bytes.to_vec()) {
                    Ok(()) => {}
                    Err(e) if e.is_full() => {
                        break Ending::Close(1008, "messages sent faster than they are handled".into());
                    }
                    Err(_) => break Ending::Gone,
                }
            }
            out = graphql.next() => match out {
                Some(WsMessage::Text(text)) => {
                    match frames::server_frame(&text) {
                        ServerFrame::Ack => {
                            if let Ok(a) = admitted_rx.try_recv() {
                                if let Some(at) = a.expires_at {
                                    expiry.as_mut().reset(at);
                                }
                                admitted = Some(a);
                            }
                        }
                        ServerFrame::Ended(id) => {
                            active.remove(&id);
                        }
                        ServerFrame::Other => {}
                    }
                    if let Some(ending) = send!(text) {
                        break ending;
                    }
                }
                Some(WsMessage::Close(code, reason)) => break Ending::Protocol(code, reason),
                None => break Ending::Close(1000, String::new()),
            },
            () = &mut init_deadline, if admitted.is_none() => {
                break Ending::Close(4408, "Connection initialisation timeout".into());
            }
            () = &mut expiry => {
                break Ending::Close(4403, "Forbidden: token expired; reconnect with a new one".into());
            }
            _ = keepalive.tick(), if admitted.is_some() => {
                if last_heard.elapsed() > limits.keepalive * SILENT_PERIODS {
                    break Ending::Close(1001, "keep-alive not answered".into());
                }
                if let Some(ending) = send!(frames::keepalive(protocol)) {
                    break ending;
                }
                match tokio::time::timeout(send_timeout, session.ping(b"")).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Ending::Gone,
                    Err(_) => break Ending::Stalled,
                }
            }
        }
    };
    let (code, reason) = match ending {
        Ending::Gone | Ending::Stalled => return ending,
        Ending::Protocol(code, reason) => {
            let code = if reason.starts_with(FORBIDDEN) {
                4403
            } else if reason.starts_with(TOO_MANY) {
                4429
            } else {
                code
            };
            (code, reason)
        }
        Ending::Close(code, reason) => {
            // The legacy protocol has no close codes of its own: it says why first.
            if protocol == Protocols::SubscriptionsTransportWS && code >= 4000 {
                if let Some(Ending::Stalled) = send!(frames::connection_error(&reason)) {
                    return Ending::Stalled;
                }
            }
            (code, reason)
        }
    };
    let close = session.close(Some(CloseReason {
        code: CloseCode::from(code),
        description: Some(reason),
    }));
    match tokio::time::timeout(send_timeout, close).await {
        Ok(_) => Ending::Gone,
        Err(_) => Ending::Stalled,
    }
}
