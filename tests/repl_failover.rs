//! FAILOVER (Redis 6.2+): the master pauses writes until a replica has its offset, then
//! turns into that replica's replica with `PSYNC <replid> <offset> FAILOVER`, which makes
//! the target a master that continues the same history (a partial resync, no full one).
//! Error replies and the INFO state as Redis 7.0. Checked for our server and Debian's
//! redis-server (when installed).

mod common;

use std::time::Duration;

fn info(port: u16, field: &str) -> Option<String> {
    let text = common::redis_cli(port, &["INFO"]);
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

fn cli(port: u16, args: &[&str]) -> String {
    common::redis_cli(port, args).trim().to_string()
}

#[test]
fn failover_to_a_replica_swaps_the_roles_with_a_partial_resync() {
    for bin in common::ours_and_reference() {
        let master = common::spawn_for_replication(bin, &[]);
        let replica = common::spawn_for_replication(bin, &[]);
        let (m, r) = (master.port, replica.port);
        assert_eq!(cli(m, &["FAILOVER"]), "ERR FAILOVER requires connected replicas.", "{bin}");
        assert_eq!(cli(m, &["FAILOVER", "ABORT"]), "ERR No failover in progress.", "{bin}");
        assert_eq!(cli(r, &["REPLICAOF", "127.0.0.1", &m.to_string()]), "OK");
        assert!(common::wait_for(Duration::from_secs(20), || info(r, "master_link_status").as_deref() == Some("up")), "{bin}: no sync");
        assert_eq!(cli(m, &["FAILOVER", "TO", "127.0.0.1", "1"]), "ERR FAILOVER target HOST and PORT is not a replica.", "{bin}");
        assert_eq!(cli(m, &["FAILOVER", "FORCE", "TIMEOUT", "100"]), "ERR FAILOVER with force option requires both a timeout and target HOST and IP.", "{bin}");
        assert_eq!(cli(r, &["FAILOVER"]), "ERR FAILOVER is not valid when server is a replica.", "{bin}");
        for i in 0..50 {
            assert_eq!(cli(m, &["SET", &format!("k{i}"), "v"]), "OK");
        }
        assert_eq!(cli(m, &["CONFIG", "RESETSTAT"]), "OK");
        assert_eq!(cli(r, &["CONFIG", "RESETSTAT"]), "OK");
        assert_eq!(cli(m, &["FAILOVER", "TO", "127.0.0.1", &r.to_string()]), "OK", "{bin}");
        let done = common::wait_for(Duration::from_secs(20), || info(m, "master_failover_state").as_deref() == Some("no-failover"));
        assert!(done, "{bin}: the failover did not end");
        assert_eq!(info(m, "role").as_deref(), Some("slave"), "{bin}");
        assert_eq!(info(r, "role").as_deref(), Some("master"), "{bin}");
        assert!(common::wait_for(Duration::from_secs(20), || info(m, "master_link_status").as_deref() == Some("up")), "{bin}: old master not linked");
        assert_eq!(info(r, "sync_partial_ok").as_deref(), Some("1"), "{bin}: the old master did not continue with PSYNC");
        assert_eq!(info(r, "sync_full").as_deref(), Some("0"), "{bin}");
        // Writes go on at the new master and reach the old one.
        assert_eq!(cli(r, &["SET", "after", "1"]), "OK", "{bin}");
        assert!(common::wait_for(Duration::from_secs(20), || cli(m, &["GET", "after"]) == "1"), "{bin}: the new master's writes do not replicate");
        assert_eq!(cli(m, &["DBSIZE"]), "51", "{bin}");
    }
}

/// FAILOVER ... TIMEOUT FORCE to a replica that was stopped (SIGSTOP) with the master's last
/// write unread: once resumed, the target reads that write before it takes the PSYNC
/// FAILOVER (the link's overdue ACK to the now closed master must not drop it), so the old
/// master continues with a partial resync and no write is lost.
#[test]
fn forced_failover_to_a_stopped_replica_keeps_its_last_write() {
    for bin in common::ours_and_reference() {
        let master = common::spawn_for_replication(bin, &[]);
        let target = common::spawn_for_replication(bin, &["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let (m, t) = (master.port, target.port);
        assert!(common::wait_for(Duration::from_secs(20), || info(t, "master_link_status").as_deref() == Some("up")), "{bin}: no sync");
        assert_eq!(cli(m, &["SET", "a", "1"]), "OK");
        assert!(common::wait_for(Duration::from_secs(20), || cli(t, &["GET", "a"]) == "1"), "{bin}");
        assert_eq!(cli(t, &["CONFIG", "RESETSTAT"]), "OK");
        let pid = target.pid().to_string();
        let stop = std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill");
        assert!(stop.success());
        assert_eq!(cli(m, &["SET", "case", "2"]), "OK");
        assert_eq!(cli(m, &["FAILOVER", "TO", "127.0.0.1", &t.to_string(), "TIMEOUT", "100", "FORCE"]), "OK", "{bin}");
        let forced = common::wait_for(Duration::from_secs(10), || info(m, "master_failover_state").as_deref() == Some("failover-in-progress"));
        let cont = std::process::Command::new("kill").args(["-CONT", &pid]).status().expect("kill");
        assert!(cont.success());
        assert!(forced, "{bin}: the failover was not forced after the timeout");
        let done = common::wait_for(Duration::from_secs(20), || info(m, "master_failover_state").as_deref() == Some("no-failover"));
        assert!(done, "{bin}: the failover did not end");
        assert_eq!(info(t, "role").as_deref(), Some("master"), "{bin}");
        assert_eq!(cli(t, &["GET", "case"]), "2", "{bin}: the target lost the master's last write");
        assert_eq!(info(t, "sync_partial_ok").as_deref(), Some("1"), "{bin}: the old master did not continue with PSYNC");
        assert_eq!(info(t, "sync_full").as_deref(), Some("0"), "{bin}");
    }
}
