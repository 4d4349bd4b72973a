//! The transactional outbox: events written with their checkout row, read back by
//! the relay (events-kafka) in commit order and marked sent once Kafka acknowledged.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use domain::{Checkout, CheckoutEvent, EventKind, OutboxEvent};

use crate::schema::checkout_outbox;

#[derive(Insertable)]
#[diesel(table_name = checkout_outbox)]
struct NewEvent<'a> {
    event_id: &'a str,
    topic: &'a str,
    message_key: &'a str,
    payload: &'a str,
    created_at: NaiveDateTime,
}

/// Writes the event for `row` on `conn`, inside the caller's transaction.
pub(crate) async fn record(
    conn: &mut AsyncMysqlConnection,
    kind: EventKind,
    row: &Checkout,
) -> QueryResult<String> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let payload = serde_json::to_string(&CheckoutEvent::from(row))
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::insert_into(checkout_outbox::table)
        .values(&NewEvent {
            event_id: &event_id,
            topic: kind.topic(),
            message_key: &row.asset_upc,
            payload: &payload,
            created_at: Utc::now().naive_utc(),
        })
        .execute(conn)
        .await?;
    Ok(event_id)
}

/// The oldest unsent events, at most `limit`, in outbox order.
pub(crate) async fn unsent(
    conn: &mut AsyncMysqlConnection,
    limit: i64,
) -> QueryResult<Vec<OutboxEvent>> {
    use crate::schema::checkout_outbox::dsl::*;
    let rows: Vec<(i64, String, String, String, String)> = checkout_outbox
        .filter(sent_at.is_null())
        .order(id.asc())
        .limit(limit)
        .select((id, event_id, topic, message_key, payload))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, eid, t, k, p)| OutboxEvent {
            seq,
            event_id: eid,
            topic: t,
            key: k,
            payload: p,
        })
        .collect())
}

/// Marks events sent.
pub(crate) async fn mark_sent(conn: &mut AsyncMysqlConnection, seqs: &[i64]) -> QueryResult<usize> {
    use crate::schema::checkout_outbox::dsl::*;
    diesel::update(checkout_outbox.filter(id.eq_any(seqs)))
        .set(sent_at.eq(Some(Utc::now().naive_utc())))
        .execute(conn)
        .await
}
