//! Per-request batching: a page of N checkouts with patron and book costs a constant
//! number of round trips (one per loader), whatever N is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use domain::{Book, CatalogStore, Checkout, CheckoutStore, Patron, StoreError};
use opentelemetry::Context as TraceParent;
use tracing::Instrument;

use crate::telemetry;

/// Loader errors must be cloneable: the store error, shared.
pub type LoadError = Arc<StoreError>;

/// Patrons by email (`CheckOut.patron`).
pub struct PatronByEmail(pub Arc<dyn CatalogStore>);

impl Loader<String> for PatronByEmail {
    type Value = Arc<Patron>;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Arc<Patron>>, LoadError> {
        let found = self.0.patrons_by_emails(keys).await.map_err(Arc::new)?;
        Ok(shared(found))
    }
}

/// Values shared, not copied, by every item that loads them.
pub fn shared<T>(found: HashMap<String, T>) -> HashMap<String, Arc<T>> {
    found.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
}

/// Books by copy UPC (`CheckOut.book`).
pub struct BookByUpc(pub Arc<dyn CatalogStore>);

impl Loader<String> for BookByUpc {
    type Value = Arc<Book>;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Arc<Book>>, LoadError> {
        let found = self.0.books_by_upcs(keys).await.map_err(Arc::new)?;
        Ok(shared(found))
    }
}

/// A history lookup: by email or UPC, all or only open checkouts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HistoryKey {
    /// Email or UPC.
    pub key: String,
    /// `currentCheckoutsOnly`.
    pub open_only: bool,
}

/// Which column a [`History`] loader groups by.
#[derive(Clone, Copy)]
pub enum By {
    /// `Patron.checkOuts`
    Email,
    /// `BookCopy.checkoutHistory`
    Upc,
}

/// Checkout histories; at most two round trips (open-only and all) per batch.
pub struct History(pub Arc<dyn CheckoutStore>, pub By);

impl Loader<HistoryKey> for History {
    type Value = Vec<Checkout>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[HistoryKey],
    ) -> Result<HashMap<HistoryKey, Vec<Checkout>>, LoadError> {
        let mut out = HashMap::new();
        for open_only in [false, true] {
            let wanted: Vec<String> = keys
                .iter()
                .filter(|k| k.open_only == open_only)
                .map(|k| k.key.clone())
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let found = match self.1 {
                By::Email => self.0.by_emails(&wanted, open_only).await,
                By::Upc => self.0.by_assets(&wanted, open_only).await,
            }
            .map_err(Arc::new)?;
            for key in wanted {
                let rows = found.get(&key).cloned().unwrap_or_default();
                out.insert(HistoryKey { key, open_only }, rows);
            }
        }
        Ok(out)
    }
}

/// A loader with a per-request cache (what `prime` feeds).
type Cached<T> = DataLoader<T, HashMapCache>;

/// The loaders of one request.
pub struct Loaders {
    /// `CheckOut.patron`
    pub patrons: Cached<PatronByEmail>,
    /// `CheckOut.book`
    pub books: Cached<BookByUpc>,
    /// `Patron.checkOuts`
    pub by_email: Cached<History>,
    /// `BookCopy.checkoutHistory`
    pub by_upc: Cached<History>,
}

impl Loaders {
    /// Fresh loaders; their caches live as long as the request. Their batches run
    /// on tasks of their own, each a span under `parent` (the operation's, or the
    /// delivery's), which they would otherwise lose.
    pub fn new(
        catalog: &Arc<dyn CatalogStore>,
        checkouts: &Arc<dyn CheckoutStore>,
        parent: Option<&TraceParent>,
    ) -> Self {
        fn cached<T: Send + Sync + 'static>(
            name: &'static str,
            loader: T,
            parent: Option<&TraceParent>,
        ) -> Cached<T> {
            let parent = parent.cloned();
            let spawner = move |batch: futures::future::BoxFuture<'static, ()>| {
                let span = tracing::info_span!(target: telemetry::TARGET, parent: None, "dataloader", otel.name = name);
                telemetry::set_parent(&span, parent.as_ref());
                tokio::spawn(batch.instrument(span))
            };
            DataLoader::with_cache(loader, spawner, HashMapCache::default())
        }
        Loaders {
            patrons: cached("load patrons", PatronByEmail(Arc::clone(catalog)), parent),
            books: cached("load books", BookByUpc(Arc::clone(catalog)), parent),
            by_email: cached(
                "load checkouts by patron",
                History(Arc::clone(checkouts), By::Email),
                parent,
            ),
            by_upc: cached(
                "load checkouts by copy",
                History(Arc::clone(checkouts), By::Upc),
                parent,
            ),
        }
    }
}

/// The loaders an operation's resolvers reach: one set per query or mutation, and a
/// fresh set for each subscription event (`renew`), so a long-lived subscription
/// never serves a patron or book cached from an earlier event, and its caches never
/// grow past one event's worth. Cheap to clone (shared). The loaders are made on
/// first use: an idle subscription, or one whose events need no lookup, holds none
/// (each set is four loaders with their caches).
#[derive(Clone)]
pub struct LoaderScope {
    current: Arc<Mutex<Current>>,
    catalog: Arc<dyn CatalogStore>,
    checkouts: Arc<dyn CheckoutStore>,
}

/// The loaders in use, and the trace their batches belong to.
#[derive(Default)]
struct Current {
    loaders: Option<Arc<Loaders>>,
    parent: Option<TraceParent>,
}

impl LoaderScope {
    /// A scope over these stores (its loaders made when first needed), their
    /// batches traced under `parent`.
    pub fn new(
        catalog: &Arc<dyn CatalogStore>,
        checkouts: &Arc<dyn CheckoutStore>,
        parent: Option<TraceParent>,
    ) -> Self {
        LoaderScope {
            current: Arc::new(Mutex::new(Current {
                loaders: None,
                parent,
            })),
            catalog: Arc::clone(catalog),
            checkouts: Arc::clone(checkouts),
        }
    }

    /// The loaders in use now.
    pub fn get(&self) -> Arc<Loaders> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let Current { loaders, parent } = &mut *current;
        Arc::clone(loaders.get_or_insert_with(|| {
            Arc::new(Loaders::new(
                &self.catalog,
                &self.checkouts,
                parent.as_ref(),
            ))
        }))
    }

    /// Starts a fresh set (a subscription's next event), traced under `parent`.
    pub fn renew(&self, parent: Option<TraceParent>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Current {
            loaders: None,
            parent,
        };
    }
}

/// The current loaders of the operation `ctx` belongs to.
pub fn loaders(ctx: &async_graphql::Context<'_>) -> async_graphql::Result<Arc<Loaders>> {
    Ok(ctx.data::<LoaderScope>()?.get())
}
