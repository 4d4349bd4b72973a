//! `type Query`.

use async_graphql::{Context, Object, Result, ID};
use auth_jwt::Role;
use domain::{CheckoutFilter, Sort};
use sha2::{Digest, Sha256};

use super::caps::caps;
use super::context::{stores, viewer};
use super::errors::{coded, internal, not_authorized};
use super::guards::RoleGuard;
use super::prime;
use super::scalars::Email;
use super::types::{Feed, GqlBook, GqlCheckout, GqlPatron, PageInfo, SortObject};

/// The root query.
pub struct QueryRoot;

fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    coded(message, "BAD_USER_INPUT")
}

/// Refuses a sort that names a field twice (the same order could otherwise be
/// spelled many ways, each its own snapshot).
fn distinct_fields(sort: &[Sort]) -> Result<()> {
    for (i, s) in sort.iter().enumerate() {
        if sort[..i].iter().any(|earlier| earlier.field == s.field) {
            return Err(bad_input("sort names a field more than once"));
        }
    }
    Ok(())
}

#[Object]
impl QueryRoot {
    /// USER. Filters ANDed; `cursor` an ISO date (rows after it); `next` page size;
    /// ascending by checkout date.
    #[graphql(
        guard = "RoleGuard::new(Role::User)",
        complexity = "(next.unwrap_or(100).max(1) as usize) * child_complexity"
    )]
    async fn checkouts(
        &self,
        ctx: &Context<'_>,
        user_email: Option<Email>,
        asset_upc: Option<String>,
        cursor: Option<String>,
        next: Option<i32>,
    ) -> Result<Option<Vec<Option<GqlCheckout>>>> {
        let caps = caps(ctx);
        caps.string("assetUpc", asset_upc.as_deref())?;
        caps.string("cursor", cursor.as_deref())?;
        let page = caps.page("next", next)?;
        let after = match &cursor {
            None => None,
            Some(c) => Some(
                domain::parse_iso(c).ok_or_else(|| bad_input("cursor must be an ISO-8601 date"))?,
            ),
        };
        let filter = CheckoutFilter {
            user_email: user_email.map(|e| e.0),
            asset_upc,
        };
        let rows = stores(ctx)?
            .checkouts
            .list(&filter, after, Some(page))
            .await
            .map_err(|e| internal(&e))?;
        let related =
            prime::checkout_children(ctx, ctx.field(), &rows.iter().collect::<Vec<_>>()).await;
        Ok(Some(
            rows.into_iter()
                .map(|r| Some(GqlCheckout::primed(r, &related)))
                .collect(),
        ))
    }

    /// Public. Snapshot pagination: the first call stores the whole result; pages
    /// follow by `cursor` (the last id seen); `queryId` names a snapshot of the
    /// caller's own.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "(next.unwrap_or(100).max(1) as usize) * child_complexity")]
    async fn checkout_feed(
        &self,
        ctx: &Context<'_>,
        user_email: Option<Email>,
        asset_upc: Option<String>,
        sort: Option<Vec<SortObject>>,
        cursor: Option<String>,
        next: Option<i32>,
        query_id: Option<ID>,
    ) -> Result<Option<Feed>> {
        let caps = caps(ctx);
        caps.string("assetUpc", asset_upc.as_deref())?;
        caps.string("cursor", cursor.as_deref())?;
        caps.string("queryId", query_id.as_ref().map(|i| i.as_str()))?;
        let limit = Some(caps.page("next", next)?);
        let stores = stores(ctx)?;
        let owner = viewer(ctx).identity();
        let after_id = match &cursor {
            None => None,
            Some(c) => Some(
                c.parse::<i32>()
                    .map_err(|_| bad_input("cursor must be an entry id"))?,
            ),
        };
        let filter = CheckoutFilter {
            user_email: user_email.map(|e| e.0),
            asset_upc,
        };
        let sort: Vec<Sort> = sort
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect();
        distinct_fields(&sort)?;
        // A new query (no queryId, no cursor) reuses the live snapshot of the same
        // owner, filter and sort for `snapshot_reuse`, else takes a new one (one per
        // key: it replaces the old); anything else pages an existing one, which must
        // be the caller's own.
        let fresh = query_id.is_none() && cursor.is_none();
        let id = match query_id {
            Some(id) => id.0,
            None => snapshot_id(&owner, &filter, &sort),
        };
        let mut page = stores
            .snapshots
            .page(&id, &owner, after_id, limit)
            .await
            .map_err(|e| internal(&e))?;
        let stale = page.as_ref().is_none_or(|p| p.age >= caps.snapshot_reuse);
        if fresh && stale {
            let rows = stores
                .checkouts
                .list_sorted(&filter, &sort, caps.snapshot_rows.saturating_add(1))
                .await
                .map_err(|e| internal(&e))?;
            let rows = caps.snapshot(rows)?;
            stores
                .snapshots
                .save(&id, &owner, &rows)
                .await
                .map_err(|e| internal(&e))?;
            page = stores
                .snapshots
                .page(&id, &owner, after_id, limit)
                .await
                .map_err(|e| internal(&e))?;
        }
        let page = page.ok_or_else(|| {
            coded(
                "no such snapshot (expired, or not yours): start again without queryId and cursor",
                "QUERY_NOT_FOUND",
            )
        })?;
        if after_id.is_some() && page.start == page.total && page.entries.is_empty() {
            return Err(bad_input("cursor is not an entry of this snapshot"));
        }
        let len = page.entries.len();
        Ok(Some(Feed {
            page_info: Some(PageInfo {
                query_id: ID(id),
                current_cursor: page.entries.last().map(|c| c.id.to_string()),
                start_entry_index: page.start as i32,
                end_entry_index: (page.start + len) as i32 - 1,
                total_entries: page.total as i32,
                has_previous_page: page.start > 0,
                has_next_page: page.start + len < page.total,
            }),
            rows: page.entries,
        }))
    }

    /// LIBRARIAN, or the patron themself. `id` wins over `email`; neither, or not
    /// found: null.
    async fn patron(
        &self,
        ctx: &Context<'_>,
        email: Option<Email>,
        id: Option<ID>,
    ) -> Result<Option<GqlPatron>> {
        let v = viewer(ctx);
        if v.0.is_none() {
            return Err(not_authorized());
        }
        caps(ctx).string("id", id.as_ref().map(|i| i.as_str()))?;
        let catalog = &stores(ctx)?.catalog;
        let found = match (id, email) {
            (Some(id), _) => catalog.patron_by_id(&id).await,
            (None, Some(email)) => catalog.patron_by_email(&email.0).await,
            (None, None) => Ok(None),
        }
        .map_err(|e| internal(&e))?;
        if v.has(Role::Librarian) {
            return Ok(found.map(|p| GqlPatron(p.into())));
        }
        match found {
            Some(p) if v.is(&p.id) => Ok(Some(GqlPatron(p.into()))),
            _ => Err(not_authorized()),
        }
    }

    /// LIBRARIAN.
    #[graphql(
        guard = "RoleGuard::new(Role::Librarian)",
        complexity = "(limit.unwrap_or(100).max(1) as usize) * child_complexity"
    )]
    async fn patrons(
        &self,
        ctx: &Context<'_>,
        year_registered: Option<i32>,
        limit: Option<i32>,
    ) -> Result<Vec<Option<GqlPatron>>> {
        let limit = Some(caps(ctx).page("limit", limit)?);
        let rows = stores(ctx)?
            .catalog
            .patrons(year_registered, limit)
            .await
            .map_err(|e| internal(&e))?;
        prime::patron_children(ctx, ctx.field(), &rows).await;
        Ok(rows
            .into_iter()
            .map(|p| Some(GqlPatron(p.into())))
            .collect())
    }

    /// Public. `id` wins over `isbn13`.
    async fn book(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        isbn13: Option<String>,
    ) -> Result<Option<GqlBook>> {
        let caps = caps(ctx);
        caps.string("id", id.as_ref().map(|i| i.as_str()))?;
        caps.string("isbn13", isbn13.as_deref())?;
        let catalog = &stores(ctx)?.catalog;
        let found = match (id, isbn13) {
            (Some(id), _) => catalog.book_by_id(&id).await,
            (None, Some(isbn)) => catalog.book_by_isbn(&isbn).await,
            (None, None) => Ok(None),
        }
        .map_err(|e| internal(&e))?;
        Ok(found.map(|b| GqlBook(b.into())))
    }

    /// Public.
    #[graphql(complexity = "10 * child_complexity")]
    async fn books(&self, ctx: &Context<'_>) -> Result<Option<Vec<Option<GqlBook>>>> {
        let rows = stores(ctx)?
            .catalog
            .books()
            .await
            .map_err(|e| internal(&e))?;
        Ok(Some(
            rows.into_iter().map(|b| Some(GqlBook(b.into()))).collect(),
        ))
    }
}

/// queryId = hash(user identity + filter args): the same query by the same user
/// names the same snapshot; another user's never collides with it.
fn snapshot_id(owner: &str, filter: &CheckoutFilter, sort: &[Sort]) -> String {
    let mut h = Sha256::new();
    h.update(owner.as_bytes());
    h.update([0]);
    // Normalised: emails compare case-insensitively (so do the tables' collations);
    // a sort is already canonical (direction spelled out, each field once).
    let email = filter.user_email.as_deref().map(str::to_lowercase);
    h.update(format!("{:?}|{:?}|{:?}", email, filter.asset_upc, sort).as_bytes());
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}
