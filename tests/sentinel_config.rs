//! The rf-sentinel program: config errors as Redis prints them, the command line,
//! `--config-template`, and a rewritten config that Debian's redis-sentinel reads.

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::process::Command;
use std::path::PathBuf;
use std::time::Duration;

use procs::*;

/// Runs a program expected to exit at once; one that keeps running (a config that was
/// accepted) is killed after 10 s and reported with code -1.
fn run(bin: &str, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(10), || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout))
}

#[test]
fn config_errors_match_redis_sentinel_output() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "port 27390\nsentinel monitor\n",
        "port 27390\nfoo bar\n",
        "port 27390\nsentinel down-after-milliseconds x 100\n",
        "port 27390\nsentinel monitor m 127.0.0.1 6379 2\nsentinel down-after-milliseconds m abc\n",
        "port \"27390\n",
        "sentinel monitor m 127.0.0.1 6379 0\n",
        "daemonize maybe\n",
        "port 27390\nuser bob on foo\n",
        "port 27390\nuser\n",
        "port 27390\nuser carl on >c1\nuser carl >c2\n",
        "port 27390\ninclude\n",
        "port 27390\nsentinel monitor m 127.0.0.1 6379 2\nsentinel monitor m 127.0.0.1 6380 2\n",
        // an included file with a bad line: its own line number, as Redis prints it
        "port 27390\ninclude INCLUDED\n",
        "port 27390\ninclude MISSING\n",
    ];
    let included = dir.path().join("included.conf");
    std::fs::write(&included, "# comment\nsentinel foo\n").unwrap();
    let missing = dir.path().join("missing.conf");
    for (i, text) in cases.iter().enumerate() {
        let text = text.replace("INCLUDED", included.to_str().unwrap()).replace("MISSING", missing.to_str().unwrap());
        let text = text.as_str();
        let ours = dir.path().join(format!("ours-{i}.conf"));
        let theirs = dir.path().join(format!("theirs-{i}.conf"));
        std::fs::write(&ours, text).unwrap();
        std::fs::write(&theirs, text).unwrap();
        let (rc_ours, out_ours) = run(RF_SENTINEL, &[ours.to_str().unwrap()]);
        let (rc_theirs, out_theirs) = run(REDIS_SENTINEL, &[theirs.to_str().unwrap()]);
        assert_eq!(rc_ours, 1, "case {i}: {out_ours}");
        assert_eq!(rc_theirs, 1, "case {i}");
        if text.contains("missing.conf") {
            // Redis logs this one with its log prefix (pid, time): compare the message
            assert!(out_ours.starts_with("Fatal error, can't open config file"), "{out_ours}");
            assert!(out_theirs.contains(out_ours.trim()), "case {i}: {out_ours} vs {out_theirs}");
        } else {
            assert_eq!(out_ours.trim(), out_theirs.trim(), "case {i}");
        }
    }
    // no config file at all
    let (rc, out) = run(RF_SENTINEL, &["--port", "1234"]);
    assert_eq!(rc, 1);
    assert!(out.contains("Sentinel needs config file on disk to save state"), "{out}");
    let (rc, out) = run(RF_SENTINEL, &["--version"]);
    assert_eq!(rc, 0);
    assert!(out.contains("v=7.0.15"), "{out}");
}

#[test]
fn rewritten_config_is_read_by_redis_sentinel_and_template_and_options_work() {
    let dir = tempfile::tempdir().unwrap();
    let (ports, _servers) = start_servers(dir.path(), 1);
    let (mport, rport) = (ports[0], ports[1]);
    // the template is read-only (a ConfigMap in Kubernetes); the config path is writable
    let template = dir.path().join("template.conf");
    std::fs::write(
        &template,
        format!("# from the template\nbind 127.0.0.1\nport 1\nsentinel monitor mymaster 127.0.0.1 {mport} 1\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\nlogfile \"\"\n"),
    )
    .unwrap();
    let conf = dir.path().join("sentinel.conf");
    let sport = free_port();
    let mut child = Command::new(RF_SENTINEL)
        .arg(&conf)
        .arg("--config-template")
        .arg(&template)
        .arg("--port")
        .arg(sport.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(wait_own_process(sport, || Some(pid), || matches!(child.try_wait(), Ok(Some(_))), Duration::from_secs(10)), "rf-sentinel did not start on {sport}");
    assert!(wait_until(Duration::from_secs(10), || std::fs::read_to_string(&conf).unwrap_or_default().contains("known-replica")));
    let myid: String = sentinel_cmd(sport, &["myid"]).unwrap();
    assert_eq!(myid.len(), 40);
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.starts_with("# from the template\n"), "{text}");
    assert!(text.contains(&format!("port {sport}\n")), "{text}");
    assert!(text.contains(&format!("sentinel myid {myid}\n")), "{text}");
    assert!(text.contains(&format!("sentinel known-replica mymaster 127.0.0.1 {rport}")), "{text}");
    // SHUTDOWN writes the config and exits
    let mut c = conn(sport).unwrap();
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    assert!(wait_until(Duration::from_secs(5), || child.try_wait().unwrap().is_some()), "SHUTDOWN did not stop rf-sentinel");
    // the template itself is untouched
    assert!(!std::fs::read_to_string(&template).unwrap().contains("myid"));

    // Debian's redis-sentinel starts on our file, with our myid and our known replica
    let mut theirs = Command::new(REDIS_SENTINEL).arg(&conf).stdout(std::process::Stdio::null()).spawn().unwrap();
    let pid = theirs.id();
    assert!(wait_own_process(sport, || Some(pid), || matches!(theirs.try_wait(), Ok(Some(_))), Duration::from_secs(10)), "redis-sentinel did not start on {sport}");
    let their_id: String = sentinel_cmd(sport, &["myid"]).unwrap();
    assert_eq!(their_id, myid);
    let replicas: Vec<HashMap<String, String>> = sentinel_cmd(sport, &["replicas", "mymaster"]).unwrap();
    assert!(replicas.iter().any(|r| r["port"] == rport.to_string()), "{replicas:?}");
    let master: HashMap<String, String> = sentinel_cmd(sport, &["master", "mymaster"]).unwrap();
    assert_eq!(master["down-after-milliseconds"], "1000");
    let _ = theirs.kill();
    let _ = theirs.wait();
    let _ = child.kill();
}

#[test]
fn replies_are_shaped_like_redis_sentinel() {
    // the same group watched by one rf-sentinel and one redis-sentinel: same field names in
    // the same order, same INFO sentinel lines, same errors
    let dir = tempfile::tempdir().unwrap();
    let (ports, _servers) = start_servers(dir.path(), 1);
    let mport = ports[0];
    let o = SentinelOpts { quorum: 2, down_after: 1000, failover_timeout: 10000, daemonize: false };
    let (sports, _sentinels) = start_sentinels(&[SentinelKind::Rf, SentinelKind::Debian], dir.path(), mport, &o);
    let (ours, theirs) = (sports[0], sports[1]);
    assert!(wait_until(Duration::from_secs(15), || [ours, theirs].iter().all(|p| masters(*p).first().is_some_and(|m| m["num-slaves"] == "1" && m["num-other-sentinels"] == "1"))));
    let keys = |port: u16, args: &[&str]| -> Vec<String> {
        let v: Vec<Vec<String>> = sentinel_cmd(port, args).unwrap();
        v[0].iter().step_by(2).cloned().collect()
    };
    assert_eq!(keys(ours, &["masters"]), keys(theirs, &["masters"]));
    assert_eq!(keys(ours, &["replicas", "mymaster"]), keys(theirs, &["replicas", "mymaster"]));
    assert_eq!(keys(ours, &["sentinels", "mymaster"]), keys(theirs, &["sentinels", "mymaster"]));
    let info = |port: u16| -> Vec<String> {
        let mut c = conn(port).unwrap();
        let s: String = redis::cmd("INFO").arg("sentinel").query(&mut c).unwrap();
        s.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    assert_eq!(info(ours), info(theirs));
    let addr = |port: u16| -> Vec<String> { sentinel_cmd(port, &["get-master-addr-by-name", "mymaster"]).unwrap() };
    assert_eq!(addr(ours), addr(theirs));
    let err = |port: u16, args: &[&str]| -> String {
        match sentinel_cmd::<redis::Value>(port, args) {
            Err(e) => format!("{:?} {}", e.code(), e.detail().unwrap_or("")),
            Ok(v) => format!("{v:?}"),
        }
    };
    for args in [&["master", "nope"][..], &["replicas", "nope"], &["get-master-addr-by-name", "nope"], &["failover", "nope"], &["bogus"]] {
        assert_eq!(err(ours, args), err(theirs, args), "{args:?}");
    }
    let role = |port: u16| -> redis::Value {
        let mut c = conn(port).unwrap();
        redis::cmd("ROLE").query(&mut c).unwrap()
    };
    assert_eq!(role(ours), role(theirs));
}

/// Sends raw requests and returns the raw bytes answered within a short time.
fn raw(port: u16, req: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn resp2_and_resp3_bytes_match_redis_sentinel() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_server(dir.path(), None);
    let mport = m.port;
    let o = SentinelOpts { quorum: 2, down_after: 5000, failover_timeout: 10000, daemonize: false };
    let (sports, _sentinels) = start_sentinels(&[SentinelKind::Rf, SentinelKind::Debian], dir.path(), mport, &o);
    let (ours, theirs) = (sports[0], sports[1]);
    let script: &[&[u8]] = &[
        b"PING\r\n",
        b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nGET-MASTER-ADDR-BY-NAME\r\n$8\r\nmymaster\r\n",
        b"SENTINEL get-master-addr-by-name nope\r\n",
        b"SENTINEL master nope\r\n",
        b"SENTINEL is-master-down-by-addr 127.0.0.2 1 0 *\r\n",
        b"ROLE\r\n",
        b"SENTINEL ckquorum mymaster\r\n",
        b"AUTH x\r\n",
        b"SENTINEL CONFIG GET announce-port\r\n",
        b"PUBLISH foo bar\r\n",
        b"SUBSCRIBE a b\r\n",
        b"PING\r\n",
        b"UNSUBSCRIBE b a\r\n",
    ];
    for proto in ["2", "3"] {
        let mut req = format!("HELLO {proto}\r\n").into_bytes();
        for r in script {
            req.extend_from_slice(r);
        }
        let a = raw(ours, &req);
        let b = raw(theirs, &req);
        // skip the HELLO reply itself (ids and versions differ), compare all the rest
        let strip = |v: &[u8]| -> String {
            let t = String::from_utf8_lossy(v).into_owned();
            let cut = t.find("modules").map(|i| i + "modules".len() + 2).unwrap_or(0);
            t[cut..].to_string()
        };
        assert_eq!(strip(&a), strip(&b), "RESP{proto} replies differ");
        assert!(strip(&a).len() > 50, "RESP{proto}: {}", strip(&a));
    }
}

#[test]
fn hostnames_are_kept_with_resolve_hostnames() {
    let dir = tempfile::tempdir().unwrap();
    let m = start_server(dir.path(), None);
    let mport = m.port;
    for (resolve, want) in [("yes", "localhost"), ("no", "127.0.0.1")] {
        let mut conf = PathBuf::new();
        let s = start_sentinel_with(SentinelKind::Rf, |sport| {
            conf = dir.path().join(format!("h-{sport}.conf"));
            let text = format!("port {sport}\nbind 127.0.0.1\nsentinel resolve-hostnames {resolve}\nsentinel announce-hostnames {resolve}\nsentinel monitor mymaster localhost {mport} 1\n");
            std::fs::write(&conf, text).unwrap();
            (conf.clone(), None)
        });
        let sport = s.port;
        let addr: Vec<String> = sentinel_cmd(sport, &["get-master-addr-by-name", "mymaster"]).unwrap();
        assert_eq!(addr, vec![want.to_string(), mport.to_string()]);
        // and it really monitors it through that name
        assert!(wait_until(Duration::from_secs(10), || masters(sport).first().is_some_and(|m| m["role-reported"] == "master" && !m["runid"].is_empty())));
        // the start-up rewrite runs on its own thread: wait for it (bounded)
        let line = format!("sentinel monitor mymaster {want} {mport} 1");
        assert!(
            wait_until(Duration::from_secs(10), || std::fs::read_to_string(&conf).unwrap().contains(&line)),
            "{}",
            std::fs::read_to_string(&conf).unwrap()
        );
    }
}
