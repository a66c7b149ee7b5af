//! `rf-server`: a Redis 7.0-compatible data server.
//!
//! Module map:
//! - [`config`]: redis.conf parsing, the parameter table, CONFIG GET/SET/REWRITE.
//! - [`value`], [`keyspace`]: the compact keyspace (see `keyspace` for the layout).
//! - [`types`]: list/hash/set/zset structures (types family).
//! - [`command`]: the ONE command table ([`command::CommandSpec`]) and the handler
//!   context [`command::Ctx`]; [`commands`]: one file per family, collected by
//!   [`commands::all`].
//! - [`dispatch`]: Redis's processCommand/call: checks, stats, propagation, WATCH,
//!   blocking wake-ups.
//! - [`state`]: [`state::ServerState`] behind one mutex in [`state::Shared`].
//! - [`conn`]: tokio connection tasks (pipelined batches under one lock).
//! - [`pubsub`], [`notify`], [`evict`], [`log`].
//! - [`persistence`], [`replication`]: hooks filled by the persistence/replication family.
//!
//! ## Interfaces for the other families
//! - Types (list/hash/set/zset/hll/bitmap/sort): put structures in `types/*` (named
//!   `ListValue`, `HashValue`, `SetValue`, `ZSetValue`, each with `encoding()` and
//!   `memory_usage()`), commands in `commands/<family>.rs` (`pub fn commands()`), keys via
//!   `Ctx::lookup_read/lookup_write/add_value/value_at` and `Db::remove_at` when a value
//!   becomes empty; blocking commands call `Ctx::block(keys, deadline, timeout_reply)` and
//!   are re-run when a write calls `Ctx::signal_key_ready(key)` (FIFO per key, atomic with
//!   the write that served them; inside MULTI the timeout reply is returned at once).
//!   `command::parse_timeout` parses BLPOP-style timeouts.
//! - Persistence/replication: see the contracts in `persistence/mod.rs` and
//!   `replication/mod.rs`. Every write reaches `ReplicationState::feed` and
//!   `PersistenceState::feed` through `dispatch::propagate` (expired keys as DEL, SET EX
//!   as SET PXAT, EXEC wrapped in MULTI/EXEC). To apply a command stream (master link,
//!   AOF load) call `dispatch::execute(&mut state, &mut client, argv, now_ms)` with a
//!   `ClientState::internal(id)` whose `is_master_link` is true (no lazy expiry deletes,
//!   no OOM/read-only checks). To stream to a replica, send encoded bytes with
//!   `ClientState::send_raw`. `ServerState::dirty` counts changes, `lastsave` is LASTSAVE.
//!
//! Concurrency: parsing and socket I/O run on the multi-thread runtime; each connection
//! executes its whole pipelined batch under one short lock of `Shared::state`, which keeps
//! Redis's atomicity (commands, MULTI/EXEC, blocking wake-ups) without per-key locking.

pub mod acl;
pub mod client;
pub mod command;
pub mod commands;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod evict;
pub mod keyspace;
pub mod lazyfree;
pub mod log;
pub mod notify;
pub mod oom;
pub mod persistence;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod sentinel_mode;
pub mod startup_guard;
pub mod state;
pub mod types;
pub mod value;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use config::{Config, REDIS_VERSION, RF_VERSION};
use state::{ServerState, Shared, ShutdownRequest};

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Unix time in microseconds.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Stack of the runtime's threads. Scripts run there and recurse on it (cjson and cmsgpack
/// nest 1000 and 4000 levels deep, a reply up to Redis's ~8000 levels, see
/// `scripting::convert`); they ran on the main thread's 8 MB before the runtime had workers.
pub const SCRIPT_THREAD_STACK: usize = 64 * 1024 * 1024;

const DAEMON_ENV: &str = "RF_SERVER_DAEMON_CHILD";

pub fn version_line() -> String {
    format!("Redis server v={REDIS_VERSION} sha=00000000:0 malloc=libc bits=64 build=0000000000000000 rf-server={RF_VERSION}")
}

fn usage() {
    eprintln!(
        "Usage: ./rf-server [/path/to/redis.conf] [options] [-]
       ./rf-server - (read config from stdin)
       ./rf-server -v or --version
       ./rf-server -h or --help
       ./rf-server --config-template <template> /path/to/redis.conf [options]

Examples:
       ./rf-server (run the server with default conf)
       ./rf-server /etc/redis/6379.conf
       ./rf-server --port 7777
       ./rf-server --port 7777 --replicaof 127.0.0.1 8888
       ./rf-server /etc/myredis.conf --loglevel verbose -
       ./rf-server /etc/myredis.conf --loglevel verbose

Sentinel mode:
       ./rf-server /etc/sentinel.conf --sentinel"
    );
}

/// The whole `rf-server` program (arguments without the program name).
pub fn main_entry(args: Vec<String>) -> std::process::ExitCode {
    if args.iter().any(|a| a == "--sentinel") {
        return sentinel_mode::run(args);
    }
    std::process::ExitCode::from(server_main(args) as u8)
}

fn server_main(args: Vec<String>) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RF_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    if let Some(first) = args.first() {
        match first.as_str() {
            "-v" | "--version" => {
                println!("{}", version_line());
                return 0;
            }
            "-h" | "--help" => {
                usage();
                return 0;
            }
            _ => {}
        }
    }
    let (template, rest) = match config::split_config_template(&args) {
        Ok(split) => split,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let (conf_path, directives) = match rest.first() {
        Some(a) if !a.starts_with("--") => (Some(a.clone()), &rest[1..]),
        _ => (None, &rest[..]),
    };
    // A trailing "-" after options also means "read stdin" (as redis-server).
    let (conf_path, directives): (Option<String>, Vec<String>) = {
        let mut d: Vec<String> = directives.to_vec();
        let mut path = conf_path;
        if d.last().map(|s| s.as_str()) == Some("-") && path.is_none() {
            d.pop();
            path = Some("-".into());
        }
        (path, d)
    };
    if let Some(template) = template {
        let Some(dest) = &conf_path else {
            eprintln!("--config-template needs a config file path");
            return 1;
        };
        if let Err(e) = std::fs::copy(&template, dest) {
            eprintln!("Can't copy config template '{template}' to '{dest}': {}", config::io_reason(&e));
            return 1;
        }
    }
    let extra = config::args_to_text(&directives);
    let mut cfg = match config::load(conf_path.as_deref(), &extra) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if cfg.get_bool("daemonize") && std::env::var_os(DAEMON_ENV).is_none() {
        return daemonize(&args, &cfg);
    }
    log::set_exit_on_panic(cfg.get_bool("use-exit-on-panic"));
    if let Err(e) = log::init(cfg.get("logfile"), log::Level::parse(cfg.get("loglevel"))) {
        eprintln!("\n*** FATAL CONFIG FILE ERROR (Redis {REDIS_VERSION}) ***\nCan't open the log file: {}", config::io_reason(&e));
        return 1;
    }
    let pid = std::process::id();
    log::warning("oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo");
    log::warning(&format!("Redis version={REDIS_VERSION}, bits=64, commit=00000000, modified=0, pid={pid}, just started (rf-server {RF_VERSION})"));
    if conf_path.is_some() {
        log::warning("Configuration loaded");
    } else {
        log::warning("Warning: no config file specified, using the default config. In order to specify a config file use rf-server /path/to/redis.conf");
    }
    if let Some(check) = startup_guard::Check::from_config(&cfg) {
        startup_guard::run(&check, &mut cfg);
    }
    // `io-threads 1` (Redis's default) runs every connection on one worker thread, as Redis's
    // event loop does: measured on 2 cores, a second worker costs ~25% more CPU per request
    // (task wake-ups across threads) and only pays off when the machine has idle cores. It
    // is a multi-thread runtime with one worker (not current_thread) so that a busy script
    // can hand the worker to another thread (`scripting::busy`).
    let io_threads = cfg.get_int("io-threads").max(1) as usize;
    let built = tokio::runtime::Builder::new_multi_thread().worker_threads(io_threads).thread_stack_size(SCRIPT_THREAD_STACK).enable_all().build();
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            log::warning(&format!("Can't start the runtime: {e}"));
            return 1;
        }
    };
    runtime.block_on(serve(cfg))
}

/// The start-up banner shown instead of the "Running mode" line (with `always-show-logo
/// yes` or on a terminal). Tools and Redis's test harness read its `PID:` line.
pub fn startup_logo(mode: &str, port: u16) -> String {
    format!(
        "\n  rf-server {RF_VERSION}, Redis {REDIS_VERSION} compatible, 64 bit\n  Running in {mode} mode\n  Port: {port}\n  PID: {}\n\n",
        std::process::id()
    )
}

/// `daemonize yes`: no fork (unsafe is forbidden), so re-run ourselves detached with a
/// marker variable; the parent returns once the child wrote its pidfile (or exited).
fn daemonize(args: &[String], cfg: &Config) -> i32 {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("Can't find the executable to daemonize");
        return 1;
    };
    let pidfile = match cfg.get("pidfile") {
        "" => "/var/run/redis.pid".to_string(),
        p => p.to_string(),
    };
    // Relative paths were resolved against the original cwd before `dir` moved it.
    let mut command = std::process::Command::new(exe);
    command
        .args(args)
        .env(DAEMON_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    if let Some(dir) = std::env::var_os("PWD") {
        command.current_dir(dir);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Can't daemonize: {e}");
            return 1;
        }
    };
    let child_pid = child.id().to_string();
    let pid_path = if std::path::Path::new(&pidfile).is_absolute() { std::path::PathBuf::from(&pidfile) } else { std::path::Path::new(cfg.get("dir")).join(&pidfile) };
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code().unwrap_or(1);
        }
        if std::fs::read_to_string(&pid_path).map(|s| s.trim() == child_pid).unwrap_or(false) {
            return 0;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    0
}

fn pidfile_path(cfg: &Config) -> Option<String> {
    match cfg.get("pidfile") {
        "" if cfg.get_bool("daemonize") => Some("/var/run/redis.pid".into()),
        "" => None,
        p => Some(p.to_string()),
    }
}

/// Binds, loads data, serves until shutdown. Returns the exit code.
async fn serve(cfg: Config) -> i32 {
    let port = cfg.get_int("port") as u16;
    let binds: Vec<String> = cfg.get("bind").split_whitespace().map(|s| s.to_string()).collect();
    let renames = cfg.renames.clone();
    let table = Arc::new(command::CommandTable::build(commands::all(), &renames));
    let mut st = ServerState::new(cfg, table);
    if let Err(e) = st.load_users_at_startup() {
        log::warning(&e);
        return 1;
    }
    let pidfile = pidfile_path(&st.config);
    log::set_server_role(st.config.get("replicaof"));
    let listeners;
    let backlog = st.config.get_int("tcp-backlog").clamp(0, i64::from(i32::MAX)) as i32;
    if let Some(max) = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|t| t.trim().parse::<i32>().ok()) {
        if max < backlog {
            log::warning(&format!("WARNING: The TCP backlog setting of {backlog} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {max}."));
        }
    }
    if port != 0 && !binds.is_empty() {
        match bind_all(binds.iter().map(String::as_str), port, backlog) {
            Ok(l) if !l.is_empty() => listeners = l,
            _ => {
                log::warning(&format!("Failed listening on port {port} (tcp), aborting."));
                return 1;
            }
        }
    } else {
        listeners = Vec::new();
    }
    // The `unixsocket`, as Redis opens it: a stale file is removed first, the mode is
    // `unixsocketperm` when set, and a failure stops the start.
    let unixsocket = st.config.get("unixsocket").to_string();
    let unix_listener = if unixsocket.is_empty() {
        None
    } else {
        let _ = std::fs::remove_file(&unixsocket);
        match tokio::net::UnixListener::bind(&unixsocket) {
            Ok(l) => {
                let perm = u32::from_str_radix(st.config.get("unixsocketperm"), 8).unwrap_or(0);
                if perm > 0 {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&unixsocket, std::fs::Permissions::from_mode(perm));
                }
                Some(l)
            }
            Err(e) => {
                log::warning(&format!("Failed opening Unix socket: {}", config::io_reason(&e)));
                return 1;
            }
        }
    };
    if listeners.is_empty() && unix_listener.is_none() {
        log::warning("Configured to not listen anywhere, exiting.");
        return 1;
    }
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            log::warning(&format!("Failed to write PID file: {}", config::io_reason(&e)));
        }
    }
    if log::show_logo(st.config.get_bool("always-show-logo"), st.config.get_bool("syslog-enabled")) {
        log::raw(&startup_logo("standalone", port));
    } else {
        log::notice(&format!("Running mode=standalone, port={port}."));
    }
    log::warning("Server initialized");
    oom::apply_logged(&st.config);
    if let Err(e) = persistence::load_at_startup(&mut st) {
        log::warning(&format!("Fatal error loading the DB: {e}. Exiting."));
        return 1;
    }
    let watch = st.scripting.watch.clone();
    let single_worker = st.config.get_int("io-threads") <= 1;
    let commands = st.commands.clone();
    let shared = Arc::new(Shared { state: Mutex::new(st), shutdown: Notify::new(), watch, single_worker, commands });
    install_listeners(&shared, listeners);
    if let Some(unix) = unix_listener {
        let shared = shared.clone();
        let path = unixsocket.clone();
        tokio::spawn(async move {
            loop {
                match unix.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(conn::handle_unix(shared.clone(), stream, path.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("accept failed (unix socket): {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    tokio::spawn(cron(shared.clone()));
    persistence::start(&shared);
    replication::start(&shared);
    log::notice("Ready to accept connections tcp");
    if !unixsocket.is_empty() {
        log::notice(&format!("The server is now ready to accept connections at {unixsocket}"));
    }
    // Redis's sigsegvHandler for SIGABRT: the crash report, then the process dies of it
    // (the handler returned: glibc's abort() restores the default action and raises again)
    if let Ok(mut sigabrt) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(6)) {
        let shared = shared.clone();
        tokio::spawn(async move {
            sigabrt.recv().await;
            let enabled = shared.state.try_lock_for(std::time::Duration::from_millis(200)).is_none_or(|s| s.config.get_bool("crash-log-enabled"));
            log::crash_report(6, enabled);
            std::process::abort();
        });
    }
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    loop {
        tokio::select! {
            _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {
                log::warning("Received SIGTERM scheduling shutdown...");
                let mut srv = shared.state.lock();
                srv.shutdown_requested = Some(ShutdownRequest { save: None, force: false });
            }
            _ = async { match sigint.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {
                log::warning("Received SIGINT scheduling shutdown...");
                let mut srv = shared.state.lock();
                srv.shutdown_requested = Some(ShutdownRequest { save: None, force: false });
            }
            _ = shared.shutdown.notified() => {}
        }
        let mut srv = shared.state.lock();
        if let Some(req) = srv.shutdown_requested {
            match finish_shutdown(&mut srv, req) {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    log::warning(&format!("Errors trying to shut down the server: {e}"));
                    srv.shutdown_requested = None;
                }
            }
        }
    }
}

/// Binds `port` on every `bind` address (a leading `-` makes one optional), logging each
/// failure as Redis's listenToPort; Err when a required address failed. Optional addresses
/// that failed are left out, so the result may be empty.
fn bind_all<'a>(binds: impl IntoIterator<Item = &'a str>, port: u16, backlog: i32) -> Result<Vec<TcpListener>, ()> {
    let mut listeners = Vec::new();
    for b in binds {
        let (optional, addr) = match b.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, b),
        };
        let ip = match addr {
            "*" => "0.0.0.0",
            "::*" => "::",
            a => a,
        };
        let sock: SocketAddr = match format!("{ip}:{port}").parse().or_else(|_| format!("[{ip}]:{port}").parse()) {
            Ok(s) => s,
            Err(_) => {
                log::warning(&format!("Warning: Could not create server TCP listening socket {addr}:{port}: Invalid address"));
                if optional {
                    continue;
                }
                return Err(());
            }
        };
        match bind_listener(sock, backlog) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                if optional {
                    continue;
                }
                log::warning(&format!("Warning: Could not create server TCP listening socket {addr}:{port}: bind: {}", config::io_reason(&e)));
                return Err(());
            }
        }
    }
    Ok(listeners)
}

/// A listening socket as Redis's anetTcpServer makes it: SO_REUSEADDR, IPv6 sockets
/// IPv6-only (so `* -::*` binds both families), and `tcp-backlog` as the accept queue
/// (std's fixed 128 overflowed when clients connect faster than one accept round, and each
/// dropped SYN costs the client a 1 s retransmission).
fn bind_listener(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// The accept loops running now (CONFIG SET port / bind replaces them).
static ACCEPT_TASKS: parking_lot::Mutex<Vec<tokio::task::AbortHandle>> = parking_lot::Mutex::new(Vec::new());

/// Stops the accept loops running and serves `listeners` instead.
fn install_listeners(shared: &Arc<Shared>, listeners: Vec<TcpListener>) {
    let mut tasks = ACCEPT_TASKS.lock();
    for t in tasks.drain(..) {
        t.abort();
    }
    for listener in listeners {
        let shared = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let local = stream.local_addr().unwrap_or(peer);
                        tokio::spawn(conn::handle(shared.clone(), stream, peer, local));
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        tasks.push(task.abort_handle());
    }
}

/// CONFIG SET port / bind (Redis's changeListenPort / changeBindAddr): binds every
/// configured address on the configured port first; only when all succeed are the old
/// listeners closed. Returns the error text of Redis's CONFIG SET otherwise (the caller
/// rolls the configuration back).
pub fn apply_listen_config(cfg: &Config, bind_changed: bool) -> Result<(), String> {
    let failure = if bind_changed { "Failed to bind to specified addresses." } else { "Unable to listen on this port. Check server logs." };
    let Some(host) = persistence::shared_host() else { return Ok(()) };
    let port = cfg.get_int("port") as u16;
    let backlog = cfg.get_int("tcp-backlog").clamp(0, i64::from(i32::MAX)) as i32;
    // No address at all (`bind ""`) or only optional ones that failed: no TCP listener,
    // as Redis's listenToPort.
    let listeners = if port == 0 { Vec::new() } else { bind_all(cfg.get("bind").split_whitespace(), port, backlog).map_err(|()| failure.to_string())? };
    install_listeners(&host.shared, listeners);
    Ok(())
}

/// Saves (if asked or configured), removes the pidfile and logs; the caller exits.
/// Runs under the server lock so no command runs after it.
pub fn finish_shutdown(srv: &mut ServerState, req: ShutdownRequest) -> Result<(), String> {
    log::warning("User requested shutdown...");
    if let Err(e) = persistence::on_shutdown(srv, req.save) {
        if !req.force {
            return Err(e);
        }
    }
    if let Some(p) = pidfile_path(&srv.config) {
        log::notice("Removing the pid file.");
        let _ = std::fs::remove_file(p);
    }
    let unixsocket = srv.config.get("unixsocket");
    if !unixsocket.is_empty() {
        log::notice("Removing the unix socket file.");
        let _ = std::fs::remove_file(unixsocket);
    }
    log::warning("Redis is now ready to exit, bye bye...");
    Ok(())
}

/// Background work at `hz` (10/s): LRU clock, active expiry, client timeouts, persistence.
async fn cron(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        // Redis's serverCron does not run while a script is busy either.
        let Some(mut srv) = shared.lock_unless_busy().await else { continue };
        // A panic in one tick must not end the task for good: the LRU clock and active
        // expiry would silently stop for the life of the server. It is logged instead.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cron_tick(&mut srv)));
        drop(srv);
        if let Err(panic) = step {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            log::warning(&format!("Background cron step failed (a bug): {}", what.unwrap_or_default()));
        }
    }
}

fn cron_tick(srv: &mut ServerState) {
    // DEBUG PAUSE-CRON skips the whole tick, as Redis's serverCron.
    if srv.pause_cron {
        return;
    }
    let now = now_ms();
    srv.lru_clock = state::lru_clock_now();
    if srv.active_expire_enabled {
        if srv.repl.is_replica() {
            expire_replica_keys(srv, now);
        } else {
            active_expire_cycle(srv, now);
        }
    }
    let used = srv.used_memory();
    if used > srv.stat_peak_memory {
        srv.stat_peak_memory = used;
    }
    let st = &mut *srv;
    for c in st.clients.values() {
        st.clients_peak.track(now, c.qbuf, c.output_bytes());
    }
    let timeout = srv.limits.timeout_secs;
    if timeout > 0 {
        for c in srv.clients.values_mut() {
            if !c.blocked && c.subscriptions() == 0 && !c.is_replica && !c.is_master_link && (now - c.last_interaction_ms) / 1000 > timeout as i64 {
                c.killed = true;
                if let Some(tx) = &c.tx {
                    let _ = tx.send(client::Outbound::Close);
                }
            }
        }
    }
    persistence::cron(srv, now);
    if srv.tracking.tracking_clients() > 0 {
        crate::server::commands::tracking::limit_used_slots(srv, None);
    }
    if srv.limits.maxmemory > 0 {
        evict::perform_evictions(srv, None);
    }
}

/// Redis's expireSlaveKeys: a replica expires the keys its own clients gave a TTL (the
/// master sends no DEL for them); keys the master owns still wait for its DEL. At most
/// 1000 tracked keys are checked per run, from a random place when there are more.
pub fn expire_replica_keys(srv: &mut ServerState, now: i64) {
    use rand::Rng;
    let total = srv.replica_keys_with_expire.len();
    if total == 0 {
        return;
    }
    const BATCH: usize = 1000;
    let skip = if total > BATCH { rand::thread_rng().gen_range(0..total) } else { 0 };
    let batch: Vec<(bytes::Bytes, u64)> = srv.replica_keys_with_expire.iter().skip(skip).chain(srv.replica_keys_with_expire.iter()).take(BATCH.min(total)).map(|(k, v)| (k.clone(), *v)).collect();
    for (key, dbids) in batch {
        let mut still = 0u64;
        for dbi in 0..srv.dbs.len().min(64) {
            if dbids & (1u64 << dbi) == 0 {
                continue;
            }
            let Some(pos) = srv.dbs[dbi].find(&key) else { continue };
            let Some(when) = srv.dbs[dbi].expiry_of(pos) else { continue };
            if when > now {
                still |= 1u64 << dbi;
                continue;
            }
            delete_expired_key(srv, dbi, pos, now);
        }
        if still == 0 {
            srv.replica_keys_with_expire.remove(&key);
        } else {
            srv.replica_keys_with_expire.insert(key, still);
        }
    }
}

/// Redis's deleteExpiredKeyAndPropagate, for the server's own expiry (active cycle, a
/// writable replica's keys): the deletion (freeing the value included) is the "expire-del"
/// latency event; then the stats, WATCH and tracking, the keyspace event and the DEL.
fn delete_expired_key(srv: &mut ServerState, dbi: usize, pos: usize, now: i64) {
    let del_started = std::time::Instant::now();
    let slot = srv.dbs[dbi].remove_at(pos);
    let key = bytes::Bytes::copy_from_slice(slot.key.as_slice());
    drop(slot);
    commands::latency::sample_event(srv, "expire-del", del_started.elapsed(), now);
    srv.stats.expired_keys += 1;
    srv.touch_watched_key(dbi, &key, None);
    notify::notify(srv, notify::EXPIRED, "expired", &key, dbi);
    dispatch::propagate(srv, dbi, &[bytes::Bytes::from_static(b"DEL"), key]);
}

/// Redis's active expiry: sample 20 keys with a TTL per db, delete the expired ones,
/// repeat while more than 25% were expired, within a time budget of 25 ms per run.
pub fn active_expire_cycle(srv: &mut ServerState, now: i64) {
    let started = std::time::Instant::now();
    for dbi in 0..srv.dbs.len() {
        let mut iterations = 0;
        loop {
            iterations += 1;
            if srv.dbs[dbi].expires_len() == 0 {
                break;
            }
            let mut expired = 0;
            let mut sampled = 0;
            let mut ttl_sum = 0i64;
            for _ in 0..20 {
                let Some((pos, when)) = srv.dbs[dbi].random_volatile() else { break };
                sampled += 1;
                if when <= now {
                    delete_expired_key(srv, dbi, pos, now);
                    expired += 1;
                } else {
                    ttl_sum += when - now;
                }
            }
            if sampled > expired {
                let avg = ttl_sum / (sampled - expired) as i64;
                let db = &mut srv.dbs[dbi];
                db.avg_ttl = if db.avg_ttl == 0 { avg } else { (db.avg_ttl / 50) * 49 + avg / 50 };
            }
            if expired * 4 <= sampled || iterations % 16 == 0 && started.elapsed() > Duration::from_millis(25) {
                break;
            }
        }
    }
    commands::latency::sample_event(srv, "expire-cycle", started.elapsed(), now);
}
