//! Commands served on the sentinel port, with replies shaped as Redis Sentinel 7.0's.

use std::collections::BTreeSet;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::config::{self, MasterConfig, REDIS_VERSION};
use super::machine::{AdminError, Instance, Master, Role, INFO_PERIOD, PING_PERIOD};
use super::shell::{self, now_ms, Core, PushMsg, Shared, Subscriber};
use crate::resp::{Frame, ProtocolVersion};

pub struct ClientState {
    pub id: u64,
    pub peer: String,
    pub proto: ProtocolVersion,
    pub authenticated: bool,
    pub name: Option<String>,
    pub channels: BTreeSet<String>,
    pub patterns: BTreeSet<String>,
    pub push_tx: mpsc::UnboundedSender<PushMsg>,
    pub close_after_reply: bool,
}

impl ClientState {
    pub fn new(id: u64, peer: String, push_tx: mpsc::UnboundedSender<PushMsg>) -> Self {
        ClientState {
            id,
            peer,
            proto: ProtocolVersion::Resp2,
            authenticated: false,
            name: None,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            push_tx,
            close_after_reply: false,
        }
    }
    fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

pub fn push_frame(m: &PushMsg, proto: ProtocolVersion) -> Frame {
    let items = match &m.pattern {
        Some(p) => vec![Frame::bulk("pmessage"), Frame::bulk(p.clone()), Frame::bulk(m.channel.clone()), Frame::bulk(m.message.clone())],
        None => vec![Frame::bulk("message"), Frame::bulk(m.channel.clone()), Frame::bulk(m.message.clone())],
    };
    if proto == ProtocolVersion::Resp3 {
        Frame::Push(items)
    } else {
        Frame::Array(items)
    }
}

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn bulk(v: impl ToString) -> Frame {
    Frame::bulk(v.to_string())
}

fn wrong_args(cmd: &str) -> Frame {
    Frame::error(format!("ERR wrong number of arguments for '{}' command", cmd.to_ascii_lowercase()))
}

fn unknown_command(args: &[Bytes]) -> Frame {
    let mut msg = format!("ERR unknown command '{}', with args beginning with: ", s(&args[0]));
    for a in args.iter().skip(1).take(20) {
        msg.push_str(&format!("'{}' ", s(a)));
    }
    Frame::error(msg)
}

fn unknown_sub(sub: &str, cmd: &str) -> Frame {
    Frame::error(format!("ERR unknown subcommand '{sub}'. Try {} HELP.", cmd.to_ascii_uppercase()))
}

fn map(pairs: Vec<(&str, Frame)>) -> Frame {
    Frame::Map(pairs.into_iter().map(|(k, v)| (Frame::bulk(k.to_string()), v)).collect())
}

/// Runs one command; returns its replies (several for SUBSCRIBE a b ...).
pub fn dispatch(core: &Shared, st: &mut ClientState, args: &[Bytes]) -> Vec<Frame> {
    let cmd = s(&args[0]).to_ascii_lowercase();
    let mut c = core.lock();
    c.total_commands += 1;
    let needs_auth = c.base_config.requirepass.is_some() && !st.authenticated;
    if needs_auth && !matches!(cmd.as_str(), "auth" | "hello" | "quit") {
        return vec![Frame::error("NOAUTH Authentication required.")];
    }
    if st.subscriptions() > 0
        && st.proto == ProtocolVersion::Resp2
        && !matches!(cmd.as_str(), "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ping" | "quit" | "reset")
    {
        return vec![Frame::error(format!(
            "ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        ))];
    }
    let reply = match cmd.as_str() {
        "ping" => match args.len() {
            1 | 2 if st.subscriptions() > 0 && st.proto == ProtocolVersion::Resp2 => {
                Frame::Array(vec![bulk("pong"), args.get(1).map(|a| Frame::bulk(a.clone())).unwrap_or_else(|| bulk(""))])
            }
            1 => Frame::simple("PONG"),
            2 => Frame::bulk(args[1].clone()),
            _ => wrong_args("ping"),
        },
        "quit" => {
            st.close_after_reply = true;
            Frame::ok()
        }
        "auth" => auth(&c, st, &args[1..]),
        "hello" => hello(&c, st, args),
        "client" => client(st, args),
        "info" => info(&c, args),
        "role" => Frame::Array(vec![
            bulk("sentinel"),
            Frame::Array(c.machine.masters.iter().map(|m| bulk(&m.cfg.name)).collect()),
        ]),
        "sentinel" => sentinel(&mut c, st, args),
        "subscribe" | "psubscribe" => return subscribe(&mut c, st, args, cmd == "psubscribe"),
        "unsubscribe" | "punsubscribe" => return unsubscribe(&mut c, st, args, cmd == "punsubscribe"),
        "publish" => {
            if args.len() != 3 {
                wrong_args("publish")
            } else if s(&args[1]) != super::links::HELLO_CHANNEL {
                Frame::error("ERR Only HELLO messages are accepted by Sentinel instances.")
            } else {
                let now = now_ms();
                c.machine.on_hello(now, &s(&args[2]));
                c.machine.tick(now);
                c.pump();
                Frame::Integer(1)
            }
        }
        "shutdown" => {
            let _ = c.flush_config_now();
            shell::request_shutdown(&mut c);
            st.close_after_reply = true;
            Frame::ok()
        }
        "command" => {
            if args.len() == 1 || s(&args[1]).eq_ignore_ascii_case("docs") {
                Frame::Array(vec![])
            } else if s(&args[1]).eq_ignore_ascii_case("count") {
                Frame::Integer(0)
            } else {
                Frame::Array(vec![])
            }
        }
        "reset" => {
            st.channels.clear();
            st.patterns.clear();
            c.subscribers.remove(&st.id);
            st.proto = ProtocolVersion::Resp2;
            st.name = None;
            Frame::simple("RESET")
        }
        _ => unknown_command(args),
    };
    vec![reply]
}

fn auth(c: &Core, st: &mut ClientState, a: &[Bytes]) -> Frame {
    let (user, pass) = match a.len() {
        1 => ("default".to_string(), s(&a[0])),
        2 => (s(&a[0]), s(&a[1])),
        _ => return wrong_args("auth"),
    };
    match &c.base_config.requirepass {
        None if a.len() == 1 => Frame::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        None => {
            if user == "default" {
                st.authenticated = true;
                Frame::ok()
            } else {
                Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
            }
        }
        Some(p) if user == "default" && *p == pass => {
            st.authenticated = true;
            Frame::ok()
        }
        Some(_) => Frame::error("WRONGPASS invalid username-password pair or user is disabled."),
    }
}

fn hello(c: &Core, st: &mut ClientState, args: &[Bytes]) -> Frame {
    let mut proto = st.proto;
    let mut i = 1;
    if args.len() > 1 {
        let v = s(&args[1]).parse::<i64>();
        match v.clone().ok().and_then(shell::proto_from) {
            Some(p) => proto = p,
            None if v.is_err() => return Frame::error("ERR Protocol version is not an integer or out of range"),
            None => return Frame::error("NOPROTO unsupported protocol version"),
        }
        i = 2;
    }
    while i < args.len() {
        let opt = s(&args[i]).to_ascii_lowercase();
        if opt == "auth" && i + 2 < args.len() {
            let r = auth(c, st, &args[i + 1..i + 3]);
            if r.is_error() {
                return r;
            }
            i += 3;
        } else if opt == "setname" && i + 1 < args.len() {
            st.name = Some(s(&args[i + 1]));
            i += 2;
        } else {
            return Frame::error(format!("ERR Syntax error in HELLO option '{}'", s(&args[i])));
        }
    }
    if c.base_config.requirepass.is_some() && !st.authenticated {
        return Frame::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    st.proto = proto;
    map(vec![
        ("server", bulk("redis")),
        ("version", bulk(REDIS_VERSION)),
        ("proto", Frame::Integer(if proto == ProtocolVersion::Resp3 { 3 } else { 2 })),
        ("id", Frame::Integer(st.id as i64)),
        ("mode", bulk("sentinel")),
        ("role", bulk("master")),
        ("modules", Frame::Array(vec![])),
    ])
}

fn client(st: &mut ClientState, args: &[Bytes]) -> Frame {
    if args.len() < 2 {
        return wrong_args("client");
    }
    let sub = s(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "setname" if args.len() == 3 => {
            let n = s(&args[2]);
            if n.contains(' ') || n.contains('\n') {
                return Frame::error("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            st.name = Some(n).filter(|n| !n.is_empty());
            Frame::ok()
        }
        "getname" => st.name.clone().map(Frame::bulk).unwrap_or(Frame::Null),
        "id" => Frame::Integer(st.id as i64),
        "info" | "list" => {
            let line = format!(
                "id={} addr={} name={} db=0 sub={} psub={} resp={} cmd=client|{}\n",
                st.id,
                st.peer,
                st.name.clone().unwrap_or_default(),
                st.channels.len(),
                st.patterns.len(),
                if st.proto == ProtocolVersion::Resp3 { 3 } else { 2 },
                sub
            );
            Frame::bulk(line)
        }
        "kill" => Frame::error("ERR No such client"),
        "reply" => Frame::ok(),
        "help" => Frame::Array(vec![bulk("CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are: SETNAME GETNAME ID INFO LIST KILL")]),
        _ => unknown_sub(&s(&args[1]), "CLIENT"),
    }
}

fn subscribe(c: &mut Core, st: &mut ClientState, args: &[Bytes], pattern: bool) -> Vec<Frame> {
    if args.len() < 2 {
        return vec![wrong_args(if pattern { "psubscribe" } else { "subscribe" })];
    }
    let kind = if pattern { "psubscribe" } else { "subscribe" };
    let mut replies = Vec::new();
    for a in &args[1..] {
        let name = s(a);
        if pattern {
            st.patterns.insert(name.clone());
        } else {
            st.channels.insert(name.clone());
        }
        let count = st.subscriptions() as i64;
        let items = vec![bulk(kind), bulk(&name), Frame::Integer(count)];
        replies.push(if st.proto == ProtocolVersion::Resp3 { Frame::Push(items) } else { Frame::Array(items) });
    }
    c.subscribers.insert(st.id, Subscriber { channels: st.channels.clone(), patterns: st.patterns.clone(), tx: st.push_tx.clone() });
    replies
}

fn unsubscribe(c: &mut Core, st: &mut ClientState, args: &[Bytes], pattern: bool) -> Vec<Frame> {
    let kind = if pattern { "punsubscribe" } else { "unsubscribe" };
    let names: Vec<String> = if args.len() > 1 {
        args[1..].iter().map(s).collect()
    } else if pattern {
        st.patterns.iter().cloned().collect()
    } else {
        st.channels.iter().cloned().collect()
    };
    let mut replies = Vec::new();
    if names.is_empty() {
        let items = vec![bulk(kind), Frame::Null, Frame::Integer(st.subscriptions() as i64)];
        replies.push(if st.proto == ProtocolVersion::Resp3 { Frame::Push(items) } else { Frame::Array(items) });
    }
    for n in names {
        if pattern {
            st.patterns.remove(&n);
        } else {
            st.channels.remove(&n);
        }
        let items = vec![bulk(kind), bulk(&n), Frame::Integer(st.subscriptions() as i64)];
        replies.push(if st.proto == ProtocolVersion::Resp3 { Frame::Push(items) } else { Frame::Array(items) });
    }
    c.subscribers.insert(st.id, Subscriber { channels: st.channels.clone(), patterns: st.patterns.clone(), tx: st.push_tx.clone() });
    replies
}

fn info(c: &Core, args: &[Bytes]) -> Frame {
    let section = args.get(1).map(|a| s(a).to_ascii_lowercase()).unwrap_or_else(|| "default".into());
    let all = matches!(section.as_str(), "default" | "all" | "everything");
    let mut out = String::new();
    let uptime = c.started.elapsed().as_secs();
    if all || section == "server" {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:sentinel\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nexecutable:{}\r\nconfig_file:{}\r\n\r\n",
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            c.run_id,
            c.port,
            now_ms() * 1000,
            uptime,
            uptime / 86400,
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            std::fs::canonicalize(&c.config_path).unwrap_or(c.config_path.clone()).display(),
        ));
    }
    if all || section == "clients" {
        out.push_str(&format!("# Clients\r\nconnected_clients:{}\r\nblocked_clients:0\r\ntracking_clients:0\r\n\r\n", c.clients_connected));
    }
    if all || section == "stats" {
        out.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\npubsub_channels:0\r\npubsub_patterns:0\r\n\r\n",
            c.total_connections, c.total_commands
        ));
    }
    if all || section == "sentinel" {
        let m = &c.machine;
        out.push_str(&format!(
            "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:{}\r\nsentinel_tilt_since_seconds:{}\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:{}\r\n",
            m.masters.len(),
            m.tilt as u8,
            if m.tilt { (now_ms().saturating_sub(m.tilt_start) / 1000) as i64 } else { -1 },
            (m.simulate.crash_after_election as u8) | ((m.simulate.crash_after_promotion as u8) << 1),
        ));
        for (i, ms) in m.masters.iter().enumerate() {
            let a = &ms.inst.addr;
            out.push_str(&format!(
                "master{i}:name={},status={},address={}:{},slaves={},sentinels={}\r\n",
                ms.cfg.name,
                ms.status(),
                a.host,
                a.port,
                ms.replicas.len(),
                ms.sentinels.len() + 1
            ));
        }
    }
    while out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    Frame::Verbatim("txt".into(), Bytes::from(out))
}

fn since(now: u64, t: u64) -> i64 {
    now as i64 - t as i64
}

/// One instance as `SENTINEL MASTERS/REPLICAS/SENTINELS` shows it, fields in Redis's order.
pub fn instance_reply(m: &Master, i: &Instance, now: u64) -> Frame {
    let failover = (i.role == Role::Master).then_some((m.failover_state, m.force_failover));
    let mut f: Vec<(&str, Frame)> = vec![
        ("name", bulk(&i.name)),
        ("ip", bulk(&i.addr.host)),
        ("port", bulk(i.addr.port)),
        ("runid", bulk(i.run_id.clone().unwrap_or_default())),
        ("flags", bulk(i.flags(failover))),
        ("link-pending-commands", bulk(i.pending_commands)),
        ("link-refcount", bulk(1)),
    ];
    if i.role == Role::Master && m.in_failover() {
        f.push(("failover-state", bulk(m.failover_state.as_str())));
    }
    f.push(("last-ping-sent", bulk(i.act_ping_time.map(|t| since(now, t)).unwrap_or(0))));
    f.push(("last-ok-ping-reply", bulk(since(now, i.last_avail))));
    f.push(("last-ping-reply", bulk(since(now, i.last_pong))));
    if i.s_down {
        f.push(("s-down-time", bulk(since(now, i.s_down_since))));
    }
    if i.o_down {
        f.push(("o-down-time", bulk(since(now, i.o_down_since))));
    }
    f.push(("down-after-milliseconds", bulk(m.cfg.down_after_ms)));
    if i.role != Role::Sentinel {
        f.push(("info-refresh", bulk(since(now, i.info_refresh))));
        f.push(("role-reported", bulk(if i.role_reported == Role::Master { "master" } else { "slave" })));
        f.push(("role-reported-time", bulk(since(now, i.role_reported_time))));
    }
    match i.role {
        Role::Master => {
            f.push(("config-epoch", bulk(m.cfg.config_epoch)));
            f.push(("num-slaves", bulk(m.replicas.len())));
            f.push(("num-other-sentinels", bulk(m.sentinels.len())));
            f.push(("quorum", bulk(m.cfg.quorum)));
            f.push(("failover-timeout", bulk(m.cfg.failover_timeout_ms)));
            f.push(("parallel-syncs", bulk(m.cfg.parallel_syncs)));
            if let Some(s) = &m.cfg.notification_script {
                f.push(("notification-script", bulk(s)));
            }
            if let Some(s) = &m.cfg.client_reconfig_script {
                f.push(("client-reconfig-script", bulk(s)));
            }
        }
        Role::Replica => {
            f.push(("master-link-down-time", bulk(i.master_link_down_ms)));
            f.push(("master-link-status", bulk(if i.master_link_up { "ok" } else { "err" })));
            f.push(("master-host", bulk(i.master_host.clone().unwrap_or_else(|| "?".into()))));
            f.push(("master-port", bulk(i.master_port)));
            f.push(("slave-priority", bulk(i.priority)));
            f.push(("slave-repl-offset", bulk(i.repl_offset)));
            f.push(("replica-announced", bulk(i.replica_announced as u8)));
        }
        Role::Sentinel => {
            f.push(("last-hello-message", bulk(since(now, i.last_hello))));
            f.push(("voted-leader", bulk(i.leader.clone().unwrap_or_else(|| "?".into()))));
            f.push(("voted-leader-epoch", bulk(i.leader_epoch)));
        }
    }
    map(f)
}

fn admin_err(e: AdminError) -> Frame {
    Frame::error(e.to_string())
}

fn sentinel(c: &mut Core, _st: &mut ClientState, args: &[Bytes]) -> Frame {
    if args.len() < 2 {
        return wrong_args("sentinel");
    }
    let sub = s(&args[1]).to_ascii_lowercase();
    let a: Vec<String> = args.iter().map(s).collect();
    let now = now_ms();
    let no_master = || Frame::error("ERR No such master with that name");
    let reply = match (sub.as_str(), a.len()) {
        ("masters", 2) => Frame::Array(c.machine.masters.iter().map(|m| instance_reply(m, &m.inst, now)).collect()),
        ("master", 3) => match c.machine.master(&a[2]) {
            Some(m) => instance_reply(m, &m.inst, now),
            None => no_master(),
        },
        ("replicas" | "slaves", 3) => match c.machine.master(&a[2]) {
            Some(m) => Frame::Array(m.replicas.values().map(|r| instance_reply(m, r, now)).collect()),
            None => no_master(),
        },
        ("sentinels", 3) => match c.machine.master(&a[2]) {
            Some(m) => Frame::Array(m.sentinels.iter().map(|r| instance_reply(m, r, now)).collect()),
            None => no_master(),
        },
        ("get-master-addr-by-name", 3) => match c.machine.master(&a[2]) {
            Some(m) => {
                let addr = m.current_addr();
                Frame::Array(vec![bulk(addr.host), bulk(addr.port)])
            }
            None => Frame::NullArray,
        },
        ("is-master-down-by-addr", 6) => {
            let (Ok(port), Ok(epoch)) = (a[3].parse::<u16>(), a[4].parse::<u64>()) else {
                return Frame::error("ERR value is not an integer or out of range");
            };
            let (down, leader, le) = c.machine.is_master_down_by_addr(now, &a[2], port, epoch, &a[5]);
            Frame::Array(vec![Frame::Integer(down as i64), bulk(leader), Frame::Integer(le as i64)])
        }
        ("reset", 3) => Frame::Integer(c.machine.reset(now, &a[2]) as i64),
        ("failover", 3) => match c.machine.failover(now, &a[2]) {
            Ok(()) => Frame::ok(),
            Err(e) => admin_err(e),
        },
        ("ckquorum", 3) => match c.machine.ckquorum(&a[2], now) {
            Ok(t) => Frame::simple(t),
            Err(e) => Frame::error(e),
        },
        ("flushconfig", 2) => match c.flush_config_now() {
            Ok(()) => Frame::ok(),
            Err(e) => Frame::error(format!("ERR Failed to rewrite config: {e}")),
        },
        ("monitor", 6) => {
            let quorum = match a[5].parse::<i64>() {
                Ok(q) if q > 0 => q as u32,
                Ok(_) => return Frame::error("ERR Quorum must be 1 or greater."),
                Err(_) => return Frame::error("ERR value is not an integer or out of range"),
            };
            let Some(port) = a[4].parse::<u16>().ok().filter(|p| *p > 0) else {
                return Frame::error("ERR Invalid port number");
            };
            let Some(host) = config::resolve_host(&a[3], c.base_config.resolve_hostnames) else {
                return Frame::error("ERR Invalid IP address or hostname specified");
            };
            match c.machine.monitor(now, MasterConfig::new(&a[2], &host, port, quorum)) {
                Ok(()) => Frame::ok(),
                Err(e) => admin_err(e),
            }
        }
        ("remove", 3) => match c.machine.remove(&a[2]) {
            Ok(()) => Frame::ok(),
            Err(e) => admin_err(e),
        },
        ("set", n) if n >= 5 && n % 2 == 1 => sentinel_set(c, &a[2], &a[3..]),
        ("config", n) if n >= 4 => sentinel_config(c, &a[2..]),
        ("myid", 2) => bulk(&c.machine.myid),
        ("info-cache", n) if n >= 3 => {
            let names: Vec<&String> = a[2..].iter().collect();
            let mut out = Vec::new();
            for m in &c.machine.masters {
                if !names.is_empty() && !names.iter().any(|n| **n == m.cfg.name) {
                    continue;
                }
                let mut entries = Vec::new();
                for i in std::iter::once(&m.inst).chain(m.replicas.values()) {
                    match &i.info_text {
                        Some(t) => entries.push(Frame::Array(vec![Frame::Integer(since(now, i.info_refresh)), bulk(t)])),
                        None => entries.push(Frame::Null),
                    }
                }
                out.push(bulk(&m.cfg.name));
                out.push(Frame::Array(entries));
            }
            Frame::Array(out)
        }
        ("simulate-failure", n) if n >= 3 => {
            for f in &a[2..] {
                match f.to_ascii_lowercase().as_str() {
                    "crash-after-election" => c.machine.simulate.crash_after_election = true,
                    "crash-after-promotion" => c.machine.simulate.crash_after_promotion = true,
                    "help" => {
                        return Frame::Array(vec![bulk("crash-after-election"), bulk("crash-after-promotion")]);
                    }
                    _ => return Frame::error("ERR Unknown failure simulation specified"),
                }
            }
            Frame::ok()
        }
        ("debug", 2) => map(vec![
            ("INFO-PERIOD", bulk(INFO_PERIOD)),
            ("PING-PERIOD", bulk(PING_PERIOD)),
            ("ASK-PERIOD", bulk(super::machine::ASK_PERIOD)),
            ("PUBLISH-PERIOD", bulk(super::machine::HELLO_PERIOD)),
            ("DEFAULT-DOWN-AFTER", bulk(config::DEFAULT_DOWN_AFTER_MS)),
            ("DEFAULT-FAILOVER-TIMEOUT", bulk(config::DEFAULT_FAILOVER_TIMEOUT_MS)),
            ("TILT-TRIGGER", bulk(super::machine::TILT_TRIGGER)),
            ("TILT-PERIOD", bulk(super::machine::TILT_PERIOD)),
            ("SLAVE-RECONF-TIMEOUT", bulk(super::machine::SLAVE_RECONF_TIMEOUT)),
            ("MIN-LINK-RECONNECT-PERIOD", bulk(super::machine::MIN_LINK_REFRESH)),
            ("ELECTION-TIMEOUT", bulk(super::machine::ELECTION_TIMEOUT)),
            ("SCRIPT-MAX-RUNTIME", bulk(60000)),
            ("SCRIPT-MAX-RETRY", bulk(10)),
            ("SCRIPT-RETRY-DELAY", bulk(30000)),
        ]),
        ("debug", _) => Frame::error("ERR rf-sentinel keeps its timing parameters fixed"),
        ("pending-scripts", 2) => Frame::Array(vec![]),
        ("help", _) => Frame::Array(
            [
                "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CKQUORUM <master-name>", "CONFIG SET|GET <param> [<value>]", "DEBUG [<param> <value> ...]",
                "GET-MASTER-ADDR-BY-NAME <master-name>", "FAILOVER <master-name>", "FLUSHCONFIG",
                "INFO-CACHE <master-name>", "IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>",
                "MASTER <master-name>", "MASTERS", "MONITOR <name> <ip> <port> <quorum>", "MYID",
                "PENDING-SCRIPTS", "REMOVE <master-name>", "REPLICAS <master-name>", "RESET <pattern>",
                "SENTINELS <master-name>", "SET <master-name> <option> <value> [<option> <value> ...]",
                "SIMULATE-FAILURE [CRASH-AFTER-ELECTION] [CRASH-AFTER-PROMOTION] [HELP]", "HELP",
            ]
            .iter()
            .map(|l| bulk(*l))
            .collect(),
        ),
        (known, _)
            if [
                "masters", "master", "replicas", "slaves", "sentinels", "get-master-addr-by-name", "is-master-down-by-addr", "reset",
                "failover", "ckquorum", "flushconfig", "monitor", "remove", "set", "config", "myid", "info-cache", "simulate-failure",
                "pending-scripts",
            ]
            .contains(&known) =>
        {
            Frame::error(format!("ERR wrong number of arguments for 'sentinel|{known}' command"))
        }
        _ => unknown_sub(&a[1], "SENTINEL"),
    };
    c.pump();
    reply
}

type Setter = Box<dyn FnOnce(&mut MasterConfig)>;

fn sentinel_set(c: &mut Core, name: &str, opts: &[String]) -> Frame {
    if c.machine.master(name).is_none() {
        return Frame::error("ERR No such master with that name");
    }
    let deny = c.base_config.deny_scripts_reconfig;
    // validate all first, then apply (Redis applies one by one; an error stops it)
    for pair in opts.chunks(2) {
        let (opt, val) = (pair[0].to_ascii_lowercase(), pair[1].clone());
        let bad = |what: &str| Frame::error(format!("ERR Invalid argument '{val}' for SENTINEL SET '{what}'"));
        let num = val.parse::<i64>();
        let res: Result<Setter, Frame> = match opt.as_str() {
            "down-after-milliseconds" => match num {
                Ok(n) if n > 0 => Ok(Box::new(move |m| m.down_after_ms = n as u64)),
                _ => Err(bad(&opt)),
            },
            "failover-timeout" => match num {
                Ok(n) if n > 0 => Ok(Box::new(move |m| m.failover_timeout_ms = n as u64)),
                _ => Err(bad(&opt)),
            },
            "parallel-syncs" => match num {
                Ok(n) if n > 0 => Ok(Box::new(move |m| m.parallel_syncs = n as u32)),
                _ => Err(bad(&opt)),
            },
            "quorum" => match num {
                Ok(n) if n > 0 => Ok(Box::new(move |m| m.quorum = n as u32)),
                _ => Err(bad(&opt)),
            },
            "master-reboot-down-after-period" => match num {
                Ok(n) if n >= 0 => Ok(Box::new(move |m| m.master_reboot_down_after_ms = n as u64)),
                _ => Err(bad(&opt)),
            },
            "auth-pass" => {
                let v = val.clone();
                Ok(Box::new(move |m| m.auth_pass = Some(v).filter(|s| !s.is_empty())))
            }
            "auth-user" => {
                let v = val.clone();
                Ok(Box::new(move |m| m.auth_user = Some(v).filter(|s| !s.is_empty())))
            }
            "notification-script" | "client-reconfig-script" => {
                if deny {
                    Err(Frame::error("ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your config file before attempting to modify this option."))
                } else {
                    let v = val.clone();
                    let notif = opt == "notification-script";
                    Ok(Box::new(move |m| {
                        let v = Some(v).filter(|s| !s.is_empty());
                        if notif {
                            m.notification_script = v
                        } else {
                            m.client_reconfig_script = v
                        }
                    }))
                }
            }
            _ => Err(Frame::error(format!("ERR Unknown option or number of arguments for SENTINEL SET '{}'", pair[0]))),
        };
        match res {
            Ok(f) => {
                let what = format!("{} {}", pair[0], pair[1]);
                if let Err(e) = c.machine.set_option(name, f, &what) {
                    return admin_err(e);
                }
            }
            Err(e) => return e,
        }
    }
    Frame::ok()
}

fn sentinel_config(c: &mut Core, a: &[String]) -> Frame {
    let op = a[0].to_ascii_lowercase();
    let cfg = &mut c.base_config;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    match op.as_str() {
        "get" if a.len() == 2 => {
            let all: Vec<(&str, String)> = vec![
                ("resolve-hostnames", yes_no(cfg.resolve_hostnames).into()),
                ("announce-hostnames", yes_no(cfg.announce_hostnames).into()),
                ("announce-ip", cfg.announce_ip.clone().unwrap_or_default()),
                ("announce-port", cfg.announce_port.to_string()),
                ("sentinel-user", cfg.sentinel_user.clone().unwrap_or_default()),
                ("sentinel-pass", cfg.sentinel_pass.clone().unwrap_or_default()),
                ("loglevel", cfg.loglevel.clone().unwrap_or_else(|| "notice".into())),
            ];
            let pat = a[1].to_ascii_lowercase();
            Frame::Map(
                all.into_iter()
                    .filter(|(k, _)| super::machine::glob_match(pat.as_bytes(), k.as_bytes()))
                    .map(|(k, v)| (bulk(k), bulk(v)))
                    .collect(),
            )
        }
        "set" if a.len() >= 3 && a.len() % 2 == 1 => {
            for pair in a[1..].chunks(2) {
                let (k, v) = (pair[0].to_ascii_lowercase(), pair[1].clone());
                let yn = |v: &str| match v.to_ascii_lowercase().as_str() {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                };
                let ok = match k.as_str() {
                    "resolve-hostnames" => yn(&v).map(|b| cfg.resolve_hostnames = b).is_some(),
                    "announce-hostnames" => yn(&v).map(|b| cfg.announce_hostnames = b).is_some(),
                    "announce-ip" => {
                        cfg.announce_ip = Some(v.clone()).filter(|s| !s.is_empty());
                        c.machine.announce_ip = cfg.announce_ip.clone();
                        true
                    }
                    "announce-port" => match v.parse::<u16>() {
                        Ok(p) => {
                            cfg.announce_port = p;
                            c.machine.announce_port = if p == 0 { c.port } else { p };
                            true
                        }
                        Err(_) => false,
                    },
                    "sentinel-user" => {
                        cfg.sentinel_user = Some(v.clone()).filter(|s| !s.is_empty());
                        c.machine.sentinel_user = cfg.sentinel_user.clone();
                        true
                    }
                    "sentinel-pass" => {
                        cfg.sentinel_pass = Some(v.clone()).filter(|s| !s.is_empty());
                        c.machine.sentinel_pass = cfg.sentinel_pass.clone();
                        true
                    }
                    "loglevel" => {
                        cfg.loglevel = Some(v.clone());
                        true
                    }
                    _ => return Frame::error(format!("ERR Invalid argument '{}' to SENTINEL CONFIG SET", pair[0])),
                };
                if !ok {
                    return Frame::error(format!("ERR Invalid value '{v}' to SENTINEL CONFIG SET '{}'", pair[0]));
                }
            }
            c.rewrite_config();
            Frame::ok()
        }
        _ => Frame::error("ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported."),
    }
}
