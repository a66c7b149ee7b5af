//! The failover drill behind `scripts/bench-failover.sh` (ignored: a benchmark, not a
//! test). For each system (Debian redis-sentinel, rf-sentinel) and down-after value:
//! 1 master + 2 replicas + 3 sentinels, a `SET`+`WAIT 1` writer, SIGKILL of the master,
//! restart of the old master. Prints one `RESULT` line per round.
//!
//! Env: BENCH_ROUNDS (default 3), BENCH_DOWN_AFTER (default "1000,5000"),
//! BENCH_SYSTEMS (default "debian,rf").

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::time::{Duration, Instant};

use procs::*;

struct Round {
    switch_ms: u128,
    gap_ms: u128,
    lost: usize,
    acked: usize,
    rejoin_ms: u128,
    /// How long the writer ran: rounds of a faster system are shorter, so compare
    /// acknowledged writes per second outside the write gap, not per round.
    writer_ms: u128,
}

fn drill(kind: SentinelKind, down_after: u64) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut master = Some(start_server(dir.path(), ports[0], None));
    let _r: Vec<Proc> = ports[1..].iter().map(|p| start_server(dir.path(), *p, Some(ports[0]))).collect();
    let o = SentinelOpts { quorum: 2, down_after, failover_timeout: 10000, daemonize: false };
    let _s: Vec<Proc> = sports.iter().map(|sp| start_sentinel(kind, dir.path(), *sp, ports[0], &o)).collect();
    assert!(wait_until(Duration::from_secs(30), || sports.iter().all(|sp| masters(*sp).first().is_some_and(|m| m["num-slaves"] == "2" && m["num-other-sentinels"] == "2"))));
    assert!(wait_until(Duration::from_secs(30), || ports[1..].iter().all(|p| role(*p).is_some_and(|r| r.2))));
    // let the sentinels refresh replica INFO (offsets, link status) as in a steady state
    std::thread::sleep(Duration::from_millis(1500));
    let writer = Writer::start(sports.clone(), "bench");
    let writer_started = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let killed = Instant::now();
    master.take(); // SIGKILL
    assert!(
        wait_until(Duration::from_secs(60), || sports.iter().all(|sp| master_addr(*sp).is_some_and(|p| p != ports[0]))),
        "no failover"
    );
    let switch_ms = killed.elapsed().as_millis();
    let new_master = master_addr(sports[0]).unwrap();
    // keep writing a moment on the new master, then restart the old one
    std::thread::sleep(Duration::from_millis(1000));
    let restarted = Instant::now();
    let _old = start_server(dir.path(), ports[0], None);
    let rejoined = wait_until(Duration::from_secs(60), || role(ports[0]).is_some_and(|r| r.0 == "slave" && r.1 == Some(new_master) && r.2));
    let rejoin_ms = if rejoined { restarted.elapsed().as_millis() } else { u128::MAX };
    let res = writer.finish();
    let writer_ms = writer_started.elapsed().as_millis();
    // the gap around the kill: from the last ack before it to the first ack after it
    let gap_ms = res
        .gaps
        .iter()
        .filter(|(a, b)| *a <= killed + Duration::from_millis(50) && *b >= killed)
        .map(|(a, b)| b.duration_since(*a).as_millis())
        .max()
        .unwrap_or(0);
    let master_now = master_addr(sports[0]).unwrap();
    let lost = missing_keys(master_now, &res.acked).len();
    Round { switch_ms, gap_ms, lost, acked: res.acked.len(), rejoin_ms, writer_ms }
}

#[test]
#[ignore]
fn failover_drill() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let downs: Vec<u64> = std::env::var("BENCH_DOWN_AFTER").unwrap_or_else(|_| "1000,5000".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let systems = std::env::var("BENCH_SYSTEMS").unwrap_or_else(|_| "debian,rf".into());
    for d in downs {
        for round in 1..=rounds {
            for sys in systems.split(',') {
                let kind = if sys.trim() == "rf" { SentinelKind::Rf } else { SentinelKind::Debian };
                let r = drill(kind, d);
                println!(
                    "RESULT system={} down_after={d} round={round} switch_ms={} gap_ms={} lost={} acked={} rejoin_ms={} writer_ms={} acked_per_s={}",
                    sys.trim(),
                    r.switch_ms,
                    r.gap_ms,
                    r.lost,
                    r.acked,
                    if r.rejoin_ms == u128::MAX { "timeout".to_string() } else { r.rejoin_ms.to_string() },
                    r.writer_ms,
                    // while writes could succeed: the write gap is reported on its own
                    r.acked as u128 * 1000 / r.writer_ms.saturating_sub(r.gap_ms).max(1)
                );
            }
        }
    }
}

#[test]
#[ignore]
fn client_lookup_latency() {
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let _m = start_server(dir.path(), mport, None);
    let o = SentinelOpts { quorum: 1, down_after: 5000, failover_timeout: 10000, daemonize: false };
    for kind in [SentinelKind::Debian, SentinelKind::Rf] {
        let sp = free_port();
        let _s = start_sentinel(kind, dir.path(), sp, mport, &o);
        let t = Instant::now();
        for _ in 0..500 {
            assert_eq!(master_addr(sp), Some(mport));
        }
        println!("{kind:?}: {:?} per lookup (new connection each)", t.elapsed() / 500);
    }
}
