//! The set command family (Redis 7.0 semantics: intset/hashtable encodings and the reply
//! order they imply, SPOP propagated as SREM / DEL, SINTERCARD LIMIT, RESP3 set replies).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, Ctx, CommandSpec};
use crate::server::notify;
use crate::server::types::access::{self, err};
use crate::server::types::set::SetValue;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("sadd", -3, "write denyoom fast", 1, 1, 1, "write set fast", sadd)
            .group("set").since("1.0.0").summary("Add one or more members to a set").key_flags(&["RW", "insert"]),
        cmd("scard", 2, "readonly fast", 1, 1, 1, "read set fast", scard)
            .group("set").since("1.0.0").summary("Get the number of members in a set").key_flags(&["RO"]),
        cmd("sdiff", -2, "readonly", 1, -1, 1, "read set slow", sdiff)
            .group("set").since("1.0.0").summary("Subtract multiple sets").key_flags(&["RO", "access"]).tips(&["nondeterministic_output_order"]),
        cmd("sdiffstore", -3, "write denyoom", 1, -1, 1, "write set slow", sdiffstore)
            .group("set").since("1.0.0").summary("Subtract multiple sets and store the resulting set in a key").key_flags(&["OW", "update"]),
        cmd("sinter", -2, "readonly", 1, -1, 1, "read set slow", sinter)
            .group("set").since("1.0.0").summary("Intersect multiple sets").key_flags(&["RO", "access"]).tips(&["nondeterministic_output_order"]),
        cmd("sintercard", -3, "readonly movablekeys", 0, 0, 0, "read set slow", sintercard)
            .group("set").since("7.0.0").summary("Intersect multiple sets and return the cardinality of the result").key_flags(&["RO", "access"]).keys_fn(sintercard_keys),
        cmd("sinterstore", -3, "write denyoom", 1, -1, 1, "write set slow", sinterstore)
            .group("set").since("1.0.0").summary("Intersect multiple sets and store the resulting set in a key").key_flags(&["RW", "update"]),
        cmd("sismember", 3, "readonly fast", 1, 1, 1, "read set fast", sismember)
            .group("set").since("1.0.0").summary("Determine if a given value is a member of a set").key_flags(&["RO"]),
        cmd("smembers", 2, "readonly", 1, 1, 1, "read set slow", smembers)
            .group("set").since("1.0.0").summary("Get all the members in a set").key_flags(&["RO", "access"]).tips(&["nondeterministic_output_order"]),
        cmd("smismember", -3, "readonly fast", 1, 1, 1, "read set fast", smismember)
            .group("set").since("6.2.0").summary("Returns the membership associated with the given elements for a set").key_flags(&["RO", "access"]),
        cmd("smove", 4, "write fast", 1, 2, 1, "write set fast", smove)
            .group("set").since("1.0.0").summary("Move a member from one set to another").key_flags(&["RW", "access", "delete"]),
        cmd("spop", -2, "write fast", 1, 1, 1, "write set fast", spop)
            .group("set").since("1.0.0").summary("Remove and return one or multiple random members from a set").key_flags(&["RW", "access", "delete"]).tips(&["nondeterministic_output"]),
        cmd("srandmember", -2, "readonly", 1, 1, 1, "read set slow", srandmember)
            .group("set").since("1.0.0").summary("Get one or multiple random members from a set").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"]),
        cmd("srem", -3, "write fast", 1, 1, 1, "write set fast", srem)
            .group("set").since("1.0.0").summary("Remove one or more members from a set").key_flags(&["RW", "delete"]),
        cmd("sscan", -3, "readonly", 1, 1, 1, "read set slow", sscan)
            .group("set").since("2.8.0").summary("Incrementally iterate Set elements").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"]),
        cmd("sunion", -2, "readonly", 1, -1, 1, "read set slow", sunion)
            .group("set").since("1.0.0").summary("Add multiple sets").key_flags(&["RO", "access"]).tips(&["nondeterministic_output_order"]),
        cmd("sunionstore", -3, "write denyoom", 1, -1, 1, "write set slow", sunionstore)
            .group("set").since("1.0.0").summary("Add multiple sets and store the resulting set in a key").key_flags(&["OW", "update"]),
    ]
}

fn sadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let limits = access::limits(ctx);
    let key = &args[1];
    let s = match access::write_or_create(ctx, key, || SetValue::for_member(&args[2])) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut added = 0;
    for m in &args[2..] {
        if s.add(m.clone(), &limits) {
            added += 1;
        }
    }
    if added > 0 {
        ctx.notify(notify::SET, "sadd", key);
    }
    ctx.dirty(added);
    Frame::Integer(added as i64)
}

fn srem(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    access::remove_members::<SetValue>(ctx, &args[1], &args[2..], notify::SET, "srem")
}

fn smove(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let limits = access::limits(ctx);
    let src_exists = match access::check_type::<SetValue>(ctx, src) {
        Ok(e) => e,
        Err(e) => return e,
    };
    if let Err(e) = access::check_type::<SetValue>(ctx, dst) {
        return e;
    }
    if !src_exists {
        return Frame::Integer(0);
    }
    if src == dst {
        let s = access::write::<SetValue>(ctx, src).ok().flatten();
        return Frame::Integer(s.is_some_and(|s| s.contains(member)) as i64);
    }
    let src_empty = {
        let Ok(Some(s)) = access::write::<SetValue>(ctx, src) else { return Frame::Integer(0) };
        if !s.remove(member) {
            return Frame::Integer(0);
        }
        s.is_empty()
    };
    ctx.notify(notify::SET, "srem", src);
    if src_empty {
        access::delete_key(ctx, src);
    }
    let added = match access::write_or_create(ctx, dst, || SetValue::for_member(member)) {
        Ok(d) => d.add(member.clone(), &limits),
        Err(e) => return e,
    };
    if added {
        ctx.dirty(1);
        ctx.notify(notify::SET, "sadd", dst);
    } else {
        ctx.left_unchanged(dst);
    }
    ctx.dirty(1);
    Frame::Integer(1)
}

fn sismember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<SetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(s) => Frame::Integer(s.is_some_and(|s| s.contains(&args[2])) as i64),
    }
}

fn smismember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<SetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(s) => Frame::Array(args[2..].iter().map(|m| Frame::Integer(s.is_some_and(|s| s.contains(m)) as i64)).collect()),
    }
}

fn scard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<SetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(s) => Frame::Integer(s.map_or(0, |s| s.len()) as i64),
    }
}

fn set_reply(members: impl IntoIterator<Item = Bytes>) -> Frame {
    Frame::Set(members.into_iter().map(Frame::Bulk).collect())
}

fn smembers(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<SetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Set(Vec::new()),
        Ok(Some(s)) => set_reply(s.iter()),
    }
}

fn srandmember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() == 3 {
        let count = match access::range_arg_default(&args[2], -i64::MAX, i64::MAX) {
            Ok(c) => c,
            Err(e) => return e,
        };
        let s = match access::read::<SetValue>(ctx, &args[1]) {
            Err(e) => return e,
            Ok(None) => return Frame::Array(Vec::new()),
            Ok(Some(s)) => s,
        };
        if count.unsigned_abs() > super::hash::MAX_RANDOM_REPLY {
            return err("ERR value is out of range");
        }
        return access::owned_bulks(s.random_members(&mut rand::thread_rng(), count));
    }
    if args.len() > 3 {
        return err("ERR syntax error");
    }
    match access::read::<SetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Null,
        Ok(Some(s)) => s.random_member(&mut rand::thread_rng()).map_or(Frame::Null, Frame::Bulk),
    }
}

fn spop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return err("ERR syntax error");
    }
    let key = &args[1];
    if args.len() == 3 {
        let count = match access::positive_arg(&args[2], "ERR value is out of range, must be positive") {
            Ok(c) => c as usize,
            Err(e) => return e,
        };
        let (popped, empty, whole) = match access::write::<SetValue>(ctx, key) {
            Err(e) => return e,
            Ok(None) => return Frame::Set(Vec::new()),
            Ok(Some(s)) => {
                if count == 0 {
                    return Frame::Set(Vec::new());
                }
                if count >= s.len() {
                    // The whole set, in the order of a fresh union of it (intsets sorted).
                    let limits = EncodingLimitsCache::get();
                    let copy = SetValue::from_members(s.iter(), &limits);
                    (copy.members(), true, true)
                } else {
                    let v = s.pop_random(&mut rand::thread_rng(), count);
                    (v, s.is_empty(), false)
                }
            }
        };
        ctx.notify(notify::SET, "spop", key);
        ctx.dirty(popped.len() as u64);
        if whole {
            access::delete_key(ctx, key);
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
        } else {
            for m in &popped {
                ctx.also_propagate(vec![Bytes::from_static(b"SREM"), key.clone(), m.clone()]);
            }
            ctx.prevent_propagation();
            if empty {
                access::delete_key(ctx, key);
            }
        }
        return set_reply(popped);
    }
    let (member, empty) = match access::write::<SetValue>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Null,
        Ok(Some(s)) => {
            let v = s.pop_random(&mut rand::thread_rng(), 1);
            (v.into_iter().next(), s.is_empty())
        }
    };
    let Some(member) = member else { return Frame::Null };
    ctx.notify(notify::SET, "spop", key);
    ctx.propagate_as(vec![Bytes::from_static(b"SREM"), key.clone(), member.clone()]);
    if empty {
        access::delete_key(ctx, key);
    }
    ctx.dirty(1);
    Frame::Bulk(member)
}

/// Default encoding limits for temporary sets whose encoding only decides reply order.
struct EncodingLimitsCache;
impl EncodingLimitsCache {
    fn get() -> crate::server::types::EncodingLimits {
        crate::server::types::EncodingLimits::default()
    }
}

fn sscan(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let cursor = match access::parse_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let opts = match access::scan_opts(&args[3..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let s = match access::read::<SetValue>(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return access::scan_reply(0, Vec::new()),
        Ok(Some(s)) => s,
    };
    let mut items = Vec::new();
    let next = s.scan(cursor, opts.count, |m| {
        if access::scan_matches(&opts, &m) {
            items.push(Frame::Bulk(m));
        }
    });
    access::scan_reply(next, items)
}

/// Looks up every key as a set (missing = None); WRONGTYPE aborts.
fn load_sets<'c>(ctx: &'c mut Ctx, keys: &[Bytes]) -> Result<Vec<Option<&'c SetValue>>, Frame> {
    access::read_many::<SetValue>(ctx, keys)
}

/// Members of the intersection in Redis's order (iteration of the smallest set); stops at
/// `limit` members when non-zero.
fn intersection(keys: &[Bytes], sets: &[Option<&SetValue>], limit: usize) -> Vec<Bytes> {
    if sets.iter().any(|s| s.is_none()) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by_key(|&i| sets[i].as_ref().map_or(0, |s| s.len()));
    let first = order[0];
    let smallest = sets[first].as_ref().expect("checked");
    let mut out = Vec::new();
    for m in smallest.iter() {
        let in_all = order[1..].iter().all(|&j| keys[j] == keys[first] || sets[j].as_ref().is_some_and(|s| s.contains(&m)));
        if in_all {
            out.push(m);
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

fn store_result(ctx: &mut Ctx, dst: &Bytes, result: SetValue, event: &str) -> Frame {
    let n = result.len();
    if n > 0 {
        access::store(ctx, dst, access::Typed::wrap(result));
        ctx.notify(notify::SET, event, dst);
        ctx.dirty(1);
    } else {
        let db = ctx.db_index();
        if ctx.lookup_write(dst).is_some() && ctx.srv.dbs[db].remove(dst).is_some() {
            ctx.notify(notify::GENERIC, "del", dst);
            ctx.dirty(1);
        }
    }
    Frame::Integer(n as i64)
}

fn sinter(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let keys = &args[1..];
    match load_sets(ctx, keys) {
        Err(e) => e,
        Ok(sets) => set_reply(intersection(keys, &sets, 0)),
    }
}

fn sinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let keys = &args[2..];
    let limits = access::limits(ctx);
    let r = match load_sets(ctx, keys) {
        Err(e) => return e,
        Ok(sets) => SetValue::from_members(intersection(keys, &sets, 0), &limits),
    };
    store_result(ctx, &args[1], r, "sinterstore")
}

fn sintercard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let numkeys = match access::range_arg(&args[1], 1, i64::MAX, "ERR numkeys should be greater than 0") {
        Ok(n) => n as usize,
        Err(e) => return e,
    };
    if numkeys > args.len() - 2 {
        return err("ERR Number of keys can't be greater than number of args");
    }
    let mut limit = 0usize;
    let mut j = 2 + numkeys;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"limit") && j + 1 < args.len() {
            j += 1;
            limit = match access::positive_arg(&args[j], "ERR LIMIT can't be negative") {
                Ok(l) => l as usize,
                Err(e) => return e,
            };
        } else {
            return err("ERR syntax error");
        }
        j += 1;
    }
    let keys = &args[2..2 + numkeys];
    match load_sets(ctx, keys) {
        Err(e) => e,
        Ok(sets) => Frame::Integer(intersection(keys, &sets, limit).len() as i64),
    }
}

fn sintercard_keys(args: &[Bytes]) -> Vec<usize> {
    let Some(n) = args.get(1).and_then(|b| crate::server::types::parse_canonical_i64(b)) else { return Vec::new() };
    if n <= 0 {
        return Vec::new();
    }
    (2..2usize.saturating_add(n as usize)).filter(|&i| i < args.len()).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Diff,
}

fn union_diff(keys: &[Bytes], sets: &[Option<&SetValue>], op: SetOp, limits: &crate::server::types::EncodingLimits) -> SetValue {
    let mut dst = SetValue::new();
    match op {
        SetOp::Union => {
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    dst.add(m, limits);
                }
            }
        }
        SetOp::Diff => {
            let Some(first) = &sets[0] else { return dst };
            if keys[1..].iter().zip(&sets[1..]).any(|(k, s)| s.is_some() && *k == keys[0]) {
                return dst; // SDIFF a ... a ...: empty
            }
            for m in first.iter() {
                if !sets[1..].iter().flatten().any(|s| s.contains(&m)) {
                    dst.add(m, limits);
                }
            }
        }
    }
    dst
}

fn sunion_diff(ctx: &mut Ctx, keys: &[Bytes], op: SetOp, dst: Option<&Bytes>) -> Frame {
    let limits = access::limits(ctx);
    let result = match load_sets(ctx, keys) {
        Ok(sets) => union_diff(keys, &sets, op, &limits),
        Err(e) => return e,
    };
    match dst {
        None => set_reply(result.iter()),
        Some(d) => store_result(ctx, d, result, if op == SetOp::Union { "sunionstore" } else { "sdiffstore" }),
    }
}

fn sunion(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sunion_diff(ctx, &args[1..], SetOp::Union, None)
}

fn sunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sunion_diff(ctx, &args[2..], SetOp::Union, Some(&args[1]))
}

fn sdiff(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sunion_diff(ctx, &args[1..], SetOp::Diff, None)
}

fn sdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sunion_diff(ctx, &args[2..], SetOp::Diff, Some(&args[1]))
}

#[cfg(test)]
mod tests {
    use crate::server::types::access::testing::{words, TestServer};

    #[test]
    fn spop_propagates_as_srem_or_del() {
        let mut t = TestServer::new();
        t.run(&["SADD", "s", "a", "b", "c", "d"]);
        let o = t.run(&["SPOP", "s"]);
        let w = words(&o.rewritten.unwrap());
        assert_eq!(&w[..2], ["SREM", "s"]);
        let o = t.run(&["SPOP", "s", "2"]);
        assert!(o.prevented, "the SPOP itself is not propagated");
        assert_eq!(o.also.len(), 2);
        assert!(o.also.iter().all(|a| words(a)[..2] == ["SREM", "s"]));
        let o = t.run(&["SPOP", "s", "10"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["DEL", "s"]);
    }
}
