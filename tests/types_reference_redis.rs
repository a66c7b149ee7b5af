//! Compares the pure value types against Debian's `redis-server` (7.0) run on a free port:
//! HyperLogLog values must be byte-identical and counts equal.
//! Skips (with a message) when `redis-server` is not installed.

use redis_failover::server::types::hll;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct RedisGuard {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for RedisGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_redis() -> Option<RedisGuard> {
    if Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("SKIP: redis-server not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = RedisGuard { child, _dir: dir, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(guard);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server did not start on port {port}");
}

#[test]
fn hll_bytes_and_counts_match_redis() {
    let Some(r) = start_redis() else { return };
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", r.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut ours = hll::new_hll();
    let mut total = 0usize;
    // Batches of growing size cross the sparse->dense promotion (3000 bytes).
    for (batch_no, batch) in [1usize, 5, 20, 100, 400, 1500, 5000, 20000].iter().enumerate() {
        let elements: Vec<String> = (0..*batch).map(|i| format!("e{batch_no}-{i}-{}", i * 7919)).collect();
        let theirs_changed: i64 = redis::cmd("PFADD").arg("h").arg(&elements).query(&mut con).unwrap();
        let mut changed = false;
        for e in &elements {
            changed |= hll::add(&mut ours, e.as_bytes(), 3000).unwrap();
        }
        if changed {
            hll::invalidate_cache(&mut ours);
        }
        assert_eq!(theirs_changed == 1, changed, "PFADD reply, batch {batch_no}");
        total += batch;
        let theirs: Vec<u8> = redis::cmd("GET").arg("h").query(&mut con).unwrap();
        assert_eq!(theirs, ours, "value after batch {batch_no} ({total} elements, sparse={})", hll::is_sparse(&ours));
        let their_count: u64 = redis::cmd("PFCOUNT").arg("h").query(&mut con).unwrap();
        let (our_count, _) = hll::count_cached(&mut ours).unwrap();
        assert_eq!(their_count, our_count, "PFCOUNT after batch {batch_no}");
        let theirs: Vec<u8> = redis::cmd("GET").arg("h").query(&mut con).unwrap();
        assert_eq!(theirs, ours, "cached cardinality bytes after batch {batch_no}");
    }
}

#[test]
fn hll_merge_matches_redis() {
    let Some(r) = start_redis() else { return };
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", r.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let sets: [(&str, usize); 3] = [("a", 50), ("b", 300), ("c", 9000)];
    let mut ours: Vec<Vec<u8>> = Vec::new();
    for (key, n) in sets {
        let els: Vec<String> = (0..n).map(|i| format!("{key}:{i}")).collect();
        let _: i64 = redis::cmd("PFADD").arg(key).arg(&els).query(&mut con).unwrap();
        let mut h = hll::new_hll();
        for e in &els {
            hll::add(&mut h, e.as_bytes(), 3000).unwrap();
        }
        hll::invalidate_cache(&mut h);
        ours.push(h);
    }
    // Sparse-only merge stays sparse; merge including a dense source becomes dense.
    let _: () = redis::cmd("PFMERGE").arg("m1").arg("a").arg("b").query(&mut con).unwrap();
    let m1 = hll::merge(None, &[&ours[0], &ours[1]], 3000).unwrap();
    let theirs: Vec<u8> = redis::cmd("GET").arg("m1").query(&mut con).unwrap();
    assert_eq!(theirs, m1);
    assert!(hll::is_sparse(&m1));
    let _: () = redis::cmd("PFMERGE").arg("a").arg("c").query(&mut con).unwrap();
    let m2 = hll::merge(Some(ours[0].clone()), &[&ours[2]], 3000).unwrap();
    let theirs: Vec<u8> = redis::cmd("GET").arg("a").query(&mut con).unwrap();
    assert_eq!(theirs, m2);
    assert!(!hll::is_sparse(&m2));
    let their_multi: u64 = redis::cmd("PFCOUNT").arg("m1").arg("c").query(&mut con).unwrap();
    let mut max = vec![0u8; hll::HLL_REGISTERS];
    hll::merge_into(&mut max, &m1).unwrap();
    hll::merge_into(&mut max, &ours[2]).unwrap();
    assert_eq!(their_multi, hll::count_raw(&max));
}
