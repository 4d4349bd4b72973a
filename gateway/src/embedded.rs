//! Embedded, in-process stores seeded with the demo dataset: the gateway serves the
//! whole API with no server installed (development only; never in production).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    Book, CatalogStore, Checkout, CheckoutError, CheckoutEvent, CheckoutFilter, CheckoutStore,
    EventKind, Patron, SnapshotPage, SnapshotStore, Sort, SortField, StoreError,
};
use events_kafka::{Covered, Delivered};
use tokio::sync::broadcast;

use crate::events::{ResumeError, Subscribed};

/// Checkouts in memory; events go to the local bus after each change.
pub struct MemoryCheckouts {
    rows: RwLock<Vec<Checkout>>,
    bus: Arc<LocalBus>,
}

impl MemoryCheckouts {
    /// The demo checkouts.
    pub fn demo(bus: Arc<LocalBus>) -> Self {
        MemoryCheckouts {
            rows: RwLock::new(demo_data::checkouts(demo_data::Scale::default()).collect()),
            bus,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Checkout>> {
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn matches(c: &Checkout, f: &CheckoutFilter) -> bool {
    f.user_email.as_ref().is_none_or(|e| &c.user_email == e)
        && f.asset_upc.as_ref().is_none_or(|u| &c.asset_upc == u)
}

fn grouped(
    rows: &[Checkout],
    keys: &[String],
    open_only: bool,
    key: impl Fn(&Checkout) -> &String,
) -> HashMap<String, Vec<Checkout>> {
    let mut out: HashMap<String, Vec<Checkout>> = HashMap::new();
    for c in rows {
        if keys.contains(key(c)) && (!open_only || c.is_open()) {
            out.entry(key(c).clone()).or_default().push(c.clone());
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|c| (c.checkout_date, c.id));
    }
    out
}

fn now_seconds() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

#[async_trait]
impl CheckoutStore for MemoryCheckouts {
    async fn list(
        &self,
        filter: &CheckoutFilter,
        after: Option<DateTime<Utc>>,
        limit: Option<u32>,
    ) -> Result<Vec<Checkout>, StoreError> {
        let mut rows: Vec<Checkout> = self
            .read()
            .iter()
            .filter(|c| matches(c, filter) && after.is_none_or(|t| c.checkout_date > t))
            .cloned()
            .collect();
        rows.sort_by_key(|c| (c.checkout_date, c.id));
        rows.truncate(limit.map_or(usize::MAX, |n| n as usize));
        Ok(rows)
    }

    async fn list_sorted(
        &self,
        filter: &CheckoutFilter,
        sort: &[Sort],
        limit: u32,
    ) -> Result<Vec<Checkout>, StoreError> {
        let mut rows: Vec<Checkout> = self
            .read()
            .iter()
            .filter(|c| matches(c, filter))
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            sort.iter()
                .map(|s| {
                    let o = match s.field {
                        SortField::UserEmail => a.user_email.cmp(&b.user_email),
                        SortField::AssetUpc => a.asset_upc.cmp(&b.asset_upc),
                        // NULLs first ascending, as MySQL orders them.
                        SortField::CheckinDate => a.checkin_date.cmp(&b.checkin_date),
                        SortField::CheckoutDate => a.checkout_date.cmp(&b.checkout_date),
                    };
                    if s.descending {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.id.cmp(&b.id))
        });
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn by_id(&self, id: i32) -> Result<Option<Checkout>, StoreError> {
        Ok(self.read().iter().find(|c| c.id == id).cloned())
    }

    async fn by_assets(
        &self,
        upcs: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        Ok(grouped(&self.read(), upcs, open_only, |c| &c.asset_upc))
    }

    async fn by_emails(
        &self,
        emails: &[String],
        open_only: bool,
    ) -> Result<HashMap<String, Vec<Checkout>>, StoreError> {
        Ok(grouped(&self.read(), emails, open_only, |c| &c.user_email))
    }

    async fn check_out(
        &self,
        asset_upc: &str,
        user_email: &str,
    ) -> Result<Checkout, CheckoutError> {
        let row = {
            let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
            if rows.iter().any(|c| c.asset_upc == asset_upc && c.is_open()) {
                return Err(CheckoutError::AlreadyCheckedOut);
            }
            let row = Checkout {
                id: rows.iter().map(|c| c.id).max().unwrap_or(0) + 1,
                user_email: user_email.to_string(),
                asset_upc: asset_upc.to_string(),
                checkout_date: now_seconds(),
                checkin_date: None,
            };
            rows.push(row.clone());
            row
        };
        self.bus.publish(EventKind::Checkout, &row);
        Ok(row)
    }

    async fn check_in(&self, asset_upc: &str) -> Result<Checkout, CheckoutError> {
        let row = {
            let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
            let open = rows
                .iter_mut()
                .find(|c| c.asset_upc == asset_upc && c.is_open())
                .ok_or(CheckoutError::NoOpenCheckout)?;
            open.checkin_date = Some(now_seconds());
            open.clone()
        };
        self.bus.publish(EventKind::Checkin, &row);
        Ok(row)
    }
}

/// Patrons and books in memory (read-only).
pub struct MemoryCatalog {
    patrons: Vec<Patron>,
    books: Vec<Book>,
}

impl MemoryCatalog {
    /// The demo catalog.
    pub fn demo() -> Self {
        MemoryCatalog {
            patrons: demo_data::patrons(),
            books: demo_data::books(),
        }
    }
}

#[async_trait]
impl CatalogStore for MemoryCatalog {
    async fn patron_by_id(&self, id: &str) -> Result<Option<Patron>, StoreError> {
        Ok(self.patrons.iter().find(|p| p.id == id).cloned())
    }

    async fn patron_by_email(&self, email: &str) -> Result<Option<Patron>, StoreError> {
        Ok(self
            .patrons
            .iter()
            .find(|p| p.email.as_deref() == Some(email))
            .cloned())
    }

    async fn patrons(
        &self,
        year_registered: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Vec<Patron>, StoreError> {
        Ok(self
            .patrons
            .iter()
            .filter(|p| year_registered.is_none_or(|y| p.year_registered == Some(y)))
            .take(limit.map_or(usize::MAX, |n| n as usize))
            .cloned()
            .collect())
    }

    async fn patrons_by_emails(
        &self,
        emails: &[String],
    ) -> Result<HashMap<String, Patron>, StoreError> {
        Ok(self
            .patrons
            .iter()
            .filter_map(|p| {
                let e = p.email.as_ref()?;
                emails.contains(e).then(|| (e.clone(), p.clone()))
            })
            .collect())
    }

    async fn book_by_id(&self, id: &str) -> Result<Option<Book>, StoreError> {
        Ok(self.books.iter().find(|b| b.id == id).cloned())
    }

    async fn book_by_isbn(&self, isbn13: &str) -> Result<Option<Book>, StoreError> {
        Ok(self.books.iter().find(|b| b.isbn13 == isbn13).cloned())
    }

    async fn books(&self) -> Result<Vec<Book>, StoreError> {
        Ok(self.books.clone())
    }

    async fn books_by_upcs(&self, upcs: &[String]) -> Result<HashMap<String, Book>, StoreError> {
        let mut out = HashMap::new();
        for b in &self.books {
            for c in &b.copies {
                if upcs.contains(&c.library_upc) {
                    out.insert(c.library_upc.clone(), b.clone());
                }
            }
        }
        Ok(out)
    }
}

/// One stored snapshot: owner, creation time, rows.
type Snapshot = (String, Instant, Vec<Checkout>);

/// `checkoutFeed` snapshots in memory, expiring after the TTL.
pub struct MemorySnapshots {
    ttl: Duration,
    map: Mutex<HashMap<String, Snapshot>>,
}

impl MemorySnapshots {
    /// Snapshots that live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        MemorySnapshots {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn save(&self, query_id: &str, owner: &str, rows: &[Checkout]) -> Result<(), StoreError> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        map.retain(|_, (_, created, _)| created.elapsed() < ttl);
        map.insert(
            query_id.to_string(),
            (owner.to_string(), Instant::now(), rows.to_vec()),
        );
        Ok(())
    }

    async fn page(
        &self,
        query_id: &str,
        owner: &str,
        after_id: Option<i32>,
        limit: Option<u32>,
    ) -> Result<Option<SnapshotPage>, StoreError> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some((who, created, rows)) = map.get(query_id) else {
            return Ok(None);
        };
        if who != owner || created.elapsed() >= self.ttl {
            return Ok(None);
        }
        let start = domain::page_start(rows.iter().map(|c| c.id), after_id);
        let range = domain::page_range(start, limit, rows.len());
        Ok(Some(SnapshotPage {
            entries: rows[range].to_vec(),
            start,
            total: rows.len(),
            age: created.elapsed(),
        }))
    }
}

/// Subscribers this far behind are dropped with an error.
const BUS_CAPACITY: usize = 1024;
/// Events kept for `after` replays.
const HISTORY: usize = 10_000;

/// The in-process event bus of embedded mode: publish after commit, fan out to
/// subscribers, keep recent history for replays.
pub struct LocalBus {
    sender: broadcast::Sender<Arc<Delivered>>,
    /// Held while publishing and while subscribing, so a replay and the live
    /// stream meet exactly: no gap, no duplicate.
    history: Mutex<(VecDeque<Arc<Delivered>>, i64)>,
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus {
            sender: broadcast::channel(BUS_CAPACITY).0,
            history: Mutex::new((VecDeque::new(), 0)),
        }
    }
}

impl LocalBus {
    /// Publishes the event for `row` with a fresh event id.
    pub fn publish(&self, kind: EventKind, row: &Checkout) {
        let mut guard = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let (history, offset) = &mut *guard;
        *offset += 1;
        let delivered = Arc::new(Delivered {
            event_id: Some(uuid::Uuid::now_v7().to_string()),
            kind,
            event: CheckoutEvent::from(row),
            partition: 0,
            offset: *offset,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            trace: domain::trace::current(),
            wave: None,
        });
        history.push_back(Arc::clone(&delivered));
        if history.len() > HISTORY {
            history.pop_front();
        }
        let _ = self.sender.send(delivered);
    }

    pub(crate) fn subscribe(&self, after: Option<&str>) -> Result<Subscribed, ResumeError> {
        let guard = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.sender.subscribe();
        let missed = match after {
            None => Vec::new(),
            Some(id) => {
                let position = guard
                    .0
                    .iter()
                    .position(|d| d.event_id.as_deref() == Some(id))
                    .ok_or_else(|| ResumeError::Unknown(id.to_string()))?;
                guard.0.iter().skip(position + 1).cloned().collect()
            }
        };
        Ok(Subscribed {
            missed,
            live,
            covered: Covered::default(),
        })
    }
}

#[cfg(test)]
mod bus_tests {
    use super::*;

    fn row(id: i32) -> Checkout {
        Checkout {
            id,
            user_email: "a@b.org".into(),
            asset_upc: "9000000001".into(),
            checkout_date: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            checkin_date: None,
        }
    }

    #[tokio::test]
    async fn resume_replays_exactly_what_was_missed_then_goes_live() {
        let bus = LocalBus::default();
        bus.publish(EventKind::Checkout, &row(1));
        let first = bus.subscribe(None).unwrap();
        assert!(first.missed.is_empty());
        bus.publish(EventKind::Checkin, &row(1));
        bus.publish(EventKind::Checkout, &row(2));
        let mut live = first.live;
        let seen = live.recv().await.unwrap();
        let resumed = bus.subscribe(seen.event_id.as_deref()).unwrap();
        assert_eq!(resumed.missed.len(), 1);
        assert_eq!(resumed.missed[0].event.id, 2);
        bus.publish(EventKind::Checkin, &row(2));
        let mut again = resumed.live;
        assert_eq!(again.recv().await.unwrap().event.id, 2);
        assert!(matches!(
            bus.subscribe(Some("nope")),
            Err(ResumeError::Unknown(_))
        ));
    }
}
