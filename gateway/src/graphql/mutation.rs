//! `type Mutation`.

use async_graphql::{Context, Object, Result};
use auth_jwt::Role;
use domain::CheckoutError;

use super::caps::caps;
use super::context::stores;
use super::errors::{checkout, internal};
use super::guards::RoleGuard;
use super::scalars::Email;
use super::types::GqlCheckout;

/// The root mutation.
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// USER. Refuses unknown copies and patrons; atomic under concurrency; the
    /// event is published after commit.
    #[graphql(guard = "RoleGuard::new(Role::User)")]
    async fn checkout_asset(
        &self,
        ctx: &Context<'_>,
        asset_upc: String,
        user_email: Email,
    ) -> Result<GqlCheckout> {
        caps(ctx).string("assetUpc", Some(&asset_upc))?;
        let stores = stores(ctx)?;
        let (books, patron) = tokio::join!(
            stores
                .catalog
                .books_by_upcs(std::slice::from_ref(&asset_upc)),
            stores.catalog.patron_by_email(&user_email.0)
        );
        if !books.map_err(|e| internal(&e))?.contains_key(&asset_upc) {
            return Err(checkout(CheckoutError::AssetNotFound));
        }
        if patron.map_err(|e| internal(&e))?.is_none() {
            return Err(checkout(CheckoutError::PatronNotFound));
        }
        let row = stores
            .checkouts
            .check_out(&asset_upc, &user_email.0)
            .await
            .map_err(checkout)?;
        (stores.after_commit)();
        Ok(row.into())
    }

    /// LIBRARIAN.
    #[graphql(guard = "RoleGuard::new(Role::Librarian)")]
    async fn checkin_asset(&self, ctx: &Context<'_>, asset_upc: String) -> Result<GqlCheckout> {
        caps(ctx).string("assetUpc", Some(&asset_upc))?;
        let stores = stores(ctx)?;
        let row = stores
            .checkouts
            .check_in(&asset_upc)
            .await
            .map_err(checkout)?;
        (stores.after_commit)();
        Ok(row.into())
    }
}
