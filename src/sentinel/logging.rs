//! The sentinel's log: Redis's `loglevel` names mapped onto `tracing` levels, with a
//! filter that `SENTINEL CONFIG SET loglevel` swaps at run time.

use std::sync::OnceLock;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The Redis log levels, in Redis's order.
pub const LEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The `tracing` filter for a Redis level (None for an unknown name). `verbose` and
/// `debug` both show our debug lines; sentinel events that Redis logs as warnings
/// (`+sdown`, `+switch-master` ...) are logged at WARN, the others at INFO (notice).
pub fn filter_for(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_lowercase().as_str() {
        "debug" | "verbose" => "debug",
        "notice" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => return None,
    })
}

/// Starts logging to `logfile` (else stderr, or nowhere when daemonized). `RUST_LOG`, when
/// set, wins over `level` at start.
pub fn init(logfile: Option<&str>, daemonized: bool, level: Option<&str>) {
    let directive = filter_for(level.unwrap_or("notice")).unwrap_or("info");
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(directive));
    let writer = match logfile {
        Some(path) => match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => BoxMakeWriter::new(std::sync::Mutex::new(f)),
            Err(e) => {
                eprintln!("Can't open the log file {path}: {e}");
                return;
            }
        },
        None if daemonized => return,
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let (layer, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(writer))
        .try_init()
        .is_ok();
    if installed {
        let _ = FILTER.set(handle);
    }
}

/// Applies a Redis level to the running log at once; false for an unknown level name.
pub fn set_level(level: &str) -> bool {
    let Some(directive) = filter_for(level) else { return false };
    if let Some(handle) = FILTER.get() {
        if let Err(e) = handle.reload(EnvFilter::new(directive)) {
            tracing::warn!("can't change the log level: {e}");
        }
    }
    true
}
