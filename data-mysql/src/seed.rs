//! Bulk loading of checkout rows (the demo dataset, benchmark-sized sets).

use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use domain::Checkout;

use crate::schema::checkouts;

#[derive(Insertable)]
#[diesel(table_name = checkouts)]
struct SeedRow<'a> {
    row_id: i32,
    user_email: &'a str,
    asset_upc: &'a str,
    checkout_date: chrono::NaiveDateTime,
    checkin_date: Option<chrono::NaiveDateTime>,
}

/// Rows per INSERT: well under max_allowed_packet, few round trips.
const BATCH: usize = 2_000;

/// Inserts rows with their ids, in batches; returns how many.
pub(crate) async fn insert_all(
    conn: &mut AsyncMysqlConnection,
    rows: impl Iterator<Item = Checkout>,
) -> QueryResult<usize> {
    let mut total = 0;
    let mut batch: Vec<Checkout> = Vec::with_capacity(BATCH);
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        batch.clear();
        batch.extend(rows.by_ref().take(BATCH));
        let values: Vec<SeedRow<'_>> = batch
            .iter()
            .map(|c| SeedRow {
                row_id: c.id,
                user_email: &c.user_email,
                asset_upc: &c.asset_upc,
                checkout_date: c.checkout_date.naive_utc(),
                checkin_date: c.checkin_date.map(|t| t.naive_utc()),
            })
            .collect();
        total += diesel::insert_into(checkouts::table)
            .values(&values)
            .execute(conn)
            .await?;
    }
    Ok(total)
}
