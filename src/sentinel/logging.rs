//! The sentinel's log, in Redis's line format (`pid:X 07 Dec 2026 18:38:17.269 # +sdown ...`)
//! on stdout or `logfile`. Redis's `loglevel` names map onto `tracing` levels: warning =
//! WARN (and ERROR), notice = INFO, verbose = DEBUG, debug = TRACE; a filter that `SENTINEL
//! CONFIG SET loglevel` swaps at run time.

use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::common::log_line::{format_line, Level};

/// The Redis log levels, in Redis's order.
pub const LEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];

/// The role char of a sentinel in Redis's log lines.
const SENTINEL_ROLE: char = 'X';

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The `tracing` filter for a Redis level (None for an unknown name).
pub fn filter_for(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_lowercase().as_str() {
        "debug" => "trace",
        "verbose" => "debug",
        "notice" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => return None,
    })
}

/// The Redis level a `tracing` event is written at.
fn redis_level(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR | tracing::Level::WARN => Level::Warning,
        tracing::Level::INFO => Level::Notice,
        tracing::Level::DEBUG => Level::Verbose,
        tracing::Level::TRACE => Level::Debug,
    }
}

/// Formats each event as one Redis log line.
struct RedisLine;

impl<S, N> FormatEvent<S, N> for RedisLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut msg = String::new();
        ctx.field_format().format_fields(Writer::new(&mut msg), event)?;
        writer.write_str(&format_line(SENTINEL_ROLE, redis_level(event.metadata().level()), &msg))
    }
}

/// Starts logging to `logfile` (else stdout, or nowhere when daemonized), as Redis does.
/// `RUST_LOG`, when set, wins over `level` at start.
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
        None => BoxMakeWriter::new(std::io::stdout),
    };
    let (layer, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_ansi(false).event_format(RedisLine).with_writer(writer))
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
