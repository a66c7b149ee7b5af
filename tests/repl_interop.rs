//! rf-server replication with real processes: interop with Debian redis-server both ways
//! (a chain rf -> redis -> rf), link cuts with partial resync, and a PSYNC2 promotion where
//! the other replica and the old master continue without a full sync.

mod persist_support;

use persist_support::*;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");

fn write_strings(c: &mut redis::Connection, prefix: &str, n: usize) {
    for i in 0..n {
        redis::cmd("SET").arg(format!("{prefix}:{i}")).arg(format!("value-{i}")).query::<()>(c).unwrap();
    }
    redis::cmd("INCR").arg(format!("{prefix}:counter")).query::<i64>(c).unwrap();
    redis::cmd("APPEND").arg(format!("{prefix}:0")).arg("-appended").query::<i64>(c).unwrap();
    redis::cmd("SELECT").arg(3).query::<()>(c).unwrap();
    redis::cmd("SET").arg(format!("{prefix}:in-db3")).arg("x").query::<()>(c).unwrap();
    redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
    redis::cmd("DEL").arg(format!("{prefix}:1")).query::<i64>(c).unwrap();
    redis::cmd("SET").arg(format!("{prefix}:ttl")).arg("t").arg("EX").arg(1000).query::<()>(c).unwrap();
}

fn offset(c: &mut redis::Connection, field: &str) -> i64 {
    info_field(c, "replication", field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

fn stat(c: &mut redis::Connection, field: &str) -> i64 {
    info_field(c, "stats", field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

fn link_up(c: &mut redis::Connection) -> bool {
    info_field(c, "replication", "master_link_status").as_deref() == Some("up")
}

/// Waits until the replica processed everything the master has.
fn caught_up(master: &mut redis::Connection, replica: &mut redis::Connection) -> bool {
    wait_until(20, || link_up(replica) && offset(master, "master_repl_offset") == offset(replica, "slave_repl_offset"))
}

#[test]
fn chain_rf_redis_rf_full_sync_streaming_and_partial_resync() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let d3 = tempfile::tempdir().unwrap();
    let top = start_server(RF, d1.path(), &[]);
    let mut c_top = top.conn();
    write_strings(&mut c_top, "before", 500);
    populate_all_types(&mut c_top);
    let top_port = top.port.to_string();
    let middle = start_server("redis-server", d2.path(), &["--replicaof", "127.0.0.1", &top_port, "--repl-diskless-sync-delay", "0"]);
    let mut c_mid = middle.conn();
    let mid_port = middle.port.to_string();
    let bottom = start_server(RF, d3.path(), &["--replicaof", "127.0.0.1", &mid_port]);
    let mut c_bot = bottom.conn();

    assert!(caught_up(&mut c_top, &mut c_mid), "redis never synced from rf-server");
    assert!(caught_up(&mut c_mid, &mut c_bot), "rf-server never synced from redis");
    let expected = dataset_of_server(&mut c_top);
    assert!(expected.len() > 400);
    assert_eq!(dataset_of_server(&mut c_mid), expected, "redis replica of rf");
    assert_eq!(dataset_of_server(&mut c_bot), expected, "rf replica of redis");

    // Streaming through the chain.
    write_strings(&mut c_top, "streamed", 300);
    redis::cmd("RPUSH").arg("list:small").arg("streamed").query::<i64>(&mut c_top).unwrap();
    redis::cmd("ZADD").arg("zset:big").arg(99.5).arg("streamed").query::<i64>(&mut c_top).unwrap();
    redis::cmd("HSET").arg("hash:small").arg("streamed").arg("1").query::<i64>(&mut c_top).unwrap();
    redis::cmd("SADD").arg("set:str").arg("streamed").query::<i64>(&mut c_top).unwrap();
    assert!(caught_up(&mut c_top, &mut c_mid) && caught_up(&mut c_mid, &mut c_bot));
    let expected = dataset_of_server(&mut c_top);
    assert_eq!(dataset_of_server(&mut c_mid), expected);
    assert_eq!(dataset_of_server(&mut c_bot), expected);
    // Replicas refuse writes; ROLE and INFO say who is who.
    let err = redis::cmd("SET").arg("x").arg("y").query::<()>(&mut c_bot).unwrap_err();
    assert!(err.to_string().contains("read only replica"), "{err}");
    let role: redis::Value = redis::cmd("ROLE").query(&mut c_bot).unwrap();
    assert!(format!("{role:?}").contains("slave"));
    assert!(info_field(&mut c_top, "replication", "slave0").unwrap().contains(&format!("port={},state=online", middle.port)));

    // Cut both links: each replica reconnects with PSYNC and continues.
    redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("master").query::<i64>(&mut c_mid).unwrap();
    redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("master").query::<i64>(&mut c_bot).unwrap();
    write_strings(&mut c_top, "after-cut", 100);
    assert!(caught_up(&mut c_top, &mut c_mid) && caught_up(&mut c_mid, &mut c_bot));
    assert!(wait_until(10, || stat(&mut c_top, "sync_partial_ok") == 1));
    assert!(wait_until(10, || stat(&mut c_mid, "sync_partial_ok") == 1));
    assert_eq!(stat(&mut c_top, "sync_full"), 1);
    assert_eq!(stat(&mut c_mid, "sync_full"), 1);
    let expected = dataset_of_server(&mut c_top);
    assert_eq!(dataset_of_server(&mut c_mid), expected, "after partial resync");
    assert_eq!(dataset_of_server(&mut c_bot), expected, "after partial resync");
}

fn digest(c: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(c).unwrap()
}

#[test]
fn promotion_other_replica_and_old_master_continue_with_psync2() {
    let dm = tempfile::tempdir().unwrap();
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let m = start_server(RF, dm.path(), &[]);
    let mut cm = m.conn();
    write_strings(&mut cm, "k", 300);
    let mport = m.port.to_string();
    let a = start_server(RF, da.path(), &["--replicaof", "127.0.0.1", &mport]);
    let b = start_server(RF, db.path(), &["--replicaof", "127.0.0.1", &mport]);
    let (mut ca, mut cb) = (a.conn(), b.conn());
    assert!(caught_up(&mut cm, &mut ca) && caught_up(&mut cm, &mut cb));
    write_strings(&mut cm, "more", 50);
    assert!(caught_up(&mut cm, &mut ca) && caught_up(&mut cm, &mut cb));
    assert_eq!(digest(&mut ca), digest(&mut cm));
    assert_eq!(digest(&mut cb), digest(&mut cm));
    // WAIT sees both replicas.
    redis::cmd("SET").arg("waited").arg("1").query::<()>(&mut cm).unwrap();
    let n: i64 = redis::cmd("WAIT").arg(2).arg(5000).query(&mut cm).unwrap();
    assert_eq!(n, 2);

    // Failover: promote A, re-point B and the old master M.
    redis::cmd("REPLICAOF").arg("NO").arg("ONE").query::<()>(&mut ca).unwrap();
    let aport = a.port.to_string();
    redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&aport).query::<()>(&mut cb).unwrap();
    redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&aport).query::<()>(&mut cm).unwrap();
    assert!(wait_until(20, || link_up(&mut cb) && link_up(&mut cm)));
    assert_eq!(stat(&mut ca, "sync_full"), 0, "a full sync happened after the promotion");
    assert_eq!(stat(&mut ca, "sync_partial_ok"), 2);
    write_strings(&mut ca, "new-master", 50);
    assert!(caught_up(&mut ca, &mut cb) && caught_up(&mut ca, &mut cm));
    assert_eq!(digest(&mut cb), digest(&mut ca));
    assert_eq!(digest(&mut cm), digest(&mut ca));
    assert_eq!(info_field(&mut ca, "replication", "connected_slaves").as_deref(), Some("2"));
    let replid2 = info_field(&mut ca, "replication", "master_replid2").unwrap();
    assert_ne!(replid2, "0000000000000000000000000000000000000000");

    // WAIT for more replicas than exist times out with the number that acknowledged.
    redis::cmd("SET").arg("waited2").arg("1").query::<()>(&mut ca).unwrap();
    let started = std::time::Instant::now();
    let n: i64 = redis::cmd("WAIT").arg(3).arg(300).query(&mut ca).unwrap();
    assert_eq!(n, 2);
    assert!(started.elapsed() >= std::time::Duration::from_millis(290), "{:?}", started.elapsed());

    // min-replicas-to-write: with 3 required and 2 connected, writes are refused.
    redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg(3).query::<()>(&mut ca).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let err = redis::cmd("SET").arg("x").arg("1").query::<()>(&mut ca).unwrap_err();
    assert!(err.to_string().contains("NOREPLICAS"), "{err}");
    redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg(2).query::<()>(&mut ca).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    redis::cmd("SET").arg("x").arg("1").query::<()>(&mut ca).unwrap();
}
