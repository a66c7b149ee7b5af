//! `sentinel-startup-check <master-name> <host> <port>` (an rf-server directive; the operator
//! renders it): before serving, ask the sentinels who the master is.
//!
//! A master whose process restarts quickly (a crash restarted by the kubelet, a deleted pod
//! re-created under the same name) comes back before the sentinels' down-after period ends.
//! Without an append-only file it comes back empty, still the master in the sentinels'
//! eyes, and its replicas full-sync from it: every acknowledged write is gone. Redis leaves
//! this to the operator ("disable auto-restart when persistence is off"). Here the server
//! asks the sentinels first:
//! - they name another master: start as its replica, whatever the rendered config says;
//! - they name this server, it has no AOF, and they know a live replica, or one of the
//!   group's servers (asked directly) replicates this server and has data: stay off the
//!   network until they fail over, then start as the new master's replica;
//! - otherwise (first start, no sentinel reachable, an AOF to load): as configured.
//!
//! The decision ([`decide`]) is pure; [`run`] does the blocking queries before the server
//! binds its port, so that while it waits the sentinels see it down.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::config::Config;
use super::log;
use crate::resp::{encode_command, Frame, ReplyParser};

/// host (lower-case) and port of a server, as the sentinels name it.
pub type Addr = (String, u16);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub master_name: String,
    pub sentinels_host: String,
    pub sentinels_port: u16,
    /// A name resolving to every server of the group (a headless Service), asked directly
    /// whether one of them replicates this server.
    pub servers_host: Option<String>,
}

impl Check {
    /// The directive's value, `<master-name> <sentinels-host> <port> [<servers-host>]`;
    /// None when unset.
    pub fn from_config(cfg: &Config) -> Option<Check> {
        let v = cfg.get("sentinel-startup-check");
        let mut it = v.split_whitespace();
        let (name, host, port) = (it.next()?, it.next()?, it.next()?.parse().ok()?);
        let servers_host = it.next().map(str::to_string);
        Some(Check { master_name: name.into(), sentinels_host: host.into(), sentinels_port: port, servers_host })
    }
}

/// What the sentinels told us in one round.
#[derive(Debug, Default, Clone)]
pub struct Round {
    /// One entry per sentinel that answered `get-master-addr-by-name`.
    pub masters: Vec<Addr>,
    /// The sentinels know a live replica (not down, not disconnected). It holds the data
    /// this server lost, or will take over cheaply if it holds none: either way it is the
    /// one to promote. (Its offset is no signal: the sentinels refresh it only every 10 s.)
    pub replica_has_data: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    AsConfigured,
    /// The sentinels name this server: master, even if the rendered config lags behind.
    Master,
    ReplicaOf(Addr),
    WaitForFailover,
}

/// The majority answer among the sentinels that answered, if there is one.
fn majority(masters: &[Addr]) -> Option<&Addr> {
    masters.iter().find(|m| masters.iter().filter(|o| o == m).count() * 2 > masters.len())
}

pub fn decide(me: &Addr, round: &Round, has_aof: bool) -> Step {
    if round.masters.is_empty() {
        return Step::AsConfigured;
    }
    match majority(&round.masters) {
        // Split answers: a failover is under way; ask again.
        None => Step::WaitForFailover,
        Some(m) if m != me => Step::ReplicaOf(m.clone()),
        Some(_) if has_aof || !round.replica_has_data => Step::Master,
        Some(_) => Step::WaitForFailover,
    }
}

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let timeout = Duration::from_millis(800);
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    Some(stream)
}

fn call(stream: &mut TcpStream, args: &[&str]) -> Option<Frame> {
    let mut out = BytesMut::new();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    encode_command(&args, &mut out);
    stream.write_all(&out).ok()?;
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(frame)) = ReplyParser::parse(&mut buf) {
            return Some(frame);
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn query(addr: SocketAddr, args: &[&str]) -> Option<Frame> {
    call(&mut connect(addr)?, args)
}

fn resolve(host: &str, port: u16) -> Vec<SocketAddr> {
    (host, port).to_socket_addrs().map(|a| a.collect()).unwrap_or_default()
}

/// Whether one of the servers behind `servers_host` is a replica of `me` that has
/// replicated something: it holds the data this server just lost.
fn replica_of_me_with_data(servers_host: &str, me: &Addr, auth: &[&str]) -> bool {
    resolve(servers_host, me.1).into_iter().any(|addr| {
        let Some(mut stream) = connect(addr) else { return false };
        if !auth.is_empty() {
            let mut args = vec!["AUTH"];
            args.extend_from_slice(auth);
            if !matches!(call(&mut stream, &args), Some(Frame::Simple(_))) {
                return false;
            }
        }
        let Some(info) = call(&mut stream, &["INFO", "replication"]).as_ref().and_then(text) else { return false };
        let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim);
        field("role") == Some("slave")
            && field("master_host").is_some_and(|h| h.eq_ignore_ascii_case(&me.0))
            && field("slave_repl_offset").and_then(|o| o.parse::<i64>().ok()).is_some_and(|o| o > 0)
    })
}

fn text(f: &Frame) -> Option<String> {
    f.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Fields of one entry of `SENTINEL REPLICAS` (a flat array in RESP2, a map in RESP3).
fn fields(entry: &Frame) -> Vec<(String, String)> {
    match entry {
        Frame::Array(items) => items.chunks(2).filter_map(|p| Some((text(&p[0])?, text(p.get(1)?)?))).collect(),
        Frame::Map(pairs) => pairs.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
        _ => Vec::new(),
    }
}

fn ask(check: &Check, me: &Addr, auth: &[&str]) -> Round {
    let mut round = Round::default();
    for addr in resolve(&check.sentinels_host, check.sentinels_port) {
        let Some(Frame::Array(reply)) = query(addr, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &check.master_name]) else {
            continue;
        };
        if let [host, port] = reply.as_slice() {
            if let (Some(h), Some(Ok(p))) = (text(host), text(port).map(|p| p.parse::<u16>())) {
                round.masters.push((h.to_ascii_lowercase(), p));
            }
        }
        if !round.replica_has_data {
            if let Some(Frame::Array(replicas)) = query(addr, &["SENTINEL", "REPLICAS", &check.master_name]) {
                round.replica_has_data = replicas.iter().any(|r| {
                    fields(r).iter().any(|(k, v)| {
                        k == "flags" && !v.split(',').any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
                    })
                });
            }
        }
    }
    // The sentinels learn replicas from the master's INFO every 10 s: right after a group
    // starts they may know none, so the replicas themselves are asked too.
    if !round.replica_has_data && round.masters.iter().any(|m| m == me) {
        if let Some(servers) = &check.servers_host {
            round.replica_has_data = replica_of_me_with_data(servers, me, auth);
        }
    }
    round
}

/// Asks the sentinels and waits as [`decide`] says; sets `replicaof` from their answer.
pub fn run(check: &Check, cfg: &mut Config) {
    let host = cfg.get("replica-announce-ip").to_ascii_lowercase();
    if host.is_empty() {
        log::warning("sentinel-startup-check needs replica-announce-ip (this server's name for the sentinels): skipped");
        return;
    }
    let port = match cfg.get_int("replica-announce-port") {
        0 => cfg.get_int("port"),
        p => p,
    } as u16;
    let me = (host, port);
    let has_aof = cfg.get_bool("appendonly");
    let (user, pass) = (cfg.get("masteruser"), cfg.get("masterauth"));
    let auth: Vec<&str> = match (user, pass) {
        (_, "") => vec![],
        ("", p) => vec![p],
        (u, p) => vec![u, p],
    };
    let started = Instant::now();
    let mut last_note = None::<Instant>;
    loop {
        let round = ask(check, &me, &auth);
        match decide(&me, &round, has_aof) {
            Step::AsConfigured => return,
            Step::Master => {
                log::notice("Sentinels name this server as master: starting as master");
                cfg.set_raw("replicaof", String::new());
                return;
            }
            Step::ReplicaOf((host, port)) => {
                log::notice(&format!("Sentinels name {host}:{port} as master: starting as its replica"));
                cfg.set_raw("replicaof", format!("{host} {port}"));
                return;
            }
            Step::WaitForFailover => {
                if last_note.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    log::warning(&format!(
                        "Sentinels still name this server as master of '{}', but it restarted without an AOF and a replica holds the data: waiting for the failover before serving ({}s so far)",
                        check.master_name,
                        started.elapsed().as_secs()
                    ));
                    last_note = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(h: &str) -> Addr {
        (h.to_string(), 6379)
    }

    #[test]
    fn no_answer_runs_as_configured_and_a_first_start_as_master() {
        let me = a("s-0");
        assert_eq!(decide(&me, &Round::default(), false), Step::AsConfigured);
        let first = Round { masters: vec![a("s-0"), a("s-0")], replica_has_data: false };
        assert_eq!(decide(&me, &first, false), Step::Master);
    }

    #[test]
    fn another_master_is_followed_whatever_the_config() {
        let round = Round { masters: vec![a("s-1"), a("s-1"), a("s-0")], replica_has_data: true };
        assert_eq!(decide(&a("s-0"), &round, false), Step::ReplicaOf(a("s-1")));
        assert_eq!(decide(&a("s-2"), &round, true), Step::ReplicaOf(a("s-1")));
    }

    #[test]
    fn an_empty_restarted_master_waits_while_replicas_hold_data() {
        let round = Round { masters: vec![a("s-0"), a("s-0"), a("s-0")], replica_has_data: true };
        assert_eq!(decide(&a("s-0"), &round, false), Step::WaitForFailover);
        // An append-only file brings its data back: it may keep its role.
        assert_eq!(decide(&a("s-0"), &round, true), Step::Master);
    }

    #[test]
    fn split_answers_wait() {
        let round = Round { masters: vec![a("s-0"), a("s-1")], replica_has_data: true };
        assert_eq!(decide(&a("s-2"), &round, false), Step::WaitForFailover);
    }

    #[test]
    fn directive_parses() {
        let mut cfg = Config::default();
        assert_eq!(Check::from_config(&cfg), None);
        cfg.apply_directive("sentinel-startup-check", &["mymaster".into(), "sentinels.ns.svc".into(), "26379".into()]).unwrap();
        assert_eq!(
            Check::from_config(&cfg),
            Some(Check {
                master_name: "mymaster".into(),
                sentinels_host: "sentinels.ns.svc".into(),
                sentinels_port: 26379,
                servers_host: None
            })
        );
        cfg.apply_directive("sentinel-startup-check", &["m".into(), "s".into(), "1".into(), "servers.ns.svc".into()]).unwrap();
        assert_eq!(Check::from_config(&cfg).unwrap().servers_host.as_deref(), Some("servers.ns.svc"));
        assert!(cfg.apply_directive("sentinel-startup-check", &["mymaster".into(), "h".into()]).is_err());
    }
}
