//! Streams with real processes: blocking XREAD timeouts, replication of stream effects in
//! both directions with Debian's redis-server 7.0 (the replica ends equal: DEBUG DIGEST and
//! XINFO STREAM FULL), RDB files and DUMP payloads exchanged with it both ways, and AOF
//! (plain and rewritten) restoring the same streams.

mod persist_support;

use std::time::{Duration, Instant};

use persist_support::*;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");

/// A server with DEBUG allowed from loopback (for DEBUG DIGEST) and small stream nodes
/// (many nodes for `~` trims to remove; the node size is local configuration, so every
/// server of a test gets the same).
fn start(bin: &str, dir: &std::path::Path, extra: &[&str]) -> ServerGuard {
    let mut args = vec!["--enable-debug-command", "local", "--stream-node-max-entries", "7"];
    args.extend_from_slice(extra);
    start_server(bin, dir, &args)
}

fn q(c: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<redis::Value>(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A stream workload touching every effect Redis propagates specially: generated IDs,
/// `~` trims, groups read with and without NOACK, claims, auto-claims, acks, deletions,
/// consumers created and deleted, SETID, empty streams with groups.
fn stream_workload(c: &mut redis::Connection) {
    for i in 0..300 {
        q(c, &["XADD", "s1", "*", "n", &i.to_string(), "pad", &"x".repeat(i % 40)]);
    }
    q(c, &["XADD", "s1", "MAXLEN", "~", "150", "*", "late", "1"]);
    q(c, &["XTRIM", "s1", "MAXLEN", "~", "120"]);
    q(c, &["XADD", "s1", "9999999999999-*", "explicit", "ms"]);
    q(c, &["XGROUP", "CREATE", "s1", "g1", "0"]);
    q(c, &["XGROUP", "CREATE", "s1", "g2", "$"]);
    q(c, &["XREADGROUP", "GROUP", "g1", "alice", "COUNT", "20", "STREAMS", "s1", ">"]);
    q(c, &["XREADGROUP", "GROUP", "g1", "bob", "COUNT", "5", "NOACK", "STREAMS", "s1", ">"]);
    q(c, &["XREADGROUP", "GROUP", "g1", "carol", "COUNT", "7", "STREAMS", "s1", ">"]);
    q(c, &["XADD", "s1", "*", "after", "groups"]);
    q(c, &["XREADGROUP", "GROUP", "g2", "dave", "STREAMS", "s1", ">"]);
    // Claim a few of alice's entries for bob, auto-claim some for erin.
    let pending: redis::Value = q(c, &["XPENDING", "s1", "g1", "-", "+", "4", "alice"]);
    if let redis::Value::Array(items) = pending {
        for item in items {
            if let redis::Value::Array(fields) = item {
                if let Some(redis::Value::BulkString(id)) = fields.first() {
                    let id = String::from_utf8_lossy(id).into_owned();
                    q(c, &["XCLAIM", "s1", "g1", "bob", "0", &id, "RETRYCOUNT", "3"]);
                }
            }
        }
    }
    q(c, &["XAUTOCLAIM", "s1", "g1", "erin", "0", "0", "COUNT", "3"]);
    q(c, &["XGROUP", "CREATECONSUMER", "s1", "g1", "idle-one"]);
    q(c, &["XGROUP", "CREATECONSUMER", "s1", "g1", "gone"]);
    q(c, &["XGROUP", "DELCONSUMER", "s1", "g1", "gone"]);
    // Ack some, delete some pending and some not.
    let first: redis::Value = q(c, &["XRANGE", "s1", "-", "+", "COUNT", "30"]);
    let mut ids = Vec::new();
    if let redis::Value::Array(items) = first {
        for item in items {
            if let redis::Value::Array(parts) = item {
                if let Some(redis::Value::BulkString(id)) = parts.first() {
                    ids.push(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    assert!(ids.len() >= 30, "the workload stream has entries");
    q(c, &["XACK", "s1", "g1", &ids[0], &ids[1], &ids[2]]);
    q(c, &["XDEL", "s1", &ids[5], &ids[25], &ids[29]]);
    // Pending entries of deleted entries are dropped by claims (propagated as XCLAIMs).
    q(c, &["XAUTOCLAIM", "s1", "g1", "frank", "0", "0", "COUNT", "100", "JUSTID"]);
    q(c, &["XCLAIM", "s1", "g1", "frank", "0", &ids[6], "FORCE", "LASTID", "9999999999999-5"]);
    q(c, &["XGROUP", "SETID", "s1", "g2", "0", "ENTRIESREAD", "0"]);
    q(c, &["XTRIM", "s1", "MINID", "~", &ids[20]]);
    // A second stream: exact trims, XSETID.
    for i in 0..60 {
        q(c, &["XADD", "s2", "MAXLEN", "~", "40", &format!("{}-1", i + 1), "f", &i.to_string()]);
    }
    q(c, &["XTRIM", "s2", "MINID", "=", "30"]);
    q(c, &["XSETID", "s2", "5000-0", "ENTRIESADDED", "1000", "MAXDELETEDID", "4000-0"]);
    // An empty stream with a group.
    q(c, &["XGROUP", "CREATE", "empty", "g", "$", "MKSTREAM", "ENTRIESREAD", "0"]);
    q(c, &["XADD", "gone", "1-1", "a", "b"]);
    q(c, &["XDEL", "gone", "1-1"]);
}

/// The parts of XINFO STREAM FULL that must agree between two servers holding the same
/// stream (consumers' seen-time is local: a replica stamps it when it applies the claim).
fn stream_state(c: &mut redis::Connection, key: &str) -> String {
    stream_state_masking(c, key, &["seen-time"])
}

fn stream_state_masking(c: &mut redis::Connection, key: &str, masked: &[&str]) -> String {
    let v = q(c, &["XINFO", "STREAM", key, "FULL", "COUNT", "0"]);
    let mut out = String::new();
    render(&v, &mut out, false, masked);
    out
}

fn render(v: &redis::Value, out: &mut String, mask_next: bool, masked: &[&str]) {
    use redis::Value::*;
    if mask_next {
        out.push_str("<masked> ");
        return;
    }
    match v {
        Array(items) => {
            out.push('[');
            let mut mask = false;
            for it in items {
                render(it, out, mask, masked);
                mask = matches!(it, BulkString(b) if masked.iter().any(|m| m.as_bytes() == &b[..]));
            }
            out.push(']');
        }
        Map(pairs) => {
            out.push('{');
            for (k, val) in pairs {
                render(k, out, false, masked);
                render(val, out, matches!(k, BulkString(b) if masked.iter().any(|m| m.as_bytes() == &b[..])), masked);
            }
            out.push('}');
        }
        BulkString(b) => {
            out.push_str(&String::from_utf8_lossy(b));
            out.push(' ');
        }
        other => {
            out.push_str(&format!("{other:?} "));
        }
    }
}

fn digest(c: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query::<String>(c).unwrap()
}

fn snapshot(c: &mut redis::Connection) -> (String, Vec<String>) {
    let states = ["s1", "s2", "empty"].iter().map(|k| stream_state(c, k)).collect();
    (digest(c), states)
}

/// What a replica (or an AOF replay) of a stream reproduces. Redis 7.0 propagates group
/// reads as XCLAIMs, which do not carry the group's read counter: a Redis replica of a
/// Redis master ends with other `entries-read` / `lag` values than its master (checked
/// with two Debian servers: 125 / 178 against 132 / 171 for this workload), so these two
/// fields are left out where the state went through propagation.
fn propagated_snapshot(c: &mut redis::Connection) -> (String, Vec<String>) {
    let states = ["s1", "s2", "empty"].iter().map(|k| stream_state_masking(c, k, &["seen-time", "entries-read", "lag"])).collect();
    (digest(c), states)
}

/// Equal snapshots, or a panic showing where they first differ.
fn assert_same(got: &(String, Vec<String>), want: &(String, Vec<String>), what: &str) {
    for (g, w) in got.1.iter().zip(&want.1) {
        if g != w {
            let at = g.bytes().zip(w.bytes()).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
            let from = at.saturating_sub(300);
            panic!("{what}: streams differ at byte {at}\n got: ...{}\nwant: ...{}", &g[from..(at + 300).min(g.len())], &w[from..(at + 300).min(w.len())]);
        }
    }
    assert_eq!(got, want, "{what}");
}

fn offset(c: &mut redis::Connection, field: &str) -> i64 {
    info_field(c, "replication", field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

fn caught_up(master: &mut redis::Connection, replica: &mut redis::Connection) -> bool {
    wait_until(20, || {
        info_field(replica, "replication", "master_link_status").as_deref() == Some("up")
            && offset(master, "master_repl_offset") == offset(replica, "slave_repl_offset")
    })
}

fn replicate(master_bin: &str, replica_bin: &str) {
    let (dm, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = start(master_bin, dm.path(), &["--repl-diskless-sync-delay", "0"]);
    let mut cm = master.conn();
    // Some streams before the full sync (they travel in the RDB), the rest streamed.
    q(&mut cm, &["XADD", "pre", "1-1", "a", "1"]);
    q(&mut cm, &["XGROUP", "CREATE", "pre", "g", "0"]);
    q(&mut cm, &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "pre", ">"]);
    let port = master.port.to_string();
    let replica = start(replica_bin, dr.path(), &["--replicaof", "127.0.0.1", &port]);
    let mut cr = replica.conn();
    assert!(caught_up(&mut cm, &mut cr), "{replica_bin} did not sync from {master_bin}");
    stream_workload(&mut cm);
    assert!(caught_up(&mut cm, &mut cr), "{replica_bin} did not catch up with {master_bin}");
    assert_eq!(stream_state(&mut cr, "pre"), stream_state(&mut cm, "pre"), "{master_bin} -> {replica_bin}: pre-sync stream");
    assert_same(&propagated_snapshot(&mut cr), &propagated_snapshot(&mut cm), &format!("{master_bin} -> {replica_bin}"));
    let exists: i64 = redis::cmd("EXISTS").arg("gone").query(&mut cr).unwrap();
    assert_eq!(exists, 1, "an emptied stream stays a key on the replica too");
}

#[test]
fn stream_effects_replicate_to_debian_and_from_it() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    replicate(RF, "redis-server");
    replicate("redis-server", RF);
}

#[test]
fn rdb_files_with_streams_load_both_ways() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    for compression in ["yes", "no"] {
        // Redis writes, we load.
        let d = tempfile::tempdir().unwrap();
        let mut redis = start("redis-server", d.path(), &["--rdbcompression", compression]);
        let mut c = redis.conn();
        stream_workload(&mut c);
        let want = snapshot(&mut c);
        q(&mut c, &["SAVE"]);
        redis.kill();
        let ours = start(RF, d.path(), &[]);
        let mut c = ours.conn();
        assert_eq!(snapshot(&mut c), want, "rf-server loading Redis's RDB (rdbcompression {compression})");

        // We write, Redis loads.
        let d2 = tempfile::tempdir().unwrap();
        let mut ours = start(RF, d2.path(), &["--rdbcompression", compression]);
        let mut c = ours.conn();
        stream_workload(&mut c);
        let want = snapshot(&mut c);
        q(&mut c, &["SAVE"]);
        ours.kill();
        let redis = start("redis-server", d2.path(), &[]);
        let mut c = redis.conn();
        assert_eq!(snapshot(&mut c), want, "Redis loading rf-server's RDB (rdbcompression {compression})");
    }
}

#[test]
fn dump_payloads_of_streams_restore_both_ways() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ours = start(RF, d1.path(), &[]);
    let redis = start("redis-server", d2.path(), &[]);
    let (mut co, mut cr) = (ours.conn(), redis.conn());
    stream_workload(&mut co);
    stream_workload(&mut cr);
    for key in ["s1", "s2", "empty"] {
        let from_ours: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut co).unwrap();
        let from_redis: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut cr).unwrap();
        let copy = format!("{key}-copy");
        redis::cmd("RESTORE").arg(&copy).arg(0).arg(&from_ours).query::<()>(&mut cr).unwrap();
        redis::cmd("RESTORE").arg(&copy).arg(0).arg(&from_redis).query::<()>(&mut co).unwrap();
        assert_eq!(stream_state(&mut cr, &copy), stream_state(&mut co, key), "{key}: Redis restoring our DUMP");
        assert_eq!(stream_state(&mut co, &copy), stream_state(&mut cr, key), "{key}: rf-server restoring Redis's DUMP");
        let dv = |c: &mut redis::Connection, k: &str| redis::cmd("DEBUG").arg("DIGEST-VALUE").arg(k).query::<Vec<String>>(c).unwrap();
        assert_eq!(dv(&mut cr, &copy), dv(&mut co, key));
        assert_eq!(dv(&mut co, &copy), dv(&mut cr, key));
    }
}

#[test]
fn aof_replays_streams_and_rewrite_keeps_them() {
    for preamble in ["no", "yes"] {
        let d = tempfile::tempdir().unwrap();
        let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", preamble];
        let mut ours = start(RF, d.path(), &args);
        let mut c = ours.conn();
        stream_workload(&mut c);
        let want = propagated_snapshot(&mut c);
        ours.kill();
        let mut ours = start(RF, d.path(), &args);
        let mut c = ours.conn();
        assert_same(&propagated_snapshot(&mut c), &want, &format!("replaying the AOF (preamble {preamble})"));
        // What the rewrite must keep: everything when the base is an RDB preamble. A command
        // base (Redis's rewriteStreamObject) re-adds the live entries only, so tombstones and
        // node boundaries go, and its XCLAIMs drop pending entries whose entry was deleted
        // or trimmed: in Redis as well. The entries, counters and groups stay.
        let layout_free = |c: &mut redis::Connection| -> (String, Vec<String>) {
            let masked: &[&str] = if preamble == "yes" { &["seen-time"] } else { &["seen-time", "radix-tree-keys", "radix-tree-nodes", "pel-count", "pending"] };
            (digest(c), ["s1", "s2", "empty"].iter().map(|k| stream_state_masking(c, k, masked)).collect())
        };
        let want = layout_free(&mut c);
        q(&mut c, &["BGREWRITEAOF"]);
        assert!(
            wait_until(20, || info_field(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(&mut c, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0")),
            "rewrite finished"
        );
        ours.kill();
        let ours = start(RF, d.path(), &args);
        let mut c = ours.conn();
        assert_same(&layout_free(&mut c), &want, &format!("after BGREWRITEAOF (preamble {preamble})"));
    }
}

#[test]
fn blocking_xread_times_out_and_is_served() {
    let d = tempfile::tempdir().unwrap();
    let ours = start(RF, d.path(), &[]);
    let mut c = ours.conn();
    let started = Instant::now();
    let v = q(&mut c, &["XREAD", "BLOCK", "200", "STREAMS", "s", "$"]);
    assert_eq!(v, redis::Value::Nil);
    assert!(started.elapsed() >= Duration::from_millis(190), "the timeout is honoured");
    // Served by an XADD from another connection, with the entry added after blocking.
    let mut blocked = ours.conn();
    let port = ours.port;
    let writer = std::thread::spawn(move || {
        let mut w = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
        // Bounded wait until the reader is blocked.
        for _ in 0..200 {
            if info_field(&mut w, "clients", "blocked_clients").as_deref() == Some("1") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        redis::cmd("XADD").arg("s").arg("7-7").arg("k").arg("v").query::<String>(&mut w).unwrap();
    });
    let v = q(&mut blocked, &["XREAD", "BLOCK", "10000", "STREAMS", "s", "$"]);
    writer.join().unwrap();
    use redis::Value::{Array, BulkString};
    let b = |s: &str| BulkString(s.as_bytes().to_vec());
    let want = Array(vec![Array(vec![b("s"), Array(vec![Array(vec![b("7-7"), Array(vec![b("k"), b("v")])])])])]);
    assert_eq!(v, want, "served with the entry added after it blocked");
}

