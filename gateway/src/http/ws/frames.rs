//! The little of the two subscription protocols the socket loop reads and writes
//! itself: message types and ids (to count subscriptions and see the ack), and the
//! messages async-graphql does not send (keep-alives, refusals).
//!
//! async-graphql runs the protocols; it has no `connection_init` timeout, no
//! keep-alive messages, no limit on subscriptions per socket and no duplicate-id
//! check, which the SPEC's limits need, so the loop looks at the frames around it.

use std::borrow::Cow;

use async_graphql::http::WebSocketProtocols as Protocols;
use serde::Deserialize;

/// A client message's type and id (the payload is skipped).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
}

/// What a client message does to the socket's subscriptions.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// `subscribe` (graphql-transport-ws) or `start` (legacy): an operation starts.
    Start(String),
    /// `complete` or `stop`: the client ends one.
    Stop(String),
    /// Anything else (including what async-graphql will reject).
    Other,
}

/// Reads a client message's type and id.
pub fn client_frame(bytes: &[u8]) -> ClientFrame {
    let Ok(envelope) = serde_json::from_slice::<Envelope<'_>>(bytes) else {
        return ClientFrame::Other;
    };
    match (envelope.kind.as_ref(), envelope.id) {
        ("subscribe" | "start", Some(id)) => ClientFrame::Start(id.into_owned()),
        ("complete" | "stop", Some(id)) => ClientFrame::Stop(id.into_owned()),
        _ => ClientFrame::Other,
    }
}

/// What a server message (from async-graphql) means to the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// `connection_ack`: the socket is open.
    Ack,
    /// `complete` or `error` for an id: that operation is over.
    Ended(String),
    /// Results and the rest.
    Other,
}

/// Reads a server message's type. async-graphql writes `type` first, so results
/// (most messages, possibly large) are told apart by a prefix without parsing.
pub fn server_frame(text: &str) -> ServerFrame {
    if text.starts_with(r#"{"type":"connection_ack""#) {
        return ServerFrame::Ack;
    }
    if !(text.starts_with(r#"{"type":"complete""#) || text.starts_with(r#"{"type":"error""#)) {
        return ServerFrame::Other;
    }
    match serde_json::from_str::<Envelope<'_>>(text) {
        Ok(Envelope { id: Some(id), .. }) => ServerFrame::Ended(id.into_owned()),
        _ => ServerFrame::Other,
    }
}

/// The keep-alive message of `protocol`: `ka` (legacy; Apollo's
/// subscriptions-transport-ws client closes a socket that stops sending it) or a
/// `ping` (graphql-transport-ws; the client answers `pong`).
pub fn keepalive(protocol: Protocols) -> &'static str {
    match protocol {
        Protocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
        Protocols::GraphQLWS => r#"{"type":"ping"}"#,
    }
}

/// An operation refused with `message` and `code`, in `protocol`'s `error` shape
/// (a list of GraphQL errors; the legacy protocol's one error object).
pub fn operation_error(protocol: Protocols, id: &str, message: &str, code: &str) -> String {
    let error = serde_json::json!({ "message": message, "extensions": { "code": code } });
    let payload = match protocol {
        Protocols::SubscriptionsTransportWS => error,
        Protocols::GraphQLWS => serde_json::Value::Array(vec![error]),
    };
    serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string()
}

/// The legacy protocol's `connection_error` (it has no close codes of its own).
pub fn connection_error(message: &str) -> String {
    serde_json::json!({ "type": "connection_error", "payload": { "message": message } }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames() {
        let f = |s: &str| client_frame(s.as_bytes());
        assert_eq!(
            f(r#"{"id":"1","type":"subscribe","payload":{"query":"{a}"}}"#),
            ClientFrame::Start("1".into())
        );
        assert_eq!(
            f(r#"{"type":"start","id":"x\"y"}"#),
            ClientFrame::Start("x\"y".into())
        );
        assert_eq!(
            f(r#"{"type":"stop","id":"2"}"#),
            ClientFrame::Stop("2".into())
        );
        assert_eq!(
            f(r#"{"type":"complete","id":"2"}"#),
            ClientFrame::Stop("2".into())
        );
        assert_eq!(f(r#"{"type":"connection_init"}"#), ClientFrame::Other);
        assert_eq!(f(r#"{"type":"subscribe"}"#), ClientFrame::Other);
        assert_eq!(f("not json"), ClientFrame::Other);
    }

    #[test]
    fn server_frames() {
        assert_eq!(
            server_frame(r#"{"type":"connection_ack"}"#),
            ServerFrame::Ack
        );
        assert_eq!(
            server_frame(r#"{"type":"complete","id":"7"}"#),
            ServerFrame::Ended("7".into())
        );
        assert_eq!(
            server_frame(r#"{"type":"error","id":"8","payload":[]}"#),
            ServerFrame::Ended("8".into())
        );
        assert_eq!(
            server_frame(r#"{"type":"next","id":"7","payload":{"data":{"type":"complete"}}}"#),
            ServerFrame::Other
        );
    }

    #[test]
    fn refusals_take_each_protocol_shape() {
        let legacy: serde_json::Value = serde_json::from_str(&operation_error(
            Protocols::SubscriptionsTransportWS,
            "1",
            "m",
            "C",
        ))
        .unwrap();
        assert_eq!(legacy["payload"]["extensions"]["code"], "C");
        let modern: serde_json::Value =
            serde_json::from_str(&operation_error(Protocols::GraphQLWS, "1", "m", "C")).unwrap();
        assert_eq!(modern["payload"][0]["message"], "m");
        assert_eq!(modern["id"], "1");
    }
}
