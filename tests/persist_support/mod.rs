//! Helpers shared by the persistence/replication integration tests: a guard that runs a
//! Debian `redis-server` (or our `rf-server`) on a free loopback port and kills it on drop,
//! and a full-scan of a server's dataset into a comparable model.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_failover::server::persistence::rdb::{RdbFile, RdbValue};

include!("../ports/free_port.rs");
include!("../ports/own_process.rs");

pub fn have_redis() -> bool {
    Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

/// A child server process killed (SIGKILL) and reaped on drop.
pub struct ServerGuard {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerGuard {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection_with_timeout(Duration::from_secs(5)).unwrap()
    }

    /// Stops the process now (SIGKILL), keeping the data directory.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` (`redis-server` or the path of `rf-server`) on a free port with `dir`
/// and extra `--directive value` arguments; waits until it answers PING.
///
/// A probed free port can be taken by a server of a test running in parallel before ours
/// binds it: then ours exits, and PING would be answered by the other one. Only a server
/// whose INFO names our child's pid counts; otherwise try another port.
pub fn start_server(program: &str, dir: &Path, extra: &[&str]) -> ServerGuard {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(program);
        cmd.arg("--port").arg(port.to_string()).arg("--bind").arg("127.0.0.1").arg("--dir").arg(dir);
        cmd.args(["--save", ""]);
        cmd.args(extra);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let mut guard = ServerGuard { child, port, dir: dir.to_path_buf() };
        if wait_ready(&mut guard) {
            return guard;
        }
    }
    panic!("{program} could not start on a free port in 5 attempts");
}

/// Waits until our child answers on its port and PING works (true), or until it exits or
/// another process is found on the port (false). Panics if it is not ready within 20 s.
pub fn wait_ready(guard: &mut ServerGuard) -> bool {
    let (pid, port) = (guard.child.id(), guard.port);
    let child = &mut guard.child;
    if !wait_own_process(port, || Some(pid), || matches!(child.try_wait(), Ok(Some(_))), Duration::from_secs(20)) {
        return false;
    }
    // ours; ready once PING works (not while it still loads its data)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ping = redis::Client::open(guard.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if ping.is_ok() {
            return true;
        }
        assert!(Instant::now() < deadline, "server on port {port} did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (db, key) -> (normalized value, has expiry)
pub type Dataset = BTreeMap<(u32, Bytes), (RdbValue, bool)>;

pub fn normalize(v: RdbValue) -> RdbValue {
    match v {
        RdbValue::Set(mut m) => {
            m.sort();
            RdbValue::Set(m)
        }
        RdbValue::Hash(mut p) => {
            p.sort();
            RdbValue::Hash(p)
        }
        RdbValue::ZSet(mut p) => {
            p.sort_by(|a, b| a.0.cmp(&b.0));
            RdbValue::ZSet(p)
        }
        other => other,
    }
}

pub fn dataset_of_file(f: &RdbFile) -> Dataset {
    let mut out = Dataset::new();
    for (db, entries) in &f.dbs {
        for e in entries {
            out.insert((*db, e.key.clone()), (normalize(e.value.clone()), e.expire_ms.is_some()));
        }
    }
    out
}

fn b(v: Vec<u8>) -> Bytes {
    Bytes::from(v)
}

/// Reads one key's value through commands.
pub fn fetch_value(c: &mut redis::Connection, key: &[u8]) -> RdbValue {
    let ty: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    let v = match ty.as_str() {
        "string" => RdbValue::String(b(redis::cmd("GET").arg(key).query(c).unwrap())),
        "list" => {
            let v: Vec<Vec<u8>> = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(c).unwrap();
            RdbValue::List(v.into_iter().map(b).collect())
        }
        "set" => {
            let v: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(key).query(c).unwrap();
            RdbValue::Set(v.into_iter().map(b).collect())
        }
        "hash" => {
            let v: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(key).query(c).unwrap();
            RdbValue::Hash(v.into_iter().map(|(f, v)| (b(f), b(v))).collect())
        }
        "zset" => {
            let v: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query(c).unwrap();
            RdbValue::ZSet(
                v.into_iter()
                    .map(|(m, s)| {
                        let score = match s.as_str() {
                            "inf" => f64::INFINITY,
                            "-inf" => f64::NEG_INFINITY,
                            _ => s.parse().unwrap(),
                        };
                        (b(m), score)
                    })
                    .collect(),
            )
        }
        other => panic!("unexpected type {other}"),
    };
    normalize(v)
}

/// Full scan of databases 0..16 through KEYS/TYPE/GET-family commands.
pub fn dataset_of_server(c: &mut redis::Connection) -> Dataset {
    let mut out = Dataset::new();
    for db in 0..16u32 {
        redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(c).unwrap();
        for k in keys {
            let v = fetch_value(c, &k);
            let pttl: i64 = redis::cmd("PTTL").arg(&k).query(c).unwrap();
            out.insert((db, b(k)), (v, pttl >= 0));
        }
    }
    redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
    out
}

/// Fills a server with every type in small and large encodings across two databases.
pub fn populate_all_types(c: &mut redis::Connection) {
    let run = |c: &mut redis::Connection, args: Vec<Vec<u8>>| {
        let mut cmd = redis::Cmd::new();
        for a in args {
            cmd.arg(a);
        }
        cmd.query::<redis::Value>(c).unwrap();
    };
    let s = |x: &str| x.as_bytes().to_vec();
    run(c, vec![s("SET"), s("str:small"), s("hello")]);
    run(c, vec![s("SET"), s("str:int"), s("-123456")]);
    run(c, vec![s("SET"), s("str:bigint"), s("12345678901234")]);
    run(c, vec![s("SET"), s("str:long"), "abcdefgh".repeat(500).into_bytes()]);
    run(c, vec![s("SET"), s("str:binary"), (0..=255u8).collect()]);
    run(c, vec![s("SET"), s("str:ttl"), s("v"), s("PX"), s("100000000")]);
    run(c, vec![s("SET"), s("12345"), s("int-looking key")]);
    run(c, vec![s("RPUSH"), s("list:small"), s("a"), s("1"), s("-5"), s("300000"), s("")]);
    let mut big_list = vec![s("RPUSH"), s("list:big")];
    big_list.extend((0..5000).map(|i| format!("element-{i}-{}", "p".repeat(i % 50)).into_bytes()));
    run(c, big_list);
    run(c, vec![s("RPUSH"), s("list:hugeitem"), vec![b'h'; 20000], s("x")]);
    run(c, vec![s("SADD"), s("set:int"), s("1"), s("2"), s("-3"), s("100000"), s("9999999999")]);
    run(c, vec![s("SADD"), s("set:str"), s("a"), s("b"), s("c")]);
    let mut big_set = vec![s("SADD"), s("set:bigint")];
    big_set.extend((0..600).map(|i| i.to_string().into_bytes()));
    run(c, big_set);
    run(c, vec![s("HSET"), s("hash:small"), s("f1"), s("v1"), s("f2"), s("2")]);
    let mut big_hash = vec![s("HSET"), s("hash:big")];
    for i in 0..300 {
        big_hash.push(format!("field{i}").into_bytes());
        big_hash.push(format!("value{i}").into_bytes());
    }
    run(c, big_hash);
    run(c, vec![s("HSET"), s("hash:longval"), s("f"), "z".repeat(100).into_bytes()]);
    run(c, vec![s("ZADD"), s("zset:small"), s("1.5"), s("a"), s("-2"), s("b"), s("inf"), s("c"), s("0.1"), s("d")]);
    let mut big_zset = vec![s("ZADD"), s("zset:big")];
    for i in 0..300 {
        big_zset.push(format!("{}", i as f64 / 7.0).into_bytes());
        big_zset.push(format!("member{i}").into_bytes());
    }
    run(c, big_zset);
    run(c, vec![s("ZADD"), s("zset:longmember"), s("-inf"), "m".repeat(100).into_bytes()]);
    run(c, vec![s("SELECT"), s("5")]);
    run(c, vec![s("SET"), s("db5key"), s("in db 5")]);
    run(c, vec![s("HSET"), s("db5hash"), s("a"), s("b")]);
    run(c, vec![s("SELECT"), s("0")]);
}

pub mod toy;

/// Polls `f` until it returns true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

pub fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(c).ok()?;
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}
