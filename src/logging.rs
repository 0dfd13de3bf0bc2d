//! Logging through tracing: text for people (coloured on a terminal), JSON for collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `level`, so
/// an operator can turn up one module without editing the config.
pub fn init(format: LogFormat, level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(with_quiet_libraries(level)).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests start several daemons) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Auto => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// rustic_core logs each phase at info ("using cache at …", "password is
/// correct."); lantern logs one line per job itself, so at info and coarser
/// the library speaks only of warnings. `debug`/`trace`, a directive naming
/// rustic, or `RUST_LOG` bring its lines back.
fn with_quiet_libraries(level: &str) -> String {
    let verbose = ["debug", "trace"].iter().any(|l| level.contains(l));
    if verbose || level.contains("rustic") {
        level.to_string()
    } else {
        format!("{level},rustic_core=warn,rustic_backend=warn")
    }
}

#[cfg(test)]
mod tests {
    use super::with_quiet_libraries;

    #[test]
    fn rustic_speaks_only_of_warnings_unless_asked() {
        assert_eq!(
            with_quiet_libraries("info"),
            "info,rustic_core=warn,rustic_backend=warn"
        );
        assert_eq!(with_quiet_libraries("debug"), "debug");
        assert_eq!(
            with_quiet_libraries("info,rustic_core=info"),
            "info,rustic_core=info"
        );
    }
}
