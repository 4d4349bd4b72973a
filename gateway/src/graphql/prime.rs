//! Look-ahead batching. A resolver that returns a list loads, before its items
//! resolve, what their selected fields will ask for: one round trip per kind. The
//! items take what was found directly ([`Related::item`]); lists built later (a
//! patron's history) find it in the request's loaders. A page costs the same round
//! trips whatever its size, deterministically: the loaders' own batching waits a
//! short timer for keys, and a busy machine can split one batch into two. The
//! loaders stay the fallback for every path not primed here (and for keys a prime
//! did not find); a failed prime is ignored: the items load and report it.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, SelectionField, Value};
use domain::{distinct_keys, Book, Checkout, Patron};

use super::context::stores;
use super::loaders::{loaders, shared, HistoryKey};

/// The patrons and books found for a list of checkouts, by email and by UPC.
#[derive(Default)]
pub struct Related {
    patrons: HashMap<String, Arc<Patron>>,
    books: HashMap<String, Arc<Book>>,
}

impl Related {
    /// The patron found for `row`.
    pub fn patron_of(&self, row: &Checkout) -> Option<Arc<Patron>> {
        self.patrons.get(&row.user_email).cloned()
    }

    /// The book found for `row`.
    pub fn book_of(&self, row: &Checkout) -> Option<Arc<Book>> {
        self.books.get(&row.asset_upc).cloned()
    }
}

/// Loads what the `CheckOut` items of `field` select: `patron`, `book`.
pub async fn checkout_children(
    ctx: &Context<'_>,
    field: SelectionField<'_>,
    rows: &[&Checkout],
) -> Related {
    let Ok(stores) = stores(ctx) else {
        return Related::default();
    };
    if rows.is_empty() {
        return Related::default();
    }
    let wants = |name: &str| field.selection_set().any(|f| f.name() == name);
    let patrons = async {
        if !wants("patron") {
            return HashMap::new();
        }
        let emails = distinct_keys(rows.iter().map(|r| &r.user_email));
        let found = stores.catalog.patrons_by_emails(&emails).await;
        found.map(shared).unwrap_or_default()
    };
    let books = async {
        if !wants("book") {
            return HashMap::new();
        }
        let upcs = distinct_keys(rows.iter().map(|r| &r.asset_upc));
        let found = stores.catalog.books_by_upcs(&upcs).await;
        found.map(shared).unwrap_or_default()
    };
    let (patrons, books) = futures::join!(patrons, books);
    Related { patrons, books }
}

/// Primes what the `Patron` items of `field` select: `checkOuts` (per distinct
/// `currentCheckoutsOnly`), and what those checkouts select in turn.
pub async fn patron_children(ctx: &Context<'_>, field: SelectionField<'_>, patrons: &[Patron]) {
    let (Ok(stores), Ok(loaders)) = (stores(ctx), loaders(ctx)) else {
        return;
    };
    let emails = distinct_keys(patrons.iter().filter_map(|p| p.email.as_ref()));
    if emails.is_empty() {
        return;
    }
    let mut by_filter: HashMap<bool, Vec<SelectionField<'_>>> = HashMap::new();
    for history in field.selection_set().filter(|f| f.name() == "checkOuts") {
        by_filter
            .entry(open_only(&history))
            .or_default()
            .push(history);
    }
    for (open_only, fields) in by_filter {
        let Ok(mut found) = stores.checkouts.by_emails(&emails, open_only).await else {
            continue;
        };
        let rows: Vec<&Checkout> = found.values().flatten().collect();
        for history in fields {
            // These items are built later, from the history loader: feed it.
            let related = checkout_children(ctx, history, &rows).await;
            loaders.patrons.feed_many(related.patrons).await;
            loaders.books.feed_many(related.books).await;
        }
        let histories = emails.iter().map(|email| {
            let rows = found.remove(email).unwrap_or_default();
            let key = HistoryKey {
                key: email.clone(),
                open_only,
            };
            (key, rows)
        });
        loaders
            .by_email
            .feed_many(histories.collect::<Vec<_>>())
            .await;
    }
}

/// `currentCheckoutsOnly` of a history field (false when absent or unreadable).
fn open_only(field: &SelectionField<'_>) -> bool {
    field
        .arguments()
        .ok()
        .and_then(|args| {
            args.into_iter()
                .find(|(name, _)| name.as_str() == "currentCheckoutsOnly")
        })
        .is_some_and(|(_, v)| v == Value::Boolean(true))
}
