//! The `rf-sentinel` program (also `rf-server sentinel.conf --sentinel`).
//!
//! `rf-sentinel path/to/sentinel.conf [--directive value ...]`, `--version`, `--help`,
//! `--config-template <path>` (copied to the config path before it is read).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::config::{self, REDIS_VERSION};

const DAEMON_CHILD_ENV: &str = "RF_SENTINEL_DAEMON_CHILD";

fn usage() -> String {
    "Usage: rf-sentinel /path/to/sentinel.conf [options]\n       \
     rf-server /path/to/sentinel.conf --sentinel [options]\n       \
     rf-sentinel --config-template /etc/redis-failover/sentinel.conf /data/sentinel.conf\n       \
     rf-sentinel -v or --version\n       rf-sentinel -h or --help\n\n\
     Options are config directives: --port 26380 --sentinel monitor mymaster 127.0.0.1 6379 2\n"
        .to_string()
}

/// Entry point. `args` is the whole argv, program name first (as `std::env::args_os()`).
pub fn main(args: Vec<OsString>) -> ExitCode {
    ExitCode::from(run(args) as u8)
}

/// Same as [`main`] with the exit status as a number (for `rf-server ... --sentinel`,
/// whose entry returns an `i32`): 0 success, 1 error.
pub fn run(args: Vec<OsString>) -> i32 {
    match run_inner(args) {
        ExitCode::SUCCESS => 0,
        _ => 1,
    }
}

fn run_inner(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args.into_iter().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    // a bare `--sentinel` (the seed's init-script form) becomes a lone `sentinel` line,
    // which the config reader skips as Redis does; `--sentinel monitor ...` stays a directive
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!("Redis server v={REDIS_VERSION} sha=00000000:0 malloc=libc bits=64 build=rf-sentinel-{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let (template, rest) = match crate::server::config::split_config_template(&args) {
        Ok(split) => split,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config_path = match rest.first() {
        Some(p) if !p.starts_with("--") => PathBuf::from(p),
        _ => {
            eprintln!("Sentinel needs config file on disk to save state.  Exiting...");
            return ExitCode::FAILURE;
        }
    };
    let options = &rest[1..];
    let is_daemon_child = std::env::var_os(DAEMON_CHILD_ENV).is_some();
    if let Some(t) = &template {
        if !is_daemon_child {
            if let Err(e) = std::fs::copy(t, &config_path) {
                eprintln!("Can't copy config template {t} to {}: {e}", config_path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let text = match std::fs::read_to_string(&config_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Fatal error, can't open config file '{}': {e}", config_path.display());
            return ExitCode::FAILURE;
        }
    };
    // command-line options are config lines read after the file's (they become config on
    // the next rewrite, as in Redis)
    let mut cfg = match config::load(&text, &config::command_line_to_text(options)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::OpenOptions::new().append(true).open(&config_path) {
        eprintln!("Sentinel config file {} is not writable: {e}. Exiting...", config_path.display());
        return ExitCode::FAILURE;
    }
    if cfg.myid.is_none() {
        cfg.myid = Some(config::random_run_id());
    }
    // relative paths are relative to the start directory; `dir` changes it like Redis
    let config_path = std::fs::canonicalize(&config_path).unwrap_or(config_path);
    if cfg.daemonize && !is_daemon_child {
        return daemonize(&rest, cfg.pidfile.as_deref());
    }
    if let Some(d) = &cfg.dir {
        if let Err(e) = std::env::set_current_dir(d) {
            eprintln!("Can't chdir to '{d}': {e}");
            return ExitCode::FAILURE;
        }
    }
    super::logging::init(cfg.logfile.as_deref(), cfg.daemonize, cfg.loglevel.as_deref());
    tracing::warn!("oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo");
    tracing::warn!(
        "Redis version={REDIS_VERSION}, bits=64, commit=00000000, modified=0, pid={}, just started (rf-sentinel {})",
        std::process::id(),
        env!("CARGO_PKG_VERSION")
    );
    tracing::warn!("Configuration loaded");
    if let Some(p) = &cfg.pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            tracing::warn!("Failed to write PID file {p}: {e}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("can't start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pidfile = cfg.pidfile.clone();
    let result = runtime.block_on(super::shell::run(cfg, config_path));
    if let Some(p) = pidfile {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // logged only, as Redis's serverLog: to the log file, or stdout without one (the
        // Redis test suites count any stderr output of an instance as a failure)
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `daemonize yes` without fork: start ourselves again detached (new process group, no
/// terminal), marked by an env variable; return once the child wrote its pidfile.
fn daemonize(args: &[String], pidfile: Option<&str>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("can't daemonize: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    // `args` keeps a `--sentinel` flag if we were started as `rf-server x.conf --sentinel`
    cmd.args(args)
        .env(DAEMON_CHILD_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("can't daemonize: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pid = child.id();
    let Some(pidfile) = pidfile else { return ExitCode::SUCCESS };
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("sentinel exited during start-up: {status}");
            return ExitCode::FAILURE;
        }
        if std::fs::read_to_string(Path::new(pidfile)).map(|t| t.trim() == pid.to_string()).unwrap_or(false) {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!("sentinel did not write its pidfile {pidfile} in 5 s");
    ExitCode::FAILURE
}
