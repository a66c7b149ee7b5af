//! The sentinel state machine on a simulated clock and network (no sockets, no sleeps).
//! Many seeds each; every run checks safety (one leader and one promotion per epoch).

#[path = "common_sentinel/sim.rs"]
mod sim;

use sim::{SimRole, World};

const SEEDS: u64 = 40;

/// `SENTINEL FAILOVER` to sentinel `i`, asked again every 200 ms (up to 10 s) while it
/// answers NOGOODSLAVE or INPROG, as right after a switch; true once accepted.
fn ask_failover(w: &mut World, i: usize) -> bool {
    for _ in 0..50 {
        let now = w.now;
        if w.sentinels[i].machine.as_mut().unwrap().failover(now, sim::MASTER_NAME).is_ok() {
            return true;
        }
        w.run(200);
    }
    false
}

fn settle(w: &mut World) {
    // discovery: replicas via INFO, sentinels via hello
    assert!(w.run_until(15_000, |w| w.sentinels.iter().all(|s| {
        let m = &s.machine.as_ref().unwrap().masters[0];
        m.replicas.len() == w.redis.len() - 1 && m.sentinels.len() == w.sentinels.len() - 1
    })), "discovery did not complete");
    w.run(2000);
}

#[test]
fn master_crash_fails_over_and_old_master_rejoins() {
    for seed in 0..SEEDS {
        let mut w = World::new(seed, 2, 3, 2, 1000);
        settle(&mut w);
        let old = w.redis[0].addr.clone();
        w.kill_redis(0);
        let killed_at = w.now;
        assert!(w.run_until(20_000, |w| w.masters().len() == 1 && w.converged()), "seed {seed}: no failover");
        let switched = w.now - killed_at;
        // promotion within down-after + a few hundred ms of simulated time
        let first_promotion = w.promotions.iter().map(|p| p.at).min().unwrap();
        assert!(first_promotion - killed_at <= 1000 + 400, "seed {seed}: promotion took {} ms", first_promotion - killed_at);
        assert!(switched < 5000, "seed {seed}: converged after {switched} ms");
        // the promoted replica had the highest replication offset
        for p in &w.promotions {
            assert_eq!(p.target_offset, p.best_offset, "seed {seed}: promoted a replica behind another");
        }
        // each sentinel published +switch-master exactly once
        assert_eq!(w.all_events("+switch-master").len(), 3, "seed {seed}");
        // old master restarts as an empty master: it is converted to a replica quickly
        w.restart_redis(0);
        let back = w.now;
        assert!(w.run_until(5000, |w| w.redis[0].role != SimRole::Master && w.converged()), "seed {seed}: old master not converted");
        assert!(w.now - back <= 1000, "seed {seed}: rejoin took {} ms", w.now - back);
        assert!(w.all_events("+convert-to-slave").iter().any(|e| e.2.contains(&old.host)), "seed {seed}");
        w.assert_safety();
    }
}

#[test]
fn lossy_delayed_network_still_fails_over_safely() {
    for seed in 0..SEEDS {
        let mut w = World::new(1000 + seed, 2, 5, 3, 1000);
        settle(&mut w);
        w.loss = 0.05;
        w.max_latency = 40;
        w.kill_redis(0);
        assert!(w.run_until(120_000, |w| w.converged()), "seed {seed}: no convergence under loss");
        w.assert_safety();
    }
}

#[test]
fn partitioned_minority_sentinel_cannot_fail_over() {
    for seed in 0..SEEDS {
        let mut w = World::new(2000 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        // sentinel 0 loses the master but the majority still sees it: no ODOWN, no failover
        let master = w.redis[0].addr.clone();
        let s0 = w.sentinels[0].addr.clone();
        w.partition(&s0, &master);
        w.run(10_000);
        assert!(w.all_events("+sdown").iter().any(|e| e.0 == 0), "seed {seed}: minority saw no sdown");
        assert!(w.all_events("+odown").is_empty(), "seed {seed}: odown without quorum");
        assert!(w.promotions.is_empty(), "seed {seed}: failover without quorum");
        assert_eq!(w.masters(), vec![master.clone()]);
        // and with two sentinels cut from each other and the master isolated from all,
        // the one remaining sentinel pair still elects one leader
        w.heal();
        w.run(3000);
        let s1 = w.sentinels[1].addr.clone();
        let s2 = w.sentinels[2].addr.clone();
        w.partition(&s1, &s2);
        w.kill_redis(0);
        assert!(w.run_until(60_000, |w| w.converged()), "seed {seed}: no failover with a cut sentinel link");
        w.assert_safety();
    }
}

#[test]
fn sentinel_crash_mid_failover_another_takes_over() {
    for seed in 0..SEEDS {
        let mut w = World::new(3000 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        // every sentinel would crash right after being elected, until the first crash
        for s in &mut w.sentinels {
            s.machine.as_mut().unwrap().simulate.crash_after_election = true;
        }
        w.kill_redis(0);
        assert!(w.run_until(10_000, |w| w.sentinels.iter().any(|s| s.machine.is_none())), "seed {seed}: nobody elected");
        for s in &mut w.sentinels {
            if let Some(m) = s.machine.as_mut() {
                m.simulate.crash_after_election = false;
            }
        }
        // the two survivors are still a majority of 3: a later epoch finishes the job
        assert!(w.run_until(120_000, |w| w.converged()), "seed {seed}: no failover after leader crash");
        w.assert_safety();
        let epochs: Vec<u64> = w.elected.iter().map(|e| e.0).collect();
        assert!(epochs.len() >= 2 && epochs.windows(2).all(|p| p[0] < p[1]), "seed {seed}: {epochs:?}");
        // the crashed sentinel restarts from its rewritten config and follows the new master
        let dead = w.sentinels.iter().position(|s| s.machine.is_none()).unwrap();
        w.restart_sentinel(dead);
        assert!(w.run_until(10_000, |w| w.converged()), "seed {seed}: restarted sentinel did not catch up");
    }
}

#[test]
fn crash_after_promotion_is_completed_by_others() {
    for seed in 0..SEEDS {
        let mut w = World::new(4000 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        for s in &mut w.sentinels {
            s.machine.as_mut().unwrap().simulate.crash_after_promotion = true;
        }
        w.kill_redis(0);
        assert!(w.run_until(10_000, |w| w.sentinels.iter().any(|s| s.machine.is_none())), "seed {seed}");
        for s in &mut w.sentinels {
            if let Some(m) = s.machine.as_mut() {
                m.simulate.crash_after_promotion = false;
            }
        }
        // a promoted replica without a switch: the others notice the new master (it reports
        // master while being a replica) only after another failover; either way converge.
        assert!(w.run_until(120_000, |w| w.converged()), "seed {seed}: stuck after crash-after-promotion");
        w.assert_safety();
    }
}

#[test]
fn simultaneous_odown_with_zero_latency_elects_one_leader() {
    for seed in 0..SEEDS {
        // zero latency: all sentinels reach ODOWN in the same tick and all become candidates
        let mut w = World::new(5000 + seed, 2, 3, 2, 1000);
        w.max_latency = 0;
        settle(&mut w);
        w.kill_redis(0);
        assert!(w.run_until(120_000, |w| w.converged()), "seed {seed}: no convergence");
        w.assert_safety();
        let tries = w.all_events("+try-failover");
        assert!(!tries.is_empty());
    }
}

#[test]
fn split_votes_are_retried_quickly_in_a_new_epoch() {
    let mut splits = 0;
    for seed in 0..SEEDS {
        // no stagger and no latency: every sentinel becomes a candidate in the same tick
        // and votes for itself, the worst case for the election
        let mut w = World::new(5500 + seed, 2, 3, 2, 1000);
        w.max_latency = 0;
        for s in &mut w.sentinels {
            s.machine.as_mut().unwrap().candidate_stagger = 0;
        }
        settle(&mut w);
        let t0 = w.now;
        w.kill_redis(0);
        assert!(w.run_until(60_000, |w| w.converged()), "seed {seed}: no convergence");
        w.assert_safety();
        if !w.all_events("-failover-abort-not-elected").is_empty() {
            splits += 1;
            // Redis would need election-timeout (10 s) + 2 x failover-timeout (20 s)
            assert!(w.now - t0 < 5000, "seed {seed}: split vote resolved only after {} ms", w.now - t0);
        }
    }
    assert!(splits > 0, "the scenario never produced a split vote: it tests nothing");
}

#[test]
fn clock_jump_enters_tilt_and_takes_no_action() {
    for seed in 0..10 {
        let mut w = World::new(6000 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        // all sentinels' clocks jump 60 s forward: without TILT every instance would look
        // down (no reply for "60 s"); with TILT nothing is acted upon
        for s in &mut w.sentinels {
            s.clock_offset += 60_000;
        }
        w.run(5_000);
        assert_eq!(w.all_events("+tilt").len(), 3, "seed {seed}");
        assert!(w.all_events("+odown").is_empty(), "seed {seed}: acted during tilt");
        assert!(w.promotions.is_empty());
        w.run(30_000);
        assert_eq!(w.all_events("-tilt").len(), 3, "seed {seed}");
        // backwards jump too
        w.sentinels[1].clock_offset -= 10_000;
        w.run(1000);
        assert_eq!(w.all_events("+tilt").len(), 4);
        assert!(w.promotions.is_empty());
        assert!(w.converged());
    }
}

#[test]
fn replica_with_priority_zero_is_never_promoted() {
    for seed in 0..SEEDS {
        let mut w = World::new(7000 + seed, 2, 3, 2, 1000);
        w.redis[1].priority = 0;
        settle(&mut w);
        let good = w.redis[2].addr.clone();
        w.kill_redis(0);
        assert!(w.run_until(20_000, |w| w.converged()), "seed {seed}");
        assert_eq!(w.masters(), vec![good], "seed {seed}");
        // with only priority-0 replicas left, failover aborts and nothing is promoted
        let mut w = World::new(7500 + seed, 1, 3, 2, 1000);
        w.redis[1].priority = 0;
        settle(&mut w);
        w.kill_redis(0);
        w.run(15_000);
        assert!(w.promotions.is_empty(), "seed {seed}");
        assert!(!w.all_events("-failover-abort-no-good-slave").is_empty(), "seed {seed}");
    }
}

#[test]
fn master_returning_during_failover_ends_with_one_master() {
    for seed in 0..SEEDS {
        let mut w = World::new(8000 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        w.kill_redis(0);
        // come back right when someone starts trying
        assert!(w.run_until(10_000, |w| !w.all_events("+try-failover").is_empty()), "seed {seed}");
        let extra = seed * 7 % 200;
        w.run(extra);
        w.restart_redis(0);
        assert!(w.run_until(60_000, |w| w.converged()), "seed {seed}: two masters or disagreement: {:?}", w.masters());
        w.assert_safety();
    }
}

#[test]
fn manual_failover_moves_the_master() {
    for seed in 0..10 {
        let mut w = World::new(9000 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        let now = w.now;
        let m = w.sentinels[0].machine.as_mut().unwrap();
        m.failover(now, "mymaster").unwrap();
        assert!(w.run_until(20_000, |w| w.converged() && w.masters()[0] != w.redis[0].addr), "seed {seed}");
        // the old master (still running) is now a replica of the new one
        assert!(matches!(w.redis[0].role, SimRole::Replica(_)));
        w.assert_safety();
    }
}

#[test]
#[ignore]
fn debug_trace() {
    let seed: u64 = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut w = World::new(seed, 2, 3, 2, 1000);
    settle(&mut w);
    let t0 = w.now;
    w.kill_redis(0);
    w.run(20000);
    for (i, s) in w.sentinels.iter().enumerate() {
        for (t, k, m) in &s.events {
            if *t >= t0 {
                println!("{i} +{} {k} {m}", t - t0);
            }
        }
    }
}

#[test]
fn two_candidates_in_one_epoch_one_vote_each() {
    use redis_failover::sentinel::config;
    use redis_failover::sentinel::machine::Sentinel;
    let cfg = config::parse("sentinel monitor mymaster 10.0.0.1 6379 2\n").unwrap();
    let mut voter = Sentinel::new(&cfg, 26379, 1, 1000);
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    // both candidates ask in epoch 1: the first gets the vote, the second is told about it
    assert_eq!(voter.is_master_down_by_addr(1000, "10.0.0.1", 6379, 1, &a), (false, a.clone(), 1));
    assert_eq!(voter.is_master_down_by_addr(1001, "10.0.0.1", 6379, 1, &b), (false, a.clone(), 1));
    // a later epoch may be voted again, an older one never
    assert_eq!(voter.is_master_down_by_addr(1002, "10.0.0.1", 6379, 2, &b), (false, b.clone(), 2));
    assert_eq!(voter.is_master_down_by_addr(1003, "10.0.0.1", 6379, 1, &a), (false, b.clone(), 2));
    assert_eq!(voter.current_epoch, 2);
    // unknown master address: not down, no vote
    assert_eq!(voter.is_master_down_by_addr(1004, "10.9.9.9", 6379, 3, &a), (false, "*".to_string(), 0));
    assert_eq!(voter.current_epoch, 2);
}

#[test]
fn a_sentinel_that_knows_no_replica_does_not_lead() {
    // the sentinel that would stand first (lowest run id) has not seen any replica yet (its
    // master INFO came before they connected): another one must lead, with no abort and
    // no 2 x failover-timeout wait
    for seed in 0..SEEDS {
        let mut w = World::new(9900 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        let first = (0..w.sentinels.len()).min_by_key(|i| w.sentinels[*i].machine.as_ref().unwrap().myid.clone()).unwrap();
        w.sentinels[first].machine.as_mut().unwrap().masters[0].replicas.clear();
        w.kill_redis(0);
        assert!(w.run_until(5_000, |w| w.converged()), "seed {seed}");
        assert!(w.all_events("-failover-abort-no-good-slave").is_empty(), "seed {seed}");
    }
}

#[test]
fn a_second_failover_soon_after_the_first_does_not_wait_for_failover_timeout() {
    // Redis clears the failover timer when the master address changes; a sentinel that kept
    // it would hold the next failover back until 2 x failover-timeout (here 20 s) after the
    // first one started, however soon the new master dies.
    for seed in 0..SEEDS {
        let mut w = World::new(9500 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        w.kill_redis(0);
        assert!(w.run_until(20_000, |w| w.converged()), "seed {seed}: first failover");
        let first_master = w.masters()[0].clone();
        w.run(2000);
        let second = w.redis_idx(&first_master).unwrap();
        w.kill_redis(second);
        let killed_at = w.now;
        assert!(
            w.run_until(20_000, |w| w.converged() && w.masters()[0] != first_master),
            "seed {seed}: no second failover"
        );
        let switched = w.now - killed_at;
        assert!(switched < 5000, "seed {seed}: second failover took {switched} ms");
        w.assert_safety();
    }
}

#[test]
fn forced_failovers_by_each_sentinel_in_turn_stay_settled() {
    // as the mixed interop group does: a crash, then SENTINEL FAILOVER asked to each
    // sentinel in turn; each promotes exactly one replica and nothing moves afterwards
    for seed in 0..SEEDS {
        let mut w = World::new(12_000 + seed, 2, 3, 2, 1000);
        w.max_latency = (seed % 5) * 10;
        settle(&mut w);
        w.kill_redis(0);
        assert!(w.run_until(30_000, |w| w.converged()), "seed {seed}: crash");
        for i in 0..w.sentinels.len() {
            let before = w.masters()[0].clone();
            let promotions = w.promotions.len();
            // right after a switch the sentinel may answer NOGOODSLAVE until replica INFO is fresh
            assert!(ask_failover(&mut w, i), "seed {seed}: failover {i} refused");
            assert!(w.run_until(30_000, |w| w.converged() && w.masters()[0] != before), "seed {seed}: forced {i}: {:?} {:?}", w.masters(), w.sentinel_views());
            w.run(30_000);
            assert!(w.converged(), "seed {seed}: after forced {i}: {:?} {:?}", w.masters(), w.sentinel_views());
            assert_eq!(w.promotions.len(), promotions + 1, "seed {seed}: forced {i}: extra promotions");
        }
        w.assert_safety();
    }
}

#[test]
fn a_slow_first_reply_of_a_new_master_does_not_start_another_failover() {
    // Seen with Debian's redis-sentinel in the mixed interop group: right after a switch a
    // sentinel counted the new master as down (its first PING answered late) and, with the
    // peers' "master down" replies of the previous election still fresh, reached ODOWN at
    // once and failed the new master over again, re-promoting the old master. Our reset
    // forgets those replies (and never picks a replica that reports role master), so a
    // forced failover right after a crash failover stays the one failover.
    for seed in 0..SEEDS {
        let mut w = World::new(13_000 + seed, 2, 3, 2, 1000);
        settle(&mut w);
        w.kill_redis(0);
        assert!(w.run_until(30_000, |w| w.converged()), "seed {seed}: crash");
        let before = w.masters()[0].clone();
        let promotions = w.promotions.len();
        let odowns = w.all_events("+odown").len();
        assert!(ask_failover(&mut w, 0), "seed {seed}: failover refused");
        assert!(w.run_until(10_000, |w| w.promotions.len() > promotions), "seed {seed}: nothing promoted");
        let promoted = w.promotions.last().unwrap().target.clone();
        // sentinel 2 cannot reach the promoted replica for a while: it sees it down
        let s2 = w.sentinels[2].addr.clone();
        w.partition(&s2, &promoted);
        w.run(2500);
        w.heal();
        let sdown = format!("master {} {} {}", sim::MASTER_NAME, promoted.host, promoted.port);
        assert!(w.all_events("+sdown").iter().any(|e| e.0 == 2 && e.2 == sdown), "seed {seed}: sentinel 2 never saw the new master down");
        assert!(w.run_until(30_000, |w| w.converged() && w.masters()[0] == promoted), "seed {seed}: {:?} {:?}", w.masters(), w.sentinel_views());
        w.run(20_000);
        assert!(w.converged() && w.masters() == vec![promoted.clone()], "seed {seed}: {:?}", w.masters());
        assert_eq!(w.promotions.len(), promotions + 1, "seed {seed}: another failover after the forced one");
        assert_eq!(w.all_events("+odown").len(), odowns, "seed {seed}: ODOWN of the new master from stale replies");
        assert_ne!(promoted, before);
        w.assert_safety();
    }
}

/// Redis 7.0.15's sentinel suite, 00-base "Failover works if we configure for absolute
/// agreement": the replica promoted by the previous failover dies while its leader still
/// reconfigures the other replicas (one of them cannot reach it). The other sentinels
/// already follow the promoted replica; with quorum = every sentinel, the leader must end
/// its failover (at failover-timeout, as on any timeout) and join them, or no sentinel
/// ever reaches ODOWN again and no later failover happens.
#[test]
fn leader_whose_promoted_replica_dies_mid_reconfiguration_ends_its_failover() {
    use redis_failover::sentinel::machine::FailoverState;
    let mut exercised = 0;
    for seed in 0..SEEDS {
        let mut w = World::new(9000 + seed, 3, 3, 3, 1000);
        settle(&mut w);
        w.kill_redis(0);
        assert!(w.run_until(20_000, |w| !w.promotions.is_empty()), "seed {seed}: no promotion");
        let promoted = w.promotions[0].target.clone();
        let leader = w.promotions[0].by;
        let pi = w.redis_idx(&promoted).unwrap();
        // one replica cannot reach the promoted one: its reconfiguration cannot complete
        let cut = (1..w.redis.len()).find(|&j| j != pi).unwrap();
        let cut_addr = w.redis[cut].addr.clone();
        w.partition(&promoted, &cut_addr);
        let followers_switched = w.run_until(5_000, |w| {
            let in_reconf = w.sentinels[leader].machine.as_ref().unwrap().masters[0].failover_state == FailoverState::ReconfSlaves;
            let others = w.sentinels.iter().enumerate().filter(|(i, _)| *i != leader).all(|(_, s)| s.machine.as_ref().unwrap().masters[0].current_addr() == promoted);
            in_reconf && others
        });
        if !followers_switched {
            // the leader finished before the cut took effect: not the case under test
            continue;
        }
        exercised += 1;
        w.kill_redis(pi);
        w.heal();
        assert!(
            w.run_until(120_000, |w| w.converged()),
            "seed {seed}: no failover after the promoted replica died (leader {leader} state {:?}, views {:?})",
            w.sentinels[leader].machine.as_ref().unwrap().masters[0].failover_state,
            w.sentinel_views()
        );
        w.assert_safety();
        assert!(!w.all_events("+failover-end-for-timeout").is_empty(), "seed {seed}: the leader's failover did not end on timeout");
    }
    assert!(exercised > SEEDS / 2, "the promoted replica died mid-reconfiguration in only {exercised} runs: it tests too little");
}

/// The master killed and restarted at once, then loading its dataset (PING answers
/// -LOADING, INFO shows a new run id) for `loading_ms`, every sentinel with
/// master-reboot-down-after-period `period` and a down-after no restart reaches.
/// Returns the world after `watch_ms` more.
fn master_reboot(seed: u64, loading_ms: u64, period: u64, watch_ms: u64) -> World {
    let mut w = World::new(seed, 2, 3, 2, 60_000);
    for s in &mut w.sentinels {
        s.machine.as_mut().unwrap().masters[0].cfg.master_reboot_down_after_ms = period;
    }
    settle(&mut w);
    w.kill_redis(0);
    w.restart_redis_loading(0, loading_ms);
    w.run(watch_ms);
    w
}

/// Redis 7.0.15's sentinel suite 12-master-reboot: a master that comes back from a restart
/// loading its dataset for longer than master-reboot-down-after-period is down (Redis's
/// SRI_MASTER_REBOOT) and is failed over, although it answers every PING (-LOADING).
#[test]
fn master_loading_longer_than_reboot_period_is_failed_over() {
    for seed in 0..SEEDS {
        let w = master_reboot(9500 + seed, 30_000, 5_000, 25_000);
        assert!(!w.promotions.is_empty(), "seed {seed}: no failover of the master loading after its reboot");
        assert!(!w.all_events("+reboot").is_empty(), "seed {seed}: the restart was not seen");
        w.assert_safety();
    }
}

/// ... while one that answers PONG again within the period was only restarted: the flag is
/// cleared by the PONG, it is never down and nothing is failed over. Without the period
/// (0, the default) a reboot never makes a master down.
#[test]
fn master_rebooting_within_the_period_or_without_one_stays() {
    for seed in 0..SEEDS {
        for (loading, period) in [(1_000, 5_000), (30_000, 0)] {
            let w = master_reboot(9600 + seed, loading, period, 40_000);
            assert!(!w.all_events("+reboot").is_empty(), "seed {seed}: the restart was not seen");
            assert!(w.all_events("+sdown").iter().all(|(_, _, e)| !e.starts_with("master")), "seed {seed} loading {loading} period {period}: {:?}", w.all_events("+sdown"));
            assert!(w.promotions.is_empty(), "seed {seed} loading {loading} period {period}: failed over");
        }
    }
}
