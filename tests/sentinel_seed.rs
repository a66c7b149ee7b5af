//! The seed tutorial replayed on 127.0.0.1 with real processes: 1 master + 2 replicas
//! (Debian redis-server, or `RF_TEST_SERVER_BIN`), 3 rf-sentinels daemonized from the
//! tutorial's config lines (quorum 2, parallel-syncs 1, failover-timeout 10000; down-after
//! 1000 instead of 5000 to keep the test short).

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use procs::*;

#[test]
fn seed_replay_failover_rejoin_manual_failover_no_acked_write_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (ports, procs) = start_servers(dir.path(), 2);
    let mut servers: HashMap<u16, Proc> = ports.iter().copied().zip(procs).collect();
    let opts = SentinelOpts { quorum: 2, down_after: 1000, failover_timeout: 10000, daemonize: true };
    let (sports, _sentinels) = start_sentinels(&[SentinelKind::Rf; 3], dir.path(), ports[0], &opts);

    // SENTINEL masters / slaves show the group once discovery is done
    assert!(
        wait_until(Duration::from_secs(15), || {
            sports.iter().all(|sp| {
                let m = masters(*sp);
                m.len() == 1 && m[0]["num-slaves"] == "2" && m[0]["num-other-sentinels"] == "2" && m[0]["flags"] == "master"
            })
        }),
        "sentinels did not discover the group: {:?}",
        masters(sports[0])
    );
    let m = &masters(sports[2])[0];
    assert_eq!((m["name"].as_str(), m["ip"].as_str(), m["port"].parse::<u16>().unwrap()), ("mymaster", "127.0.0.1", ports[0]));
    assert_eq!(m["quorum"], "2");
    assert_eq!(m["failover-timeout"], "10000");
    let slaves: Vec<HashMap<String, String>> = sentinel_cmd(sports[2], &["slaves", "mymaster"]).unwrap();
    let mut sp: Vec<u16> = slaves.iter().map(|s| s["port"].parse().unwrap()).collect();
    sp.sort();
    let mut want = ports[1..].to_vec();
    want.sort();
    assert_eq!(sp, want);
    // the config file was rewritten with the discovered state and a persisted myid (the
    // rewrite follows the discovery that SENTINEL MASTER already shows, so wait for it)
    let conf_path = dir.path().join(format!("sentinel-{}.conf", sports[0]));
    let read_conf = || std::fs::read_to_string(&conf_path).unwrap();
    wait_until(Duration::from_secs(5), || {
        let conf = read_conf();
        conf.matches("sentinel known-replica mymaster").count() == 2 && conf.matches("sentinel known-sentinel mymaster").count() == 2
    });
    let conf = read_conf();
    assert!(conf.contains("sentinel myid "), "{conf}");
    assert_eq!(conf.matches("sentinel known-replica mymaster").count(), 2, "{conf}");
    assert_eq!(conf.matches("sentinel known-sentinel mymaster").count(), 2, "{conf}");

    assert!(
        wait_until(Duration::from_secs(20), || ports[1..].iter().all(|p| role(*p).is_some_and(|r| r.2))),
        "replicas never synced"
    );
    // a writer acknowledged by WAIT 1 runs through everything
    let writer = Writer::start(sports.clone(), "seed");
    std::thread::sleep(Duration::from_millis(500));

    // DEBUG SEGFAULT on the master, as in the tutorial
    let old = ports[0];
    let killed_at = Instant::now();
    let _ = conn(old).and_then(|mut c| redis::cmd("DEBUG").arg("SEGFAULT").query::<()>(&mut c));
    assert!(wait_until(Duration::from_secs(5), || !servers.get_mut(&old).unwrap().is_running()), "master did not crash");
    let promoted_ok = wait_until(Duration::from_secs(15), || sports.iter().all(|sp| master_addr(*sp).is_some_and(|p| p != old)));
    assert!(promoted_ok, "no failover after DEBUG SEGFAULT");
    let switch_ms = killed_at.elapsed().as_millis();
    let new_master = master_addr(sports[0]).unwrap();
    assert!(ports[1..].contains(&new_master));
    assert_eq!(role(new_master).unwrap().0, "master");
    let other = *ports[1..].iter().find(|p| **p != new_master).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || role(other).is_some_and(|r| r.0 == "slave" && r.1 == Some(new_master) && r.2)),
        "the other replica does not follow the new master: {:?}",
        role(other)
    );
    eprintln!("switch seen by all sentinels {switch_ms} ms after DEBUG SEGFAULT (down-after 1000)");

    // restart the old master from its own (master) configuration: it rejoins as a replica
    servers.remove(&old);
    let restarted_at = Instant::now();
    servers.insert(old, restart_server(dir.path(), old, None));
    assert!(
        wait_until(Duration::from_secs(20), || role(old).is_some_and(|r| r.0 == "slave" && r.1 == Some(new_master))),
        "old master did not rejoin as a replica: {:?}",
        role(old)
    );
    let rejoin_ms = restarted_at.elapsed().as_millis();
    eprintln!("old master rejoined as replica {rejoin_ms} ms after restart");
    assert!(rejoin_ms < 5000, "rejoin took {rejoin_ms} ms");

    let first = writer.finish();
    eprintln!("writer: {} acked of {} attempts, max gap {} ms", first.acked.len(), first.attempts, first.max_gap_ms);
    assert!(first.acked.len() > 50, "writer made no progress");
    let lost = missing_keys(new_master, &first.acked);
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);

    // SENTINEL failover moves the master again
    assert!(wait_until(Duration::from_secs(10), || role(old).is_some_and(|r| r.2)), "old master not in sync");
    std::thread::sleep(Duration::from_millis(1500));
    let writer = Writer::start(sports.clone(), "manual");
    std::thread::sleep(Duration::from_millis(500));
    let reply: String = sentinel_cmd(sports[1], &["failover", "mymaster"]).unwrap();
    assert_eq!(reply, "OK");
    assert!(
        wait_until(Duration::from_secs(20), || sports.iter().all(|sp| master_addr(*sp).is_some_and(|p| p != new_master))),
        "SENTINEL FAILOVER did not move the master"
    );
    let final_master = master_addr(sports[0]).unwrap();
    assert!(wait_until(Duration::from_secs(15), || role(final_master).is_some_and(|r| r.0 == "master")));
    assert!(
        wait_until(Duration::from_secs(20), || ports.iter().filter(|p| **p != final_master).all(|p| role(*p).is_some_and(|r| r.0 == "slave" && r.1 == Some(final_master)))),
        "replicas do not all follow {final_master}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let second = writer.finish();
    eprintln!("writer during SENTINEL FAILOVER: {} acked, max gap {} ms", second.acked.len(), second.max_gap_ms);
    assert!(second.acked.len() > 50, "writer made no progress around the manual failover");
    // acked writes from before and during the manual failover are all on the final master
    let lost = missing_keys(final_master, &first.acked);
    assert!(lost.is_empty(), "{} acknowledged writes lost after SENTINEL FAILOVER", lost.len());
    let lost = missing_keys(final_master, &second.acked);
    assert!(lost.is_empty(), "{} writes acknowledged during SENTINEL FAILOVER lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    // events and epochs: every sentinel is at epoch 2 with config-epoch 2
    let m = &masters(sports[2])[0];
    assert_eq!(m["config-epoch"], "2");
}

#[test]
fn sentinel_aware_client_follows_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let (ports, mut servers) = start_servers(dir.path(), 1);
    let mut m = Some(servers.remove(0));
    let opts = SentinelOpts { quorum: 2, down_after: 1000, failover_timeout: 10000, daemonize: false };
    let (sports, _s) = start_sentinels(&[SentinelKind::Rf; 3], dir.path(), ports[0], &opts);
    assert!(wait_until(Duration::from_secs(15), || sports.iter().all(|sp| masters(*sp).first().is_some_and(|m| m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"))));
    let urls: Vec<String> = sports.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect();
    let mut client = redis::sentinel::SentinelClient::build(urls, "mymaster".to_string(), None, redis::sentinel::SentinelServerType::Master).unwrap();
    let mut c = client.get_connection().unwrap();
    assert!(wait_until(Duration::from_secs(20), || role(ports[1]).is_some_and(|r| r.2)), "replica never synced");
    redis::cmd("SET").arg("k").arg("v1").exec(&mut c).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut c).unwrap();
    assert_eq!(acked, 1);
    m.take();
    // after the failover the same client object gets a connection to the new master
    let ok = wait_until(Duration::from_secs(15), || {
        client.get_connection().ok().is_some_and(|mut c| redis::cmd("SET").arg("k2").arg("v2").exec(&mut c).is_ok())
    });
    assert!(ok, "the redis crate's SentinelClient did not reach the new master");
    let mut c = client.get_connection().unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v1");
    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
}
