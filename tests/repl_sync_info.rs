//! INFO while a master produces the RDB of a replica's full sync: Redis does it in an RDB
//! child, so `rdb_bgsave_in_progress` is 1 and the replica is listed `wait_bgsave` (with
//! diskless sync, for the whole transfer); the harness of Redis's replication units waits
//! for exactly that. Checked for our server and Debian's redis-server (when installed).

mod common;

use std::time::Duration;

fn info_field(port: u16, field: &str) -> Option<String> {
    let text = common::redis_cli(port, &["INFO"]);
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

#[test]
fn full_sync_rdb_shows_as_bgsave_in_progress() {
    for bin in common::ours_and_reference() {
        for diskless in ["yes", "no"] {
            let master = common::spawn_for_replication(bin, &["--enable-debug-command", "yes", "--repl-diskless-sync", diskless]);
            let replica = common::spawn_for_replication(bin, &[]);
            let m = master.port;
            assert_eq!(common::redis_cli(m, &["DEBUG", "POPULATE", "20", "k", "10"]).trim(), "OK");
            // 20 keys at 0.1 s each: the RDB takes about 2 s to produce.
            assert_eq!(common::redis_cli(m, &["CONFIG", "SET", "rdb-key-save-delay", "100000"]).trim(), "OK");
            assert_eq!(info_field(m, "rdb_bgsave_in_progress").as_deref(), Some("0"), "{bin}");
            assert_eq!(common::redis_cli(replica.port, &["REPLICAOF", "127.0.0.1", &m.to_string()]).trim(), "OK");
            let seen = common::wait_for(Duration::from_secs(10), || {
                info_field(m, "rdb_bgsave_in_progress").as_deref() == Some("1") && info_field(m, "slave0").is_some_and(|s| s.contains("state=wait_bgsave"))
            });
            assert!(seen, "{bin} diskless={diskless}: the full sync's RDB did not show as a BGSAVE in progress");
            let done = common::wait_for(Duration::from_secs(30), || info_field(replica.port, "master_link_status").as_deref() == Some("up"));
            assert!(done, "{bin} diskless={diskless}: replica never synced");
            let idle = common::wait_for(Duration::from_secs(10), || info_field(m, "rdb_bgsave_in_progress").as_deref() == Some("0"));
            assert!(idle, "{bin} diskless={diskless}: BGSAVE still shown in progress after the sync");
            assert_eq!(common::redis_cli(replica.port, &["DBSIZE"]).trim(), "20", "{bin}");
        }
    }
}

/// CONFIG RESETSTAT clears the sync counters too (Redis's resetServerStats), which the
/// replication units rely on before counting the syncs a restart causes.
#[test]
fn resetstat_clears_the_sync_counters() {
    for bin in common::ours_and_reference() {
        let master = common::spawn_for_replication(bin, &[]);
        let replica = common::spawn_for_replication(bin, &["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let up = common::wait_for(Duration::from_secs(20), || info_field(replica.port, "master_link_status").as_deref() == Some("up"));
        assert!(up, "{bin}: replica never synced");
        assert_eq!(info_field(master.port, "sync_full").as_deref(), Some("1"), "{bin}");
        assert_eq!(common::redis_cli(master.port, &["CONFIG", "RESETSTAT"]).trim(), "OK");
        assert_eq!(info_field(master.port, "sync_full").as_deref(), Some("0"), "{bin}");
        assert_eq!(info_field(master.port, "sync_partial_ok").as_deref(), Some("0"), "{bin}");
    }
}
