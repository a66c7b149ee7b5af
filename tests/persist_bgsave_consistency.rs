//! A background save is the dataset of the instant BGSAVE ran, whatever clients do while
//! it is written: overwrites, deletes, new keys, expiries, FLUSHDB and SWAPDB in the middle
//! of it. The saved file is loaded by a second rf-server (DEBUG DIGEST equal to the digest
//! taken at BGSAVE time) and checked by Debian's redis-check-rdb.

mod persist_support;

use std::process::Command;

use persist_support::*;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");
const KEYS: usize = 200_000;

fn fill(c: &mut redis::Connection, db: u32) {
    redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
    for chunk in 0..KEYS / 10_000 {
        let mut p = redis::pipe();
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            p.cmd("SET").arg(format!("k:{i}")).arg(format!("v{i}")).ignore();
            if i % 1000 == 0 {
                p.cmd("HSET").arg(format!("h:{i}")).arg("f").arg(i).ignore();
                p.cmd("RPUSH").arg(format!("l:{i}")).arg(i).arg(i + 1).ignore();
                p.cmd("PEXPIRE").arg(format!("k:{i}")).arg(10_000_000).ignore();
            }
        }
        p.query::<()>(c).unwrap();
    }
}

fn digest(c: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(c).unwrap()
}

#[test]
fn bgsave_writes_the_dataset_of_its_start_while_clients_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(RF, dir.path(), &["--enable-debug-command", "yes"]);
    let mut c = server.conn();
    fill(&mut c, 0);
    fill(&mut c, 1);
    redis::cmd("SELECT").arg(0).query::<()>(&mut c).unwrap();
    let at_start = digest(&mut c);
    assert_eq!(redis::cmd("BGSAVE").query::<String>(&mut c).unwrap(), "Background saving started");

    // One pipeline right behind BGSAVE: it runs while the save is being written. First
    // the whole-database changes (SWAPDB moves a database being saved, FLUSHDB empties one).
    let mut p = redis::pipe();
    p.cmd("SWAPDB").arg(0).arg(1).ignore();
    p.cmd("SELECT").arg(1).ignore();
    p.cmd("FLUSHDB").ignore();
    p.cmd("SET").arg("after-flush").arg(1).ignore();
    p.cmd("SELECT").arg(0).ignore();
    p.cmd("INFO").arg("persistence");
    for i in (0..KEYS).step_by(7) {
        p.cmd("SET").arg(format!("k:{i}")).arg("overwritten").ignore();
    }
    for i in (3..KEYS).step_by(11) {
        p.cmd("DEL").arg(format!("k:{i}")).ignore();
    }
    for i in (0..KEYS).step_by(1000) {
        p.cmd("HSET").arg(format!("h:{i}")).arg("g").arg("new").ignore();
        p.cmd("LPOP").arg(format!("l:{i}")).ignore();
        p.cmd("PERSIST").arg(format!("k:{i}")).ignore();
        p.cmd("EXPIRE").arg(format!("k:{}", i + 1)).arg(1000).ignore();
    }
    for i in 0..5000 {
        p.cmd("SET").arg(format!("new:{i}")).arg(i).ignore();
    }
    p.cmd("INFO").arg("persistence");
    let (first, last): (String, String) = p.query(&mut c).unwrap();
    assert!(
        first.contains("rdb_bgsave_in_progress:1"),
        "SWAPDB and FLUSHDB ran after the save finished, so this test proved nothing; make the dataset bigger"
    );
    eprintln!("save still running after every change: {}", last.contains("rdb_bgsave_in_progress:1"));
    assert!(wait_until(60, || info_field(&mut c, "persistence", "rdb_bgsave_in_progress").as_deref() == Some("0")));
    assert_eq!(info_field(&mut c, "persistence", "rdb_last_bgsave_status").as_deref(), Some("ok"));
    assert_ne!(digest(&mut c), at_start, "the changes did not change the dataset");

    let path = dir.path().join("dump.rdb");
    let out = Command::new("redis-check-rdb").arg(&path).output();
    if let Ok(out) = out {
        assert!(out.status.success(), "redis-check-rdb refused the file: {}", String::from_utf8_lossy(&out.stdout));
    }
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&path, copy.path().join("dump.rdb")).unwrap();
    let loaded = start_server(RF, copy.path(), &["--enable-debug-command", "yes"]);
    let mut l = loaded.conn();
    assert_eq!(digest(&mut l), at_start, "the saved file is not the dataset of BGSAVE time");
    let keys: i64 = redis::cmd("DBSIZE").query(&mut l).unwrap();
    assert!(keys > KEYS as i64, "db 0 of the file lacks keys: {keys}");
}
