//! `type Subscription`: live checkout events; `after` replays what a reconnecting
//! client missed (where the event source keeps history).

use async_graphql::{Context, Result, Subscription, ID};
use auth_jwt::Role;
use domain::EventKind;
use futures::{Stream, StreamExt};

use super::context::stores;
use super::errors::{coded, too_slow_message, SUBSCRIBER_TOO_SLOW};
use super::guards::RoleGuard;
use super::loaders::LoaderScope;
use super::types::GqlCheckout;
use crate::events::{ResumeError, Subscribed};
use crate::telemetry;

/// The root subscription.
pub struct SubscriptionRoot;

async fn stream_of(
    ctx: &Context<'_>,
    after: Option<ID>,
    kinds: &'static [EventKind],
) -> Result<impl Stream<Item = Result<Option<GqlCheckout>>>> {
    let Subscribed {
        missed,
        live,
        covered,
    } = stores(ctx)?
        .events
        .subscribe(kinds, after.as_ref().map(|id| id.as_str()))
        .await
        .map_err(|e| {
            let code = match e {
                ResumeError::Unknown(_) => "BAD_USER_INPUT",
                ResumeError::Unavailable => "SERVICE_UNAVAILABLE",
                ResumeError::TooLong(_) => "REPLAY_TOO_LONG",
            };
            coded(e.to_string(), code)
        })?;
    // Each event resolves with fresh loaders (its patron as it is now).
    let scope = ctx.data::<LoaderScope>()?.clone();
    let live = tokio_stream_from(live).filter(move |item| {
        let fresh = !matches!(item, Ok(d) if covered.covers(d));
        async move { fresh }
    });
    let missed = futures::stream::iter(missed.into_iter().map(|d| (true, Ok(d))));
    let live = live.map(|item| (false, item));
    Ok(missed.chain(live).filter_map(move |(replayed, item)| {
        let scope = scope.clone();
        async move {
            match item {
                Ok(d) if kinds.contains(&d.kind) => {
                    let row = d.event.to_checkout()?;
                    let span = delivery_span(&d, replayed);
                    scope.renew(telemetry::context_of(&span));
                    Some(Ok(Some(GqlCheckout {
                        event_id: d.event_id.clone(),
                        ..GqlCheckout::from(row)
                    })))
                }
                Ok(_) => None,
                Err(behind) => Some(Err(coded(too_slow_message(behind), SUBSCRIBER_TOO_SLOW))),
            }
        }
    }))
}

/// The span of one event's delivery to one subscriber: a child of the span that
/// wrote the event (the mutation's, on whichever instance) when live, linked to it
/// when replayed (that trace ended long ago). Its batched loads are its children.
fn delivery_span(d: &events_kafka::Delivered, replayed: bool) -> tracing::Span {
    if d.trace.is_none() || !telemetry::enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: telemetry::TARGET,
        parent: None,
        "subscription delivery",
        otel.name = %format_args!("deliver {}", d.kind.topic()),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = d.kind.topic(),
        messaging.message.id = d.event_id.as_deref().unwrap_or_default(),
        messaging.kafka.offset = d.offset,
        replayed,
    );
    telemetry::join(&span, d.trace.as_ref(), !replayed);
    span
}

/// Turns the broadcast receiver into a stream that ends after reporting a lag (how
/// many events the subscriber fell behind).
fn tokio_stream_from(
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<events_kafka::Delivered>>,
) -> impl Stream<Item = std::result::Result<std::sync::Arc<events_kafka::Delivered>, u64>> {
    futures::stream::unfold(Some(rx), |state| async move {
        let mut rx = state?;
        match rx.recv().await {
            Ok(d) => Some((Ok(d), Some(rx))),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some((Err(n), None)),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
}

const BOTH: &[EventKind] = &[EventKind::Checkout, EventKind::Checkin];
const CHECKOUT: &[EventKind] = &[EventKind::Checkout];
const CHECKIN: &[EventKind] = &[EventKind::Checkin];

#[Subscription]
impl SubscriptionRoot {
    /// USER. Checkouts and checkins.
    #[graphql(guard = "RoleGuard::new(Role::User)")]
    async fn checkout_status_update(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = Result<Option<GqlCheckout>>>> {
        stream_of(ctx, after, BOTH).await
    }

    /// USER. Topic `checkout`.
    #[graphql(guard = "RoleGuard::new(Role::User)")]
    async fn checkout(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = Result<Option<GqlCheckout>>>> {
        stream_of(ctx, after, CHECKOUT).await
    }

    /// USER. Topic `checkin`.
    #[graphql(guard = "RoleGuard::new(Role::User)")]
    async fn checkin(
        &self,
        ctx: &Context<'_>,
        after: Option<ID>,
    ) -> Result<impl Stream<Item = Result<Option<GqlCheckout>>>> {
        stream_of(ctx, after, CHECKIN).await
    }
}
