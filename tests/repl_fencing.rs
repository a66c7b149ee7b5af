//! Fast fencing of a master that lost its replicas: our own `repl-ack-period-ms` (how often a
//! replica sends REPLCONF ACK; Redis: fixed 1 s) and `min-replicas-max-lag-ms` (a lag limit
//! in milliseconds; 0 = Redis's whole-second `min-replicas-max-lag`). A replica frozen with
//! SIGSTOP stands for a partition: the master must refuse writes within a few hundred ms and
//! accept them again once the replica is back. Mixed pairs with Debian's redis-server keep
//! working (Redis ignores nothing here: it never sees our directives).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ServerGuard;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");
const REDIS: &str = "/usr/bin/redis-server";

use common::spawn_for_replication as spawn;

fn replica_of(bin: &str, master: &ServerGuard, args: &[&str]) -> ServerGuard {
    let port = master.port.to_string();
    let mut all = vec!["--replicaof", "127.0.0.1", port.as_str()];
    all.extend_from_slice(args);
    let replica = spawn(bin, &all);
    assert!(
        common::wait_for(Duration::from_secs(20), || common::redis_cli(replica.port, &["INFO", "replication"])
            .contains("master_link_status:up")),
        "{bin} never synced"
    );
    replica
}

fn set(master: &ServerGuard, i: usize) -> Result<(), String> {
    let mut c = master.client();
    redis::cmd("SET").arg(format!("k{i}")).arg(i).query::<()>(&mut c).map_err(|e| e.to_string())
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

/// Writes every 10 ms until the master refuses one; how long that took.
fn time_to_refusal(master: &ServerGuard, limit: Duration) -> Option<(Duration, String)> {
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < limit {
        i += 1;
        if let Err(e) = set(master, i) {
            return Some((start.elapsed(), e));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn directives_are_ours_with_documented_defaults() {
    let s = spawn(RF, &[]);
    assert_eq!(common::redis_cli(s.port, &["CONFIG", "GET", "repl-ack-period-ms"]).trim(), "repl-ack-period-ms\n100");
    assert_eq!(common::redis_cli(s.port, &["CONFIG", "GET", "min-replicas-max-lag-ms"]).trim(), "min-replicas-max-lag-ms\n0");
    assert_eq!(common::redis_cli(s.port, &["CONFIG", "SET", "min-replicas-max-lag-ms", "250"]).trim(), "OK");
    assert_eq!(common::redis_cli(s.port, &["CONFIG", "GET", "min-replicas-max-lag-ms"]).trim(), "min-replicas-max-lag-ms\n250");
    assert!(common::redis_cli(s.port, &["CONFIG", "SET", "repl-ack-period-ms", "0"]).contains("ERR"), "a zero ACK period is refused");
}

#[test]
fn a_master_whose_replica_stops_acking_fences_itself_within_the_ms_lag() {
    let master = spawn(RF, &["--min-replicas-to-write", "1", "--min-replicas-max-lag-ms", "300"]);
    let replica = replica_of(RF, &master, &["--repl-ack-period-ms", "100"]);
    // a healthy replica acking every 100 ms keeps the master writable, never flapping
    for i in 0..200 {
        set(&master, i).unwrap_or_else(|e| panic!("write {i} refused with a live replica: {e}"));
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(replica.pid(), "-STOP");
    let refused = time_to_refusal(&master, Duration::from_secs(5));
    signal(replica.pid(), "-CONT");
    let (took, err) = refused.expect("the master never refused a write with its only replica frozen");
    assert!(err.contains("NOREPLICAS"), "refusal is -NOREPLICAS, got {err}");
    assert!(took <= Duration::from_millis(700), "fencing took {took:?} with min-replicas-max-lag-ms 300");
    assert!(common::wait_for(Duration::from_secs(3), || set(&master, 0).is_ok()), "writes never accepted again after SIGCONT");
    let info = common::redis_cli(master.port, &["INFO", "replication"]);
    assert!(info.contains("min_slaves_good_slaves:1"), "{info}");
}

#[test]
fn whole_second_lag_is_redis_rule_when_ms_lag_is_zero() {
    // With min-replicas-max-lag-ms 0 the lag is Redis's: a frozen replica is still good for
    // about min-replicas-max-lag (here 1) whole seconds.
    let master = spawn(RF, &["--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"]);
    let replica = replica_of(RF, &master, &[]);
    signal(replica.pid(), "-STOP");
    let refused = time_to_refusal(&master, Duration::from_secs(5));
    signal(replica.pid(), "-CONT");
    let (took, _) = refused.expect("never fenced with min-replicas-max-lag 1");
    assert!(took >= Duration::from_millis(900) && took <= Duration::from_millis(2500), "fenced after {took:?}");
}

#[test]
fn mixed_pairs_with_redis_keep_writes_accepted() {
    if !Path::new(REDIS).exists() {
        eprintln!("skipped: {REDIS} not installed");
        return;
    }
    // our master (ms lag off, Redis's rule) with a Debian replica acking once a second, and
    // a Debian master with our replica acking every 100 ms: writes accepted throughout.
    for (master_bin, replica_bin, master_args) in [
        (RF, REDIS, vec!["--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"]),
        (REDIS, RF, vec!["--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"]),
    ] {
        let master = spawn(master_bin, &master_args);
        let _replica = replica_of(replica_bin, &master, &[]);
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < Duration::from_secs(3) {
            i += 1;
            set(&master, i).unwrap_or_else(|e| panic!("master {master_bin} replica {replica_bin}: write {i} refused: {e}"));
            std::thread::sleep(Duration::from_millis(10));
        }
        let info = common::redis_cli(master.port, &["INFO", "replication"]);
        assert!(info.contains("min_slaves_good_slaves:1"), "master {master_bin} replica {replica_bin}: {info}");
    }
}
