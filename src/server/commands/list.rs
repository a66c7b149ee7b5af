//! The list command family, blocking variants included (Redis 7.0 semantics: replies,
//! errors, notifications, propagation of B* commands as their non-blocking forms).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, Ctx, CommandSpec};
use crate::server::notify;
use crate::server::types::access::{self, err, int_arg};
use crate::server::types::list::{End, ListValue};

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("blmove", 6, "write denyoom noscript blocking", 1, 2, 1, "write list slow blocking", blmove)
            .group("list").since("6.2.0").summary("Pop an element from a list, push it to another list and return it; or block until one is available").key_flags(&["RW", "access", "delete"]),
        cmd("blmpop", -5, "write blocking movablekeys", 0, 0, 0, "write list slow blocking", blmpop)
            .group("list").since("7.0.0").summary("Pop elements from a list, or block until one is available").key_flags(&["RW", "access", "delete"]).keys_fn(blmpop_keys),
        cmd("blpop", -3, "write noscript blocking", 1, -2, 1, "write list slow blocking", blpop)
            .group("list").since("2.0.0").summary("Remove and get the first element in a list, or block until one is available").key_flags(&["RW", "access", "delete"]),
        cmd("brpop", -3, "write noscript blocking", 1, -2, 1, "write list slow blocking", brpop)
            .group("list").since("2.0.0").summary("Remove and get the last element in a list, or block until one is available").key_flags(&["RW", "access", "delete"]),
        cmd("brpoplpush", 4, "write denyoom noscript blocking", 1, 2, 1, "write list slow blocking", brpoplpush)
            .group("list").since("2.2.0").summary("Pop an element from a list, push it to another list and return it; or block until one is available").key_flags(&["RW", "access", "delete"]),
        cmd("lindex", 3, "readonly", 1, 1, 1, "read list slow", lindex)
            .group("list").since("1.0.0").summary("Get an element from a list by its index").key_flags(&["RO"]),
        cmd("linsert", 5, "write denyoom", 1, 1, 1, "write list slow", linsert)
            .group("list").since("2.2.0").summary("Insert an element before or after another element in a list").key_flags(&["RW", "insert"]),
        cmd("llen", 2, "readonly fast", 1, 1, 1, "read list fast", llen)
            .group("list").since("1.0.0").summary("Get the length of a list").key_flags(&["RO"]),
        cmd("lmove", 5, "write denyoom", 1, 2, 1, "write list slow", lmove)
            .group("list").since("6.2.0").summary("Pop an element from a list, push it to another list and return it").key_flags(&["RW", "access", "delete"]),
        cmd("lmpop", -4, "write movablekeys", 0, 0, 0, "write list slow", lmpop)
            .group("list").since("7.0.0").summary("Pop elements from a list").key_flags(&["RW", "access", "delete"]).keys_fn(lmpop_keys),
        cmd("lpop", -2, "write fast", 1, 1, 1, "write list fast", lpop)
            .group("list").since("1.0.0").summary("Remove and get the first elements in a list").key_flags(&["RW", "access", "delete"]),
        cmd("lpos", -3, "readonly", 1, 1, 1, "read list slow", lpos)
            .group("list").since("6.0.6").summary("Return the index of matching elements on a list").key_flags(&["RO"]),
        cmd("lpush", -3, "write denyoom fast", 1, 1, 1, "write list fast", lpush)
            .group("list").since("1.0.0").summary("Prepend one or multiple elements to a list").key_flags(&["RW", "insert"]),
        cmd("lpushx", -3, "write denyoom fast", 1, 1, 1, "write list fast", lpushx)
            .group("list").since("2.2.0").summary("Prepend an element to a list, only if the list exists").key_flags(&["RW", "insert"]),
        cmd("lrange", 4, "readonly", 1, 1, 1, "read list slow", lrange)
            .group("list").since("1.0.0").summary("Get a range of elements from a list").key_flags(&["RO", "access"]),
        cmd("lrem", 4, "write", 1, 1, 1, "write list slow", lrem)
            .group("list").since("1.0.0").summary("Remove elements from a list").key_flags(&["RW", "delete"]),
        cmd("lset", 4, "write denyoom", 1, 1, 1, "write list slow", lset)
            .group("list").since("1.0.0").summary("Set the value of an element in a list by its index").key_flags(&["RW", "update"]),
        cmd("ltrim", 4, "write", 1, 1, 1, "write list slow", ltrim)
            .group("list").since("1.0.0").summary("Trim a list to the specified range").key_flags(&["RW", "delete"]),
        cmd("rpop", -2, "write fast", 1, 1, 1, "write list fast", rpop)
            .group("list").since("1.0.0").summary("Remove and get the last elements in a list").key_flags(&["RW", "access", "delete"]),
        cmd("rpoplpush", 3, "write denyoom", 1, 2, 1, "write list slow", rpoplpush)
            .group("list").since("1.2.0").summary("Remove the last element in a list, prepend it to another list and return it").key_flags(&["RW", "access", "delete"]),
        cmd("rpush", -3, "write denyoom fast", 1, 1, 1, "write list fast", rpush)
            .group("list").since("1.0.0").summary("Append one or multiple elements to a list").key_flags(&["RW", "insert"]),
        cmd("rpushx", -3, "write denyoom fast", 1, 1, 1, "write list fast", rpushx)
            .group("list").since("2.2.0").summary("Append an element to a list, only if the list exists").key_flags(&["RW", "insert"]),
    ]
}

/// Keys of `LMPOP numkeys key... dir` / `BLMPOP timeout numkeys key... dir`.
fn mpop_keys(args: &[Bytes], numkeys_idx: usize) -> Vec<usize> {
    let Some(n) = args.get(numkeys_idx).and_then(|b| crate::server::types::parse_canonical_i64(b)) else {
        return Vec::new();
    };
    if n <= 0 {
        return Vec::new();
    }
    let first = numkeys_idx + 1;
    (first..first.saturating_add(n as usize)).filter(|&i| i < args.len()).collect()
}

fn lmpop_keys(args: &[Bytes]) -> Vec<usize> {
    mpop_keys(args, 1)
}

fn blmpop_keys(args: &[Bytes]) -> Vec<usize> {
    mpop_keys(args, 2)
}

fn end_name(end: End) -> Bytes {
    Bytes::from_static(match end {
        End::Left => b"LEFT",
        End::Right => b"RIGHT",
    })
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

fn parse_end(b: &[u8]) -> Result<End, Frame> {
    End::parse(b).ok_or_else(|| err("ERR syntax error"))
}

/// Deletes the list at `key` when empty (after pops), with the `del` event.
fn delete_if_empty(ctx: &mut Ctx, key: &[u8], empty: bool) {
    if empty {
        access::delete_key(ctx, key);
    }
}

fn push_generic(ctx: &mut Ctx, args: &[Bytes], end: End, only_if_exists: bool) -> Frame {
    let key = &args[1];
    let len = if only_if_exists {
        match access::write::<ListValue>(ctx, key) {
            Err(e) => return e,
            Ok(None) => return Frame::Integer(0),
            Ok(Some(l)) => {
                for v in &args[2..] {
                    l.push(end, v.clone());
                }
                l.len()
            }
        }
    } else {
        match access::write_or_create(ctx, key, ListValue::new) {
            Err(e) => return e,
            Ok(l) => {
                for v in &args[2..] {
                    l.push(end, v.clone());
                }
                l.len()
            }
        }
    };
    ctx.signal_key_ready(key);
    ctx.notify(notify::LIST, push_event(end), key);
    ctx.dirty((args.len() - 2) as u64);
    Frame::Integer(len as i64)
}

fn lpush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, End::Left, false)
}
fn rpush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, End::Right, false)
}
fn lpushx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, End::Left, true)
}
fn rpushx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    push_generic(ctx, args, End::Right, true)
}

fn linsert(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let before = if args[2].eq_ignore_ascii_case(b"before") {
        true
    } else if args[2].eq_ignore_ascii_case(b"after") {
        false
    } else {
        return err("ERR syntax error");
    };
    let key = &args[1];
    let r = match access::write::<ListValue>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(l)) => l.insert(before, &args[3], args[4].clone()),
    };
    if r > 0 {
        ctx.notify(notify::LIST, "linsert", key);
        ctx.dirty(1);
    }
    Frame::Integer(r)
}

fn llen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<ListValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(l) => Frame::Integer(l.map_or(0, |l| l.len()) as i64),
    }
}

fn lindex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    // Redis looks the key up (and checks its type) before it parses the index.
    match access::read::<ListValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Null,
        Ok(Some(l)) => match int_arg(&args[2]) {
            Ok(index) => l.get(index).map_or(Frame::Null, access::bulk),
            Err(e) => e,
        },
    }
}

fn lset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let index = match int_arg(&args[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let key = &args[1];
    match access::write::<ListValue>(ctx, key) {
        Err(e) => e,
        Ok(None) => err("ERR no such key"),
        Ok(Some(l)) => {
            if !l.set(index, args[3].clone()) {
                return err("ERR index out of range");
            }
            ctx.notify(notify::LIST, "lset", key);
            ctx.dirty(1);
            Frame::ok()
        }
    }
}

fn lrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (start, stop) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match access::read::<ListValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(l)) => access::bulks(l.range(start, stop)),
    }
}

fn ltrim(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (start, stop) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let key = &args[1];
    let empty = match access::write::<ListValue>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::ok(),
        Ok(Some(l)) => l.trim(start, stop),
    };
    ctx.notify(notify::LIST, "ltrim", key);
    delete_if_empty(ctx, key, empty);
    ctx.dirty(1);
    Frame::ok()
}

fn lrem(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let count = match int_arg(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let key = &args[1];
    let (removed, empty) = match access::write::<ListValue>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(l)) => (l.remove(count, &args[3]), l.is_empty()),
    };
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", key);
        delete_if_empty(ctx, key, empty);
        ctx.dirty(removed as u64);
    }
    Frame::Integer(removed as i64)
}

fn lpos(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut rank: i64 = 1;
    let mut count: Option<u64> = None;
    let mut maxlen: u64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let more = j + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"rank") && more {
            j += 1;
            rank = match int_arg(&args[j]) {
                Ok(r) => r,
                Err(e) => return e,
            };
            if rank == 0 {
                return err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
            }
            if rank == i64::MIN {
                // Redis 7.0 negates LONG_MIN into itself and then counts every match as
                // reaching the rank: the search starts at the first match from the tail.
                rank = -1;
            }
        } else if opt.eq_ignore_ascii_case(b"count") && more {
            j += 1;
            count = match access::positive_arg(&args[j], "ERR COUNT can't be negative") {
                Ok(c) => Some(c as u64),
                Err(e) => return e,
            };
        } else if opt.eq_ignore_ascii_case(b"maxlen") && more {
            j += 1;
            maxlen = match access::positive_arg(&args[j], "ERR MAXLEN can't be negative") {
                Ok(m) => m as u64,
                Err(e) => return e,
            };
        } else {
            return err("ERR syntax error");
        }
        j += 1;
    }
    let l = match access::read::<ListValue>(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return if count.is_some() { Frame::Array(Vec::new()) } else { Frame::Null },
        Ok(Some(l)) => l,
    };
    let found = l.positions(&args[2], rank, count, maxlen);
    match count {
        Some(_) => Frame::Array(found.into_iter().map(|i| Frame::Integer(i as i64)).collect()),
        None => found.first().map_or(Frame::Null, |&i| Frame::Integer(i as i64)),
    }
}

fn pop_generic(ctx: &mut Ctx, args: &[Bytes], end: End) -> Frame {
    if args.len() > 3 {
        return err(&format!("ERR wrong number of arguments for '{}' command", String::from_utf8_lossy(&args[0]).to_lowercase()));
    }
    let count = if args.len() == 3 {
        match access::positive_arg(&args[2], "ERR value is out of range, must be positive") {
            Ok(c) => Some(c as usize),
            Err(e) => return e,
        }
    } else {
        None
    };
    let key = &args[1];
    let (reply, n, empty) = match access::write::<ListValue>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return if count.is_some() { Frame::NullArray } else { Frame::Null },
        Ok(Some(l)) => match count {
            Some(0) => return Frame::Array(Vec::new()),
            None => {
                let v = l.pop(end);
                (v.map_or(Frame::Null, Frame::Bulk), 1, l.is_empty())
            }
            Some(c) => {
                let v = l.pop_many(end, c);
                let n = v.len();
                (access::owned_bulks(v), n, l.is_empty())
            }
        },
    };
    ctx.notify(notify::LIST, pop_event(end), key);
    delete_if_empty(ctx, key, empty);
    ctx.dirty(n as u64);
    reply
}

fn lpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    pop_generic(ctx, args, End::Left)
}
fn rpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    pop_generic(ctx, args, End::Right)
}

/// Result of trying to pop from the first non-empty list among `keys`.
enum MultiPop {
    Popped(Frame),
    Nothing,
    Failed(Frame),
}

/// The shared core of (B)LPOP/(B)RPOP/(B)LMPOP on the first non-empty key. `count` None =
/// single-element reply `[key, value]`; Some(n) = `[key, [values...]]`. Propagates the
/// equivalent LPOP/RPOP (with count for *MPOP).
fn pop_first_nonempty(ctx: &mut Ctx, keys: &[Bytes], end: End, count: Option<usize>) -> MultiPop {
    for key in keys {
        let l = match access::write::<ListValue>(ctx, key) {
            Err(e) => {
                if ctx.serving_blocked {
                    // A blocked client whose key now holds another type keeps waiting.
                    continue;
                }
                return MultiPop::Failed(e);
            }
            Ok(None) => continue,
            Ok(Some(l)) => l,
        };
        if l.is_empty() {
            continue;
        }
        let (reply, n, empty) = match count {
            None => {
                let v = l.pop(end).expect("non-empty");
                (Frame::Array(vec![Frame::Bulk(key.clone()), Frame::Bulk(v)]), 1, l.is_empty())
            }
            Some(c) => {
                let v = l.pop_many(end, c);
                let n = v.len();
                (Frame::Array(vec![Frame::Bulk(key.clone()), access::owned_bulks(v)]), n, l.is_empty())
            }
        };
        ctx.notify(notify::LIST, pop_event(end), key);
        delete_if_empty(ctx, key, empty);
        ctx.dirty(n as u64);
        let cmd_name = Bytes::from_static(match end {
            End::Left => b"LPOP",
            End::Right => b"RPOP",
        });
        match count {
            None => ctx.propagate_as(vec![cmd_name, key.clone()]),
            Some(_) => ctx.propagate_as(vec![cmd_name, key.clone(), Bytes::from(n.to_string())]),
        }
        return MultiPop::Popped(reply);
    }
    MultiPop::Nothing
}

fn blocking_pop(ctx: &mut Ctx, args: &[Bytes], end: End) -> Frame {
    let timeout = match access::timeout_arg(ctx, &args[args.len() - 1]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let keys = &args[1..args.len() - 1];
    match pop_first_nonempty(ctx, keys, end, None) {
        MultiPop::Popped(f) | MultiPop::Failed(f) => f,
        MultiPop::Nothing => ctx.block(keys.to_vec(), timeout, Frame::NullArray),
    }
}

fn blpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    blocking_pop(ctx, args, End::Left)
}
fn brpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    blocking_pop(ctx, args, End::Right)
}

/// Parses `numkeys key... LEFT|RIGHT [COUNT n]` starting at `numkeys_idx`.
fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> Result<(Vec<Bytes>, End, usize), Frame> {
    let numkeys = access::range_arg(&args[numkeys_idx], 1, i64::MAX, "ERR numkeys should be greater than 0")? as usize;
    let where_idx = numkeys_idx.saturating_add(numkeys).saturating_add(1);
    if where_idx >= args.len() {
        return Err(err("ERR syntax error"));
    }
    let end = parse_end(&args[where_idx])?;
    let mut count: Option<usize> = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && args[j].eq_ignore_ascii_case(b"count") && j + 1 < args.len() {
            j += 1;
            count = Some(access::range_arg(&args[j], 1, i64::MAX, "ERR count should be greater than 0")? as usize);
        } else {
            return Err(err("ERR syntax error"));
        }
        j += 1;
    }
    Ok((args[numkeys_idx + 1..where_idx].to_vec(), end, count.unwrap_or(1)))
}

fn lmpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (keys, end, count) = match parse_mpop(args, 1) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match pop_first_nonempty(ctx, &keys, end, Some(count)) {
        MultiPop::Popped(f) | MultiPop::Failed(f) => f,
        MultiPop::Nothing => Frame::NullArray,
    }
}

fn blmpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let timeout = match access::timeout_arg(ctx, &args[1]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let (keys, end, count) = match parse_mpop(args, 2) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match pop_first_nonempty(ctx, &keys, end, Some(count)) {
        MultiPop::Popped(f) | MultiPop::Failed(f) => f,
        MultiPop::Nothing => ctx.block(keys, timeout, Frame::NullArray),
    }
}

/// LMOVE core: Ok(Some(element)) moved, Ok(None) source missing/empty.
fn move_element(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Result<Option<Bytes>, Frame> {
    // Type checks first, as Redis: source, then destination.
    let src_exists = access::check_type::<ListValue>(ctx, src)?;
    if !src_exists {
        return Ok(None);
    }
    access::check_type::<ListValue>(ctx, dst)?;
    let (value, src_empty) = {
        let l = access::write::<ListValue>(ctx, src)?.expect("checked above");
        let Some(v) = l.pop(from) else { return Ok(None) };
        if src == dst {
            l.push(to, v.clone());
        }
        (v, l.is_empty())
    };
    if src != dst {
        let d = access::write_or_create(ctx, dst, ListValue::new)?;
        d.push(to, value.clone());
    }
    ctx.signal_key_ready(dst);
    ctx.notify(notify::LIST, push_event(to), dst);
    ctx.notify(notify::LIST, pop_event(from), src);
    delete_if_empty(ctx, src, src_empty);
    ctx.dirty(1);
    Ok(Some(value))
}

fn lmove_generic(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End, propagate: Option<Vec<Bytes>>) -> Frame {
    match move_element(ctx, src, dst, from, to) {
        Err(e) => e,
        Ok(None) => Frame::Null,
        Ok(Some(v)) => {
            if let Some(p) = propagate {
                ctx.propagate_as(p);
            }
            Frame::Bulk(v)
        }
    }
}

fn lmove(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (from, to) = match (parse_end(&args[3]), parse_end(&args[4])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    lmove_generic(ctx, &args[1], &args[2], from, to, None)
}

fn rpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    lmove_generic(ctx, &args[1], &args[2], End::Right, End::Left, None)
}

fn blmove_generic(ctx: &mut Ctx, args: &[Bytes], from: End, to: End, timeout: Option<i64>, rpoplpush_form: bool) -> Frame {
    let (src, dst) = (&args[1], &args[2]);
    let propagated = if rpoplpush_form {
        vec![Bytes::from_static(b"RPOPLPUSH"), src.clone(), dst.clone()]
    } else {
        vec![Bytes::from_static(b"LMOVE"), src.clone(), dst.clone(), end_name(from), end_name(to)]
    };
    if ctx.serving_blocked && access::check_type::<ListValue>(ctx, src).is_err() {
        // The source now holds another type: keep waiting, as Redis only serves lists.
        return block_for_move(ctx, src, timeout);
    }
    match move_element(ctx, src, dst, from, to) {
        Err(e) => e,
        Ok(None) => block_for_move(ctx, src, timeout),
        Ok(Some(v)) => {
            ctx.propagate_as(propagated);
            Frame::Bulk(v)
        }
    }
}

/// Redis answers an empty source inside MULTI with a null bulk at once, but a timeout
/// with a null array (`*-1` in RESP2), as for every blocked list command.
fn block_for_move(ctx: &mut Ctx, src: &Bytes, timeout: Option<i64>) -> Frame {
    if ctx.in_exec {
        return Frame::Null;
    }
    ctx.block(vec![src.clone()], timeout, Frame::NullArray)
}

fn blmove(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (from, to) = match (parse_end(&args[3]), parse_end(&args[4])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let timeout = match access::timeout_arg(ctx, &args[5]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    blmove_generic(ctx, args, from, to, timeout, false)
}

fn brpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let timeout = match access::timeout_arg(ctx, &args[3]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    blmove_generic(ctx, args, End::Right, End::Left, timeout, true)
}

#[cfg(test)]
mod tests {
    use crate::server::types::access::testing::{words, TestServer};

    #[test]
    fn blocking_forms_propagate_as_their_plain_forms() {
        let mut t = TestServer::new();
        t.run(&["RPUSH", "l", "a", "b", "c"]);
        let o = t.run(&["BLPOP", "nokey", "l", "0"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["LPOP", "l"]);
        let o = t.run(&["BRPOPLPUSH", "l", "d", "0"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["RPOPLPUSH", "l", "d"]);
        let o = t.run(&["BLMOVE", "l", "d", "LEFT", "RIGHT", "0"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["LMOVE", "l", "d", "LEFT", "RIGHT"]);
        t.run(&["RPUSH", "m", "1", "2", "3"]);
        let o = t.run(&["BLMPOP", "0", "1", "m", "RIGHT", "COUNT", "10"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["RPOP", "m", "3"]);
        let o = t.run(&["LMPOP", "1", "d", "LEFT"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["LPOP", "d", "1"]);
        let o = t.run(&["BLPOP", "empty", "0"]);
        assert!(o.blocked, "an empty key blocks");
        assert!(o.rewritten.is_none());
    }
}
