//! Logs: JSON in production (one object a line, for the log pipeline), readable
//! text in development. `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once, first thing.
pub fn init(production: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if production {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        // Colours only on a terminal: piped logs (tests, files) stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        builder.compact().with_ansi(ansi).try_init()
    };
    // Already installed (tests start several apps in one process): keep the first.
    let _ = result;
}
