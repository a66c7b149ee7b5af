//! rf-server as a process: command line, config-file errors, logs, daemonize + pidfile,
//! SIGTERM and SHUTDOWN, DEBUG SEGFAULT.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn version_and_help() {
    let (code, out, _) = run_with_timeout(Command::new(rf_server_bin()).arg("--version"), Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(out.starts_with("Redis server v=7.0.15 ") && out.contains("rf-server=0.1.0"), "{out}");
    let (code, _, err) = run_with_timeout(Command::new(rf_server_bin()).arg("--help"), Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(err.contains("Usage: ./rf-server [/path/to/redis.conf] [options] [-]"), "{err}");
}

fn fatal_for(contents: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, contents).unwrap();
    let (code, _out, err) = run_with_timeout(Command::new(rf_server_bin()).arg(&conf).args(extra), Duration::from_secs(10));
    (code, err)
}

#[test]
fn config_errors_match_redis() {
    let cases: &[(&str, &str)] = &[
        ("# c\nfoo bar\n", "Reading the configuration file, at line 2\n>>> 'foo bar'\nBad directive or wrong number of arguments"),
        ("# c\nport abc\n", "Reading the configuration file, at line 2\n>>> 'port abc'\nargument couldn't be parsed into an integer"),
        ("port 99999\n", "Reading the configuration file, at line 1\n>>> 'port 99999'\nargument must be between 0 and 65535 inclusive"),
        ("\n\ndaemonize maybe\n", "Reading the configuration file, at line 3\n>>> 'daemonize maybe'\nargument must be 'yes' or 'no'"),
        ("maxmemory 10x\n", ">>> 'maxmemory 10x'\nargument must be a memory value"),
        ("save 10\n", ">>> 'save 10'\nInvalid save parameters"),
        ("rename-command GETX foo\n", ">>> 'rename-command GETX foo'\nNo such command in rename-command"),
        ("sentinel monitor a b c d\n", ">>> 'sentinel monitor a b c d'\nsentinel directive while not in sentinel mode"),
        ("requirepass \"abc\n", ">>> 'requirepass \"abc'\nUnbalanced quotes in configuration line"),
        ("slaveof a\n", ">>> 'slaveof a'\nwrong number of arguments"),
    ];
    for (contents, expected) in cases {
        let (code, err) = fatal_for(contents, &[]);
        assert_eq!(code, Some(1), "{contents}");
        assert!(err.starts_with("\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\n"), "{err}");
        assert!(err.contains(expected), "for {contents:?}: {err}");
    }
    // Command-line directives continue the line count, quoted as Redis shows them.
    let (code, err) = fatal_for("port 7000\n", &["--port", "abc"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("at line 3\n>>> 'port \"abc\"'\nargument couldn't be parsed into an integer"), "{err}");
}

#[test]
fn seed_config_with_units_include_and_quotes_starts() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("inc.conf");
    std::fs::write(&inc, "maxmemory 100MB\n").unwrap();
    let port = free_port();
    let conf = dir.path().join("6379.conf");
    std::fs::write(
        &conf,
        format!(
            "bind 127.0.0.1\nport {port}\ndaemonize no\npidfile \"{}/redis.pid\"\nlogfile \"{}/redis.log\"\ndir \"{}\"\ninclude {}\nprotected-mode yes\nclient-output-buffer-limit pubsub 32mb 8mb 60\n",
            dir.path().display(),
            dir.path().display(),
            dir.path().display(),
            inc.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(rf_server_bin()).arg(&conf).spawn().unwrap();
    assert!(wait_ready(port, Duration::from_secs(20)));
    assert_eq!(redis_cli(port, &["CONFIG", "GET", "maxmemory"]), format!("maxmemory\n{}", 100 * 1024 * 1024));
    let pid = std::fs::read_to_string(dir.path().join("redis.pid")).unwrap();
    assert_eq!(pid.trim(), child.id().to_string());
    let log = std::fs::read_to_string(dir.path().join("redis.log")).unwrap();
    assert!(log.contains(&format!("Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid={}, just started", child.id())), "{log}");
    assert!(log.contains(&format!("Running mode=standalone, port={port}.")), "{log}");
    assert!(log.contains(" # Server initialized") && log.contains(" * Ready to accept connections tcp"), "{log}");
    // SIGTERM: clean exit, pidfile removed.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut exited = None;
    for _ in 0..200 {
        if let Ok(Some(s)) = child.try_wait() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no exit after SIGTERM")
    });
    assert!(status.success());
    assert!(!dir.path().join("redis.pid").exists());
    let log = std::fs::read_to_string(dir.path().join("redis.log")).unwrap();
    assert!(log.contains("Received SIGTERM scheduling shutdown...") && log.contains("Redis is now ready to exit, bye bye..."), "{log}");
}

#[test]
fn daemonize_writes_pidfile_and_shutdown_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let pidfile = dir.path().join("d.pid");
    let logfile = dir.path().join("d.log");
    let (code, _, err) = run_with_timeout(
        Command::new(rf_server_bin()).args(["--port", &port.to_string(), "--daemonize", "yes", "--pidfile", pidfile.to_str().unwrap(), "--logfile", logfile.to_str().unwrap()]),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{err}");
    let pid = std::fs::read_to_string(&pidfile).expect("pidfile written before the parent exits");
    let pid = pid.trim().to_string();
    // Guard: make sure the daemon dies even if an assertion fails.
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg("-9").arg(&self.0).status();
        }
    }
    let _guard = Kill(pid.clone());
    assert!(wait_ready(port, Duration::from_secs(20)));
    assert_eq!(redis_cli(port, &["INFO", "server"]).lines().find(|l| l.starts_with("process_id:")).unwrap(), format!("process_id:{pid}"));
    redis_cli(port, &["SHUTDOWN", "NOSAVE"]);
    let mut gone = false;
    for _ in 0..200 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() && !pidfile.exists() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(gone, "daemon must exit and remove its pidfile");
}

#[test]
fn debug_segfault_really_crashes() {
    let mut srv = spawn_rf(&[]);
    let _ = raw_exchange(srv.port, b"DEBUG SEGFAULT\r\n", Duration::from_millis(500));
    let code = srv.wait_exit(Duration::from_secs(10));
    assert!(code.is_some(), "process must be gone");
    assert_ne!(code, Some(0));
}

#[test]
fn config_template_is_copied_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.conf");
    let port = free_port();
    std::fs::write(&template, format!("port {port}\nmaxmemory 1mb\n")).unwrap();
    let conf = dir.path().join("live.conf");
    let mut child = Command::new(rf_server_bin()).arg("--config-template").arg(&template).arg(&conf).spawn().unwrap();
    let ready = wait_ready(port, Duration::from_secs(20));
    let copied = std::fs::read_to_string(&conf).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready);
    assert!(copied.contains("maxmemory 1mb"));
}

#[test]
fn sentinel_flag_runs_the_sentinel() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(&conf, format!("port {port}\nsentinel monitor redis-cluster 127.0.0.1 {} 2\nsentinel down-after-milliseconds redis-cluster 5000\n", free_port())).unwrap();
    let mut child = Command::new(rf_server_bin()).arg(&conf).arg("--sentinel").current_dir(dir.path()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let ready = wait_ready(port, Duration::from_secs(20));
    let masters = redis_cli(port, &["SENTINEL", "masters"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "sentinel did not answer PING");
    assert!(masters.contains("redis-cluster"), "{masters}");
}

#[test]
fn readiness_counts_only_the_process_we_started() {
    // what a harness sees when a probed free port was taken by another process before
    // ours bound it: a server answering there that is not our child
    let other = spawn_rf(&[]);
    let theirs = other.pid();
    assert!(wait_own_process(other.port, || Some(theirs), || false, Duration::from_secs(5)), "its own pid is recognised");
    assert!(!wait_own_process(other.port, || Some(theirs + 1), || false, Duration::from_secs(5)), "another pid answering is refused");
    assert!(!wait_own_process(other.port, || Some(theirs), || true, Duration::from_secs(5)), "an exited child is refused");
    // a server with a password does not answer INFO: the listening socket decides
    let locked = spawn_rf(&["--requirepass", "s3cret"]);
    assert_eq!(port_answer(locked.port), PortAnswer::AuthRequired);
    assert!(listens_on(locked.pid(), locked.port));
    assert!(!listens_on(other.pid(), locked.port));
    assert!(wait_own_process(locked.port, || Some(locked.pid()), || false, Duration::from_secs(5)));
    assert!(!wait_own_process(locked.port, || Some(theirs), || false, Duration::from_secs(5)));
}
