//! One tracing subscriber per process: human-readable by default, JSON with
//! `OUTFLOW_LOG_FORMAT=json`; the level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("OUTFLOW_LOG_FORMAT").is_ok_and(|f| f == "json");
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests building several apps in one process) is harmless.
    let _ = if json {
        registry.with(fmt::layer().json().with_current_span(true)).try_init()
    } else {
        // Colours only for a terminal: logs redirected to files stay plain text.
        registry.with(fmt::layer().compact().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))).try_init()
    };
    tracing::info!(service, "telemetry ready");
}
