//! Full-sync details, each checked against Debian redis-server with the same test body:
//! - a diskless transfer leaves the replica `online` but holds the command stream until
//!   the replica's first `REPLCONF ACK`;
//! - `repl-diskless-sync-delay` makes replicas wait for a shared transfer, and
//!   `repl-diskless-sync-max-replicas` starts it as soon as that many wait;
//! - `client-output-buffer-limit replica` drops a replica that stopped reading (hard limit
//!   at once, soft limit after its seconds) with Redis's log line, and only that one;
//! - `repl-diskless-load swapdb` keeps serving the old dataset until the new one is whole.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{wait_for, ServerGuard};

const RF: &str = env!("CARGO_BIN_EXE_rf-server");
const REDIS: &str = "/usr/bin/redis-server";

fn have_redis() -> bool {
    Path::new(REDIS).exists()
}

fn spawn(bin: &str, args: &[&str]) -> ServerGuard {
    let mut all = vec!["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"];
    all.extend_from_slice(args);
    common::spawn_server(Path::new(bin), &all)
}

fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let info = common::redis_cli(port, &["INFO", section]);
    info.lines().find_map(|l| l.trim().strip_prefix(&format!("{field}:")).map(str::to_string))
}

/// A replica we drive by hand over a socket.
struct FakeReplica {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl FakeReplica {
    fn connect(port: u16) -> FakeReplica {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to master");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        FakeReplica { stream, buf: Vec::new() }
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream.write_all(out.as_bytes()).unwrap();
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read from master");
        assert!(n > 0, "master closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Next non-empty line (keep-alive newlines skipped).
    fn line(&mut self) -> String {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=p).collect();
                let text = String::from_utf8_lossy(&raw).trim_end().to_string();
                if !text.is_empty() {
                    return text;
                }
                continue;
            }
            self.fill();
        }
    }

    /// Handshake and PSYNC ? -1; returns the offset of `+FULLRESYNC` after reading the
    /// whole RDB payload (disk `$<len>` or diskless `$EOF:<mark>` form).
    fn full_sync(&mut self, capa_eof: bool) -> i64 {
        self.send(&["PING"]);
        assert_eq!(self.line(), "+PONG");
        self.send(&["REPLCONF", "listening-port", "4321"]);
        assert_eq!(self.line(), "+OK");
        if capa_eof {
            self.send(&["REPLCONF", "capa", "eof", "capa", "psync2"]);
        } else {
            self.send(&["REPLCONF", "capa", "psync2"]);
        }
        assert_eq!(self.line(), "+OK");
        self.send(&["PSYNC", "?", "-1"]);
        let reply = self.line();
        let offset: i64 = reply.strip_prefix("+FULLRESYNC ").and_then(|r| r.split(' ').nth(1)).and_then(|o| o.parse().ok()).unwrap_or_else(|| panic!("bad PSYNC reply {reply}"));
        let header = self.line();
        if let Some(mark) = header.strip_prefix("$EOF:") {
            let mark = mark.as_bytes().to_vec();
            loop {
                if let Some(p) = self.buf.windows(mark.len()).position(|w| w == &mark[..]) {
                    self.buf.drain(..p + mark.len());
                    break;
                }
                self.fill();
            }
        } else {
            let len: usize = header.strip_prefix('$').and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("bad payload header {header}"));
            while self.buf.len() < len {
                self.fill();
            }
            self.buf.drain(..len);
        }
        offset
    }

    /// Whatever arrives within `quiet`.
    fn read_for(&mut self, quiet: Duration) -> Vec<u8> {
        self.stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let deadline = Instant::now() + quiet;
        let mut chunk = [0u8; 65536];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
        self.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::mem::take(&mut self.buf)
    }

    /// Reads until the master closes the connection; false if it is still open after `timeout`.
    fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 1 << 20];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => {}
            }
        }
        false
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn diskless_stream_waits_for_first_ack(bin: &str) {
    let master = spawn(bin, &["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]);
    common::redis_cli(master.port, &["SET", "before", "1"]);
    let mut replica = FakeReplica::connect(master.port);
    let offset = replica.full_sync(true);
    assert!(
        wait_for(Duration::from_secs(5), || info_field(master.port, "replication", "slave0").is_some_and(|s| s.contains("state=online"))),
        "{bin}: replica not online after the transfer: {:?}",
        info_field(master.port, "replication", "slave0")
    );
    assert_eq!(common::redis_cli(master.port, &["SET", "written-after-transfer", "x"]), "OK");
    let early = replica.read_for(Duration::from_millis(800));
    assert!(!contains(&early, "written-after-transfer"), "{bin}: stream sent before the replica's first ACK: {:?}", String::from_utf8_lossy(&early));
    replica.send(&["REPLCONF", "ACK", &offset.to_string()]);
    let mut late = Vec::new();
    let got = wait_for(Duration::from_secs(5), || {
        late.extend(replica.read_for(Duration::from_millis(100)));
        contains(&late, "written-after-transfer")
    });
    assert!(got, "{bin}: no stream after the first ACK: {:?}", String::from_utf8_lossy(&late));
}

#[test]
fn diskless_stream_starts_on_first_ack_as_redis() {
    if have_redis() {
        diskless_stream_waits_for_first_ack(REDIS);
    }
    diskless_stream_waits_for_first_ack(RF);
}

fn link_up(port: u16) -> bool {
    info_field(port, "replication", "master_link_status").as_deref() == Some("up")
}

fn diskless_delay_and_max_replicas(bin: &str) {
    // A lone replica waits the whole delay, listed as wait_bgsave meanwhile.
    let master = spawn(bin, &["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "3"]);
    let mport = master.port.to_string();
    let start = Instant::now();
    let replica = spawn(RF, &["--replicaof", "127.0.0.1", &mport]);
    assert!(
        wait_for(Duration::from_secs(2), || info_field(master.port, "replication", "slave0").is_some_and(|s| s.contains("state=wait_bgsave"))),
        "{bin}: waiting replica not listed as wait_bgsave: {:?}",
        common::redis_cli(master.port, &["INFO", "replication"])
    );
    assert!(wait_for(Duration::from_secs(15), || link_up(replica.port)), "{bin}: replica never synced");
    let waited = start.elapsed();
    // Redis counts the wait in whole seconds of its clock: 3 means more than 2.
    assert!(waited >= Duration::from_millis(2000), "{bin}: the transfer did not wait repl-diskless-sync-delay (synced after {waited:?})");
    assert!(master.log_text().contains("Delay next BGSAVE for diskless SYNC"), "{bin}: no delay log line");
    drop(replica);
    drop(master);

    // With max-replicas 2 the transfer starts when the second replica arrives, long before
    // the delay, and both share it (one BGSAVE for SYNC).
    let master = spawn(bin, &["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "60", "--repl-diskless-sync-max-replicas", "2"]);
    common::redis_cli(master.port, &["SET", "k", "v"]);
    let mport = master.port.to_string();
    let first = spawn(RF, &["--replicaof", "127.0.0.1", &mport]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!link_up(first.port), "{bin}: a single replica synced before the delay with max-replicas 2");
    let second_bin = if have_redis() { REDIS } else { RF };
    let second = spawn(second_bin, &["--replicaof", "127.0.0.1", &mport]);
    assert!(
        wait_for(Duration::from_secs(15), || link_up(first.port) && link_up(second.port)),
        "{bin}: replicas did not sync once max-replicas were waiting"
    );
    let starts = master.log_text().matches("Starting BGSAVE for SYNC with target: replicas sockets").count();
    assert_eq!(starts, 1, "{bin}: expected one shared transfer, log:\n{}", master.log_text());
    assert_eq!(common::redis_cli(second.port, &["GET", "k"]), "v");
    assert_eq!(common::redis_cli(first.port, &["GET", "k"]), "v");
}

#[test]
fn diskless_sync_delay_and_max_replicas_as_redis() {
    if have_redis() {
        diskless_delay_and_max_replicas(REDIS);
    }
    diskless_delay_and_max_replicas(RF);
}

/// Writes `count` values of `size` bytes, at a pace a healthy replica (even a debug build
/// on a busy machine) keeps up with.
fn write_big_values(port: u16, count: usize, size: usize) {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    let value = "x".repeat(size);
    for i in 0..count {
        redis::cmd("SET").arg(format!("big:{}", i % 8)).arg(&value).query::<()>(&mut c).unwrap();
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn output_limit_drops_stalled_replica(bin: &str, limit: &[&str], keep_writing: bool) {
    let mut args = vec!["--repl-diskless-sync", "no", "--client-output-buffer-limit"];
    args.extend_from_slice(limit);
    let master = spawn(bin, &args);
    let mport = master.port.to_string();
    // A healthy replica under the same load must stay.
    let healthy = spawn(RF, &["--replicaof", "127.0.0.1", &mport]);
    assert!(wait_for(Duration::from_secs(15), || link_up(healthy.port)), "{bin}: healthy replica never synced");
    let mut stalled = FakeReplica::connect(master.port);
    let offset = stalled.full_sync(false);
    stalled.send(&["REPLCONF", "ACK", &offset.to_string()]);
    assert!(wait_for(Duration::from_secs(5), || info_field(master.port, "replication", "connected_slaves").as_deref() == Some("2")));
    // The stalled replica reads nothing from now on: 48 MB fill the socket buffers and
    // then the master's output buffer for it.
    write_big_values(master.port, 96, 512 * 1024);
    if keep_writing {
        // Soft limit: stay above it for longer than its seconds (Redis checks on writes).
        for i in 0..30 {
            common::redis_cli(master.port, &["SET", "tick", &i.to_string()]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        wait_for(Duration::from_secs(10), || info_field(master.port, "replication", "connected_slaves").as_deref() == Some("1")),
        "{bin} {limit:?}: the stalled replica was not dropped: {}",
        common::redis_cli(master.port, &["INFO", "replication"])
    );
    assert!(
        master.log_text().contains("for overcoming of output buffer limits."),
        "{bin}: no output buffer log line:\n{}",
        master.log_text()
    );
    assert!(stalled.closed_within(Duration::from_secs(20)), "{bin}: the dropped replica's connection stayed open");
    let slave0 = info_field(master.port, "replication", "slave0").unwrap_or_default();
    assert!(slave0.contains(&format!("port={}", healthy.port)), "{bin}: the healthy replica was dropped too: {slave0}\nping: {:?} log {:?}: {}", common::redis_cli(master.port, &["PING"]), master.log, master.log_text());
    let master_offset = info_field(master.port, "replication", "master_repl_offset");
    assert!(
        wait_for(Duration::from_secs(20), || info_field(healthy.port, "replication", "slave_repl_offset") == master_offset),
        "{bin}: healthy replica did not catch up"
    );
}

#[test]
fn replica_output_buffer_hard_limit_as_redis() {
    if have_redis() {
        output_limit_drops_stalled_replica(REDIS, &["replica", "4mb", "0", "0"], false);
    }
    output_limit_drops_stalled_replica(RF, &["replica", "4mb", "0", "0"], false);
}

#[test]
fn replica_output_buffer_soft_limit_as_redis() {
    if have_redis() {
        output_limit_drops_stalled_replica(REDIS, &["replica", "0", "2mb", "1"], true);
    }
    output_limit_drops_stalled_replica(RF, &["replica", "0", "2mb", "1"], true);
}

/// Re-points a replica holding one key to a master with 200k keys and samples the replica
/// during the sync. Returns how many samples were refused with -LOADING.
fn full_sync_samples(diskless_load: &str) -> usize {
    const KEYS: usize = 200_000;
    let master = spawn(RF, &["--repl-diskless-sync-delay", "0"]);
    {
        let mut c = master.client();
        for chunk in 0..KEYS / 10_000 {
            let mut p = redis::pipe();
            for i in chunk * 10_000..(chunk + 1) * 10_000 {
                p.cmd("SET").arg(format!("new:{i}")).arg(i).ignore();
            }
            p.query::<()>(&mut c).unwrap();
        }
    }
    let replica = spawn(RF, &["--repl-diskless-load", diskless_load]);
    let mut c = replica.client();
    redis::cmd("SET").arg("old").arg("kept").query::<()>(&mut c).unwrap();
    redis::cmd("REPLICAOF").arg("127.0.0.1").arg(master.port).query::<()>(&mut c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut samples, mut loading) = (0, 0);
    loop {
        // One pipeline runs as one batch on the server: a consistent view.
        let sample: redis::RedisResult<(usize, Option<String>)> = redis::pipe().cmd("DBSIZE").cmd("GET").arg("old").query(&mut c);
        samples += 1;
        match sample {
            Ok((1, Some(old))) if old == "kept" => {}
            Ok((n, None)) if n == KEYS => break,
            Ok(other) => panic!("{diskless_load}: replica showed a partial dataset during the sync: {other:?} after {samples} samples"),
            Err(e) if e.to_string().contains("loading the dataset") => loading += 1,
            Err(e) => panic!("{diskless_load}: unexpected error during the sync: {e}"),
        }
        assert!(Instant::now() < deadline, "{diskless_load}: replica never switched to the new dataset");
    }
    assert!(wait_for(Duration::from_secs(5), || link_up(replica.port)));
    assert_eq!(common::redis_cli(replica.port, &["GET", "new:12345"]), "12345");
    loading
}

#[test]
fn swapdb_replica_serves_old_data_until_the_new_dataset_is_whole() {
    let loading = full_sync_samples("swapdb");
    assert_eq!(loading, 0, "swapdb must keep serving the old dataset, not reply -LOADING");
}

#[test]
fn disabled_diskless_load_replies_loading_never_a_partial_dataset() {
    let loading = full_sync_samples("disabled");
    assert!(loading > 0, "repl-diskless-load disabled: clients were never told -LOADING while the dataset was replaced");
}

/// Starts `bin` in `dir` (kept across restarts) as a replica of `master`, and waits until
/// its link is up.
fn start_replica_in(bin: &str, port: u16, dir: &Path, master: u16, args: &[&str]) -> std::process::Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    let child = std::process::Command::new(bin)
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(["--replicaof", "127.0.0.1", &master.to_string()])
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(common::wait_ready(port, Duration::from_secs(20)), "{bin} replica did not start");
    assert!(wait_for(Duration::from_secs(20), || link_up(port)), "{bin} replica never linked to its master");
    child
}

fn info_int(port: u16, section: &str, field: &str) -> i64 {
    info_field(port, section, field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// `repl-diskless-load`: `disabled` keeps the payload as the replica's RDB file (so a
/// replica restarted later loads it and resyncs partially), `on-empty-db` over an empty
/// dataset loads from the socket and writes nothing, `rdb-del-sync-files` removes the file
/// when persistence is off.
fn sync_payload_on_disk(bin: &str) {
    let master = spawn(bin, &["--repl-diskless-sync-delay", "0"]);
    let mut c = master.client();
    for i in 0..100 {
        redis::cmd("SET").arg(format!("k{i}")).arg(i).query::<()>(&mut c).unwrap();
    }
    let dump = |dir: &Path| dir.join("dump.rdb");

    // disabled (the default): the payload is stored, and a restart resyncs partially
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut replica = start_replica_in(bin, port, dir.path(), master.port, &[]);
    assert!(dump(dir.path()).exists(), "{bin}: repl-diskless-load disabled left no dump.rdb in the replica's dir");
    redis::cmd("SET").arg("after-sync").arg("1").query::<()>(&mut c).unwrap();
    redis::cmd("WAIT").arg(1).arg(5000).query::<i64>(&mut c).unwrap();
    let (full, partial) = (info_int(master.port, "stats", "sync_full"), info_int(master.port, "stats", "sync_partial_ok"));
    replica.kill().unwrap();
    replica.wait().unwrap();
    let mut replica = start_replica_in(bin, port, dir.path(), master.port, &[]);
    assert_eq!(info_int(master.port, "stats", "sync_full"), full, "{bin}: the restarted replica needed a full sync");
    assert_eq!(info_int(master.port, "stats", "sync_partial_ok"), partial + 1, "{bin}: the restarted replica did not resync partially");
    assert_eq!(common::redis_cli(port, &["DBSIZE"]), "101");
    assert_eq!(common::redis_cli(port, &["GET", "after-sync"]), "1");
    replica.kill().unwrap();
    replica.wait().unwrap();

    // on-empty-db over an empty dataset: straight from the socket, no file
    let dir = tempfile::tempdir().unwrap();
    let mut replica = start_replica_in(bin, common::free_port(), dir.path(), master.port, &["--repl-diskless-load", "on-empty-db"]);
    assert!(!dump(dir.path()).exists(), "{bin}: on-empty-db over an empty dataset wrote dump.rdb");
    replica.kill().unwrap();
    replica.wait().unwrap();

    // rdb-del-sync-files with persistence off: stored, loaded, removed
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut replica = start_replica_in(bin, port, dir.path(), master.port, &["--rdb-del-sync-files", "yes"]);
    assert!(wait_for(Duration::from_secs(5), || !dump(dir.path()).exists()), "{bin}: rdb-del-sync-files yes kept dump.rdb");
    assert_eq!(common::redis_cli(port, &["DBSIZE"]), "101");
    replica.kill().unwrap();
    replica.wait().unwrap();
}

#[test]
fn sync_payload_on_disk_as_redis() {
    if have_redis() {
        sync_payload_on_disk(REDIS);
    }
    sync_payload_on_disk(RF);
}
