//! Shared helpers for integration tests: free ports, spawning servers (ours or Debian's)
//! with a guard that kills them on drop, waiting for readiness, raw RESP exchanges and
//! `redis-cli` calls. Use from a test file with `mod common;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

include!("../ports/free_port.rs");
include!("../ports/own_process.rs");

/// Path of the `rf-server` binary built for this test run.
pub fn rf_server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rf-server"))
}

/// Debian's redis-server: the reference our behaviours are compared with.
pub const REDIS_BIN: &str = "/usr/bin/redis-server";

/// rf-server, then Debian's redis-server when it is installed: the servers a behaviour is
/// checked on side by side.
pub fn ours_and_reference() -> Vec<&'static str> {
    let mut bins = vec![env!("CARGO_BIN_EXE_rf-server")];
    if Path::new(REDIS_BIN).exists() {
        bins.push(REDIS_BIN);
    }
    bins
}

/// A running server process, killed (SIGKILL) and reaped on drop.
pub struct ServerGuard {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl ServerGuard {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Connection with the `redis` crate (sync API).
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("client").get_connection().expect("connect")
    }

    /// Waits for the process to exit by itself, up to `timeout`. Returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `bin` with `args` (`--port` is added) on a free port in a fresh temp dir (also
/// passed as `--dir`), stdout+stderr to `<dir>/server.log`, and waits until it answers.
/// Only our child counts (see `wait_own_process`): if another process holds the port,
/// it tries another one.
pub fn spawn_server(bin: &Path, args: &[&str]) -> ServerGuard {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let spawn = |port: u16| {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log clone");
        let mut cmd = Command::new(bin);
        cmd.args(args).arg("--port").arg(port.to_string()).arg("--dir").arg(dir.path()).current_dir(dir.path()).stdin(Stdio::null()).stdout(out).stderr(err);
        cmd.spawn()
    };
    let failed = |port: u16, why: NotStarted| {
        eprintln!("{} did not start on port {port} ({why:?}); log:\n{}", bin.display(), std::fs::read_to_string(&log).unwrap_or_default());
    };
    match start_own_child(5, Duration::from_secs(20), spawn, failed) {
        Ok((child, port)) => ServerGuard { child: Some(child), port, dir, log },
        Err(e) => panic!("{}: {e}", bin.display()),
    }
}

/// Starts our `rf-server` on a free port.
pub fn spawn_rf(args: &[&str]) -> ServerGuard {
    spawn_server(&rf_server_bin(), args)
}

/// Starts Debian's `redis-server` on a free port (reference for comparisons).
pub fn spawn_redis(args: &[&str]) -> ServerGuard {
    let mut all = vec!["--save", "", "--appendonly", "no"];
    all.extend_from_slice(args);
    spawn_server(Path::new("/usr/bin/redis-server"), &all)
}

/// Starts `bin` (ours or Debian's) for a replication test: no persistence, loopback only,
/// full syncs without Redis's 5 s diskless delay.
pub fn spawn_for_replication(bin: &str, args: &[&str]) -> ServerGuard {
    let mut all = vec!["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--repl-diskless-sync-delay", "0"];
    all.extend_from_slice(args);
    spawn_server(Path::new(bin), &all)
}

/// Polls `f` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// True once `PING` on `port` answers `+PONG` (or -NOAUTH/-LOADING: the server is up).
pub fn wait_ready(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(reply) = raw_exchange(port, b"PING\r\n", Duration::from_millis(500)) {
            if reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") || reply.starts_with(b"-LOADING") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    false
}

/// Sends raw bytes and returns whatever arrives until the peer closes or `quiet` passes
/// without new data.
pub fn raw_exchange(port: u16, data: &[u8], quiet: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(quiet))?;
    s.write_all(data)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Like [`raw_exchange`] but also reports whether the server closed the connection.
pub fn raw_exchange_closed(port: u16, data: &[u8], quiet: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(quiet)).expect("timeout");
    s.write_all(data).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// Runs `redis-cli -p port args...` and returns stdout (trimmed of the final newline).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().expect("run redis-cli");
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.strip_suffix('\n').unwrap_or(&s).to_string()
}

/// Runs a command with a time limit; returns (exit code, stdout, stderr).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().expect("spawn");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
