//! Behaviours Redis 7.0.15's external-server units (unit/type/stream, unit/type/stream-cgroups,
//! ...) rely on, checked on our rf-server and on Debian's redis-server alike.

mod common;

use common::*;
use std::time::Duration;

fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_default().trim().to_string()
}

/// CONFIG SET appendonly yes turns the AOF on before it replies (Redis's updateAppendonly):
/// the suite's `start_server {overrides {appendonly yes}}` then waits for the rewrite and
/// runs DEBUG LOADAOF, which must read back what was written after the switch.
fn appendonly_applies_before_reply(srv: &ServerGuard) {
    let mut c = srv.client();
    let _: () = redis::cmd("SELECT").arg(9).query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query(&mut c).unwrap();
    assert_eq!(info_field(&mut c, "persistence", "aof_enabled"), "1");
    assert!(
        wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"
            && info_field(&mut c, "persistence", "aof_rewrite_scheduled") == "0"),
        "the AOF rewrite did not end"
    );
    for _ in 0..10 {
        let _: String = redis::cmd("XADD").arg("mystream").arg("*").arg("f").arg("v").query(&mut c).unwrap();
    }
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut c).unwrap();
    let len: i64 = redis::cmd("XLEN").arg("mystream").query(&mut c).unwrap();
    assert_eq!(len, 10);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("no").query(&mut c).unwrap();
    assert_eq!(info_field(&mut c, "persistence", "aof_enabled"), "0");
}

#[test]
fn config_set_appendonly_is_applied_before_the_reply() {
    let ours = spawn_rf(&["--save", "", "--enable-debug-command", "yes"]);
    appendonly_applies_before_reply(&ours);
    let reference = spawn_redis(&["--enable-debug-command", "yes"]);
    appendonly_applies_before_reply(&reference);
}

/// `cmdstat_<name>` fields other than timings: (calls, rejected_calls, failed_calls).
fn cmdstat(c: &mut redis::Connection, name: &str) -> (i64, i64, i64) {
    let line = info_field(c, "commandstats", &format!("cmdstat_{name}"));
    let field = |f: &str| line.split(',').find_map(|kv| kv.strip_prefix(&format!("{f}="))).and_then(|v| v.parse().ok()).unwrap_or(-1);
    (field("calls"), field("rejected_calls"), field("failed_calls"))
}

/// Waits until `n` clients are blocked.
fn wait_blocked(c: &mut redis::Connection, n: usize) {
    assert!(wait_for(Duration::from_secs(10), || info_field(c, "clients", "blocked_clients") == n.to_string()), "no blocked client");
}

/// A blocked command counts one call, made when it blocked; being served (with data or an
/// error) adds no call, and an error served counts as its failure (unit/type/stream-cgroups
/// "XGROUP DESTROY should unblock XREADGROUP with -NOGROUP").
fn served_blocked_commands_count_once(srv: &ServerGuard) {
    let mut c = srv.client();
    let mut rd = srv.client();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("mystream").arg("mygroup").arg("$").arg("MKSTREAM").query(&mut c).unwrap();
    let reader = std::thread::spawn(move || {
        redis::cmd("XREADGROUP").arg("GROUP").arg("mygroup").arg("Alice").arg("BLOCK").arg(0).arg("STREAMS").arg("mystream").arg(">").query::<redis::Value>(&mut rd).map_err(|e| e.to_string())
    });
    wait_blocked(&mut c, 1);
    let _: i64 = redis::cmd("XGROUP").arg("DESTROY").arg("mystream").arg("mygroup").query(&mut c).unwrap();
    let err = reader.join().unwrap().unwrap_err();
    assert!(err.contains("NOGROUP"), "{err}");
    assert_eq!(cmdstat(&mut c, "xreadgroup"), (1, 0, 1));
    assert_eq!(info_field(&mut c, "stats", "total_error_replies"), "1");

    let mut rd = srv.client();
    let reader = std::thread::spawn(move || redis::cmd("BLPOP").arg("list").arg(0).query::<Vec<String>>(&mut rd).unwrap());
    wait_blocked(&mut c, 1);
    let _: i64 = redis::cmd("RPUSH").arg("list").arg("a").query(&mut c).unwrap();
    assert_eq!(reader.join().unwrap(), vec!["list".to_string(), "a".to_string()]);
    assert_eq!(cmdstat(&mut c, "blpop"), (1, 0, 0));
}

#[test]
fn served_blocked_commands_count_one_call() {
    let ours = spawn_rf(&["--save", ""]);
    served_blocked_commands_count_once(&ours);
    let reference = spawn_redis(&[]);
    served_blocked_commands_count_once(&reference);
}

/// Active expiry reports its cycle ("expire-cycle") and the deletion of a key
/// ("expire-del") to the latency monitor (unit/latency-monitor "LATENCY of expire events
/// are correctly collected"). A 300000-member set takes well over the 1 ms threshold to free.
fn expire_events_reach_the_latency_monitor(srv: &ServerGuard) {
    let mut c = srv.client();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("latency-monitor-threshold").arg(1).query(&mut c).unwrap();
    for chunk in 0..300 {
        let mut cmd = redis::cmd("SADD");
        cmd.arg("mybigkey");
        for i in 0..1000 {
            cmd.arg(format!("member:{}", chunk * 1000 + i));
        }
        let _: i64 = cmd.query(&mut c).unwrap();
    }
    let _: i64 = redis::cmd("PEXPIRE").arg("mybigkey").arg(50).query(&mut c).unwrap();
    assert!(wait_for(Duration::from_secs(10), || redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap() == 0), "the key was not expired");
    let latest: Vec<Vec<redis::Value>> = redis::cmd("LATENCY").arg("LATEST").query(&mut c).unwrap();
    let events: Vec<String> = latest.iter().filter_map(|e| match e.first() {
        Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }).collect();
    assert!(events.iter().any(|e| e == "expire-cycle"), "{events:?}");
    assert!(events.iter().any(|e| e == "expire-del"), "{events:?}");
}

#[test]
fn expire_events_are_latency_samples() {
    let ours = spawn_rf(&["--save", ""]);
    expire_events_reach_the_latency_monitor(&ours);
    let reference = spawn_redis(&[]);
    expire_events_reach_the_latency_monitor(&reference);
}

/// CONFIG SET of several parameters whose `port` cannot be bound fails with Redis's error
/// and leaves every one of them as it was, the server still on its port (unit/introspection
/// "CONFIG SET rollback on apply error").
fn port_apply_error_rolls_back(srv: &ServerGuard) {
    let mut c = srv.client();
    let names = ["maxmemory", "port", "client-query-buffer-limit"];
    let get = |c: &mut redis::Connection, n: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(n).query(c).unwrap();
        v[1].clone()
    };
    let before: Vec<String> = names.iter().map(|n| get(&mut c, n)).collect();
    let busy = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let used = busy.local_addr().unwrap().port();
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(10000001)
        .arg("port")
        .arg(used)
        .arg("client-query-buffer-limit")
        .arg("10m")
        .query::<()>(&mut c)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port"), "{err}");
    let after: Vec<String> = names.iter().map(|n| get(&mut c, n)).collect();
    assert_eq!(after, before);
    let mut fresh = srv.client();
    assert_eq!(redis::cmd("PING").query::<String>(&mut fresh).unwrap(), "PONG");
}

#[test]
fn config_set_port_apply_error_rolls_back() {
    let ours = spawn_rf(&["--save", "", "--bind", "127.0.0.1"]);
    port_apply_error_rolls_back(&ours);
    let reference = spawn_redis(&["--bind", "127.0.0.1"]);
    port_apply_error_rolls_back(&reference);
}

/// CONFIG SET port moves the server to the new port: it answers there and no longer on the
/// old one.
#[test]
fn config_set_port_moves_the_listener() {
    for srv in [spawn_rf(&["--save", "", "--bind", "127.0.0.1"]), spawn_redis(&["--bind", "127.0.0.1"])] {
        let mut c = srv.client();
        let new_port = free_port();
        let _: () = redis::cmd("CONFIG").arg("SET").arg("port").arg(new_port).query(&mut c).unwrap();
        assert!(wait_ready(new_port, Duration::from_secs(10)), "not listening on the new port");
        assert!(std::net::TcpStream::connect(("127.0.0.1", srv.port)).is_err(), "still listening on the old port");
    }
}

/// UNLINK frees a value in the background when freeing it takes more than 64 allocations
/// (Redis's free effort): `lazyfreed_objects` counts those, CONFIG RESETSTAT zeroes it
/// (unit/lazyfree "lazy free a stream with all types of metadata" / "... deleted cgroup").
fn unlink_counts_lazily_freed_values(srv: &ServerGuard) {
    let mut c = srv.client();
    let lazy_done = |c: &mut redis::Connection| wait_for(Duration::from_secs(10), || info_field(c, "memory", "lazyfree_pending_objects") == "0");
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("stream-node-max-entries").arg(5).query(&mut c).unwrap();
    for j in 0..1000 {
        let _: String = redis::cmd("XADD").arg("stream").arg("*").arg("foo").arg(j).query(&mut c).unwrap();
    }
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg("stream").arg("mygroup").arg(0).query(&mut c).unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP").arg("GROUP").arg("mygroup").arg("Alice").arg("COUNT").arg(2).arg("STREAMS").arg("stream").arg(">").query(&mut c).unwrap();
    assert_eq!(redis::cmd("UNLINK").arg("stream").query::<i64>(&mut c).unwrap(), 1);
    assert!(lazy_done(&mut c), "lazyfree isn't done");
    assert_eq!(info_field(&mut c, "memory", "lazyfreed_objects"), "1");

    // Small values are freed at once.
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _: String = redis::cmd("XADD").arg("s").arg("*").arg("a").arg("b").query(&mut c).unwrap();
    let _: i64 = redis::cmd("SADD").arg("small").arg("a").arg("b").query(&mut c).unwrap();
    assert_eq!(redis::cmd("UNLINK").arg("s").arg("small").arg("missing").query::<i64>(&mut c).unwrap(), 2);
    assert!(lazy_done(&mut c), "lazyfree isn't done");
    assert_eq!(info_field(&mut c, "memory", "lazyfreed_objects"), "0");

    // A large set, by UNLINK and by DEL under lazyfree-lazy-user-del.
    for key in ["big1", "big2"] {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(key);
        for i in 0..1000 {
            cmd.arg(format!("m{i}"));
        }
        let _: i64 = cmd.query(&mut c).unwrap();
    }
    let _: i64 = redis::cmd("UNLINK").arg("big1").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("lazyfree-lazy-user-del").arg("yes").query(&mut c).unwrap();
    let _: i64 = redis::cmd("DEL").arg("big2").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("lazyfree-lazy-user-del").arg("no").query(&mut c).unwrap();
    assert!(lazy_done(&mut c), "lazyfree isn't done");
    assert_eq!(info_field(&mut c, "memory", "lazyfreed_objects"), "2");
}

#[test]
fn unlink_frees_large_values_in_the_background() {
    let ours = spawn_rf(&["--save", ""]);
    unlink_counts_lazily_freed_values(&ours);
    let reference = spawn_redis(&[]);
    unlink_counts_lazily_freed_values(&reference);
}

/// `qbuf + qbuf-free` of the client named `name` in CLIENT LIST: its query buffer's size.
fn query_buffer_size(c: &mut redis::Connection, name: &str) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(c).unwrap();
    let line = list.lines().find(|l| l.contains(&format!(" name={name} "))).unwrap_or_else(|| panic!("no client {name}: {list}"));
    let field = |f: &str| -> usize { line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{f}="))).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {f} in {line}")) };
    field("qbuf") + field("qbuf-free")
}

/// The query buffer is sized as Redis sizes it (unit/querybuf): 16 KB of room after a
/// command, nothing once the client idled more than 2 s, room for another big argument after
/// one, cut back towards the recent peak once smaller commands follow.
fn query_buffer_resizes(srv: &ServerGuard) {
    let mut c = srv.client();
    let mut t = srv.client();
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("qb").query(&mut t).unwrap();
    let size = query_buffer_size(&mut c, "qb");
    assert!((16384..32768).contains(&size), "query buffer after a small command: {size}");
    assert!(wait_for(Duration::from_secs(10), || query_buffer_size(&mut c, "qb") == 0), "the idle client's query buffer was not freed");
    let _: () = redis::cmd("SET").arg("x").arg("A".repeat(400_000)).query(&mut t).unwrap();
    let big = query_buffer_size(&mut c, "qb");
    assert!(big > 32768, "query buffer after a 400 KB argument: {big}");
    let shrunk = wait_for(Duration::from_secs(5), || {
        let _: () = redis::cmd("SET").arg("x").arg("A".repeat(100)).query(&mut t).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        query_buffer_size(&mut c, "qb") < big
    });
    assert!(shrunk, "the query buffer stayed at {big} bytes");
    assert!(query_buffer_size(&mut c, "qb") > 0);
}

#[test]
fn query_buffer_grows_and_shrinks_as_redis() {
    let ours = spawn_rf(&["--save", ""]);
    query_buffer_resizes(&ours);
    let reference = spawn_redis(&[]);
    query_buffer_resizes(&reference);
}
