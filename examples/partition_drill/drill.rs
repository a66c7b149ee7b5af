//! Network partitions, Jepsen-style: three "hosts" and a client as network namespaces on a
//! bridge of their own (`rfpartbr0`, 10.77.0.0/24: addresses that exist only there), one
//! server and one sentinel per host (a master and 2 replicas, sentinel quorum 2). Two
//! writers in the client namespace write unique keys at a bounded rate through the master a
//! majority of sentinels names (re-asking only when a write fails, as a Sentinel client
//! does): one counts a plain `SET` reply as acknowledged, the other only a `SET` confirmed by
//! `WAIT 1`. Then a part of the group is cut off for `--partition-secs` (iptables DROP inside
//! the namespaces), healed, the group left to settle, and the acknowledged writes missing
//! from the final master counted.
//!
//! Cases (`--cases`, default all): `master-mrw0` / `master-mrw1` (the master's host cut from
//! the two other hosts, the client still reaching it; `min-replicas-to-write` 0 / 1),
//! `replica` (a replica's host cut from the others), `sentinel` (the master host's sentinel
//! cut from everything), `client` (the client cut from the master). Systems (`--systems`,
//! default `rf,debian`): our rf-server + rf-sentinel, Debian's redis-server + redis-sentinel.
//!
//! Per round: acknowledged writes lost (plain / WAIT 1), the WAIT writer's longest gap, when
//! the sentinels' majority switched, the rejoin after the heal (master cases: the old master
//! a replica of the new one, link up; replica case: the cut replica has the master's offset
//! of the heal), when the group was whole again, and whether the servers' DEBUG DIGESTs agree.
//!
//! ```text
//! partition_drill [--systems rf,debian] [--cases ...] [--partition-secs 10] [--rate 100]
//!                 [--down-after 1000] [--lag-ms 300] [--ack-period-ms 100] [--debian-lag 10] [--check]
//! partition_drill cleanup        # remove what an interrupted run left (the script's trap)
//! ```
//! Needs root and `ip netns`. The top-level process builds the network, runs the rounds as
//! `drive` inside the client namespace, and tears everything down. `--check` exits non-zero
//! when one of our guarantees fails (rf rounds only): a `WAIT 1` write lost; with
//! min-replicas-to-write 1 more than 5% of the plain-acknowledged writes lost; the old master
//! not a replica of the new one within 2 s of the heal; servers whose data differ at the end.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Connection;

#[path = "../support/connect.rs"]
mod support;
use support::connect;

const NS_PREFIX: &str = "rfpart-";
const BRIDGE: &str = "rfpartbr0";
const CLIENT_NS: &str = "rfpart-client";
const CLIENT_IP: &str = "10.77.0.100";
const SUBNET: &str = "10.77.0.0/24";
const HOSTS: usize = 3;
const SERVER_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;
const MASTER_NAME: &str = "mymaster";
/// Sentinels run as `nobody`, so that iptables can cut a sentinel off without its server.
const SENTINEL_UID: u32 = 65534;
/// Who runs the network now (a second run refuses to start; a dead owner's leftovers go).
const OWNER_FILE: &str = "/run/rfpart.owner";
/// Guarantees checked by `--check`.
const MAX_PLAIN_LOST_PCT: f64 = 5.0;
const MAX_REJOIN: Duration = Duration::from_secs(2);

fn host_ns(i: usize) -> String {
    format!("{NS_PREFIX}h{}", i + 1)
}

fn host_ip(i: usize) -> String {
    format!("10.77.0.{}", 11 + i)
}

fn host_of_ip(ip: &str) -> Option<usize> {
    (0..HOSTS).find(|&i| host_ip(i) == ip)
}

// ------------------------------------------------------------------ options

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Rf,
    Debian,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Rf => "rf",
            System::Debian => "debian",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// The master's host from the two other hosts (the client still reaches it).
    Master,
    /// A replica's host from the two other hosts.
    Replica,
    /// The master host's sentinel from everything.
    Sentinel,
    /// The client from the master.
    Client,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    cut: Cut,
    min_replicas: u32,
}

const CASES: &[Case] = &[
    Case { name: "master-mrw0", cut: Cut::Master, min_replicas: 0 },
    Case { name: "master-mrw1", cut: Cut::Master, min_replicas: 1 },
    Case { name: "replica", cut: Cut::Replica, min_replicas: 1 },
    Case { name: "sentinel", cut: Cut::Sentinel, min_replicas: 1 },
    Case { name: "client", cut: Cut::Client, min_replicas: 1 },
];

#[derive(Clone, Debug)]
struct Options {
    systems: Vec<System>,
    cases: Vec<Case>,
    partition: Duration,
    rate: u32,
    down_after_ms: u64,
    lag_ms: u64,
    /// Debian's `min-replicas-max-lag` (whole seconds; Redis's default 10).
    debian_lag_secs: u64,
    ack_period_ms: u64,
    check: bool,
    rf_server: PathBuf,
    rf_sentinel: PathBuf,
    /// The arguments as given, passed on to `drive`.
    raw: Vec<String>,
}

const USAGE: &str = "usage: partition_drill [--systems rf,debian] [--cases master-mrw0,master-mrw1,replica,sentinel,client] \
[--partition-secs N] [--rate WRITES-PER-S] [--down-after MS] [--lag-ms MS] [--ack-period-ms MS] [--debian-lag SECS] \
[--rf-server PATH] [--rf-sentinel PATH] [--check]  |  partition_drill cleanup";

fn parse_options(args: &[String]) -> Result<Options, String> {
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .unwrap_or_default();
    let mut opts = Options {
        systems: vec![System::Rf, System::Debian],
        cases: CASES.to_vec(),
        partition: Duration::from_secs(10),
        rate: 100,
        down_after_ms: 1000,
        lag_ms: 300,
        debian_lag_secs: 10,
        ack_period_ms: 100,
        check: false,
        rf_server: bin_dir.join("rf-server"),
        rf_sentinel: bin_dir.join("rf-sentinel"),
        raw: args.to_vec(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--systems" => {
                opts.systems = value()?
                    .split(',')
                    .map(|s| match s {
                        "rf" => Ok(System::Rf),
                        "debian" => Ok(System::Debian),
                        other => Err(format!("unknown system {other}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--cases" => {
                opts.cases = value()?
                    .split(',')
                    .map(|s| CASES.iter().find(|c| c.name == s).copied().ok_or(format!("unknown case {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--partition-secs" => opts.partition = Duration::from_secs(number(value()?)?.max(1)),
            "--rate" => opts.rate = number(value()?)?.clamp(1, 1000) as u32,
            "--down-after" => opts.down_after_ms = number(value()?)?.max(100),
            "--lag-ms" => opts.lag_ms = number(value()?)?,
            "--debian-lag" => opts.debian_lag_secs = number(value()?)?,
            "--ack-period-ms" => opts.ack_period_ms = number(value()?)?.max(10),
            "--rf-server" => opts.rf_server = PathBuf::from(value()?),
            "--rf-sentinel" => opts.rf_sentinel = PathBuf::from(value()?),
            "--check" => opts.check = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(opts)
}

// ------------------------------------------------------------------ the network

/// Runs a command to completion; its stderr on failure.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

fn our_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .map(str::to_string)
        .collect()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip").args(["link", "show", name]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The root namespace's end of member `i`'s veth pair (the other end is in its namespace).
fn outer_veth(i: usize) -> String {
    format!("rfpartv{i}")
}

/// Our links in the root namespace: the bridge and the veth ends (the kernel removes a
/// deleted namespace's veths asynchronously, so they can outlive it for a moment).
fn our_links() -> Vec<String> {
    [BRIDGE.to_string()].into_iter().chain((0..=HOSTS).map(outer_veth)).filter(|l| link_exists(l)).collect()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills what runs in our namespaces (servers and sentinels of an interrupted run, all
/// started by this tool), deletes them and the bridge.
fn teardown() {
    for ns in our_namespaces() {
        let out = Command::new("ip").args(["netns", "pids", &ns]).output().map(|o| o.stdout).unwrap_or_default();
        for pid in String::from_utf8_lossy(&out).split_whitespace() {
            let _ = run("kill", &["-9", pid]);
        }
        let _ = run("ip", &["netns", "del", &ns]);
    }
    for link in our_links() {
        let _ = run("ip", &["link", "del", &link]);
    }
    let _ = std::fs::remove_file(OWNER_FILE);
}

/// `cleanup`: what an interrupted run left, unless a live run owns it.
fn cleanup() -> Result<bool, String> {
    if let Some(pid) = std::fs::read_to_string(OWNER_FILE).ok().and_then(|s| s.trim().parse::<u32>().ok()) {
        if pid_alive(pid) {
            return Err(format!("a partition drill (pid {pid}) is running; not touching its network"));
        }
    }
    teardown();
    Ok(true)
}

/// Claims the network for this process: refuses while another live run owns it, removes the
/// leftovers of a dead one.
fn claim() -> Result<(), String> {
    if let Ok(owner) = std::fs::read_to_string(OWNER_FILE) {
        if let Ok(pid) = owner.trim().parse::<u32>() {
            if pid != std::process::id() && pid_alive(pid) {
                return Err(format!("another partition drill (pid {pid}) is running ({OWNER_FILE})"));
            }
        }
    }
    if !our_namespaces().is_empty() || !our_links().is_empty() {
        eprintln!("partition: removing the leftovers of an earlier run ({NS_PREFIX}* namespaces, {BRIDGE}, veths)");
        teardown();
    }
    std::fs::write(OWNER_FILE, std::process::id().to_string()).map_err(|e| format!("{OWNER_FILE}: {e}"))
}

/// The bridge, three host namespaces and the client's, each with a veth on the bridge.
fn setup_network() -> Result<(), String> {
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    let members: Vec<(String, String)> =
        (0..HOSTS).map(|i| (host_ns(i), host_ip(i))).chain([(CLIENT_NS.to_string(), CLIENT_IP.to_string())]).collect();
    for (i, (ns, ip)) in members.iter().enumerate() {
        let (outer, inner) = (outer_veth(i), format!("rfparti{i}"));
        run("ip", &["netns", "add", ns])?;
        run("ip", &["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
        run("ip", &["link", "set", &outer, "master", BRIDGE, "up"])?;
        run("ip", &["link", "set", &inner, "netns", ns])?;
        in_ns(ns, "ip", &["addr", "add", &format!("{ip}/24"), "dev", &inner])?;
        in_ns(ns, "ip", &["link", "set", &inner, "up"])?;
        in_ns(ns, "ip", &["link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Top level: claim, build, run the rounds inside the client namespace, tear down.
fn orchestrate(opts: &Options) -> Result<bool, String> {
    if !nix_is_root() {
        return Err("needs root (network namespaces, iptables)".into());
    }
    run("ip", &["netns", "list"]).map_err(|e| format!("no `ip netns`: {e}"))?;
    claim()?;
    let result = setup_network().and_then(|()| {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // the same executable (the example, or the test that includes this file) as `drive`
        let mut args: Vec<String> = vec!["netns".into(), "exec".into(), CLIENT_NS.into(), exe.display().to_string(), "drive".into()];
        args.extend(opts.raw.iter().cloned());
        Command::new("ip").args(&args).status().map_err(|e| e.to_string()).map(|s| s.success())
    });
    teardown();
    result
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

// ------------------------------------------------------------------ the firewall

/// Applies `cut` with iptables rules inside the namespaces; returns the namespaces touched.
fn apply_cut(cut: Cut, master: usize) -> Result<Vec<String>, String> {
    let others = |me: usize| (0..HOSTS).filter(move |&j| j != me).map(host_ip);
    let isolate_host = |me: usize| -> Result<Vec<String>, String> {
        let ns = host_ns(me);
        for peer in others(me) {
            in_ns(&ns, "iptables", &["-w", "-I", "INPUT", "-s", &peer, "-j", "DROP"])?;
            in_ns(&ns, "iptables", &["-w", "-I", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
        }
        Ok(vec![ns])
    };
    match cut {
        Cut::Master => isolate_host(master),
        Cut::Replica => isolate_host(cut_replica(master)),
        Cut::Sentinel => {
            let ns = host_ns(master);
            let port = SENTINEL_PORT.to_string();
            let uid = SENTINEL_UID.to_string();
            in_ns(&ns, "iptables", &["-w", "-I", "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"])?;
            in_ns(&ns, "iptables", &["-w", "-I", "OUTPUT", "-m", "owner", "--uid-owner", &uid, "-d", SUBNET, "-j", "DROP"])?;
            Ok(vec![ns])
        }
        Cut::Client => {
            let ip = host_ip(master);
            in_ns(CLIENT_NS, "iptables", &["-w", "-I", "INPUT", "-s", &ip, "-j", "DROP"])?;
            in_ns(CLIENT_NS, "iptables", &["-w", "-I", "OUTPUT", "-d", &ip, "-j", "DROP"])?;
            Ok(vec![CLIENT_NS.to_string()])
        }
    }
}

fn heal(namespaces: &[String]) -> Result<(), String> {
    for ns in namespaces {
        in_ns(ns, "iptables", &["-w", "-F", "INPUT"])?;
        in_ns(ns, "iptables", &["-w", "-F", "OUTPUT"])?;
    }
    Ok(())
}

// ------------------------------------------------------------------ the group

/// The processes of one round, killed on drop.
struct Group {
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Group {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Group {
    fn start(system: System, case: &Case, opts: &Options) -> Result<Group, String> {
        let dir = tempfile::Builder::new().prefix("rfpart-").tempdir().map_err(|e| e.to_string())?;
        let mut group = Group { children: Vec::new(), dir };
        // tempdir is 0700: let the sentinels (nobody) through to their own directories
        chmod_open(group.dir.path())?;
        let (server_bin, sentinel_bin) = match system {
            System::Rf => (opts.rf_server.clone(), opts.rf_sentinel.clone()),
            System::Debian => (PathBuf::from("/usr/bin/redis-server"), PathBuf::from("/usr/bin/redis-sentinel")),
        };
        for i in 0..HOSTS {
            let host_dir = group.dir.path().join(format!("h{}", i + 1));
            std::fs::create_dir_all(&host_dir).map_err(|e| e.to_string())?;
            let conf = host_dir.join("redis.conf");
            std::fs::write(&conf, server_conf(system, case, opts, i, &host_dir)).map_err(|e| e.to_string())?;
            group.spawn(&host_ns(i), &[&server_bin.display().to_string(), &conf.display().to_string()])?;
        }
        // the sentinels, as nobody, in a directory of their own they can rewrite
        for i in 0..HOSTS {
            let sdir = group.dir.path().join(format!("s{}", i + 1));
            std::fs::create_dir_all(&sdir).map_err(|e| e.to_string())?;
            let conf = sdir.join("sentinel.conf");
            std::fs::write(&conf, sentinel_conf(opts, i, &sdir)).map_err(|e| e.to_string())?;
            chmod_open(&sdir)?;
            chmod_open(&conf)?;
            let uid = format!("--reuid={SENTINEL_UID}");
            let gid = format!("--regid={SENTINEL_UID}");
            group.spawn(
                &host_ns(i),
                &["setpriv", &uid, &gid, "--clear-groups", &sentinel_bin.display().to_string(), &conf.display().to_string()],
            )?;
        }
        Ok(group)
    }

    fn spawn(&mut self, ns: &str, argv: &[&str]) -> Result<(), String> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", argv.join(" ")))?;
        self.children.push(child);
        Ok(())
    }

    fn log_tails(&self) -> String {
        let mut s = String::new();
        for name in ["h1/server.log", "h2/server.log", "h3/server.log", "s1/sentinel.log", "s2/sentinel.log", "s3/sentinel.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let _ = writeln!(s, "--- {name}");
            for l in &lines[lines.len().saturating_sub(15)..] {
                let _ = writeln!(s, "{l}");
            }
        }
        s
    }
}

fn chmod_open(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o777 } else { 0o666 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("{}: {e}", path.display()))
}

fn server_conf(system: System, case: &Case, opts: &Options, i: usize, dir: &Path) -> String {
    let mut c = format!(
        "port {SERVER_PORT}\nbind {} 127.0.0.1\nprotected-mode no\ndir {}\nlogfile {}/server.log\nsave \"\"\nappendonly no\n\
         repl-diskless-sync-delay 0\nenable-debug-command yes\nmin-replicas-to-write {}\n",
        host_ip(i),
        dir.display(),
        dir.display(),
        case.min_replicas
    );
    match system {
        System::Rf => {
            // our fast fencing (Redis has neither directive)
            let _ = writeln!(c, "repl-ack-period-ms {}", opts.ack_period_ms);
            let _ = writeln!(c, "min-replicas-max-lag-ms {}", opts.lag_ms);
        }
        System::Debian => {
            let _ = writeln!(c, "min-replicas-max-lag {}", opts.debian_lag_secs);
        }
    }
    if i != 0 {
        let _ = writeln!(c, "replicaof {} {SERVER_PORT}", host_ip(0));
    }
    c
}

fn sentinel_conf(opts: &Options, i: usize, dir: &Path) -> String {
    format!(
        "port {SENTINEL_PORT}\nbind {} 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {}\nlogfile {}/sentinel.log\n\
         sentinel monitor {MASTER_NAME} {} {SERVER_PORT} 2\nsentinel down-after-milliseconds {MASTER_NAME} {}\n\
         sentinel failover-timeout {MASTER_NAME} 10000\nsentinel parallel-syncs {MASTER_NAME} 1\n",
        host_ip(i),
        dir.display(),
        dir.display(),
        host_ip(0),
        opts.down_after_ms
    )
}

// ------------------------------------------------------------------ talking to it

fn server_addr(i: usize) -> String {
    format!("{}:{SERVER_PORT}", host_ip(i))
}

fn sentinel_addr(i: usize) -> String {
    format!("{}:{SENTINEL_PORT}", host_ip(i))
}

/// What each reachable sentinel names as master (host index), in host order.
fn sentinel_views() -> Vec<Option<usize>> {
    (0..HOSTS)
        .map(|i| {
            let mut conn = connect(&sentinel_addr(i), Duration::from_millis(300)).ok()?;
            let reply: Option<(String, String)> =
                redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(MASTER_NAME).query(&mut conn).ok()?;
            reply.and_then(|(host, _)| host_of_ip(&host))
        })
        .collect()
}

/// The master a majority of the sentinels name, if any.
fn master_by_majority() -> Option<usize> {
    let views = sentinel_views();
    (0..HOSTS).find(|&m| views.iter().filter(|v| **v == Some(m)).count() > HOSTS / 2)
}

fn info_fields(i: usize, section: &str) -> Option<HashMap<String, String>> {
    let mut conn = connect(&server_addr(i), Duration::from_millis(300)).ok()?;
    let text: String = redis::cmd("INFO").arg(section).query(&mut conn).ok()?;
    Some(text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect())
}

/// `i` is a replica of `master` with its link up.
fn replica_of(i: usize, master: usize) -> bool {
    info_fields(i, "replication").is_some_and(|f| {
        f.get("role").map(String::as_str) == Some("slave")
            && f.get("master_host") == Some(&host_ip(master))
            && f.get("master_link_status").map(String::as_str) == Some("up")
    })
}

/// The replica the `replica` case cuts off.
fn cut_replica(master: usize) -> usize {
    (master + HOSTS - 1) % HOSTS
}

/// `master_repl_offset` of server `i` (on a replica: how far it has processed the stream).
fn repl_offset(i: usize) -> Option<i64> {
    info_fields(i, "replication")?.get("master_repl_offset")?.parse().ok()
}

/// One master named by every sentinel, with every other server its replica, link up.
fn healthy() -> Option<usize> {
    let views = sentinel_views();
    let master = views[0]?;
    if views.iter().any(|v| *v != Some(master)) {
        return None;
    }
    (0..HOSTS).filter(|&i| i != master).all(|i| replica_of(i, master)).then_some(master)
}

/// Sentinels know both replicas and both other sentinels; servers linked.
fn ready() -> bool {
    let sentinels_ready = (0..HOSTS).all(|i| {
        let Ok(mut conn) = connect(&sentinel_addr(i), Duration::from_millis(300)) else { return false };
        let Ok(fields) = redis::cmd("SENTINEL").arg("master").arg(MASTER_NAME).query::<Vec<String>>(&mut conn) else {
            return false;
        };
        let get = |k: &str| fields.chunks(2).find(|p| p[0] == k).map(|p| p[1].clone());
        get("num-slaves").as_deref() == Some("2") && get("num-other-sentinels").as_deref() == Some("2")
    });
    sentinels_ready && healthy() == Some(0)
}

fn wait_until<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn digest(i: usize) -> Option<String> {
    let mut conn = connect(&server_addr(i), Duration::from_secs(1)).ok()?;
    redis::cmd("DEBUG").arg("DIGEST").query(&mut conn).ok()
}

// ------------------------------------------------------------------ the writers

#[derive(Clone, Copy, PartialEq, Eq)]
enum Confirm {
    Plain,
    Wait1,
}

impl Confirm {
    fn prefix(self) -> &'static str {
        match self {
            Confirm::Plain => "plain",
            Confirm::Wait1 => "wait",
        }
    }
}

#[derive(Default)]
struct WriterLog {
    /// (key number, when acknowledged)
    acked: Vec<(u64, Instant)>,
}

/// Writes `<prefix>:<n>` at `rate` per second through the sentinel-named master, re-asking
/// the sentinels only when a write fails, until `stop`.
fn writer(confirm: Confirm, rate: u32, stop: Arc<AtomicBool>, log: Arc<Mutex<WriterLog>>) {
    let period = Duration::from_secs(1) / rate;
    let mut next = Instant::now();
    let mut n: u64 = 0;
    let mut conn: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next = Instant::now().max(next) + period;
        if conn.is_none() {
            conn = master_by_majority().and_then(|m| connect(&server_addr(m), Duration::from_millis(500)).ok());
            if conn.is_none() {
                continue;
            }
        }
        let c = conn.as_mut().expect("connected above");
        n += 1;
        let key = format!("{}:{n}", confirm.prefix());
        let set_ok = redis::cmd("SET").arg(&key).arg(n).query::<()>(c).is_ok();
        let acked = set_ok
            && match confirm {
                Confirm::Plain => true,
                Confirm::Wait1 => matches!(redis::cmd("WAIT").arg(1).arg(500).query::<i64>(c), Ok(r) if r >= 1),
            };
        if acked {
            log.lock().expect("writer log").acked.push((n, Instant::now()));
        } else if !set_ok || confirm == Confirm::Wait1 {
            conn = None;
        }
    }
}

// ------------------------------------------------------------------ one round

struct Round {
    system: System,
    case: &'static str,
    plain_acked: usize,
    plain_lost: usize,
    wait_acked: usize,
    wait_lost: usize,
    /// Longest time between two acknowledged WAIT-confirmed writes.
    wait_gap: Duration,
    failover: Option<Duration>,
    /// Master cases: heal -> old master a replica of the new one, link up. Replica case:
    /// heal -> the cut replica has the master's replication offset of the heal.
    rejoin: Option<Duration>,
    settled: Option<Duration>,
    digests_equal: bool,
}

impl Round {
    fn plain_lost_pct(&self) -> f64 {
        self.plain_lost as f64 * 100.0 / self.plain_acked.max(1) as f64
    }

    fn failures(&self, case: &Case) -> Vec<String> {
        let mut f = Vec::new();
        if self.wait_lost > 0 {
            f.push(format!("{} writes confirmed by WAIT 1 lost", self.wait_lost));
        }
        if case.cut == Cut::Master && case.min_replicas >= 1 && self.plain_lost_pct() > MAX_PLAIN_LOST_PCT {
            f.push(format!("{:.1}% of plain-acknowledged writes lost (limit {MAX_PLAIN_LOST_PCT}%)", self.plain_lost_pct()));
        }
        if case.cut == Cut::Master && !self.rejoin.is_some_and(|r| r <= MAX_REJOIN) {
            f.push(format!("old master rejoined after {} (limit {MAX_REJOIN:?})", fmt_opt(self.rejoin)));
        }
        if self.settled.is_none() {
            f.push("the group did not settle".into());
        }
        if !self.digests_equal {
            f.push("servers' data differ at the end (DEBUG DIGEST)".into());
        }
        f
    }
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}s", d.as_secs_f64())).unwrap_or_else(|| "never".into())
}

fn missing(master: usize, prefix: &str, acked: &[u64]) -> Result<usize, String> {
    let mut conn = connect(&server_addr(master), Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let mut lost = 0;
    for chunk in acked.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|n| format!("{prefix}:{n}")).collect();
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query(&mut conn).map_err(|e| e.to_string())?;
        lost += chunk.iter().zip(values).filter(|(n, v)| *v != Some(**n)).count();
    }
    Ok(lost)
}

fn longest_gap(acks: &[(u64, Instant)]) -> Duration {
    acks.windows(2).map(|w| w[1].1.duration_since(w[0].1)).max().unwrap_or_default()
}

fn round(system: System, case: &Case, opts: &Options) -> Result<Round, String> {
    let group = Group::start(system, case, opts)?;
    let outcome = measure(system, case, opts);
    if outcome.is_err() {
        eprint!("{}", group.log_tails());
    }
    drop(group);
    outcome
}

fn measure(system: System, case: &Case, opts: &Options) -> Result<Round, String> {
    if wait_until(Duration::from_secs(30), || ready().then_some(())).is_none() {
        return Err("the group did not come up (servers linked, sentinels aware of each other)".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let logs = [Arc::new(Mutex::new(WriterLog::default())), Arc::new(Mutex::new(WriterLog::default()))];
    let threads: Vec<_> = [Confirm::Plain, Confirm::Wait1]
        .into_iter()
        .zip(logs.iter().cloned())
        .map(|(confirm, log)| {
            let stop = stop.clone();
            let rate = opts.rate;
            std::thread::spawn(move || writer(confirm, rate, stop, log))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let master = 0;
    let cut_at = Instant::now();
    let cut_namespaces = apply_cut(case.cut, master)?;
    println!("partition: {} {}: cut at +0.00s", system.name(), case.name);
    let mut failover = None;
    while cut_at.elapsed() < opts.partition {
        if failover.is_none() && master_by_majority().is_some_and(|m| m != master) {
            failover = Some(cut_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    heal(&cut_namespaces)?;
    let healed_at = Instant::now();
    let rejoin = match case.cut {
        Cut::Master => wait_until(Duration::from_secs(20), || {
            let new = master_by_majority().filter(|&m| m != master)?;
            replica_of(master, new).then_some(healed_at.elapsed())
        }),
        Cut::Replica => repl_offset(master).and_then(|at_heal| {
            // its link may still read "up" (repl-timeout is 60 s): what counts is the data
            wait_until(Duration::from_secs(20), || {
                (repl_offset(cut_replica(master))? >= at_heal).then_some(healed_at.elapsed())
            })
        }),
        Cut::Sentinel | Cut::Client => None,
    };
    let settled = wait_until(Duration::from_secs(30), || healthy().map(|_| healed_at.elapsed()));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "a writer panicked")?;
    }
    let final_master = master_by_majority().ok_or("no master named by a majority of sentinels at the end")?;
    let digests_equal = wait_until(Duration::from_secs(10), || {
        let d: Vec<Option<String>> = (0..HOSTS).map(digest).collect();
        (d[0].is_some() && d.iter().all(|x| *x == d[0])).then_some(())
    })
    .is_some();
    let acked = |i: usize| logs[i].lock().expect("writer log").acked.iter().map(|(n, _)| *n).collect::<Vec<u64>>();
    let (plain, wait) = (acked(0), acked(1));
    let r = Round {
        system,
        case: case.name,
        plain_acked: plain.len(),
        plain_lost: missing(final_master, Confirm::Plain.prefix(), &plain)?,
        wait_acked: wait.len(),
        wait_lost: missing(final_master, Confirm::Wait1.prefix(), &wait)?,
        wait_gap: longest_gap(&logs[1].lock().expect("writer log").acked),
        failover,
        rejoin,
        settled,
        digests_equal,
    };
    println!(
        "RESULT system={} case={} plain_acked={} plain_lost={} plain_lost_pct={:.1} wait_acked={} wait_lost={} wait_gap_ms={} \
         failover_ms={} rejoin_ms={} settle_ms={} digests_equal={}",
        system.name(),
        case.name,
        r.plain_acked,
        r.plain_lost,
        r.plain_lost_pct(),
        r.wait_acked,
        r.wait_lost,
        r.wait_gap.as_millis(),
        r.failover.map_or("none".into(), |d| d.as_millis().to_string()),
        r.rejoin.map_or("n/a".into(), |d| d.as_millis().to_string()),
        r.settled.map_or("never".into(), |d| d.as_millis().to_string()),
        r.digests_equal
    );
    Ok(r)
}

// ------------------------------------------------------------------ driver

fn print_table(rounds: &[Round], opts: &Options) {
    println!(
        "\npartition {}s, {} writes/s per writer, down-after {} ms; rf: min-replicas-max-lag-ms {}, repl-ack-period-ms {}; \
         debian: min-replicas-max-lag {}",
        opts.partition.as_secs(),
        opts.rate,
        opts.down_after_ms,
        opts.lag_ms,
        opts.ack_period_ms,
        opts.debian_lag_secs
    );
    println!(
        "{:<12} {:<7} {:>20} {:>14} {:>11} {:>10} {:>9} {:>9} {:>7}",
        "case", "system", "plain lost/acked", "WAIT lost/acked", "WAIT gap", "failover", "rejoin", "settle", "digest"
    );
    for case in &opts.cases {
        for r in rounds.iter().filter(|r| r.case == case.name) {
            println!(
                "{:<12} {:<7} {:>20} {:>14} {:>10.2}s {:>10} {:>9} {:>9} {:>7}",
                r.case,
                r.system.name(),
                format!("{}/{} ({:.1}%)", r.plain_lost, r.plain_acked, r.plain_lost_pct()),
                format!("{}/{}", r.wait_lost, r.wait_acked),
                r.wait_gap.as_secs_f64(),
                r.failover.map_or("none".into(), |d| format!("{:.2}s", d.as_secs_f64())),
                if matches!(case.cut, Cut::Master | Cut::Replica) { fmt_opt(r.rejoin) } else { "-".into() },
                fmt_opt(r.settled),
                if r.digests_equal { "same" } else { "DIFFER" }
            );
        }
    }
}

fn drive(opts: &Options) -> Result<bool, String> {
    let mut rounds = Vec::new();
    let mut ok = true;
    for case in &opts.cases {
        for &system in &opts.systems {
            let r = round(system, case, opts).map_err(|e| format!("{} {}: {e}", system.name(), case.name))?;
            if system == System::Rf {
                for failure in r.failures(case) {
                    println!("partition: GUARANTEE FAILED: rf {}: {failure}", case.name);
                    ok = false;
                }
            }
            rounds.push(r);
        }
    }
    print_table(&rounds, opts);
    Ok(ok || !opts.check)
}

/// Runs the command line: Ok(false) when `--check` found a guarantee broken.
pub fn run_args(args: &[String]) -> Result<bool, String> {
    match args.first().map(String::as_str) {
        Some("cleanup") => cleanup(),
        Some("drive") => parse_options(&args[1..]).and_then(|o| drive(&o)),
        _ => parse_options(args).and_then(|o| orchestrate(&o)),
    }
}

/// The drill's command line (`args` without the program name): `cleanup`, `drive ...`
/// (inside the client namespace) or the options of a run.
pub fn main_with(args: &[String]) -> ExitCode {
    match run_args(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("partition_drill: {e}");
            ExitCode::from(2)
        }
    }
}
