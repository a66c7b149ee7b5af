//! Connection commands: PING, ECHO, QUIT, RESET, AUTH, HELLO, CLIENT.

use bytes::Bytes;

use crate::resp::{Frame, ProtocolVersion};
use crate::server::client::{ClientState, Outbound, ReplyMode};
use crate::server::command::{cmd, parse_int, syntax_error, CommandSpec, Ctx};
use crate::server::config::{REDIS_VERSION, RF_VERSION};
use crate::server::commands::tracking;
use crate::server::dispatch;

pub fn commands() -> Vec<CommandSpec> {
    let c = |s: CommandSpec| s.group("connection");
    vec![
        c(cmd("ping", -1, "fast", 0, 0, 0, "fast connection", ping).summary("Ping the server")),
        c(cmd("echo", 2, "loading stale fast", 0, 0, 0, "fast connection", echo).summary("Echo the given string")),
        c(cmd("quit", -1, "allow_busy noscript loading stale fast no_auth", 0, 0, 0, "fast connection", quit).summary("Close the connection")),
        c(cmd("reset", 1, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "fast connection", reset).since("6.2.0").summary("Reset the connection")),
        c(cmd("auth", -2, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "fast connection", auth).summary("Authenticate to the server")),
        c(cmd("hello", -1, "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "fast connection", hello).since("6.0.0").summary("Handshake with Redis")),
        c(cmd("client", -2, "", 0, 0, 0, "slow", crate::server::commands::keys::container_help).since("2.4.0").summary("A container for client connection commands").subs(vec![
            cmd("id", 2, "noscript loading stale", 0, 0, 0, "slow connection", client_id).since("5.0.0").summary("Returns the client ID for the current connection"),
            cmd("getname", 2, "noscript loading stale", 0, 0, 0, "slow connection", client_getname).since("2.6.9").summary("Get the current connection name"),
            cmd("setname", 3, "noscript loading stale", 0, 0, 0, "slow connection", client_setname).since("2.6.9").summary("Set the current connection name"),
            cmd("info", 2, "noscript loading stale", 0, 0, 0, "slow connection", client_info).since("6.2.0").summary("Returns information about the current client connection.").tips(&["nondeterministic_output"]),
            cmd("list", -2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous connection", client_list).since("2.4.0").summary("Get the list of client connections").tips(&["nondeterministic_output"]),
            cmd("kill", -3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous connection", client_kill).since("2.4.0").summary("Kill the connection of a client"),
            cmd("pause", -3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous connection", client_pause).since("2.9.50").summary("Stop processing commands from clients for some time"),
            cmd("unpause", 2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous connection", client_unpause).since("6.2.0").summary("Resume processing of clients that were paused"),
            cmd("reply", 3, "noscript loading stale", 0, 0, 0, "slow connection", client_reply).since("3.2.0").summary("Instruct the server whether to reply to commands"),
            cmd("no-evict", 3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous connection", client_no_evict).since("7.0.0").summary("Set client eviction mode for the current connection"),
            cmd("unblock", -3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous connection", client_unblock).since("5.0.0").summary("Unblock a client blocked in a blocking command from a different connection"),
            cmd("getredir", 2, "noscript loading stale", 0, 0, 0, "slow connection", tracking::client_getredir).since("6.0.0").summary("Get tracking notifications redirection client ID if any"),
            cmd("tracking", -3, "noscript loading stale", 0, 0, 0, "slow connection", tracking::client_tracking).since("6.0.0").summary("Enable or disable server assisted client side caching support"),
            cmd("trackinginfo", 2, "noscript loading stale", 0, 0, 0, "slow connection", tracking::client_trackinginfo).since("6.2.0").summary("Return information about server assisted client side caching for the current connection"),
            cmd("caching", 3, "noscript loading stale", 0, 0, 0, "slow connection", tracking::client_caching).since("6.0.0").summary("Instruct the server about tracking or not keys in the next request"),
            cmd("setinfo", 4, "noscript loading stale", 0, 0, 0, "slow connection", client_setinfo).since("7.2.0").summary("Set client or connection specific info"),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow connection", client_help).since("5.0.0").summary("Show helpful text about the different subcommands"),
        ])),
    ]
}

fn ping(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 2 {
        return crate::server::command::wrong_args("ping");
    }
    if ctx.client.proto == ProtocolVersion::Resp2 && ctx.client.subscriptions() > 0 {
        return Frame::Array(vec![Frame::bulk("pong"), Frame::Bulk(args.get(1).cloned().unwrap_or_default())]);
    }
    match args.get(1) {
        Some(m) => Frame::Bulk(m.clone()),
        None => Frame::Simple("PONG".into()),
    }
}

fn echo(_ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    Frame::Bulk(args[1].clone())
}

fn quit(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    // The connection task answers QUIT itself and closes; reaching here means MULTI etc.
    Frame::ok()
}

/// READONLY / READWRITE: cluster commands (ACL rules may name them).
fn reset(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    dispatch::discard_transaction(ctx.srv, ctx.client);
    crate::server::pubsub::unsubscribe_all(ctx.srv, ctx.client);
    crate::server::commands::tracking::disable(ctx.srv, ctx.client);
    let id = ctx.client.id;
    ctx.srv.monitors.retain(|&m| m != id);
    ctx.client.is_monitor = false;
    ctx.client.db = 0;
    ctx.client.proto = ProtocolVersion::Resp2;
    ctx.client.name = None;
    ctx.client.reply_mode = ReplyMode::On;
    ctx.client.no_evict = false;
    ctx.client.authenticated = ctx.srv.acl.default_open();
    ctx.client.user = "default".into();
    Frame::Simple("RESET".into())
}

fn auth(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return syntax_error();
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 3 { (&args[1], &args[2]) } else { (b"default", &args[1]) };
    if args.len() == 2 && ctx.srv.acl.default_user().is_none_or(|u| u.nopass) {
        return Frame::error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    if crate::server::acl::authenticate(ctx, &args[0], user, pass) {
        Frame::ok()
    } else {
        Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
    }
}

fn hello(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut proto = None;
    let mut i = 1;
    if args.len() >= 2 {
        match parse_int(&args[1]) {
            Ok(v) if v == 2 || v == 3 => proto = Some(v),
            Ok(_) => return Frame::error("NOPROTO unsupported protocol version"),
            Err(_) => return Frame::error("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut setname = None;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                if !crate::server::acl::authenticate(ctx, &args[0], &args[i + 1], &args[i + 2]) {
                    return Frame::error("WRONGPASS invalid username-password pair or user is disabled.");
                }
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                if let Err(e) = valid_name(&args[i + 1]) {
                    return e;
                }
                setname = Some(args[i + 1].clone());
                i += 2;
            }
            _ => return Frame::error(format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(&args[i]))),
        }
    }
    if !ctx.client.authenticated {
        return Frame::error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = setname {
        ctx.client.name = if n.is_empty() { None } else { Some(n) };
    }
    if let Some(p) = proto {
        ctx.client.proto = if p == 3 { ProtocolVersion::Resp3 } else { ProtocolVersion::Resp2 };
    }
    let role = if ctx.srv.repl.is_replica() { "replica" } else { "master" };
    Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("redis")),
        (Frame::bulk("version"), Frame::bulk(REDIS_VERSION)),
        (Frame::bulk("proto"), Frame::Integer(if ctx.client.proto == ProtocolVersion::Resp3 { 3 } else { 2 })),
        (Frame::bulk("id"), Frame::Integer(ctx.client.id as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk(role)),
        (Frame::bulk("modules"), Frame::Array(vec![])),
    ])
}

fn valid_name(name: &[u8]) -> Result<(), Frame> {
    if name.iter().any(|&c| c < b'!' || c > b'~') {
        return Err(Frame::error("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}

fn client_id(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Integer(ctx.client.id as i64)
}

fn client_getname(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    match &ctx.client.name {
        Some(n) => Frame::Bulk(n.clone()),
        None => Frame::Null,
    }
}

fn client_setname(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = valid_name(&args[2]) {
        return e;
    }
    ctx.client.name = if args[2].is_empty() { None } else { Some(args[2].clone()) };
    Frame::ok()
}

fn client_setinfo(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let value = String::from_utf8_lossy(&args[3]).into_owned();
    match args[2].to_ascii_lowercase().as_slice() {
        b"lib-name" => ctx.client.lib_name = Some(value),
        b"lib-ver" => ctx.client.lib_ver = Some(value),
        _ => return Frame::error(format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(&args[2]))),
    }
    Frame::ok()
}

/// One CLIENT LIST / CLIENT INFO line, with Redis 7.0's fields.
pub fn client_line(c: &ClientState, now_ms: i64, current_cmd: Option<&str>) -> String {
    let age = (now_ms - c.created_ms).max(0) / 1000;
    let idle = (now_ms - c.last_interaction_ms).max(0) / 1000;
    let name = c.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default();
    let multi = c.multi.as_ref().map(|q| q.len() as i64).unwrap_or(-1);
    let cmd = current_cmd.unwrap_or(&c.last_cmd);
    format!(
        "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=16384 rbp=16384 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={}",
        c.id,
        c.addr,
        c.laddr,
        name,
        age,
        idle,
        c.flags(),
        c.db,
        c.channels.len(),
        c.patterns.len(),
        c.shard_channels.len(),
        multi,
        c.qbuf,
        c.qbuf_free,
        c.output_bytes(),
        20 * 1024 + c.qbuf + c.output_bytes(),
        cmd,
        c.user,
        tracking::redirect_field(c),
        if c.proto == ProtocolVersion::Resp3 { 3 } else { 2 }
    )
}

fn client_info(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let line = client_line(ctx.client, ctx.now_ms, Some("client|info"));
    Frame::Verbatim("txt".into(), Bytes::from(format!("{line}\n")))
}

fn client_list(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut type_filter: Option<String> = None;
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"TYPE" if i + 1 < args.len() => {
                let t = String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase();
                if !["normal", "master", "replica", "slave", "pubsub"].contains(&t.as_str()) {
                    return Frame::error(format!("ERR Unknown client type '{}'", String::from_utf8_lossy(&args[i + 1])));
                }
                type_filter = Some(t);
                i += 2;
            }
            b"ID" if i + 1 < args.len() => {
                let mut v = Vec::new();
                for a in &args[i + 1..] {
                    match parse_int(a) {
                        Ok(n) if n > 0 => v.push(n as u64),
                        _ => return Frame::error("ERR Invalid client ID"),
                    }
                }
                ids = Some(v);
                i = args.len();
            }
            _ => return syntax_error(),
        }
    }
    let mut all: Vec<&ClientState> = ctx.srv.clients.values().collect();
    all.push(ctx.client);
    all.sort_by_key(|c| c.id);
    let mut out = String::new();
    for c in all {
        if let Some(ids) = &ids {
            if !ids.contains(&c.id) {
                continue;
            }
        }
        if let Some(t) = &type_filter {
            if client_type(c) != t.as_str() && !(t == "slave" && client_type(c) == "replica") {
                continue;
            }
        }
        let current = if c.id == ctx.client.id { Some("client|list") } else { None };
        out.push_str(&client_line(c, ctx.now_ms, current));
        out.push('\n');
    }
    Frame::Verbatim("txt".into(), Bytes::from(out))
}

fn client_type(c: &ClientState) -> &'static str {
    if c.is_master_link {
        "master"
    } else if c.is_replica {
        "replica"
    } else if c.subscriptions() > 0 {
        "pubsub"
    } else {
        "normal"
    }
}

fn client_kill(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    // Old form: CLIENT KILL addr:port.
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(&args[2]).into_owned();
        let found = kill_matching(ctx, |c| c.addr == addr);
        return if found > 0 { Frame::ok() } else { Frame::error("ERR No such client") };
    }
    if args.len() % 2 != 0 {
        return syntax_error();
    }
    let mut filters: Vec<(String, String)> = Vec::new();
    let mut skipme = true;
    for pair in args[2..].chunks(2) {
        let k = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let v = String::from_utf8_lossy(&pair[1]).into_owned();
        match k.as_str() {
            "id" => {
                if parse_int(&pair[1]).map(|n| n <= 0).unwrap_or(true) {
                    return Frame::error("ERR client-id should be greater than 0");
                }
            }
            "type" => {
                if !["normal", "master", "replica", "slave", "pubsub"].contains(&v.to_ascii_lowercase().as_str()) {
                    return Frame::error(format!("ERR Unknown client type '{v}'"));
                }
            }
            "user" if !ctx.srv.acl.users.contains_key(v.as_str()) => return Frame::error(format!("ERR No such user '{v}'")),
            "addr" | "laddr" | "user" => {}
            "skipme" => {
                skipme = match v.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return syntax_error(),
                };
                continue;
            }
            "maxage" => {}
            _ => return syntax_error(),
        }
        filters.push((k, v));
    }
    let now = ctx.now_ms;
    let me = ctx.client.id;
    let n = kill_matching(ctx, |c| {
        if skipme && c.id == me {
            return false;
        }
        filters.iter().all(|(k, v)| match k.as_str() {
            "id" => c.id.to_string() == *v,
            "addr" => c.addr == *v,
            "laddr" => c.laddr == *v,
            "user" => c.user == *v,
            "type" => {
                let t = v.to_ascii_lowercase();
                let ct = client_type(c);
                ct == t || (t == "slave" && ct == "replica")
            }
            "maxage" => v.parse::<i64>().map(|m| (now - c.created_ms) / 1000 >= m).unwrap_or(false),
            _ => false,
        })
    });
    Frame::Integer(n as i64)
}

/// Kills every client for which `pred` holds (including the caller). Returns the count.
fn kill_matching(ctx: &mut Ctx, pred: impl Fn(&ClientState) -> bool) -> usize {
    let mut n = 0;
    let repl = ctx.srv.repl.repl.clone();
    for c in ctx.srv.clients.values_mut() {
        if pred(c) {
            c.killed = true;
            if c.is_master_link {
                // Closed at once, not by a task that a busy server (DEBUG SLEEP in the same
                // MULTI) would hold up: Redis's master sees the link go immediately.
                repl.kill_master_link();
            } else if let Some(tx) = &c.tx {
                let _ = tx.send(Outbound::Close);
            }
            n += 1;
        }
    }
    if pred(ctx.client) {
        ctx.client.killed = true;
        n += 1;
    }
    n
}

/// Redis 7.0's reply to CLIENT PAUSE / UNBLOCK with arguments past the last option: its
/// generic subcommand error, naming the subcommand as the client typed it.
fn too_many_args(sub: &Bytes) -> Frame {
    Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.", String::from_utf8_lossy(sub)))
}

/// CLIENT PAUSE <timeout> [WRITE|ALL] -> (milliseconds, writes only), with Redis's errors;
/// the server's and the sentinel's.
pub fn parse_pause(args: &[Bytes]) -> Result<(i64, bool), Frame> {
    let ms = match parse_int(&args[2]) {
        Ok(n) if n >= 0 => n,
        _ => return Err(Frame::error("ERR timeout is not an integer or out of range")),
    };
    let mut writes_only = false;
    if args.len() == 4 {
        match args[3].to_ascii_uppercase().as_slice() {
            b"WRITE" => writes_only = true,
            b"ALL" => {}
            _ => return Err(Frame::error("ERR CLIENT PAUSE mode must be WRITE or ALL")),
        }
    } else if args.len() > 4 {
        return Err(too_many_args(&args[1]));
    }
    Ok((ms, writes_only))
}

fn client_pause(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (ms, writes_only) = match parse_pause(args) {
        Ok(p) => p,
        Err(e) => return e,
    };
    ctx.srv.client_pause_until_ms.store(ctx.now_ms + ms, std::sync::atomic::Ordering::SeqCst);
    ctx.srv.client_pause_writes_only = writes_only;
    Frame::ok()
}

fn client_unpause(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    ctx.srv.client_pause_until_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    Frame::ok()
}

fn client_reply(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match args[2].to_ascii_uppercase().as_slice() {
        b"ON" => {
            ctx.client.reply_mode = ReplyMode::On;
            Frame::ok()
        }
        b"OFF" => {
            ctx.client.reply_mode = ReplyMode::Off;
            Frame::ok()
        }
        b"SKIP" => {
            ctx.client.reply_mode = ReplyMode::SkipNext;
            Frame::ok()
        }
        _ => syntax_error(),
    }
}

fn client_no_evict(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match args[2].to_ascii_uppercase().as_slice() {
        b"ON" => ctx.client.no_evict = true,
        b"OFF" => ctx.client.no_evict = false,
        _ => return syntax_error(),
    }
    Frame::ok()
}

/// CLIENT UNBLOCK <id> [TIMEOUT|ERROR] -> (client id, reply with an error), with Redis's
/// errors; the server's and the sentinel's.
pub fn parse_unblock(args: &[Bytes]) -> Result<(u64, bool), Frame> {
    let Ok(id) = parse_int(&args[2]) else {
        return Err(Frame::error("ERR value is not an integer or out of range"));
    };
    let as_error = match args.get(3).map(|a| a.to_ascii_uppercase()) {
        None => false,
        Some(m) if m == b"TIMEOUT" => false,
        Some(m) if m == b"ERROR" => true,
        Some(_) => return Err(Frame::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")),
    };
    if args.len() > 4 {
        return Err(too_many_args(&args[1]));
    }
    Ok((id as u64, as_error))
}

fn client_unblock(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (id, as_error) = match parse_unblock(args) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let Some(bc) = dispatch::unregister_blocked(ctx.srv, id) else {
        return Frame::Integer(0);
    };
    let reply = if as_error { Frame::error("UNBLOCKED client unblocked via CLIENT UNBLOCK") } else { bc.timeout_reply };
    if as_error {
        // an error reply of the blocked command: counted in errorstats and as a failed
        // call of that command, as Redis's afterErrorReply
        dispatch::count_error(ctx.srv, &reply);
        let table = ctx.srv.commands.clone();
        if let Some(spec) = bc.args.first().and_then(|name| table.lookup(name)).and_then(|top| dispatch::resolve(top, &bc.args).ok()) {
            spec.stats.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if let Some(tx) = ctx.srv.clients.get(&id).and_then(|c| c.tx.as_ref()) {
        let _ = tx.send(Outbound::Unblocked(reply));
    }
    Frame::Integer(1)
}

fn client_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Array(CLIENT_HELP.iter().map(|l| Frame::Simple(l.to_string())).collect())
}

/// CLIENT HELP, the server's and the sentinel's (Redis Sentinel shows the same text).
pub const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

#[allow(dead_code)]
fn version_string() -> String {
    format!("{REDIS_VERSION} (rf-server {RF_VERSION})")
}
