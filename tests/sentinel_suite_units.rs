//! Behaviours Redis 7.0.15's sentinel suite (`./runtest-sentinel`) checks, each run against
//! rf-sentinel and Debian's redis-sentinel with the same steps and the same expectations:
//! announce-hostnames (08-hostname-conf), replica-announced (10-replica-priority), SENTINEL
//! SET's script checks and config saving (03-runtime-reconf).

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use procs::*;

const KINDS: [SentinelKind; 2] = [SentinelKind::Rf, SentinelKind::Debian];

/// A sentinel of `kind` watching `mymaster` at `host:mport` (quorum 1) with `extra` lines.
fn sentinel(kind: SentinelKind, dir: &Path, host: &str, mport: u16, extra: &str) -> Proc {
    start_sentinel_with(kind, |sp| {
        let conf = dir.join(format!("sentinel-{sp}.conf"));
        let text = format!("port {sp}\nbind 127.0.0.1\ndir \"{}\"\n{extra}sentinel monitor mymaster {host} {mport} 1\n", dir.display());
        std::fs::write(&conf, text).unwrap();
        (conf, None)
    })
}

fn replicas(sport: u16) -> Vec<HashMap<String, String>> {
    sentinel_cmd(sport, &["replicas", "mymaster"]).unwrap_or_default()
}

fn master_host(sport: u16) -> Option<String> {
    let v: Vec<String> = sentinel_cmd(sport, &["get-master-addr-by-name", "mymaster"]).ok()?;
    v.first().cloned()
}

fn is_loopback_ip(h: &str) -> bool {
    h == "127.0.0.1" || h == "::1"
}

/// 08-hostname-conf: with `resolve-hostnames yes` the names given are kept; they are shown
/// (GET-MASTER-ADDR-BY-NAME, the replicas' `ip`) only while `announce-hostnames` is yes,
/// their IP addresses once it is set to no, and the names again when it is set back.
#[test]
fn announce_hostnames_chooses_names_or_addresses() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let master = start_server_on(&server_bin(), dir.path(), free_port(), None, &["--replica-announce-ip", "localhost"]).expect("master");
        let replica = start_server_on(&server_bin(), dir.path(), free_port(), Some(master.port), &["--replica-announce-ip", "localhost"]).expect("replica");
        let s = sentinel(kind, dir.path(), "localhost", master.port, "sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n");
        let sport = s.port;
        let found = wait_until(Duration::from_secs(20), || replicas(sport).len() == 1);
        assert!(found, "{kind:?}: the replica was not discovered: {:?}", replicas(sport));
        assert_eq!(master_host(sport).as_deref(), Some("localhost"), "{kind:?}");
        assert_eq!(replicas(sport)[0].get("ip").map(String::as_str), Some("localhost"), "{kind:?}");

        let ok: String = sentinel_cmd(sport, &["config", "set", "announce-hostnames", "no"]).unwrap();
        assert_eq!(ok, "OK");
        let mh = master_host(sport).unwrap_or_default();
        assert!(is_loopback_ip(&mh), "{kind:?}: master shown as {mh:?} with announce-hostnames no");
        let rip = replicas(sport)[0].get("ip").cloned().unwrap_or_default();
        assert!(is_loopback_ip(&rip), "{kind:?}: replica shown as {rip:?} with announce-hostnames no");
        let m: HashMap<String, String> = sentinel_cmd(sport, &["master", "mymaster"]).unwrap();
        assert_eq!(m.get("ip"), Some(&mh), "{kind:?}: SENTINEL MASTER's ip and GET-MASTER-ADDR-BY-NAME differ");

        let ok: String = sentinel_cmd(sport, &["config", "set", "announce-hostnames", "yes"]).unwrap();
        assert_eq!(ok, "OK");
        assert_eq!(master_host(sport).as_deref(), Some("localhost"), "{kind:?}");
        drop(replica);
    }
}

/// 10-replica-priority: a replica whose INFO says `replica_announced:0` (CONFIG SET
/// replica-announced no) is left out of SENTINEL REPLICAS, still counted in the master's
/// num-slaves, and listed again once it is announced.
#[test]
fn unannounced_replicas_are_not_listed() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let (ports, procs) = start_servers(dir.path(), 2);
        let s = sentinel(kind, dir.path(), "127.0.0.1", ports[0], "");
        let sport = s.port;
        let _: String = sentinel_cmd(sport, &["debug", "info-period", "100"]).unwrap();
        let both = wait_until(Duration::from_secs(20), || replicas(sport).len() == 2);
        assert!(both, "{kind:?}: replicas not discovered: {:?}", replicas(sport));

        let mut c = conn(ports[1]).unwrap();
        let _: String = redis::cmd("CONFIG").arg("SET").arg("replica-announced").arg("no").query(&mut c).unwrap();
        let hidden = wait_until(Duration::from_secs(20), || replicas(sport).len() == 1);
        let listed = replicas(sport);
        assert!(hidden, "{kind:?}: the unannounced replica is still listed: {listed:?}");
        assert_eq!(listed[0].get("port"), Some(&ports[2].to_string()), "{kind:?}: the wrong replica was left out");
        let m: HashMap<String, String> = sentinel_cmd(sport, &["master", "mymaster"]).unwrap();
        assert_eq!(m.get("num-slaves").map(String::as_str), Some("2"), "{kind:?}");

        let _: String = redis::cmd("CONFIG").arg("SET").arg("replica-announced").arg("yes").query(&mut c).unwrap();
        let back = wait_until(Duration::from_secs(20), || replicas(sport).len() == 2);
        assert!(back, "{kind:?}: the replica announced again is not listed: {:?}", replicas(sport));
        drop(procs);
    }
}

fn set_reply(sport: u16, args: &[&str]) -> String {
    let mut full = vec!["set", "mymaster"];
    full.extend_from_slice(args);
    match sentinel_cmd::<String>(sport, &full) {
        Ok(s) => s,
        Err(e) => format!("ERR {}", e.detail().unwrap_or_default()),
    }
}

/// 03-runtime-reconf "Sentinel Set with other error situations": the script options need
/// an executable file, are refused under deny-scripts-reconfig, and SENTINEL SET answers
/// an error when the config cannot be saved. Both sentinels must give the same replies.
#[test]
fn sentinel_set_checks_scripts_and_reports_save_failures() {
    let mut replies: Vec<(SentinelKind, Vec<String>)> = Vec::new();
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let master = start_server(dir.path(), None);
        let script = dir.path().join("notify.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "not a script\n").unwrap();
        let (script, plain) = (script.display().to_string(), plain.display().to_string());
        let missing = dir.path().join("missing.sh").display().to_string();

        let mut got = Vec::new();
        let open = sentinel(kind, dir.path(), "127.0.0.1", master.port, "sentinel deny-scripts-reconfig no\n");
        got.push(set_reply(open.port, &["notification-script", &missing]));
        got.push(set_reply(open.port, &["notification-script", &plain]));
        got.push(set_reply(open.port, &["client-reconfig-script", &missing]));
        got.push(set_reply(open.port, &["notification-script", &script]));
        got.push(set_reply(open.port, &["client-reconfig-script", &script]));
        let m: HashMap<String, String> = sentinel_cmd(open.port, &["master", "mymaster"]).unwrap();
        got.push(format!("{:?} {:?}", m.get("notification-script") == Some(&script), m.get("client-reconfig-script") == Some(&script)));
        got.push(set_reply(open.port, &["notification-script", ""]));

        // the config file replaced by a directory: the change is applied, the save fails
        let conf = dir.path().join(format!("sentinel-{}.conf", open.port));
        let saved = dir.path().join("saved.conf");
        std::fs::rename(&conf, &saved).unwrap();
        std::fs::create_dir(&conf).unwrap();
        got.push(set_reply(open.port, &["quorum", "2"]));
        std::fs::remove_dir(&conf).unwrap();
        std::fs::rename(&saved, &conf).unwrap();
        let m: HashMap<String, String> = sentinel_cmd(open.port, &["master", "mymaster"]).unwrap();
        got.push(format!("quorum {:?}", m.get("quorum")));
        // saved at once: the file has the new quorum when the reply comes
        got.push(set_reply(open.port, &["quorum", "3"]));
        let text = std::fs::read_to_string(&conf).unwrap();
        got.push(format!("{}", text.contains(&format!("sentinel monitor mymaster 127.0.0.1 {} 3", master.port))));
        drop(open);

        let closed = sentinel(kind, dir.path(), "127.0.0.1", master.port, "");
        got.push(set_reply(closed.port, &["notification-script", &script]));
        got.push(set_reply(closed.port, &["client-reconfig-script", &script]));
        replies.push((kind, got));
    }
    let (_, rf) = &replies[0];
    let (_, debian) = &replies[1];
    assert_eq!(rf, debian, "rf-sentinel's replies differ from Debian's redis-sentinel's");
    assert_eq!(rf[0], "ERR Notification script seems non existing or non executable");
    assert_eq!(rf[1], "ERR Notification script seems non existing or non executable");
    assert_eq!(rf[2], "ERR Client reconfiguration script seems non existing or non executable");
    assert_eq!(&rf[3..7], &["OK", "OK", "true true", "OK"]);
    assert_eq!(rf[7], "ERR Failed to save config file. Check server logs.");
    assert_eq!(rf[8], "quorum Some(\"2\")");
    assert_eq!(&rf[9..11], &["OK", "true"]);
    assert!(rf[11].starts_with("ERR Reconfiguration of scripts path is denied"), "{}", rf[11]);
}

/// A sentinel whose port is taken exits with a failure, the reason in its log file and
/// nothing on stderr: the suites count any stderr output of an instance as a failure (the
/// restart of an already running sentinel in 12-master-reboot's init did).
#[test]
fn bind_failure_is_logged_not_printed_to_stderr() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let conf = dir.path().join("sentinel.conf");
        let log = dir.path().join("log.txt");
        std::fs::write(&conf, format!("port {port}\nbind 127.0.0.1\nlogfile \"{}\"\nsentinel monitor mymaster 127.0.0.1 1 1\n", log.display())).unwrap();
        let bin = match kind {
            SentinelKind::Rf => RF_SENTINEL,
            SentinelKind::Debian => REDIS_SENTINEL,
        };
        let out = std::process::Command::new(bin).arg(&conf).output().expect("run sentinel");
        assert!(!out.status.success(), "{kind:?}: started on a taken port");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{kind:?}: stderr");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("Could not create server TCP listening socket"), "{kind:?}: log:\n{text}");
        drop(holder);
    }
}
