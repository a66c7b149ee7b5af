//! Redis-style log lines carry the role of the process: `M` master, `S` replica (`C` before
//! the configuration is loaded). Tools that parse server logs rely on it.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, spawn_redis, spawn_rf, ServerGuard};

/// The role chars of the log lines written after the configuration was loaded.
fn roles_after_start(log: &str) -> Vec<char> {
    log.lines()
        .skip_while(|l| !l.contains("Configuration loaded") && !l.contains("no config file specified"))
        .skip(1)
        .filter_map(|l| l.split_once(':').and_then(|(_, rest)| rest.chars().next()))
        .filter(|c| "MSCX".contains(*c))
        .collect()
}

fn wait_for_line(srv: &ServerGuard, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = srv.log_text();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_replica_then_master(srv: ServerGuard) {
    let log = wait_for_line(&srv, "Connecting to MASTER");
    let roles = roles_after_start(&log);
    assert!(!roles.is_empty(), "no log lines after start-up:\n{log}");
    assert!(roles.iter().all(|&r| r == 'S'), "a replica must log with role S:\n{log}");
    let mut c = srv.client();
    let _: () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut c).unwrap();
    let log = wait_for_line(&srv, "MASTER MODE enabled");
    let last = log.lines().rfind(|l| l.contains("MASTER MODE enabled")).unwrap_or_default();
    assert!(last.split_once(':').is_some_and(|(_, r)| r.starts_with('M')), "after REPLICAOF NO ONE the role is M: {last}");
}

#[test]
fn replica_logs_with_role_s_and_master_with_m() {
    // Nothing listens on the master port: the replica keeps trying, which is enough here.
    let dead_master = free_port().to_string();
    check_replica_then_master(spawn_rf(&["--replicaof", "127.0.0.1", &dead_master]));
    let master = spawn_rf(&[]);
    let log = wait_for_line(&master, "Ready to accept connections");
    let roles = roles_after_start(&log);
    assert!(!roles.is_empty() && roles.iter().all(|&r| r == 'M'), "a master logs with role M:\n{log}");
}

#[test]
fn reference_redis_shows_the_same_roles() {
    if !std::path::Path::new("/usr/bin/redis-server").exists() {
        eprintln!("SKIPPED: /usr/bin/redis-server is not installed");
        return;
    }
    let dead_master = free_port().to_string();
    check_replica_then_master(spawn_redis(&["--replicaof", "127.0.0.1", &dead_master]));
}

/// `always-show-logo yes` prints the start-up banner whose `PID:` line Redis's own test
/// harness waits for; without it, Redis's one "Running mode" line.
#[test]
fn always_show_logo_prints_the_pid_banner() {
    let srv = spawn_rf(&["--always-show-logo", "yes"]);
    let log = wait_for_line(&srv, "Ready to accept connections");
    let pid: u32 = redis::cmd("INFO").arg("server").query::<String>(&mut srv.client()).unwrap()
        .lines().find_map(|l| l.strip_prefix("process_id:")).unwrap().trim().parse().unwrap();
    assert!(log.contains(&format!("\n  PID: {pid}\n")), "no PID line in the banner:\n{log}");
    assert!(log.contains(&format!("\n  Port: {}\n", srv.port)) && log.contains("Running in standalone mode"), "{log}");
    assert!(!log.contains("Running mode=standalone"), "{log}");
    let plain = spawn_rf(&[]);
    let log = wait_for_line(&plain, "Ready to accept connections");
    assert!(log.contains(&format!("Running mode=standalone, port={}.", plain.port)) && !log.contains("PID: "), "{log}");
}
