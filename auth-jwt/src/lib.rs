//! JWT authentication (SPEC section 4): the verification key fetched from
//! `PUBLIC_JWT_KEY_URL` (a PEM public key or a JWKS document, told apart by content)
//! and cached; token verification against an algorithm allow-list; the current user;
//! the `Authorization` header and WebSocket `connection_init` parsing; and the dev key
//! service that issues tokens for development and tests.
#![deny(missing_docs)]

#[cfg(feature = "dev")]
pub mod dev;
mod error;
mod header;
mod keys;
mod user;
mod verify;

pub use error::AuthError;
pub use header::{bearer_token, connection_init_token};
pub use keys::{KeySource, KeySourceConfig};
pub use user::{CurrentUser, Role};
pub use verify::{Verifier, VerifierConfig};
