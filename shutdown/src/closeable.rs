//! What every connector implements so shutdown can release it.

use async_trait::async_trait;

/// Any error a close may report; the coordinator only logs it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A resource released on shutdown: stop taking new work, finish what is in flight,
/// then release connections. Implementations should be quick when idle; the
/// coordinator bounds each call in time and moves on past the bound.
#[async_trait]
pub trait Closeable: Send + Sync {
    /// A short stable name for logs (`mysql-pool`, `kafka-consumer`).
    fn name(&self) -> &str;

    /// Releases the resource. Called once; later use of the resource may fail.
    async fn close(&self) -> Result<(), BoxError>;
}
