//! The GraphQL schema of SPEC section 2 and its resolvers.

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

pub use context::{Stores, Viewer};
pub use documents::DocumentCache;
pub use limits::{AliasLimit, Limits};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

/// The schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema, built twice over the same stores. When a schema has any extension,
/// async-graphql runs every field and list item through the extension chain and
/// formats type names for each (about a fifth of a checkouts page's CPU in the
/// profile, bench/RESULTS.md). So the HTTP schema has none and its handler applies
/// [`AliasLimit::check`] to the parsed document; the WebSocket schema, whose
/// operations arrive inside the protocol, applies the same limit as an extension.
pub struct Schemas {
    /// For `POST` and `GET /graphql`: no extensions.
    pub http: AppSchema,
    /// For WebSocket connections: the alias limit as an extension.
    pub websocket: AppSchema,
    /// The alias limit the HTTP handler applies.
    pub aliases: AliasLimit,
    /// Parsed documents for the HTTP handler.
    pub documents: DocumentCache,
}

/// Builds the schemas over `stores`. In production, introspection is off.
pub fn build(stores: Stores, limits: Limits, production: bool) -> Schemas {
    let builder = || {
        let builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
            .data(stores.clone())
            .register_output_type::<types::UserRole>()
            .limit_depth(limits.depth)
            .limit_complexity(limits.complexity);
        if production {
            builder.disable_introspection()
        } else {
            builder
        }
    };
    let aliases = AliasLimit(limits.aliases);
    Schemas {
        http: builder().finish(),
        websocket: builder().extension(aliases).finish(),
        aliases,
        documents: DocumentCache::default(),
    }
}

/// The schema as SDL (for the snapshot test and `gateway --print-schema`).
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .register_output_type::<types::UserRole>()
        .finish()
        .sdl()
}
