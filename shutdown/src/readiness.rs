//! The readiness flag `/health/ready` reports.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Starting up: connectors not yet ready.
    Starting,
    /// Serving.
    Ready,
    /// A stop signal arrived: still serving in-flight work, but not ready for more.
    Draining,
}

/// A cheap, cloneable view of the process state; readiness is `Ready` only.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicU8>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(AtomicU8::new(0)))
    }
}

impl Readiness {
    /// A new flag in `Starting`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.0.load(Ordering::Acquire) {
            0 => State::Starting,
            1 => State::Ready,
            _ => State::Draining,
        }
    }

    /// Startup finished. Ignored once draining: a drain is never undone.
    pub fn set_ready(&self) {
        let _ = self
            .0
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A stop began.
    pub fn set_draining(&self) {
        self.0.store(2, Ordering::Release);
    }

    /// Whether new work should be sent here.
    pub fn is_ready(&self) -> bool {
        self.state() == State::Ready
    }

    /// Whether a stop has begun.
    pub fn is_draining(&self) -> bool {
        self.state() == State::Draining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_starting_ready_draining_and_never_back() {
        let r = Readiness::new();
        assert_eq!(r.state(), State::Starting);
        r.set_ready();
        assert!(r.is_ready());
        let view = r.clone();
        r.set_draining();
        assert!(view.is_draining());
        view.set_ready();
        assert_eq!(r.state(), State::Draining);
    }
}
