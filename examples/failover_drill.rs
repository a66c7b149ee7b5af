//! A live failover drill against a running sentinel group (the demo's `--drill`, and the
//! failover benchmark's measuring tool). Works against ours and against Debian's Redis alike.
//!
//! It writes through the master the sentinels name, acknowledging each write with `WAIT 1`,
//! crashes the master (`DEBUG SEGFAULT`, as the seed tutorial does, or SIGKILL by pidfile),
//! measures how long writes fail and when the sentinels switch, restarts the old master and
//! measures how long it takes to rejoin as a replica, then checks every acknowledged write
//! is readable on the new master. With `--rounds N` it does this N times in a row on the
//! same group, each round crashing the master the previous one elected (a second failover
//! soon after a first must be as fast as the first).
//!
//! ```text
//! failover_drill --sentinels 127.0.0.1:16379,127.0.0.1:16380 --master-name redis-cluster \
//!     --restart "rf-server /tmp/demo/{port}/redis.conf" [--kill segfault|sigkill:/path/{port}.pid] [--rounds N]
//! ```
//! Every wait is bounded; the drill gives up after `--timeout` seconds (default 90).

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Connection;

#[path = "support/connect.rs"]
mod support;
use support::connect;

struct Options {
    sentinels: Vec<String>,
    master_name: String,
    restart: Option<String>,
    kill: String,
    timeout: Duration,
    failback: bool,
    rounds: usize,
}

fn parse_options() -> Result<Options, String> {
    let mut opts = Options {
        sentinels: Vec::new(),
        master_name: "mymaster".into(),
        restart: None,
        kill: "segfault".into(),
        timeout: Duration::from_secs(90),
        failback: false,
        rounds: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--sentinels" => opts.sentinels = value()?.split(',').map(str::to_string).collect(),
            "--master-name" => opts.master_name = value()?,
            "--restart" => opts.restart = Some(value()?),
            "--kill" => opts.kill = value()?,
            "--timeout" => opts.timeout = Duration::from_secs(value()?.parse().map_err(|e| format!("--timeout: {e}"))?),
            "--failback" => opts.failback = true,
            "--rounds" => opts.rounds = value()?.parse().ok().filter(|n| *n > 0).ok_or("--rounds needs a positive number")?,
            "--help" | "-h" => return Err("usage: failover_drill --sentinels h:p,... --master-name NAME [--restart CMD-with-{port}] [--kill segfault|sigkill:PIDFILE-with-{port}] [--timeout SECS] [--rounds N] [--failback]".into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if opts.sentinels.is_empty() {
        return Err("--sentinels is required".into());
    }
    Ok(opts)
}

/// The master address most sentinels agree on, if any do.
fn master_by_majority(opts: &Options) -> Option<String> {
    let mut votes: Vec<(String, usize)> = Vec::new();
    for s in &opts.sentinels {
        let Ok(mut conn) = connect(s, Duration::from_millis(300)) else { continue };
        let reply: redis::RedisResult<Option<(String, String)>> =
            redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(&opts.master_name).query(&mut conn);
        if let Ok(Some((host, port))) = reply {
            let addr = format!("{host}:{port}");
            match votes.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, n)) => *n += 1,
                None => votes.push((addr, 1)),
            }
        }
    }
    let majority = opts.sentinels.len() / 2 + 1;
    votes.into_iter().find(|(_, n)| *n >= majority).map(|(a, _)| a)
}

fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap_or(addr)
}

/// Every acknowledged write: its number, the master that acknowledged it, and when.
#[derive(Default)]
struct WriterLog {
    acked: Vec<(u64, String, Instant)>,
}

impl WriterLog {
    fn last_ack_on(&self, addr: &str) -> Option<Instant> {
        self.acked.iter().rev().find(|(_, a, _)| a == addr).map(|(_, _, t)| *t)
    }
    fn first_ack_elsewhere(&self, addr: &str, after: Instant) -> Option<Instant> {
        self.acked.iter().find(|(_, a, t)| a != addr && *t >= after).map(|(_, _, t)| *t)
    }
}

/// Writes `drill:<n>` through the sentinel-named master until told to stop; a write counts
/// as acknowledged only once `WAIT 1` confirms a replica has it.
fn writer(opts: Arc<Options>, stop: Arc<AtomicBool>, log: Arc<Mutex<WriterLog>>) {
    let mut n: u64 = 0;
    let mut conn: Option<(String, Connection)> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = master_by_majority(&opts)
                .and_then(|addr| connect(&addr, Duration::from_millis(500)).ok().map(|c| (addr, c)));
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let (addr, c) = conn.as_mut().expect("connected above");
        n += 1;
        let set: redis::RedisResult<()> = redis::cmd("SET").arg(format!("drill:{n}")).arg(n).query(c);
        let acked = set.is_ok() && matches!(redis::cmd("WAIT").arg(1).arg(500).query::<i64>(c), Ok(r) if r >= 1);
        if acked {
            log.lock().expect("writer log lock").acked.push((n, addr.clone(), Instant::now()));
        } else {
            conn = None;
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn replication_field(addr: &str, field: &str) -> Option<String> {
    let mut conn = connect(addr, Duration::from_millis(300)).ok()?;
    let info: String = redis::cmd("INFO").arg("replication").query(&mut conn).ok()?;
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

fn wait_until<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    while Instant::now() < deadline {
        if let Some(v) = probe() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// What one crash of the master measured.
struct RoundResult {
    new_master: String,
    switch: Duration,
    gap: Duration,
    rejoin: Option<Duration>,
}

/// Crashes the master the sentinels name, waits for the switch and the first write on the
/// new master, then restarts the old one (with `--restart`) and waits for it to rejoin.
fn crash_round(opts: &Options, log: &Mutex<WriterLog>, deadline: Instant) -> Result<RoundResult, String> {
    let old_master = master_by_majority(opts).ok_or("no master agreed by a majority of sentinels")?;
    println!("drill: master is {old_master} (by sentinel majority)");
    let kill_time = Instant::now();
    if let Some(pidfile) = opts.kill.strip_prefix("sigkill:") {
        let path = pidfile.replace("{port}", port_of(&old_master));
        let pid = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let status = Command::new("kill").args(["-9", pid.trim()]).status().map_err(|e| e.to_string())?;
        println!("drill: SIGKILL master pid {} ({status})", pid.trim());
    } else {
        let mut conn = connect(&old_master, Duration::from_secs(1)).map_err(|e| e.to_string())?;
        // A crashing server closes the connection; an error reply means it refused to crash.
        if let Err(e) = redis::cmd("DEBUG").arg("SEGFAULT").query::<()>(&mut conn) {
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) || e.code().is_some() {
                return Err(format!("DEBUG SEGFAULT refused by {old_master}: {e}"));
            }
        }
        println!("drill: DEBUG SEGFAULT sent to {old_master}");
    }

    let new_master = wait_until(deadline, || master_by_majority(opts).filter(|m| *m != old_master))
        .ok_or("sentinels did not switch master in time")?;
    let switch = kill_time.elapsed();
    println!("drill: sentinels switched to {new_master} after {:.2} s", switch.as_secs_f64());

    let first_new = wait_until(deadline, || log.lock().expect("log").first_ack_elsewhere(&old_master, kill_time))
        .ok_or("no write was acknowledged by another master after the crash")?;
    let last_old = log.lock().expect("log").last_ack_on(&old_master).unwrap_or(kill_time);
    let gap = first_new.saturating_duration_since(last_old);
    println!("drill: write gap (last ack by the old master -> first ack by the new one) {:.2} s", gap.as_secs_f64());

    let mut rejoin = None;
    if let Some(restart) = &opts.restart {
        let cmdline = restart.replace("{port}", port_of(&old_master));
        let restarted_at = Instant::now();
        let status = Command::new("sh").arg("-c").arg(&cmdline).status().map_err(|e| e.to_string())?;
        println!("drill: restarted old master: `{cmdline}` ({status})");
        let joined = wait_until(deadline, || {
            let role = replication_field(&old_master, "role")?;
            let link = replication_field(&old_master, "master_link_status")?;
            (role == "slave" && link == "up").then_some(())
        });
        match joined {
            Some(()) => {
                rejoin = Some(restarted_at.elapsed());
                println!("drill: old master rejoined as a replica {:.2} s after restart", restarted_at.elapsed().as_secs_f64());
            }
            None => println!("drill: old master did NOT rejoin as a replica in time"),
        }
    }
    Ok(RoundResult { new_master, switch, gap, rejoin })
}

fn run(opts: Options) -> Result<bool, String> {
    let opts = Arc::new(opts);
    let deadline = Instant::now() + opts.timeout;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let writer_thread = {
        let (o, s, l) = (opts.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || writer(o, s, l))
    };
    let mut results = Vec::new();
    for round in 1..=opts.rounds {
        // let the writer reach the current master first
        std::thread::sleep(Duration::from_secs(if round == 1 { 2 } else { 1 }));
        if opts.rounds > 1 {
            println!("drill: round {round} of {}", opts.rounds);
        }
        println!("drill: {} writes acknowledged so far", log.lock().expect("log").acked.len());
        match crash_round(&opts, &log, deadline) {
            Ok(r) => results.push(r),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                let _ = writer_thread.join();
                return Err(format!("round {round}: {e}"));
            }
        }
    }
    let new_master = results.last().map(|r| r.new_master.clone()).ok_or("no round ran")?;

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    writer_thread.join().map_err(|_| "writer thread panicked")?;

    let acked: Vec<u64> = log.lock().expect("log").acked.iter().map(|(n, _, _)| *n).collect();
    let mut conn = connect(&new_master, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let mut lost = 0usize;
    for chunk in acked.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|n| format!("drill:{n}")).collect();
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query(&mut conn).map_err(|e| e.to_string())?;
        lost += chunk.iter().zip(values).filter(|(n, v)| *v != Some(**n)).count();
    }

    let mut failback_ok = true;
    if opts.failback {
        let mut s = connect(&opts.sentinels[0], Duration::from_secs(1)).map_err(|e| e.to_string())?;
        // Right after a failover the sentinels may still be reconfiguring replicas and answer
        // INPROG; retry for a bounded time as an operator would.
        let retry_until = Instant::now() + Duration::from_secs(30);
        let reply = loop {
            let reply: redis::RedisResult<String> = redis::cmd("SENTINEL").arg("failover").arg(&opts.master_name).query(&mut s);
            match &reply {
                Err(e) if e.code() == Some("INPROG") && Instant::now() < retry_until => std::thread::sleep(Duration::from_millis(200)),
                _ => break reply,
            }
        };
        println!("drill: SENTINEL failover {} -> {:?}", opts.master_name, reply);
        match wait_until(deadline, || master_by_majority(&opts).filter(|m| *m != new_master)) {
            Some(m) => println!("drill: after SENTINEL failover the master is {m}"),
            None => {
                failback_ok = false;
                println!("drill: SENTINEL failover did not move the master in time");
            }
        }
    }

    for (i, r) in results.iter().enumerate() {
        let round = if results.len() > 1 { format!("round={} ", i + 1) } else { String::new() };
        println!("drill: summary: {round}switch_s={:.2} write_gap_s={:.2} rejoin_s={}",
            r.switch.as_secs_f64(), r.gap.as_secs_f64(),
            r.rejoin.map(|d| format!("{:.2}", d.as_secs_f64())).unwrap_or_else(|| "n/a".into()));
    }
    println!("drill: summary: acked_writes={} acked_lost={lost}", acked.len());
    let all_rejoined = opts.restart.is_none() || results.iter().all(|r| r.rejoin.is_some());
    Ok(lost == 0 && failback_ok && all_rejoined)
}

fn main() -> ExitCode {
    let opts = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("drill failed: {e}");
            ExitCode::FAILURE
        }
    }
}
