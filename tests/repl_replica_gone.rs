//! A master forgets a replica as soon as the replica's connection closes (as Redis does),
//! even when no write is flowing: INFO, WAIT, min-replicas and the sentinels rely on it.

mod common;

use std::time::{Duration, Instant};

fn replication_field(port: u16, field: &str) -> Option<String> {
    let info = common::redis_cli(port, &["INFO", "replication"]);
    info.lines().find_map(|l| l.trim().strip_prefix(&format!("{field}:")).map(str::to_string))
}

fn wait_for_field(port: u16, field: &str, want: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if replication_field(port, field).as_deref() == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn killed_replica_is_dropped_without_traffic() {
    let master = common::spawn_rf(&["--save", ""]);
    let master_port = master.port.to_string();
    let mut replica = common::spawn_rf(&["--save", "", "--replicaof", "127.0.0.1", &master_port]);
    assert!(wait_for_field(master.port, "connected_slaves", "1", Duration::from_secs(10)), "replica never attached");

    // SIGKILL: the replica says nothing, its socket just closes.
    let mut child = replica.child.take().expect("replica process");
    child.kill().expect("kill replica");
    child.wait().expect("reap replica");

    assert!(
        wait_for_field(master.port, "connected_slaves", "0", Duration::from_secs(2)),
        "the master still lists the dead replica: {:?}",
        common::redis_cli(master.port, &["INFO", "replication"])
    );
    assert!(master.log_text().contains("Connection with replica 127.0.0.1:"), "no log line for the lost replica");
    drop(replica);
}

/// Sentinels (and the operator's scale-down) set `replica-priority 0` and read INFO right
/// after: the new priority must show at once, as in Redis, not at the next replication tick.
#[test]
fn config_set_replica_priority_shows_in_the_next_info() {
    let master = common::spawn_rf(&["--save", ""]);
    let master_port = master.port.to_string();
    let replica = common::spawn_rf(&["--save", "", "--replicaof", "127.0.0.1", &master_port]);
    assert!(wait_for_field(replica.port, "master_link_status", "up", Duration::from_secs(10)), "replica never linked");
    // Several rounds: the old code was right only when a 100 ms tick fell in between.
    for priority in ["0", "7", "0", "100", "0"] {
        let mut conn = replica.client();
        let _: () = redis::cmd("CONFIG").arg("SET").arg("replica-priority").arg(priority).query(&mut conn).expect("CONFIG SET");
        let info: String = redis::cmd("INFO").arg("replication").query(&mut conn).expect("INFO");
        let shown = info.lines().find_map(|l| l.trim().strip_prefix("slave_priority:")).map(str::to_string);
        assert_eq!(shown.as_deref(), Some(priority), "INFO right after CONFIG SET: {info}");
    }
}
