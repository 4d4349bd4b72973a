//! `MysqlCheckouts`: the domain's `CheckoutStore` on the legacy table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use domain::{
    Checkout, CheckoutError, CheckoutFilter, CheckoutStore, EventKind, Lease, Outbox,
    OutboxBacklog, OutboxEvent, Sort, SortField, StoreError,
};

use crate::error::is_lock_conflict;
use crate::lease::RelayLease;
use crate::outbox;
use crate::pool::MysqlPool;
use crate::schema::checkouts::{self, dsl};
use crate::{migrate, Error, MysqlConfig};

/// The checkouts connector. Cheap to share behind an `Arc`; a `Closeable`.
pub struct MysqlCheckouts {
    pub(crate) pool: MysqlPool,
    lease: RelayLease,
    drain_timeout: std::time::Duration,
    /// Mutations run again after a deadlock or lock-wait timeout (a metric).
    lock_retries: AtomicU64,
    /// The TLS cipher the first session negotiated, `None` without TLS.
    tls_cipher: Option<String>,
}

/// Attempts of one mutation when other transactions' locks get in its way. Different
/// copies do not contend by design (see `check_in`); what remains is rare and short,
/// and InnoDB has rolled the loser back, so running it again is safe.
const LOCK_ATTEMPTS: u32 = 8;

/// Waits a random time before attempt `attempt` (full jitter, doubling from 2 ms up
/// to 64 ms), so the transactions that collided do not collide again.
async fn lock_backoff(attempt: u32) {
    let cap_ms = 2u64 << attempt.min(5);
    let wait = std::time::Duration::from_micros(fastrand::u64(0..=cap_ms * 1000));
    tokio::time::sleep(wait).await;
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = checkouts, check_for_backend(diesel::mysql::Mysql))]
struct Row {
    row_id: i32,
    user_email: String,
    asset_upc: String,
    checkout_date: NaiveDateTime,
    checkin_date: Option<NaiveDateTime>,
}

impl From<Row> for Checkout {
    fn from(r: Row) -> Self {
        Checkout {
            id: r.row_id,
            user_email: r.user_email,
            asset_upc: r.asset_upc,
            checkout_date: r.checkout_date.and_utc(),
            checkin_date: r.checkin_date.map(|t| t.and_utc()),
        }
    }
}

impl MysqlCheckouts {
    /// Runs pending migrations, then opens the pool. Fails when the server cannot be
    /// reached: the gateway decides whether that is fatal.
    pub async fn connect(config: &MysqlConfig) -> Result<Self, Error> {
        let migrated = migrate::run(config).await?;
        let config = &migrated.config;
        let session = migrated.session;
        tracing::info!(
            server = ?session.server,
            tls_cipher = session.tls_cipher.as_deref().unwrap_or("none"),
            migrations = ?migrated.applied,
            "mysql: connected, schema up to date"
        );
        Ok(MysqlCheckouts {
            pool: MysqlPool::connect(config).await?,
            lease: RelayLease::new(config)?,
            drain_timeout: config.drain_timeout,
            lock_retries: AtomicU64::new(0),
            tls_cipher: session.tls_cipher,
        })
    }

    /// The TLS cipher the connector's sessions use (`None`: no TLS).
    pub fn tls_cipher(&self) -> Option<&str> {
        self.tls_cipher.as_deref()
    }

    /// How many times a mutation ran again after a deadlock or lock-wait timeout.
    pub fn lock_retries(&self) -> u64 {
        AtomicU64::load(&self.lock_retries, Ordering::Relaxed)
    }

    /// (open, idle) pooled connections, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        self.pool.state()
    }

    /// One round trip to the server: for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let result = conn.batch_execute("SELECT 1").await;
        conn.check(result)
    }

    async fn load(
        &self,
        query: checkouts::BoxedQuery<'_, diesel::mysql::Mysql>,
    ) -> Result<Vec<Checkout>, StoreError> {
        let mut conn = self.pool.get().await?;
        let result = query.select(Row::as_select()).load(&mut conn).await;
        let rows: Vec<Row> = conn.check(result)?;
        Ok(rows.into_iter().map(Checkout::from).collect())
    }
}

fn filtered(filter: &CheckoutFilter) -> checkouts::BoxedQuery<'_, diesel::mysql::Mysql> {
    let mut q = checkouts::table.into_boxed();
    if let Some(email) = &filter.user_email {
        q = q.filter(dsl::user_email.eq(email));
    }
    if let Some(upc) = &filter.asset_upc {
        q = q.filter(dsl::asset_upc.eq(upc));
    }
    q
}

fn group_by<K: Fn(&Checkout) -> &String>(
    rows: Vec<Checkout>,
    key: K,
) -> HashMap<String, Vec<Checkout>> {
    let mut map: HashMap<String, Vec<Checkout>> = HashMap::new();
    for row in rows {
        map.entry(key(&row).clone()).or_default().push(row);
    }
    map
}

fn now_seconds() -> NaiveDateTime {
    // DATETIME has whole seconds: truncate so the returned row equals the stored one.
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0)
        .unwrap_or(now)
        .naive_utc()
}

#[async_trait]
impl CheckoutStore for MysqlCheckouts {
    async fn list(
        &self,
        filter: &CheckoutFilter,
        after: Option<DateTime<Utc>>,
        limit: Option<u32>,
    ) -> Result<Vec<Checkout>, StoreError> {
        let mut q = filtered(filter);
        if let Some(t) = after {
            q = q.filter(dsl::checkout_date.gt(t.naive_utc()));
        }
        q = q.order((dsl::checkout_date.asc(), dsl::row_id.asc()));
        if let Some(n) = limit {
            q = q.limit(i64::from(n));
        }
        self.load(q).await
    }

    async fn list_sorted(
        &self,
        filter: &CheckoutFilter,
        sort: &[Sort],
        limit: u32,
    ) -> Result<Vec<Checkout>, StoreError> {
        let mut q = filtered(filter).order(dsl::row_id.asc());
        // `order` replaces, `then_order_by` appends: build the key list, then id last.
        if let Some(first) = sort.first() {
            q = filtered(filter);
            q = match (first.field, first.descending) {
                (SortField::UserEmail, false) => q.order(dsl::user_email.asc()),
                (SortField::UserEmail, true) => q.order(dsl::user_email.desc()),
                (SortField::AssetUpc, false) => q.order(dsl::asset_upc.asc()),
                (SortField::AssetUpc, true) => q.order(dsl::asset_upc.desc()),
                (SortField::CheckinDate, false) => q.order(dsl::checkin_date.asc()),
                (SortField::CheckinDate, true) => q.order(dsl::checkin_date.desc()),
                (SortField::CheckoutDate, false) => q.order(dsl::checkout_date.asc()),
                (SortField::CheckoutDate, true) => q.order(dsl::checkout_date.desc()),
            };
            for s in &sort[1..] {
                q = match (s.field, s.descending) {
                    (SortField::UserEmail, false) => q.then_order_by(dsl::user_email.asc()),
                    (SortField::UserEmail, true) => q.then_order_by(dsl::user_email.desc()),
                    (SortField::AssetUpc, false) => q.then_order_by(dsl::asset_upc.asc()),
                    (SortField::AssetUpc, true) => q.then_order_by(dsl::asset_upc.desc()),
                    (SortField::CheckinDate, false) => q.then_order_by(dsl::checkin_date.asc()),
                    (SortField::CheckinDate, true) => q.then_order_by(dsl::checkin_date.desc()),
                    (SortField::CheckoutDate, false) => q.then_order_by(dsl::checkout_date.asc()),
                    (SortField::CheckoutDate, true) => q.then_order_by(dsl::checkout_date.desc()),
                };
            }
            q = q.then_order_by(dsl::row_id.asc());
        }
        self.load(q.limit(i64::from(limit))).await
    }

    async fn by_id(&self, id: i32) -> Result<Option<Checkout>, StoreError> {
        let q = checkouts::table.filter(dsl::row_id.eq(id)).into_boxed();
        Ok(self.load(q).await?.into_iter().next())
    }

    async fn by_assets(
        &self,
        upcs: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        if upcs.is_empty() {
            return Ok(HashMap::new());
        }
        // Open checkouts come straight from the one-open-per-copy unique index.
        let q = if open_only {
            checkouts::table
                .filter(dsl::open_asset_upc.eq_any(upcs))
                .into_boxed()
        } else {
            checkouts::table
                .filter(dsl::asset_upc.eq_any(upcs))
                .into_boxed()
        };
        let q = q.order((dsl::asset_upc, dsl::checkout_date, dsl::row_id));
        Ok(group_by(self.load(q).await?, |c| &c.asset_upc))
    }

    async fn by_emails(
        &self,
        emails: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        if emails.is_empty() {
            return Ok(HashMap::new());
        }
        let mut q = checkouts::table
            .filter(dsl::user_email.eq_any(emails))
            .into_boxed();
        if open_only {
            q = q.filter(dsl::checkin_date.is_null());
        }
        let q = q.order((dsl::user_email, dsl::checkout_date, dsl::row_id));
        Ok(group_by(self.load(q).await?, |c| &c.user_email))
    }

    async fn check_out(
        &self,
        asset_upc: &str,
        user_email: &str,
    ) -> Result<Checkout, CheckoutError> {
        let mut conn = self.pool.get().await?;
        let mut attempt = 0;
        loop {
            let checkout_date = now_seconds();
            let result = conn
                .transaction::<_, DieselError, _>(async |conn| {
                    diesel::insert_into(checkouts::table)
                        .values((
                            dsl::user_email.eq(user_email),
                            dsl::asset_upc.eq(asset_upc),
                            dsl::checkout_date.eq(checkout_date),
                        ))
                        .execute(conn)
                        .await?;
                    let id: u64 = diesel::select(diesel::dsl::sql::<
                        diesel::sql_types::Unsigned<diesel::sql_types::BigInt>,
                    >("LAST_INSERT_ID()"))
                    .get_result(conn)
                    .await?;
                    // The row as stored: every column is one we just wrote.
                    let row = Checkout {
                        id: i32::try_from(id)
                            .map_err(|e| DieselError::DeserializationError(Box::new(e)))?,
                        user_email: user_email.to_string(),
                        asset_upc: asset_upc.to_string(),
                        checkout_date: checkout_date.and_utc(),
                        checkin_date: None,
                    };
                    outbox::record(conn, EventKind::Checkout, &row).await?;
                    Ok(row)
                })
                .await;
            match result {
                Ok(row) => return Ok(row),
                // The only unique key an insert can hit is the one-open-checkout guard.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    return Err(CheckoutError::AlreadyCheckedOut)
                }
                Err(e) if is_lock_conflict(&e) && attempt + 1 < LOCK_ATTEMPTS => {
                    self.lock_retries.fetch_add(1, Ordering::Relaxed);
                    lock_backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(CheckoutError::Store(conn.error(e))),
            }
        }
    }

    /// Finds the open row with a plain read, then closes it by primary key only if it
    /// is still open. No locking read touches the one-open-per-copy index (whose gap
    /// locks, on a column NULL for almost every row, made check-ins of one copy
    /// deadlock with checkouts of others); the conditional update is what keeps two
    /// check-ins of one copy from both succeeding.
    async fn check_in(&self, asset_upc: &str) -> Result<Checkout, CheckoutError> {
        let mut conn = self.pool.get().await?;
        let mut attempt = 0;
        loop {
            let open: Option<Row> = {
                let result = checkouts::table
                    .filter(dsl::open_asset_upc.eq(asset_upc))
                    .select(Row::as_select())
                    .first(&mut *conn)
                    .await
                    .optional();
                conn.check(result)?
            };
            let Some(open) = open else {
                return Err(CheckoutError::NoOpenCheckout);
            };
            let now = now_seconds();
            let mut row = Checkout::from(open);
            row.checkin_date = Some(now.and_utc());
            let result = conn
                .transaction::<_, DieselError, _>(async |conn| {
                    let closed = diesel::update(
                        checkouts::table
                            .find(row.id)
                            .filter(dsl::checkin_date.is_null()),
                    )
                    .set(dsl::checkin_date.eq(Some(now)))
                    .execute(conn)
                    .await?;
                    if closed == 0 {
                        return Ok(false); // checked in by another request meanwhile
                    }
                    outbox::record(conn, EventKind::Checkin, &row).await?;
                    Ok(true)
                })
                .await;
            match result {
                Ok(true) => return Ok(row),
                // Look again: no open checkout now, or a newer one.
                Ok(false) if attempt + 1 < LOCK_ATTEMPTS => attempt += 1,
                Ok(false) => return Err(CheckoutError::NoOpenCheckout),
                Err(e) if is_lock_conflict(&e) && attempt + 1 < LOCK_ATTEMPTS => {
                    self.lock_retries.fetch_add(1, Ordering::Relaxed);
                    lock_backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(CheckoutError::Store(conn.error(e))),
            }
        }
    }
}

#[async_trait]
impl Outbox for MysqlCheckouts {
    async fn unsent(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut conn = self.pool.get().await?;
        let result = outbox::unsent(&mut conn, i64::from(limit)).await;
        conn.check(result)
    }

    async fn mark_sent(&self, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let result = outbox::mark_sent(&mut conn, seqs).await;
        conn.check(result).map(drop)
    }

    async fn hold_lease(&self) -> Result<Lease, StoreError> {
        self.lease.hold().await
    }

    async fn release_lease(&self) {
        self.lease.release().await;
    }

    async fn purge_sent(&self, sent_before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await?;
        let result = outbox::purge_sent(&mut conn, sent_before.naive_utc(), i64::from(limit)).await;
        conn.check(result).map(|n| n as u64)
    }

    async fn backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let mut conn = self.pool.get().await?;
        let result = outbox::backlog(&mut conn).await;
        conn.check(result).map(|(events, oldest)| OutboxBacklog {
            events: events.max(0) as u64,
            oldest: oldest.map(|t| t.and_utc()),
        })
    }
}

#[async_trait]
impl shutdown::Closeable for MysqlCheckouts {
    fn name(&self) -> &str {
        "mysql-pool"
    }

    /// Frees the relay lease (if the relay has not), then drains and closes the pool.
    async fn close(&self) -> Result<(), shutdown::BoxError> {
        if tokio::time::timeout(self.drain_timeout, self.lease.release())
            .await
            .is_err()
        {
            tracing::warn!("mysql: the relay lease's connection did not quit in time");
        }
        self.pool.close().await.map_err(Into::into)
    }
}
