//! Command execution: Redis's `processCommand` checks (lookup, arity, auth, OOM,
//! read-only replica, pub/sub context, MULTI queueing) and `call` (run, stats, slow log,
//! MONITOR, propagation, WATCH invalidation), plus serving blocked clients.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::client::{ClientState, Outbound, Queued};
use super::command::{flags, BlockRequest, CommandSpec, CommandTable, Ctx};
use super::state::{BlockedClient, ServerState, SlowlogEntry};
use crate::resp::{Frame, ProtocolVersion};

/// Result of executing one request.
#[derive(Debug)]
pub enum Outcome {
    Reply(Frame),
    /// The client is blocked; its reply comes later through its outbound queue.
    Blocked,
}

/// Feeds a write to replication and AOF (every propagated command goes through here).
pub fn propagate(srv: &mut ServerState, db: usize, argv: &[Bytes]) {
    if srv.replaying_aof {
        return;
    }
    if let Some(effects) = srv.script_effects.as_mut() {
        effects.push(db, argv);
        return;
    }
    if let Some(effects) = srv.exec_effects.as_mut() {
        effects.push((super::scripting::repl_targets::ALL, db, argv.to_vec()));
        return;
    }
    srv.repl.feed(db, argv);
    srv.persist.feed(db, argv);
}

/// Redis's "unknown command" text.
pub fn unknown_command_error(args: &[Bytes]) -> Frame {
    let mut rest = String::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let s = String::from_utf8_lossy(a);
        let cut: String = s.chars().take(room).collect();
        rest.push_str(&format!("'{cut}' "));
    }
    let name: String = String::from_utf8_lossy(&args[0]).chars().take(128).collect();
    Frame::error(format!("ERR unknown command '{name}', with args beginning with: {rest}"))
}

/// Resolves container commands to their subcommand spec, or an error reply.
pub fn resolve<'a>(spec: &'a Arc<CommandSpec>, args: &[Bytes]) -> Result<&'a Arc<CommandSpec>, Frame> {
    if spec.subcommands.is_empty() || args.len() < 2 {
        return Ok(spec);
    }
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let full = format!("{}|{}", spec.name, sub);
    match spec.subcommands.iter().find(|s| s.name == full) {
        Some(s) => Ok(s),
        None => {
            let shown: String = String::from_utf8_lossy(&args[1]).chars().take(128).collect();
            Err(Frame::error(format!("ERR unknown subcommand '{shown}'. Try {} HELP.", spec.name.to_ascii_uppercase())))
        }
    }
}

const SUBSCRIBED_ALLOWED: &[&str] = &["ping", "subscribe", "ssubscribe", "unsubscribe", "sunsubscribe", "psubscribe", "punsubscribe", "quit", "reset"];

/// Runs one request from `client` with every Redis check. `args` is non-empty.
pub fn execute(srv: &mut ServerState, client: &mut ClientState, args: Vec<Bytes>, now_ms: i64) -> Outcome {
    if !client.is_replica {
        return execute_command(srv, client, args, now_ms);
    }
    // A replica's link carries only REPLCONF ACKs, which get no reply (Redis 7.0): a
    // command that touches the keyspace is refused, and any reply disconnects the replica
    // with a log line instead of being written into the replication stream.
    let table = srv.commands.clone();
    let spec = table.lookup(&args[0]).and_then(|top| resolve(top, &args).ok()).cloned();
    let name = spec.as_ref().map(|s| s.name.clone()).unwrap_or_else(|| "<unknown>".to_string());
    let outcome = match spec.as_deref().filter(|s| s.has(flags::WRITE) || s.has(flags::READONLY) || s.has(flags::MAY_REPLICATE)) {
        Some(keyspace_command) => {
            client.last_interaction_ms = now_ms;
            client.tot_cmds += 1;
            reject(srv, keyspace_command, Frame::error("ERR Replica can't interact with the keyspace"))
        }
        None => execute_command(srv, client, args, now_ms),
    };
    match outcome {
        Outcome::Reply(frame) if !is_no_reply_marker(&frame) => {
            if let Frame::Error(e) = &frame {
                let text = e.strip_prefix("ERR ").unwrap_or(e);
                super::log::warning(&format!("== CRITICAL == This master is sending an error to its replica: '{text}' after processing the command '{name}'"));
                srv.stats.unexpected_error_replies += 1;
            }
            let info = super::commands::connection::client_line(client, now_ms, Some(&name));
            super::log::warning(&format!("Replica generated a reply to command '{name}', disconnecting it: {info}"));
            client.killed = true;
            if let Some(tx) = &client.tx {
                let _ = tx.send(Outbound::Close);
            }
            Outcome::Reply(Frame::Simple(super::commands::pubsub::NO_REPLY.to_string()))
        }
        other => other,
    }
}

fn execute_command(srv: &mut ServerState, client: &mut ClientState, args: Vec<Bytes>, now_ms: i64) -> Outcome {
    client.last_interaction_ms = now_ms;
    client.tot_cmds += 1;
    let table = srv.commands.clone();
    let Some(top) = table.lookup(&args[0]) else {
        flag_multi_error(client);
        srv.stats.total_error_replies += 1;
        *srv.stats.errors.entry("ERR".into()).or_default() += 1;
        return Outcome::Reply(unknown_command_error(&args));
    };
    let spec = match resolve(top, &args) {
        Ok(s) => s.clone(),
        Err(e) => {
            flag_multi_error(client);
            return reject(srv, top, e);
        }
    };
    if client.last_cmd != spec.name {
        client.last_cmd.clone_from(&spec.name);
    }
    if !spec.check_arity(args.len()) {
        flag_multi_error(client);
        return reject_command(srv, client, &spec, super::command::wrong_args(&spec.name));
    }
    if !client.authenticated && !spec.has(flags::NO_AUTH) {
        flag_multi_error(client);
        return reject_command(srv, client, &spec, Frame::error("NOAUTH Authentication required."));
    }
    if !(client.multi.is_some() && spec.has(flags::NO_MULTI)) {
        if let Err((d, idx)) = super::acl::check_client(srv, client, &spec, &args) {
            let context = if client.multi.is_some() { "multi" } else { "toplevel" };
            super::acl::log_command_denial(srv, client, &spec, &args, d, idx, context, now_ms);
            flag_multi_error(client);
            return reject_command(srv, client, &spec, super::acl::noperm_error(d, &spec));
        }
    }
    let is_exec = spec.name == "exec";
    // A script with a shebang runs under the flags it declares (Redis's evalGetCommandFlags).
    let cmd_flags = if spec.group == "scripting" { super::scripting::effective_command_flags(srv, &spec, &args) } else { spec.flags };
    let has = |flag: u32| cmd_flags & flag != 0;
    let queued_write = is_exec && any_queued(client, &table, |s| s.has(flags::DENYOOM));
    // Every command frees memory first (Redis's processCommand); only the ones that may
    // grow the dataset are refused when that fails.
    let mut evicted_invalidations = Vec::new();
    srv.pre_command_oom = false;
    if srv.limits.maxmemory > 0 && !client.is_master_link {
        let ok = super::evict::perform_evictions(srv, Some(client));
        srv.pre_command_oom = !ok && srv.used_memory() > srv.limits.maxmemory as usize;
        if srv.tracking.is_active() {
            evicted_invalidations = super::commands::tracking::take_pending_for(srv, client);
        }
        if !ok && (has(flags::DENYOOM) || queued_write) && srv.used_memory() > srv.limits.maxmemory as usize {
            flag_multi_error(client);
            let outcome = reject_command(srv, client, &spec, Frame::error("OOM command not allowed when used memory > 'maxmemory'."));
            return before_reply(client, evicted_invalidations, outcome);
        }
    }
    // Client-side caching keeps its table within tracking-table-max-keys before every
    // command, as Redis's processCommand.
    if srv.tracking.tracking_clients() > 0 {
        super::commands::tracking::limit_used_slots(srv, Some(client));
        evicted_invalidations.extend(super::commands::tracking::take_pending_for(srv, client));
    }
    // The rest may end early (a refusal, QUEUED): every way out still sends the
    // invalidations made above before its reply.
    let outcome = (|| -> Outcome {
        // While the server cannot persist, Redis refuses writes, and PING too (a sentinel then
        // sees the master in trouble): -MISCONF.
        let queued_writes = is_exec && any_queued(client, &table, |s| s.has(flags::WRITE));
        if has(flags::WRITE) || queued_writes || spec.name == "ping" {
            if let Some(e) = srv.persist.svc.write_refusal() {
                if !client.is_master_link {
                    flag_multi_error(client);
                    return reject_command(srv, client, &spec, Frame::error(e));
                }
                if spec.name != "ping" {
                    obey_master_despite_disk_error(srv.limits.replica_ignore_disk_write_errors);
                }
            }
        }
        if has(flags::WRITE) && !client.is_master_link && srv.repl.is_replica() && srv.limits.replica_read_only {
            flag_multi_error(client);
            return reject_command(srv, client, &spec, Frame::error("READONLY You can't write against a read only replica."));
        }
        // EXEC is refused as a whole when one of its queued commands could not run on a stale
        // replica (Redis's cmd_inv_flags & CMD_STALE): -EXECABORT ... MASTERDOWN.
        let queued_not_stale = is_exec && any_queued(client, &table, |s| !s.has(flags::STALE));
        if (!has(flags::STALE) || queued_not_stale) && !client.is_master_link {
            if let Some(e) = srv.repl.repl.stale_refusal() {
                flag_multi_error(client);
                return reject_command(srv, client, &spec, e);
            }
        }
        if (has(flags::WRITE) || queued_write) && !client.is_master_link {
            if let Some(e) = srv.repl.repl.min_replicas_refusal() {
                flag_multi_error(client);
                return reject_command(srv, client, &spec, e);
            }
        }
        if client.proto == ProtocolVersion::Resp2 && client.subscriptions() > 0 && !SUBSCRIBED_ALLOWED.contains(&spec.name.as_str()) {
            return reject(
                srv,
                &spec,
                Frame::error(format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    spec.name
                )),
            );
        }
        if srv.loading && !spec.has(flags::LOADING) {
            return reject_command(srv, client, &spec, Frame::error("LOADING Redis is loading the dataset in memory"));
        }
        if client.multi.is_some() && !matches!(spec.name.as_str(), "exec" | "discard" | "multi" | "watch" | "quit" | "reset") {
            if spec.has(flags::NO_MULTI) {
                flag_multi_error(client);
                return reject_command(srv, client, &spec, Frame::error("ERR Command not allowed inside a transaction"));
            }
            if let Some(q) = client.multi.as_mut() {
                q.push(Queued { args });
            }
            return Outcome::Reply(Frame::Simple("QUEUED".into()));
        }
        let (reply, block) = call(srv, client, &spec, &args, now_ms, false);
        let outcome = match block {
            Some(req) => {
                register_blocked(srv, client, args, req);
                Outcome::Blocked
            }
            None => {
                let reply = after_own_messages(client, reply);
                if srv.tracking.is_active() {
                    super::commands::tracking::command_done(client, &spec);
                    Outcome::Reply(super::commands::tracking::after_command(srv, client, reply))
                } else {
                    Outcome::Reply(reply)
                }
            }
        };
        if !srv.ready_keys.is_empty() {
            handle_ready_keys(srv, Some(client), now_ms);
        }
        if !srv.blocked.is_empty() {
            super::commands::stream::unblock_readgroup_of_gone_streams(srv);
        }
        outcome
    })();
    before_reply(client, evicted_invalidations, outcome)
}

/// Whether a command queued in the client's transaction matches `pred` (Redis's
/// mstate.cmd_flags / cmd_inv_flags, which EXEC's checks use): subcommands are resolved,
/// as their flags are their own.
fn any_queued(client: &ClientState, table: &CommandTable, pred: impl Fn(&CommandSpec) -> bool) -> bool {
    client.multi.as_ref().is_some_and(|q| {
        q.iter().any(|c| table.lookup(&c.args[0]).and_then(|top| resolve(top, &c.args).ok()).is_some_and(|s| pred(s)))
    })
}

/// Frames the command queued for its own client (a message it published to itself, a
/// keyspace event) go out before its reply: the reply joins them and the marker stands in.
pub fn after_own_messages(client: &mut ClientState, reply: Frame) -> Frame {
    if client.deferred.is_empty() || is_no_reply_marker(&reply) {
        return reply;
    }
    client.deferred.push(reply);
    Frame::Simple(super::commands::pubsub::NO_REPLY.to_string())
}

pub fn is_no_reply_marker(f: &Frame) -> bool {
    matches!(f, Frame::Simple(s) if s == super::commands::pubsub::NO_REPLY)
}

/// Redis's `flagTransaction`: an open transaction's EXEC will abort.
pub fn flag_multi_error(client: &mut ClientState) {
    if client.multi.is_some() {
        client.multi_error = true;
    }
}

/// Redis's `rejectCommand`: a refused EXEC also discards the transaction, and its error
/// becomes `EXECABORT Transaction discarded because of: <reason>` (an `ERR` reason loses its
/// code, other codes such as OOM stay).
fn reject_command(srv: &mut ServerState, client: &mut ClientState, spec: &CommandSpec, e: Frame) -> Outcome {
    if spec.name != "exec" {
        return reject(srv, spec, e);
    }
    discard_transaction(srv, client);
    let reason = match &e {
        Frame::Error(text) => text.strip_prefix("ERR ").unwrap_or(text).to_string(),
        _ => String::new(),
    };
    reject(srv, spec, Frame::error(format!("EXECABORT Transaction discarded because of: {reason}")))
}

fn reject(srv: &mut ServerState, spec: &CommandSpec, e: Frame) -> Outcome {
    spec.stats.rejected.fetch_add(1, Ordering::Relaxed);
    count_error(srv, &e);
    Outcome::Reply(e)
}

pub fn count_error(srv: &mut ServerState, e: &Frame) {
    if let Frame::Error(text) = e {
        srv.stats.total_error_replies += 1;
        let prefix = text.split(' ').next().unwrap_or("ERR").to_string();
        *srv.stats.errors.entry(prefix).or_default() += 1;
    }
}

/// Drops a client's transaction state (EXEC, DISCARD, RESET).
pub fn discard_transaction(srv: &mut ServerState, client: &mut ClientState) {
    client.multi = None;
    client.multi_error = false;
    unwatch_all(srv, client);
}

pub fn unwatch_all(srv: &mut ServerState, client: &mut ClientState) {
    for key in client.watched.drain(..) {
        if let Some(ids) = srv.watched.get_mut(&key) {
            ids.retain(|&i| i != client.id);
            if ids.is_empty() {
                srv.watched.remove(&key);
            }
        }
    }
    client.watched_stale.clear();
    client.dirty_cas = false;
}

/// Runs a resolved command (Redis's `call`). Returns the reply and a block request.
pub fn call(srv: &mut ServerState, client: &mut ClientState, spec: &Arc<CommandSpec>, args: &[Bytes], now_ms: i64, in_exec: bool) -> (Frame, Option<BlockRequest>) {
    let dirty_before = srv.dirty;
    let started = Instant::now();
    srv.reply_error_counted = false;
    // Redis 7.0 feeds monitors once a command ran: EXEC shows after the commands it ran
    // (the others, fed first here, show in the same order).
    let monitored = !spec.has(flags::SKIP_MONITOR) && !spec.has(flags::ADMIN);
    let is_exec = spec.name == "exec";
    if monitored && !is_exec && !srv.monitors.is_empty() {
        feed_monitors(srv, client, args, now_ms);
    }
    let measure = srv.limits.maxmemory > 0 && spec.has(flags::WRITE);
    let keys = if measure || !srv.watched.is_empty() || srv.tracking.is_active() { spec.key_indices(args) } else { Vec::new() };
    let db = client.db;
    if measure {
        for &k in &keys {
            if let Some(pos) = srv.dbs[db].find(&args[k]) {
                let size = srv.dbs[db].slot(pos).value.heap_size() as isize;
                srv.dbs[db].mem -= size;
            }
        }
    }
    let mut ctx = Ctx::new(srv, client, now_ms);
    ctx.in_exec = in_exec;
    // A client still marked blocked is being served by `handle_ready_keys`.
    ctx.serving_blocked = ctx.client.blocked;
    let reply = (spec.handler)(&mut ctx, args);
    let block = ctx.block_request.take();
    let rewritten = ctx.rewritten.take();
    if monitored && is_exec && !ctx.srv.monitors.is_empty() {
        feed_monitors(ctx.srv, ctx.client, args, now_ms);
    }
    let also = std::mem::take(&mut ctx.also);
    let prevent = ctx.prevent_propagation;
    let unchanged = std::mem::take(&mut ctx.unchanged_keys);
    drop(ctx);
    if measure {
        // Keys may have moved dbs (MOVE) or been deleted; re-measure those still here.
        for &k in &keys {
            if let Some(pos) = srv.dbs[db].find(&args[k]) {
                let size = srv.dbs[db].slot(pos).value.heap_size() as isize;
                srv.dbs[db].mem += size;
            }
        }
    }
    // A script's reads are tracked for its declared keys (scripting::Run::command); the
    // read-only script commands themselves track nothing (Redis's call() leaves EVAL_RO,
    // EVALSHA_RO and FCALL_RO to the commands their script runs).
    if client.tracking.is_some() && !client.in_script && !matches!(spec.name.as_ref(), "eval_ro" | "evalsha_ro" | "fcall_ro") {
        super::commands::tracking::remember_keys(srv, client, spec, args);
    }
    let micros = started.elapsed().as_micros() as u64;
    // A blocked command counted its call when it blocked: serving it later adds its time
    // and its failure, not another call (Redis's updateStatsOnUnblock).
    let served_blocked = client.blocked;
    if !served_blocked {
        spec.stats.calls.fetch_add(1, Ordering::Relaxed);
    }
    spec.stats.usec.fetch_add(micros, Ordering::Relaxed);
    if block.is_none() {
        if srv.limits.latency_tracking {
            spec.stats.latency.record_micros(micros);
        }
        super::commands::latency::sample_command(srv, spec.has(flags::FAST), micros, now_ms);
    }
    if reply.is_error() {
        spec.stats.failed.fetch_add(1, Ordering::Relaxed);
        if !std::mem::take(&mut srv.reply_error_counted) {
            count_error(srv, &reply);
        }
    }
    if !served_blocked {
        srv.stats.total_commands += 1;
    }
    for (adb, argv) in &also {
        propagate(srv, *adb, argv);
    }
    if srv.dirty > dirty_before && !client.is_master_link && srv.repl.is_replica() {
        remember_replica_keys_with_expire(srv, client.db, spec, args);
    }
    if srv.dirty > dirty_before {
        if !prevent && block.is_none() {
            match &rewritten {
                Some(argv) => propagate(srv, client.db, argv),
                None => propagate(srv, client.db, args),
            }
        }
        let db = client.db;
        // A script's declared keys are not touched by the script itself: the commands it
        // runs touch the keys they change (Redis's signalModifiedKey), WATCH and tracking
        // see those only.
        let keys = if spec.group == "scripting" { Vec::new() } else { keys };
        for &k in keys.iter().filter(|&&k| !unchanged.contains(&args[k])) {
            srv.touch_watched_key(db, &args[k], Some(client));
        }
    }
    let threshold = srv.limits.slowlog_slower_than;
    if threshold >= 0 && micros as i64 >= threshold && !spec.has(flags::SKIP_SLOWLOG) && block.is_none() {
        add_slowlog(srv, client, args, micros, now_ms);
    }
    (reply, block)
}

/// A write of a client of a writable replica left its keys with a TTL: they are remembered,
/// as Redis's rememberSlaveKeyWithExpire does, for `expire_replica_keys` (dbs above 63 are
/// not tracked, as in Redis).
fn remember_replica_keys_with_expire(srv: &mut ServerState, db: usize, spec: &CommandSpec, args: &[Bytes]) {
    if db > 63 {
        return;
    }
    for k in spec.key_indices(args) {
        let Some(key) = args.get(k) else { continue };
        let has_ttl = srv.dbs[db].find(key).map(|pos| srv.dbs[db].expiry_of(pos).is_some()).unwrap_or(false);
        if has_ttl {
            *srv.replica_keys_with_expire.entry(key.clone()).or_insert(0) |= 1u64 << db;
        }
    }
}

fn add_slowlog(srv: &mut ServerState, client: &ClientState, args: &[Bytes], micros: u64, now_ms: i64) {
    let max = srv.limits.slowlog_max_len;
    if max == 0 {
        return;
    }
    let redacted = super::acl::redact(args);
    let args = redacted.as_deref().unwrap_or(args);
    // As Redis: at most 32 arguments, each at most 128 bytes.
    let mut logged: Vec<Bytes> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i == 31 && args.len() > 32 {
            logged.push(Bytes::from(format!("... ({} more arguments)", args.len() - 31)));
            break;
        }
        if a.len() > 128 {
            let mut v = a[..128].to_vec();
            v.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
            logged.push(Bytes::from(v));
        } else {
            logged.push(a.clone());
        }
    }
    let id = srv.slowlog_next_id;
    srv.slowlog_next_id += 1;
    srv.slowlog.push_front(SlowlogEntry {
        id,
        time: now_ms / 1000,
        micros,
        args: logged,
        addr: client.addr.clone(),
        name: client.name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default(),
    });
    while srv.slowlog.len() > max {
        srv.slowlog.pop_back();
    }
}

/// Redis's `sdscatrepr` for MONITOR lines and DEBUG output.
pub fn repr(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

pub fn feed_monitors(srv: &mut ServerState, client: &ClientState, args: &[Bytes], now_ms: i64) {
    let who = if client.is_master_link || client.in_script { "lua".to_string() } else { client.addr.clone() };
    let mut line = format!("{}.{:06} [{} {}]", now_ms / 1000, (now_ms % 1000) * 1000, client.db, who);
    let redacted = super::acl::redact(args);
    for a in redacted.as_deref().unwrap_or(args) {
        line.push(' ');
        line.push_str(&repr(a));
    }
    let frame = Frame::Simple(line);
    for id in srv.monitors.clone() {
        if let Some(m) = srv.clients.get(&id) {
            m.send_raw(frame.to_bytes(m.proto));
        }
    }
}

pub fn register_blocked(srv: &mut ServerState, client: &mut ClientState, args: Vec<Bytes>, req: BlockRequest) {
    let db = client.db;
    for key in &req.keys {
        let q = srv.blocking_keys.entry((db, key.clone())).or_default();
        if !q.contains(&client.id) {
            q.push_back(client.id);
        }
    }
    client.blocked = true;
    srv.blocked.insert(client.id, BlockedClient::from_request(db, args, req));
}

/// Removes a client from every blocking queue; returns its record.
pub fn unregister_blocked(srv: &mut ServerState, id: u64) -> Option<BlockedClient> {
    let bc = srv.blocked.remove(&id)?;
    for key in &bc.keys {
        let k = (bc.db, key.clone());
        if let Some(q) = srv.blocking_keys.get_mut(&k) {
            q.retain(|&i| i != id);
            if q.is_empty() {
                srv.blocking_keys.remove(&k);
            }
        }
    }
    if let Some(c) = srv.clients.get_mut(&id) {
        c.blocked = false;
    }
    Some(bc)
}

/// The timeout of a blocked client passed: unblock it with its timeout reply.
pub fn unblock_on_timeout(srv: &mut ServerState, id: u64) -> Option<Frame> {
    let bc = unregister_blocked(srv, id)?;
    Some(bc.timeout_reply)
}

/// Serves clients blocked on keys that writes signalled ready, first come first served,
/// each by re-running its command atomically (Redis's `handleClientsBlockedOnKeys`).
pub fn handle_ready_keys(srv: &mut ServerState, current: Option<&mut ClientState>, now_ms: i64) {
    // The served commands see the time as it is now (Redis's handleClientsBlockedOnKeys
    // updates its cached time first): a key that expired while the command that readied
    // it ran (MULTI ... DEBUG SLEEP ... EXEC) is gone, and its client stays blocked.
    let now_ms = now_ms.max(super::now_ms());
    let current_id = current.as_ref().map(|c| c.id);
    let mut rounds = 0;
    while !srv.ready_keys.is_empty() && rounds < 10_000 {
        rounds += 1;
        let ready = std::mem::take(&mut srv.ready_keys);
        for (db, key) in ready {
            let Some(queue) = srv.blocking_keys.get(&(db, key.clone())).cloned() else {
                continue;
            };
            for id in queue {
                if Some(id) == current_id || !ready_key_serves(srv, id, db, &key) {
                    continue;
                }
                let Some(bc) = srv.blocked.remove(&id) else {
                    continue;
                };
                let Some(mut client) = srv.clients.remove(&id) else {
                    srv.blocked.insert(id, bc);
                    continue;
                };
                let table = srv.commands.clone();
                let spec = table.lookup(&bc.args[0]).cloned().or_else(|| table.original(&bc.args[0]).cloned());
                let Some(spec) = spec else {
                    srv.clients.insert(id, client);
                    continue;
                };
                let saved_db = client.db;
                client.db = bc.db;
                let (reply, again) = call(srv, &mut client, &spec, &bc.args, now_ms, false);
                client.db = saved_db;
                if again.is_some() {
                    srv.blocked.insert(id, bc);
                    srv.clients.insert(id, client);
                    continue;
                }
                // Invalidations of keys the served command changed that the client itself
                // tracks: they follow its reply (RESP3 push after the BLMOVE reply).
                let own_invalidations = super::commands::tracking::take_pending_for(srv, &client);
                srv.blocked.insert(id, bc);
                srv.clients.insert(id, client);
                unregister_blocked(srv, id);
                if let Some(c) = srv.clients.get_mut(&id) {
                    // Messages the served command sent to its own client follow its reply
                    // (Redis replies to a served client before it notifies the pop).
                    if let Some(tx) = &c.tx {
                        let _ = tx.send(Outbound::Unblocked(reply));
                    }
                    for f in std::mem::take(&mut c.deferred).into_iter().chain(own_invalidations) {
                        c.send_raw(f.to_bytes(c.proto));
                    }
                }
            }
        }
    }
}

/// Messages that must reach the client before its reply (invalidations of keys evicted to
/// run the command: Redis writes them while it makes room, before the command runs).
fn before_reply(client: &mut ClientState, early: Vec<Frame>, outcome: Outcome) -> Outcome {
    if early.is_empty() {
        return outcome;
    }
    match outcome {
        Outcome::Reply(reply) => {
            let mut frames = early;
            if !is_no_reply_marker(&reply) {
                frames.push(reply);
            }
            frames.append(&mut client.deferred);
            client.deferred = frames;
            Outcome::Reply(Frame::Simple(super::commands::pubsub::NO_REPLY.to_string()))
        }
        Outcome::Blocked => {
            for f in early {
                client.send_raw(f.to_bytes(client.proto));
            }
            Outcome::Blocked
        }
    }
}

/// Redis 7.0 serves a client blocked by a list (sorted-set) command only when the ready key
/// holds a list (sorted set): a key that became another type leaves it blocked.
fn ready_key_serves(srv: &ServerState, id: u64, db: usize, key: &[u8]) -> bool {
    let Some(bc) = srv.blocked.get(&id) else { return true };
    let group = srv.commands.lookup(&bc.args[0]).or_else(|| srv.commands.original(&bc.args[0])).map(|s| s.group);
    let wanted = match group {
        Some("list") => "list",
        Some("sorted-set") => "zset",
        Some("stream") => "stream",
        _ => return true,
    };
    let d = &srv.dbs[db];
    d.find(key).is_none_or(|p| d.slot(p).value.type_name() == wanted)
}

/// Cleans up after a disconnected client.
pub fn client_gone(srv: &mut ServerState, id: u64) {
    unregister_blocked(srv, id);
    // A replica served over this connection is gone with it: forget it at once, so INFO,
    // WAIT, min-replicas and the sentinels stop counting it (Redis does the same).
    if let Some(replica) = srv.repl.repl.replica_by_client(id) {
        srv.repl.repl.detach(replica.id);
        super::log::notice(&format!("Connection with replica {}:{} lost.", replica.ip, replica.listening_port));
    }
    if let Some(mut c) = srv.clients.remove(&id) {
        super::commands::tracking::disable(srv, &mut c);
        super::pubsub::unsubscribe_all(srv, &mut c);
        unwatch_all(srv, &mut c);
    }
    srv.monitors.retain(|&m| m != id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::client::ClientState;
    use crate::server::command::{cmd, CommandTable, Ctx};
    use crate::server::config::Config;
    use crate::server::value::Value;

    /// A minimal blocking pop on string keys, to exercise the blocking machinery.
    fn bpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
        let keys: Vec<Bytes> = args[1..args.len() - 1].to_vec();
        for k in &keys {
            if let Some(pos) = ctx.lookup_write(k) {
                let slot = ctx.db().remove_at(pos);
                ctx.dirty(1);
                return Frame::Array(vec![Frame::Bulk(k.clone()), Frame::Bulk(Bytes::copy_from_slice(slot.value.as_str().unwrap_or_default()))]);
            }
        }
        ctx.block(keys, None, Frame::NullArray)
    }

    fn push(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
        ctx.set_value(&args[1], Value::string(&args[2]), false);
        ctx.dirty(1);
        ctx.signal_key_ready(&args[1]);
        Frame::ok()
    }

    fn state() -> ServerState {
        let mut specs = crate::server::commands::all();
        specs.push(cmd("bpoptest", -3, "write blocking", 1, -2, 1, "write", bpop));
        specs.push(cmd("pushtest", 3, "write", 1, 1, 1, "write", push));
        ServerState::new(Config::default(), Arc::new(CommandTable::build(specs, &[])))
    }

    fn args(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
    }

    fn add_client(srv: &mut ServerState) -> (u64, tokio::sync::mpsc::UnboundedReceiver<Outbound>) {
        let id = srv.new_client_id();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut c = ClientState::internal(id);
        c.tx = Some(tx);
        srv.clients.insert(id, c);
        (id, rx)
    }

    fn run(srv: &mut ServerState, id: u64, a: &[&str]) -> Outcome {
        let mut c = srv.clients.remove(&id).expect("client");
        let out = execute(srv, &mut c, args(a), 1_000);
        srv.clients.insert(id, c);
        out
    }

    #[test]
    fn blocked_clients_are_served_first_come_first_served() {
        let mut srv = state();
        let (a, mut rx_a) = add_client(&mut srv);
        let (b, mut rx_b) = add_client(&mut srv);
        let (w, _rx_w) = add_client(&mut srv);
        assert!(matches!(run(&mut srv, a, &["bpoptest", "k", "0"]), Outcome::Blocked));
        assert!(matches!(run(&mut srv, b, &["bpoptest", "k", "0"]), Outcome::Blocked));
        assert_eq!(srv.blocked.len(), 2);
        run(&mut srv, w, &["pushtest", "k", "v1"]);
        match rx_a.try_recv() {
            Ok(Outbound::Unblocked(Frame::Array(items))) => assert_eq!(items[1], Frame::bulk("v1")),
            other => panic!("A should be served first: {other:?}"),
        }
        assert!(rx_b.try_recv().is_err(), "B must still wait");
        run(&mut srv, w, &["pushtest", "k", "v2"]);
        assert!(matches!(rx_b.try_recv(), Ok(Outbound::Unblocked(_))));
        assert!(srv.blocked.is_empty() && srv.blocking_keys.is_empty());
        // Nothing left over: both values were consumed.
        assert!(srv.dbs[0].is_empty());
    }

    #[test]
    fn blocking_inside_exec_returns_timeout_reply() {
        let mut srv = state();
        let (a, _rx) = add_client(&mut srv);
        run(&mut srv, a, &["multi"]);
        run(&mut srv, a, &["bpoptest", "k", "0"]);
        match run(&mut srv, a, &["exec"]) {
            Outcome::Reply(Frame::Array(items)) => assert_eq!(items, vec![Frame::NullArray]),
            other => panic!("{other:?}"),
        }
        assert!(srv.blocked.is_empty());
    }

    #[test]
    fn watch_is_invalidated_by_another_clients_write() {
        let mut srv = state();
        let (a, _ra) = add_client(&mut srv);
        let (b, _rb) = add_client(&mut srv);
        run(&mut srv, a, &["watch", "x"]);
        run(&mut srv, b, &["set", "x", "1"]);
        run(&mut srv, a, &["multi"]);
        run(&mut srv, a, &["set", "x", "2"]);
        assert!(matches!(run(&mut srv, a, &["exec"]), Outcome::Reply(Frame::NullArray)));
        // Without interference the transaction runs.
        run(&mut srv, a, &["watch", "x"]);
        run(&mut srv, a, &["multi"]);
        run(&mut srv, a, &["set", "x", "3"]);
        assert!(matches!(run(&mut srv, a, &["exec"]), Outcome::Reply(Frame::Array(_))));
    }
}

/// A write from our master while this replica cannot persist (Redis's processCommand for a
/// client it must obey): it stops rather than hold data its disk does not, unless
/// `replica-ignore-disk-write-errors yes`, which applies the write and warns every 10 s.
fn obey_master_despite_disk_error(ignore: bool) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_WARNING_MS: AtomicU64 = AtomicU64::new(0);
    if !ignore {
        super::log::panic_and_abort("Replica was unable to write command to disk.", "dispatch.rs");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let last = LAST_WARNING_MS.load(Ordering::Relaxed);
    if now > last + 10_000 && LAST_WARNING_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        super::log::warning("Replica is applying a command even though it is unable to write to disk.");
    }
}
