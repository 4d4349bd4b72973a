//! The GraphQL schema of SPEC section 2 and its resolvers.

mod caps;
pub mod context;
pub mod dates;
mod documents;
pub mod errors;
mod guards;
mod limits;
pub mod loaders;
mod mutation;
mod prime;
mod query;
pub mod scalars;
mod subscription;
mod types;

use async_graphql::Schema;

pub use caps::ArgumentCaps;
pub use context::{Stores, Viewer};
pub use documents::DocumentCache;
pub use limits::{AliasLimit, Limits};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

/// The schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema over `stores`. In production, introspection is off. It has no
/// extension: with any, async-graphql runs every field and list item through the
/// extension chain (about a fifth of a checkouts page's CPU, bench/RESULTS.md); the
/// pipeline applies the alias limit to the parsed document instead.
pub fn build(stores: Stores, limits: Limits, caps: ArgumentCaps, production: bool) -> AppSchema {
    let builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(stores)
        .data(caps)
        .register_output_type::<types::UserRole>()
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity);
    if production {
        builder.disable_introspection().finish()
    } else {
        builder.finish()
    }
}

/// The schema as SDL (for the snapshot test and `gateway --print-schema`).
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .register_output_type::<types::UserRole>()
        .finish()
        .sdl()
}
