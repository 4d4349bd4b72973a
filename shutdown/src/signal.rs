//! SIGTERM and SIGINT as a stream of "stop" requests.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The process's stop signals. The first `recv` starts the graceful path; a second
/// one means "exit now".
pub struct Signals {
    term: Signal,
    int: Signal,
}

/// Installs the SIGTERM and SIGINT handlers. Call it before the server starts, so a
/// signal that arrives during startup is not lost.
pub fn signals() -> std::io::Result<Signals> {
    Ok(Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
    })
}

impl Signals {
    /// Waits for the next SIGTERM or SIGINT and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
