//! Generic key commands: DEL, EXISTS, TYPE, expiry, KEYS/SCAN, RENAME, MOVE, COPY,
//! SELECT/SWAPDB/FLUSH*, RANDOMKEY, DBSIZE, OBJECT, TOUCH.

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, not_integer, parse_int, syntax_error, CommandSpec, Ctx};
use crate::server::types::glob::glob_match;
use crate::server::notify;
use crate::server::value::Value;

pub fn commands() -> Vec<CommandSpec> {
    // "generic" unless the command names its own group (SELECT, FLUSHALL...); subcommands follow.
    let g = |c: CommandSpec| {
        let group = c.group;
        c.group(group)
    };
    vec![
        g(cmd("del", -2, "write", 1, -1, 1, "keyspace write slow", del).summary("Delete a key").key_flags(&["RM", "delete"])),
        g(cmd("unlink", -2, "write fast", 1, -1, 1, "keyspace write fast", unlink).since("4.0.0").summary("Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.").key_flags(&["RM", "delete"])),
        g(cmd("exists", -2, "readonly fast", 1, -1, 1, "keyspace read fast", exists).summary("Determine if a key exists")),
        g(cmd("type", 2, "readonly fast", 1, 1, 1, "keyspace read fast", type_cmd).summary("Determine the type stored at key")),
        g(cmd("expire", -3, "write fast", 1, 1, 1, "keyspace write fast", expire).summary("Set a key's time to live in seconds")),
        g(cmd("pexpire", -3, "write fast", 1, 1, 1, "keyspace write fast", pexpire).since("2.6.0").summary("Set a key's time to live in milliseconds")),
        g(cmd("expireat", -3, "write fast", 1, 1, 1, "keyspace write fast", expireat).since("1.2.0").summary("Set the expiration for a key as a UNIX timestamp")),
        g(cmd("pexpireat", -3, "write fast", 1, 1, 1, "keyspace write fast", pexpireat).since("2.6.0").summary("Set the expiration for a key as a UNIX timestamp specified in milliseconds")),
        g(cmd("expiretime", 2, "readonly fast", 1, 1, 1, "keyspace read fast", expiretime).since("7.0.0").summary("Get the expiration Unix timestamp for a key")),
        g(cmd("pexpiretime", 2, "readonly fast", 1, 1, 1, "keyspace read fast", pexpiretime).since("7.0.0").summary("Get the expiration Unix timestamp for a key in milliseconds")),
        g(cmd("persist", 2, "write fast", 1, 1, 1, "keyspace write fast", persist).since("2.2.0").summary("Remove the expiration from a key")),
        g(cmd("ttl", 2, "readonly fast", 1, 1, 1, "keyspace read fast", ttl).summary("Get the time to live for a key in seconds")),
        g(cmd("pttl", 2, "readonly fast", 1, 1, 1, "keyspace read fast", pttl).since("2.6.0").summary("Get the time to live for a key in milliseconds")),
        g(cmd("keys", 2, "readonly", 0, 0, 0, "keyspace read slow dangerous", keys).summary("Find all keys matching the given pattern").tips(&["request_policy:all_shards", "nondeterministic_output_order"])),
        g(cmd("scan", -2, "readonly", 0, 0, 0, "keyspace read slow", scan).since("2.8.0").summary("Incrementally iterate the keys space").tips(&["nondeterministic_output", "request_policy:special"])),
        g(cmd("rename", 3, "write", 1, 2, 1, "keyspace write slow", rename).summary("Rename a key")),
        g(cmd("renamenx", 3, "write fast", 1, 2, 1, "keyspace write fast", renamenx).summary("Rename a key, only if the new key does not exist")),
        g(cmd("randomkey", 1, "readonly", 0, 0, 0, "keyspace read slow", randomkey).summary("Return a random key from the keyspace").tips(&["request_policy:all_shards", "nondeterministic_output"])),
        g(cmd("dbsize", 1, "readonly fast", 0, 0, 0, "keyspace read fast", dbsize).group("server").summary("Return the number of keys in the selected database").tips(&["request_policy:all_shards", "response_policy:agg_sum"])),
        g(cmd("select", 2, "loading stale fast", 0, 0, 0, "fast connection", select).group("connection").summary("Change the selected database for the current connection")),
        g(cmd("move", 3, "write fast", 1, 1, 1, "keyspace write fast", move_cmd).summary("Move a key to another database")),
        g(cmd("swapdb", 3, "write fast", 0, 0, 0, "keyspace write fast dangerous", swapdb).group("server").since("4.0.0").summary("Swaps two Redis databases")),
        g(cmd("copy", -3, "write denyoom", 1, 2, 1, "keyspace write slow", copy).since("6.2.0").summary("Copy a key")),
        g(cmd("flushdb", -1, "write", 0, 0, 0, "keyspace write slow dangerous", flushdb).group("server").summary("Remove all keys from the current database")),
        g(cmd("flushall", -1, "write", 0, 0, 0, "keyspace write slow dangerous", flushall).group("server").summary("Remove all keys from all databases")),
        g(cmd("touch", -2, "readonly fast", 1, -1, 1, "keyspace read fast", touch).since("3.2.1").summary("Alters the last access time of a key(s). Returns the number of existing keys specified.")),
        g(cmd("object", -2, "", 0, 0, 0, "slow", container_help)
            .since("2.2.3")
            .summary("A container for object introspection commands")
            .subs(vec![
                cmd("encoding", 3, "readonly", 2, 2, 1, "keyspace read slow", object_encoding).since("2.2.3").summary("Inspect the internal encoding of a Redis object"),
                cmd("freq", 3, "readonly", 2, 2, 1, "keyspace read slow", object_freq).since("4.0.0").summary("Get the logarithmic access frequency counter of a Redis object"),
                cmd("idletime", 3, "readonly", 2, 2, 1, "keyspace read slow", object_idletime).since("2.2.3").summary("Get the time since a Redis object was last accessed"),
                cmd("refcount", 3, "readonly", 2, 2, 1, "keyspace read slow", object_refcount).since("2.2.3").summary("Get the number of references to the value of the key"),
                cmd("help", 2, "loading stale", 0, 0, 0, "keyspace slow", object_help).since("6.2.0").summary("Show helpful text about the different subcommands"),
            ])),
    ]
}

/// Handler of a container command called without a subcommand.
pub fn container_help(_ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    crate::server::command::wrong_args(&String::from_utf8_lossy(&args[0]).to_ascii_lowercase())
}

fn del(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let lazy = ctx.srv.config.get_bool("lazyfree-lazy-user-del");
    delete_keys(ctx, args, lazy)
}

/// UNLINK: DEL whose large values are freed in the background (and DEL itself under
/// lazyfree-lazy-user-del).
fn unlink(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    delete_keys(ctx, args, true)
}

fn delete_keys(ctx: &mut Ctx, args: &[Bytes], lazy: bool) -> Frame {
    let mut n = 0;
    for key in &args[1..] {
        let deleted = if lazy { ctx.delete_async(key) } else { ctx.delete(key) };
        if deleted {
            n += 1;
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    ctx.dirty(n);
    Frame::Integer(n as i64)
}

fn exists(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut n = 0;
    for key in &args[1..] {
        if ctx.lookup_read_no_touch(key).is_some() {
            n += 1;
        }
    }
    Frame::Integer(n)
}

fn type_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match ctx.lookup_read_no_touch(&args[1]) {
        Some(pos) => Frame::Simple(ctx.db().slot(pos).value.type_name().to_string()),
        None => Frame::Simple("none".to_string()),
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
}

/// EXPIRE family with NX/XX/GT/LT. `absolute`: the argument is a unix time.
fn generic_expire(ctx: &mut Ctx, args: &[Bytes], unit: Unit, absolute: bool) -> Frame {
    let key = &args[1];
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let mut when = match parse_int(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => return Frame::error(format!("ERR Unsupported option {}", String::from_utf8_lossy(opt))),
        }
    }
    if nx && (xx || gt || lt) {
        return Frame::error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Frame::error("ERR GT and LT options at the same time are not compatible");
    }
    let invalid = || Frame::error(format!("ERR invalid expire time in '{name}' command"));
    if let Unit::Seconds = unit {
        match when.checked_mul(1000) {
            Some(v) => when = v,
            None => return invalid(),
        }
    }
    if !absolute {
        match when.checked_add(ctx.now_ms) {
            Some(v) => when = v,
            None => return invalid(),
        }
    }
    let Some(pos) = ctx.lookup_write(key) else {
        return Frame::Integer(0);
    };
    let current = ctx.db().expiry_of(pos);
    if nx && current.is_some() || xx && current.is_none() {
        return Frame::Integer(0);
    }
    // A key without TTL counts as infinite for GT/LT.
    if gt && current.is_none_or(|c| when <= c) {
        return Frame::Integer(0);
    }
    if lt && current.is_some_and(|c| when >= c) {
        return Frame::Integer(0);
    }
    if ctx.already_expired(when) {
        ctx.db().remove_at(pos);
        ctx.dirty(1);
        ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.notify(notify::GENERIC, "del", key);
        return Frame::Integer(1);
    }
    ctx.db().set_expiry(pos, when);
    ctx.dirty(1);
    ctx.propagate_as(vec![Bytes::from_static(b"PEXPIREAT"), key.clone(), Bytes::from(when.to_string())]);
    ctx.notify(notify::GENERIC, "expire", key);
    Frame::Integer(1)
}

fn expire(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    generic_expire(ctx, args, Unit::Seconds, false)
}

fn pexpire(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    generic_expire(ctx, args, Unit::Millis, false)
}

fn expireat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    generic_expire(ctx, args, Unit::Seconds, true)
}

fn pexpireat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    generic_expire(ctx, args, Unit::Millis, true)
}

/// -2 missing, -1 no TTL, else the value computed by `f` from (expire ms, now ms).
fn ttl_generic(ctx: &mut Ctx, key: &[u8], f: impl Fn(i64, i64) -> i64) -> Frame {
    let Some(pos) = ctx.lookup_read_no_touch(key) else {
        return Frame::Integer(-2);
    };
    match ctx.db().expiry_of(pos) {
        None => Frame::Integer(-1),
        Some(when) => Frame::Integer(f(when, ctx.now_ms)),
    }
}

fn ttl(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], |w, now| ((w - now).max(0) + 500) / 1000)
}

fn pttl(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], |w, now| (w - now).max(0))
}

fn expiretime(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], |w, _| w / 1000)
}

fn pexpiretime(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    ttl_generic(ctx, &args[1], |w, _| w)
}

fn persist(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(pos) = ctx.lookup_write(&args[1]) else {
        return Frame::Integer(0);
    };
    if ctx.db().persist(pos) {
        ctx.dirty(1);
        ctx.notify(notify::GENERIC, "persist", &args[1]);
        Frame::Integer(1)
    } else {
        Frame::Integer(0)
    }
}

fn is_expired(ctx: &mut Ctx, pos: usize) -> bool {
    let now = ctx.now_ms;
    ctx.db().expiry_of(pos).is_some_and(|w| w <= now)
}

fn keys(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    let now = ctx.now_ms;
    let db = ctx.db();
    let mut out = Vec::new();
    for pos in 0..db.len() {
        if db.expiry_of(pos).is_some_and(|w| w <= now) {
            continue;
        }
        let k = db.slot(pos).key.as_slice();
        if all || glob_match(pattern, k) {
            out.push(Frame::Bulk(Bytes::copy_from_slice(k)));
        }
    }
    Frame::Array(out)
}

/// SCAN cursor parsing as Redis: "ERR invalid cursor" for non-numbers.
pub fn parse_cursor(b: &[u8]) -> Result<u64, Frame> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| Frame::error("ERR invalid cursor"))
}

fn scan(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let cursor = match parse_cursor(&args[1]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut count = 10usize;
    let mut pattern: Option<Bytes> = None;
    let mut type_filter: Option<String> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        if i + 1 >= args.len() {
            return syntax_error();
        }
        match opt.as_slice() {
            b"COUNT" => match parse_int(&args[i + 1]) {
                Ok(n) if n >= 1 => count = n as usize,
                Ok(_) => return syntax_error(),
                Err(_) => return not_integer(),
            },
            b"MATCH" => pattern = Some(args[i + 1].clone()),
            b"TYPE" => type_filter = Some(String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase()),
            _ => return syntax_error(),
        }
        i += 2;
    }
    let now = ctx.now_ms;
    let mut found: Vec<(Bytes, bool)> = Vec::new();
    let db = ctx.db();
    let next = db.scan(cursor, count, |slot| {
        let k = slot.key.as_slice();
        if let Some(p) = &pattern {
            if !glob_match(p, k) {
                return;
            }
        }
        if let Some(t) = &type_filter {
            if slot.value.type_name() != t {
                return;
            }
        }
        found.push((Bytes::copy_from_slice(k), slot.has_expiry()));
    });
    let mut keys = Vec::with_capacity(found.len());
    for (k, has_ttl) in found {
        if has_ttl {
            if let Some(pos) = ctx.db().find(&k) {
                if ctx.db().expiry_of(pos).is_some_and(|w| w <= now) {
                    // Deleted (lazy expiry, a DEL propagated) as Redis's SCAN does.
                    ctx.lookup_write(&k);
                    continue;
                }
            }
        }
        keys.push(Frame::Bulk(k));
    }
    Frame::Array(vec![Frame::Bulk(Bytes::from(next.to_string())), Frame::Array(keys)])
}

fn rename_generic(ctx: &mut Ctx, args: &[Bytes], nx: bool) -> Frame {
    let (src, dst) = (&args[1], &args[2]);
    let Some(pos) = ctx.lookup_write(src) else {
        return Frame::error("ERR no such key");
    };
    if src == dst {
        return if nx { Frame::Integer(0) } else { Frame::ok() };
    }
    if nx && ctx.lookup_write(dst).is_some() {
        return Frame::Integer(0);
    }
    let when = ctx.db().expiry_of(pos);
    let slot = ctx.db().remove_at(pos);
    let lru = slot.lru;
    let db = ctx.db_index();
    let newpos = ctx.srv.dbs[db].set(dst, slot.value, false, lru);
    ctx.notify_new_in(db, dst);
    if let Some(w) = when {
        ctx.db().set_expiry(newpos, w);
    }
    ctx.dirty(1);
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    ctx.signal_key_ready(dst);
    if nx {
        Frame::Integer(1)
    } else {
        Frame::ok()
    }
}

fn rename(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    rename_generic(ctx, args, true)
}

fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    for _ in 0..100 {
        let Some(pos) = ctx.db().random_pos() else {
            return Frame::Null;
        };
        if is_expired(ctx, pos) {
            let key = Bytes::copy_from_slice(ctx.db().slot(pos).key.as_slice());
            // Deletes it (lazy expiry) and tries again.
            ctx.lookup_write(&key);
            continue;
        }
        return Frame::Bulk(Bytes::copy_from_slice(ctx.db().slot(pos).key.as_slice()));
    }
    match ctx.db().random_pos() {
        Some(pos) => Frame::Bulk(Bytes::copy_from_slice(ctx.db().slot(pos).key.as_slice())),
        None => Frame::Null,
    }
}

fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Integer(ctx.db().len() as i64)
}

fn parse_db(ctx: &Ctx, b: &[u8]) -> Result<usize, Frame> {
    let n = parse_int(b).map_err(|_| Frame::error("ERR value is not an integer or out of range"))?;
    if n < 0 || n as usize >= ctx.srv.dbs.len() {
        return Err(Frame::error("ERR DB index is out of range"));
    }
    Ok(n as usize)
}

fn select(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match parse_db(ctx, &args[1]) {
        Ok(db) => {
            ctx.client.db = db;
            Frame::ok()
        }
        Err(e) => e,
    }
}

fn move_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let dst = match parse_db(ctx, &args[2]) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let src = ctx.db_index();
    if src == dst {
        return Frame::error("ERR source and destination objects are the same");
    }
    let Some(pos) = ctx.lookup_write(key) else {
        return Frame::Integer(0);
    };
    if ctx.lookup_write_in(dst, key).is_some() {
        return Frame::Integer(0);
    }
    let when = ctx.db().expiry_of(pos);
    let slot = ctx.db().remove_at(pos);
    let newpos = ctx.srv.dbs[dst].insert_new(key, slot.value, slot.lru);
    ctx.notify_new_in(dst, key);
    if let Some(w) = when {
        ctx.srv.dbs[dst].set_expiry(newpos, w);
    }
    ctx.dirty(1);
    ctx.signal_modified(dst, key);
    ctx.notify(notify::GENERIC, "move_from", key);
    ctx.signal_key_ready_in(dst, key);
    Frame::Integer(1)
}

fn swapdb(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let parse = |b: &[u8]| -> Result<usize, Frame> {
        let n = parse_int(b).map_err(|_| Frame::error("ERR invalid first DB index"))?;
        Ok(n as usize)
    };
    let a = match parse_int(&args[1]) {
        Ok(n) => n,
        Err(_) => return Frame::error("ERR invalid first DB index"),
    };
    let b = match parse(&args[2]) {
        Ok(_) => parse_int(&args[2]).unwrap_or(-1),
        Err(_) => return Frame::error("ERR invalid second DB index"),
    };
    let n = ctx.srv.dbs.len() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Frame::error("ERR DB index is out of range");
    }
    let (a, b) = (a as usize, b as usize);
    if a != b {
        // Watchers of either db and blocked clients may now see different data.
        ctx.srv.touch_all_watched(Some(a), Some(b), Some(ctx.client));
        ctx.srv.touch_all_watched(Some(b), Some(a), Some(ctx.client));
        ctx.srv.dbs.swap(a, b);
        // Redis forgets a writable replica's keys with a TTL on SWAPDB (best effort).
        ctx.srv.replica_keys_with_expire.clear();
        let ready: Vec<(usize, Bytes)> = ctx.srv.blocking_keys.keys().filter(|(d, _)| *d == a || *d == b).cloned().collect();
        for (d, k) in ready {
            ctx.signal_key_ready_in(d, &k);
        }
    }
    ctx.dirty(1);
    Frame::ok()
}

fn copy(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (src, dst) = (&args[1], &args[2]);
    let mut dst_db = ctx.db_index();
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"REPLACE" => replace = true,
            b"DB" if i + 1 < args.len() => {
                dst_db = match parse_db(ctx, &args[i + 1]) {
                    Ok(d) => d,
                    Err(e) => return e,
                };
                i += 1;
            }
            _ => return syntax_error(),
        }
        i += 1;
    }
    if src == dst && dst_db == ctx.db_index() {
        return Frame::error("ERR source and destination objects are the same");
    }
    let Some(pos) = ctx.lookup_write(src) else {
        return Frame::Integer(0);
    };
    if let Some(dpos) = ctx.lookup_write_in(dst_db, dst) {
        if !replace {
            return Frame::Integer(0);
        }
        ctx.srv.dbs[dst_db].remove_at(dpos);
    }
    let value = ctx.db().slot(pos).value.clone();
    let when = ctx.db().expiry_of(pos);
    let lru = ctx.new_lru();
    let newpos = ctx.srv.dbs[dst_db].insert_new(dst, value, lru);
    ctx.notify_new_in(dst_db, dst);
    if let Some(w) = when {
        ctx.srv.dbs[dst_db].set_expiry(newpos, w);
    }
    ctx.dirty(1);
    ctx.signal_modified(dst_db, dst);
    ctx.signal_key_ready_in(dst_db, dst);
    Frame::Integer(1)
}

fn flush_option(args: &[Bytes]) -> Result<(), Frame> {
    match args.len() {
        1 => Ok(()),
        2 if args[1].eq_ignore_ascii_case(b"async") || args[1].eq_ignore_ascii_case(b"sync") => Ok(()),
        _ => Err(syntax_error()),
    }
}

fn flushdb(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = flush_option(args) {
        return e;
    }
    let db = ctx.db_index();
    let n = ctx.db().len() as u64;
    ctx.srv.touch_all_watched(Some(db), None, Some(ctx.client));
    ctx.db().clear();
    crate::server::commands::tracking::invalidate_all(ctx.srv, Some(ctx.client));
    ctx.dirty(n.max(1));
    Frame::ok()
}

fn flushall(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if let Err(e) = flush_option(args) {
        return e;
    }
    let mut n = 0;
    ctx.srv.touch_all_watched(None, None, Some(ctx.client));
    for db in ctx.srv.dbs.iter_mut() {
        n += db.len() as u64;
        db.clear();
    }
    ctx.srv.replica_keys_with_expire.clear();
    crate::server::commands::tracking::invalidate_all(ctx.srv, Some(ctx.client));
    ctx.dirty(n.max(1));
    crate::server::persistence::after_flushall(ctx.srv);
    Frame::ok()
}

fn touch(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut n = 0;
    for key in &args[1..] {
        if ctx.lookup_read(key).is_some() {
            n += 1;
        }
    }
    Frame::Integer(n)
}

/// OBJECT subcommands look the key up without touching its LRU/LFU.
fn object_lookup(ctx: &mut Ctx, key: &[u8]) -> Option<usize> {
    let pos = ctx.db().find(key)?;
    if is_expired(ctx, pos) {
        let k = Bytes::copy_from_slice(key);
        ctx.lookup_write(&k);
        return None;
    }
    Some(pos)
}

fn object_encoding(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match object_lookup(ctx, &args[2]) {
        Some(pos) => Frame::bulk(ctx.db().slot(pos).value.encoding()),
        None => Frame::Null,
    }
}

fn object_refcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match object_lookup(ctx, &args[2]) {
        Some(pos) => {
            // Redis shares small integers (refcount INT_MAX); everything else has 1.
            let shared = matches!(&ctx.db().slot(pos).value, Value::Str(s) if crate::resp::parse_i64(s.as_slice()).is_some_and(|n| (0..10000).contains(&n)));
            Frame::Integer(if shared { i32::MAX as i64 } else { 1 })
        }
        None => Frame::Null,
    }
}

fn object_idletime(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(pos) = object_lookup(ctx, &args[2]) else {
        return Frame::Null;
    };
    if ctx.srv.limits.policy.is_lfu() {
        return Frame::error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let word = ctx.db().slot(pos).lru;
    Frame::Integer(crate::server::evict::idle_secs(word, ctx.srv.lru_clock) as i64)
}

fn object_freq(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(pos) = object_lookup(ctx, &args[2]) else {
        return Frame::Null;
    };
    if !ctx.srv.limits.policy.is_lfu() {
        return Frame::error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
    }
    let word = ctx.db().slot(pos).lru;
    Frame::Integer(crate::server::evict::lfu_decayed(word, ctx.srv.limits.lfu_decay_time) as i64)
}

fn object_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let lines = [
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ];
    Frame::Array(lines.iter().map(|l| Frame::Simple(l.to_string())).collect())
}
