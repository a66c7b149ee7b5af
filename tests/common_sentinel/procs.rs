//! Real processes on 127.0.0.1 for sentinel integration tests: data servers (our
//! `rf-server` unless `RF_TEST_SERVER_BIN` names another, e.g. /usr/bin/redis-server),
//! rf-sentinels and Debian `redis-sentinel`s. Every process is killed when its guard drops.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

include!("../ports/free_port.rs");
include!("../ports/own_process.rs");

pub fn server_bin() -> String {
    std::env::var("RF_TEST_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rf-server").into())
}

pub const RF_SENTINEL: &str = env!("CARGO_BIN_EXE_rf-sentinel");
pub const REDIS_SENTINEL: &str = "/usr/bin/redis-sentinel";

/// A process killed (SIGKILL) on drop; `pid_file` processes (daemonized) are killed by pid.
pub struct Proc {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    pid_file: Option<PathBuf>,
}

impl Proc {
    pub fn pid(&self) -> Option<u32> {
        if let Some(c) = &self.child {
            return Some(c.id());
        }
        let p = self.pid_file.as_ref()?;
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    /// Guards a process started by the caller (e.g. with its own working directory).
    pub fn from_child(child: Child, port: u16) -> Proc {
        Proc { name: format!("proc:{port}"), port, child: Some(child), pid_file: None }
    }

    /// Starts `bin conf` (a config naming `port`) and waits until it answers there.
    pub fn spawn_for_test(bin: &str, conf: &Path, port: u16) -> Proc {
        let child = Command::new(bin).arg(conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start process");
        Proc::from_child(child, port).expect_started()
    }

    /// Self once this process answers on its port; panics if another process holds the
    /// port or this one exited.
    pub fn expect_started(self) -> Proc {
        let (name, port) = (self.name.clone(), self.port);
        self.started().unwrap_or_else(|| panic!("{name} did not start: port {port} is held by another process, or it exited"))
    }

    pub fn kill(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).stderr(Stdio::null()).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(p) = self.pid_file.take() {
            // daemon: wait until it is gone
            let _ = std::fs::remove_file(p);
        }
    }

    /// Self once the process answering on its port is this one (a daemon: the pid in its
    /// pid file); None (and the process killed) if another process holds the port or ours
    /// exited.
    pub fn started(mut self) -> Option<Proc> {
        let port = self.port;
        let daemon = self.child.is_none();
        let child_pid = self.child.as_ref().map(|c| c.id());
        let pid_file = self.pid_file.clone();
        let child = &mut self.child;
        let ours = wait_own_process(
            port,
            || child_pid.or_else(|| std::fs::read_to_string(pid_file.as_ref()?).ok()?.trim().parse().ok()),
            || !daemon && child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)))),
            Duration::from_secs(10),
        );
        if ours {
            return Some(self);
        }
        if daemon {
            // a daemon that lost the port race exits by itself, and its pid file may be
            // stale: kill nothing by it
            self.pid_file = None;
        }
        self.kill();
        None
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => self.pid().is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a data server on a free port (`Proc::port`), as a replica of `replica_of` if given.
/// Only our child counts as started (see `wait_own_process`); if another process holds
/// the port, another one is tried.
pub fn start_server(dir: &Path, replica_of: Option<u16>) -> Proc {
    for _ in 0..5 {
        if let Some(p) = try_start_server(dir, free_port(), replica_of) {
            return p;
        }
    }
    panic!("no data server could start on a free port in 5 attempts");
}

/// A master and `replicas` replicas of it, each on a free port: their ports and processes,
/// master first.
pub fn start_servers(dir: &Path, replicas: usize) -> (Vec<u16>, Vec<Proc>) {
    let master = start_server(dir, None);
    let mport = master.port;
    let mut procs = vec![master];
    procs.extend((0..replicas).map(|_| start_server(dir, Some(mport))));
    (procs.iter().map(|p| p.port).collect(), procs)
}

/// One sentinel of each kind in `kinds` watching `master_port`: their ports and processes.
pub fn start_sentinels(kinds: &[SentinelKind], dir: &Path, master_port: u16, o: &SentinelOpts) -> (Vec<u16>, Vec<Proc>) {
    let procs: Vec<Proc> = kinds.iter().map(|k| start_sentinel(*k, dir, master_port, o)).collect();
    (procs.iter().map(|p| p.port).collect(), procs)
}

/// Starts a data server again on the port it had (a restarted member keeps its address).
pub fn restart_server(dir: &Path, port: u16, replica_of: Option<u16>) -> Proc {
    try_start_server(dir, port, replica_of).unwrap_or_else(|| panic!("port {port} is held by another process: cannot restart the server there"))
}

fn try_start_server(dir: &Path, port: u16, replica_of: Option<u16>) -> Option<Proc> {
    start_server_on(&server_bin(), dir, port, replica_of, &[])
}

/// Starts the data server `bin` on `port` with its files in `dir` (no snapshots, no AOF, then
/// `extra` directives, which win), as a replica of `replica_of` if given; None (and the
/// process killed) if another process holds the port or it exited.
pub fn start_server_on(bin: &str, dir: &Path, port: u16, replica_of: Option<u16>, extra: &[&str]) -> Option<Proc> {
    let mut cmd = Command::new(bin);
    cmd.arg("--port").arg(port.to_string())
        .arg("--bind").arg("127.0.0.1")
        .arg("--save").arg("")
        .arg("--appendonly").arg("no")
        .arg("--dir").arg(dir)
        .arg("--enable-debug-command").arg("yes")
        .arg("--repl-diskless-sync-delay").arg("0")
        .arg("--logfile").arg(dir.join(format!("server-{port}.log")));
    if let Some(m) = replica_of {
        cmd.arg("--replicaof").arg("127.0.0.1").arg(m.to_string());
    }
    cmd.args(extra);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn().expect("start data server");
    Proc { name: format!("server:{port}"), port, child: Some(child), pid_file: None }.started()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SentinelKind {
    Rf,
    Debian,
}

pub struct SentinelOpts {
    pub quorum: u32,
    pub down_after: u64,
    pub failover_timeout: u64,
    pub daemonize: bool,
}

/// Writes the seed tutorial's sentinel config (loopback, a free port) and starts it; the
/// port is `Proc::port`.
pub fn start_sentinel(kind: SentinelKind, dir: &Path, master_port: u16, o: &SentinelOpts) -> Proc {
    start_sentinel_with(kind, |port| {
        let conf = dir.join(format!("sentinel-{port}.conf"));
        let pidfile = dir.join(format!("sentinel-{port}.pid"));
        let mut text = format!(
            "bind 127.0.0.1\nport {port}\nsentinel monitor mymaster 127.0.0.1 {master_port} {}\nsentinel down-after-milliseconds mymaster {}\nsentinel parallel-syncs mymaster 1\nsentinel failover-timeout mymaster {}\n",
            o.quorum, o.down_after, o.failover_timeout
        );
        text.push_str(&format!("logfile \"{}\"\ndir \"{}\"\n", dir.join(format!("sentinel-{port}.log")).display(), dir.display()));
        if o.daemonize {
            text.push_str(&format!("daemonize yes\npidfile \"{}\"\n", pidfile.display()));
        }
        std::fs::write(&conf, text).unwrap();
        (conf, o.daemonize.then_some(pidfile))
    })
}

/// Starts a sentinel from the config `write_conf(port)` writes for a free port (it returns
/// the config path and, for a daemon, its pid file); another port if that one is taken.
pub fn start_sentinel_with(kind: SentinelKind, mut write_conf: impl FnMut(u16) -> (PathBuf, Option<PathBuf>)) -> Proc {
    for _ in 0..5 {
        let port = free_port();
        let (conf, pidfile) = write_conf(port);
        if let Some(p) = try_start_sentinel(kind, &conf, port, pidfile) {
            return p;
        }
    }
    panic!("no {kind:?} sentinel could start on a free port in 5 attempts");
}

/// Starts a sentinel from a config that names its port (a restart keeps it); panics if
/// another process holds that port.
pub fn start_sentinel_from(kind: SentinelKind, conf: &Path, port: u16, pidfile: Option<PathBuf>) -> Proc {
    try_start_sentinel(kind, conf, port, pidfile).unwrap_or_else(|| panic!("port {port} is held by another process: cannot start the sentinel of {}", conf.display()))
}

fn try_start_sentinel(kind: SentinelKind, conf: &Path, port: u16, pidfile: Option<PathBuf>) -> Option<Proc> {
    let bin = match kind {
        SentinelKind::Rf => RF_SENTINEL,
        SentinelKind::Debian => REDIS_SENTINEL,
    };
    let mut cmd = Command::new(bin);
    cmd.arg(conf).stdout(Stdio::null()).stderr(Stdio::null());
    let p = if let Some(pf) = pidfile {
        let status = cmd.status().expect("start daemonized sentinel");
        assert!(status.success(), "daemonized sentinel start failed: {status}");
        Proc { name: format!("sentinel:{port}"), port, child: None, pid_file: Some(pf) }
    } else {
        Proc { name: format!("sentinel:{port}"), port, child: Some(cmd.spawn().expect("start sentinel")), pid_file: None }
    };
    p.started()
}

pub fn conn(port: u16) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let con = c.get_connection_with_timeout(Duration::from_millis(500))?;
    con.set_read_timeout(Some(Duration::from_secs(3)))?;
    con.set_write_timeout(Some(Duration::from_secs(3)))?;
    Ok(con)
}

pub fn wait_until(max: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + max;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

pub fn sentinel_cmd<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let mut c = conn(port)?;
    let mut cmd = redis::cmd("SENTINEL");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(&mut c)
}

pub fn master_addr(sentinel_port: u16) -> Option<u16> {
    let v: Vec<String> = sentinel_cmd(sentinel_port, &["get-master-addr-by-name", "mymaster"]).ok()?;
    v.get(1)?.parse().ok()
}

pub fn masters(sentinel_port: u16) -> Vec<HashMap<String, String>> {
    sentinel_cmd(sentinel_port, &["masters"]).unwrap_or_default()
}

/// ("master", None) or ("slave", Some(master port), link up)
pub fn role(port: u16) -> Option<(String, Option<u16>, bool)> {
    let mut c = conn(port).ok()?;
    let info: String = redis::cmd("INFO").arg("replication").query(&mut c).ok()?;
    let mut role = None;
    let mut mport = None;
    let mut up = false;
    for l in info.lines() {
        let l = l.trim();
        if let Some(v) = l.strip_prefix("role:") {
            role = Some(v.to_string());
        }
        if let Some(v) = l.strip_prefix("master_port:") {
            mport = v.parse().ok();
        }
        if l == "master_link_status:up" {
            up = true;
        }
    }
    Some((role?, mport, up))
}

/// Writes keys with `SET` + `WAIT 1 <ms>` to whatever the sentinels say is the master;
/// remembers the keys acknowledged by at least one replica and the longest write gap.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::sync::Arc<std::sync::Mutex<WriterResult>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default, Clone)]
pub struct WriterResult {
    pub acked: Vec<String>,
    /// When each of `acked` was acknowledged.
    pub acked_at: Vec<Instant>,
    pub attempts: u64,
    /// (gap ms, when the gap ended)
    pub max_gap_ms: u64,
    pub gaps: Vec<(Instant, Instant)>,
    /// Every write a master answered `OK` to (confirmed by a replica or not): the master's
    /// port, the key, when.
    pub set_ok: Vec<(u16, String, Instant)>,
}

impl WriterResult {
    /// The longest stretch without an acknowledged write around `t` (from the last ack
    /// before it to the first ack after it), in ms; 0 if writes never stopped there. An ack
    /// is timed when the writer thread records it, which on a loaded machine can be a while
    /// after the reply arrived: a gap starting up to 500 ms after `t` still counts.
    pub fn gap_around(&self, t: Instant) -> u128 {
        self.gaps
            .iter()
            .filter(|(a, b)| *a <= t + Duration::from_millis(500) && *b >= t)
            .map(|(a, b)| b.duration_since(*a).as_millis())
            .max()
            .unwrap_or(0)
    }
}

impl Writer {
    pub fn start(sentinel_ports: Vec<u16>, prefix: &str) -> Writer {
        Writer::start_paced(sentinel_ports, prefix, Duration::ZERO)
    }

    /// Like `start`, at most one write per `interval` (a long run's dataset stays small,
    /// and fast and slow systems write the same amount).
    pub fn start_paced(sentinel_ports: Vec<u16>, prefix: &str, interval: Duration) -> Writer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = std::sync::Arc::new(std::sync::Mutex::new(WriterResult::default()));
        let (s2, r) = (stop.clone(), log.clone());
        let prefix = prefix.to_string();
        let handle = std::thread::spawn(move || {
            let mut i = 0u64;
            let mut last_ok = Instant::now();
            let mut last_write = Instant::now();
            let mut con: Option<(u16, redis::Connection)> = None;
            // Like a sentinel-aware client: ask the sentinels for the master when there is
            // no connection, after an error or an unacknowledged write, and every 250 ms;
            // not before every write (a new sentinel connection per write capped the
            // writer at a few thousand writes/s whatever the server).
            let mut last_lookup: Option<Instant> = None;
            while !s2.load(std::sync::atomic::Ordering::SeqCst) {
                let stale = last_lookup.is_none_or(|t| t.elapsed() > Duration::from_millis(250));
                if con.is_none() || stale {
                    last_lookup = Some(Instant::now());
                    let master = sentinel_ports.iter().find_map(|p| master_addr(*p));
                    let Some(mport) = master else {
                        con = None;
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    if con.as_ref().map(|c| c.0) != Some(mport) {
                        con = conn(mport).ok().map(|c| (mport, c));
                    }
                }
                let Some((mport, c)) = con.as_mut() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if let Some(wait) = interval.checked_sub(last_write.elapsed()) {
                    std::thread::sleep(wait);
                }
                last_write = Instant::now();
                i += 1;
                let key = format!("{prefix}:{i}");
                let res: redis::RedisResult<(String, i64)> = redis::pipe().cmd("SET").arg(&key).arg(i).cmd("WAIT").arg(1).arg(200).query(c);
                let now = Instant::now();
                let mut r = r.lock().expect("writer log");
                r.attempts += 1;
                match res {
                    Ok((_, n)) => {
                        r.set_ok.push((*mport, key.clone(), now));
                        if n >= 1 {
                            let gap = now.duration_since(last_ok);
                            if gap > Duration::from_millis(100) {
                                r.gaps.push((last_ok, now));
                            }
                            r.max_gap_ms = r.max_gap_ms.max(gap.as_millis() as u64);
                            last_ok = now;
                            r.acked.push(key);
                            r.acked_at.push(now);
                        } else {
                            last_lookup = None;
                        }
                    }
                    Err(e) => {
                        drop(r);
                        last_lookup = None;
                        if std::env::var_os("RF_TEST_DEBUG").is_some() {
                            eprintln!("writer error: {e}");
                        }
                        con = None;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }
        });
        Writer { stop, log, handle: Some(handle) }
    }

    /// A copy of what the writer has recorded so far.
    pub fn snapshot(&self) -> WriterResult {
        self.log.lock().expect("writer log").clone()
    }

    /// Keys the master on `port` answered `OK` to since `since`.
    pub fn set_ok_by(&self, port: u16, since: Instant) -> Vec<String> {
        let log = self.log.lock().expect("writer log");
        log.set_ok.iter().filter(|(p, _, t)| *p == port && *t >= since).map(|(_, k, _)| k.clone()).collect()
    }

    pub fn finish(mut self) -> WriterResult {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.log.lock().expect("writer log"))
    }
}

/// Keys of `acked` missing on the server at `port`.
pub fn missing_keys(port: u16, acked: &[String]) -> Vec<String> {
    let mut c = conn(port).expect("connect to check keys");
    let mut missing = Vec::new();
    for chunk in acked.chunks(500) {
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut c).unwrap();
        for (k, v) in chunk.iter().zip(vals) {
            if v.is_none() {
                missing.push(k.clone());
            }
        }
    }
    missing
}
