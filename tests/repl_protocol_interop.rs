//! The replication protocol against Debian redis-server, both ways, using the replication
//! module with a small in-memory keyspace (tests/persist_support/toy.rs) on our side.

mod persist_support;

use std::sync::Arc;
use std::time::Duration;

use persist_support::toy::{serve_toy_master, ToyHost};
use persist_support::*;
use redis_failover::server::replication::{run_master_link, DataHost, ReplConfig, Replication};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn we_replicate_from_redis_full_stream_and_partial_after_link_kill() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = start_server("redis-server", dir.path(), &["--repl-diskless-sync", "no"]);
    let mut c = redis.conn();
    populate_all_types(&mut c);
    let rt = runtime();
    let host = Arc::new(ToyHost::default());
    let repl = Replication::new(ReplConfig { listening_port: 1, ..Default::default() });
    let generation = repl.set_master("127.0.0.1".into(), redis.port);
    let h: Arc<dyn DataHost> = host.clone();
    rt.spawn(run_master_link(repl.clone(), h, generation));

    assert!(wait_until(20, || repl.master_link_up()), "link never came up: {}", repl.info_section());
    let expected = dataset_of_server(&mut c);
    let strip = |d: Dataset| d.into_iter().map(|(k, (v, _))| (k, v)).collect::<Vec<_>>();
    assert_eq!(strip(host.dataset()), strip(expected.clone()), "after full sync");

    // Streaming.
    for i in 0..200 {
        redis::cmd("SET").arg(format!("stream:{i}")).arg(i).query::<()>(&mut c).unwrap();
    }
    redis::cmd("RPUSH").arg("list:small").arg("pushed").query::<()>(&mut c).unwrap();
    redis::cmd("SELECT").arg(5).query::<()>(&mut c).unwrap();
    redis::cmd("SADD").arg("db5set").arg("m").query::<()>(&mut c).unwrap();
    redis::cmd("SELECT").arg(0).query::<()>(&mut c).unwrap();
    let master_offset = || info_field(&mut redis.conn(), "replication", "master_repl_offset").unwrap().parse::<i64>().unwrap();
    let target = master_offset();
    assert!(wait_until(10, || repl.master_repl_offset() == target), "offset {} vs master {}", repl.master_repl_offset(), target);
    assert_eq!(strip(host.dataset()), strip(dataset_of_server(&mut c)), "after streaming");
    // Redis sees our ACKs.
    assert!(wait_until(5, || info_field(&mut c, "replication", "slave0").is_some_and(|s| s.contains(&format!("offset={target}")))));

    // Cut the link: we reconnect with PSYNC and get +CONTINUE.
    assert!(repl.kill_master_link());
    for i in 0..50 {
        redis::cmd("INCR").arg("counter").query::<()>(&mut c).unwrap();
        if i == 10 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(wait_until(15, || repl.master_link_up() && repl.master_repl_offset() == master_offset()));
    assert_eq!(info_field(&mut c, "stats", "sync_partial_ok").as_deref(), Some("1"));
    assert_eq!(info_field(&mut c, "stats", "sync_full").as_deref(), Some("1"));
    assert_eq!(strip(host.dataset()), strip(dataset_of_server(&mut c)), "after partial resync");
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn redis_replicates_from_us_full_disk_and_diskless_then_partial() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    for diskless in [false, true] {
        let rt = runtime();
        let host = Arc::new(ToyHost::default());
        let repl = Replication::new(ReplConfig { diskless_sync: diskless, ..Default::default() });
        *host.repl.lock() = Some(repl.clone());
        for i in 0..300 {
            host.write(0, &["SET", &format!("k{i}"), &"v".repeat(i % 40)]);
        }
        host.write(0, &["RPUSH", "list", "a", "b", "1"]);
        host.write(0, &["SADD", "set", "1", "2", "x"]);
        host.write(0, &["HSET", "hash", "f", "v", "g", "w"]);
        host.write(0, &["ZADD", "zset", "1.5", "a", "-3", "b"]);
        host.write(3, &["SET", "in3", "three"]);
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(serve_toy_master(listener, repl.clone(), host.clone()));
        let cron_repl = repl.clone();
        rt.spawn(async move {
            let mut last_ping = std::time::Instant::now();
            loop {
                cron_repl.cron(std::time::Instant::now(), &mut last_ping);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });

        let dir = tempfile::tempdir().unwrap();
        let port_s = port.to_string();
        let redis = start_server("redis-server", dir.path(), &["--replicaof", "127.0.0.1", &port_s]);
        let mut c = redis.conn();
        assert!(
            wait_until(20, || info_field(&mut c, "replication", "master_link_status").as_deref() == Some("up")),
            "redis never synced from us (diskless={diskless})"
        );
        let strip = |d: Dataset| d.into_iter().map(|(k, (v, _))| (k, v)).collect::<Vec<_>>();
        assert_eq!(strip(dataset_of_server(&mut c)), strip(host.dataset()), "full sync, diskless={diskless}");

        for i in 0..100 {
            host.write(i % 2, &["SET", &format!("live{i}"), "x"]);
        }
        host.write(0, &["DEL", "k1", "k2"]);
        let ours = repl.master_repl_offset();
        assert!(wait_until(10, || info_field(&mut c, "replication", "slave_repl_offset").as_deref() == Some(&ours.to_string())));
        assert_eq!(strip(dataset_of_server(&mut c)), strip(host.dataset()), "streaming");
        // Redis's ACKs reach us; ROLE and INFO show the replica online.
        assert!(wait_until(5, || repl.replicas_acked(ours) == 1));
        assert!(repl.info_section().contains(&format!("slave0:ip=127.0.0.1,port={},state=online,offset={ours}", redis.port)));

        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("master").query::<i64>(&mut c).unwrap();
        host.write(0, &["SET", "after-kill", "1"]);
        assert!(wait_until(15, || repl.stats().sync_partial_ok == 1 && info_field(&mut c, "replication", "master_link_status").as_deref() == Some("up")));
        let ours = repl.master_repl_offset();
        assert!(wait_until(10, || info_field(&mut c, "replication", "slave_repl_offset").as_deref() == Some(&ours.to_string())));
        assert_eq!(repl.stats().sync_full, 1);
        assert_eq!(strip(dataset_of_server(&mut c)), strip(host.dataset()), "after partial resync");
        drop(redis);
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

struct ToyNode {
    host: Arc<ToyHost>,
    repl: Arc<Replication>,
    port: u16,
}

fn toy_node(rt: &tokio::runtime::Runtime) -> ToyNode {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = Arc::new(ToyHost::default());
    let repl = Replication::new(ReplConfig { listening_port: port, ..Default::default() });
    *host.repl.lock() = Some(repl.clone());
    rt.spawn(serve_toy_master(listener, repl.clone(), host.clone()));
    ToyNode { host, repl, port }
}

fn follow(rt: &tokio::runtime::Runtime, node: &ToyNode, master_port: u16) {
    let generation = node.repl.set_master("127.0.0.1".into(), master_port);
    let h: Arc<dyn DataHost> = node.host.clone();
    rt.spawn(run_master_link(node.repl.clone(), h, generation));
}

#[test]
fn psync2_promotion_other_replica_and_old_master_continue() {
    let rt = runtime();
    let m = toy_node(&rt);
    let a = toy_node(&rt);
    let b = toy_node(&rt);
    for i in 0..100 {
        m.host.write(0, &["SET", &format!("k{i}"), "v"]);
    }
    follow(&rt, &a, m.port);
    follow(&rt, &b, m.port);
    assert!(wait_until(20, || a.repl.master_link_up() && b.repl.master_link_up()));
    for i in 0..50 {
        m.host.write(1, &["SET", &format!("streamed{i}"), "v"]);
    }
    let off = m.repl.master_repl_offset();
    assert!(wait_until(10, || a.repl.master_repl_offset() == off && b.repl.master_repl_offset() == off));
    assert_eq!(m.repl.stats().sync_full, 2);

    // Failover: promote A, re-point B and the old master M to A.
    assert!(a.repl.promote());
    follow(&rt, &b, a.port);
    follow(&rt, &m, a.port);
    assert!(wait_until(20, || b.repl.master_link_up() && m.repl.master_link_up()), "{}", a.repl.info_section());
    let stats = a.repl.stats();
    assert_eq!((stats.sync_full, stats.sync_partial_ok), (0, 2), "both must continue without a full sync");

    // New writes on A reach both.
    for i in 0..20 {
        a.host.write(0, &["SET", &format!("after{i}"), "w"]);
    }
    let off = a.repl.master_repl_offset();
    assert!(wait_until(10, || b.repl.master_repl_offset() == off && m.repl.master_repl_offset() == off));
    assert_eq!(b.host.dataset(), a.host.dataset());
    assert_eq!(m.host.dataset(), a.host.dataset());
    assert!(a.repl.info_section().contains("connected_slaves:2"));
    assert!(m.repl.info_section().contains("role:slave"));
    rt.shutdown_timeout(Duration::from_secs(1));
}
