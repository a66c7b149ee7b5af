//! The stream command family (Redis 7.0 semantics): XADD/XRANGE/XREAD..., consumer
//! groups, blocking XREAD/XREADGROUP, and propagation of effects as Redis sends them
//! (XADD with its generated ID, `~` trims as `=` with the resulting bound, XREADGROUP as
//! XCLAIM / XGROUP SETID / XGROUP CREATECONSUMER).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, syntax_error, wrong_args, wrongtype, CommandSpec, Ctx};
use crate::server::client::Outbound;
use crate::server::notify;
use crate::server::state::ServerState;
use crate::server::value::Value;
use crate::server::types::access::{self, int_arg};
use crate::server::types::stream::{
    parse_id, AppendError, ConsumerGroup, Consumer, NodeLimits, StreamId, StreamValue, TrimArgs, TrimStrategy, ENTRIES_READ_INVALID,
};

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
/// Entries a blocked XREAD without COUNT is served at most (XREAD_BLOCKED_DEFAULT_COUNT).
const BLOCKED_DEFAULT_COUNT: usize = 1000;

pub fn commands() -> Vec<CommandSpec> {
    let g = |c: CommandSpec| c.group("stream");
    vec![
        g(cmd("xadd", -5, "write denyoom fast", 1, 1, 1, "write stream fast", xadd).since("5.0.0").summary("Appends a new entry to a stream").key_flags(&["RW", "update"]).tips(&["nondeterministic_output"])),
        g(cmd("xlen", 2, "readonly fast", 1, 1, 1, "read stream fast", xlen).since("5.0.0").summary("Return the number of entries in a stream").key_flags(&["RO"])),
        g(cmd("xrange", -4, "readonly", 1, 1, 1, "read stream slow", xrange).since("5.0.0").summary("Return a range of elements in a stream, with IDs matching the specified IDs interval").key_flags(&["RO", "access"])),
        g(cmd("xrevrange", -4, "readonly", 1, 1, 1, "read stream slow", xrevrange).since("5.0.0").summary("Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE").key_flags(&["RO", "access"])),
        g(cmd("xdel", -3, "write fast", 1, 1, 1, "write stream fast", xdel).since("5.0.0").summary("Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist.").key_flags(&["RW", "delete"])),
        g(cmd("xtrim", -4, "write", 1, 1, 1, "write stream slow", xtrim).since("5.0.0").summary("Trims the stream to (approximately if '~' is passed) a certain size").key_flags(&["RW", "delete"]).tips(&["nondeterministic_output"])),
        g(cmd("xsetid", -3, "write denyoom fast", 1, 1, 1, "write stream fast", xsetid).since("5.0.0").summary("An internal command for replicating stream values").key_flags(&["RW", "update"])),
        g(cmd("xread", -4, "readonly blocking movablekeys", 0, 0, 0, "read stream slow blocking", xread).since("5.0.0").summary("Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block.").key_flags(&["RO", "access"]).keys_fn(xread_keys)),
        g(cmd("xreadgroup", -7, "write blocking movablekeys", 0, 0, 0, "write stream slow blocking", xreadgroup).since("5.0.0").summary("Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block.").key_flags(&["RW", "access"]).keys_fn(xread_keys)),
        g(cmd("xack", -4, "write fast", 1, 1, 1, "write stream fast", xack).since("5.0.0").summary("Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL.").key_flags(&["RW", "update"])),
        g(cmd("xpending", -3, "readonly", 1, 1, 1, "read stream slow", xpending).since("5.0.0").summary("Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged.").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"])),
        g(cmd("xclaim", -6, "write fast", 1, 1, 1, "write stream fast", xclaim).since("5.0.0").summary("Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer.").key_flags(&["RW", "update"]).tips(&["nondeterministic_output"])),
        g(cmd("xautoclaim", -6, "write fast", 1, 1, 1, "write stream fast", xautoclaim).since("6.2.0").summary("Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer.").key_flags(&["RW", "delete"]).tips(&["nondeterministic_output"])),
        g(cmd("xgroup", -2, "", 0, 0, 0, "slow", super::keys::container_help).since("5.0.0").summary("A container for consumer groups commands").subs(vec![
            cmd("create", -5, "write denyoom", 2, 2, 1, "write stream slow", xgroup_create).since("5.0.0").summary("Create a consumer group.").key_flags(&["RW", "insert"]),
            cmd("setid", -5, "write", 2, 2, 1, "write stream slow", xgroup_setid).since("5.0.0").summary("Set a consumer group to an arbitrary last delivered ID value.").key_flags(&["RW", "update"]),
            cmd("destroy", 4, "write", 2, 2, 1, "write stream slow", xgroup_destroy).since("5.0.0").summary("Destroy a consumer group.").key_flags(&["RW", "delete"]),
            cmd("createconsumer", 5, "write denyoom", 2, 2, 1, "write stream slow", xgroup_createconsumer).since("6.2.0").summary("Create a consumer in a consumer group.").key_flags(&["RW", "insert"]),
            cmd("delconsumer", 5, "write", 2, 2, 1, "write stream slow", xgroup_delconsumer).since("5.0.0").summary("Delete a consumer from a consumer group.").key_flags(&["RW", "delete"]),
            cmd("help", 2, "loading stale", 0, 0, 0, "stream slow", xgroup_help).since("5.0.0").summary("Show helpful text about the different subcommands"),
        ])),
        g(cmd("xinfo", -2, "", 0, 0, 0, "slow", super::keys::container_help).since("5.0.0").summary("A container for stream introspection commands").subs(vec![
            cmd("consumers", 4, "readonly", 2, 2, 1, "read stream slow", xinfo_consumers).since("5.0.0").summary("List the consumers in a consumer group").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"]),
            cmd("groups", 3, "readonly", 2, 2, 1, "read stream slow", xinfo_groups).since("5.0.0").summary("List the consumer groups of a stream").key_flags(&["RO", "access"]),
            cmd("stream", -3, "readonly", 2, 2, 1, "read stream slow", xinfo_stream).since("5.0.0").summary("Get information about a stream").key_flags(&["RO", "access"]),
            cmd("help", 2, "loading stale", 0, 0, 0, "stream slow", xinfo_help).since("5.0.0").summary("Show helpful text about the different subcommands"),
        ])),
    ]
}

/// Keys of XREAD / XREADGROUP: the first half of what follows STREAMS (Redis's
/// `xreadGetKeys`).
fn xread_keys(args: &[Bytes]) -> Vec<usize> {
    let mut streams_pos = None;
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"block") || a.eq_ignore_ascii_case(b"count") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"group") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"noack") {
        } else if a.eq_ignore_ascii_case(b"streams") {
            streams_pos = Some(i);
            break;
        } else {
            break;
        }
        i += 1;
    }
    let Some(pos) = streams_pos else { return Vec::new() };
    let n = args.len() - pos - 1;
    if n == 0 || n % 2 != 0 {
        return Vec::new();
    }
    (pos + 1..pos + 1 + n / 2).collect()
}

/// Redis 7.0's `unblockDeletedStreamReadgroupClients`: a client blocked in XREADGROUP on a
/// stream that was deleted or replaced by another type (DEL, SET, FLUSHDB, MULTI...) is
/// unblocked with an error at once, its group being gone with the stream. Runs after each
/// command while some client is blocked.
pub fn unblock_readgroup_of_gone_streams(srv: &mut ServerState) {
    let gone: Vec<u64> = srv
        .blocked
        .iter()
        .filter(|(_, bc)| {
            bc.args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"xreadgroup"))
                && srv.dbs.get(bc.db).is_some_and(|d| bc.keys.iter().any(|k| d.find(k).is_none_or(|p| !matches!(d.slot(p).value, Value::Stream(_)))))
        })
        .map(|(id, _)| *id)
        .collect();
    for id in gone {
        if crate::server::dispatch::unregister_blocked(srv, id).is_some() {
            if let Some(tx) = srv.clients.get(&id).and_then(|c| c.tx.as_ref()) {
                let _ = tx.send(Outbound::Unblocked(Frame::error("UNBLOCKED the stream key no longer exists")));
            }
        }
    }
}

// ---- helpers ----

fn err(msg: impl Into<String>) -> Frame {
    Frame::error(msg.into())
}

fn id_frame(id: StreamId) -> Frame {
    Frame::bulk(id.to_string())
}

fn entry_frame(id: StreamId, fields: &[Bytes]) -> Frame {
    Frame::Array(vec![id_frame(id), Frame::Array(fields.iter().map(|f| Frame::bulk(f.clone())).collect())])
}

fn strict_id(b: &[u8]) -> Result<StreamId, Frame> {
    parse_id(b, 0, true, false).map(|(id, _)| id).ok_or_else(|| err(INVALID_ID))
}

/// `streamParseIntervalIDOrReply`: `(` makes the bound exclusive (then `-`/`+` are invalid).
fn interval_id(b: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Frame> {
    if b.len() > 1 && b[0] == b'(' {
        parse_id(&b[1..], missing_seq, true, false).map(|(id, _)| (id, true)).ok_or_else(|| err(INVALID_ID))
    } else {
        parse_id(b, missing_seq, false, false).map(|(id, _)| (id, false)).ok_or_else(|| err(INVALID_ID))
    }
}

fn node_limits(ctx: &Ctx) -> NodeLimits {
    let c = &ctx.srv.config;
    NodeLimits { max_bytes: c.get_int("stream-node-max-bytes").max(0) as usize, max_entries: c.get_int("stream-node-max-entries").max(0) as u64 }
}

fn now_ms(ctx: &Ctx) -> i64 {
    ctx.now_ms
}

fn nogroup_key(key: &[u8], group: &[u8]) -> Frame {
    err(format!("NOGROUP No such key '{}' or consumer group '{}'", String::from_utf8_lossy(key), String::from_utf8_lossy(group)))
}

fn stream_read<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c StreamValue>, Frame> {
    access::read::<StreamValue>(ctx, key)
}

fn stream_write<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut StreamValue>, Frame> {
    access::write::<StreamValue>(ctx, key)
}

// ---- XADD / XTRIM ----

struct AddTrimArgs {
    trim: TrimArgs,
    /// Index of the MAXLEN/MINID bound argument (for rewriting a `~` trim).
    bound_idx: usize,
    id: Option<(StreamId, bool)>,
    no_mkstream: bool,
    /// Index of the ID argument (XADD).
    id_idx: usize,
}

/// `streamParseAddOrTrimArgsOrReply`.
fn parse_add_or_trim(ctx: &Ctx, args: &[Bytes], xadd: bool) -> Result<AddTrimArgs, Frame> {
    let mut p = AddTrimArgs { trim: TrimArgs { strategy: TrimStrategy::None, approx: false, limit: 0 }, bound_idx: 0, id: None, no_mkstream: false, id_idx: 0 };
    let mut limit_given = false;
    let mut limit: i64 = 0;
    let mut i = 2;
    let argc = args.len();
    while i < argc {
        let more = argc - 1 - i;
        let opt = &args[i];
        if xadd && opt.as_ref() == b"*" {
            break;
        } else if (opt.eq_ignore_ascii_case(b"maxlen") || opt.eq_ignore_ascii_case(b"minid")) && more > 0 {
            if p.trim.strategy != TrimStrategy::None {
                return Err(err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible"));
            }
            p.trim.approx = false;
            let next = &args[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                p.trim.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            if opt.eq_ignore_ascii_case(b"maxlen") {
                let n = int_arg(&args[i + 1])?;
                if n < 0 {
                    return Err(err("ERR The MAXLEN argument must be >= 0."));
                }
                p.trim.strategy = TrimStrategy::MaxLen(n as u64);
            } else {
                p.trim.strategy = TrimStrategy::MinId(strict_id(&args[i + 1])?);
            }
            i += 1;
            p.bound_idx = i;
        } else if opt.eq_ignore_ascii_case(b"limit") && more > 0 {
            limit = int_arg(&args[i + 1])?;
            if limit < 0 {
                return Err(err("ERR The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            i += 1;
        } else if xadd && opt.eq_ignore_ascii_case(b"nomkstream") {
            p.no_mkstream = true;
        } else if xadd {
            p.id = Some(parse_id(opt, 0, true, true).ok_or_else(|| err(INVALID_ID))?);
            break;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    p.id_idx = i;
    if limit != 0 && p.trim.strategy == TrimStrategy::None {
        return Err(err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    }
    if !xadd && p.trim.strategy == TrimStrategy::None {
        return Err(err("ERR syntax error, XTRIM must be called with a trimming strategy"));
    }
    if ctx.client.is_master_link {
        // Our master (or the AOF) rewrote `~` bounds already: trim exactly as told.
        p.trim.limit = 0;
    } else if limit_given {
        if !p.trim.approx {
            return Err(err("ERR syntax error, LIMIT cannot be used without the special ~ option"));
        }
        p.trim.limit = limit as u64;
    } else if p.trim.approx {
        let per_node = ctx.srv.config.get_int("stream-node-max-entries");
        let mut l = per_node.saturating_mul(100);
        if l <= 0 {
            l = 10_000;
        }
        p.trim.limit = l.min(1_000_000) as u64;
    }
    Ok(p)
}

/// The command as propagated after a `~` trim: `=` and the bound the trim reached.
fn rewrite_trim(argv: &mut [Bytes], p: &AddTrimArgs, s: &StreamValue) {
    argv[p.bound_idx - 1] = Bytes::from_static(b"=");
    argv[p.bound_idx] = match p.trim.strategy {
        TrimStrategy::MaxLen(_) => Bytes::from(s.len().to_string()),
        _ => s.first_id_with_tombstones().to_bytes(),
    };
}

fn xadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let p = match parse_add_or_trim(ctx, args, true) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let field_pos = p.id_idx + 1;
    if args.len() < field_pos + 2 || (args.len() - field_pos) % 2 == 1 {
        return wrong_args("xadd");
    }
    if let Some((id, true)) = p.id {
        if id.is_zero() {
            return err("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let key = &args[1];
    let limits = node_limits(ctx);
    let now = now_ms(ctx).max(0) as u64;
    let s = if p.no_mkstream {
        match stream_write(ctx, key) {
            Err(e) => return e,
            Ok(None) => return Frame::Null,
            Ok(Some(s)) => s,
        }
    } else {
        match access::write_or_create(ctx, key, StreamValue::new) {
            Err(e) => return e,
            Ok(s) => s,
        }
    };
    if s.last_id == StreamId::MAX {
        return err("ERR The stream has exhausted the last possible ID, unable to add more items");
    }
    let fields: Vec<Bytes> = args[field_pos..].iter().map(|b| crate::server::types::detach(b.clone())).collect();
    let id = match s.append(&fields, p.id, now, limits) {
        Ok(id) => id,
        Err(AppendError::IdTooSmall) => return err("ERR The ID specified in XADD is equal or smaller than the target stream top item"),
        Err(AppendError::TooLarge) => return err("ERR Elements are too large to be stored"),
    };
    let trimmed = s.trim(&p.trim);
    let mut argv: Option<Vec<Bytes>> = None;
    if p.trim.approx {
        let mut v = args.to_vec();
        rewrite_trim(&mut v, &p, s);
        argv = Some(v);
    }
    if !matches!(p.id, Some((_, true))) {
        let v = argv.get_or_insert_with(|| args.to_vec());
        v[p.id_idx] = id.to_bytes();
    }
    ctx.notify(notify::STREAM, "xadd", key);
    ctx.dirty(1);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    if let Some(v) = argv {
        ctx.propagate_as(v);
    }
    ctx.signal_key_ready(key);
    id_frame(id)
}

fn xtrim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let p = match parse_add_or_trim(ctx, args, false) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let key = &args[1];
    let s = match stream_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(s)) => s,
    };
    let deleted = s.trim(&p.trim);
    if deleted > 0 {
        if p.trim.approx {
            let mut v = args.to_vec();
            rewrite_trim(&mut v, &p, s);
            ctx.propagate_as(v);
        }
        ctx.notify(notify::STREAM, "xtrim", key);
        ctx.dirty(deleted);
    }
    Frame::Integer(deleted as i64)
}

fn xlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match stream_read(ctx, &args[1]) {
        Err(e) => e,
        Ok(s) => Frame::Integer(s.map_or(0, |s| s.len()) as i64),
    }
}

fn xrange_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> Frame {
    let (start_arg, end_arg) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let (mut start, start_ex) = match interval_id(start_arg, 0) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if start_ex {
        match start.incr() {
            Some(s) => start = s,
            None => return err("ERR invalid start ID for the interval"),
        }
    }
    let (mut end, end_ex) = match interval_id(end_arg, u64::MAX) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if end_ex {
        match end.decr() {
            Some(e) => end = e,
            None => return err("ERR invalid end ID for the interval"),
        }
    }
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"count") && j + 1 < args.len() {
            count = match int_arg(&args[j + 1]) {
                Ok(c) => c.max(0),
                Err(e) => return e,
            };
            j += 2;
        } else {
            return syntax_error();
        }
    }
    let s = match stream_read(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Frame::Array(Vec::new()),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return Frame::NullArray;
    }
    let n = if count < 0 { 0 } else { count as usize };
    Frame::Array(s.range(start, end, rev, n).into_iter().map(|e| entry_frame(e.id, &e.fields)).collect())
}

fn xrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    xrange_generic(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    xrange_generic(ctx, args, true)
}

/// Every argument as a full stream ID (XDEL, XACK), or the first parse error.
fn strict_ids(args: &[Bytes]) -> Result<Vec<StreamId>, Frame> {
    args.iter().map(|a| strict_id(a)).collect()
}

fn xdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[1];
    // Redis looks the key up before parsing the IDs.
    match stream_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(_)) => {}
    }
    let ids = match strict_ids(&args[2..]) {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let Ok(Some(s)) = stream_write(ctx, key) else { return Frame::Integer(0) };
    let deleted: Vec<StreamId> = ids.into_iter().filter(|&id| s.delete(id)).collect();
    s.after_delete(&deleted);
    if !deleted.is_empty() {
        ctx.notify(notify::STREAM, "xdel", key);
        ctx.dirty(deleted.len() as u64);
    }
    Frame::Integer(deleted.len() as i64)
}

fn xsetid(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let id = match strict_id(&args[2]) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if args[i].eq_ignore_ascii_case(b"entriesadded") && more > 0 {
            entries_added = match int_arg(&args[i + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if entries_added < 0 {
                return err("ERR entries_added must be positive");
            }
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"maxdeletedid") && more > 0 {
            max_xdel = match strict_id(&args[i + 1]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if id < max_xdel {
                return err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
            }
            i += 2;
        } else {
            return syntax_error();
        }
    }
    let key = &args[1];
    let s = match stream_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return err("ERR no such key"),
        Ok(Some(s)) => s,
    };
    if s.len() > 0 {
        if id < s.last_valid_id() {
            return err("ERR The ID specified in XSETID is smaller than the target stream top item");
        }
        if entries_added != -1 && s.len() > entries_added as u64 {
            return err("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_xdel.is_zero() {
        s.max_deleted_id = max_xdel;
    }
    ctx.notify(notify::STREAM, "xsetid", key);
    ctx.dirty(1);
    Frame::ok()
}

// ---- XREAD / XREADGROUP ----

struct ReadArgs {
    /// None: no BLOCK.
    block_ms: Option<i64>,
    count: usize,
    streams_at: usize,
    nkeys: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
}

fn parse_read(ctx: &Ctx, args: &[Bytes], xreadgroup: bool) -> Result<ReadArgs, Frame> {
    let mut r = ReadArgs { block_ms: None, count: 0, streams_at: 0, nkeys: 0, group: None, noack: false };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let o = &args[i];
        if o.eq_ignore_ascii_case(b"block") && more > 0 {
            if ctx.client.in_script {
                return Err(err(format!("ERR {} command is not allowed with BLOCK option from scripts", String::from_utf8_lossy(&args[0]))));
            }
            i += 1;
            let t = crate::server::types::parse_canonical_i64(&args[i]).ok_or_else(|| err("ERR timeout is not an integer or out of range"))?;
            if t < 0 {
                return Err(err("ERR timeout is negative"));
            }
            r.block_ms = Some(t);
        } else if o.eq_ignore_ascii_case(b"count") && more > 0 {
            i += 1;
            r.count = int_arg(&args[i])?.max(0) as usize;
        } else if o.eq_ignore_ascii_case(b"streams") && more > 0 {
            r.streams_at = i + 1;
            let n = args.len() - r.streams_at;
            if n % 2 != 0 {
                return Err(err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            r.nkeys = n / 2;
            break;
        } else if o.eq_ignore_ascii_case(b"group") && more >= 2 {
            if !xreadgroup {
                return Err(err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."));
            }
            r.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if o.eq_ignore_ascii_case(b"noack") {
            if !xreadgroup {
                return Err(err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."));
            }
            r.noack = true;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    if r.streams_at == 0 {
        return Err(syntax_error());
    }
    if xreadgroup && r.group.is_none() {
        return Err(err("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// The ID argument of one stream: after this ID (`>` is None).
enum ReadFrom {
    After(StreamId),
    /// `>`: the group's new entries.
    New,
}

fn xread(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    xread_generic(ctx, args, false)
}

fn xreadgroup(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    xread_generic(ctx, args, true)
}

fn xread_generic(ctx: &mut Ctx, args: &[Bytes], xreadgroup: bool) -> Frame {
    let r = match parse_read(ctx, args, xreadgroup) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // Propagated as its effects (XCLAIM...), never as itself.
    ctx.prevent_propagation();
    let keys: Vec<Bytes> = args[r.streams_at..r.streams_at + r.nkeys].to_vec();
    let mut from = Vec::with_capacity(r.nkeys);
    let serving = ctx.serving_blocked;
    for (k, key) in keys.iter().enumerate() {
        let id_arg = &args[r.streams_at + r.nkeys + k];
        let s = match stream_read(ctx, key) {
            Err(e) => return e,
            Ok(s) => s,
        };
        if let Some((group, _)) = &r.group {
            // A blocked client whose group went away gets its own error when served.
            if !serving && s.is_none_or(|s| !s.groups.contains_key(group)) {
                return err(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(group)
                ));
            }
        }
        if id_arg.as_ref() == b"$" {
            if xreadgroup {
                return err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            }
            from.push(ReadFrom::After(s.map_or(StreamId::MIN, |s| s.last_id)));
            continue;
        }
        if id_arg.as_ref() == b">" {
            if !xreadgroup {
                return err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
            }
            from.push(ReadFrom::New);
            continue;
        }
        match strict_id(id_arg) {
            Ok(id) => from.push(ReadFrom::After(id)),
            Err(e) => return e,
        }
    }

    if ctx.serving_blocked {
        return serve_blocked(ctx, args, &r, &keys, &from);
    }

    let mut out: Vec<(Frame, Frame)> = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let Some(pos) = ctx.lookup_write(key) else { continue };
        let Some(s) = access::Typed::get(&ctx.db().slot(pos).value).map(|s: &StreamValue| s) else { continue };
        let (start, history) = match (&from[k], &r.group) {
            (ReadFrom::After(id), Some(_)) => (*id, true),
            (ReadFrom::New, Some((g, _))) => {
                let last = s.groups.get(g).map_or(StreamId::MIN, |g| g.last_id);
                if s.len() == 0 || s.last_valid_id() <= last {
                    continue;
                }
                (last, false)
            }
            (ReadFrom::After(id), None) => {
                if s.len() == 0 || s.last_valid_id() <= *id {
                    continue;
                }
                (*id, false)
            }
            (ReadFrom::New, None) => continue,
        };
        let entries = deliver(ctx, key, &r, start, history, r.count);
        out.push((Frame::bulk(key.clone()), entries));
    }
    if !out.is_empty() {
        return read_reply(ctx, out);
    }
    match r.block_ms {
        None => Frame::NullArray,
        Some(ms) => {
            let deadline = if ms == 0 { None } else { Some(ctx.now_ms.saturating_add(ms)) };
            // Served later from the IDs of now: `$` becomes the stream's last ID.
            let mut rerun = args.to_vec();
            for (k, f) in from.iter().enumerate() {
                if let ReadFrom::After(id) = f {
                    rerun[r.streams_at + r.nkeys + k] = id.to_bytes();
                }
            }
            ctx.block_with_args(keys, deadline, Frame::NullArray, rerun)
        }
    }
}

fn read_reply(ctx: &Ctx, out: Vec<(Frame, Frame)>) -> Frame {
    if ctx.resp3() {
        Frame::Map(out)
    } else {
        Frame::Array(out.into_iter().map(|(k, v)| Frame::Array(vec![k, v])).collect())
    }
}

/// A blocked XREAD / XREADGROUP runs again after a write: Redis serves it from the first
/// stream that has an entry past the ID it waits for (a group's last ID for XREADGROUP).
fn serve_blocked(ctx: &mut Ctx, args: &[Bytes], r: &ReadArgs, keys: &[Bytes], from: &[ReadFrom]) -> Frame {
    let count = if r.count == 0 { BLOCKED_DEFAULT_COUNT } else { r.count };
    for (k, key) in keys.iter().enumerate() {
        let Some(pos) = ctx.lookup_write(key) else { continue };
        let Some(s) = access::Typed::get(&ctx.db().slot(pos).value).map(|s: &StreamValue| s) else { continue };
        let gt = match (&r.group, &from[k]) {
            (Some((g, _)), _) => match s.groups.get(g) {
                Some(g) => g.last_id,
                None => return err("NOGROUP the consumer group this client was blocked on no longer exists"),
            },
            (None, ReadFrom::After(id)) => *id,
            (None, ReadFrom::New) => continue,
        };
        if s.last_id <= gt {
            continue;
        }
        let entries = deliver(ctx, key, r, gt, false, count);
        return read_reply(ctx, vec![(Frame::bulk(key.clone()), entries)]);
    }
    let _ = args;
    ctx.block(keys.to_vec(), None, Frame::NullArray)
}

/// Replies the entries of `key` after `after` (for a group: delivers them, creating
/// pending entries and propagating the effects; `history`: the consumer's own PEL).
fn deliver(ctx: &mut Ctx, key: &Bytes, r: &ReadArgs, after: StreamId, history: bool, count: usize) -> Frame {
    let now = ctx.now_ms;
    let Some(start) = after.incr() else { return Frame::Array(Vec::new()) };
    let Some((group, consumer)) = r.group.clone() else {
        let Ok(Some(s)) = stream_read(ctx, key) else { return Frame::Array(Vec::new()) };
        return Frame::Array(s.range(start, StreamId::MAX, false, count).into_iter().map(|e| entry_frame(e.id, &e.fields)).collect());
    };
    let Ok(Some(s)) = stream_write(ctx, key) else { return Frame::Array(Vec::new()) };
    let mut created = false;
    {
        let g = s.groups.get_mut(&group).expect("group checked");
        match g.consumers.get_mut(&consumer) {
            Some(c) => c.seen_time = now,
            None => {
                g.consumers.insert(consumer.clone(), Consumer { seen_time: now, pel: Default::default() });
                created = true;
            }
        }
    }
    let mut also: Vec<Vec<Bytes>> = Vec::new();
    if created && r.noack {
        also.push(vec![Bytes::from_static(b"XGROUP"), Bytes::from_static(b"CREATECONSUMER"), key.clone(), group.clone(), consumer.clone()]);
    }
    let reply;
    if history {
        let g = s.groups.get(&group).expect("group checked");
        let ids: Vec<StreamId> = g.consumers[&consumer].pel.range(start..).take(if count == 0 { usize::MAX } else { count }).copied().collect();
        let mut items = Vec::with_capacity(ids.len());
        let mut touched = Vec::new();
        for id in ids {
            match s.get(id) {
                Some(e) => {
                    items.push(entry_frame(e.id, &e.fields));
                    touched.push(id);
                }
                None => items.push(Frame::Array(vec![id_frame(id), Frame::NullArray])),
            }
        }
        let g = s.groups.get_mut(&group).expect("group checked");
        for id in touched {
            if let Some(n) = g.pel.get_mut(&id) {
                n.delivery_time = now;
                n.delivery_count = n.delivery_count.wrapping_add(1);
            }
        }
        reply = Frame::Array(items);
    } else {
        let found: Vec<(StreamId, Vec<Bytes>)> = s.range(start, StreamId::MAX, false, count).into_iter().map(|e| (e.id, e.fields.clone())).collect();
        let mut items = Vec::with_capacity(found.len());
        let mut advanced = false;
        for (id, fields) in found {
            if s.groups[&group].last_id < id {
                s.advance_group(&group, id);
                advanced = true;
            }
            items.push(entry_frame(id, &fields));
            if !r.noack {
                let g = s.groups.get_mut(&group).expect("group checked");
                let nack = g.assign_pending(id, &consumer, now);
                nack.delivery_time = now;
                nack.delivery_count = 1;
                let (t, c) = (nack.delivery_time, nack.delivery_count);
                also.push(xclaim_propagation(key, &group, &consumer, id, t, c, g.last_id));
            }
        }
        if r.noack && advanced {
            let g = &s.groups[&group];
            also.push(setid_propagation(key, &group, g));
        }
        reply = Frame::Array(items);
    }
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        ctx.dirty(1);
    }
    for a in also {
        ctx.also_propagate(a);
    }
    ctx.dirty(1);
    reply
}

/// `streamPropagateXCLAIM`: an idempotent XCLAIM recreating a pending entry.
fn xclaim_propagation(key: &Bytes, group: &Bytes, consumer: &Bytes, id: StreamId, time: i64, count: u64, last_id: StreamId) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        consumer.clone(),
        Bytes::from_static(b"0"),
        id.to_bytes(),
        Bytes::from_static(b"TIME"),
        Bytes::from(time.to_string()),
        Bytes::from_static(b"RETRYCOUNT"),
        Bytes::from(count.to_string()),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        last_id.to_bytes(),
    ]
}

/// `streamPropagateGroupID`.
fn setid_propagation(key: &Bytes, group: &Bytes, g: &ConsumerGroup) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        g.last_id.to_bytes(),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
}

// ---- XGROUP ----

fn xgroup_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_reply(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    )
}

fn xinfo_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_reply(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    )
}

/// `addReplyHelp`.
fn help_reply(cmd: &str, lines: &[&str]) -> Frame {
    let mut out = vec![Frame::Simple(format!("{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"))];
    out.extend(lines.iter().map(|l| Frame::Simple(l.to_string())));
    out.push(Frame::Simple("HELP".into()));
    out.push(Frame::Simple("    Prints this help.".into()));
    Frame::Array(out)
}

/// `addReplySubcommandSyntaxError`.
fn subcommand_syntax_error(args: &[Bytes]) -> Frame {
    let shown: String = String::from_utf8_lossy(&args[1]).chars().take(128).collect();
    let parent = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    err(format!("ERR unknown subcommand or wrong number of arguments for '{shown}'. Try {parent} HELP."))
}

/// What every XGROUP subcommand but HELP parses first (options from index 5, the key, the
/// group): Redis's common prologue of `xgroupCommand`.
struct GroupPrologue {
    mkstream: bool,
    entries_read: i64,
    exists: bool,
}

fn xgroup_prologue(ctx: &mut Ctx, args: &[Bytes], sub: &str) -> Result<GroupPrologue, Frame> {
    let mut p = GroupPrologue { mkstream: false, entries_read: ENTRIES_READ_INVALID, exists: false };
    let create = sub == "create";
    let setid = sub == "setid";
    let mut i = 5;
    while i < args.len() {
        if create && args[i].eq_ignore_ascii_case(b"mkstream") {
            p.mkstream = true;
            i += 1;
        } else if (create || setid) && args[i].eq_ignore_ascii_case(b"entriesread") && i + 1 < args.len() {
            let v = int_arg(&args[i + 1])?;
            if v < 0 && v != ENTRIES_READ_INVALID {
                return Err(err("ERR value for ENTRIESREAD must be positive or -1"));
            }
            p.entries_read = v;
            i += 2;
        } else {
            return Err(subcommand_syntax_error(args));
        }
    }
    let s = stream_write(ctx, &args[2])?;
    p.exists = s.is_some();
    if !p.mkstream {
        let Some(s) = s else {
            return Err(err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        };
        if !s.groups.contains_key(&args[3]) && matches!(sub, "setid" | "createconsumer" | "delconsumer") {
            return Err(err(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(&args[3]),
                String::from_utf8_lossy(&args[2])
            )));
        }
    }
    Ok(p)
}

fn xgroup_create(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let p = match xgroup_prologue(ctx, args, "create") {
        Ok(p) => p,
        Err(e) => return e,
    };
    if args.len() > 8 {
        return subcommand_syntax_error(args);
    }
    let key = &args[2];
    let id = if args[4].as_ref() == b"$" {
        match stream_write(ctx, key) {
            Ok(Some(s)) => s.last_id,
            _ => StreamId::MIN,
        }
    } else {
        match strict_id(&args[4]) {
            Ok(id) => id,
            Err(e) => return e,
        }
    };
    if !p.exists {
        ctx.add_value(key, access::Typed::wrap(StreamValue::new()));
    }
    let Ok(Some(s)) = stream_write(ctx, key) else { return wrongtype() };
    if s.groups.contains_key(&args[3]) {
        return err("BUSYGROUP Consumer Group name already exists");
    }
    s.groups.insert(crate::server::types::detach(args[3].clone()), ConsumerGroup::new(id, p.entries_read));
    ctx.dirty(1);
    ctx.notify(notify::STREAM, "xgroup-create", key);
    Frame::ok()
}

fn xgroup_setid(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let p = match xgroup_prologue(ctx, args, "setid") {
        Ok(p) => p,
        Err(e) => return e,
    };
    if args.len() != 5 && args.len() != 7 {
        return subcommand_syntax_error(args);
    }
    let key = &args[2];
    let Ok(Some(s)) = stream_write(ctx, key) else { return wrongtype() };
    let id = if args[4].as_ref() == b"$" {
        s.last_id
    } else {
        match parse_id(&args[4], 0, false, false) {
            Some((id, _)) => id,
            None => return err(INVALID_ID),
        }
    };
    let g = s.groups.get_mut(&args[3]).expect("checked by the prologue");
    g.last_id = id;
    g.entries_read = p.entries_read;
    ctx.dirty(1);
    ctx.notify(notify::STREAM, "xgroup-setid", key);
    Frame::ok()
}

fn xgroup_destroy(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = xgroup_prologue(ctx, args, "destroy") {
        return e;
    }
    let key = &args[2];
    let Ok(Some(s)) = stream_write(ctx, key) else { return wrongtype() };
    if s.groups.remove(&args[3]).is_none() {
        return Frame::Integer(0);
    }
    ctx.dirty(1);
    ctx.notify(notify::STREAM, "xgroup-destroy", key);
    // Clients blocked in XREADGROUP on this group learn it is gone.
    ctx.signal_key_ready(key);
    Frame::Integer(1)
}

fn xgroup_createconsumer(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = xgroup_prologue(ctx, args, "createconsumer") {
        return e;
    }
    let key = &args[2];
    let now = ctx.now_ms;
    let Ok(Some(s)) = stream_write(ctx, key) else { return wrongtype() };
    let g = s.groups.get_mut(&args[3]).expect("checked by the prologue");
    if g.consumers.contains_key(&args[4]) {
        return Frame::Integer(0);
    }
    g.consumers.insert(crate::server::types::detach(args[4].clone()), Consumer { seen_time: now, pel: Default::default() });
    ctx.dirty(1);
    ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    Frame::Integer(1)
}

fn xgroup_delconsumer(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = xgroup_prologue(ctx, args, "delconsumer") {
        return e;
    }
    let key = &args[2];
    let Ok(Some(s)) = stream_write(ctx, key) else { return wrongtype() };
    let g = s.groups.get_mut(&args[3]).expect("checked by the prologue");
    let Some(c) = g.consumers.remove(&args[4]) else { return Frame::Integer(0) };
    for id in &c.pel {
        g.pel.remove(id);
    }
    ctx.dirty(1);
    ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
    Frame::Integer(c.pel.len() as i64)
}

// ---- XACK / XPENDING / XCLAIM / XAUTOCLAIM ----

fn xack(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[1];
    match stream_read(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(s)) if !s.groups.contains_key(&args[2]) => return Frame::Integer(0),
        Ok(Some(_)) => {}
    }
    let ids = match strict_ids(&args[3..]) {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let Ok(Some(s)) = stream_write(ctx, key) else { return Frame::Integer(0) };
    let g = s.groups.get_mut(&args[2]).expect("checked");
    let acked = ids.into_iter().filter(|&id| g.remove_pending(id).is_some()).count();
    ctx.dirty(acked as u64);
    Frame::Integer(acked as i64)
}

fn xpending(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return syntax_error();
    }
    let mut range = None;
    let mut consumer_name: Option<&Bytes> = None;
    let mut min_idle: i64 = 0;
    if argc >= 6 {
        let mut at = 3;
        if args[3].eq_ignore_ascii_case(b"idle") {
            min_idle = match int_arg(&args[4]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if argc < 8 {
                return syntax_error();
            }
            at += 2;
        }
        let count = match int_arg(&args[at + 2]) {
            Ok(v) => v.max(0),
            Err(e) => return e,
        };
        let (mut start, sx) = match interval_id(&args[at], 0) {
            Ok(v) => v,
            Err(e) => return e,
        };
        if sx {
            match start.incr() {
                Some(v) => start = v,
                None => return err("ERR invalid start ID for the interval"),
            }
        }
        let (mut end, ex) = match interval_id(&args[at + 1], u64::MAX) {
            Ok(v) => v,
            Err(e) => return e,
        };
        if ex {
            match end.decr() {
                Some(v) => end = v,
                None => return err("ERR invalid end ID for the interval"),
            }
        }
        if at + 3 < argc {
            consumer_name = Some(&args[at + 3]);
        }
        range = Some((start, end, count));
    }
    let now = ctx.now_ms;
    let s = match stream_read(ctx, &args[1]) {
        Err(e) => return e,
        Ok(s) => s,
    };
    let Some(g) = s.and_then(|s| s.groups.get(&args[2])) else {
        return nogroup_key(&args[1], &args[2]);
    };
    let Some((start, end, mut count)) = range else {
        if g.pel.is_empty() {
            return Frame::Array(vec![Frame::Integer(0), Frame::Null, Frame::Null, Frame::NullArray]);
        }
        let first = *g.pel.keys().next().expect("non-empty");
        let last = *g.pel.keys().next_back().expect("non-empty");
        let consumers: Vec<Frame> = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(name, c)| Frame::Array(vec![Frame::bulk(name.clone()), Frame::bulk(c.pel.len().to_string())]))
            .collect();
        return Frame::Array(vec![Frame::Integer(g.pel.len() as i64), id_frame(first), id_frame(last), Frame::Array(consumers)]);
    };
    let ids: Box<dyn Iterator<Item = StreamId> + '_> = match consumer_name {
        Some(name) => match g.consumers.get(name) {
            None => return Frame::Array(Vec::new()),
            Some(c) => Box::new(c.pel.range(start..).copied()),
        },
        None => Box::new(g.pel.range(start..).map(|(id, _)| *id)),
    };
    let mut out = Vec::new();
    for id in ids {
        if count == 0 || id > end {
            break;
        }
        let Some(nack) = g.pel.get(&id) else { continue };
        if min_idle != 0 && now.saturating_sub(nack.delivery_time) < min_idle {
            continue;
        }
        count -= 1;
        out.push(Frame::Array(vec![
            id_frame(id),
            Frame::bulk(nack.consumer.clone()),
            Frame::Integer(now.saturating_sub(nack.delivery_time).max(0)),
            Frame::Integer(nack.delivery_count as i64),
        ]));
    }
    Frame::Array(out)
}

fn int_arg_msg(b: &[u8], msg: &str) -> Result<i64, Frame> {
    crate::server::types::parse_canonical_i64(b).ok_or_else(|| err(format!("ERR {msg}")))
}

fn xclaim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let group = &args[2];
    match stream_read(ctx, key) {
        Err(e) => return e,
        Ok(s) if s.is_none_or(|s| !s.groups.contains_key(group)) => return nogroup_key(key, group),
        Ok(_) => {}
    }
    let min_idle = match int_arg_msg(&args[4], "Invalid min-idle-time argument for XCLAIM") {
        Ok(v) => v.max(0),
        Err(e) => return e,
    };
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match parse_id(&args[j], 0, true, false) {
            Some((id, _)) => ids.push((id, j)),
            None => break,
        }
        j += 1;
    }
    let now = ctx.now_ms;
    let (mut force, mut justid) = (false, false);
    let mut delivery_time: Option<i64> = None;
    let mut retry_count: Option<i64> = None;
    let mut last_id = StreamId::MIN;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        if opt.eq_ignore_ascii_case(b"force") {
            force = true;
        } else if opt.eq_ignore_ascii_case(b"justid") {
            justid = true;
        } else if opt.eq_ignore_ascii_case(b"idle") && more > 0 {
            j += 1;
            match int_arg_msg(&args[j], "Invalid IDLE option argument for XCLAIM") {
                Ok(v) => delivery_time = Some(now.wrapping_sub(v)),
                Err(e) => return e,
            }
        } else if opt.eq_ignore_ascii_case(b"time") && more > 0 {
            j += 1;
            match int_arg_msg(&args[j], "Invalid TIME option argument for XCLAIM") {
                Ok(v) => delivery_time = Some(v),
                Err(e) => return e,
            }
        } else if opt.eq_ignore_ascii_case(b"retrycount") && more > 0 {
            j += 1;
            match int_arg_msg(&args[j], "Invalid RETRYCOUNT option argument for XCLAIM") {
                Ok(v) => retry_count = Some(v),
                Err(e) => return e,
            }
        } else if opt.eq_ignore_ascii_case(b"lastid") && more > 0 {
            j += 1;
            match strict_id(&args[j]) {
                Ok(v) => last_id = v,
                Err(e) => return e,
            }
        } else {
            return err(format!("ERR Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(opt)));
        }
        j += 1;
    }
    // -1 (the option's "not given") counts as not given, as in Redis.
    let delivery_time = match delivery_time {
        Some(-1) | None => now,
        Some(t) if t < 0 || t > now => now,
        Some(t) => t,
    };
    let retry_count = retry_count.filter(|&c| c >= 0);
    ctx.prevent_propagation();
    let consumer = &args[3];
    let Ok(Some(s)) = stream_write(ctx, key) else { return Frame::Array(Vec::new()) };
    let mut propagate_last_id = false;
    {
        let g = s.groups.get_mut(group).expect("checked");
        if last_id > g.last_id {
            g.last_id = last_id;
            propagate_last_id = true;
        }
    }
    let mut out = Vec::new();
    let mut also = Vec::new();
    let mut dirty = 0u64;
    let mut consumer_created = false;
    for (id, _) in ids {
        let exists = s.contains(id);
        let g = s.groups.get_mut(group).expect("checked");
        let has_nack = g.pel.contains_key(&id);
        if !exists {
            if has_nack {
                let n = g.pel.get(&id).expect("present").clone();
                also.push(xclaim_propagation(key, group, &n.consumer, id, n.delivery_time, n.delivery_count, g.last_id));
                propagate_last_id = false;
                dirty += 1;
                g.remove_pending(id);
            }
            continue;
        }
        if !has_nack && !force {
            continue;
        }
        if has_nack && min_idle > 0 {
            let n = &g.pel[&id];
            if now.saturating_sub(n.delivery_time) < min_idle {
                continue;
            }
        }
        match g.consumers.get_mut(consumer) {
            Some(c) => c.seen_time = now,
            None => {
                g.consumers.insert(consumer.clone(), Consumer { seen_time: now, pel: Default::default() });
                consumer_created = true;
            }
        }
        let fresh = !has_nack;
        let nack = g.assign_pending(id, consumer, now);
        if fresh {
            nack.delivery_count = 1;
        }
        nack.delivery_time = delivery_time;
        if let Some(c) = retry_count {
            nack.delivery_count = c as u64;
        } else if !justid {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        }
        let (t, c) = (nack.delivery_time, nack.delivery_count);
        also.push(xclaim_propagation(key, group, consumer, id, t, c, g.last_id));
        propagate_last_id = false;
        dirty += 1;
        if justid {
            out.push(id_frame(id));
        } else if let Some(e) = s.get(id) {
            out.push(entry_frame(e.id, &e.fields));
        }
    }
    if propagate_last_id {
        also.push(setid_propagation(key, group, &s.groups[group]));
        dirty += 1;
    }
    if consumer_created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        dirty += 1;
    }
    for a in also {
        ctx.also_propagate(a);
    }
    ctx.dirty(dirty);
    Frame::Array(out)
}

fn xautoclaim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let group = &args[2];
    let min_idle = match int_arg_msg(&args[4], "Invalid min-idle-time argument for XAUTOCLAIM") {
        Ok(v) => v.max(0),
        Err(e) => return e,
    };
    let (mut start, sx) = match interval_id(&args[5], 0) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if sx {
        match start.incr() {
            Some(v) => start = v,
            None => return err("ERR invalid start ID for the interval"),
        }
    }
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args[j].eq_ignore_ascii_case(b"count") && more > 0 {
            let max = i64::MAX / 16;
            match crate::server::types::parse_canonical_i64(&args[j + 1]) {
                Some(v) if (1..=max).contains(&v) => count = v,
                _ => return err("ERR COUNT must be > 0"),
            }
            j += 1;
        } else if args[j].eq_ignore_ascii_case(b"justid") {
            justid = true;
        } else {
            return syntax_error();
        }
        j += 1;
    }
    match stream_read(ctx, key) {
        Err(e) => return e,
        Ok(s) if s.is_none_or(|s| !s.groups.contains_key(group)) => return nogroup_key(key, group),
        Ok(_) => {}
    }
    ctx.prevent_propagation();
    let now = ctx.now_ms;
    let consumer = &args[3];
    let Ok(Some(s)) = stream_write(ctx, key) else { return Frame::Array(Vec::new()) };
    let mut attempts = count.saturating_mul(10);
    let mut claimed = Vec::new();
    let mut deleted_ids = Vec::new();
    let mut also = Vec::new();
    let mut dirty = 0u64;
    let mut consumer_created = false;
    // No more than the attempts allowed, and one more for the cursor.
    let look_at = usize::try_from(attempts).unwrap_or(usize::MAX).saturating_add(1);
    let pending: Vec<StreamId> = s.groups[group].pel.range(start..).map(|(id, _)| *id).take(look_at).collect();
    let mut next_index = pending.len();
    for (i, &id) in pending.iter().enumerate() {
        if attempts == 0 || count == 0 {
            next_index = i;
            break;
        }
        attempts -= 1;
        let exists = s.contains(id);
        let g = s.groups.get_mut(group).expect("checked");
        if !exists {
            let n = g.pel.get(&id).expect("present").clone();
            also.push(xclaim_propagation(key, group, &n.consumer, id, n.delivery_time, n.delivery_count, g.last_id));
            dirty += 1;
            g.remove_pending(id);
            deleted_ids.push(id);
            count -= 1;
            continue;
        }
        if min_idle > 0 && now.saturating_sub(g.pel[&id].delivery_time) < min_idle {
            continue;
        }
        match g.consumers.get_mut(consumer) {
            Some(c) => c.seen_time = now,
            None => {
                g.consumers.insert(consumer.clone(), Consumer { seen_time: now, pel: Default::default() });
                consumer_created = true;
            }
        }
        let nack = g.assign_pending(id, consumer, now);
        nack.delivery_time = now;
        if !justid {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        }
        let (t, c) = (nack.delivery_time, nack.delivery_count);
        also.push(xclaim_propagation(key, group, consumer, id, t, c, g.last_id));
        dirty += 1;
        count -= 1;
        if justid {
            claimed.push(id_frame(id));
        } else if let Some(e) = s.get(id) {
            claimed.push(entry_frame(e.id, &e.fields));
        }
    }
    // The cursor: the pending entry after the last one looked at (0-0 at the end).
    let next = pending.get(next_index).copied().unwrap_or(StreamId::MIN);
    if consumer_created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        dirty += 1;
    }
    for a in also {
        ctx.also_propagate(a);
    }
    ctx.dirty(dirty);
    Frame::Array(vec![id_frame(next), Frame::Array(claimed), Frame::Array(deleted_ids.into_iter().map(id_frame).collect())])
}

// ---- XINFO ----

fn opt_int(v: Option<i64>) -> Frame {
    v.map_or(Frame::Null, Frame::Integer)
}

fn entries_read_frame(g: &ConsumerGroup) -> Frame {
    opt_int((g.entries_read != ENTRIES_READ_INVALID).then_some(g.entries_read))
}

fn xinfo_consumers(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let now = ctx.now_ms;
    let s = match stream_read(ctx, &args[2]) {
        Err(e) => return e,
        Ok(None) => return err("ERR no such key"),
        Ok(Some(s)) => s,
    };
    let Some(g) = s.groups.get(&args[3]) else {
        return err(format!("NOGROUP No such consumer group '{}' for key name '{}'", String::from_utf8_lossy(&args[3]), String::from_utf8_lossy(&args[2])));
    };
    Frame::Array(
        g.consumers
            .iter()
            .map(|(name, c)| {
                Frame::Map(vec![
                    (Frame::bulk("name"), Frame::bulk(name.clone())),
                    (Frame::bulk("pending"), Frame::Integer(c.pel.len() as i64)),
                    (Frame::bulk("idle"), Frame::Integer(now.saturating_sub(c.seen_time).max(0))),
                ])
            })
            .collect(),
    )
}

fn xinfo_groups(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let s = match stream_read(ctx, &args[2]) {
        Err(e) => return e,
        Ok(None) => return err("ERR no such key"),
        Ok(Some(s)) => s,
    };
    Frame::Array(
        s.groups
            .iter()
            .map(|(name, g)| {
                Frame::Map(vec![
                    (Frame::bulk("name"), Frame::bulk(name.clone())),
                    (Frame::bulk("consumers"), Frame::Integer(g.consumers.len() as i64)),
                    (Frame::bulk("pending"), Frame::Integer(g.pel.len() as i64)),
                    (Frame::bulk("last-delivered-id"), id_frame(g.last_id)),
                    (Frame::bulk("entries-read"), entries_read_frame(g)),
                    (Frame::bulk("lag"), opt_int(s.group_lag(g))),
                ])
            })
            .collect(),
    )
}

fn xinfo_stream(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let s = match stream_read(ctx, &args[2]) {
        Err(e) => return e,
        Ok(None) => return err("ERR no such key"),
        Ok(Some(s)) => s,
    };
    let opts = &args[3..];
    let mut full = true;
    let mut count: i64 = 10;
    if opts.is_empty() {
        full = false;
    } else {
        if (opts.len() != 1 && opts.len() != 3) || !opts[0].eq_ignore_ascii_case(b"full") {
            return subcommand_syntax_error(args);
        }
        if opts.len() == 3 {
            if !opts[1].eq_ignore_ascii_case(b"count") {
                return subcommand_syntax_error(args);
            }
            count = match int_arg(&opts[2]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if count < 0 {
                count = 10;
            }
        }
    }
    let mut m = vec![
        (Frame::bulk("length"), Frame::Integer(s.len() as i64)),
        (Frame::bulk("radix-tree-keys"), Frame::Integer(s.node_count() as i64)),
        (Frame::bulk("radix-tree-nodes"), Frame::Integer(s.rax_node_count() as i64)),
        (Frame::bulk("last-generated-id"), id_frame(s.last_id)),
        (Frame::bulk("max-deleted-entry-id"), id_frame(s.max_deleted_id)),
        (Frame::bulk("entries-added"), Frame::Integer(s.entries_added as i64)),
        (Frame::bulk("recorded-first-entry-id"), id_frame(s.first_id)),
    ];
    if !full {
        m.push((Frame::bulk("groups"), Frame::Integer(s.groups.len() as i64)));
        let first = s.range(StreamId::MIN, StreamId::MAX, false, 1).first().map_or(Frame::Null, |e| entry_frame(e.id, &e.fields));
        let last = s.range(StreamId::MIN, StreamId::MAX, true, 1).first().map_or(Frame::Null, |e| entry_frame(e.id, &e.fields));
        m.push((Frame::bulk("first-entry"), first));
        m.push((Frame::bulk("last-entry"), last));
        return Frame::Map(m);
    }
    let limit = count as usize;
    let take = |n: usize| if limit == 0 { n } else { n.min(limit) };
    let entries = s.range(StreamId::MIN, StreamId::MAX, false, limit).into_iter().map(|e| entry_frame(e.id, &e.fields)).collect();
    m.push((Frame::bulk("entries"), Frame::Array(entries)));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pel: Vec<Frame> = g
                .pel
                .iter()
                .take(take(g.pel.len()))
                .map(|(id, n)| Frame::Array(vec![id_frame(*id), Frame::bulk(n.consumer.clone()), Frame::Integer(n.delivery_time), Frame::Integer(n.delivery_count as i64)]))
                .collect();
            let consumers: Vec<Frame> = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let cpel: Vec<Frame> = c
                        .pel
                        .iter()
                        .take(take(c.pel.len()))
                        .map(|id| {
                            let (t, c) = g.pel.get(id).map_or((0, 0), |n| (n.delivery_time, n.delivery_count));
                            Frame::Array(vec![id_frame(*id), Frame::Integer(t), Frame::Integer(c as i64)])
                        })
                        .collect();
                    Frame::Map(vec![
                        (Frame::bulk("name"), Frame::bulk(cname.clone())),
                        (Frame::bulk("seen-time"), Frame::Integer(c.seen_time)),
                        (Frame::bulk("pel-count"), Frame::Integer(c.pel.len() as i64)),
                        (Frame::bulk("pending"), Frame::Array(cpel)),
                    ])
                })
                .collect();
            Frame::Map(vec![
                (Frame::bulk("name"), Frame::bulk(name.clone())),
                (Frame::bulk("last-delivered-id"), id_frame(g.last_id)),
                (Frame::bulk("entries-read"), entries_read_frame(g)),
                (Frame::bulk("lag"), opt_int(s.group_lag(g))),
                (Frame::bulk("pel-count"), Frame::Integer(g.pel.len() as i64)),
                (Frame::bulk("pending"), Frame::Array(pel)),
                (Frame::bulk("consumers"), Frame::Array(consumers)),
            ])
        })
        .collect();
    m.push((Frame::bulk("groups"), Frame::Array(groups)));
    Frame::Map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::from(p.to_string())).collect()
    }

    #[test]
    fn xread_keys_follow_streams() {
        assert_eq!(xread_keys(&b(&["XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "0"])), vec![4, 5]);
        assert_eq!(xread_keys(&b(&["XREADGROUP", "GROUP", "g", "c", "NOACK", "STREAMS", "a", ">"])), vec![6]);
        assert_eq!(xread_keys(&b(&["XREAD", "STREAMS", "a", "b", "0"])), Vec::<usize>::new());
    }
}
