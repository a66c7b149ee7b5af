//! Crash cycles (issue 14 §4): one group (a master, 2 replicas, 3 sentinels with quorum 2)
//! goes through cycle after cycle of `kill -9` of whatever master the sentinels name, under a
//! writer that counts a write only once `WAIT 1` confirms a replica has it. Every 10th cycle
//! a replica and a sentinel die with the master. The dead are restarted on their ports once
//! the sentinels have switched (servers from their own data directory), and the next cycle
//! starts once the group is healthy again.
//!
//! A run fails when a confirmed write is missing from the final master, when the group is not
//! healthy at the end (one master, every replica linked to it, every sentinel naming it and
//! seeing both replicas and the other sentinels, nothing flagged down), or, with
//! `appendfsync always`, when a server started from a killed master's files lacks a write
//! that master had answered `OK` to.
//!
//! The tests run 10 cycles of ours. `soak` (ignored; `scripts/soak-crash.sh`) runs the same
//! cycles with ours and with Debian's redis-server + redis-sentinel and prints one `CYCLE`
//! line per cycle and a `SUMMARY` per run. Env: SOAK_CYCLES (default 100), SOAK_SYSTEMS
//! (default "rf,debian"), SOAK_PERSISTENCE (default "off,everysec,always").
//!
//! WAIT 1 promises one replica's copy. When the master and a replica die together, the
//! replica killed is the one with the lower replication offset (read once the master is
//! dead): killing the more advanced one could take a confirmed write's only copy with it,
//! which no failover can bring back and which WAIT 1 never promised against.

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use procs::*;

const SENTINELS: usize = 3;
const DOWN_AFTER_MS: u64 = 1000;
/// At most 500 writes/s: 100 cycles of Debian's (about 17 s each) stay under a million keys.
const WRITE_INTERVAL: Duration = Duration::from_millis(2);
/// How long one step of a cycle (a switch, a rejoin, the group settling) may take.
const STEP_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persistence {
    Off,
    Everysec,
    Always,
}

impl Persistence {
    fn parse(s: &str) -> Option<Persistence> {
        match s.trim() {
            "off" => Some(Persistence::Off),
            "everysec" => Some(Persistence::Everysec),
            "always" => Some(Persistence::Always),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Persistence::Off => "off",
            Persistence::Everysec => "everysec",
            Persistence::Always => "always",
        }
    }

    fn server_args(self) -> &'static [&'static str] {
        match self {
            Persistence::Off => &[],
            Persistence::Everysec => &["--appendonly", "yes", "--appendfsync", "everysec"],
            Persistence::Always => &["--appendonly", "yes", "--appendfsync", "always"],
        }
    }
}

/// The programs a run uses: ours or Debian's.
#[derive(Clone, Copy)]
struct System {
    name: &'static str,
    server_bin: &'static str,
    sentinel: SentinelKind,
}

const RF: System = System { name: "rf", server_bin: env!("CARGO_BIN_EXE_rf-server"), sentinel: SentinelKind::Rf };
const DEBIAN: System = System { name: "debian", server_bin: "/usr/bin/redis-server", sentinel: SentinelKind::Debian };

/// What one cycle measured.
struct Cycle {
    number: usize,
    /// The master alone, or the master with a replica and a sentinel.
    with_replica_and_sentinel: bool,
    /// kill -> every living sentinel names another master
    switch_ms: u128,
    /// last confirmed write before the kill -> first one after it
    gap_ms: u128,
    /// restart -> every restarted server is a replica of the master with its link up
    rejoin_ms: u128,
    /// The sentinels failed over once more, without a crash, before the rejoin.
    extra_switch: bool,
    /// Writes the killed master answered OK to (checked against what its files load), and
    /// how many of them the loaded data lacks; None without persistence.
    loaded_check: Option<(usize, usize)>,
}

struct Run {
    system: &'static str,
    persistence: Persistence,
    cycles: Vec<Cycle>,
    /// Why the run stopped early, if it did.
    failure: Option<String>,
    /// The master of a healthy group at the end, or what is wrong with it.
    health: Result<u16, String>,
    confirmed: usize,
    lost: Vec<String>,
}

impl Run {
    fn print(&self) {
        for c in &self.cycles {
            let (checked, missing) = c.loaded_check.map_or(("n/a".to_string(), "n/a".to_string()), |(k, m)| (k.to_string(), m.to_string()));
            println!(
                "CYCLE system={} persistence={} cycle={} killed={} switch_ms={} gap_ms={} rejoin_ms={} loaded_checked={checked} loaded_missing={missing} extra_switch={}",
                self.system,
                self.persistence.name(),
                c.number,
                if c.with_replica_and_sentinel { "master+replica+sentinel" } else { "master" },
                c.switch_ms,
                c.gap_ms,
                c.rejoin_ms,
                u8::from(c.extra_switch),
            );
        }
        println!(
            "SUMMARY system={} persistence={} cycles={} confirmed={} lost={} healthy={} loaded_missing={} failure={} extra_switches={}",
            self.system,
            self.persistence.name(),
            self.cycles.len(),
            self.confirmed,
            self.lost.len(),
            if self.health.is_ok() { "yes" } else { "no" },
            self.cycles.iter().filter_map(|c| c.loaded_check).map(|(_, m)| m).sum::<usize>(),
            self.failure.as_deref().unwrap_or("none").replace(' ', "_"),
            self.cycles.iter().filter(|c| c.extra_switch).count(),
        );
    }

    /// Panics with everything that went wrong: a confirmed write lost, an unhealthy end, a
    /// cycle that did not complete, or (appendfsync always) an acknowledged write not loaded.
    fn assert_ok(&self, expected_cycles: usize) {
        let mut wrong = Vec::new();
        if let Some(f) = &self.failure {
            wrong.push(format!("stopped early: {f}"));
        }
        if self.cycles.len() != expected_cycles {
            wrong.push(format!("{} of {expected_cycles} cycles completed", self.cycles.len()));
        }
        if let Err(e) = &self.health {
            wrong.push(format!("group unhealthy at the end: {e}"));
        }
        if !self.lost.is_empty() {
            wrong.push(format!("{} of {} confirmed writes lost, e.g. {:?}", self.lost.len(), self.confirmed, &self.lost[..self.lost.len().min(5)]));
        }
        if self.persistence == Persistence::Always {
            for c in &self.cycles {
                if let Some((checked, missing)) = c.loaded_check.filter(|(_, m)| *m > 0) {
                    wrong.push(format!("cycle {}: {missing} of {checked} writes the killed master acknowledged are missing from what its files load", c.number));
                }
            }
        }
        // a writer that confirmed next to nothing would make "nothing lost" meaningless
        if self.confirmed < 100 * expected_cycles {
            wrong.push(format!("only {} confirmed writes in {expected_cycles} cycles", self.confirmed));
        }
        assert!(wrong.is_empty(), "{} crash cycles, persistence {}:\n{}", self.system, self.persistence.name(), wrong.join("\n"));
    }
}

/// One data server's place in the group: its port and its own data directory.
fn server_dir(root: &Path, port: u16) -> PathBuf {
    let dir = root.join(format!("server-{port}"));
    std::fs::create_dir_all(&dir).expect("server dir");
    dir
}

fn start_member(sys: System, root: &Path, port: u16, replica_of: Option<u16>, p: Persistence) -> Option<Proc> {
    start_server_on(sys.server_bin, &server_dir(root, port), port, replica_of, p.server_args())
}

fn start_member_on_free_port(sys: System, root: &Path, replica_of: Option<u16>, p: Persistence) -> Proc {
    (0..5)
        .find_map(|_| start_member(sys, root, free_port(), replica_of, p))
        .unwrap_or_else(|| panic!("{}: no data server could start on a free port in 5 attempts", sys.name))
}

fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let mut c = conn(port).ok()?;
    let info: String = redis::cmd("INFO").arg(section).query(&mut c).ok()?;
    info.lines().find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':').map(str::to_string))
}

/// The master when the group is healthy: exactly one server is a master, every other one is
/// its replica with the link up, and every sentinel names it, flags it up, and sees every
/// replica up and every other sentinel. Otherwise what is wrong.
fn group_health(servers: &[u16], sentinels: &[u16]) -> Result<u16, String> {
    let mut master_ports = Vec::new();
    let mut replicas = Vec::new();
    for &p in servers {
        match role(p) {
            None => return Err(format!("server {p} does not answer")),
            Some((r, _, _)) if r == "master" => master_ports.push(p),
            Some((_, m, up)) => replicas.push((p, m, up)),
        }
    }
    let [master] = master_ports[..] else { return Err(format!("masters: {master_ports:?}")) };
    if let Some((p, m, up)) = replicas.iter().find(|(_, m, up)| *m != Some(master) || !*up) {
        return Err(format!("replica {p} follows {m:?} (link up: {up}), not the master {master}"));
    }
    for &s in sentinels {
        let named = master_addr(s);
        if named != Some(master) {
            return Err(format!("sentinel {s} names {named:?}, not {master}"));
        }
        let m = masters(s).into_iter().next().ok_or(format!("sentinel {s}: no master"))?;
        let want = [("flags", "master".to_string()), ("num-slaves", replicas.len().to_string()), ("num-other-sentinels", (sentinels.len() - 1).to_string())];
        if let Some((k, v)) = want.iter().find(|(k, v)| m.get(*k) != Some(v)) {
            return Err(format!("sentinel {s}: {k} is {:?}, expected {v}", m.get(*k)));
        }
        let seen: Vec<HashMap<String, String>> = sentinel_cmd(s, &["replicas", "mymaster"]).map_err(|e| format!("sentinel {s}: {e}"))?;
        if let Some(r) = seen.iter().find(|r| r.get("flags").map(String::as_str) != Some("slave")) {
            return Err(format!("sentinel {s} sees replica {:?} with flags {:?}", r.get("port"), r.get("flags")));
        }
    }
    Ok(master)
}

/// The master every one of `sentinels` names, if they agree.
fn agreed_master(sentinels: &[u16]) -> Option<u16> {
    let named: Vec<Option<u16>> = sentinels.iter().map(|s| master_addr(*s)).collect();
    named[0].filter(|m| named.iter().all(|n| *n == Some(*m)))
}

fn wait_healthy(servers: &[u16], sentinels: &[u16], limit: Duration) -> Result<u16, String> {
    let end = Instant::now() + limit;
    loop {
        match group_health(servers, sentinels) {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// How many of `keys` a server started from a copy of `data_dir` lacks once loaded.
fn missing_after_load(sys: System, data_dir: &Path, scratch: &Path, p: Persistence, keys: &[String]) -> Result<usize, String> {
    let status = Command::new("cp").arg("-a").arg(data_dir).arg(scratch).status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cp -a {} failed", data_dir.display()));
    }
    let server = (0..5).find_map(|_| start_server_on(sys.server_bin, scratch, free_port(), None, p.server_args())).ok_or("the load check server did not start")?;
    if !wait_until(STEP_LIMIT, || info_field(server.port, "persistence", "loading").as_deref() == Some("0")) {
        return Err("the load check server did not finish loading".into());
    }
    let present = {
        let mut c = conn(server.port).map_err(|e| e.to_string())?;
        let mut present = 0;
        for chunk in keys.chunks(500) {
            let vals: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut c).map_err(|e| e.to_string())?;
            present += vals.iter().filter(|v| v.is_some()).count();
        }
        present
    };
    drop(server);
    let _ = std::fs::remove_dir_all(scratch);
    Ok(keys.len() - present)
}

/// The replica (of two) with the lower replication offset once the master is dead and
/// nothing more can arrive.
fn less_advanced_replica(replicas: &[u16]) -> u16 {
    let offset = |p: u16| info_field(p, "replication", "master_repl_offset").and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
    let mut last: Vec<i64> = replicas.iter().map(|p| offset(*p)).collect();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        let now: Vec<i64> = replicas.iter().map(|p| offset(*p)).collect();
        if now == last {
            break;
        }
        last = now;
    }
    let i = (0..replicas.len()).min_by_key(|i| last[*i]).expect("replicas");
    replicas[i]
}

fn crash_cycles(sys: System, persistence: Persistence, cycles: usize) -> Run {
    let root_dir = tempfile::tempdir().expect("tempdir");
    let root = root_dir.path();
    let first = start_member_on_free_port(sys, root, None, persistence);
    let master_port = first.port;
    let mut servers: HashMap<u16, Proc> = HashMap::from([(master_port, first)]);
    for _ in 0..2 {
        let r = start_member_on_free_port(sys, root, Some(master_port), persistence);
        servers.insert(r.port, r);
    }
    let server_ports: Vec<u16> = servers.keys().copied().collect();
    let o = SentinelOpts { quorum: 2, down_after: DOWN_AFTER_MS, failover_timeout: 10000, daemonize: false };
    let (sentinel_ports, sentinel_procs) = start_sentinels(&[sys.sentinel; SENTINELS], root, master_port, &o);
    let mut sentinels: HashMap<u16, Proc> = sentinel_ports.iter().copied().zip(sentinel_procs).collect();

    let mut run = Run { system: sys.name, persistence, cycles: Vec::new(), failure: None, health: Err("not checked".into()), confirmed: 0, lost: Vec::new() };
    if let Err(e) = wait_healthy(&server_ports, &sentinel_ports, STEP_LIMIT) {
        run.failure = Some(format!("the group never became healthy: {e}"));
        return run;
    }
    // let the sentinels refresh the replicas' INFO (offsets, link status) as in a steady state
    std::thread::sleep(Duration::from_millis(1500));
    let writer = Writer::start_paced(sentinel_ports.clone(), "crash", WRITE_INTERVAL);
    // The master and since when it has been the master without a break: writes it
    // acknowledged before then may legitimately be gone (a server that was a replica in
    // between had its data replaced by a sync from another master).
    let mut tenure: (u16, Instant) = (master_port, Instant::now());

    for number in 1..=cycles {
        let outcome = (|| -> Result<Cycle, String> {
            // a healthy group that kept its master through a second of writes (the sentinels
            // may still fail over on their own right after a switch)
            let mut settled = None;
            for _ in 0..5 {
                let master = wait_healthy(&server_ports, &sentinel_ports, STEP_LIMIT).map_err(|e| format!("not healthy before the kill: {e}"))?;
                // a master the sentinels chose on their own: its tenure counts from now
                if tenure.0 != master {
                    tenure = (master, Instant::now());
                }
                std::thread::sleep(Duration::from_millis(1000));
                if agreed_master(&sentinel_ports) == Some(master) {
                    settled = Some(master);
                    break;
                }
            }
            let old = settled.ok_or("the sentinels kept switching masters on their own")?;
            let with_replica_and_sentinel = number % 10 == 0;
            let killed_at = Instant::now();
            servers.remove(&old); // SIGKILL
            let mut dead_servers = vec![old];
            let mut living_sentinels = sentinel_ports.clone();
            if with_replica_and_sentinel {
                let replicas: Vec<u16> = server_ports.iter().copied().filter(|p| *p != old).collect();
                let victim = less_advanced_replica(&replicas);
                servers.remove(&victim);
                dead_servers.push(victim);
                let sentinel = sentinel_ports[(number / 10) % SENTINELS];
                sentinels.remove(&sentinel);
                living_sentinels.retain(|p| *p != sentinel);
            }
            if !wait_until(STEP_LIMIT, || living_sentinels.iter().all(|s| master_addr(*s).is_some_and(|m| !dead_servers.contains(&m)))) {
                return Err(format!("the sentinels did not switch away from {old}"));
            }
            let switch_ms = killed_at.elapsed().as_millis();
            let new_master = master_addr(living_sentinels[0]).ok_or("the master vanished after the switch")?;
            let old_tenure_start = tenure.1;
            tenure = (new_master, Instant::now());

            // what the killed master's own files hold, before it restarts from them
            let loaded_check = match persistence {
                Persistence::Off => None,
                _ => {
                    let acknowledged = writer.set_ok_by(old, old_tenure_start);
                    let scratch = root.join(format!("load-check-{number}"));
                    let missing = missing_after_load(sys, &server_dir(root, old), &scratch, persistence, &acknowledged)?;
                    Some((acknowledged.len(), missing))
                }
            };

            // keep writing a moment on the new master, then restart the dead: the old master
            // from its own config (a master), a replica as the sentinels left it (a replica
            // of the new master), a sentinel from the config it rewrote
            std::thread::sleep(Duration::from_millis(500));
            let restarted_at = Instant::now();
            for &p in &dead_servers {
                let replica_of = (p != old).then_some(new_master);
                let proc = start_member(sys, root, p, replica_of, persistence).ok_or(format!("server {p} could not restart on its port"))?;
                servers.insert(p, proc);
            }
            for &s in sentinel_ports.iter().filter(|s| !living_sentinels.contains(s)) {
                sentinels.insert(s, start_sentinel_from(sys.sentinel, &root.join(format!("sentinel-{s}.conf")), s, None));
            }
            // a replica of whatever master the sentinels name by then: they may have failed
            // over once more on their own (counted, not an error)
            let rejoined = wait_until(STEP_LIMIT, || {
                agreed_master(&living_sentinels).is_some_and(|m| dead_servers.iter().all(|p| role(*p).is_some_and(|r| r.0 == "slave" && r.1 == Some(m) && r.2)))
            });
            if !rejoined {
                return Err(format!("{dead_servers:?} did not rejoin as replicas of the master (sentinels name {:?})", agreed_master(&living_sentinels)));
            }
            let rejoin_ms = restarted_at.elapsed().as_millis();
            let now_master = agreed_master(&living_sentinels);
            let extra_switch = now_master != Some(new_master);
            if let Some(m) = now_master.filter(|_| extra_switch) {
                tenure = (m, Instant::now());
            }
            let gap_ms = writer.snapshot().gap_around(killed_at);
            Ok(Cycle { number, with_replica_and_sentinel, switch_ms, gap_ms, rejoin_ms, extra_switch, loaded_check })
        })();
        match outcome {
            Ok(c) => {
                eprintln!("{} {} cycle {number}: switch {} ms, gap {} ms, rejoin {} ms", sys.name, persistence.name(), c.switch_ms, c.gap_ms, c.rejoin_ms);
                run.cycles.push(c);
            }
            Err(e) => {
                run.failure = Some(format!("cycle {number}: {e}"));
                break;
            }
        }
    }
    let result = writer.finish();
    run.confirmed = result.acked.len();
    run.health = wait_healthy(&server_ports, &sentinel_ports, STEP_LIMIT);
    // the data of the master the sentinels name, healthy group or not
    if let Some(m) = sentinel_ports.iter().find_map(|s| master_addr(*s)) {
        run.lost = missing_keys(m, &result.acked);
    }
    if run.failure.is_some() || run.health.is_err() || !run.lost.is_empty() {
        // the servers' and sentinels' logs and configs, to find out why
        drop((servers, sentinels));
        eprintln!("{} {}: logs kept in {}", sys.name, persistence.name(), root_dir.keep().display());
    }
    run
}

#[test]
fn ten_crash_cycles_without_persistence_lose_no_confirmed_write() {
    let run = crash_cycles(RF, Persistence::Off, 10);
    run.print();
    run.assert_ok(10);
}

#[test]
fn ten_crash_cycles_with_appendfsync_always_lose_nothing_acknowledged() {
    let run = crash_cycles(RF, Persistence::Always, 10);
    run.print();
    run.assert_ok(10);
}

#[test]
#[ignore]
fn soak() {
    let cycles: usize = std::env::var("SOAK_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let systems = std::env::var("SOAK_SYSTEMS").unwrap_or_else(|_| "rf,debian".into());
    let modes = std::env::var("SOAK_PERSISTENCE").unwrap_or_else(|_| "off,everysec,always".into());
    for mode in modes.split(',') {
        let persistence = Persistence::parse(mode).unwrap_or_else(|| panic!("SOAK_PERSISTENCE: unknown mode {mode}"));
        for name in systems.split(',') {
            let sys = match name.trim() {
                "rf" => RF,
                "debian" => DEBIAN,
                other => panic!("SOAK_SYSTEMS: unknown system {other}"),
            };
            crash_cycles(sys, persistence, cycles).print();
        }
    }
}

/// Keys written in pipelines of 20 on `port` until the connection fails: those answered OK.
fn write_until_killed(port: u16) -> Vec<String> {
    let mut acked = Vec::new();
    let Ok(mut c) = conn(port) else { return acked };
    // bounded: the server is killed within a second
    for batch in 0..1_000_000 {
        let keys: Vec<String> = (0..20).map(|i| format!("k{batch}:{i}")).collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("SET").arg(k).arg(1);
        }
        if pipe.query::<Vec<String>>(&mut c).is_err() {
            break;
        }
        acked.extend(keys);
    }
    acked
}

/// A process crash (kill -9) loses nothing a server answered OK to with the AOF on, whatever
/// the fsync policy, while the disk keeps up: Redis write()s the AOF before it replies
/// (under everysec it postpones the write only while a background fsync takes long).
#[test]
fn a_killed_server_loads_every_write_it_acknowledged_under_every_fsync_policy() {
    for sys in [RF, DEBIAN] {
        if sys.name == "debian" && !Path::new(sys.server_bin).exists() {
            eprintln!("skipped Debian's: {} is not installed", sys.server_bin);
            continue;
        }
        for policy in ["always", "everysec", "no"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let args = ["--appendonly", "yes", "--appendfsync", policy];
            let mut server = (0..5).find_map(|_| start_server_on(sys.server_bin, dir.path(), free_port(), None, &args)).expect("server starts");
            let port = server.port;
            let writer = std::thread::spawn(move || write_until_killed(port));
            std::thread::sleep(Duration::from_millis(500));
            server.kill();
            let acked = writer.join().expect("writer");
            let restarted = start_server_on(sys.server_bin, dir.path(), port, None, &args).expect("restart on the same port");
            assert!(wait_until(STEP_LIMIT, || info_field(port, "persistence", "loading").as_deref() == Some("0")));
            let missing = missing_keys(port, &acked);
            assert!(acked.len() > 100, "{} {policy}: only {} writes before the kill", sys.name, acked.len());
            assert!(missing.is_empty(), "{} appendfsync {policy}: {} of {} acknowledged writes lost by a kill -9, e.g. {:?}", sys.name, missing.len(), acked.len(), &missing[..missing.len().min(3)]);
            drop(restarted);
        }
    }
}
