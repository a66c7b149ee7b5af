//! The hash command family (Redis 7.0 semantics: listpack/hashtable encodings, HRANDFIELD
//! count rules, HINCRBYFLOAT propagated as HSET, RESP3 maps).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, Ctx, CommandSpec};
use crate::server::notify;
use crate::server::types::access::{self, err, int_arg};
use crate::server::types::hash::HashValue;
use crate::server::types::{parse_canonical_i64, EncodingLimits};

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("hdel", -3, "write fast", 1, 1, 1, "write hash fast", hdel)
            .group("hash").since("2.0.0").summary("Delete one or more hash fields").key_flags(&["RW", "delete"]),
        cmd("hexists", 3, "readonly fast", 1, 1, 1, "read hash fast", hexists)
            .group("hash").since("2.0.0").summary("Determine if a hash field exists").key_flags(&["RO"]),
        cmd("hget", 3, "readonly fast", 1, 1, 1, "read hash fast", hget)
            .group("hash").since("2.0.0").summary("Get the value of a hash field").key_flags(&["RO", "access"]),
        cmd("hgetall", 2, "readonly", 1, 1, 1, "read hash slow", hgetall)
            .group("hash").since("2.0.0").summary("Get all the fields and values in a hash").key_flags(&["RO", "access"]).tips(&["nondeterministic_output_order"]),
        cmd("hincrby", 4, "write denyoom fast", 1, 1, 1, "write hash fast", hincrby)
            .group("hash").since("2.0.0").summary("Increment the integer value of a hash field by the given number").key_flags(&["RW", "access", "update"]),
        cmd("hincrbyfloat", 4, "write denyoom fast", 1, 1, 1, "write hash fast", hincrbyfloat)
            .group("hash").since("2.6.0").summary("Increment the float value of a hash field by the given amount").key_flags(&["RW", "access", "update"]),
        cmd("hkeys", 2, "readonly", 1, 1, 1, "read hash slow", hkeys)
            .group("hash").since("2.0.0").summary("Get all the fields in a hash").key_flags(&["RO", "access"]).tips(&["nondeterministic_output_order"]),
        cmd("hlen", 2, "readonly fast", 1, 1, 1, "read hash fast", hlen)
            .group("hash").since("2.0.0").summary("Get the number of fields in a hash").key_flags(&["RO"]),
        cmd("hmget", -3, "readonly fast", 1, 1, 1, "read hash fast", hmget)
            .group("hash").since("2.0.0").summary("Get the values of all the given hash fields").key_flags(&["RO", "access"]),
        cmd("hmset", -4, "write denyoom fast", 1, 1, 1, "write hash fast", hmset)
            .group("hash").since("2.0.0").summary("Set multiple hash fields to multiple values").key_flags(&["RW", "update"]),
        cmd("hrandfield", -2, "readonly", 1, 1, 1, "read hash slow", hrandfield)
            .group("hash").since("6.2.0").summary("Get one or multiple random fields from a hash").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"]),
        cmd("hscan", -3, "readonly", 1, 1, 1, "read hash slow", hscan)
            .group("hash").since("2.8.0").summary("Incrementally iterate hash fields and associated values").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"]),
        cmd("hset", -4, "write denyoom fast", 1, 1, 1, "write hash fast", hset)
            .group("hash").since("2.0.0").summary("Set the string value of a hash field").key_flags(&["RW", "update"]),
        cmd("hsetnx", 4, "write denyoom fast", 1, 1, 1, "write hash fast", hsetnx)
            .group("hash").since("2.0.0").summary("Set the value of a hash field, only if the field does not exist").key_flags(&["RW", "insert"]),
        cmd("hstrlen", 3, "readonly fast", 1, 1, 1, "read hash fast", hstrlen)
            .group("hash").since("3.2.0").summary("Get the length of the value of a hash field").key_flags(&["RO"]),
        cmd("hvals", 2, "readonly", 1, 1, 1, "read hash slow", hvals)
            .group("hash").since("2.0.0").summary("Get all the values in a hash").key_flags(&["RO", "access"]).tips(&["nondeterministic_output_order"]),
    ]
}

fn hash_limits(ctx: &Ctx) -> EncodingLimits {
    access::limits(ctx)
}

fn hset_generic(ctx: &mut Ctx, args: &[Bytes], is_hmset: bool) -> Frame {
    if args.len() % 2 == 1 {
        let name = if is_hmset { "hmset" } else { "hset" };
        return err(&format!("ERR wrong number of arguments for '{name}' command"));
    }
    let limits = hash_limits(ctx);
    let key = &args[1];
    let h = match access::write_or_create(ctx, key, HashValue::new) {
        Ok(h) => h,
        Err(e) => return e,
    };
    // Redis converts on any over-long argument before writing anything.
    for a in &args[2..] {
        h.prepare_for_lengths(a.len(), 0, &limits);
    }
    let mut created = 0;
    for pair in args[2..].chunks_exact(2) {
        if h.set(pair[0].clone(), pair[1].clone(), &limits) {
            created += 1;
        }
    }
    ctx.notify(notify::HASH, "hset", key);
    ctx.dirty(((args.len() - 2) / 2) as u64);
    if is_hmset {
        Frame::ok()
    } else {
        Frame::Integer(created)
    }
}

fn hset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    hset_generic(ctx, args, false)
}

fn hmset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    hset_generic(ctx, args, true)
}

fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let limits = hash_limits(ctx);
    let key = &args[1];
    let h = match access::write_or_create(ctx, key, HashValue::new) {
        Ok(h) => h,
        Err(e) => return e,
    };
    if h.contains(&args[2]) {
        return Frame::Integer(0);
    }
    h.set(args[2].clone(), args[3].clone(), &limits);
    ctx.notify(notify::HASH, "hset", key);
    ctx.dirty(1);
    Frame::Integer(1)
}

fn hget(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(h) => h.and_then(|h| h.get(&args[2])).map_or(Frame::Null, access::bulk_copy),
    }
}

fn hmget(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(h) => Frame::Array(args[2..].iter().map(|f| h.and_then(|h| h.get(f)).map_or(Frame::Null, access::bulk_copy)).collect()),
    }
}

fn hdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    access::remove_members::<HashValue>(ctx, &args[1], &args[2..], notify::HASH, "hdel")
}

fn hlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(h) => Frame::Integer(h.map_or(0, |h| h.len()) as i64),
    }
}

fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(h) => Frame::Integer(h.and_then(|h| h.get(&args[2])).map_or(0, |v| v.len()) as i64),
    }
}

fn hexists(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(h) => Frame::Integer(h.is_some_and(|h| h.contains(&args[2])) as i64),
    }
}

fn hkeys(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(h)) => Frame::Array(h.iter().map(|(f, _)| access::bulk_copy(f)).collect()),
    }
}

fn hvals(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(h)) => Frame::Array(h.iter().map(|(_, v)| access::bulk_copy(v)).collect()),
    }
}

fn hgetall(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Map(Vec::new()),
        Ok(Some(h)) => Frame::Map(h.iter().map(|(f, v)| (access::bulk_copy(f), access::bulk_copy(v))).collect()),
    }
}

fn hincrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let incr = match int_arg(&args[3]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let limits = hash_limits(ctx);
    let key = &args[1];
    let h = match access::write_or_create(ctx, key, HashValue::new) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let old = match h.get(&args[2]) {
        None => 0,
        Some(v) => match parse_canonical_i64(v) {
            Some(n) => n,
            None => return err("ERR hash value is not an integer"),
        },
    };
    let Some(new) = old.checked_add(incr) else {
        return err("ERR increment or decrement would overflow");
    };
    h.set(args[2].clone(), Bytes::from(new.to_string()), &limits);
    ctx.notify(notify::HASH, "hincrby", key);
    ctx.dirty(1);
    Frame::Integer(new)
}

fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(incr) = crate::server::types::longdouble::LongDouble::parse(&args[3]) else {
        return err("ERR value is not a valid float");
    };
    if !incr.is_finite() {
        return err("ERR value is NaN or Infinity");
    }
    let limits = hash_limits(ctx);
    let key = &args[1];
    let h = match access::write_or_create(ctx, key, HashValue::new) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let old = match h.get(&args[2]) {
        None => crate::server::types::longdouble::LongDouble::zero(),
        Some(v) => match crate::server::types::longdouble::LongDouble::parse(v) {
            Some(n) => n,
            None => return err("ERR hash value is not a float"),
        },
    };
    let new = old.add(&incr);
    if !new.is_finite() {
        return err("ERR increment would produce NaN or Infinity");
    }
    let text = Bytes::from(new.to_human_string());
    h.set(args[2].clone(), text.clone(), &limits);
    ctx.notify(notify::HASH, "hincrbyfloat", key);
    ctx.dirty(1);
    ctx.propagate_as(vec![Bytes::from_static(b"HSET"), key.clone(), args[2].clone(), text.clone()]);
    Frame::Bulk(text)
}

/// HRANDFIELD / ZRANDMEMBER `key count [WITHVALUES|WITHSCORES]`: the count and whether the
/// pairs were asked for (then the count must leave room for twice as many replies).
pub(super) fn random_count_args(args: &[Bytes], with_pairs: &[u8]) -> Result<(i64, bool), Frame> {
    let count = access::range_arg_default(&args[2], -i64::MAX, i64::MAX)?;
    match args.len() {
        3 => Ok((count, false)),
        4 if args[3].eq_ignore_ascii_case(with_pairs) => {
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
                return Err(err("ERR value is out of range"));
            }
            Ok((count, true))
        }
        _ => Err(err("ERR syntax error")),
    }
}

fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() >= 3 {
        let (count, with_values) = match random_count_args(args, b"withvalues") {
            Ok(v) => v,
            Err(e) => return e,
        };
        let resp3 = ctx.resp3();
        let h = match access::read::<HashValue>(ctx, &args[1]) {
            Err(e) => return e,
            Ok(None) => return Frame::Array(Vec::new()),
            Ok(Some(h)) => h,
        };
        if count.unsigned_abs() > MAX_RANDOM_REPLY {
            return err("ERR value is out of range");
        }
        let picked = h.random_entries(&mut rand::thread_rng(), count);
        let mut out = Vec::with_capacity(picked.len() * if with_values { 2 } else { 1 });
        for (f, v) in picked {
            if with_values && resp3 {
                out.push(Frame::Array(vec![access::bulk_copy(f), access::bulk_copy(v)]));
            } else {
                out.push(access::bulk_copy(f));
                if with_values {
                    out.push(access::bulk_copy(v));
                }
            }
        }
        return Frame::Array(out);
    }
    match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Null,
        Ok(Some(h)) => h.random_entries(&mut rand::thread_rng(), 1).first().map_or(Frame::Null, |(f, _)| access::bulk_copy(f)),
    }
}

/// Replies larger than this many elements would exhaust memory before the output-buffer
/// limit could cut the client off; Redis streams them, we refuse them.
pub(crate) const MAX_RANDOM_REPLY: u64 = 1 << 27;

fn hscan(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let cursor = match access::parse_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let opts = match access::scan_opts(&args[3..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let h = match access::read::<HashValue>(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return access::scan_reply(0, Vec::new()),
        Ok(Some(h)) => h,
    };
    let mut items = Vec::new();
    let next = h.scan(cursor, opts.count, |f, v| {
        if access::scan_matches(&opts, f) {
            items.push(access::bulk_copy(f));
            items.push(access::bulk_copy(v));
        }
    });
    access::scan_reply(next, items)
}

#[cfg(test)]
mod tests {
    use crate::server::types::access::testing::{words, TestServer};

    #[test]
    fn hincrbyfloat_propagates_as_hset_with_the_result() {
        let mut t = TestServer::new();
        t.run(&["HSET", "h", "f", "1000"]);
        let o = t.run(&["HINCRBYFLOAT", "h", "f", "0.1"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["HSET", "h", "f", "1000.09999999999999998"]);
    }
}
