//! Writable replicas and errors in the master's stream, as Redis 7.0 behaves
//! (integration/replication-3 and replication-4 of its suite): a replica expires the keys
//! its own clients gave a TTL (the master never sends a DEL for them), a write on a
//! writable replica deletes a logically expired key before recreating it, and an error
//! our master's stream gets is logged ("== CRITICAL ==") and counted in INFO
//! (`unexpected_error_replies`). Every check runs for our server and Debian's
//! redis-server (when installed) with the same expectations.

mod common;

use std::time::Duration;

use common::ServerGuard;

fn spawn(bin: &str, args: &[&str]) -> ServerGuard {
    let mut all = vec!["--enable-debug-command", "yes"];
    all.extend_from_slice(args);
    common::spawn_for_replication(bin, &all)
}

fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let text = common::redis_cli(port, &["INFO", section]);
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

/// A master and a replica of it (same binary), synced.
fn pair(bin: &str) -> (ServerGuard, ServerGuard) {
    let master = spawn(bin, &[]);
    let replica = spawn(bin, &["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let up = common::wait_for(Duration::from_secs(20), || info_field(replica.port, "replication", "master_link_status").as_deref() == Some("up"));
    assert!(up, "{bin}: replica never synced");
    (master, replica)
}

fn cli(port: u16, args: &[&str]) -> String {
    common::redis_cli(port, args).trim().to_string()
}

#[test]
fn writable_replica_expires_the_keys_its_clients_gave_a_ttl() {
    for bin in common::ours_and_reference() {
        let (_master, replica) = pair(bin);
        let r = replica.port;
        assert_eq!(cli(r, &["CONFIG", "SET", "replica-read-only", "no"]), "OK");
        for k in ["key1", "key2", "key3"] {
            assert_eq!(cli(r, &["-n", "5", "SET", k, "1", "PX", "200"]), "OK", "{bin}");
        }
        assert_eq!(cli(r, &["-n", "5", "DBSIZE"]), "3", "{bin}");
        assert_eq!(info_field(r, "stats", "slave_expires_tracked_keys").as_deref(), Some("3"), "{bin}: keys not tracked");
        // Only the replica's own expiry removes them: the master knows nothing of them.
        let gone = common::wait_for(Duration::from_secs(20), || cli(r, &["-n", "5", "DBSIZE"]) == "0");
        assert!(gone, "{bin}: the replica kept its own expired keys");
        assert_eq!(info_field(r, "stats", "slave_expires_tracked_keys").as_deref(), Some("0"), "{bin}");
    }
}

#[test]
fn write_on_writable_replica_recreates_a_logically_expired_key() {
    for bin in common::ours_and_reference() {
        let (master, replica) = pair(bin);
        let (m, r) = (master.port, replica.port);
        assert_eq!(cli(m, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), "OK");
        assert_eq!(cli(m, &["SET", "key1", "5", "PX", "10"]), "OK");
        assert_eq!(cli(m, &["SET", "key2", "5", "PX", "10"]), "OK");
        let expired = common::wait_for(Duration::from_secs(20), || cli(r, &["DBSIZE"]) == "2" && cli(r, &["EXISTS", "key1", "key2"]) == "0");
        assert!(expired, "{bin}: keys did not replicate or expire");
        assert_eq!(cli(r, &["CONFIG", "SET", "replica-read-only", "no"]), "OK");
        assert_eq!(cli(r, &["DBSIZE"]), "2", "{bin}");
        assert_eq!(cli(r, &["INCR", "key1"]), "1", "{bin}: INCR saw the expired value");
        assert_eq!(cli(r, &["TTL", "key1"]), "-1", "{bin}: the recreated key kept the old TTL");
        assert_eq!(cli(r, &["GET", "key2"]), "", "{bin}");
        assert_eq!(cli(r, &["DBSIZE"]), "2", "{bin}");
    }
}

#[test]
fn errors_in_the_master_stream_are_logged_and_counted() {
    for bin in common::ours_and_reference() {
        let (master, replica) = pair(bin);
        let (m, r) = (master.port, replica.port);
        assert_eq!(cli(m, &["DEBUG", "REPLICATE", "fake-command-1"]), "OK", "{bin}");
        assert_eq!(cli(m, &["SET", "foo", "bar2"]), "OK");
        assert_eq!(cli(m, &["WAIT", "1", "5000"]), "1", "{bin}");
        let applied = common::wait_for(Duration::from_secs(10), || cli(r, &["GET", "foo"]) == "bar2");
        assert!(applied, "{bin}: the stream stopped after the bad command");
        let logged = common::wait_for(Duration::from_secs(10), || replica.log_text().contains("== CRITICAL =="));
        assert!(logged, "{bin}: no CRITICAL line:\n{}", replica.log_text());
        let log = replica.log_text();
        assert_eq!(log.lines().filter(|l| l.contains("fake-command-1")).count(), 1, "{bin}:\n{log}");
        assert_eq!(log.lines().filter(|l| l.contains("== CRITICAL ==")).count(), 1, "{bin}:\n{log}");
        assert_eq!(info_field(r, "stats", "unexpected_error_replies").as_deref(), Some("1"), "{bin}");
        // A writable replica's diverging data makes the master's INCRBY fail there.
        assert_eq!(cli(r, &["CONFIG", "SET", "replica-read-only", "no"]), "OK");
        assert_eq!(cli(r, &["SET", "number2", "foo"]), "OK");
        assert_eq!(cli(m, &["INCRBY", "number2", "1"]), "1");
        assert_eq!(cli(m, &["WAIT", "1", "5000"]), "1", "{bin}");
        assert_eq!(cli(r, &["GET", "number2"]), "foo", "{bin}");
        let logged = common::wait_for(Duration::from_secs(10), || replica.log_text().lines().any(|l| l.contains("incrby")));
        assert!(logged, "{bin}: no CRITICAL line for incrby:\n{}", replica.log_text());
        assert_eq!(info_field(r, "stats", "unexpected_error_replies").as_deref(), Some("2"), "{bin}");
    }
}
