//! Persistence with real processes: RDB and AOF round trips between rf-server and Debian
//! redis-server, DEBUG RELOAD, BGSAVE/LASTSAVE, a corrupt file stopping start-up, and a
//! SIGKILL crash under appendfsync always losing no acknowledged write.

mod persist_support;

fn same(a: &Dataset, b: &Dataset, what: &str) {
    let missing: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(5).collect();
    let differ: Vec<_> = a.iter().filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v)).map(|(k, _)| k).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty() && differ.is_empty(), "{what}: missing {missing:?} extra {extra:?} differ {differ:?} ({} vs {} keys)", a.len(), b.len());
}

use std::process::Command;
use std::time::Duration;

use persist_support::*;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");

fn populate(c: &mut redis::Connection) {
    for i in 0..2000 {
        redis::cmd("SET").arg(format!("key:{i:05}")).arg(format!("{}", "v".repeat(i % 60))).query::<()>(c).unwrap();
    }
    redis::cmd("SET").arg("int").arg("123456").query::<()>(c).unwrap();
    redis::cmd("SET").arg("long").arg("abc".repeat(1000)).query::<()>(c).unwrap();
    redis::cmd("SET").arg("ttl").arg("x").arg("EX").arg(10000).query::<()>(c).unwrap();
    redis::cmd("SELECT").arg(7).query::<()>(c).unwrap();
    redis::cmd("SET").arg("seven").arg("7").query::<()>(c).unwrap();
    redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
    populate_all_types(c);
}

fn check_rdb(path: &std::path::Path) {
    let out = Command::new("redis-check-rdb").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("RDB looks OK"), "{text}");
}

#[test]
fn rdb_round_trips_both_ways_and_debug_reload() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    // rf-server -> redis-server
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let rf = start_server(RF, dir.path(), &[]);
        let mut c = rf.conn();
        populate(&mut c);
        let before: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(redis::cmd("BGSAVE").query::<String>(&mut c).unwrap(), "Background saving started");
        assert!(wait_until(20, || info_field(&mut c, "persistence", "rdb_bgsave_in_progress").as_deref() == Some("0")));
        assert_eq!(info_field(&mut c, "persistence", "rdb_last_bgsave_status").as_deref(), Some("ok"));
        assert!(
            wait_until(5, || redis::cmd("LASTSAVE").query::<i64>(&mut c).unwrap() > before),
            "LASTSAVE did not move after BGSAVE"
        );
        let digest: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
        redis::cmd("DEBUG").arg("RELOAD").query::<()>(&mut c).unwrap();
        let digest2: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
        assert_eq!(digest, digest2, "DEBUG RELOAD changed the dataset");
        dataset_of_server(&mut c)
    };
    check_rdb(&dir.path().join("dump.rdb"));
    {
        let redis = start_server("redis-server", dir.path(), &[]);
        same(&dataset_of_server(&mut redis.conn()), &expected, "redis loading our RDB");
    }
    // redis-server -> rf-server
    let dir2 = tempfile::tempdir().unwrap();
    let expected2 = {
        let redis = start_server("redis-server", dir2.path(), &[]);
        let mut c = redis.conn();
        populate(&mut c);
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
        dataset_of_server(&mut c)
    };
    let rf = start_server(RF, dir2.path(), &[]);
    same(&dataset_of_server(&mut rf.conn()), &expected2, "rf loading redis's RDB");
}

#[test]
fn aof_round_trips_both_ways() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    // rf writes an AOF (base + incr after a rewrite); rf itself and redis load it.
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let rf = start_server(RF, dir.path(), &["--appendonly", "yes", "--appendfsync", "always"]);
        let mut c = rf.conn();
        populate(&mut c);
        redis::cmd("BGREWRITEAOF").query::<String>(&mut c).unwrap();
        assert!(wait_until(20, || info_field(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")));
        redis::cmd("SET").arg("after-rewrite").arg("1").query::<()>(&mut c).unwrap();
        redis::cmd("DEL").arg("key:00001").query::<i64>(&mut c).unwrap();
        dataset_of_server(&mut c)
    };
    let manifest = std::fs::read_to_string(dir.path().join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(manifest.contains("type b") && manifest.contains("type i"), "{manifest}");
    {
        let rf = start_server(RF, dir.path(), &["--appendonly", "yes"]);
        same(&dataset_of_server(&mut rf.conn()), &expected, "rf reloading its AOF");
    }
    {
        let redis = start_server("redis-server", dir.path(), &["--appendonly", "yes"]);
        same(&dataset_of_server(&mut redis.conn()), &expected, "redis loading our AOF");
    }
    // redis writes an AOF; rf loads it.
    let dir2 = tempfile::tempdir().unwrap();
    let expected2 = {
        let redis = start_server("redis-server", dir2.path(), &["--appendonly", "yes"]);
        let mut c = redis.conn();
        populate(&mut c);
        redis::cmd("DEL").arg("key:00002").query::<i64>(&mut c).unwrap();
        dataset_of_server(&mut c)
    };
    let rf = start_server(RF, dir2.path(), &["--appendonly", "yes"]);
    same(&dataset_of_server(&mut rf.conn()), &expected2, "rf loading redis's AOF");
}

#[test]
fn sigkill_under_appendfsync_always_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rf = start_server(RF, dir.path(), &["--appendonly", "yes", "--appendfsync", "always"]);
    let url = rf.url();
    let writer = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let mut acked = Vec::new();
        for i in 0..100_000u32 {
            match redis::cmd("SET").arg(format!("crash:{i}")).arg(i).query::<()>(&mut c) {
                Ok(()) => acked.push(i),
                Err(_) => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(700));
    rf.kill(); // SIGKILL mid-stream
    let acked = writer.join().unwrap();
    assert!(acked.len() > 50, "writer made too little progress ({})", acked.len());
    let rf2 = start_server(RF, dir.path(), &["--appendonly", "yes"]);
    let mut c = rf2.conn();
    for &i in &acked {
        let v: Option<String> = redis::cmd("GET").arg(format!("crash:{i}")).query(&mut c).unwrap();
        assert_eq!(v, Some(i.to_string()), "acknowledged write crash:{i} lost ({} acknowledged)", acked.len());
    }
}

#[test]
fn corrupt_rdb_stops_start_up_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rf = start_server(RF, dir.path(), &[]);
        let mut c = rf.conn();
        populate(&mut c);
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
    }
    let path = dir.path().join("dump.rdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes[len / 2] ^= 0x5a;
    bytes.truncate(len - 100);
    std::fs::write(&path, &bytes).unwrap();
    let port = free_port().to_string();
    let out = Command::new(RF)
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started despite a corrupt RDB: {text}");
    assert!(text.contains("dump.rdb") && text.contains("offset"), "{text}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the bad file was modified");
}
