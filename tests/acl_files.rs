//! ACL users from the config (`user` lines), from an `aclfile`, ACL SAVE and ACL LOAD:
//! rf-server and Debian's redis-server run side by side with the same files and must
//! agree (ACL LIST, error texts, start-up refusals).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{redis_cli, run_with_timeout, spawn_redis, spawn_rf, spawn_server, ServerGuard};

/// Rules with at most one single-command rule each: Redis lists those in hash order.
const USERS: &[&str] = &[
    "user alice on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 ~k* %R~r* resetchannels &ch* -@all +@read",
    "user bob off nopass ~* &* +@all -@dangerous",
    "user default on nopass ~* &* +@all",
];

/// Both servers started on the config file `conf` (it must come first on the line).
fn both_with_conf(conf: &str) -> (ServerGuard, ServerGuard) {
    (spawn_rf(&[conf, "--save", ""]), spawn_server(Path::new("/usr/bin/redis-server"), &[conf, "--save", ""]))
}

/// A file in a fresh temp dir (the servers get their own dirs).
fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p.display().to_string()
}

#[test]
fn user_lines_in_the_config_file_load_as_redis_loads_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = write_file(tmp.path(), "redis.conf", "user alice on >password ~k* %R~r* &ch* +@read\nuser bob nopass ~* &* +@all -@dangerous\nuser default on nopass ~* &* +@all\n");
    let (ours, redis) = both_with_conf(&conf);
    let list = redis_cli(redis.port, &["ACL", "LIST"]);
    assert!(list.contains("user alice"), "reference lists the users: {list}");
    assert_eq!(redis_cli(ours.port, &["ACL", "LIST"]), list);
    // The users work: alice can read k*, not write.
    for port in [ours.port, redis.port] {
        assert_eq!(redis_cli(port, &["--user", "alice", "--pass", "password", "--no-auth-warning", "GET", "k1"]), "");
        let denied = redis_cli(port, &["--user", "alice", "--pass", "password", "--no-auth-warning", "SET", "k1", "v"]);
        assert!(denied.contains("NOPERM"), "{denied}");
    }
}

#[test]
fn a_bad_user_line_or_user_lines_with_an_aclfile_stop_the_start_as_in_redis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let acl = write_file(tmp.path(), "users.acl", "user default on nopass ~* &* +@all\n");
    let cases = [
        ("bad-rule.conf", "user alice on %X~a\n".to_string()),
        ("twice.conf", "user alice on\nuser alice off\n".to_string()),
        ("both.conf", format!("user alice on\naclfile {acl}\n")),
    ];
    for (name, text) in cases {
        let conf = write_file(tmp.path(), name, &text);
        let port = common::free_port().to_string();
        let run = |bin: &Path| run_with_timeout(Command::new(bin).arg(&conf).arg("--port").arg(&port).arg("--bind").arg("127.0.0.1").arg("--save").arg(""), Duration::from_secs(10));
        let (ours_code, ours_out, ours_err) = run(&common::rf_server_bin());
        let (redis_code, redis_out, redis_err) = run(Path::new("/usr/bin/redis-server"));
        assert!(redis_code.is_some_and(|c| c != 0), "reference refuses {name}");
        assert!(ours_code.is_some_and(|c| c != 0), "we refuse {name}: {ours_out}{ours_err}");
        // The reason Redis gives is in our output too.
        let redis_text = redis_out + &redis_err;
        let ours_text = ours_out + &ours_err;
        let reason = redis_text
            .lines()
            .find_map(|l| {
                ["Error in user declaration", "Configuring Redis with users defined in redis.conf"].iter().find_map(|k| l.find(k).map(|i| l[i..].to_string()))
            })
            .unwrap_or_else(|| panic!("reference reason for {name}: {redis_text}"));
        assert!(ours_text.contains(&reason), "{name}: want {reason:?} in {ours_text}");
    }
}

#[test]
fn aclfile_save_and_load_round_trip_as_in_redis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ours_file = write_file(tmp.path(), "ours.acl", &(USERS.join("\n") + "\n"));
    let redis_file = write_file(tmp.path(), "redis.acl", &(USERS.join("\n") + "\n"));
    let ours = spawn_rf(&["--aclfile", &ours_file]);
    let redis = spawn_redis(&["--aclfile", &redis_file]);
    let list = redis_cli(redis.port, &["ACL", "LIST"]);
    assert_eq!(list.lines().count(), USERS.len(), "{list}");
    assert_eq!(redis_cli(ours.port, &["ACL", "LIST"]), list);

    // SAVE writes the ACL LIST lines.
    for (port, file) in [(ours.port, &ours_file), (redis.port, &redis_file)] {
        assert_eq!(redis_cli(port, &["ACL", "SETUSER", "carol", "on", ">pw", "~c*", "+get"]), "OK");
        assert_eq!(redis_cli(port, &["ACL", "SAVE"]), "OK");
        let saved = std::fs::read_to_string(file).expect("saved file");
        assert_eq!(saved.trim_end(), redis_cli(port, &["ACL", "LIST"]));
    }
    assert_eq!(std::fs::read_to_string(&ours_file).ok(), std::fs::read_to_string(&redis_file).ok());

    // A file with errors changes nothing and says why, as Redis does (file names differ).
    let bad = "user alice on +nosuch\nuser alice off\nfoo bar\nuser x %X~y\n";
    std::fs::write(&ours_file, bad).expect("write");
    std::fs::write(&redis_file, bad).expect("write");
    let ours_err = redis_cli(ours.port, &["ACL", "LOAD"]).replace(&ours_file, "FILE");
    let redis_err = redis_cli(redis.port, &["ACL", "LOAD"]).replace(&redis_file, "FILE");
    assert!(redis_err.contains("WARNING: ACL errors detected"), "{redis_err}");
    assert_eq!(ours_err, redis_err);
    assert!(redis_cli(ours.port, &["ACL", "USERS"]).contains("carol"));

    // A good file replaces every user; clients of a user that is gone are disconnected.
    let mut carol = ours.client();
    redis::cmd("AUTH").arg("carol").arg("pw").query::<()>(&mut carol).expect("auth carol");
    let good = "user dave on nopass ~* +@all\n";
    std::fs::write(&ours_file, good).expect("write");
    std::fs::write(&redis_file, good).expect("write");
    assert_eq!(redis_cli(redis.port, &["ACL", "LOAD"]), "OK");
    assert_eq!(redis_cli(ours.port, &["ACL", "LOAD"]), "OK");
    assert_eq!(redis_cli(ours.port, &["ACL", "LIST"]), redis_cli(redis.port, &["ACL", "LIST"]));
    assert!(redis::cmd("PING").query::<String>(&mut carol).is_err(), "carol's connection is closed");
}

#[test]
fn deleting_a_user_disconnects_its_clients() {
    let ours = spawn_rf(&[]);
    assert_eq!(redis_cli(ours.port, &["ACL", "SETUSER", "eve", "on", ">pw", "+@all", "~*"]), "OK");
    let mut eve = ours.client();
    redis::cmd("AUTH").arg("eve").arg("pw").query::<()>(&mut eve).expect("auth eve");
    let list = redis_cli(ours.port, &["CLIENT", "LIST"]);
    assert!(list.contains("user=eve"), "{list}");
    assert_eq!(redis_cli(ours.port, &["ACL", "DELUSER", "eve"]), "1");
    assert!(redis::cmd("PING").query::<String>(&mut eve).is_err(), "eve's connection is closed");
}

#[test]
fn config_rewrite_writes_the_users_as_redis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = "user alice on >password ~k* +@read\nuser default on nopass ~* &* +@all\n";
    let ours_conf = write_file(tmp.path(), "ours.conf", text);
    let redis_conf = write_file(tmp.path(), "redis.conf", text);
    let ours = spawn_rf(&[&ours_conf, "--save", ""]);
    let redis = spawn_server(Path::new("/usr/bin/redis-server"), &[&redis_conf, "--save", ""]);
    let users_of = |file: &str| -> Vec<String> {
        std::fs::read_to_string(file).expect("config").lines().filter(|l| l.starts_with("user ")).map(str::to_string).collect()
    };
    for port in [ours.port, redis.port] {
        assert_eq!(redis_cli(port, &["ACL", "SETUSER", "bob", "on", "nopass", "+get", "~b*"]), "OK");
        assert_eq!(redis_cli(port, &["ACL", "DELUSER", "alice"]), "1");
        assert_eq!(redis_cli(port, &["CONFIG", "REWRITE"]), "OK");
    }
    let want = users_of(&redis_conf);
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(users_of(&ours_conf), want);
    // The rewritten file starts a server with the same users.
    // (without its `dir` line: that directory goes with the first server)
    let kept: String = std::fs::read_to_string(&ours_conf).expect("config").lines().filter(|l| !l.starts_with("dir ")).map(|l| format!("{l}\n")).collect();
    let again_conf = write_file(tmp.path(), "again.conf", &kept);
    drop(ours);
    let again = spawn_rf(&[&again_conf, "--save", ""]);
    assert_eq!(redis_cli(again.port, &["ACL", "LIST"]), redis_cli(redis.port, &["ACL", "LIST"]));
}

#[test]
fn a_replica_refused_by_its_master_logs_why_as_redis() {
    let master = spawn_rf(&["--save", "", "--requirepass", "right"]);
    let port = master.port.to_string();
    let args = ["--save", "", "--replicaof", "127.0.0.1", port.as_str(), "--masterauth", "wrong"];
    let ours = spawn_rf(&args);
    let redis = spawn_server(Path::new("/usr/bin/redis-server"), &args);
    let reason = |g: &ServerGuard| g.log_text().lines().find_map(|l| l.find("Unable to AUTH to MASTER").map(|i| l[i..].to_string()));
    assert!(common::wait_for(Duration::from_secs(20), || reason(&redis).is_some() && reason(&ours).is_some()), "both replicas log the refusal");
    assert_eq!(reason(&ours), reason(&redis));
    assert!(redis_cli(ours.port, &["INFO", "replication"]).contains("master_link_status:down"));
}

#[test]
fn slowlog_hides_passwords_and_rules_as_redis() {
    let (ours, redis) = (spawn_rf(&["--save", ""]), spawn_redis(&[]));
    let mut shown = Vec::new();
    for g in [&ours, &redis] {
        let mut c = g.client();
        let mut cmd = |args: &[&str]| {
            let mut r = redis::cmd(args[0]);
            for a in &args[1..] {
                r.arg(*a);
            }
            let _ = r.query::<redis::Value>(&mut c);
        };
        cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        cmd(&["SLOWLOG", "RESET"]);
        cmd(&["ACL", "SETUSER", "u", "on", ">secret", "+@all"]);
        cmd(&["AUTH", "u", "secret"]);
        cmd(&["AUTH", "wrong"]);
        cmd(&["HELLO", "2", "AUTH", "u", "secret", "SETNAME", "n"]);
        cmd(&["CONFIG", "SET", "masterauth", "pw", "maxmemory-samples", "5"]);
        cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
        let entries: Vec<(i64, i64, i64, Vec<String>, String, String)> = redis::cmd("SLOWLOG").arg("GET").arg(20).query(&mut c).expect("slowlog");
        shown.push(entries.into_iter().map(|e| e.3).collect::<Vec<_>>());
    }
    assert!(shown[1].iter().any(|a| a.contains(&"(redacted)".to_string())), "{:?}", shown[1]);
    assert_eq!(shown[0], shown[1]);
}
