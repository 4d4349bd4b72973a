//! Graceful shutdown, the heart of the seed server (SPEC section 7).
//!
//! Every resource that must be released on exit (a pool, a client, a consumer, the
//! event relay) implements [`Closeable`] and is registered with the [`Coordinator`]
//! in the order it must close. On the first signal the coordinator flips
//! [`Readiness`] to draining, waits the configured delay (so load balancers notice),
//! drains the server (a future the caller provides: actix's graceful stop), then
//! closes each Closeable with its own time bound, all inside one overall deadline.
//! A second signal, or the deadline, ends it at once with [`Outcome::Forced`].
#![deny(missing_docs)]

mod closeable;
mod coordinator;
mod readiness;
mod signal;

pub use closeable::{BoxError, Closeable};
pub use coordinator::{Coordinator, Outcome, ShutdownConfig};
pub use readiness::{Readiness, State};
pub use signal::{signals, Signals};
