//! LRU/LFU access information in RDB files (opcodes 0xF8 IDLE and 0xF9 FREQ), both ways
//! with Debian redis-server: under an LRU policy the idle time of every key survives a
//! save and a load, under an LFU policy its access frequency does (as Redis does); RESTORE
//! IDLETIME / FREQ set them.

mod persist_support;

use persist_support::*;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");

fn idletime(c: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("OBJECT").arg("IDLETIME").arg(key).query(c).unwrap()
}

fn freq(c: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("OBJECT").arg("FREQ").arg(key).query(c).unwrap()
}

/// Writes `fresh` (just set), `old` (RESTORE ... IDLETIME `idle`) and `hot` (RESTORE ...
/// FREQ `hits`), then SAVEs into `dir`. Returns the LFU counter of `fresh` (its DUMP
/// counted as an access) under an LFU policy.
fn write_keys(program: &str, dir: &std::path::Path, policy: &str, idle: i64, hits: i64) -> i64 {
    let server = start_server(program, dir, &["--maxmemory-policy", policy]);
    let mut c = server.conn();
    // Not an integer: Redis would share one object (and one LRU field) for small integers.
    redis::cmd("SET").arg("fresh").arg("some text").query::<()>(&mut c).unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("fresh").query(&mut c).unwrap();
    let option = if policy.ends_with("lfu") { ("FREQ", hits) } else { ("IDLETIME", idle) };
    for key in ["old", "hot"] {
        let mut cmd = redis::cmd("RESTORE");
        cmd.arg(key).arg(0).arg(&payload);
        if (key == "old") == (option.0 == "IDLETIME") {
            cmd.arg(option.0).arg(option.1);
        }
        cmd.query::<()>(&mut c).unwrap();
    }
    if policy.ends_with("lfu") {
        assert_eq!(freq(&mut c, "hot"), hits, "{program}: RESTORE FREQ not applied");
    } else {
        let got = idletime(&mut c, "old");
        assert!((idle..idle + 3).contains(&got), "{program}: RESTORE IDLETIME {idle} gave {got}");
    }
    let fresh_freq = if policy.ends_with("lfu") { freq(&mut c, "fresh") } else { 0 };
    redis::cmd("SAVE").query::<()>(&mut c).unwrap();
    fresh_freq
}

fn check_loaded(program: &str, dir: &std::path::Path, policy: &str, idle: i64, hits: i64, fresh_freq: i64) {
    let server = start_server(program, dir, &["--maxmemory-policy", policy]);
    let mut c = server.conn();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 3, "{program}: keys missing after load");
    if policy.ends_with("lfu") {
        assert_eq!(freq(&mut c, "hot"), hits, "{program} loading with {policy}: FREQ of 'hot' lost");
        assert_eq!(freq(&mut c, "fresh"), fresh_freq, "{program} loading with {policy}: FREQ of 'fresh'");
    } else {
        let got = idletime(&mut c, "old");
        assert!((idle..idle + 5).contains(&got), "{program} loading with {policy}: IDLETIME of 'old' is {got}, want ~{idle}");
        let fresh = idletime(&mut c, "fresh");
        assert!(fresh < 5, "{program} loading with {policy}: IDLETIME of 'fresh' is {fresh}");
    }
}

#[test]
fn lru_idle_time_survives_rdb_both_ways() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    for (writer, reader, idle) in [(RF, "redis-server", 1000), ("redis-server", RF, 2345), (RF, RF, 777)] {
        let dir = tempfile::tempdir().unwrap();
        write_keys(writer, dir.path(), "allkeys-lru", idle, 0);
        check_loaded(reader, dir.path(), "allkeys-lru", idle, 0, 0);
    }
}

#[test]
fn lfu_frequency_survives_rdb_both_ways() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    for (writer, reader, hits) in [(RF, "redis-server", 77), ("redis-server", RF, 200), (RF, RF, 13)] {
        let dir = tempfile::tempdir().unwrap();
        let fresh_freq = write_keys(writer, dir.path(), "allkeys-lfu", 0, hits);
        check_loaded(reader, dir.path(), "volatile-lfu", 0, hits, fresh_freq);
    }
}

#[test]
fn no_access_info_without_an_lru_or_lfu_policy() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    // Saved under noeviction: no IDLE opcode, so Redis loads every key as just accessed.
    let dir = tempfile::tempdir().unwrap();
    {
        let rf = start_server(RF, dir.path(), &["--maxmemory-policy", "noeviction"]);
        let mut c = rf.conn();
        redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c).unwrap();
        let payload: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut c).unwrap();
        redis::cmd("RESTORE").arg("old").arg(0).arg(&payload).arg("IDLETIME").arg(5000).query::<()>(&mut c).unwrap();
        assert!(idletime(&mut c, "old") >= 5000, "IDLETIME applies under noeviction too (objectSetLRUOrLFU)");
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
    }
    let redis = start_server("redis-server", dir.path(), &["--maxmemory-policy", "allkeys-lru"]);
    let mut c = redis.conn();
    let got = idletime(&mut c, "old");
    assert!(got < 5, "an RDB saved under noeviction carried an idle time ({got})");
}
