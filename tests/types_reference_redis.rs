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

include!("ports/free_port.rs");

fn start_redis() -> Option<RedisGuard> {
    if Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("SKIP: redis-server not installed");
        return None;
    }
    // Ours only once INFO names our child's pid: a port taken between the probe and
    // redis-server's bind would leave us talking to someone else. Then try another port.
    for _ in 0..5 {
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
        let mut guard = RedisGuard { child, _dir: dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = guard.child.try_wait() {
                break;
            }
            let info = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c));
            if let Ok(info) = info {
                if info.contains(&format!("process_id:{}\r\n", guard.child.id())) {
                    return Some(guard);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("redis-server did not start on a free port in 5 attempts");
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

/// Small deterministic generator (no external seed needed for reproducibility).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo) as u64)) as i64
    }
}

#[test]
fn bitcount_bitpos_bitfield_match_redis() {
    use redis_failover::server::types::bitops::{self, FieldType, Overflow, RangeUnit};
    let Some(r) = start_redis() else { return };
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", r.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut rng = Lcg(42);
    for case in 0..300 {
        let len = rng.range(1, 7) as usize;
        let s: Vec<u8> = (0..len).map(|_| match rng.next() % 4 { 0 => 0, 1 => 0xff, _ => rng.next() as u8 }).collect();
        let _: () = redis::cmd("SET").arg("s").arg(&s).query(&mut con).unwrap();
        let (a, b) = (rng.range(-60, 60), rng.range(-60, 60));
        let unit_name = if case % 2 == 0 { "BIT" } else { "BYTE" };
        let unit = if case % 2 == 0 { RangeUnit::Bit } else { RangeUnit::Byte };
        let theirs: i64 = redis::cmd("BITCOUNT").arg("s").arg(a).arg(b).arg(unit_name).query(&mut con).unwrap();
        assert_eq!(theirs, bitops::bitcount(&s, Some((a, b, unit))), "BITCOUNT {s:?} {a} {b} {unit_name}");
        for bit in 0..2u8 {
            let theirs: i64 = redis::cmd("BITPOS").arg("s").arg(bit).arg(a).arg(b).arg(unit_name).query(&mut con).unwrap();
            assert_eq!(theirs, bitops::bitpos(&s, bit, Some(a), Some(b), unit), "BITPOS {s:?} {bit} {a} {b} {unit_name}");
            let theirs: i64 = redis::cmd("BITPOS").arg("s").arg(bit).arg(a).query(&mut con).unwrap();
            assert_eq!(theirs, bitops::bitpos(&s, bit, Some(a), None, RangeUnit::Byte), "BITPOS {s:?} {bit} {a}");
            let theirs: i64 = redis::cmd("BITPOS").arg("s").arg(bit).query(&mut con).unwrap();
            assert_eq!(theirs, bitops::bitpos(&s, bit, None, None, RangeUnit::Byte), "BITPOS {s:?} {bit}");
        }
        // BITFIELD INCRBY with a random type/overflow, then compare the stored bytes.
        let signed = rng.next() % 2 == 0;
        let bits = rng.range(1, if signed { 65 } else { 64 }) as u32;
        let offset = rng.range(0, 20) as u64;
        let incr = match rng.next() % 3 { 0 => rng.range(-5, 5), 1 => i64::MAX - rng.range(0, 3), _ => rng.next() as i64 - (1 << 30) };
        let (ow, ow_name) = [(Overflow::Wrap, "WRAP"), (Overflow::Sat, "SAT"), (Overflow::Fail, "FAIL")][(rng.next() % 3) as usize];
        let ty_name = format!("{}{}", if signed { "i" } else { "u" }, bits);
        let theirs: Vec<Option<i64>> = redis::cmd("BITFIELD").arg("s").arg("OVERFLOW").arg(ow_name).arg("INCRBY").arg(&ty_name).arg(offset).arg(incr).query(&mut con).unwrap();
        let mut ours = s.clone();
        bitops::grow_for_bit(&mut ours, offset + bits as u64 - 1);
        let w = bitops::field_write(&mut ours, FieldType { signed, bits }, offset, incr, true, ow);
        assert_eq!(theirs, vec![w.reply], "BITFIELD {s:?} OVERFLOW {ow_name} INCRBY {ty_name} {offset} {incr}");
        let stored: Vec<u8> = redis::cmd("GET").arg("s").query(&mut con).unwrap();
        assert_eq!(stored, ours, "bytes after BITFIELD");
    }
}

#[test]
fn glob_matches_redis_keys() {
    use redis_failover::server::types::glob::glob_match;
    let Some(r) = start_redis() else { return };
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", r.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let keys: Vec<&[u8]> = vec![b"", b"a", b"b", b"ab", b"abc", b"a*c", b"a?c", b"hello", b"hallo", b"h]llo", b"x-y", b"\\", b"a\\b", b"[", b"A", b"\xe9t\xe9", b"\x80", b"foo:bar:baz", b"^"];
    for k in &keys {
        let _: () = redis::cmd("SET").arg(*k).arg(1).query(&mut con).unwrap();
    }
    let patterns: Vec<&[u8]> = vec![b"*", b"", b"?", b"a*", b"*c", b"a?c", b"a\\*c", b"a\\?c", b"h[ae]llo", b"h[^e]llo", b"h[a-e]llo", b"h[e-a]llo", b"h[]]llo", b"h\\]llo", b"[\\]]", b"[a-]", b"[abc", b"a[", b"\\", b"a\\\\b", b"*\\", b"[\x80-\xff]*", b"[a-\x80]", b"*:*:*", b"[^a]", b"[\\^]", b"**a**", b"[]", b"[!a]"];
    for p in &patterns {
        let mut theirs: Vec<Vec<u8>> = redis::cmd("KEYS").arg(*p).query(&mut con).unwrap();
        theirs.sort();
        let mut ours: Vec<Vec<u8>> = keys.iter().filter(|k| glob_match(p, k)).map(|k| k.to_vec()).collect();
        ours.sort();
        assert_eq!(theirs, ours, "KEYS {:?}", String::from_utf8_lossy(p));
    }
}

#[test]
fn long_double_incrbyfloat_matches_redis() {
    use redis_failover::server::types::longdouble::LongDouble;
    let Some(r) = start_redis() else { return };
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", r.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut rng = Lcg(7);
    for chain in 0..40 {
        let start = format!("{}.{}", rng.range(-5000, 5000), rng.range(0, 1000));
        let _: () = redis::cmd("SET").arg("f").arg(&start).query(&mut con).unwrap();
        let mut ours = LongDouble::parse(start.as_bytes()).unwrap();
        for step in 0..25 {
            let incr = match rng.next() % 5 {
                0 => format!("0.{}", rng.range(1, 100)),
                1 => format!("-{}.{}", rng.range(0, 50), rng.range(0, 999)),
                2 => format!("{}e{}", rng.range(1, 9), rng.range(-8, 12)),
                3 => format!("{}", rng.range(-100000, 100000)),
                _ => format!("0x{:x}p-{}", rng.range(1, 4096), rng.range(0, 20)),
            };
            let theirs: String = redis::cmd("INCRBYFLOAT").arg("f").arg(&incr).query(&mut con).unwrap();
            ours = ours.add(&LongDouble::parse(incr.as_bytes()).unwrap());
            assert_eq!(theirs, ours.to_human_string(), "chain {chain} step {step}: +{incr}");
            // Redis re-parses its own output next time; so do we.
            ours = LongDouble::parse(theirs.as_bytes()).unwrap();
        }
    }
}
