//! Subscriptions (and, for graphql-sse, any operation) over plain HTTP responses that
//! stay open: Apollo's multipart protocol (`Accept: multipart/mixed;
//! subscriptionSpec="1.0"`, what Apollo Client's HttpLink speaks) and GraphQL over
//! Server-Sent Events (graphql-sse, "distinct connections" mode). Both only turn the
//! pipeline's stream of responses into bytes; auth happened before, limits and
//! codes are the pipeline's. On drain the stream ends with the protocol's closing
//! bytes, so clients reconnect to another instance. A client that stops reading is
//! cut off (see [`Watch`]): it holds neither a connection nor the stop.
//!
//! Written here rather than taken from a crate: async-graphql's integrations have no
//! multipart subscription transport, and the framing is a few lines per protocol.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use async_graphql::Response;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::ConnectionFd;

/// How long a draining server waits for a stream's closing bytes to be taken.
const GOODBYE: Duration = Duration::from_secs(1);

/// Apollo's multipart heartbeat period (the Router's 5 s): intermediaries keep the
/// connection, clients ignore the empty part.
const MULTIPART_HEARTBEAT: Duration = Duration::from_secs(5);
/// An SSE comment this often keeps proxies from timing the stream out.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(12);

/// The streaming protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `multipart/mixed;subscriptionSpec="1.0"`, boundary `graphql`.
    Multipart,
    /// `text/event-stream` (graphql-sse distinct connections).
    Sse,
}

/// Which streaming protocol the `Accept` header asks for, if any: SSE for any
/// operation, multipart only where the client accepts the subscription spec (Apollo
/// Client also accepts `multipart/mixed` for `@defer`, which is not served).
pub fn requested(accept: &str) -> Option<Protocol> {
    let media: Vec<(String, String)> = accept
        .split(',')
        .map(|item| {
            let mut parts = item.split(';');
            let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let params = parts.collect::<Vec<_>>().join(";").to_ascii_lowercase();
            (essence, params)
        })
        .collect();
    if media.iter().any(|(m, _)| m == "text/event-stream") {
        return Some(Protocol::Sse);
    }
    media
        .iter()
        .any(|(m, p)| {
            m == "multipart/mixed" && p.replace([' ', '"'], "").contains("subscriptionspec=1.0")
        })
        .then_some(Protocol::Multipart)
}

/// What the stream carries next.
enum Frame {
    Result(Box<Response>),
    Heartbeat,
    End,
}

/// What keeps a stream's client from holding its connection or the stop.
///
/// actix has no write timeout: it polls a response body only while it can write,
/// so a client that stops reading leaves the body unpolled and the connection
/// open, and a draining server waits for it until its deadline. The heartbeat
/// wakes the body every period; a body not polled for a period plus
/// `send_timeout` has a client that stopped reading, and its TCP socket is shut
/// down (as for WebSockets). On drain, a stream whose closing bytes are not taken
/// within a second is cut off the same way.
pub struct Watch {
    /// The connection's socket (recorded at accept).
    pub tcp: Option<ConnectionFd>,
    /// Cancelled when the server drains.
    pub going_away: CancellationToken,
    /// `WS_SEND_TIMEOUT`.
    pub send_timeout: Duration,
}

/// When the body was last polled, and whether the connection still holds it.
struct Progress {
    started: Instant,
    /// Milliseconds after `started` (an atomic: written at every poll).
    polled_ms: AtomicU64,
    alive: AtomicBool,
}

impl Progress {
    fn polled_now(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.polled_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let since = Duration::from_millis(self.polled_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(since)
    }
}

/// Dropped with the body: the connection has let it go.
struct Alive(Arc<Progress>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Relaxed);
    }
}

impl Watch {
    /// Watches `progress` on the connection's own worker thread until the body is
    /// dropped; cuts the socket off when the client stalls or the drain's goodbye
    /// is not taken.
    async fn run(self, progress: Arc<Progress>, period: Duration) {
        let Some(tcp) = self.tcp else {
            return;
        };
        let patience = period + self.send_timeout;
        loop {
            let draining = tokio::select! {
                () = self.going_away.cancelled() => true,
                () = tokio::time::sleep(patience / 4) => false,
            };
            if draining {
                tokio::time::sleep(GOODBYE).await;
            }
            // No await from here to the cut: see `ConnectionFd::cut_off`.
            if !progress.alive.load(Ordering::Relaxed) {
                return;
            }
            let idle = progress.idle();
            if draining || idle > patience {
                tracing::info!(
                    draining,
                    "streaming response: the client stopped reading; cut off"
                );
                tcp.cut_off();
                return;
            }
        }
    }
}

/// The response streaming `responses` in `protocol`, ended early by a drain.
pub fn respond(
    protocol: Protocol,
    responses: BoxStream<'static, Response>,
    watch: Watch,
) -> HttpResponse {
    let period = match protocol {
        Protocol::Multipart => MULTIPART_HEARTBEAT,
        Protocol::Sse => SSE_KEEP_ALIVE,
    };
    let going_away = watch.going_away.clone();
    let mut beat = tokio::time::interval(period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let frames = futures::stream::unfold(Some((responses, beat, going_away)), |state| async move {
        let (mut responses, mut beat, going_away) = state?;
        let frame = tokio::select! {
            biased;
            () = going_away.cancelled() => Frame::End,
            next = responses.next() => match next {
                Some(response) => Frame::Result(Box::new(response)),
                None => Frame::End,
            },
            _ = beat.tick() => Frame::Heartbeat,
        };
        let rest = match frame {
            Frame::End => None,
            _ => Some((responses, beat, going_away)),
        };
        Some((frame, rest))
    });
    let progress = Arc::new(Progress {
        started: Instant::now(),
        polled_ms: AtomicU64::new(0),
        alive: AtomicBool::new(true),
    });
    // On this worker's own thread, like the connection (see `Watch::run`).
    actix_web::rt::spawn(watch.run(Arc::clone(&progress), period));
    let alive = Alive(progress);
    let mut frames = Box::pin(frames);
    let polled = futures::stream::poll_fn(move |cx| {
        alive.0.polled_now();
        frames.poll_next_unpin(cx)
    });
    let bytes = polled.map(move |frame| Ok::<_, std::convert::Infallible>(encode(protocol, frame)));
    let mut builder = HttpResponse::Ok();
    builder.insert_header(("cache-control", "no-cache"));
    match protocol {
        Protocol::Multipart => {
            builder.content_type(r#"multipart/mixed;boundary="graphql";subscriptionSpec="1.0""#)
        }
        Protocol::Sse => builder
            .content_type("text/event-stream; charset=utf-8")
            .insert_header(("x-accel-buffering", "no")),
    };
    builder.streaming(bytes)
}

fn encode(protocol: Protocol, frame: Frame) -> Bytes {
    let json = |value: &serde_json::Value| value.to_string();
    match (protocol, frame) {
        (Protocol::Multipart, Frame::Result(response)) => {
            let payload = serde_json::to_value(&response).unwrap_or(serde_json::Value::Null);
            part(&json(&serde_json::json!({ "payload": payload })))
        }
        (Protocol::Multipart, Frame::Heartbeat) => part("{}"),
        (Protocol::Multipart, Frame::End) => Bytes::from_static(b"\r\n--graphql--\r\n"),
        (Protocol::Sse, Frame::Result(response)) => {
            let data = serde_json::to_string(&response).unwrap_or_else(|_| "null".into());
            Bytes::from(format!("event: next\ndata: {data}\n\n"))
        }
        (Protocol::Sse, Frame::Heartbeat) => Bytes::from_static(b":\n\n"),
        (Protocol::Sse, Frame::End) => Bytes::from_static(b"event: complete\ndata:\n\n"),
    }
}

/// One multipart part with a JSON body.
fn part(body: &str) -> Bytes {
    Bytes::from(format!(
        "\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_header_chooses_the_protocol() {
        assert_eq!(
            requested(
                r#"multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json"#
            ),
            Some(Protocol::Multipart)
        );
        assert_eq!(
            requested(
                r#"multipart/mixed; boundary="graphql"; subscriptionSpec="1.0", application/json"#
            ),
            Some(Protocol::Multipart)
        );
        assert_eq!(
            requested("multipart/mixed;deferSpec=20220824,application/json"),
            None,
            "@defer is not served"
        );
        assert_eq!(requested("text/event-stream"), Some(Protocol::Sse));
        assert_eq!(requested("application/json"), None);
    }

    #[test]
    fn frames_are_framed_per_protocol() {
        let r = Response::new(async_graphql::value!({"a": 1}));
        assert_eq!(
            encode(Protocol::Multipart, Frame::Result(Box::new(r))),
            "\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{\"payload\":{\"data\":{\"a\":1}}}"
        );
        assert_eq!(
            encode(Protocol::Multipart, Frame::End),
            "\r\n--graphql--\r\n"
        );
        let r = Response::new(async_graphql::value!({"a": 1}));
        assert_eq!(
            encode(Protocol::Sse, Frame::Result(Box::new(r))),
            "event: next\ndata: {\"data\":{\"a\":1}}\n\n"
        );
        assert_eq!(
            encode(Protocol::Sse, Frame::End),
            "event: complete\ndata:\n\n"
        );
    }
}
