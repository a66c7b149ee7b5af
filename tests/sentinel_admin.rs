//! The sentinel port's administration commands, checked against a real rf-sentinel (and
//! Debian's redis-sentinel where its reply is the reference): SENTINEL DEBUG, the script
//! queue (SENTINEL PENDING-SCRIPTS, retries, time-outs), CLIENT, ACL users, the run-time
//! log level and `include`.

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use procs::*;
use redis::Value;

/// A sentinel config monitoring a master on a port where nothing listens.
fn dead_master_conf(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    let dead = free_port();
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nlogfile \"{}\"\nsentinel monitor mymaster 127.0.0.1 {dead} 2\nsentinel down-after-milliseconds mymaster 60000\n{extra}",
            dir.join(format!("sentinel-{port}.log")).display()
        ),
    )
    .unwrap();
    conf
}

fn cmd(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Int(i) => i.to_string(),
        Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    }
}

/// A RESP2 flat array of pairs (or a RESP3 map) as a map of strings.
fn pairs(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => items.chunks(2).map(|p| (text(&p[0]), p[1].clone())).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        other => panic!("not a map: {other:?}"),
    }
}

fn write_script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn sentinel_debug_lists_redis_parameters_and_sets_them() {
    let dir = tempfile::tempdir().unwrap();
    let _s = start_sentinel_with(SentinelKind::Rf, |p| (dead_master_conf(dir.path(), p, ""), None));
    let _d = start_sentinel_with(SentinelKind::Debian, |p| (dead_master_conf(dir.path(), p, ""), None));
    let (ours, theirs) = (_s.port, _d.port);
    let mut c = conn(ours).unwrap();
    let mut d = conn(theirs).unwrap();
    let our_list = pairs(&cmd(&mut c, &["SENTINEL", "DEBUG"]).unwrap());
    let their_list = pairs(&cmd(&mut d, &["SENTINEL", "DEBUG"]).unwrap());
    let names = |l: &[(String, Value)]| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&our_list), names(&their_list), "same parameters, same order");
    let ours_map: HashMap<String, String> = our_list.iter().map(|(k, v)| (k.clone(), text(v))).collect();
    assert_eq!(ours_map["INFO-PERIOD"], "10000");
    assert_eq!(ours_map["SCRIPT-MAX-RUNTIME"], "60000");
    // set several at once; errors as Redis's
    assert_eq!(text(&cmd(&mut c, &["SENTINEL", "DEBUG", "info-period", "5000", "default-down-after", "1234"]).unwrap()), "OK");
    for bad in [&["SENTINEL", "DEBUG", "foo", "1"][..], &["SENTINEL", "DEBUG", "info-period", "-1"], &["SENTINEL", "DEBUG", "info-period"]] {
        let e1 = cmd(&mut c, bad).unwrap_err().to_string();
        let e2 = cmd(&mut d, bad).unwrap_err().to_string();
        assert_eq!(e1, e2, "{bad:?}");
    }
    let after: HashMap<String, String> = pairs(&cmd(&mut c, &["SENTINEL", "DEBUG"]).unwrap()).iter().map(|(k, v)| (k.clone(), text(v))).collect();
    assert_eq!((after["INFO-PERIOD"].as_str(), after["DEFAULT-DOWN-AFTER"].as_str()), ("5000", "1234"));
    // the new default is really used: a master added now gets it
    let dead = free_port().to_string();
    assert_eq!(text(&cmd(&mut c, &["SENTINEL", "MONITOR", "other", "127.0.0.1", &dead, "2"]).unwrap()), "OK");
    let m: HashMap<String, String> = pairs(&cmd(&mut c, &["SENTINEL", "MASTER", "other"]).unwrap()).iter().map(|(k, v)| (k.clone(), text(v))).collect();
    assert_eq!(m["down-after-milliseconds"], "1234");
}

/// Pids the scripts wrote, killed at the end so no `sleep` outlives the test.
struct KillPids(std::path::PathBuf);
impl Drop for KillPids {
    fn drop(&mut self) {
        for pid in std::fs::read_to_string(&self.0).unwrap_or_default().lines() {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).stderr(Stdio::null()).status();
        }
    }
}

fn pending_scripts(c: &mut redis::Connection) -> Vec<HashMap<String, Value>> {
    match cmd(c, &["SENTINEL", "PENDING-SCRIPTS"]).unwrap() {
        Value::Array(items) => items.iter().map(|i| pairs(i).into_iter().collect()).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn scripts_are_retried_killed_and_listed_as_redis() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let _pids = KillPids(dir.path().join("slow.pids"));
    let flaky = write_script(dir.path(), "flaky.sh", &format!("if [ ! -e {d}/flaky.marker ]; then touch {d}/flaky.marker; exit 1; fi\necho \"$@\" >> {d}/flaky.log"));
    let slow = write_script(dir.path(), "slow.sh", &format!("echo $$ >> {d}/slow.pids\nexec sleep 30"));
    let fatal = write_script(dir.path(), "fatal.sh", "exit 2");
    let _s = start_sentinel_with(SentinelKind::Rf, |p| (dead_master_conf(dir.path(), p, "sentinel deny-scripts-reconfig no\n"), None));
    let port = _s.port;
    let mut c = conn(port).unwrap();
    cmd(&mut c, &["SENTINEL", "DEBUG", "script-retry-delay", "1500", "script-max-runtime", "700"]).unwrap();
    let mut sub = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ps = sub.as_pubsub();
    ps.subscribe(&["-script-error", "-script-timeout"]).unwrap();

    // SENTINEL SET publishes +set (a warning event): the new notification script runs,
    // fails once with exit 1 and is retried after the retry delay
    cmd(&mut c, &["SENTINEL", "SET", "mymaster", "notification-script", &flaky]).unwrap();
    assert!(wait_until(Duration::from_secs(3), || dir.path().join("flaky.marker").exists()), "first run");
    let mut seen_scheduled = None;
    wait_until(Duration::from_secs(1), || {
        let p = pending_scripts(&mut c);
        let found = p.first().filter(|j| text(&j["flags"]) == "scheduled").cloned();
        seen_scheduled = found;
        seen_scheduled.is_some()
    });
    let job = seen_scheduled.expect("the failed run waits for its retry in PENDING-SCRIPTS");
    assert_eq!(text(&job["retry-num"]), "1");
    let delay: u64 = text(&job["run-delay"]).parse().unwrap();
    assert!(delay > 0 && delay <= 1500, "run-delay {delay}");
    let Value::Array(argv) = &job["argv"] else { panic!() };
    assert_eq!(text(&argv[0]), flaky);
    assert_eq!(text(&argv[1]), "+set");
    assert!(!dir.path().join("flaky.log").exists(), "not retried before the delay");
    assert!(wait_until(Duration::from_secs(5), || dir.path().join("flaky.log").exists()), "retried");
    let log = std::fs::read_to_string(dir.path().join("flaky.log")).unwrap();
    assert!(log.starts_with("+set master mymaster 127.0.0.1 "), "{log}");
    assert!(wait_until(Duration::from_secs(2), || pending_scripts(&mut c).is_empty()));

    // exit 2: not retried, reported as -script-error <path> 0 2
    cmd(&mut c, &["SENTINEL", "SET", "mymaster", "notification-script", &fatal]).unwrap();
    let msg = ps.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), "-script-error");
    assert_eq!(msg.get_payload::<String>().unwrap(), format!("{fatal} 0 2"));
    assert!(wait_until(Duration::from_secs(2), || pending_scripts(&mut c).is_empty()), "no retry after exit 2");

    // a script running past script-max-runtime is killed (and, killed by a signal, retried)
    cmd(&mut c, &["SENTINEL", "SET", "mymaster", "notification-script", &slow]).unwrap();
    let running = wait_until(Duration::from_secs(2), || pending_scripts(&mut c).first().is_some_and(|j| text(&j["flags"]) == "running"));
    assert!(running);
    let msg = ps.get_message().unwrap();
    assert_eq!(msg.get_channel_name(), "-script-timeout");
    let payload: String = msg.get_payload().unwrap();
    let pid = std::fs::read_to_string(dir.path().join("slow.pids")).unwrap().lines().next().unwrap().trim().to_string();
    assert_eq!(payload, format!("{slow} {pid}"));
    assert!(wait_until(Duration::from_secs(2), || !Path::new(&format!("/proc/{pid}")).exists()), "the script process is gone");
    let p = pending_scripts(&mut c);
    assert_eq!(text(&p[0]["flags"]), "scheduled", "{p:?}");
    assert_eq!(text(&p[0]["retry-num"]), "1");
    let info = text(&cmd(&mut c, &["INFO", "sentinel"]).unwrap());
    assert!(info.contains("sentinel_scripts_queue_length:1\r\n"), "{info}");

    // the same reply shape as Debian's redis-sentinel running the same slow script
    let _d = start_sentinel_with(SentinelKind::Debian, |p| (dead_master_conf(dir.path(), p, "sentinel deny-scripts-reconfig no\n"), None));
    let theirs = _d.port;
    let mut d = conn(theirs).unwrap();
    cmd(&mut d, &["SENTINEL", "SET", "mymaster", "notification-script", &slow]).unwrap();
    assert!(wait_until(Duration::from_secs(3), || pending_scripts(&mut d).first().is_some_and(|j| text(&j["flags"]) == "running")));
    let shape = |raw: Value| -> Vec<(String, &'static str)> {
        let Value::Array(jobs) = raw else { panic!() };
        pairs(&jobs[0])
            .into_iter()
            .map(|(k, v)| (k, if matches!(v, Value::Array(_)) { "array" } else if matches!(v, Value::BulkString(_)) { "bulk" } else { "other" }))
            .collect()
    };
    let running_ours = wait_until(Duration::from_secs(3), || pending_scripts(&mut c).first().is_some_and(|j| text(&j["flags"]) == "running"));
    assert!(running_ours, "the retry runs again");
    assert_eq!(shape(cmd(&mut c, &["SENTINEL", "PENDING-SCRIPTS"]).unwrap()), shape(cmd(&mut d, &["SENTINEL", "PENDING-SCRIPTS"]).unwrap()));
}

fn client_list(c: &mut redis::Connection, args: &[&str]) -> Vec<HashMap<String, String>> {
    let mut a = vec!["CLIENT", "LIST"];
    a.extend_from_slice(args);
    text(&cmd(c, &a).unwrap())
        .lines()
        .map(|l| l.split(' ').filter_map(|f| f.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .collect()
}

/// Sends raw bytes and reads until `want` bytes came back (or 3 s passed).
fn raw_exchange(port: u16, send: &str, want: usize) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s.write_all(send.as_bytes()).unwrap();
    let mut got = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while got.len() < want && std::time::Instant::now() < end {
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn client_commands_as_redis_sentinel() {
    let dir = tempfile::tempdir().unwrap();
    let _s = start_sentinel_with(SentinelKind::Rf, |p| (dead_master_conf(dir.path(), p, ""), None));
    let _d = start_sentinel_with(SentinelKind::Debian, |p| (dead_master_conf(dir.path(), p, ""), None));
    let (ours, theirs) = (_s.port, _d.port);
    let mut d = conn(theirs).unwrap();
    let mut me = conn(ours).unwrap();
    let mut named = conn(ours).unwrap();
    let mut plain = conn(ours).unwrap();
    let mut subscriber = conn(ours).unwrap();
    assert_eq!(text(&cmd(&mut named, &["CLIENT", "SETNAME", "alpha"]).unwrap()), "OK");
    assert_eq!(text(&cmd(&mut named, &["CLIENT", "GETNAME"]).unwrap()), "alpha");
    cmd(&mut subscriber, &["SUBSCRIBE", "+sdown"]).unwrap();
    let my_id = text(&cmd(&mut me, &["CLIENT", "ID"]).unwrap());
    let list = client_list(&mut me, &[]);
    assert_eq!(list.len(), 4, "{list:?}");
    // same fields in the same order as Debian's
    let field_names = |line: &str| line.split(' ').map(|f| f.split('=').next().unwrap().to_string()).collect::<Vec<_>>();
    let ours_line = text(&cmd(&mut me, &["CLIENT", "INFO"]).unwrap());
    let theirs_line = text(&cmd(&mut d, &["CLIENT", "INFO"]).unwrap());
    assert_eq!(field_names(ours_line.trim_end()), field_names(theirs_line.trim_end()));
    let mine = list.iter().find(|l| l["id"] == my_id).unwrap();
    assert_eq!((mine["cmd"].as_str(), mine["user"].as_str(), mine["flags"].as_str(), mine["laddr"].clone()), ("client|list", "default", "N", format!("127.0.0.1:{ours}")));
    assert!(list.iter().any(|l| l["name"] == "alpha"));
    let subs = client_list(&mut me, &["TYPE", "pubsub"]);
    assert_eq!(subs.len(), 1);
    assert_eq!((subs[0]["flags"].as_str(), subs[0]["sub"].as_str()), ("P", "1"));
    assert_eq!(client_list(&mut me, &["ID", &my_id]).len(), 1);
    // errors as Debian's
    for bad in [
        &["CLIENT", "KILL", "1.2.3.4:5"][..],
        &["CLIENT", "KILL", "ID", "abc"],
        &["CLIENT", "KILL", "TYPE", "foo"],
        &["CLIENT", "KILL", "USER", "nobody"],
        &["CLIENT", "KILL", "SKIPME", "maybe"],
        &["CLIENT", "KILL", "foo", "bar"],
        &["CLIENT", "LIST", "ID", "x"],
        &["CLIENT", "SETNAME", "a b"],
        &["CLIENT", "GETNAME", "x"],
        &["CLIENT", "NOSUCH"],
    ] {
        assert_eq!(cmd(&mut me, bad).unwrap_err().to_string(), cmd(&mut d, bad).unwrap_err().to_string(), "{bad:?}");
    }
    assert_eq!(cmd(&mut me, &["CLIENT", "KILL", "ID", "999999"]).unwrap(), Value::Int(0));
    // CLIENT REPLY OFF / ON / SKIP: the same bytes as Debian's
    let script = "CLIENT REPLY OFF\r\nPING a\r\nCLIENT REPLY ON\r\nPING b\r\nCLIENT REPLY SKIP\r\nPING c\r\nPING d\r\nCLIENT REPLY maybe\r\nPING e\r\n";
    let expected = "+OK\r\n$1\r\nb\r\n$1\r\nd\r\n-ERR syntax error\r\n$1\r\ne\r\n";
    assert_eq!(raw_exchange(theirs, script, expected.len()), expected);
    assert_eq!(raw_exchange(ours, script, expected.len()), expected);
    // kill by name-less filters: the pub/sub client, then the named one by id (new form),
    // then the plain one by address (old form)
    assert_eq!(cmd(&mut me, &["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap(), Value::Int(1));
    let named_id = list.iter().find(|l| l["name"] == "alpha").unwrap()["id"].clone();
    assert_eq!(cmd(&mut me, &["CLIENT", "KILL", "ID", &named_id]).unwrap(), Value::Int(1));
    assert!(cmd(&mut named, &["PING"]).is_err(), "killed connection is closed");
    let plain_addr = client_list(&mut me, &[]).into_iter().find(|l| l["id"] != my_id).unwrap()["addr"].clone();
    assert_eq!(text(&cmd(&mut me, &["CLIENT", "KILL", &plain_addr]).unwrap()), "OK");
    assert!(cmd(&mut plain, &["PING"]).is_err());
    assert!(wait_until(Duration::from_secs(2), || client_list(&mut me, &[]).len() == 1));
    // SKIPME yes (the default) spares the caller; SKIPME no closes it after the reply
    assert_eq!(cmd(&mut me, &["CLIENT", "KILL", "LADDR", &format!("127.0.0.1:{ours}")]).unwrap(), Value::Int(0));
    assert_eq!(cmd(&mut me, &["CLIENT", "KILL", "USER", "default", "SKIPME", "no"]).unwrap(), Value::Int(1));
    assert!(cmd(&mut me, &["PING"]).is_err());
}

#[test]
fn acl_users_authenticate_and_are_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut conf = std::path::PathBuf::new();
    let mut s = start_sentinel_with(SentinelKind::Rf, |p| {
        conf = dead_master_conf(dir.path(), p, "user admin on >adminpass allcommands\n");
        (conf.clone(), None)
    });
    let port = s.port;
    let mut c = conn(port).unwrap();
    assert_eq!(text(&cmd(&mut c, &["ACL", "WHOAMI"]).unwrap()), "default");
    assert_eq!(
        text(&cmd(&mut c, &["ACL", "SETUSER", "ro", "on", ">ro", "-@all", "+ping", "+sentinel|get-master-addr-by-name"]).unwrap()),
        "OK"
    );
    assert_eq!(text(&cmd(&mut c, &["ACL", "SETUSER", "off", "off", ">p", "+@all"]).unwrap()), "OK");
    let e = cmd(&mut c, &["ACL", "SETUSER", "bob", "foo"]).unwrap_err().to_string();
    assert!(e.contains("Error in ACL SETUSER modifier 'foo': Syntax error"), "{e}");
    let users: Vec<String> = match cmd(&mut c, &["ACL", "USERS"]).unwrap() {
        Value::Array(v) => v.iter().map(text).collect(),
        o => panic!("{o:?}"),
    };
    assert_eq!(users, vec!["admin", "default", "off", "ro"]);
    // AUTH user pass, HELLO 3 AUTH, permissions, disabled users
    assert_eq!(text(&cmd(&mut c, &["AUTH", "ro", "ro"]).unwrap()), "OK");
    assert_eq!(cmd(&mut c, &["ACL", "WHOAMI"]).unwrap_err().code(), Some("NOPERM"), "ro may not run ACL");
    assert_eq!(text(&cmd(&mut c, &["PING"]).unwrap()), "PONG");
    assert!(cmd(&mut c, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"]).is_ok());
    let e = cmd(&mut c, &["SENTINEL", "MASTERS"]).unwrap_err();
    assert_eq!(e.code(), Some("NOPERM"));
    assert!(e.to_string().contains("'sentinel|masters'"), "{e}");
    assert_eq!(cmd(&mut c, &["AUTH", "off", "p"]).unwrap_err().code(), Some("WRONGPASS"));
    assert_eq!(cmd(&mut c, &["AUTH", "ro", "bad"]).unwrap_err().code(), Some("WRONGPASS"));
    let hello = pairs(&cmd(&mut c, &["HELLO", "3", "AUTH", "admin", "adminpass"]).unwrap());
    let hello: HashMap<String, String> = hello.iter().map(|(k, v)| (k.clone(), text(v))).collect();
    assert_eq!((hello["proto"].as_str(), hello["mode"].as_str()), ("3", "sentinel"));
    assert!(!hello.contains_key("role"), "Redis Sentinel's HELLO has no role field");
    assert_eq!(text(&cmd(&mut c, &["ACL", "WHOAMI"]).unwrap()), "admin");
    let getuser: HashMap<String, Value> = pairs(&cmd(&mut c, &["ACL", "GETUSER", "ro"]).unwrap()).into_iter().collect();
    assert_eq!(text(&getuser["commands"]), "-@all +ping +sentinel|get-master-addr-by-name");
    assert_eq!(cmd(&mut c, &["ACL", "GETUSER", "nosuch"]).unwrap(), Value::Nil);
    // the rewrite writes every user, the default one too, as Redis Sentinel does
    assert_eq!(cmd(&mut c, &["ACL", "DELUSER", "off", "nosuch"]).unwrap(), Value::Int(1));
    assert!(cmd(&mut c, &["ACL", "DELUSER", "default"]).unwrap_err().to_string().contains("The 'default' user cannot be removed"));
    let ok = wait_until(Duration::from_secs(3), || {
        let f = std::fs::read_to_string(&conf).unwrap();
        f.contains("user ro on #") && f.contains("user default on nopass ~* &* +@all") && !f.contains("user off ")
    });
    assert!(ok, "{}", std::fs::read_to_string(&conf).unwrap());
    // and the users survive a restart (the file is also read by Debian's redis-sentinel below)
    s.kill();
    let _s = start_sentinel_from(SentinelKind::Rf, &conf, port, None);
    let mut c = conn(port).unwrap();
    assert_eq!(text(&cmd(&mut c, &["AUTH", "ro", "ro"]).unwrap()), "OK");
    drop(_s);
    let copy = dir.path().join("debian.conf");
    let ours = std::fs::read_to_string(&conf).unwrap();
    let _d = start_sentinel_with(SentinelKind::Debian, |theirs| {
        std::fs::write(&copy, ours.replace(&format!("port {port}"), &format!("port {theirs}"))).unwrap();
        (copy.clone(), None)
    });
    let theirs = _d.port;
    let mut d = conn(theirs).unwrap();
    assert_eq!(text(&cmd(&mut d, &["AUTH", "admin", "adminpass"]).unwrap()), "OK", "Debian reads our user lines");
}

#[test]
fn acl_replies_match_debian() {
    let dir = tempfile::tempdir().unwrap();
    let _s = start_sentinel_with(SentinelKind::Rf, |p| (dead_master_conf(dir.path(), p, ""), None));
    let _d = start_sentinel_with(SentinelKind::Debian, |p| (dead_master_conf(dir.path(), p, ""), None));
    let (ours, theirs) = (_s.port, _d.port);
    let mut c = conn(ours).unwrap();
    let mut d = conn(theirs).unwrap();
    let steps: &[&[&str]] = &[
        &["ACL", "SETUSER", "alice", "on", ">pw", "+@all"],
        &["ACL", "SETUSER", "erin", "on", ">p", "-@all", "+info", "+ping"],
        &["ACL", "SETUSER", "erin", "-ping"],
        &["ACL", "SETUSER", "alice", ">a", ">b", "<a"],
        &["ACL", "SETUSER", "carl", "on", "nopass", "allcommands", "~*", "&*"],
        &["ACL", "SETUSER", "dave", "off", "#30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4", "nocommands"],
        &["ACL", "SETUSER", "x", "~foo", "&chan"],
        &["ACL", "SETUSER", "y", "on", ">q", "reset"],
        &["ACL", "SETUSER", "bad", "foo"],
        &["ACL", "SETUSER", "bad", "#abc"],
        &["ACL", "SETUSER", "bad", "+nosuchcmd"],
        // commands Redis Sentinel 7.0 does not have
        &["ACL", "SETUSER", "bad", "+set"],
        &["ACL", "SETUSER", "bad", "+reset"],
        &["ACL", "SETUSER", "bad", "+quit"],
        &["ACL", "SETUSER", "alice", "<notapassword"],
        // categories, selectors and key/channel forms of the shared rule parser
        &["ACL", "SETUSER", "cat", "on", "nopass", "-@all", "+@connection", "%R~r*", "&c*"],
        &["ACL", "SETUSER", "cat", "(+sentinel|masters ~x)"],
        &["ACL", "SETUSER", "cat", "+@nosuch"],
        &["ACL", "SETUSER", "cat", "+sentinel|masters|x"],
        &["ACL", "GETUSER", "cat"],
        &["ACL", "SETUSER", "adm", "on", "nopass", "+@all", "-@dangerous"],
        &["ACL", "GETUSER", "adm"],
        &["ACL", "DELUSER", "adm"],
        &["ACL", "LIST"],
        &["ACL", "USERS"],
        &["ACL", "GETUSER", "alice"],
        &["ACL", "GETUSER", "x"],
        &["ACL", "GETUSER", "default"],
        &["ACL", "GETUSER", "nosuch"],
        &["ACL", "DELUSER", "y", "nosuch"],
        &["ACL", "DELUSER", "default"],
        &["ACL", "WHOAMI"],
        &["ACL", "SAVE"],
        &["ACL", "NOSUCH"],
        &["AUTH", "erin", "p"],
        &["PING"],
        &["ACL", "WHOAMI"],
        &["AUTH", "dave", "pw"],
        &["AUTH", "carl", "anything"],
        &["ACL", "WHOAMI"],
        &["RESET"],
        &["ACL", "WHOAMI"],
    ];
    for step in steps {
        let ours = cmd(&mut c, step).map_err(|e| e.to_string());
        let theirs = cmd(&mut d, step).map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{step:?}");
    }
}

#[test]
fn sentinels_authenticate_to_each_other_with_sentinel_user() {
    let dir = tempfile::tempdir().unwrap();
    let _m = start_server(dir.path(), None);
    let mport = _m.port;
    // requirepass locks the default user; peers must log in as `peer`
    let common = "requirepass nobody-knows\nuser peer on >peerpass +@all\nsentinel sentinel-user peer\n";
    let mut procs = Vec::new();
    let mut ports = Vec::new();
    for pass in ["peerpass", "peerpass"] {
        let port = free_port();
        let conf = dir.path().join(format!("s-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\n{common}sentinel sentinel-pass {pass}\nsentinel monitor mymaster 127.0.0.1 {mport} 2\nsentinel down-after-milliseconds mymaster 500\n"
            ),
        )
        .unwrap();
        procs.push(procs::Proc::spawn_for_test(RF_SENTINEL, &conf, port));
        ports.push(port);
    }
    let authed = |port: u16| {
        let c = redis::Client::open(format!("redis://peer:peerpass@127.0.0.1:{port}/")).unwrap();
        c.get_connection_with_timeout(Duration::from_secs(1)).unwrap()
    };
    // both see each other, and after several down-after periods the peer is not s_down:
    // its PINGs (sent as `peer`) are answered
    let ok = wait_until(Duration::from_secs(10), || {
        ports.iter().all(|p| {
            let mut c = authed(*p);
            let s: Vec<HashMap<String, String>> = redis::cmd("SENTINEL").arg("sentinels").arg("mymaster").query(&mut c).unwrap_or_default();
            s.len() == 1
        })
    });
    assert!(ok, "sentinels discovered each other");
    std::thread::sleep(Duration::from_millis(1500));
    for p in &ports {
        let mut c = authed(*p);
        let s: Vec<HashMap<String, String>> = redis::cmd("SENTINEL").arg("sentinels").arg("mymaster").query(&mut c).unwrap();
        assert_eq!(s[0]["flags"], "sentinel", "{s:?}");
    }
    // control: a sentinel with the wrong sentinel-pass sees its peers as down
    let port = free_port();
    let conf = dir.path().join("wrong.conf");
    std::fs::write(
        &conf,
        format!("port {port}\nbind 127.0.0.1\n{common}sentinel sentinel-pass wrong\nsentinel monitor mymaster 127.0.0.1 {mport} 2\nsentinel down-after-milliseconds mymaster 500\n"),
    )
    .unwrap();
    let _wrong = procs::Proc::spawn_for_test(RF_SENTINEL, &conf, port);
    let down = wait_until(Duration::from_secs(10), || {
        let mut c = authed(port);
        let s: Vec<HashMap<String, String>> = redis::cmd("SENTINEL").arg("sentinels").arg("mymaster").query(&mut c).unwrap_or_default();
        s.len() == 2 && s.iter().all(|x| x["flags"].contains("s_down"))
    });
    assert!(down, "wrong sentinel-pass: peers unreachable");
    drop(procs);
}

#[test]
fn loglevel_changes_at_once_and_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let mut conf = std::path::PathBuf::new();
    let _s = start_sentinel_with(SentinelKind::Rf, |p| {
        conf = dead_master_conf(dir.path(), p, "");
        (conf.clone(), None)
    });
    let port = _s.port;
    let log = dir.path().join(format!("sentinel-{port}.log"));
    let accepted = |c: &mut redis::Connection| {
        let id = text(&cmd(c, &["CLIENT", "ID"]).unwrap());
        let addr = client_list(c, &["ID", &id])[0]["addr"].clone();
        let seen = wait_until(Duration::from_millis(300), || std::fs::read_to_string(&log).unwrap_or_default().contains(&format!("Accepted {addr}")));
        seen
    };
    // notice (the default) does not log connections; verbose does, at once
    let mut a = conn(port).unwrap();
    assert!(!accepted(&mut a));
    assert_eq!(text(&cmd(&mut a, &["SENTINEL", "CONFIG", "SET", "loglevel", "verbose"]).unwrap()), "OK");
    let mut b = conn(port).unwrap();
    assert!(accepted(&mut b), "verbose logs new connections");
    assert_eq!(text(&cmd(&mut b, &["SENTINEL", "CONFIG", "SET", "loglevel", "warning"]).unwrap()), "OK");
    let mut c = conn(port).unwrap();
    assert!(!accepted(&mut c), "warning does not");
    let e = cmd(&mut c, &["SENTINEL", "CONFIG", "SET", "loglevel", "loud"]).unwrap_err().to_string();
    assert!(e.contains("Invalid value 'loud'"), "{e}");
    let got: HashMap<String, String> = pairs(&cmd(&mut c, &["SENTINEL", "CONFIG", "GET", "loglevel"]).unwrap()).iter().map(|(k, v)| (k.clone(), text(v))).collect();
    assert_eq!(got["loglevel"], "warning");
    assert!(wait_until(Duration::from_secs(3), || std::fs::read_to_string(&conf).unwrap().contains("\nloglevel warning\n")));
    // warnings are still logged: SENTINEL MONITOR's +monitor
    let dead = free_port().to_string();
    cmd(&mut c, &["SENTINEL", "MONITOR", "m2", "127.0.0.1", &dead, "2"]).unwrap();
    assert!(wait_until(Duration::from_secs(2), || std::fs::read_to_string(&log).unwrap().contains("+monitor master m2")));
}

#[test]
fn include_is_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead = free_port();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(dir.path().join("conf.d/10-master.conf"), format!("sentinel monitor inc 127.0.0.1 {dead} 2\n")).unwrap();
    std::fs::write(dir.path().join("conf.d/20-timing.conf"), "sentinel down-after-milliseconds inc 4321\n").unwrap();
    std::fs::write(dir.path().join("sentinel.conf"), format!("port {port}\nbind 127.0.0.1\ninclude conf.d/*.conf\n")).unwrap();
    let child = Command::new(RF_SENTINEL).arg("sentinel.conf").current_dir(dir.path()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let _guard = procs::Proc::from_child(child, port).expect_started();
    let m: HashMap<String, String> = sentinel_cmd(port, &["master", "inc"]).unwrap();
    assert_eq!(m["down-after-milliseconds"], "4321");
    let main = std::fs::read_to_string(dir.path().join("sentinel.conf")).unwrap();
    assert!(main.contains("include conf.d/*.conf\n"), "{main}");
    assert_eq!(std::fs::read_to_string(dir.path().join("conf.d/20-timing.conf")).unwrap(), "sentinel down-after-milliseconds inc 4321\n", "included files are not rewritten");
}

/// CLIENT PAUSE holds other connections' commands (ALL: every command, UNPAUSE too; WRITE:
/// only PUBLISH, the sentinel's one write), as Redis Sentinel does; UNPAUSE lifts it early.
fn client_pause_behaves(kind: SentinelKind) {
    let dir = tempfile::tempdir().unwrap();
    let _s = start_sentinel_with(kind, |p| (dead_master_conf(dir.path(), p, ""), None));
    let port = _s.port;
    let mut admin = conn(port).unwrap();
    // a raw connection: a client library's hello on connect would itself be paused
    let timed = |args: &[&str]| {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let t = std::time::Instant::now();
        c.write_all(req.as_bytes()).unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0 && buf[0] != b'-', "{args:?}: {}", String::from_utf8_lossy(&buf[..n]));
        t.elapsed()
    };
    cmd(&mut admin, &["CLIENT", "PAUSE", "700"]).unwrap();
    let waited = timed(&["PING"]);
    assert!(waited >= Duration::from_millis(400), "{kind:?}: PING ran during CLIENT PAUSE ALL after {waited:?}");
    cmd(&mut admin, &["CLIENT", "PAUSE", "700", "WRITE"]).unwrap();
    assert!(timed(&["PING"]) < Duration::from_millis(300), "{kind:?}: PING waited during CLIENT PAUSE WRITE");
    let waited = timed(&["PUBLISH", "__sentinel__:hello", "x"]);
    assert!(waited >= Duration::from_millis(300), "{kind:?}: PUBLISH ran during CLIENT PAUSE WRITE after {waited:?}");
    cmd(&mut admin, &["CLIENT", "PAUSE", "5000", "WRITE"]).unwrap();
    cmd(&mut admin, &["CLIENT", "UNPAUSE"]).unwrap();
    assert!(timed(&["PUBLISH", "__sentinel__:hello", "x"]) < Duration::from_millis(300), "{kind:?}: UNPAUSE did not lift the pause");
}

#[test]
fn client_pause_as_redis_sentinel() {
    if Path::new(REDIS_SENTINEL).exists() {
        client_pause_behaves(SentinelKind::Debian);
    }
    client_pause_behaves(SentinelKind::Rf);
}
