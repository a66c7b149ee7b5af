//! WAIT is answered at the speed of a round trip, not of the replicas' 1 s ACK timer: the
//! master asks for an ACK (`REPLCONF GETACK *`) when a client blocks in WAIT and replicas
//! answer it at once. Checked for every pairing of our server and Debian redis-server.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ServerGuard;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");
const REDIS: &str = "/usr/bin/redis-server";

use common::spawn_for_replication as spawn;

fn link_up(port: u16) -> bool {
    common::redis_cli(port, &["INFO", "replication"]).contains("master_link_status:up")
}

/// Runs `rounds` of SET + WAIT 1 1000 (pipelined, as the failover drill's writer does) and
/// returns how long they took; every WAIT must report the replica.
fn wait_rounds(master: &ServerGuard, rounds: usize) -> Duration {
    let mut c = master.client();
    let start = Instant::now();
    for i in 0..rounds {
        let (_, acked): (String, i64) = redis::pipe().cmd("SET").arg("k").arg(i).cmd("WAIT").arg(1).arg(1000).query(&mut c).unwrap();
        assert_eq!(acked, 1, "WAIT did not count the replica at round {i}");
    }
    start.elapsed()
}

#[test]
fn wait_is_acknowledged_at_once_in_every_pairing() {
    let mut pairs = vec![(RF, RF)];
    if Path::new(REDIS).exists() {
        pairs.extend([(RF, REDIS), (REDIS, RF), (REDIS, REDIS)]);
    }
    for (master_bin, replica_bin) in pairs {
        let master = spawn(master_bin, &[]);
        let replica = spawn(replica_bin, &["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !link_up(replica.port) {
            assert!(Instant::now() < deadline, "{replica_bin} never synced from {master_bin}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Waiting on the 1 s ACK timer would take ~300 s; a GETACK round trip takes < 1 ms.
        let took = wait_rounds(&master, 300);
        assert!(took < Duration::from_secs(15), "master {master_bin}, replica {replica_bin}: 300 SET+WAIT took {took:?}");
        eprintln!("master {master_bin} replica {replica_bin}: 300 SET+WAIT 1 in {took:?}");
    }
}
