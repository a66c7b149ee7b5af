//! Mixed sentinel groups: Debian redis-sentinel and rf-sentinel watching the same servers
//! agree on the master after a crash and after a forced failover, whoever leads.

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::time::Duration;

use procs::*;

fn mixed_group(kinds: [SentinelKind; 3]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = if std::env::var_os("RF_TEST_KEEP").is_some() { tempfile::TempDir::with_prefix("rf-interop-").unwrap().keep() } else { tmp.path().to_path_buf() };
    let dir = &dir;
    if std::env::var_os("RF_TEST_KEEP").is_some() {
        eprintln!("{kinds:?} in {}", dir.display());
    }
    let (ports, mut servers) = start_servers(dir.as_path(), 2);
    let mut master = Some(servers.remove(0));
    let o = SentinelOpts { quorum: 2, down_after: 1000, failover_timeout: 10000, daemonize: false };
    let (sports, _s) = start_sentinels(&kinds, dir.as_path(), ports[0], &o);
    assert!(
        wait_until(Duration::from_secs(20), || sports.iter().all(|sp| masters(*sp).first().is_some_and(|m| m["num-slaves"] == "2" && m["num-other-sentinels"] == "2"))),
        "mixed group did not discover itself: {:?}",
        sports.iter().map(|p| masters(*p)).collect::<Vec<_>>()
    );
    assert!(wait_until(Duration::from_secs(20), || ports[1..].iter().all(|p| role(*p).is_some_and(|r| r.2))));

    // crash the master: all sentinels agree on one of the replicas
    master.take();
    let live = &ports[1..];
    let (first, epoch) = settled(&sports, live, 1, Duration::from_secs(45)).unwrap_or_else(|| {
        panic!("no agreed failover after the crash: {}\n{}", views(&sports, &ports), log_tails(dir, &ports, &sports))
    });
    assert_ne!(first, ports[0]);
    assert!(epoch >= 1);

    // a forced failover asked to each kind of sentinel in turn: the others follow
    for (i, sp) in sports.iter().enumerate() {
        if i > 0 && kinds[i] == kinds[i - 1] {
            continue;
        }
        // As an operator would: let the previous failover finish everywhere first. A Redis
        // sentinel may run one more failover of its own: after a switch it counts the new
        // master's link as unanswered until its first PONG, reconnects at most once per
        // second (so with down-after 1000 the PONG can come too late), and the last
        // election's "master down" replies stay valid for 5 s, giving ODOWN at once. Its
        // replica selection ignores the reported role, so after a forced failover it may
        // re-promote the old master, and the replica just promoted is told to follow it
        // ~10 s later (seen here; once taken for an rf-sentinel hello bug, but all
        // sentinels, ours included, then follow that newer epoch as they must). So
        // "settled" is read anew rather than assumed.
        let (before, epoch_before) = settled(&sports, live, 0, Duration::from_secs(60)).unwrap_or_else(|| {
            panic!("group did not settle before failover {i}: {}\n{}", views(&sports, &ports), log_tails(dir, &ports, &sports))
        });
        // right after a switch Redis (and we) may still answer INPROG / NOGOODSLAVE for a
        // moment (reconfiguration running, replica INFO not refreshed yet)
        let mut reply: redis::RedisResult<String> = Ok(String::new());
        let accepted = wait_until(Duration::from_secs(25), || {
            reply = sentinel_cmd(*sp, &["failover", "mymaster"]);
            if reply.is_err() {
                std::thread::sleep(Duration::from_millis(200));
            }
            reply.is_ok()
        });
        assert!(accepted, "sentinel {i} ({:?}) refused FAILOVER: {reply:?}", kinds[i]);
        assert_eq!(reply.as_deref(), Ok("OK"));
        // every sentinel takes a newer configuration: a master other than `before` at a
        // higher config epoch, and the replicas follow it
        let (after, epoch_after) = settled(&sports, live, epoch_before + 1, Duration::from_secs(60)).unwrap_or_else(|| {
            panic!("forced failover by {:?} not followed: {}\n{}", kinds[i], views(&sports, &ports), log_tails(dir, &ports, &sports))
        });
        assert!(epoch_after > epoch_before);
        assert!(after != before || epoch_after > epoch_before + 1, "forced failover by {:?} kept {before} at epoch {epoch_after}", kinds[i]);
    }
}

/// Waits until the group is settled at config epoch >= `min_epoch`: every sentinel names
/// the same master at the same config epoch with no failover in progress, that master
/// reports role master, and every other live server replicates from it with its link up.
/// Returns (master port, config epoch).
fn settled(sports: &[u16], live: &[u16], min_epoch: u64, max: Duration) -> Option<(u16, u64)> {
    let mut found = None;
    let ok = wait_until(max, || {
        found = None;
        let mut agreed: Option<(u16, u64)> = None;
        for sp in sports {
            let ms = masters(*sp);
            let Some(m) = ms.first() else { return false };
            if m["flags"].contains("failover_in_progress") {
                return false;
            }
            let (Ok(port), Ok(epoch)) = (m["port"].parse::<u16>(), m["config-epoch"].parse::<u64>()) else { return false };
            if agreed.is_some_and(|a| a != (port, epoch)) {
                return false;
            }
            agreed = Some((port, epoch));
        }
        let Some((master, epoch)) = agreed else { return false };
        if epoch < min_epoch || !role(master).is_some_and(|r| r.0 == "master") {
            return false;
        }
        let followers_ok = live.iter().filter(|p| **p != master).all(|p| role(*p).is_some_and(|r| r.0 == "slave" && r.1 == Some(master) && r.2));
        if followers_ok {
            found = agreed;
        }
        followers_ok
    });
    if ok { found } else { None }
}

/// Each sentinel's (flags, config epoch, master port) and each server's role, for failure messages.
fn views(sports: &[u16], ports: &[u16]) -> String {
    let s: Vec<_> = sports.iter().map(|p| masters(*p).first().map(|m| (m["flags"].clone(), m["config-epoch"].clone(), m["port"].clone()))).collect();
    let r: Vec<_> = ports.iter().map(|p| (*p, role(*p))).collect();
    format!("sentinels {s:?}\nservers {r:?}")
}

/// The last lines of every server's and sentinel's log, for failure messages: the
/// sentinels' event lines say who reconfigured whom.
fn log_tails(dir: &std::path::Path, ports: &[u16], sports: &[u16]) -> String {
    let mut out = String::new();
    let files = ports.iter().map(|p| format!("server-{p}.log")).chain(sports.iter().map(|p| format!("sentinel-{p}.log")));
    for name in files {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("--- {name}\n{}\n", lines[lines.len().saturating_sub(40)..].join("\n")));
    }
    out
}

#[test]
fn two_debian_sentinels_and_one_rf_sentinel() {
    mixed_group([SentinelKind::Debian, SentinelKind::Rf, SentinelKind::Debian]);
}

#[test]
fn one_debian_sentinel_and_two_rf_sentinels() {
    mixed_group([SentinelKind::Rf, SentinelKind::Debian, SentinelKind::Rf]);
}
