//! Commands served on the sentinel port, with replies shaped as Redis Sentinel 7.0's.

use crate::server::types::glob::string_match;
use std::collections::BTreeSet;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::config::{self, MasterConfig, REDIS_VERSION};
use super::machine::{AdminError, Instance, Master, Role};
use super::shell::{self, now_ms, Core, PushMsg, Shared, Subscriber};
use crate::resp::{Frame, ProtocolVersion};
use crate::server::commands::connection;
use crate::server::commands::tracking::{self, ClientTracking, TrackingRequest};

pub struct ClientState {
    pub id: u64,
    pub peer: String,
    pub proto: ProtocolVersion,
    pub authenticated: bool,
    /// The ACL user this connection runs as.
    pub user: String,
    pub name: Option<String>,
    pub channels: BTreeSet<String>,
    pub patterns: BTreeSet<String>,
    pub push_tx: mpsc::UnboundedSender<PushMsg>,
    pub close_after_reply: bool,
    /// CLIENT REPLY OFF / SKIP: replies are dropped (all, this one, or the next one).
    pub reply_off: bool,
    drop_this_reply: bool,
    skip_next_reply: bool,
    /// CLIENT TRACKING mode: kept and reported as Redis Sentinel does (it has no keys to
    /// invalidate).
    pub tracking: Option<ClientTracking>,
}

impl ClientState {
    pub fn new(id: u64, peer: String, push_tx: mpsc::UnboundedSender<PushMsg>) -> Self {
        ClientState {
            id,
            peer,
            proto: ProtocolVersion::Resp2,
            authenticated: false,
            user: "default".into(),
            name: None,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            push_tx,
            close_after_reply: false,
            reply_off: false,
            drop_this_reply: false,
            skip_next_reply: false,
            tracking: None,
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
    // the name CLIENT LIST shows and NOPERM uses: `sentinel|masters` for container commands
    let full_name = match args.get(1) {
        Some(sub) if matches!(cmd.as_str(), "sentinel" | "client" | "acl" | "command" | "config") => {
            format!("{cmd}|{}", s(sub).to_ascii_lowercase())
        }
        _ => cmd.clone(),
    };
    if let Some(e) = c.clients.get_mut(&st.id) {
        e.last_cmd = full_name.clone();
        e.last_interaction = std::time::Instant::now();
    }
    // a CLIENT REPLY SKIP before this command drops this command's reply
    st.drop_this_reply = std::mem::take(&mut st.skip_next_reply);
    let mut replies = dispatch_locked(&mut c, st, args, &cmd, &full_name);
    if std::mem::take(&mut st.drop_this_reply) || st.reply_off {
        replies.clear();
    }
    // keep what CLIENT LIST shows of this connection current
    if let Some(e) = c.clients.get_mut(&st.id) {
        e.name = st.name.clone().unwrap_or_default();
        e.user = st.user.clone();
        e.sub = st.channels.len();
        e.psub = st.patterns.len();
        e.resp = if st.proto == ProtocolVersion::Resp3 { 3 } else { 2 };
    }
    replies
}

fn dispatch_locked(c: &mut Core, st: &mut ClientState, args: &[Bytes], cmd: &str, full_name: &str) -> Vec<Frame> {
    let no_auth_needed = matches!(cmd, "auth" | "hello" | "quit");
    if !st.authenticated && !no_auth_needed {
        return vec![Frame::error("NOAUTH Authentication required.")];
    }
    if !no_auth_needed {
        let sub = full_name.split_once('|').map(|(_, sub)| sub);
        let allowed = c.base_config.acl.get(&st.user).is_some_and(|u| u.can_run(cmd, sub));
        if !allowed && known_command(cmd) {
            acl_log_add(c, st, "command", full_name, &st.user.clone());
            return vec![Frame::error(format!("NOPERM this user has no permissions to run the '{full_name}' command"))];
        }
    }
    // like Redis, an unknown command is reported as such before the pub/sub context rule
    if st.subscriptions() > 0
        && st.proto == ProtocolVersion::Resp2
        && known_command(cmd)
        && !matches!(cmd, "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ping" | "quit")
    {
        return vec![Frame::error(format!(
            "ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        ))];
    }
    let reply = match cmd {
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
        "auth" | "hello" => {
            let reply = if cmd == "auth" { auth(c, st, &args[1..]) } else { hello(c, st, args) };
            if matches!(&reply, Frame::Error(e) if e.starts_with("WRONGPASS")) {
                let user = attempted_user(cmd, args);
                acl_log_add(c, st, "auth", &s(&args[0]), &user);
            }
            reply
        }
        "client" => client(c, st, args),
        "acl" => acl(c, st, args),
        "info" => info(c, args),
        "role" => Frame::Array(vec![
            bulk("sentinel"),
            Frame::Array(c.machine.masters.iter().map(|m| bulk(&m.cfg.name)).collect()),
        ]),
        "sentinel" => sentinel(c, st, args),
        "subscribe" | "psubscribe" => return subscribe(c, st, args, cmd == "psubscribe"),
        "unsubscribe" | "punsubscribe" => return unsubscribe(c, st, args, cmd == "punsubscribe"),
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
            shell::request_shutdown(c);
            st.close_after_reply = true;
            Frame::ok()
        }
        "command" => super::command_info::command(args),
        _ => unknown_command(args),
    };
    vec![reply]
}

/// The user an AUTH or HELLO ... AUTH tried to log in as.
fn attempted_user(cmd: &str, args: &[Bytes]) -> String {
    if cmd == "auth" {
        return if args.len() == 3 { s(&args[1]) } else { "default".into() };
    }
    let pos = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth"));
    pos.and_then(|p| args.get(p + 1)).map(s).unwrap_or_else(|| "default".into())
}

/// A denied command or failed login in ACL LOG, merged with a like entry of the last 60 s
/// (Redis's rule), newest first, at most 128 entries.
fn acl_log_add(c: &mut Core, st: &ClientState, reason: &str, object: &str, username: &str) {
    sync_entry(c, st);
    let client_info = c.clients.get(&st.id).map(client_line).unwrap_or_default();
    let now = std::time::Instant::now();
    let like = c.acl_log.iter().position(|e| {
        e.reason == reason && e.object == object && e.username == username && now.duration_since(e.created).as_secs() < 60
    });
    let entry = match like {
        Some(i) => {
            let mut e = c.acl_log.remove(i);
            e.count += 1;
            e.created = now;
            e.client_info = client_info;
            e
        }
        None => shell::AclLogEntry { count: 1, reason: reason.into(), object: object.into(), username: username.into(), created: now, client_info },
    };
    c.acl_log.insert(0, entry);
    c.acl_log.truncate(128);
}

/// The categories of Redis 7.0's ACL, in ACL CAT's order.
const ACL_CATEGORIES: &[&str] = &[
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog", "geo", "stream", "pubsub",
    "admin", "fast", "slow", "blocking", "dangerous", "connection", "transaction", "scripting",
];

/// The commands the sentinel port knows (others get "unknown command", not NOPERM).
fn known_command(cmd: &str) -> bool {
    matches!(
        cmd,
        "ping" | "quit" | "auth" | "hello" | "client" | "acl" | "info" | "role" | "sentinel" | "subscribe" | "psubscribe"
            | "unsubscribe" | "punsubscribe" | "publish" | "shutdown" | "command"
    )
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn auth(c: &Core, st: &mut ClientState, a: &[Bytes]) -> Frame {
    let (user, pass) = match a.len() {
        1 => ("default".to_string(), s(&a[0])),
        2 => (s(&a[0]), s(&a[1])),
        _ => return wrong_args("auth"),
    };
    let acl = &c.base_config.acl;
    if a.len() == 1 && acl.get("default").is_some_and(|u| u.nopass) {
        return Frame::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    match acl.authenticate(&user, &pass) {
        Some(_) => {
            st.authenticated = true;
            st.user = user;
            Frame::ok()
        }
        None => Frame::error(WRONGPASS),
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
    let mut new_name = None;
    let mut credentials = None;
    while i < args.len() {
        let opt = s(&args[i]).to_ascii_lowercase();
        if opt == "auth" && i + 2 < args.len() {
            credentials = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if opt == "setname" && i + 1 < args.len() {
            new_name = Some(s(&args[i + 1]));
            i += 2;
        } else {
            return Frame::error(format!("ERR Syntax error in HELLO option '{}'", s(&args[i])));
        }
    }
    if let Some((user, pass)) = credentials {
        let r = auth(c, st, &[user, pass]);
        if r.is_error() {
            return r;
        }
    }
    if !st.authenticated {
        return Frame::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = new_name {
        if !valid_client_name(&n) {
            return Frame::error("ERR Client names cannot contain spaces, newlines or special characters.");
        }
        st.name = Some(n).filter(|n| !n.is_empty());
    }
    st.proto = proto;
    map(vec![
        ("server", bulk("redis")),
        ("version", bulk(REDIS_VERSION)),
        ("proto", Frame::Integer(if proto == ProtocolVersion::Resp3 { 3 } else { 2 })),
        ("id", Frame::Integer(st.id as i64)),
        ("mode", bulk("sentinel")),
        ("modules", Frame::Array(vec![])),
    ])
}

/// Redis allows only printable ASCII without spaces in client names.
fn valid_client_name(n: &str) -> bool {
    n.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

/// One `CLIENT LIST` line (without the newline), fields in Redis 7.0's order. Buffer and
/// memory fields we do not track are reported as 0.
fn client_line(e: &shell::ClientEntry) -> String {
    let pubsub = e.sub + e.psub > 0;
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=4096 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={}",
        e.id,
        e.addr,
        e.laddr,
        e.fd,
        e.name,
        e.created.elapsed().as_secs(),
        e.last_interaction.elapsed().as_secs(),
        if pubsub { "P" } else { "N" },
        e.sub,
        e.psub,
        e.last_cmd,
        e.user,
        e.resp
    )
}

/// CLIENT LIST / KILL `TYPE` values; the sentinel port only has normal and pub/sub clients.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    Master,
    Pubsub,
}

fn client_type(name: &str) -> Option<ClientType> {
    match name.to_ascii_lowercase().as_str() {
        "normal" => Some(ClientType::Normal),
        "replica" | "slave" => Some(ClientType::Replica),
        "master" => Some(ClientType::Master),
        "pubsub" => Some(ClientType::Pubsub),
        _ => None,
    }
}

fn type_of(e: &shell::ClientEntry) -> ClientType {
    if e.sub + e.psub > 0 {
        ClientType::Pubsub
    } else {
        ClientType::Normal
    }
}


fn client(c: &mut Core, st: &mut ClientState, args: &[Bytes]) -> Frame {
    if args.len() < 2 {
        return wrong_args("client");
    }
    let sub = s(&args[1]).to_ascii_lowercase();
    let a: Vec<String> = args.iter().map(s).collect();
    let sub_args = || Frame::error(format!("ERR wrong number of arguments for 'client|{sub}' command"));
    match sub.as_str() {
        "setname" if a.len() == 3 => {
            if !valid_client_name(&a[2]) {
                return Frame::error("ERR Client names cannot contain spaces, newlines or special characters.");
            }
            st.name = Some(a[2].clone()).filter(|n| !n.is_empty());
            Frame::ok()
        }
        "getname" if a.len() == 2 => st.name.clone().map(Frame::bulk).unwrap_or(Frame::Null),
        "id" if a.len() == 2 => Frame::Integer(st.id as i64),
        "info" if a.len() == 2 => {
            sync_entry(c, st);
            match c.clients.get(&st.id) {
                Some(e) => Frame::Verbatim("txt".into(), Bytes::from(format!("{}\n", client_line(e)))),
                None => Frame::Null,
            }
        }
        "list" => {
            sync_entry(c, st);
            let mut wanted_type = None;
            let mut wanted_ids: Option<Vec<u64>> = None;
            match a.len() {
                2 => {}
                4 if a[2].eq_ignore_ascii_case("type") => match client_type(&a[3]) {
                    Some(t) => wanted_type = Some(t),
                    None => return Frame::error(format!("ERR Unknown client type '{}'", a[3])),
                },
                n if n >= 4 && a[2].eq_ignore_ascii_case("id") => {
                    let mut ids = Vec::new();
                    for v in &a[3..] {
                        match v.parse::<i64>() {
                            Ok(id) if id > 0 => ids.push(id as u64),
                            _ => return Frame::error("ERR Invalid client ID"),
                        }
                    }
                    wanted_ids = Some(ids);
                }
                _ => return Frame::error("ERR syntax error"),
            }
            let mut out = String::new();
            for e in c.clients.values() {
                if wanted_type.is_some_and(|t| t != type_of(e)) {
                    continue;
                }
                if wanted_ids.as_ref().is_some_and(|ids| !ids.contains(&e.id)) {
                    continue;
                }
                out.push_str(&client_line(e));
                out.push('\n');
            }
            Frame::Verbatim("txt".into(), Bytes::from(out))
        }
        "kill" if a.len() == 3 => {
            // the old form: CLIENT KILL <ip:port>
            let Some(id) = c.clients.values().find(|e| e.addr == a[2]).map(|e| e.id) else {
                return Frame::error("ERR No such client");
            };
            kill_client(c, st, id);
            Frame::ok()
        }
        "kill" if a.len() >= 4 => {
            if !a.len().is_multiple_of(2) {
                return Frame::error("ERR syntax error");
            }
            let mut id_filter = None;
            let mut type_filter = None;
            let mut addr_filter = None;
            let mut laddr_filter = None;
            let mut user_filter = None;
            let mut skip_me = true;
            for pair in a[2..].chunks(2) {
                let (opt, val) = (pair[0].to_ascii_lowercase(), &pair[1]);
                match opt.as_str() {
                    "id" => match val.parse::<i64>() {
                        Ok(id) if id > 0 => id_filter = Some(id as u64),
                        _ => return Frame::error("ERR client-id should be greater than 0"),
                    },
                    "type" => match client_type(val) {
                        Some(t) => type_filter = Some(t),
                        None => return Frame::error(format!("ERR Unknown client type '{val}'")),
                    },
                    "addr" => addr_filter = Some(val.clone()),
                    "laddr" => laddr_filter = Some(val.clone()),
                    "user" => {
                        if c.base_config.acl.get(val).is_none() {
                            return Frame::error(format!("ERR No such user '{val}'"));
                        }
                        user_filter = Some(val.clone());
                    }
                    "skipme" => match val.to_ascii_lowercase().as_str() {
                        "yes" => skip_me = true,
                        "no" => skip_me = false,
                        _ => return Frame::error("ERR syntax error"),
                    },
                    _ => return Frame::error("ERR syntax error"),
                }
            }
            sync_entry(c, st);
            let victims: Vec<u64> = c
                .clients
                .values()
                .filter(|e| id_filter.is_none_or(|id| e.id == id))
                .filter(|e| type_filter.is_none_or(|t| type_of(e) == t))
                .filter(|e| addr_filter.as_ref().is_none_or(|x| e.addr == *x))
                .filter(|e| laddr_filter.as_ref().is_none_or(|x| e.laddr == *x))
                .filter(|e| user_filter.as_ref().is_none_or(|x| e.user == *x))
                .filter(|e| !(skip_me && e.id == st.id))
                .map(|e| e.id)
                .collect();
            for id in &victims {
                kill_client(c, st, *id);
            }
            Frame::Integer(victims.len() as i64)
        }
        "reply" if a.len() == 3 => match a[2].to_ascii_lowercase().as_str() {
            "on" => {
                st.reply_off = false;
                st.skip_next_reply = false;
                Frame::ok()
            }
            // neither OFF nor SKIP is answered
            "off" => {
                st.reply_off = true;
                Frame::ok()
            }
            "skip" => {
                st.drop_this_reply = true;
                if !st.reply_off {
                    st.skip_next_reply = true;
                }
                Frame::ok()
            }
            _ => Frame::error("ERR syntax error"),
        },
        "no-evict" if a.len() == 3 => match a[2].to_ascii_lowercase().as_str() {
            "on" | "off" => Frame::ok(),
            _ => Frame::error("ERR syntax error"),
        },
        "pause" if a.len() >= 3 => match connection::parse_pause(args) {
            Ok((ms, writes_only)) => {
                c.pause = Some((std::time::Instant::now() + std::time::Duration::from_millis(ms as u64), writes_only));
                Frame::ok()
            }
            Err(e) => e,
        },
        "unpause" if a.len() == 2 => {
            c.pause = None;
            Frame::ok()
        }
        "tracking" if a.len() >= 3 => {
            let clients = &c.clients;
            match tracking::parse_tracking(args, st.tracking.as_ref(), |id| clients.contains_key(&(id as u64))) {
                Err(e) => e,
                Ok(TrackingRequest::Off) => {
                    st.tracking = None;
                    Frame::ok()
                }
                Ok(TrackingRequest::On { redirect, opts, prefixes }) => {
                    st.tracking = Some(tracking::turned_on(st.tracking.take(), redirect, &opts, &prefixes));
                    Frame::ok()
                }
            }
        }
        "trackinginfo" if a.len() == 2 => tracking::trackinginfo(st.tracking.as_ref()),
        "getredir" if a.len() == 2 => tracking::getredir(st.tracking.as_ref()),
        "caching" if a.len() == 3 => tracking::caching(st.tracking.as_mut(), &args[2]),
        // nothing blocks on a sentinel: a valid request unblocks no one
        "unblock" if a.len() >= 3 => connection::parse_unblock(args).map_or_else(|e| e, |_| Frame::Integer(0)),
        "help" if a.len() == 2 => Frame::Array(connection::CLIENT_HELP.iter().map(|l| Frame::simple(*l)).collect()),
        "setname" | "getname" | "id" | "info" | "kill" | "reply" | "no-evict" | "help" | "pause" | "unpause" | "tracking" | "trackinginfo"
        | "getredir" | "caching" | "unblock" => sub_args(),
        _ => unknown_sub(&a[1], "CLIENT"),
    }
}

/// Brings this connection's CLIENT LIST entry up to date before it is shown.
fn sync_entry(c: &mut Core, st: &ClientState) {
    if let Some(e) = c.clients.get_mut(&st.id) {
        e.name = st.name.clone().unwrap_or_default();
        e.user = st.user.clone();
        e.sub = st.channels.len();
        e.psub = st.patterns.len();
        e.resp = if st.proto == ProtocolVersion::Resp3 { 3 } else { 2 };
    }
}

/// Closes a connection; our own is closed after this reply, as Redis does.
fn kill_client(c: &mut Core, st: &mut ClientState, id: u64) {
    if id == st.id {
        st.close_after_reply = true;
        return;
    }
    if let Some(tx) = c.clients.get_mut(&id).and_then(|e| e.kill.take()) {
        let _ = tx.send(());
    }
}


fn acl(c: &mut Core, st: &mut ClientState, args: &[Bytes]) -> Frame {
    if args.len() < 2 {
        return wrong_args("acl");
    }
    let sub = s(&args[1]).to_ascii_lowercase();
    let a: Vec<String> = args.iter().map(s).collect();
    let sub_args = || Frame::error(format!("ERR wrong number of arguments for 'acl|{sub}' command"));
    match sub.as_str() {
        "setuser" if a.len() >= 3 => match c.base_config.acl.set_user(&a[2], &a[3..]) {
            Ok(()) => {
                // ours: persisted at once (Redis waits for the next config flush)
                c.rewrite_config();
                Frame::ok()
            }
            Err(e) => Frame::error(format!("ERR {e}")),
        },
        "getuser" if a.len() == 3 => c.base_config.acl.get(&a[2]).map(|u| u.getuser_reply()).unwrap_or(Frame::Null),
        "deluser" if a.len() >= 3 => match c.base_config.acl.delete(&a[2..]) {
            Ok(n) => {
                // connections of deleted users are closed, as Redis does
                let victims: Vec<u64> = c.clients.values().filter(|e| a[2..].contains(&e.user)).map(|e| e.id).collect();
                for id in victims {
                    kill_client(c, st, id);
                }
                if a[2..].contains(&st.user) {
                    st.close_after_reply = true;
                }
                c.rewrite_config();
                Frame::Integer(n as i64)
            }
            Err(e) => Frame::error(format!("ERR {e}")),
        },
        "list" if a.len() == 2 => Frame::Array(c.base_config.acl.config_lines().into_iter().map(Frame::bulk).collect()),
        "users" if a.len() == 2 => Frame::Array(c.base_config.acl.users().map(|u| Frame::bulk(u.name.clone())).collect()),
        "whoami" if a.len() == 2 => Frame::bulk(st.user.clone()),
        "save" | "load" if a.len() == 2 => Frame::error(
            "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.",
        ),
        "genpass" if a.len() <= 3 => {
            let bits = match a.get(2).map(|b| b.parse::<i64>()) {
                None => 256,
                Some(Ok(b)) if (1..=4096).contains(&b) => b,
                Some(_) => return Frame::error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"),
            };
            let chars = (bits as usize).div_ceil(4);
            let mut hex = String::new();
            while hex.len() < chars {
                hex.push_str(&config::random_run_id());
            }
            hex.truncate(chars);
            Frame::bulk(hex)
        }
        "cat" if a.len() == 2 => Frame::Array(ACL_CATEGORIES.iter().map(|c| Frame::bulk(*c)).collect()),
        "cat" if a.len() == 3 => {
            let cat = a[2].to_ascii_lowercase();
            if !ACL_CATEGORIES.contains(&cat.as_str()) {
                return Frame::error(format!("ERR Unknown category '{}'", a[2]));
            }
            Frame::Array(super::command_info::in_category(&cat).into_iter().map(Frame::bulk).collect())
        }
        "dryrun" if a.len() >= 4 => {
            let Some(user) = c.base_config.acl.get(&a[2]) else {
                return Frame::error(format!("ERR User '{}' not found", a[2]));
            };
            let cmd = a[3].to_ascii_lowercase();
            if !known_command(&cmd) {
                return Frame::error(format!("ERR Command '{}' not found", a[3]));
            }
            let sub = a.get(4).map(|x| x.to_ascii_lowercase()).filter(|x| super::command_info::has_subcommand(&cmd, x));
            if user.can_run(&cmd, sub.as_deref()) {
                Frame::ok()
            } else {
                let full = sub.map(|x| format!("{cmd}|{x}")).unwrap_or(cmd);
                Frame::bulk(format!("This user has no permissions to run the '{full}' command"))
            }
        }
        "log" if a.len() <= 3 => {
            let count = match a.get(2) {
                None => usize::MAX,
                Some(x) if x.eq_ignore_ascii_case("reset") => {
                    c.acl_log.clear();
                    return Frame::ok();
                }
                Some(x) => match x.parse::<i64>() {
                    Ok(n) if n >= 0 => n as usize,
                    _ => return Frame::error("ERR value is not an integer or out of range"),
                },
            };
            let now = std::time::Instant::now();
            Frame::Array(
                c.acl_log
                    .iter()
                    .take(count)
                    .map(|e| {
                        map(vec![
                            ("count", Frame::Integer(e.count as i64)),
                            ("reason", bulk(&e.reason)),
                            ("context", bulk("toplevel")),
                            ("object", bulk(&e.object)),
                            ("username", bulk(&e.username)),
                            ("age-seconds", Frame::Double(now.duration_since(e.created).as_millis() as f64 / 1000.0)),
                            ("client-info", bulk(&e.client_info)),
                        ])
                    })
                    .collect(),
            )
        }
        "help" if a.len() == 2 => Frame::Array(crate::common::acl::ACL_HELP.iter().map(|l| Frame::simple(*l)).collect()),
        "setuser" | "getuser" | "deluser" | "list" | "users" | "whoami" | "save" | "load" | "genpass" | "help" | "cat" | "dryrun" | "log" => sub_args(),
        _ => unknown_sub(&a[1], "ACL"),
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
    // any number of sections, as Redis 7.0; default, all and everything are the same
    // here (a sentinel has no other sections), unknown names add nothing
    let asked: Vec<String> = args[1..].iter().map(|a| s(a).to_ascii_lowercase()).collect();
    let all = asked.is_empty() || asked.iter().any(|a| matches!(a.as_str(), "default" | "all" | "everything"));
    let wants = |name: &str| all || asked.iter().any(|a| a == name);
    let mut out = String::new();
    let uptime = c.started.elapsed().as_secs();
    if wants("server") {
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
    if wants("clients") {
        // a sentinel has no cluster bus, no blocking commands and no tracking
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nblocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n\r\n",
            c.clients_connected,
            c.base_config.max_clients()
        ));
    }
    if wants("stats") {
        out.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\npubsub_channels:0\r\npubsub_patterns:0\r\n\r\n",
            c.total_connections, c.total_commands
        ));
    }
    if wants("cpu") {
        out.push_str("# CPU\r\n");
        out.push_str(&crate::common::proc_stats::cpu_section());
        out.push_str("\r\n");
    }
    if wants("sentinel") {
        let m = &c.machine;
        out.push_str(&format!(
            "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:{}\r\nsentinel_tilt_since_seconds:{}\r\nsentinel_running_scripts:{}\r\nsentinel_scripts_queue_length:{}\r\nsentinel_simulate_failure_flags:{}\r\n",
            m.masters.len(),
            m.tilt as u8,
            if m.tilt { (now_ms().saturating_sub(m.tilt_start) / 1000) as i64 } else { -1 },
            c.scripts.running(),
            c.scripts.len(),
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
pub fn instance_reply(m: &Master, i: &Instance, now: u64, announce_hostnames: bool) -> Frame {
    let failover = (i.role == Role::Master).then_some((m.failover_state, m.force_failover));
    let mut f: Vec<(&str, Frame)> = vec![
        ("name", bulk(&i.name)),
        ("ip", bulk(config::announced_host(&i.addr.host, announce_hostnames))),
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
    let ah = c.base_config.announce_hostnames;
    let no_master = || Frame::error("ERR No such master with that name");
    let reply = match (sub.as_str(), a.len()) {
        ("masters", 2) => Frame::Array(c.machine.masters.iter().map(|m| instance_reply(m, &m.inst, now, ah)).collect()),
        ("master", 3) => match c.machine.master(&a[2]) {
            Some(m) => instance_reply(m, &m.inst, now, ah),
            None => no_master(),
        },
        ("replicas" | "slaves", 3) => match c.machine.master(&a[2]) {
            // Redis leaves out the replicas whose INFO says replica_announced:0.
            Some(m) => Frame::Array(m.replicas.values().filter(|r| r.replica_announced).map(|r| instance_reply(m, r, now, ah)).collect()),
            None => no_master(),
        },
        ("sentinels", 3) => match c.machine.master(&a[2]) {
            Some(m) => Frame::Array(m.sentinels.iter().map(|r| instance_reply(m, r, now, ah)).collect()),
            None => no_master(),
        },
        ("get-master-addr-by-name", 3) => match c.machine.master(&a[2]) {
            Some(m) => {
                let addr = m.current_addr();
                Frame::Array(vec![bulk(config::announced_host(&addr.host, ah)), bulk(addr.port)])
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
            let mut master = MasterConfig::new(&a[2], &host, port, quorum);
            // new masters take the defaults that SENTINEL DEBUG may have changed, as Redis's
            master.down_after_ms = c.machine.timing.default_down_after;
            master.failover_timeout_ms = c.machine.timing.default_failover_timeout;
            match c.machine.monitor(now, master) {
                Ok(()) => Frame::ok(),
                Err(e) => admin_err(e),
            }
        }
        ("remove", 3) => match c.machine.remove(&a[2]) {
            Ok(()) => Frame::ok(),
            Err(e) => admin_err(e),
        },
        ("set", n) if n >= 5 => sentinel_set(c, &a[2], &a[3..]),
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
        ("debug", 2) => Frame::Map(c.machine.timing.list().into_iter().map(|(k, v)| (bulk(k), bulk(v))).collect()),
        ("debug", _) => match c.machine.timing.set(&a[2..]) {
            Ok(()) => Frame::ok(),
            Err(e) => Frame::error(e.to_string()),
        },
        ("pending-scripts", 2) => c.scripts.pending_reply(now),
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
    // option / value(s) groups applied one by one as Redis does: an error stops it, and
    // the config is saved at once when something changed (sentinelFlushConfig), the
    // reply telling a failed save only when every group was applied
    let mut changes = 0;
    let mut j = 0;
    while j < opts.len() {
        let opt = opts[j].to_ascii_lowercase();
        let given = opts[j].clone();
        let unknown = move || Frame::error(format!("ERR Unknown option or number of arguments for SENTINEL SET '{given}'"));
        // rename-command takes two values, every other option one
        let take = if opt == "rename-command" { 2 } else { 1 };
        let Some(values) = opts.get(j + 1..j + 1 + take) else { return unknown() };
        let pair = &opts[j..j + 1 + take];
        j += 1 + take;
        let val = values[0].clone();
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
                    Err(Frame::error("ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration"))
                } else if !val.is_empty() && !config::is_executable(std::path::Path::new(&val)) {
                    // Redis's access(X_OK), relative to the working directory
                    Err(Frame::error(if opt == "notification-script" {
                        "ERR Notification script seems non existing or non executable"
                    } else {
                        "ERR Client reconfiguration script seems non existing or non executable"
                    }))
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
            "rename-command" => {
                let (old, new) = (values[0].clone(), values[1].clone());
                if old.is_empty() || new.is_empty() {
                    let empty = if new.is_empty() { &new } else { &old };
                    Err(Frame::error(format!("ERR Invalid argument '{empty}' for SENTINEL SET '{opt}'")))
                } else {
                    // a later renaming replaces an earlier one; renaming to itself removes it
                    Ok(Box::new(move |m| {
                        m.renamed_commands.retain(|(c, _)| !c.eq_ignore_ascii_case(&old));
                        if !old.eq_ignore_ascii_case(&new) {
                            m.renamed_commands.push((old.to_ascii_uppercase(), new));
                        }
                    }))
                }
            }
            _ => Err(unknown()),
        };
        match res {
            Ok(f) => {
                // the event shows no password, as Redis's
                let what = if opt == "auth-pass" { format!("{} ******", pair[0]) } else { pair.join(" ") };
                if let Err(e) = c.machine.set_option(name, f, &what) {
                    if changes > 0 {
                        flush_logged(c);
                    }
                    return admin_err(e);
                }
                changes += 1;
            }
            Err(e) => {
                if changes > 0 {
                    flush_logged(c);
                }
                return e;
            }
        }
    }
    if changes > 0 && !flush_logged(c) {
        return Frame::error("ERR Failed to save config file. Check server logs.");
    }
    Frame::ok()
}

/// Redis's sentinelFlushConfig: writes the config now, logging a failure; false if it failed.
fn flush_logged(c: &mut Core) -> bool {
    match c.flush_config_now() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("WARNING: Sentinel was not able to save the new configuration on disk!!!: {e}");
            false
        }
    }
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
                    .filter(|(k, _)| string_match(pat.as_bytes(), k.as_bytes(), false))
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
                        let level = v.to_ascii_lowercase();
                        // changes what is logged at once; the rewrite below persists it
                        super::logging::set_level(&level) && {
                            cfg.loglevel = Some(level);
                            true
                        }
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
