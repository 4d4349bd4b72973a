//! The ordered, time-bounded stop.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{timeout, timeout_at, Instant};
use tracing::{error, info, warn};

use crate::{Closeable, Readiness};

/// How long each phase of a stop may take.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownConfig {
    /// Between the signal and closing the listener, so load balancers see readiness
    /// fail first (`SHUTDOWN_DELAY`; 5 s in production, 0 in development).
    pub delay: Duration,
    /// The whole stop, delay included (`SHUTDOWN_TIMEOUT`, 60 s); past it, exit 1.
    pub timeout: Duration,
    /// The bound on each Closeable's close (`SHUTDOWN_CLOSE_TIMEOUT`, 10 s).
    pub close_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            delay: Duration::ZERO,
            timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(10),
        }
    }
}

/// How a stop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Drained and every Closeable closed: exit 0.
    Clean,
    /// Something did not finish (its own bound, the deadline, or a second signal):
    /// exit 1, naming what.
    Forced {
        /// Why the stop was cut short.
        reason: String,
        /// The steps that did not finish, in order (`http-server` is the drain).
        unfinished: Vec<String>,
    },
}

impl Outcome {
    /// The process exit code: 0 clean, 1 forced.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Clean => 0,
            Outcome::Forced { .. } => 1,
        }
    }
}

/// The name the drain step has in logs and in [`Outcome::Forced`].
pub const DRAIN_STEP: &str = "http-server";

/// Owns the stop sequence. Build it at startup, register Closeables in close order,
/// then hand it the drain future when the first signal arrives.
pub struct Coordinator {
    config: ShutdownConfig,
    readiness: Readiness,
    closeables: Vec<Arc<dyn Closeable>>,
}

impl Coordinator {
    /// A coordinator driving `readiness`.
    pub fn new(config: ShutdownConfig, readiness: Readiness) -> Self {
        Coordinator {
            config,
            readiness,
            closeables: Vec::new(),
        }
    }

    /// Adds a Closeable; they close in registration order, after the drain.
    pub fn register(&mut self, closeable: Arc<dyn Closeable>) {
        self.closeables.push(closeable);
    }

    /// The names of what will close, in order (for startup logs).
    pub fn names(&self) -> Vec<String> {
        self.closeables
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }

    /// Runs the stop: readiness to draining, the delay, `drain` (the server's
    /// graceful stop), then each Closeable in order. `force` resolving (a second
    /// signal) or the overall deadline passing ends it at once.
    pub async fn shutdown<D, F>(self, drain: D, force: F) -> Outcome
    where
        D: Future<Output = ()>,
        F: Future<Output = ()>,
    {
        let started = Instant::now();
        let deadline = started + self.config.timeout;
        self.readiness.set_draining();
        info!(
            delay_ms = self.config.delay.as_millis() as u64,
            timeout_ms = self.config.timeout.as_millis() as u64,
            "shutdown started: readiness is now 503"
        );

        // Steps not yet finished, in order; what is left here names the culprits.
        let pending = Arc::new(Mutex::new(
            std::iter::once(DRAIN_STEP.to_string())
                .chain(self.names())
                .collect::<Vec<_>>(),
        ));
        let failed = Arc::new(Mutex::new(Vec::<String>::new()));
        let steps = run_steps(
            self.config,
            drain,
            self.closeables,
            Arc::clone(&pending),
            Arc::clone(&failed),
        );

        let reason = tokio::select! {
            () = steps => None,
            _ = timeout_at(deadline, std::future::pending::<()>()) => {
                Some(format!("shutdown timeout of {:?} passed", self.config.timeout))
            }
            () = force => Some("second signal".to_string()),
        };

        let mut unfinished = std::mem::take(&mut *lock(&failed));
        unfinished.extend(lock(&pending).drain(..));
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match reason {
            None if unfinished.is_empty() => {
                info!(elapsed_ms, "shutdown complete");
                Outcome::Clean
            }
            reason => {
                let reason = reason.unwrap_or_else(|| "a close failed or overran".into());
                error!(elapsed_ms, %reason, unfinished = ?unfinished, "forced exit: not everything closed");
                Outcome::Forced { reason, unfinished }
            }
        }
    }
}

async fn run_steps<D: Future<Output = ()>>(
    config: ShutdownConfig,
    drain: D,
    closeables: Vec<Arc<dyn Closeable>>,
    pending: Arc<Mutex<Vec<String>>>,
    failed: Arc<Mutex<Vec<String>>>,
) {
    if !config.delay.is_zero() {
        info!(
            delay_ms = config.delay.as_millis() as u64,
            "waiting for load balancers"
        );
        tokio::time::sleep(config.delay).await;
    }
    info!("stopping the listener and draining in-flight requests");
    drain.await;
    lock(&pending).retain(|s| s != DRAIN_STEP);
    info!("drained: no request in flight");

    for closeable in closeables {
        let name = closeable.name().to_string();
        info!(closeable = %name, "closing");
        let result = timeout(config.close_timeout, closeable.close()).await;
        lock(&pending).retain(|s| *s != name);
        match result {
            Ok(Ok(())) => info!(closeable = %name, "closed"),
            Ok(Err(e)) => {
                warn!(closeable = %name, error = %e, "close failed");
                lock(&failed).push(name);
            }
            Err(_) => {
                warn!(closeable = %name, bound_ms = config.close_timeout.as_millis() as u64, "close did not finish in time");
                lock(&failed).push(name);
            }
        }
        // Dropping a closed client can block: librdkafka's destroy joins its
        // threads (about 100 ms each for the consumer and the producer). Off the
        // async thread and off the stop's path: the next close starts at once.
        tokio::task::spawn_blocking(move || drop(closeable));
    }
}

/// A poisoned list is still a list: a panic elsewhere must not stop the shutdown.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records its close order; `hang` makes close never return.
    struct Probe {
        name: &'static str,
        order: Arc<Mutex<Vec<&'static str>>>,
        hang: bool,
        fail: bool,
    }

    #[async_trait]
    impl Closeable for Probe {
        fn name(&self) -> &str {
            self.name
        }
        async fn close(&self) -> Result<(), BoxError> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            lock(&self.order).push(self.name);
            if self.fail {
                return Err("boom".into());
            }
            Ok(())
        }
    }

    fn probe(
        name: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
        hang: bool,
    ) -> Arc<dyn Closeable> {
        Arc::new(Probe {
            name,
            order: Arc::clone(order),
            hang,
            fail: false,
        })
    }

    fn config(delay: u64, timeout: u64, close: u64) -> ShutdownConfig {
        ShutdownConfig {
            delay: Duration::from_secs(delay),
            timeout: Duration::from_secs(timeout),
            close_timeout: Duration::from_secs(close),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closes_in_order_after_the_drain_and_exits_zero() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let readiness = Readiness::new();
        readiness.set_ready();
        let mut c = Coordinator::new(config(5, 60, 10), readiness.clone());
        c.register(probe("kafka", &order, false));
        c.register(probe("mysql", &order, false));
        let drained = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&drained);
        let seen_order = Arc::clone(&order);
        let r = readiness.clone();
        let drain = async move {
            // The delay has passed, readiness already failed, nothing closed yet.
            assert!(r.is_draining());
            assert!(lock(&seen_order).is_empty());
            d.fetch_add(1, Ordering::SeqCst);
        };
        let start = Instant::now();
        let outcome = c.shutdown(drain, std::future::pending()).await;
        assert_eq!(outcome, Outcome::Clean);
        assert_eq!(outcome.exit_code(), 0);
        assert_eq!(drained.load(Ordering::SeqCst), 1);
        assert_eq!(*lock(&order), vec!["kafka", "mysql"]);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(5),
            "the delay was honoured"
        );
    }

    /// Blocks in its drop until the next Closeable has closed (or 10 s pass), and
    /// reports which happened.
    struct SlowDrop {
        next_closed: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
        report: std::sync::mpsc::Sender<bool>,
    }

    impl Drop for SlowDrop {
        fn drop(&mut self) {
            let waited = lock(&self.next_closed)
                .take()
                .is_some_and(|rx| rx.recv_timeout(Duration::from_secs(10)).is_ok());
            let _ = self.report.send(waited);
        }
    }

    #[async_trait]
    impl Closeable for SlowDrop {
        fn name(&self) -> &str {
            "slow-drop"
        }
        async fn close(&self) -> Result<(), BoxError> {
            Ok(())
        }
    }

    /// Says when it has closed.
    struct Announce(std::sync::mpsc::Sender<()>);

    #[async_trait]
    impl Closeable for Announce {
        fn name(&self) -> &str {
            "announce"
        }
        async fn close(&self) -> Result<(), BoxError> {
            let _ = self.0.send(());
            Ok(())
        }
    }

    #[tokio::test]
    async fn dropping_a_closed_closeable_does_not_hold_up_the_next() {
        let (closed_tx, closed_rx) = std::sync::mpsc::channel();
        let (report_tx, report_rx) = std::sync::mpsc::channel();
        let mut c = Coordinator::new(config(0, 60, 30), Readiness::new());
        // The coordinator holds the only references: it does the drops.
        c.register(Arc::new(SlowDrop {
            next_closed: Mutex::new(Some(closed_rx)),
            report: report_tx,
        }));
        c.register(Arc::new(Announce(closed_tx)));
        let outcome = c.shutdown(async {}, std::future::pending()).await;
        assert_eq!(outcome, Outcome::Clean);
        let report =
            tokio::task::spawn_blocking(move || report_rx.recv_timeout(Duration::from_secs(30)))
                .await
                .expect("joined");
        assert_eq!(
            report,
            Ok(true),
            "the first drop saw the second close while it was blocked"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_closeable_is_cut_at_its_bound_and_named() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut c = Coordinator::new(config(0, 60, 3), Readiness::new());
        c.register(probe("stuck", &order, true));
        c.register(probe("mysql", &order, false));
        let start = Instant::now();
        let outcome = c.shutdown(async {}, std::future::pending()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(*lock(&order), vec!["mysql"], "the next one still closed");
        match outcome {
            Outcome::Forced { unfinished, .. } => assert_eq!(unfinished, vec!["stuck"]),
            other => panic!("expected forced, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_deadline_names_what_was_pending() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut c = Coordinator::new(config(0, 20, 15), Readiness::new());
        c.register(probe("a", &order, true));
        c.register(probe("b", &order, true));
        let start = Instant::now();
        let outcome = c.shutdown(async {}, std::future::pending()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        assert_eq!(outcome.exit_code(), 1);
        match outcome {
            Outcome::Forced { unfinished, reason } => {
                assert_eq!(unfinished, vec!["a", "b"]);
                assert!(reason.contains("timeout"), "{reason}");
            }
            other => panic!("expected forced, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_that_never_ends_is_forced_by_a_second_signal() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut c = Coordinator::new(config(0, 60, 10), Readiness::new());
        c.register(probe("mysql", &order, false));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let force = async move {
            let _ = rx.await;
        };
        let run = tokio::spawn(c.shutdown(std::future::pending(), force));
        tokio::task::yield_now().await;
        assert!(!run.is_finished());
        tx.send(()).unwrap();
        let outcome = run.await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Forced {
                reason: "second signal".into(),
                unfinished: vec![DRAIN_STEP.into(), "mysql".into()],
            }
        );
        assert!(lock(&order).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_close_is_reported() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut c = Coordinator::new(config(0, 60, 10), Readiness::new());
        c.register(Arc::new(Probe {
            name: "broken",
            order: Arc::clone(&order),
            hang: false,
            fail: true,
        }));
        let outcome = c.shutdown(async {}, std::future::pending()).await;
        assert_eq!(outcome.exit_code(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stop_with_no_delay_takes_no_time() {
        let mut c = Coordinator::new(config(0, 60, 10), Readiness::new());
        c.register(probe("x", &Arc::new(Mutex::new(Vec::new())), false));
        let start = Instant::now();
        assert_eq!(
            c.shutdown(async {}, std::future::pending()).await,
            Outcome::Clean
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
