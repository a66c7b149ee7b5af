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
