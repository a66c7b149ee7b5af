//! `sentinel-startup-check`: a master restarted without its data (no AOF) before the
//! sentinels noticed it was down must not come back as an empty master (its replica would
//! full-sync from it and lose every write). Real rf-server and rf-sentinel on 127.0.0.1.

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::process::{Command, Stdio};
use std::time::Duration;

use procs::*;

fn dbsize(port: u16) -> Option<i64> {
    redis::cmd("DBSIZE").query(&mut conn(port).ok()?).ok()
}

fn start_guarded_server(dir: &std::path::Path, port: u16, sentinel_port: u16, replica_of: Option<u16>) -> Proc {
    let mut cmd = Command::new(server_bin());
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--repl-diskless-sync-delay", "0", "--replica-announce-ip", "127.0.0.1"])
        .args(["--sentinel-startup-check", "mymaster", "127.0.0.1", &sentinel_port.to_string()])
        .arg("--logfile")
        .arg(dir.join(format!("server-{port}.log")));
    if let Some(m) = replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start rf-server");
    Proc::from_child(child, port)
}

#[test]
fn a_master_restarted_empty_waits_for_the_failover_and_no_write_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = start_server(dir.path(), None);
    let mport = master.port;
    let replica = start_server(dir.path(), Some(mport));
    let rport = replica.port;
    let mut m = conn(mport).unwrap();
    for i in 0..200 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut m).unwrap();
    }
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut m).unwrap();
    assert_eq!(acked, 1, "the replica did not acknowledge the writes");

    let opts = SentinelOpts { quorum: 1, down_after: 1000, failover_timeout: 10000, daemonize: false };
    let sentinel = start_sentinel(SentinelKind::Rf, dir.path(), mport, &opts);
    let sport = sentinel.port;
    let knows_replica = wait_until(Duration::from_secs(15), || {
        sentinel_cmd::<Vec<redis::Value>>(sport, &["REPLICAS", "mymaster"]).is_ok_and(|r| !r.is_empty())
    });
    assert!(knows_replica, "the sentinel never discovered the replica");

    // A crash restarted at once: the sentinel still names this address as the master.
    master.kill();
    let _restarted = start_guarded_server(dir.path(), mport, sport, None);
    let failed_over = wait_until(Duration::from_secs(30), || master_addr(sport) == Some(rport));
    assert!(failed_over, "the sentinel did not fail over to the replica");
    let rejoined = wait_until(Duration::from_secs(30), || {
        role(mport).is_some_and(|(r, of, up)| r == "slave" && of == Some(rport) && up)
    });
    assert!(rejoined, "the restarted server did not come back as the new master's replica");
    assert_eq!(dbsize(rport), Some(200), "the promoted replica lost writes");
    assert!(wait_until(Duration::from_secs(10), || dbsize(mport) == Some(200)), "the old master did not resync the data");
    let log = std::fs::read_to_string(dir.path().join(format!("server-{mport}.log"))).unwrap();
    assert!(log.contains("waiting for the failover"), "the guard did not wait: {log}");
    assert!(log.contains(&format!("Sentinels name 127.0.0.1:{rport} as master")), "{log}");
}

#[test]
fn a_replica_follows_the_master_the_sentinels_name_not_its_stale_config() {
    let dir = tempfile::tempdir().unwrap();
    let (stale, rport) = (free_port(), free_port());
    let master = start_server(dir.path(), None);
    let mport = master.port;
    let opts = SentinelOpts { quorum: 1, down_after: 1000, failover_timeout: 10000, daemonize: false };
    let sentinel = start_sentinel(SentinelKind::Rf, dir.path(), mport, &opts);
    let sport = sentinel.port;
    // Its config names a master that no longer is one (a ConfigMap not yet re-rendered).
    let _replica = start_guarded_server(dir.path(), rport, sport, Some(stale));
    let follows = wait_until(Duration::from_secs(15), || {
        role(rport).is_some_and(|(r, of, up)| r == "slave" && of == Some(mport) && up)
    });
    assert!(follows, "the replica did not follow the sentinels' master");
}
