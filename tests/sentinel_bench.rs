//! The failover drill behind `scripts/bench-failover.sh` (ignored: a benchmark, not a
//! test). For each system (Debian redis-sentinel, rf-sentinel) and down-after value, one
//! group (1 master + 2 replicas + 3 sentinels, a `SET`+`WAIT 1` writer) goes through
//! several failovers in a row: each round SIGKILLs whatever master the sentinels name and
//! restarts it once they have switched, so a round starts soon after the previous failover
//! (a sentinel that waited for the previous failover's timer would show here). Prints one
//! `RESULT` line per round.
//!
//! Env: BENCH_ROUNDS (failovers per group, default 3), BENCH_DOWN_AFTER (default
//! "1000,5000"), BENCH_SYSTEMS (default "debian,rf").

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use procs::*;

struct Round {
    switch_ms: u128,
    gap_ms: u128,
    /// Writes acknowledged during this round and missing on the final master.
    lost: usize,
    acked: usize,
    rejoin_ms: u128,
    /// How long this round's writing lasted: rounds of a faster system are shorter, so
    /// compare acknowledged writes per second outside the write gap, not per round.
    writer_ms: u128,
}

/// When one round happened, to attribute the writer's results to it afterwards.
struct Span {
    start: Instant,
    killed: Instant,
    end: Instant,
    switch_ms: u128,
    rejoin_ms: u128,
}

fn drill(kind: SentinelKind, down_after: u64, rounds: usize) -> Vec<Round> {
    let dir = tempfile::tempdir().unwrap();
    let (ports, procs) = start_servers(dir.path(), 2);
    let mut servers: HashMap<u16, Proc> = ports.iter().copied().zip(procs).collect();
    let o = SentinelOpts { quorum: 2, down_after, failover_timeout: 10000, daemonize: false };
    let (sports, _s) = start_sentinels(&[kind; 3], dir.path(), ports[0], &o);
    assert!(wait_until(Duration::from_secs(30), || sports.iter().all(|sp| masters(*sp).first().is_some_and(|m| m["num-slaves"] == "2" && m["num-other-sentinels"] == "2"))));
    assert!(wait_until(Duration::from_secs(30), || ports[1..].iter().all(|p| role(*p).is_some_and(|r| r.2))));
    // let the sentinels refresh replica INFO (offsets, link status) as in a steady state
    std::thread::sleep(Duration::from_millis(1500));
    let writer = Writer::start(sports.clone(), "bench");
    let mut spans = Vec::new();
    let mut start = Instant::now();
    for round in 1..=rounds {
        std::thread::sleep(Duration::from_millis(1000));
        let old = master_addr(sports[0]).unwrap_or_else(|| panic!("round {round}: no master named"));
        let killed = Instant::now();
        servers.remove(&old); // SIGKILL
        assert!(
            wait_until(Duration::from_secs(60), || sports.iter().all(|sp| master_addr(*sp).is_some_and(|p| p != old))),
            "round {round}: no failover"
        );
        let switch_ms = killed.elapsed().as_millis();
        let new_master = master_addr(sports[0]).unwrap();
        // keep writing a moment on the new master, then restart the old one
        std::thread::sleep(Duration::from_millis(1000));
        let restarted = Instant::now();
        servers.insert(old, restart_server(dir.path(), old, None));
        let rejoined = wait_until(Duration::from_secs(60), || role(old).is_some_and(|r| r.0 == "slave" && r.1 == Some(new_master) && r.2));
        let rejoin_ms = if rejoined { restarted.elapsed().as_millis() } else { u128::MAX };
        let end = Instant::now();
        spans.push(Span { start, killed, end, switch_ms, rejoin_ms });
        start = end;
    }
    let res = writer.finish();
    let master_now = master_addr(sports[0]).unwrap();
    let missing: std::collections::HashSet<String> = missing_keys(master_now, &res.acked).into_iter().collect();
    spans
        .iter()
        .map(|sp| {
            let gap_ms = res.gap_around(sp.killed);
            let in_round: Vec<&String> = res.acked.iter().zip(&res.acked_at).filter(|(_, t)| **t >= sp.start && **t < sp.end).map(|(k, _)| k).collect();
            Round {
                switch_ms: sp.switch_ms,
                gap_ms,
                lost: in_round.iter().filter(|k| missing.contains(k.as_str())).count(),
                acked: in_round.len(),
                rejoin_ms: sp.rejoin_ms,
                writer_ms: sp.end.duration_since(sp.start).as_millis(),
            }
        })
        .collect()
}

#[test]
#[ignore]
fn failover_drill() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let downs: Vec<u64> = std::env::var("BENCH_DOWN_AFTER").unwrap_or_else(|_| "1000,5000".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let systems = std::env::var("BENCH_SYSTEMS").unwrap_or_else(|_| "debian,rf".into());
    for d in downs {
        for sys in systems.split(',') {
            let kind = if sys.trim() == "rf" { SentinelKind::Rf } else { SentinelKind::Debian };
            for (i, r) in drill(kind, d, rounds).iter().enumerate() {
                println!(
                    "RESULT system={} down_after={d} round={} switch_ms={} gap_ms={} lost={} acked={} rejoin_ms={} writer_ms={} acked_per_s={}",
                    sys.trim(),
                    i + 1,
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
    let m = start_server(dir.path(), None);
    let mport = m.port;
    let o = SentinelOpts { quorum: 1, down_after: 5000, failover_timeout: 10000, daemonize: false };
    for kind in [SentinelKind::Debian, SentinelKind::Rf] {
        let s = start_sentinel(kind, dir.path(), mport, &o);
        let sp = s.port;
        let t = Instant::now();
        for _ in 0..500 {
            assert_eq!(master_addr(sp), Some(mport));
        }
        println!("{kind:?}: {:?} per lookup (new connection each)", t.elapsed() / 500);
    }
}
