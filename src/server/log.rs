//! Redis-style log lines: `PID:R DD Mon YYYY HH:MM:SS.mmm <level> message`, to stdout or
//! `logfile` — tools and test harnesses parse these ("Ready to accept connections").

use std::io::Write;
use std::sync::OnceLock;

use parking_lot::Mutex;

pub use crate::common::log_line::Level;

struct Logger {
    file: Option<String>,
    min: Level,
    role: char,
}

static LOGGER: OnceLock<Mutex<Logger>> = OnceLock::new();

fn logger() -> &'static Mutex<Logger> {
    LOGGER.get_or_init(|| Mutex::new(Logger { file: None, min: Level::Notice, role: 'C' }))
}

/// Sets the destination ("" = stdout) and level; checks the file can be opened.
pub fn init(logfile: &str, level: Level) -> std::io::Result<()> {
    if !logfile.is_empty() {
        std::fs::OpenOptions::new().create(true).append(true).open(logfile)?;
    }
    let mut l = logger().lock();
    l.file = (!logfile.is_empty()).then(|| logfile.to_string());
    l.min = level;
    Ok(())
}

pub fn set_level(level: Level) {
    logger().lock().min = level;
}

/// 'M' master, 'S' replica, 'C' before start-up, 'X' sentinel.
pub fn set_role(role: char) {
    logger().lock().role = role;
}

/// The role char of a server once its configuration is loaded: `S` when it starts as a
/// replica (`replicaof` set), else `M` — as Redis derives it from `server.masterhost`.
pub fn set_server_role(replicaof: &str) {
    set_role(if replicaof.trim().is_empty() { 'M' } else { 'S' });
}

pub fn log(level: Level, msg: &str) {
    let l = logger().lock();
    if level < l.min {
        return;
    }
    let line = crate::common::log_line::format_line(l.role, level, msg);
    write_out(&l, &line);
}

/// Text written as it is, without the line prefix (Redis's LL_RAW), at notice level.
pub fn raw(text: &str) {
    let l = logger().lock();
    if Level::Notice < l.min {
        return;
    }
    write_out(&l, text);
}

/// Whether the start-up logo is shown: `always-show-logo yes`, or logging to a terminal
/// (as Redis: no logfile, no syslog, stdout a tty).
pub fn show_logo(always: bool, syslog: bool) -> bool {
    use std::io::IsTerminal;
    always || (!syslog && logger().lock().file.is_none() && std::io::stdout().is_terminal())
}

fn write_out(l: &Logger, line: &str) {
    match &l.file {
        Some(path) => {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = f.write_all(line.as_bytes());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

pub fn notice(msg: &str) {
    log(Level::Notice, msg)
}

pub fn warning(msg: &str) {
    log(Level::Warning, msg)
}

/// Redis's crash report (sigsegvHandler / bug report) before the process dies of `signal`:
/// the header, then the stack trace of the thread reporting (a Rust backtrace), then the
/// footer. Honours `crash-log-enabled` as Redis does (`enabled` false: nothing).
pub fn crash_report(signal: i32, enabled: bool) {
    if !enabled {
        return;
    }
    raw("\n\n=== REDIS BUG REPORT START: Cut & paste starting from here ===\n");
    warning(&format!("Redis 7.0.15 crashed by signal: {signal}, si_code: 0"));
    let trace = std::backtrace::Backtrace::force_capture();
    raw(&format!("\n------ STACK TRACE ------\n{trace}\n"));
    raw("\n=== REDIS BUG REPORT END. Make sure to include from START to END. ===\n\n");
}

static EXIT_ON_PANIC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `use-exit-on-panic` (immutable, set once at start-up).
pub fn set_exit_on_panic(on: bool) {
    EXIT_ON_PANIC.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Redis's serverPanic: the "Guru Meditation" lines in the log, then abort (SIGABRT), for a
/// state the server must not go on in; with `use-exit-on-panic` an exit with code 1.
pub fn panic_and_abort(msg: &str, origin: &str) -> ! {
    warning("------------------------------------------------");
    warning("!!! Software Failure. Press left mouse button to continue");
    warning(&format!("Guru Meditation: {msg} #{origin}"));
    if EXIT_ON_PANIC.load(std::sync::atomic::Ordering::Relaxed) {
        std::process::exit(1);
    }
    std::process::abort()
}
