//! Passwords everywhere (servers with requirepass, sentinels with requirepass and
//! auth-pass) and the notification / client-reconfig scripts called as Redis calls them.

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::collections::HashMap;
use std::time::Duration;

use procs::*;

/// A data server with a password on a free port (`Proc::port`); another port if that one
/// is taken (the password hides INFO, so the listening socket tells whose it is).
fn start_auth_server(dir: &std::path::Path, replica_of: Option<u16>) -> Proc {
    for _ in 0..5 {
        if let Some(p) = try_start_auth_server(dir, free_port(), replica_of) {
            return p;
        }
    }
    panic!("no password-protected server could start on a free port in 5 attempts");
}

fn try_start_auth_server(dir: &std::path::Path, port: u16, replica_of: Option<u16>) -> Option<Proc> {
    let mut cmd = Command::new(server_bin());
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"])
        .args(["--requirepass", "secret", "--masterauth", "secret"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null());
    if let Some(m) = replica_of {
        cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
    }
    Proc::from_child(cmd.spawn().unwrap(), port).started()
}

fn authed(port: u16, pass: &str) -> redis::Connection {
    let c = redis::Client::open(format!("redis://:{pass}@127.0.0.1:{port}/")).unwrap();
    c.get_connection_with_timeout(Duration::from_secs(1)).unwrap()
}

#[test]
fn passwords_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = Some(start_auth_server(dir.path(), None));
    let mport = master.as_ref().unwrap().port;
    let replica = start_auth_server(dir.path(), Some(mport));
    let rport = replica.port;
    let notify_log = dir.path().join("notify.log");
    let reconf_log = dir.path().join("reconf.log");
    for (name, log) in [("notify.sh", &notify_log), ("reconf.sh", &reconf_log)] {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display())).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let sports = [free_port(), free_port()];
    let mut sentinels = Vec::new();
    for sp in sports {
        let conf = dir.path().join(format!("s-{sp}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {sp}\nbind 127.0.0.1\nrequirepass spass\nlogfile \"{}\"\nsentinel monitor mymaster 127.0.0.1 {mport} 2\nsentinel auth-pass mymaster secret\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n\
                 sentinel notification-script mymaster {}\nsentinel client-reconfig-script mymaster {}\n",
                dir.path().join(format!("s-{sp}.log")).display(),
                dir.path().join("notify.sh").display(),
                dir.path().join("reconf.sh").display()
            ),
        )
        .unwrap();
        sentinels.push(Proc::spawn_for_test(RF_SENTINEL, &conf, sp));
    }
    // without AUTH the sentinel refuses
    let mut plain = conn(sports[0]).unwrap();
    let err = redis::cmd("SENTINEL").arg("masters").query::<redis::Value>(&mut plain).unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"));
    // with it: both sentinels found each other (authenticating with requirepass) and the replica
    let ok = wait_until(Duration::from_secs(15), || {
        sports.iter().all(|sp| {
            let mut c = authed(*sp, "spass");
            let m: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL").arg("masters").query(&mut c).unwrap_or_default();
            m.first().is_some_and(|m| m["num-slaves"] == "1" && m["num-other-sentinels"] == "1" && m["flags"] == "master")
        })
    });
    assert!(ok, "sentinels did not discover each other / the replica with passwords");
    assert!(wait_until(Duration::from_secs(15), || {
        let mut c = authed(rport, "secret");
        redis::cmd("INFO").arg("replication").query::<String>(&mut c).is_ok_and(|s| s.contains("master_link_status:up"))
    }));
    master.take();
    let ok = wait_until(Duration::from_secs(15), || {
        let mut c = authed(sports[0], "spass");
        let a: Vec<String> = redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg("mymaster").query(&mut c).unwrap_or_default();
        a.get(1) == Some(&rport.to_string())
    });
    if !ok || std::env::var_os("RF_TEST_DEBUG").is_some() {
        for sp in sports {
            eprintln!("--- sentinel {sp}\n{}", std::fs::read_to_string(dir.path().join(format!("s-{sp}.log"))).unwrap_or_default());
        }
    }
    assert!(ok, "no failover with passwords");
    assert!(wait_until(Duration::from_secs(5), || std::fs::read_to_string(&reconf_log).unwrap_or_default().lines().count() >= 2));
    let notify = std::fs::read_to_string(&notify_log).unwrap();
    assert!(notify.contains(&format!("+sdown master mymaster 127.0.0.1 {mport}")), "{notify}");
    assert!(notify.contains(&format!("+switch-master mymaster 127.0.0.1 {mport} 127.0.0.1 {rport}")), "{notify}");
    let reconf = std::fs::read_to_string(&reconf_log).unwrap();
    assert!(reconf.contains(&format!("mymaster leader start 127.0.0.1 {mport} 127.0.0.1 {rport}")), "{reconf}");
    assert!(reconf.contains(&format!("mymaster observer start 127.0.0.1 {mport} 127.0.0.1 {rport}")), "{reconf}");
    // the promoted replica really is master
    let mut c = authed(rport, "secret");
    let info: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
    assert!(info.contains("role:master"));
}

/// `flags` of the master and of each replica as `SENTINEL MASTER` / `REPLICAS` show them.
fn link_flags(sport: u16) -> Option<(String, Vec<String>)> {
    let m: HashMap<String, String> = sentinel_cmd(sport, &["master", "mymaster"]).ok()?;
    let r: Vec<HashMap<String, String>> = sentinel_cmd(sport, &["replicas", "mymaster"]).ok()?;
    Some((m.get("flags")?.clone(), r.iter().filter_map(|r| r.get("flags").cloned()).collect()))
}

/// Redis 7.0.15's sentinel suite, 03-runtime-reconf test 1: a sentinel started without the
/// password of password-protected servers shows them `disconnected`; after `SENTINEL SET
/// mymaster auth-pass` it logs in again on every link (Redis drops the master's and the
/// replicas' links), so it reaches them, finds the replica, and none shows `disconnected`.
/// Same steps against Debian's redis-sentinel.
#[test]
fn auth_pass_set_at_runtime_logs_in_again() {
    for kind in [SentinelKind::Rf, SentinelKind::Debian] {
        let dir = tempfile::tempdir().unwrap();
        let master = start_auth_server(dir.path(), None);
        let replica = start_auth_server(dir.path(), Some(master.port));
        let mport = master.port;
        let sentinel = start_sentinel_with(kind, |sp| {
            let conf = dir.path().join(format!("s-{sp}.conf"));
            std::fs::write(&conf, format!("port {sp}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {mport} 1\n")).unwrap();
            (conf, None)
        });
        let sport = sentinel.port;
        // without the password the links fail (SUBSCRIBE refused: NOAUTH)
        let refused = wait_until(Duration::from_secs(10), || link_flags(sport).is_some_and(|(m, _)| m.contains("disconnected")));
        assert!(refused, "{kind:?}: the master is not shown disconnected without its password: {:?}", link_flags(sport));
        let ok: String = sentinel_cmd(sport, &["set", "mymaster", "auth-pass", "secret"]).unwrap();
        assert_eq!(ok, "OK");
        let reconnected = wait_until(Duration::from_secs(20), || {
            link_flags(sport).is_some_and(|(m, r)| m == "master" && r.len() == 1 && r.iter().all(|f| f == "slave"))
        });
        assert!(reconnected, "{kind:?}: after SENTINEL SET auth-pass: {:?}", link_flags(sport));
        drop(replica);
    }
}
