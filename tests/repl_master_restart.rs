//! A master restarted from its RDB keeps the file's replication history as its secondary
//! one (Redis 7.0's loadDataFromDisk): master_replid2 is the old id, second_repl_offset the
//! old offset + 1, its offset continues from there with an empty backlog, and its replica
//! continues with a partial resync. Keys found expired while loading are counted
//! (`rdb_last_load_keys_expired`) and their DELs go to the backlog after the old offset.
//! Checked for our server and Debian's redis-server (when installed).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ServerGuard;

fn info(port: u16, field: &str) -> Option<String> {
    let text = common::redis_cli(port, &["INFO"]);
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

fn num(port: u16, field: &str) -> i64 {
    info(port, field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

const MASTER_ARGS: [&str; 8] = ["--save", "3600 1", "--appendonly", "no", "--enable-debug-command", "yes", "--repl-ping-replica-period", "3600"];

/// SHUTDOWN (saving) and a new process of `bin` on the same port and directory.
fn restart(bin: &str, mut old: ServerGuard) -> ServerGuard {
    // NOW: no wait for lagging replicas, no GETACK that would move the offset.
    let _ = common::redis_cli(old.port, &["SHUTDOWN", "NOW"]);
    assert!(old.wait_exit(Duration::from_secs(20)).is_some(), "{bin}: master did not exit");
    let dir = std::mem::replace(&mut old.dir, tempfile::tempdir().unwrap());
    let log = dir.path().join("server2.log");
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = Command::new(bin)
        .args(MASTER_ARGS)
        .arg("--port")
        .arg(old.port.to_string())
        .arg("--dir")
        .arg(dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("restart");
    let g = ServerGuard { child: Some(child), port: old.port, dir, log };
    assert!(common::wait_ready(g.port, Duration::from_secs(20)), "{bin}: restarted master not ready:\n{}", g.log_text());
    g
}

#[test]
fn restarted_master_continues_its_history() {
    for bin in common::ours_and_reference() {
        let master = common::spawn_server(Path::new(bin), &MASTER_ARGS);
        let replica = common::spawn_for_replication(bin, &["--repl-timeout", "3600"]);
        let (m, r) = (master.port, replica.port);
        assert_eq!(common::redis_cli(r, &["REPLICAOF", "127.0.0.1", &m.to_string()]).trim(), "OK");
        assert!(common::wait_for(Duration::from_secs(20), || info(r, "master_link_status").as_deref() == Some("up")), "{bin}: no sync");
        assert_eq!(common::redis_cli(m, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).trim(), "OK");
        for i in 0..20 {
            let key = format!("k{i}");
            assert_eq!(common::redis_cli(m, &["SET", &key, "v"]).trim(), "OK");
        }
        for i in 0..10 {
            let key = format!("e{i}");
            assert_eq!(common::redis_cli(m, &["SET", &key, "v", "PX", "10"]).trim(), "OK");
        }
        std::thread::sleep(Duration::from_millis(20));
        let offset = num(m, "master_repl_offset");
        assert!(common::wait_for(Duration::from_secs(20), || num(r, "master_repl_offset") == offset), "{bin}: replica behind");
        let replid = info(m, "master_replid").unwrap();
        let master = restart(bin, master);
        assert!(common::wait_for(Duration::from_secs(30), || info(r, "master_link_status").as_deref() == Some("up")), "{bin}: no resync");
        assert_ne!(info(m, "master_replid").unwrap(), replid, "{bin}");
        assert_eq!(info(m, "master_replid2").unwrap(), replid, "{bin}");
        assert_eq!(num(m, "second_repl_offset"), offset + 1, "{bin}");
        assert_eq!(num(m, "rdb_last_load_keys_expired"), 10, "{bin}");
        let histlen = num(m, "repl_backlog_histlen");
        assert!(histlen > 0, "{bin}: no DELs for the expired keys");
        assert_eq!(num(m, "master_repl_offset"), offset + histlen, "{bin}");
        assert_eq!(num(m, "repl_backlog_first_byte_offset"), offset + 1, "{bin}");
        assert_eq!(num(m, "sync_partial_ok"), 1, "{bin}: the replica did not continue");
        assert_eq!(num(m, "sync_full"), 0, "{bin}");
        // The DELs reached the replica: it holds exactly the 20 live keys.
        let same = common::wait_for(Duration::from_secs(20), || common::redis_cli(r, &["DBSIZE"]).trim() == "20");
        assert!(same, "{bin}: the replica kept the keys expired at the restart");
        assert_eq!(common::redis_cli(m, &["DBSIZE"]).trim(), "20", "{bin}");
        drop(master);
    }
}
