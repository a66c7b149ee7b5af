//! RDB and DUMP/RESTORE interoperability with Debian's redis-server 7.0, both ways.

mod persist_support;

use std::process::Command;

use bytes::Bytes;
use persist_support::*;
use redis_failover::server::persistence::dump::{dump_payload, restore_payload};
use redis_failover::server::persistence::rdb::{write_rdb_file, RdbEntry, RdbFile, RdbSaveOptions, RdbValue};
use redis_failover::server::persistence::rdb_load::read_rdb_file;

fn require_redis() -> bool {
    if !have_redis() {
        eprintln!("SKIP: Debian redis-server is not installed (run .ci/run)");
        return false;
    }
    true
}

#[test]
fn we_load_rdb_files_written_by_redis() {
    if !require_redis() {
        return;
    }
    for compression in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let redis = start_server("redis-server", dir.path(), &["--rdbcompression", compression]);
        let mut c = redis.conn();
        populate_all_types(&mut c);
        let expected = dataset_of_server(&mut c);
        assert!(expected.len() > 20);
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
        let bytes = std::fs::read(dir.path().join("dump.rdb")).unwrap();
        let file = read_rdb_file(&bytes).unwrap_or_else(|e| panic!("our reader failed: {e}"));
        assert!(file.aux.iter().any(|(k, v)| &k[..] == b"redis-ver" && &v[..] == b"7.0.15"));
        assert_eq!(dataset_of_file(&file), expected, "rdbcompression {compression}");
    }
}

fn our_sample() -> RdbFile {
    let bs = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let mut ttl = RdbEntry::new(bs("ttl"), RdbValue::String(bs("expiring")));
    ttl.expire_ms = Some(4_000_000_000_000);
    let db0 = vec![
        ttl,
        RdbEntry::new(bs("s:int"), RdbValue::String(bs("42"))),
        RdbEntry::new(bs("s:neg"), RdbValue::String(bs("-70000"))),
        RdbEntry::new(bs("s:long"), RdbValue::String(Bytes::from("xyz".repeat(400)))),
        RdbEntry::new(bs("l:small"), RdbValue::List(vec![bs("a"), bs("17"), bs("-4000"), bs("")])),
        RdbEntry::new(
            bs("l:big"),
            RdbValue::List((0..6000).map(|i| Bytes::from(format!("item-{i}-{}", "q".repeat(i % 70)))).collect()),
        ),
        RdbEntry::new(bs("l:huge"), RdbValue::List(vec![Bytes::from(vec![b'h'; 30000]), bs("tail")])),
        RdbEntry::new(bs("set:int"), RdbValue::Set(vec![bs("5"), bs("-1"), bs("3000000000")])),
        RdbEntry::new(bs("set:str"), RdbValue::Set(vec![bs("x"), bs("y")])),
        RdbEntry::new(bs("set:big"), RdbValue::Set((0..700).map(|i| Bytes::from(i.to_string())).collect())),
        RdbEntry::new(bs("h:small"), RdbValue::Hash(vec![(bs("a"), bs("1")), (bs("b"), bs("two"))])),
        RdbEntry::new(
            bs("h:big"),
            RdbValue::Hash((0..200).map(|i| (Bytes::from(format!("f{i}")), Bytes::from(format!("v{i}")))).collect()),
        ),
        RdbEntry::new(bs("z:small"), RdbValue::ZSet(vec![(bs("a"), 1.25), (bs("b"), -3.0), (bs("c"), f64::NEG_INFINITY), (bs("d"), 1e20), (bs("e"), 0.1)])),
        RdbEntry::new(
            bs("z:big"),
            RdbValue::ZSet((0..400).map(|i| (Bytes::from(format!("m{i}")), i as f64 * 1.1)).collect()),
        ),
    ];
    RdbFile { aux: vec![(bs("redis-ver"), bs("7.0.15"))], dbs: vec![(0, db0), (9, vec![RdbEntry::new(bs("nine"), RdbValue::String(bs("9")))])], functions: vec![] }
}

#[test]
fn redis_loads_rdb_files_we_write_and_check_rdb_passes() {
    if !require_redis() {
        return;
    }
    let sample = our_sample();
    for opts in [RdbSaveOptions::default(), RdbSaveOptions { compression: false, checksum: false, ..Default::default() }] {
        let dir = tempfile::tempdir().unwrap();
        let bytes = write_rdb_file(&sample, &opts).unwrap();
        let path = dir.path().join("ours.rdb");
        std::fs::write(&path, &bytes).unwrap();
        let check = Command::new("redis-check-rdb").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&check.stdout).to_string() + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success() && text.contains("RDB looks OK"), "redis-check-rdb: {text}");
        let redis = start_server("redis-server", dir.path(), &["--dbfilename", "ours.rdb"]);
        let mut c = redis.conn();
        assert_eq!(dataset_of_server(&mut c), dataset_of_file(&sample));
        // And Redis's own re-save of our data reads back identically in ours.
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
        let again = read_rdb_file(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(dataset_of_file(&again), dataset_of_file(&sample));
    }
}

#[test]
fn old_encodings_from_redis_test_assets_load_like_redis_loads_them() {
    if !require_redis() {
        return;
    }
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/persist_fixtures");
    for name in ["encodings.rdb", "hash-zipmap.rdb", "hash-ziplist.rdb", "list-quicklist.rdb", "zset-ziplist.rdb"] {
        let bytes = std::fs::read(fixtures.join(name)).unwrap();
        let ours = read_rdb_file(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), &bytes).unwrap();
        let redis = start_server("redis-server", dir.path(), &["--dbfilename", name]);
        let mut c = redis.conn();
        let theirs = dataset_of_server(&mut c);
        assert!(!theirs.is_empty(), "{name}: redis loaded nothing");
        // Files from old versions carry old expiry times: compare values, not TTL flags.
        let strip = |d: Dataset| d.into_iter().map(|(k, (v, _))| (k, v)).collect::<Vec<_>>();
        assert_eq!(strip(dataset_of_file(&ours)), strip(theirs), "{name}");
    }
}

#[test]
fn dump_restore_interoperates_both_ways() {
    if !require_redis() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = start_server("redis-server", dir.path(), &[]);
    let mut c = redis.conn();
    populate_all_types(&mut c);
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert!(keys.len() > 15);
    for k in keys {
        let payload: Vec<u8> = redis::cmd("DUMP").arg(&k).query(&mut c).unwrap();
        let value = restore_payload(&payload).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&k)));
        let expected = fetch_value(&mut c, &k);
        assert_eq!(normalize(value.clone()), expected);
        // Our payload of the same value restores in Redis to the same value.
        let ours = dump_payload(&value, true);
        let mut new_key = b"copy:".to_vec();
        new_key.extend_from_slice(&k);
        redis::cmd("RESTORE").arg(&new_key).arg(0).arg(&ours).query::<()>(&mut c).unwrap();
        assert_eq!(fetch_value(&mut c, &new_key), expected);
    }
}
