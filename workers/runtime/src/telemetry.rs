//! Logging: `tracing` with `RUST_LOG` filters and `IMGFLOW_LOG_FORMAT=json` for log pipelines.
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.init();
    }
}
