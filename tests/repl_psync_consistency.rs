//! A replica must end with the master's dataset (DEBUG DIGEST) after its link was killed
//! again and again while three writers load random data of every type into databases 9, 11
//! and 12 (Redis's `integration/replication-psync`, with a richer command mix): partial
//! resyncs (PSYNC continue), full resyncs forced by a tiny backlog, disk and diskless
//! transfers, a delay before reconnecting, the link killed from either side. The master is
//! ours or Debian's redis-server; the replica is always ours.
//!
//! Also: a client blocked on BLPOP while its server turns into a replica is unblocked with
//! Redis's `-UNBLOCKED` error, so the replicated RPUSH does not feed it (Redis's
//! "BLPOP followed by role change, issue #2473").

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_for, ServerGuard};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const RF: &str = env!("CARGO_BIN_EXE_rf-server");
const REDIS: &str = "/usr/bin/redis-server";
const LOAD_DBS: [u32; 3] = [9, 11, 12];

/// The load tests use both cores: run them one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

fn have_redis() -> bool {
    Path::new(REDIS).exists()
}

fn spawn(bin: &str, args: &[&str]) -> ServerGuard {
    let mut all = vec!["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"];
    if bin == REDIS {
        all.extend_from_slice(&["--enable-debug-command", "yes"]);
    }
    all.extend_from_slice(args);
    common::spawn_server(Path::new(bin), &all)
}

fn connect(port: u16) -> redis::Connection {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn query(c: &mut redis::Connection, args: &[&[u8]]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

fn text(c: &mut redis::Connection, args: &[&str]) -> String {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match query(c, &bytes) {
        Ok(v) => value_text(&v),
        Err(e) => format!("error: {e}"),
    }
}

fn value_text(v: &redis::Value) -> String {
    match v {
        redis::Value::Nil => "(nil)".into(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Okay => "OK".into(),
        redis::Value::Array(a) => format!("[{}]", a.iter().map(value_text).collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}

fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info = text(c, &["INFO", section]);
    info.lines().find_map(|l| l.trim().strip_prefix(&format!("{field}:")).map(str::to_string))
}

// ------------------------------------------------------------------ the random load

/// One writer: random commands of every type on one connection, mostly in its home
/// database, sometimes in another of [`LOAD_DBS`]. `deterministic` leaves out what depends
/// on randomness or timing on the server (SPOP, short expiries), so that the same seed gives
/// the same dataset on any server.
struct Writer {
    rng: StdRng,
    home: u32,
    deterministic: bool,
}

type Command = Vec<Vec<u8>>;

fn cmd(parts: &[&[u8]]) -> Command {
    parts.iter().map(|p| p.to_vec()).collect()
}

impl Writer {
    fn new(seed: u64, home: u32, deterministic: bool) -> Writer {
        Writer { rng: StdRng::seed_from_u64(seed), home, deterministic }
    }

    fn signed(&mut self, max: i64) -> String {
        let v = self.rng.gen_range(0..max);
        if self.rng.gen_bool(0.5) {
            (-v).to_string()
        } else {
            v.to_string()
        }
    }

    fn string(&mut self, min: usize, max: usize) -> Vec<u8> {
        let len = self.rng.gen_range(min..=max);
        match self.rng.gen_range(0..3) {
            0 => (0..len).map(|_| self.rng.gen_range(b'a'..=b'z')).collect(),
            1 => (0..len).map(|_| b"0123"[self.rng.gen_range(0..4)]).collect(),
            _ => (0..len).map(|_| self.rng.gen()).collect(),
        }
    }

    /// Keys collide often (small integers), so types and encodings grow and change.
    fn key(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0..=6 => self.rng.gen_range(0..300).to_string().into_bytes(),
            7 => self.rng.gen_range(0..4_000_000_000u64).to_string().into_bytes(),
            8 => self.rng.gen_range(0..1_000_000_000_000u64).to_string().into_bytes(),
            _ => {
                let mut k = b"s:".to_vec();
                let len = self.rng.gen_range(1..40);
                k.extend((0..len).map(|_| self.rng.gen_range(b'a'..=b'z')));
                k
            }
        }
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..4) {
            0 => self.signed(1000).into_bytes(),
            1 => self.signed(4_000_000_000).into_bytes(),
            2 => self.signed(1_000_000_000_000).into_bytes(),
            _ => self.string(0, 200),
        }
    }

    fn score(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..12) {
            0 => b"+inf".to_vec(),
            1 => b"-inf".to_vec(),
            2..=5 => self.signed(100).into_bytes(),
            _ => format!("{}", self.rng.gen::<f64>()).into_bytes(),
        }
    }

    fn float(&mut self) -> Vec<u8> {
        format!("{:.3}", self.rng.gen_range(-1000.0..1000.0f64)).into_bytes()
    }

    /// A command creating `key` with a random type (createComplexDataset).
    fn create(&mut self, key: &[u8]) -> Command {
        let (f, v, d) = (self.value(), self.value(), self.score());
        match self.rng.gen_range(0..6) {
            0 => cmd(&[b"SET", key, &v]),
            1 => cmd(&[b"LPUSH", key, &v]),
            2 => cmd(&[b"SADD", key, &v]),
            3 => cmd(&[b"ZADD", key, &d, &v]),
            4 => cmd(&[b"HSET", key, &f, &v]),
            _ => cmd(&[b"DEL", key]),
        }
    }

    /// A write on `key` of type `ty`.
    fn write(&mut self, key: &[u8], ty: &str) -> Command {
        let (k2, k3) = (self.key(), self.key());
        let (f, v, d) = (self.value(), self.value(), self.score());
        let n = self.rng.gen_range(0..5).to_string().into_bytes();
        let pick = self.rng.gen_range(0..10);
        match ty {
            "string" => match pick {
                0 => cmd(&[b"APPEND", key, &v]),
                1 => cmd(&[b"SETRANGE", key, self.rng.gen_range(0..100).to_string().as_bytes(), &v]),
                2 => cmd(&[b"INCRBYFLOAT", key, &self.float()]),
                3 => cmd(&[b"GETSET", key, &v]),
                4 => cmd(&[b"SET", key, &v, b"KEEPTTL"]),
                5 => cmd(&[b"GETDEL", key]),
                _ => cmd(&[b"SET", key, &v]),
            },
            "list" => match pick {
                0 => cmd(&[b"RPUSH", key, &v, &f]),
                1 => cmd(&[b"LREM", key, b"0", &v]),
                2 => cmd(&[b"RPOP", key]),
                3 => cmd(&[b"LPOP", key, &n]),
                4 => cmd(&[b"LMOVE", key, &k2, b"LEFT", b"RIGHT"]),
                5 => cmd(&[b"LTRIM", key, b"0", b"150"]),
                6 => cmd(&[b"LINSERT", key, b"BEFORE", &f, &v]),
                7 => cmd(&[b"LSET", key, b"0", &v]),
                _ => cmd(&[b"LPUSH", key, &v]),
            },
            "set" => match pick {
                0 => cmd(&[b"SREM", key, &v]),
                1 => cmd(&[b"SUNIONSTORE", &k2, key, &k3]),
                2 => cmd(&[b"SINTERSTORE", &k2, key, &k3]),
                3 => cmd(&[b"SDIFFSTORE", &k2, key, &k3]),
                4 => cmd(&[b"SMOVE", key, &k2, &v]),
                5 if !self.deterministic => cmd(&[b"SPOP", key]),
                6 if !self.deterministic => cmd(&[b"SPOP", key, &n]),
                _ => cmd(&[b"SADD", key, &v, self.rng.gen_range(0..50).to_string().as_bytes()]),
            },
            "zset" => match pick {
                0 => cmd(&[b"ZREM", key, &v]),
                1 => cmd(&[b"ZUNIONSTORE", &k2, b"2", key, &k3]),
                2 => cmd(&[b"ZINTERSTORE", &k2, b"2", key, &k3]),
                3 => cmd(&[b"ZINCRBY", key, &self.float(), &v]),
                4 => cmd(&[b"ZPOPMIN", key]),
                5 => cmd(&[b"ZREMRANGEBYRANK", key, b"0", b"1"]),
                _ => cmd(&[b"ZADD", key, &d, &v]),
            },
            "hash" => match pick {
                0 => cmd(&[b"HDEL", key, &f]),
                1 => cmd(&[b"HINCRBY", key, b"counter", &n]),
                2 => cmd(&[b"HINCRBYFLOAT", key, b"float", &self.float()]),
                3 => cmd(&[b"HSETNX", key, &f, &v]),
                _ => cmd(&[b"HSET", key, &f, &v]),
            },
            _ => self.create(key),
        }
    }

    fn blind_write(&mut self) -> Command {
        let key = self.key();
        let ty = ["string", "list", "set", "zset", "hash", "none"][self.rng.gen_range(0..6)];
        self.write(&key, ty)
    }

    fn expire(&mut self, key: &[u8]) -> Command {
        let v = self.value();
        match self.rng.gen_range(0..6) {
            0 if !self.deterministic => cmd(&[b"PEXPIRE", key, self.rng.gen_range(50..1500).to_string().as_bytes()]),
            1 if !self.deterministic => cmd(&[b"SET", key, &v, b"PX", self.rng.gen_range(50..1500).to_string().as_bytes()]),
            2 => cmd(&[b"PERSIST", key]),
            3 => cmd(&[b"SETEX", key, b"5000", &v]),
            _ => cmd(&[b"EXPIRE", key, self.rng.gen_range(1000..5000).to_string().as_bytes()]),
        }
    }

    /// One random step; errors (WRONGTYPE...) are part of the load.
    fn step(&mut self, c: &mut redis::Connection) -> redis::RedisResult<()> {
        let send = |c: &mut redis::Connection, command: &Command| -> redis::RedisResult<redis::Value> {
            let parts: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            match query(c, &parts) {
                Err(e) if e.is_io_error() || e.is_timeout() => Err(e),
                Err(_) => Ok(redis::Value::Nil),
                ok => ok,
            }
        };
        match self.rng.gen_range(0..100) {
            0..=4 => {
                send(c, &cmd(&[b"MULTI"]))?;
                for _ in 0..self.rng.gen_range(1..5) {
                    let w = self.blind_write();
                    send(c, &w)?;
                }
                send(c, &cmd(&[b"EXEC"]))?;
            }
            5..=9 => {
                let key = self.key();
                let e = self.expire(&key);
                send(c, &e)?;
            }
            10..=13 => {
                let other = LOAD_DBS[self.rng.gen_range(0..LOAD_DBS.len())].to_string();
                send(c, &cmd(&[b"SELECT", other.as_bytes()]))?;
                let w = self.blind_write();
                send(c, &w)?;
                send(c, &cmd(&[b"SELECT", self.home.to_string().as_bytes()]))?;
            }
            17..=21 => {
                // A pipeline runs back to back: a run of writes in one database with a
                // single SELECT in front, where a resynced replica must know the database.
                let mut pipe = redis::pipe();
                for _ in 0..self.rng.gen_range(5..20) {
                    let w = self.blind_write();
                    let c = pipe.cmd(std::str::from_utf8(&w[0]).unwrap());
                    for a in &w[1..] {
                        c.arg(&a[..]);
                    }
                }
                match pipe.query::<redis::Value>(c) {
                    Err(e) if e.is_io_error() || e.is_timeout() => return Err(e),
                    _ => {}
                }
            }
            14..=16 => {
                // Commands propagated as their effects: relative times become absolute,
                // random picks become the members picked.
                let (key, k2) = (self.key(), self.key());
                match self.rng.gen_range(0..4) {
                    0 => {
                        if let redis::Value::BulkString(payload) = send(c, &cmd(&[b"DUMP", &key]))? {
                            let ttl = if self.deterministic { "0".to_string() } else { self.rng.gen_range(0..3).to_string() + "00000" };
                            send(c, &cmd(&[b"RESTORE", &k2, ttl.as_bytes(), &payload, b"REPLACE"]))?;
                        }
                    }
                    1 if !self.deterministic => {
                        send(c, &cmd(&[b"GETEX", &key, b"PX", self.rng.gen_range(50..1500).to_string().as_bytes()]))?;
                    }
                    2 if !self.deterministic => {
                        let script = b"redis.call('SADD', KEYS[1], ARGV[1], ARGV[2], ARGV[3]) return redis.call('SPOP', KEYS[1])";
                        send(c, &cmd(&[b"EVAL", script, b"1", b"script-set", &self.value(), &self.value(), &self.value()]))?;
                    }
                    _ => {
                        send(c, &cmd(&[b"GETEX", &key, b"PERSIST"]))?;
                    }
                }
            }
            _ => {
                let key = self.key();
                let ty = match send(c, &cmd(&[b"TYPE", &key]))? {
                    redis::Value::SimpleString(s) => s,
                    redis::Value::Okay => "none".into(),
                    other => value_text(&other),
                };
                let w = if ty == "none" { self.create(&key) } else { self.write(&key, &ty) };
                send(c, &w)?;
            }
        }
        Ok(())
    }
}

/// Three writers (one per database of [`LOAD_DBS`]) running until `stop`, at most
/// `max_ops` steps each and at most 60 s.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(port: u16, seed: u64, max_ops: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = LOAD_DBS
            .iter()
            .enumerate()
            .map(|(i, &db)| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut c = connect(port);
                    redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
                    let mut w = Writer::new(seed + i as u64, db, false);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let mut done = 0;
                    while done < max_ops && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        w.step(&mut c).unwrap_or_else(|e| panic!("writer on db {db}: {e}"));
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().expect("writer thread")).sum()
    }
}

// ------------------------------------------------------------------ comparing datasets

fn digest(c: &mut redis::Connection) -> String {
    text(c, &["DEBUG", "DIGEST"])
}

fn all_keys(c: &mut redis::Connection) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    let mut cursor = "0".to_string();
    for _ in 0..100_000 {
        let (next, batch): (String, Vec<Vec<u8>>) = redis::cmd("SCAN").arg(&cursor).arg("COUNT").arg(1000).query(c).unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    keys
}

/// The key's type, TTL and content, for the failure report.
fn describe(c: &mut redis::Connection, key: &[u8]) -> String {
    let ty = value_text(&query(c, &[b"TYPE", key]).unwrap_or(redis::Value::Nil));
    let read: &[&[u8]] = match ty.as_str() {
        "string" => &[b"GET"],
        "list" => &[b"LRANGE", b"0", b"-1"],
        "set" => &[b"SMEMBERS"],
        "zset" => &[b"ZRANGE", b"0", b"-1", b"WITHSCORES"],
        "hash" => &[b"HGETALL"],
        _ => &[],
    };
    let content = match read.split_first() {
        Some((name, rest)) => {
            let mut args = vec![*name, key];
            args.extend_from_slice(rest);
            query(c, &args).map(|v| value_text(&v)).unwrap_or_else(|e| e.to_string())
        }
        None => String::new(),
    };
    let pttl = value_text(&query(c, &[b"PTTL", key]).unwrap_or(redis::Value::Nil));
    let shown: String = content.chars().take(300).collect();
    format!("{ty} pttl={pttl} {shown}")
}

/// What differs between the two datasets, database by database (DEBUG DIGEST-VALUE per key).
fn differences(master: &mut redis::Connection, replica: &mut redis::Connection) -> String {
    let mut report = String::new();
    for db in 0..16u32 {
        for c in [&mut *master, &mut *replica] {
            redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
        }
        let (mk, rk) = (all_keys(master), all_keys(replica));
        if mk.is_empty() && rk.is_empty() {
            continue;
        }
        let mut differing = Vec::new();
        for key in mk.union(&rk) {
            let m = value_text(&query(master, &[b"DEBUG", b"DIGEST-VALUE", key]).unwrap());
            let r = value_text(&query(replica, &[b"DEBUG", b"DIGEST-VALUE", key]).unwrap());
            if m != r {
                differing.push(key.clone());
            }
        }
        report.push_str(&format!("db {db}: {} keys on the master, {} on the replica, {} differ\n", mk.len(), rk.len(), differing.len()));
        for key in differing.iter().take(5) {
            report.push_str(&format!(
                "  key {:?}\n    master:  {}\n    replica: {}\n",
                String::from_utf8_lossy(key),
                describe(master, key),
                describe(replica, key)
            ));
        }
    }
    for c in [master, replica] {
        redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
    }
    report
}

/// Waits for the replica to be online and caught up, then for equal digests (keys with
/// short TTLs may still be expiring on the master meanwhile); panics with a per-key report.
fn assert_consistent(master: &ServerGuard, replica: &ServerGuard, what: &str) {
    let (mut m, mut r) = (connect(master.port), connect(replica.port));
    let online = wait_for(Duration::from_secs(60), || {
        text(&mut m, &["INFO", "replication"]).contains("state=online")
            && info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up")
    });
    assert!(online, "{what}: the replica did not come back online\nmaster log:\n{}\nreplica log:\n{}", tail(master), tail(replica));
    // Keys with a short TTL are all past it by now; give the master's active expiry time to
    // delete them (and the replica time to apply those DELs).
    std::thread::sleep(Duration::from_millis(1600));
    let mut last = (String::new(), String::new());
    let same = wait_for(Duration::from_secs(20), || {
        let caught_up = info_field(&mut m, "replication", "master_repl_offset") == info_field(&mut r, "replication", "master_repl_offset");
        last = (digest(&mut m), digest(&mut r));
        caught_up && last.0 == last.1
    });
    if !same {
        let report = differences(&mut m, &mut r);
        panic!("{what}: master and replica differ (digests {} vs {})\n{report}", last.0, last.1);
    }
    assert_ne!(last.0, "0000000000000000000000000000000000000000", "{what}: empty dataset");
}

fn tail(s: &ServerGuard) -> String {
    let log = s.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

// ------------------------------------------------------------------ the scenarios

#[derive(Clone, Copy)]
enum Kill {
    /// CLIENT KILL TYPE master on the replica.
    MasterLinkOnReplica,
    /// CLIENT KILL TYPE replica on the master.
    ReplicaLinkOnMaster,
    /// On the replica, in one MULTI: CLIENT KILL TYPE master, DEBUG SLEEP <secs> (it
    /// reconnects only after the sleep, as in Redis's "no backlog" / "backlog expired" cases).
    DelayedOnReplica(&'static str),
}

/// What the kills must have caused on the master.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// Reconnections continued with PSYNC (sync_partial_ok > 0).
    PartialResyncs,
    /// Reconnections needed full resyncs (sync_partial_err > 0, more than one sync_full).
    FullResyncs,
}

struct Scenario {
    master_bin: &'static str,
    diskless: bool,
    backlog: &'static str,
    backlog_ttl: &'static str,
    kill: Kill,
    kills: u32,
    seed: u64,
    expect: Expect,
    /// A second replica of ours hangs off the replica (master -> replica -> sub-replica).
    /// The replica keeps a tiny backlog and the sub-replica's link is killed with a delay
    /// every other round, so it full-syncs from the replica in the middle of the stream.
    chained: bool,
}

fn run(s: Scenario) {
    let _heavy = heavy();
    let diskless = if s.diskless { "yes" } else { "no" };
    let master = spawn(
        s.master_bin,
        &["--repl-backlog-size", s.backlog, "--repl-backlog-ttl", s.backlog_ttl, "--repl-diskless-sync", diskless, "--repl-diskless-sync-delay", "0"],
    );
    let replica = spawn(RF, if s.chained { &["--repl-backlog-size", "16kb"] } else { &[] });
    let sub = s.chained.then(|| spawn(RF, &[]));
    let load = Load::start(master.port, s.seed, 200_000);
    // In the chain, a client also WAITs on the master all along: its REPLCONF GETACKs go
    // through the stream (answered by the replica, forwarded to the sub-replica).
    let waiter = s.chained.then(|| {
        let (stop, port) = (load.stop.clone(), master.port);
        std::thread::spawn(move || {
            let mut c = connect(port);
            let mut waits = 0u32;
            while !stop.load(Ordering::Relaxed) && waits < 10_000 {
                let _: redis::RedisResult<i64> = redis::cmd("WAIT").arg(1).arg(50).query(&mut c);
                waits += 1;
            }
            waits
        })
    });
    let mut m = connect(master.port);
    let mut r = connect(replica.port);
    assert!(wait_for(Duration::from_secs(10), || text(&mut m, &["INFO", "keyspace"]).contains("db9")), "no write load");
    text(&mut r, &["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    assert!(
        wait_for(Duration::from_secs(20), || info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up")),
        "first sync did not complete\n{}",
        tail(&replica)
    );
    let mut sub_client = sub.as_ref().map(|sub| {
        let mut c = connect(sub.port);
        text(&mut c, &["REPLICAOF", "127.0.0.1", &replica.port.to_string()]);
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "replication", "master_link_status").as_deref() == Some("up")));
        c
    });
    for round in 0..s.kills {
        std::thread::sleep(Duration::from_millis(1200));
        if let Some(c) = sub_client.as_mut().filter(|_| round % 2 == 1) {
            text(c, &["MULTI"]);
            text(c, &["CLIENT", "KILL", "TYPE", "master"]);
            text(c, &["DEBUG", "SLEEP", "1"]);
            let killed = text(c, &["EXEC"]);
            assert!(!killed.starts_with("error"), "kill: {killed}");
        }
        let killed = match s.kill {
            Kill::MasterLinkOnReplica => text(&mut r, &["CLIENT", "KILL", "TYPE", "master"]),
            Kill::ReplicaLinkOnMaster => text(&mut m, &["CLIENT", "KILL", "TYPE", "replica"]),
            Kill::DelayedOnReplica(secs) => {
                text(&mut r, &["MULTI"]);
                text(&mut r, &["CLIENT", "KILL", "TYPE", "master"]);
                text(&mut r, &["DEBUG", "SLEEP", secs]);
                text(&mut r, &["EXEC"])
            }
        };
        assert!(!killed.starts_with("error"), "kill: {killed}");
    }
    let ops = load.finish();
    if let Some(w) = waiter {
        assert!(w.join().unwrap() > 0);
    }
    assert!(ops > 1000, "only {ops} writes");
    let what = format!("master {} diskless={diskless} backlog={} ttl={} ({ops} writes)", s.master_bin, s.backlog, s.backlog_ttl);
    assert_consistent(&master, &replica, &what);
    if let Some(sub) = &sub {
        assert_consistent(&master, sub, &format!("{what}, sub-replica"));
        let mut r = connect(replica.port);
        let full = info_field(&mut r, "stats", "sync_full").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        assert!(full > 1, "the sub-replica full-synced only {full} time(s) from the replica");
    }
    let mut stat = |f: &str| info_field(&mut m, "stats", f).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (full, ok, err) = (stat("sync_full"), stat("sync_partial_ok"), stat("sync_partial_err"));
    let as_expected = match s.expect {
        Expect::PartialResyncs => ok > 0,
        Expect::FullResyncs => err > 0 && full > 1,
    };
    assert!(
        as_expected,
        "{what}: expected {:?}, got sync_full {full}, sync_partial_ok {ok}, sync_partial_err {err}\nmaster log:\n{}\nreplica log:\n{}",
        s.expect,
        tail(&master),
        tail(&replica)
    );
}

#[test]
fn psync_under_load_ours_disk() {
    run(Scenario {
        master_bin: RF,
        diskless: false,
        backlog: "100mb",
        backlog_ttl: "3600",
        kill: Kill::MasterLinkOnReplica,
        kills: 6,
        seed: 11,
        expect: Expect::PartialResyncs,
        chained: false,
    });
}

#[test]
fn psync_under_load_ours_diskless_killed_by_master() {
    run(Scenario {
        master_bin: RF,
        diskless: true,
        backlog: "100mb",
        backlog_ttl: "3600",
        kill: Kill::ReplicaLinkOnMaster,
        kills: 6,
        seed: 21,
        expect: Expect::PartialResyncs,
        chained: false,
    });
}

#[test]
fn chained_sub_replica_syncs_from_a_replica_under_load() {
    run(Scenario {
        master_bin: RF,
        diskless: false,
        backlog: "100mb",
        backlog_ttl: "3600",
        kill: Kill::MasterLinkOnReplica,
        kills: 6,
        seed: 71,
        expect: Expect::PartialResyncs,
        chained: true,
    });
}

#[test]
fn full_resyncs_under_load_ours_tiny_backlog() {
    run(Scenario {
        master_bin: RF,
        diskless: true,
        backlog: "16kb",
        backlog_ttl: "3600",
        kill: Kill::DelayedOnReplica("1"),
        kills: 4,
        seed: 31,
        expect: Expect::FullResyncs,
        chained: false,
    });
}

#[test]
fn full_resyncs_under_load_ours_expired_backlog() {
    run(Scenario {
        master_bin: RF,
        diskless: false,
        backlog: "100mb",
        backlog_ttl: "1",
        kill: Kill::DelayedOnReplica("2.5"),
        kills: 3,
        seed: 61,
        expect: Expect::FullResyncs,
        chained: false,
    });
}

#[test]
fn psync_under_load_redis_master() {
    if !have_redis() {
        eprintln!("skipped: {REDIS} missing");
        return;
    }
    run(Scenario {
        master_bin: REDIS,
        diskless: false,
        backlog: "100mb",
        backlog_ttl: "3600",
        kill: Kill::MasterLinkOnReplica,
        kills: 6,
        seed: 41,
        expect: Expect::PartialResyncs,
        chained: false,
    });
}

#[test]
fn full_resyncs_under_load_redis_master_tiny_backlog() {
    if !have_redis() {
        eprintln!("skipped: {REDIS} missing");
        return;
    }
    run(Scenario {
        master_bin: REDIS,
        diskless: true,
        backlog: "16kb",
        backlog_ttl: "3600",
        kill: Kill::DelayedOnReplica("1"),
        kills: 4,
        seed: 51,
        expect: Expect::FullResyncs,
        chained: false,
    });
}

/// DEBUG DIGEST is what the scenarios compare: ours must compute it as Redis does, on
/// every type and encoding the load produces (same deterministic load on both).
#[test]
fn digest_is_computed_as_redis_does() {
    if !have_redis() {
        eprintln!("skipped: {REDIS} missing");
        return;
    }
    let _heavy = heavy();
    let ours = spawn(RF, &[]);
    let theirs = spawn(REDIS, &[]);
    for port in [ours.port, theirs.port] {
        let mut c = connect(port);
        for &db in &LOAD_DBS {
            redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
            let mut w = Writer::new(7 + u64::from(db), db, true);
            for _ in 0..3000 {
                w.step(&mut c).unwrap();
            }
        }
    }
    let (mut o, mut t) = (connect(ours.port), connect(theirs.port));
    let (d1, d2) = (digest(&mut o), digest(&mut t));
    if d1 != d2 {
        panic!("digests differ: ours {d1}, Redis {d2}\n{}", differences(&mut o, &mut t));
    }
    for &db in &LOAD_DBS {
        let keys = format!("db{db}:keys=");
        assert!(text(&mut o, &["INFO", "keyspace"]).contains(&keys), "nothing written in db {db}");
    }
}

// ------------------------------------------------------------------ BLPOP and role change

/// What the client blocked on BLPOP got, and both servers' `foo` once consistent.
struct RoleChangeOutcome {
    blocked_reply: String,
    closed: bool,
    a_list: String,
    b_list: String,
}

/// Redis's "BLPOP followed by role change, issue #2473": a client blocks on BLPOP on B
/// (a master), B turns into a replica of A, A pushes to the list. The push reaches B through
/// replication and must not be popped there.
fn blpop_then_role_change(bin: &str) -> RoleChangeOutcome {
    use std::io::{Read, Write};
    let a = spawn(bin, &[]);
    let b = spawn(bin, &[]);
    let (mut ac, mut bc) = (connect(a.port), connect(b.port));
    text(&mut ac, &["REPLICAOF", "127.0.0.1", &b.port.to_string()]);
    assert!(wait_for(Duration::from_secs(10), || info_field(&mut ac, "replication", "master_link_status").as_deref() == Some("up")));
    let mut blocked = std::net::TcpStream::connect(("127.0.0.1", b.port)).unwrap();
    blocked.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    blocked.write_all(b"*3\r\n$5\r\nBLPOP\r\n$3\r\nfoo\r\n$1\r\n0\r\n").unwrap();
    assert!(wait_for(Duration::from_secs(5), || info_field(&mut bc, "clients", "blocked_clients").as_deref() == Some("1")));

    text(&mut ac, &["REPLICAOF", "NO", "ONE"]);
    text(&mut bc, &["REPLICAOF", "127.0.0.1", &a.port.to_string()]);
    assert!(wait_for(Duration::from_secs(10), || info_field(&mut bc, "replication", "master_link_status").as_deref() == Some("up")));
    text(&mut ac, &["RPUSH", "foo", "a", "b", "c"]);
    let consistent = wait_for(Duration::from_secs(5), || {
        digest(&mut ac) == digest(&mut bc) && text(&mut bc, &["LLEN", "foo"]) == "3"
    });

    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let closed = loop {
        match blocked.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let outcome = RoleChangeOutcome {
        blocked_reply: String::from_utf8_lossy(&got).trim_end().to_string(),
        closed,
        a_list: text(&mut ac, &["LRANGE", "foo", "0", "-1"]),
        b_list: text(&mut bc, &["LRANGE", "foo", "0", "-1"]),
    };
    assert!(consistent, "{bin}: master and replica differ: A {} / B {} (blocked client got {:?})", outcome.a_list, outcome.b_list, outcome.blocked_reply);
    outcome
}

#[test]
fn blpop_followed_by_role_change() {
    let ours = blpop_then_role_change(RF);
    assert_eq!(ours.a_list, "[a, b, c]");
    assert_eq!(ours.b_list, "[a, b, c]");
    assert_eq!(ours.blocked_reply, "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)");
    assert!(ours.closed, "the unblocked client must be disconnected");
    if have_redis() {
        let theirs = blpop_then_role_change(REDIS);
        assert_eq!((theirs.blocked_reply, theirs.closed), (ours.blocked_reply, ours.closed), "as Redis");
    }
}

// ------------------------------------------------------------------ chained full sync

/// A sub-replica full-syncs from a replica while its master's stream is in database 9; the
/// master's next write in database 9 comes with no SELECT (its stream is still there), so the
/// sub-replica must take the database from the payload's `repl-stream-db`.
fn sub_replica_continues_in_the_stream_db(master_bin: &str, middle_bin: &str, sub_bin: &str) {
    let master = spawn(master_bin, &[]);
    let middle = spawn(middle_bin, &[]);
    let sub = spawn(sub_bin, &[]);
    let (mut m, mut r, mut s) = (connect(master.port), connect(middle.port), connect(sub.port));
    let up = |c: &mut redis::Connection| info_field(c, "replication", "master_link_status").as_deref() == Some("up");
    text(&mut r, &["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    assert!(wait_for(Duration::from_secs(10), || up(&mut r)));
    text(&mut m, &["SELECT", "9"]);
    text(&mut m, &["SET", "before", "1"]);
    text(&mut r, &["SELECT", "9"]);
    assert!(wait_for(Duration::from_secs(10), || text(&mut r, &["EXISTS", "before"]) == "1"));
    text(&mut s, &["REPLICAOF", "127.0.0.1", &middle.port.to_string()]);
    assert!(wait_for(Duration::from_secs(10), || up(&mut s)));
    text(&mut m, &["SET", "after", "2"]);
    text(&mut s, &["SELECT", "9"]);
    let arrived = wait_for(Duration::from_secs(10), || text(&mut s, &["GET", "after"]) == "2");
    let in_db0 = {
        text(&mut s, &["SELECT", "0"]);
        text(&mut s, &["EXISTS", "after"])
    };
    assert!(arrived, "{master_bin} -> {middle_bin} -> {sub_bin}: the write after the sub-replica's full sync is not in db 9 (in db 0: {in_db0})");
    assert_eq!(in_db0, "0");
}

#[test]
fn sub_replica_full_sync_continues_in_the_stream_db() {
    sub_replica_continues_in_the_stream_db(RF, RF, RF);
    if have_redis() {
        sub_replica_continues_in_the_stream_db(REDIS, RF, RF);
        sub_replica_continues_in_the_stream_db(RF, REDIS, RF);
        sub_replica_continues_in_the_stream_db(RF, RF, REDIS);
    }
}

// ------------------------------------------------------------------ expiry in transit

/// Keys written with a short TTL and made persistent right after on the master reach a
/// replica that was away (its link killed during a DEBUG SLEEP) after that TTL passed: the
/// replica must not delete them on the late `SET ... PXAT` / `PEXPIREAT` (the master sends
/// its own DEL when a key expires there), or it loses them for good at the PERSIST.
fn late_replica_keeps_keys_whose_ttl_passed_in_transit(master_bin: &str) {
    let master = spawn(master_bin, &[]);
    let replica = spawn(RF, &[]);
    let (mut m, mut r) = (connect(master.port), connect(replica.port));
    text(&mut r, &["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    assert!(wait_for(Duration::from_secs(10), || info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up")));
    text(&mut m, &["SET", "getex", "v"]);
    text(&mut m, &["SET", "source", "v"]);
    let payload = match query(&mut m, &[b"DUMP", b"source"]).unwrap() {
        redis::Value::BulkString(p) => p,
        other => panic!("DUMP: {other:?}"),
    };
    assert!(wait_for(Duration::from_secs(5), || text(&mut r, &["EXISTS", "source"]) == "1"));

    let replica_port = replica.port;
    let away = std::thread::spawn(move || {
        let mut c = connect(replica_port);
        text(&mut c, &["MULTI"]);
        text(&mut c, &["CLIENT", "KILL", "TYPE", "master"]);
        text(&mut c, &["DEBUG", "SLEEP", "1.5"]);
        text(&mut c, &["EXEC"])
    });
    std::thread::sleep(Duration::from_millis(300));
    text(&mut m, &["SET", "set", "v", "PX", "100"]);
    text(&mut m, &["PERSIST", "set"]);
    text(&mut m, &["GETEX", "getex", "PX", "100"]);
    text(&mut m, &["PERSIST", "getex"]);
    text(&mut m, &["PEXPIRE", "source", "100"]);
    text(&mut m, &["PERSIST", "source"]);
    query(&mut m, &[b"RESTORE", b"restored", b"100", &payload]).unwrap();
    text(&mut m, &["PERSIST", "restored"]);
    let exec = away.join().unwrap();
    assert!(!exec.starts_with("error"), "{exec}");

    let keys = ["set", "getex", "source", "restored"];
    let same = wait_for(Duration::from_secs(10), || {
        info_field(&mut m, "replication", "master_repl_offset") == info_field(&mut r, "replication", "master_repl_offset")
            && keys.iter().all(|k| text(&mut r, &["EXISTS", k]) == "1")
    });
    let on_replica: Vec<String> = keys.iter().map(|k| format!("{k}={}", text(&mut r, &["EXISTS", k]))).collect();
    assert!(same, "{master_bin}: the replica lost keys the master keeps: {on_replica:?}\n{}", tail(&replica));
    for k in keys {
        assert_eq!(text(&mut m, &["PTTL", k]), "-1", "{master_bin}: {k} on the master");
        assert_eq!(text(&mut r, &["PTTL", k]), "-1", "{master_bin}: {k} on the replica");
    }
    assert_eq!(digest(&mut m), digest(&mut r));
}

#[test]
fn late_replica_keeps_keys_whose_ttl_passed_in_transit_ours() {
    let _heavy = heavy();
    late_replica_keeps_keys_whose_ttl_passed_in_transit(RF);
}

#[test]
fn late_replica_keeps_keys_whose_ttl_passed_in_transit_redis_master() {
    if !have_redis() {
        eprintln!("skipped: {REDIS} missing");
        return;
    }
    let _heavy = heavy();
    late_replica_keeps_keys_whose_ttl_passed_in_transit(REDIS);
}
