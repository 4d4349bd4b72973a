//! Role checks (SPEC section 4's access table). No hierarchy: each field names the
//! role it needs.

use async_graphql::{Context, Guard, Result};
use auth_jwt::Role;

use super::context::viewer;
use super::errors::not_authorized;

/// Requires the caller to hold one role.
pub struct RoleGuard(Role);

impl RoleGuard {
    /// A guard for `role`.
    pub fn new(role: Role) -> Self {
        RoleGuard(role)
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        if viewer(ctx).has(self.0) {
            Ok(())
        } else {
            Err(not_authorized())
        }
    }
}
