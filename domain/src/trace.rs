//! The W3C trace context an event carries from the mutation that caused it to the
//! subscribers it reaches (SPEC section 8): written into the outbox row, then into
//! the Kafka message's headers. Plain strings here: the stores and the event
//! connector carry it without knowing OpenTelemetry; the gateway makes and reads it.

use std::future::Future;

/// The `traceparent` and `tracestate` of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceContext {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// Vendor state; empty when none.
    pub tracestate: String,
}

/// The `tracing` target of spans that exist only for traces (publications,
/// deliveries, data-source calls): the gateway's log layer never enables it, so
/// without traces such a span costs a disabled call site.
pub const SPAN_TARGET: &str = "otel";

/// Joins a span to the trace `context` names and returns the span's own context,
/// to send on in its place. The gateway, which owns OpenTelemetry, provides it;
/// connectors that make spans take it as a setting.
pub type Joiner = fn(&tracing::Span, &TraceContext) -> Option<TraceContext>;

/// The header (and column) names.
pub const TRACEPARENT: &str = "traceparent";
/// See [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// The longest `traceparent` kept (version 00 is 55 characters; later versions may
/// append fields) and `tracestate` (the W3C limit is 32 entries of at most 256
/// bytes, but vendors are told to keep it to 512).
pub const MAX_TRACEPARENT: usize = 128;
/// See [`MAX_TRACEPARENT`].
pub const MAX_TRACESTATE: usize = 512;

impl TraceContext {
    /// The context from untrusted strings (a row, a header): `None` unless the
    /// `traceparent` is plausible; an oversize `tracestate` is dropped.
    pub fn parse(traceparent: &str, tracestate: &str) -> Option<TraceContext> {
        let plausible = (55..=MAX_TRACEPARENT).contains(&traceparent.len())
            && traceparent
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-');
        plausible.then(|| TraceContext {
            traceparent: traceparent.to_string(),
            tracestate: if tracestate.len() <= MAX_TRACESTATE && tracestate.is_ascii() {
                tracestate.to_string()
            } else {
                String::new()
            },
        })
    }
}

tokio::task_local! {
    static CURRENT: Option<TraceContext>;
}

/// Runs `fut` with `context` as the one its events record.
pub async fn within<F: Future>(context: Option<TraceContext>, fut: F) -> F::Output {
    CURRENT.scope(context, fut).await
}

/// The context set by [`within`] around the running task, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parse_keeps_a_plausible_parent_and_drops_hostile_ones() {
        let ok = TraceContext::parse(PARENT, "vendor=1").expect("valid");
        assert_eq!(ok.tracestate, "vendor=1");
        assert!(TraceContext::parse("00-short", "").is_none());
        assert!(TraceContext::parse(&"0".repeat(200), "").is_none());
        assert!(TraceContext::parse(&PARENT.replace('-', "\n"), "").is_none());
        let big = TraceContext::parse(PARENT, &"a".repeat(MAX_TRACESTATE + 1)).expect("valid");
        assert_eq!(big.tracestate, "", "an oversize tracestate is dropped");
    }

    #[tokio::test]
    async fn current_is_set_only_within() {
        assert_eq!(current(), None);
        let context = TraceContext::parse(PARENT, "").expect("valid");
        let seen = within(Some(context.clone()), async { current() }).await;
        assert_eq!(seen, Some(context));
        assert_eq!(current(), None);
    }
}
