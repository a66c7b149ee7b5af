//! The sorted-set command family (Redis 7.0 semantics: ZADD flags, ZRANGE with
//! BYSCORE/BYLEX/REV/LIMIT, ZRANGESTORE, ZUNION/ZINTER/ZDIFF(STORE) with WEIGHTS and
//! AGGREGATE over sets and sorted sets, pops and blocking pops, RESP3 doubles and pairs).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, Ctx, CommandSpec};
use crate::server::notify;
use crate::server::types::access::{self, err, int_arg, Typed};
use crate::server::types::list::normalize_range;
use crate::server::types::set::SetValue;
use crate::server::types::zset::{AddOutcome, EntryRef, LexBound, ScoreBound, ZSetValue};
use crate::server::types::{parse_canonical_i64, parse_redis_double};
use crate::server::value::Value;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("bzmpop", -5, "write blocking movablekeys", 0, 0, 0, "write sortedset slow blocking", bzmpop)
            .group("sorted-set").since("7.0.0").summary("Remove and return members with scores in a sorted set or block until one is available").key_flags(&["RW", "access", "delete"]).keys_fn(bzmpop_keys),
        cmd("bzpopmax", -3, "write noscript blocking fast", 1, -2, 1, "write sortedset fast blocking", bzpopmax)
            .group("sorted-set").since("5.0.0").summary("Remove and return the member with the highest score from one or more sorted sets, or block until one is available").key_flags(&["RW", "access", "delete"]),
        cmd("bzpopmin", -3, "write noscript blocking fast", 1, -2, 1, "write sortedset fast blocking", bzpopmin)
            .group("sorted-set").since("5.0.0").summary("Remove and return the member with the lowest score from one or more sorted sets, or block until one is available").key_flags(&["RW", "access", "delete"]),
        cmd("zadd", -4, "write denyoom fast", 1, 1, 1, "write sortedset fast", zadd)
            .group("sorted-set").since("1.2.0").summary("Add one or more members to a sorted set, or update its score if it already exists").key_flags(&["RW", "update"]),
        cmd("zcard", 2, "readonly fast", 1, 1, 1, "read sortedset fast", zcard)
            .group("sorted-set").since("1.2.0").summary("Get the number of members in a sorted set").key_flags(&["RO"]),
        cmd("zcount", 4, "readonly fast", 1, 1, 1, "read sortedset fast", zcount)
            .group("sorted-set").since("2.0.0").summary("Count the members in a sorted set with scores within the given values").key_flags(&["RO", "access"]),
        cmd("zdiff", -3, "readonly movablekeys", 0, 0, 0, "read sortedset slow", zdiff)
            .group("sorted-set").since("6.2.0").summary("Subtract multiple sorted sets").key_flags(&["RO", "access"]).keys_fn(numkeys1_keys),
        cmd("zdiffstore", -4, "write denyoom movablekeys", 1, 1, 1, "write sortedset slow", zdiffstore)
            .group("sorted-set").since("6.2.0").summary("Subtract multiple sorted sets and store the resulting sorted set in a new key").key_flags(&["OW", "update"]).keys_fn(store_keys),
        cmd("zincrby", 4, "write denyoom fast", 1, 1, 1, "write sortedset fast", zincrby)
            .group("sorted-set").since("1.2.0").summary("Increment the score of a member in a sorted set").key_flags(&["RW", "access", "update"]),
        cmd("zinter", -3, "readonly movablekeys", 0, 0, 0, "read sortedset slow", zinter)
            .group("sorted-set").since("6.2.0").summary("Intersect multiple sorted sets").key_flags(&["RO", "access"]).keys_fn(numkeys1_keys),
        cmd("zintercard", -3, "readonly movablekeys", 0, 0, 0, "read sortedset slow", zintercard)
            .group("sorted-set").since("7.0.0").summary("Intersect multiple sorted sets and return the cardinality of the result").key_flags(&["RO", "access"]).keys_fn(numkeys1_keys),
        cmd("zinterstore", -4, "write denyoom movablekeys", 1, 1, 1, "write sortedset slow", zinterstore)
            .group("sorted-set").since("2.0.0").summary("Intersect multiple sorted sets and store the resulting sorted set in a new key").key_flags(&["OW", "update"]).keys_fn(store_keys),
        cmd("zlexcount", 4, "readonly fast", 1, 1, 1, "read sortedset fast", zlexcount)
            .group("sorted-set").since("2.8.9").summary("Count the number of members in a sorted set between a given lexicographical range").key_flags(&["RO", "access"]),
        cmd("zmpop", -4, "write movablekeys", 0, 0, 0, "write sortedset slow", zmpop)
            .group("sorted-set").since("7.0.0").summary("Remove and return members with scores in a sorted set").key_flags(&["RW", "access", "delete"]).keys_fn(numkeys1_keys),
        cmd("zmscore", -3, "readonly fast", 1, 1, 1, "read sortedset fast", zmscore)
            .group("sorted-set").since("6.2.0").summary("Get the score associated with the given members in a sorted set").key_flags(&["RO", "access"]),
        cmd("zpopmax", -2, "write fast", 1, 1, 1, "write sortedset fast", zpopmax)
            .group("sorted-set").since("5.0.0").summary("Remove and return members with the highest scores in a sorted set").key_flags(&["RW", "access", "delete"]),
        cmd("zpopmin", -2, "write fast", 1, 1, 1, "write sortedset fast", zpopmin)
            .group("sorted-set").since("5.0.0").summary("Remove and return members with the lowest scores in a sorted set").key_flags(&["RW", "access", "delete"]),
        cmd("zrandmember", -2, "readonly", 1, 1, 1, "read sortedset slow", zrandmember)
            .group("sorted-set").since("6.2.0").summary("Get one or multiple random elements from a sorted set").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"]),
        cmd("zrange", -4, "readonly", 1, 1, 1, "read sortedset slow", zrange)
            .group("sorted-set").since("1.2.0").summary("Return a range of members in a sorted set").key_flags(&["RO", "access"]),
        cmd("zrangebylex", -4, "readonly", 1, 1, 1, "read sortedset slow", zrangebylex)
            .group("sorted-set").since("2.8.9").summary("Return a range of members in a sorted set, by lexicographical range").key_flags(&["RO", "access"]),
        cmd("zrangebyscore", -4, "readonly", 1, 1, 1, "read sortedset slow", zrangebyscore)
            .group("sorted-set").since("1.0.5").summary("Return a range of members in a sorted set, by score").key_flags(&["RO", "access"]),
        cmd("zrangestore", -5, "write denyoom", 1, 2, 1, "write sortedset slow", zrangestore)
            .group("sorted-set").since("6.2.0").summary("Store a range of members from sorted set into another key").key_flags(&["OW", "update"]),
        cmd("zrank", 3, "readonly fast", 1, 1, 1, "read sortedset fast", zrank)
            .group("sorted-set").since("2.0.0").summary("Determine the index of a member in a sorted set").key_flags(&["RO", "access"]),
        cmd("zrem", -3, "write fast", 1, 1, 1, "write sortedset fast", zrem)
            .group("sorted-set").since("1.2.0").summary("Remove one or more members from a sorted set").key_flags(&["RW", "delete"]),
        cmd("zremrangebylex", 4, "write", 1, 1, 1, "write sortedset slow", zremrangebylex)
            .group("sorted-set").since("2.8.9").summary("Remove all members in a sorted set between the given lexicographical range").key_flags(&["RW", "delete"]),
        cmd("zremrangebyrank", 4, "write", 1, 1, 1, "write sortedset slow", zremrangebyrank)
            .group("sorted-set").since("2.0.0").summary("Remove all members in a sorted set within the given indexes").key_flags(&["RW", "delete"]),
        cmd("zremrangebyscore", 4, "write", 1, 1, 1, "write sortedset slow", zremrangebyscore)
            .group("sorted-set").since("1.2.0").summary("Remove all members in a sorted set within the given scores").key_flags(&["RW", "delete"]),
        cmd("zrevrange", -4, "readonly", 1, 1, 1, "read sortedset slow", zrevrange)
            .group("sorted-set").since("1.2.0").summary("Return a range of members in a sorted set, by index, with scores ordered from high to low").key_flags(&["RO", "access"]),
        cmd("zrevrangebylex", -4, "readonly", 1, 1, 1, "read sortedset slow", zrevrangebylex)
            .group("sorted-set").since("2.8.9").summary("Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.").key_flags(&["RO", "access"]),
        cmd("zrevrangebyscore", -4, "readonly", 1, 1, 1, "read sortedset slow", zrevrangebyscore)
            .group("sorted-set").since("2.2.0").summary("Return a range of members in a sorted set, by score, with scores ordered from high to low").key_flags(&["RO", "access"]),
        cmd("zrevrank", 3, "readonly fast", 1, 1, 1, "read sortedset fast", zrevrank)
            .group("sorted-set").since("2.0.0").summary("Determine the index of a member in a sorted set, with scores ordered from high to low").key_flags(&["RO", "access"]),
        cmd("zscan", -3, "readonly", 1, 1, 1, "read sortedset slow", zscan)
            .group("sorted-set").since("2.8.0").summary("Incrementally iterate sorted sets elements and associated scores").key_flags(&["RO", "access"]).tips(&["nondeterministic_output"]),
        cmd("zscore", 3, "readonly fast", 1, 1, 1, "read sortedset fast", zscore)
            .group("sorted-set").since("1.2.0").summary("Get the score associated with the given member in a sorted set").key_flags(&["RO", "access"]),
        cmd("zunion", -3, "readonly movablekeys", 0, 0, 0, "read sortedset slow", zunion)
            .group("sorted-set").since("6.2.0").summary("Add multiple sorted sets").key_flags(&["RO", "access"]).keys_fn(numkeys1_keys),
        cmd("zunionstore", -4, "write denyoom movablekeys", 1, 1, 1, "write sortedset slow", zunionstore)
            .group("sorted-set").since("2.0.0").summary("Add multiple sorted sets and store the resulting sorted set in a new key").key_flags(&["OW", "update"]).keys_fn(store_keys),
    ]
}

// ---- key positions of the movable-key commands ----

fn numkeys_at(args: &[Bytes], idx: usize) -> Vec<usize> {
    let Some(n) = args.get(idx).and_then(|b| parse_canonical_i64(b)) else { return Vec::new() };
    if n <= 0 {
        return Vec::new();
    }
    (idx + 1..(idx + 1).saturating_add(n as usize)).filter(|&i| i < args.len()).collect()
}

fn numkeys1_keys(args: &[Bytes]) -> Vec<usize> {
    numkeys_at(args, 1)
}

fn bzmpop_keys(args: &[Bytes]) -> Vec<usize> {
    numkeys_at(args, 2)
}

fn store_keys(args: &[Bytes]) -> Vec<usize> {
    let mut v = vec![1];
    v.extend(numkeys_at(args, 2));
    v
}

// ---- replies ----

fn score_frame(s: f64) -> Frame {
    Frame::Double(s)
}

/// Member/score list: RESP2 flat `[m, s, ...]`, RESP3 `[[m, s], ...]` when `pairs`.
fn entries_reply(entries: &[(Bytes, f64)], withscores: bool, resp3: bool) -> Frame {
    let mut out = Vec::with_capacity(entries.len() * if withscores && !resp3 { 2 } else { 1 });
    for (m, s) in entries {
        if withscores {
            if resp3 {
                out.push(Frame::Array(vec![Frame::Bulk(m.clone()), score_frame(*s)]));
            } else {
                out.push(Frame::Bulk(m.clone()));
                out.push(score_frame(*s));
            }
        } else {
            out.push(Frame::Bulk(m.clone()));
        }
    }
    Frame::Array(out)
}

fn pairs_of<'a>(it: impl Iterator<Item = EntryRef<'a>>) -> Vec<(Bytes, f64)> {
    it.map(|e| (e.member_bytes(), e.score)).collect()
}

// ---- ZADD / ZINCRBY ----

struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

pub(super) fn zadd_generic(ctx: &mut Ctx, args: &[Bytes], force_incr: bool) -> Frame {
    let mut f = AddFlags { nx: false, xx: false, gt: false, lt: false, ch: false, incr: force_incr };
    let mut idx = 2;
    if !force_incr {
        while idx < args.len() {
            let a = &args[idx];
            if a.eq_ignore_ascii_case(b"nx") {
                f.nx = true;
            } else if a.eq_ignore_ascii_case(b"xx") {
                f.xx = true;
            } else if a.eq_ignore_ascii_case(b"gt") {
                f.gt = true;
            } else if a.eq_ignore_ascii_case(b"lt") {
                f.lt = true;
            } else if a.eq_ignore_ascii_case(b"ch") {
                f.ch = true;
            } else if a.eq_ignore_ascii_case(b"incr") {
                f.incr = true;
            } else {
                break;
            }
            idx += 1;
        }
    }
    let elements = args.len() - idx;
    if elements % 2 == 1 || elements == 0 {
        return err("ERR syntax error");
    }
    let pairs = elements / 2;
    if f.nx && f.xx {
        return err("ERR XX and NX options at the same time are not compatible");
    }
    if (f.gt && f.nx) || (f.lt && f.nx) || (f.gt && f.lt) {
        return err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && pairs > 1 {
        return err("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs);
    for j in 0..pairs {
        match parse_redis_double(&args[idx + j * 2]) {
            Some(s) => scores.push(s),
            None => return err("ERR value is not a valid float"),
        }
    }
    let limits = access::limits(ctx);
    let key = &args[1];
    let z = match access::write::<ZSetValue>(ctx, key) {
        Err(e) => return e,
        Ok(Some(z)) => z,
        Ok(None) => {
            if f.xx {
                return if f.incr { Frame::Null } else { Frame::Integer(0) };
            }
            ctx.add_value(key, ZSetValue::new().wrap());
            match access::write::<ZSetValue>(ctx, key) {
                Ok(Some(z)) => z,
                Ok(None) => return Frame::Null,
                Err(e) => return e,
            }
        }
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut incr_result: Option<f64> = None;
    for (j, &score_in) in scores.iter().enumerate() {
        let member = &args[idx + j * 2 + 1];
        let mut score = score_in;
        match z.score(member) {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                if f.incr {
                    score += cur;
                    if score.is_nan() {
                        return err("ERR resulting score is not a number (NaN)");
                    }
                }
                if (f.lt && score >= cur) || (f.gt && score <= cur) {
                    continue;
                }
                incr_result = Some(score);
                processed += 1;
                if score != cur {
                    z.add(member.clone(), score, &limits);
                    updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                if z.add(member.clone(), score, &limits) == AddOutcome::Added {
                    added += 1;
                }
                incr_result = Some(score);
                processed += 1;
            }
        }
    }
    let empty = z.is_empty();
    if empty {
        // A new key that received nothing (all elements skipped) is not kept.
        access::delete_key(ctx, key);
    }
    if added + updated > 0 {
        ctx.notify(notify::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
        ctx.signal_key_ready(key);
        ctx.dirty((added + updated) as u64);
    }
    let _ = processed;
    if f.incr {
        return incr_result.map_or(Frame::Null, score_frame);
    }
    Frame::Integer(if f.ch { added + updated } else { added })
}

fn zadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zadd_generic(ctx, args, false)
}

fn zincrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zadd_generic(ctx, args, true)
}

// ---- simple reads ----

fn zcard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Frame::Integer(z.map_or(0, |z| z.len()) as i64),
    }
}

fn zscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => z.and_then(|z| z.score(&args[2])).map_or(Frame::Null, score_frame),
    }
}

fn zmscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Frame::Array(args[2..].iter().map(|m| z.and_then(|z| z.score(m)).map_or(Frame::Null, score_frame)).collect()),
    }
}

fn rank_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> Frame {
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => z.and_then(|z| z.rank(&args[2], rev)).map_or(Frame::Null, |r| Frame::Integer(r as i64)),
    }
}

fn zrank(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    rank_generic(ctx, args, true)
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<(ScoreBound, ScoreBound), Frame> {
    match (ScoreBound::parse(min), ScoreBound::parse(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(err("ERR min or max is not a float")),
    }
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<(LexBound, LexBound), Frame> {
    match (LexBound::parse(min), LexBound::parse(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(err("ERR min or max not valid string range item")),
    }
}

fn zcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (min, max) = match parse_score_range(&args[2], &args[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Integer(0),
        Ok(Some(z)) => {
            let (a, b) = z.score_range(&min, &max);
            Frame::Integer((b - a) as i64)
        }
    }
}

fn zlexcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (min, max) = match parse_lex_range(&args[2], &args[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Integer(0),
        Ok(Some(z)) => {
            let (a, b) = z.lex_range(&min, &max);
            Frame::Integer((b - a) as i64)
        }
    }
}

// ---- ZRANGE family ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Resolves a range request to the selected entries in reply order.
fn select_range(z: &ZSetValue, rtype: RangeType, rev: bool, min: &[u8], max: &[u8], offset: i64, limit: i64) -> Result<Vec<(Bytes, f64)>, Frame> {
    let (a, b) = match rtype {
        RangeType::Rank | RangeType::Auto => {
            let start = int_arg(min)?;
            let end = int_arg(max)?;
            match normalize_range(start, end, z.len()) {
                None => return Ok(Vec::new()),
                Some((s, e)) => {
                    if rev {
                        let n = z.len();
                        return Ok(pairs_of(z.range(n - 1 - e, n - s).rev()));
                    }
                    return Ok(pairs_of(z.range(s, e + 1)));
                }
            }
        }
        RangeType::Score => {
            let (lo, hi) = parse_score_range(min, max)?;
            z.score_range(&lo, &hi)
        }
        RangeType::Lex => {
            let (lo, hi) = parse_lex_range(min, max)?;
            z.lex_range_dir(&lo, &hi, rev)
        }
    };
    if offset < 0 || (offset > 0 && offset as u64 >= z.len() as u64) {
        return Ok(Vec::new());
    }
    let take = if limit < 0 { usize::MAX } else { limit as usize };
    let it = z.range(a, b);
    Ok(if rev { pairs_of(it.rev().skip(offset as usize).take(take)) } else { pairs_of(it.skip(offset as usize).take(take)) })
}

/// Shared parser and executor of ZRANGE, ZRANGESTORE and the legacy forms.
fn zrange_generic(ctx: &mut Ctx, args: &[Bytes], argc_start: usize, store: Option<&Bytes>, mut rtype: RangeType, mut rev: Option<bool>) -> Frame {
    let key = &args[argc_start];
    let mut minidx = argc_start + 1;
    let mut maxidx = argc_start + 2;
    let mut withscores = false;
    let mut offset: i64 = 0;
    let mut limit: i64 = -1;
    let mut limit_given = false;
    let mut j = argc_start + 3;
    while j < args.len() {
        let a = &args[j];
        let left = args.len() - j - 1;
        if store.is_none() && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            match (int_arg(&args[j + 1]), int_arg(&args[j + 2])) {
                (Ok(o), Ok(l)) => {
                    offset = o;
                    limit = l;
                    limit_given = true;
                }
                (Err(e), _) | (_, Err(e)) => return e,
            }
            j += 2;
        } else if rev.is_none() && a.eq_ignore_ascii_case(b"rev") {
            rev = Some(true);
        } else if rtype == RangeType::Auto && a.eq_ignore_ascii_case(b"bylex") {
            rtype = RangeType::Lex;
        } else if rtype == RangeType::Auto && a.eq_ignore_ascii_case(b"byscore") {
            rtype = RangeType::Score;
        } else {
            return err("ERR syntax error");
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if rtype == RangeType::Auto {
        rtype = RangeType::Rank;
    }
    if limit_given && limit != -1 && rtype == RangeType::Rank {
        return err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    if limit_given && rtype == RangeType::Rank && limit == -1 {
        return err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    if withscores && rtype == RangeType::Lex {
        return err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    if rev && (rtype == RangeType::Score || rtype == RangeType::Lex) {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    // Argument validation happens before the key lookup, as in Redis.
    match rtype {
        RangeType::Rank | RangeType::Auto => {
            if let Err(e) = int_arg(&args[minidx]).and(int_arg(&args[maxidx])) {
                return e;
            }
        }
        RangeType::Score => {
            if let Err(e) = parse_score_range(&args[minidx], &args[maxidx]) {
                return e;
            }
        }
        RangeType::Lex => {
            if let Err(e) = parse_lex_range(&args[minidx], &args[maxidx]) {
                return e;
            }
        }
    }
    let selected = match access::read::<ZSetValue>(ctx, key) {
        Err(e) => return e,
        Ok(None) => Vec::new(),
        Ok(Some(z)) => match select_range(z, rtype, rev, &args[minidx], &args[maxidx], offset, limit) {
            Ok(v) => v,
            Err(e) => return e,
        },
    };
    match store {
        None => entries_reply(&selected, withscores, ctx.resp3()),
        Some(dst) => {
            let limits = access::limits(ctx);
            let n = selected.len();
            store_zset(ctx, dst, ZSetValue::from_pairs(selected, &limits), "zrangestore");
            Frame::Integer(n as i64)
        }
    }
}

/// Stores a computed sorted set (or deletes `dst` when empty), with notifications.
pub(super) fn store_zset(ctx: &mut Ctx, dst: &Bytes, z: ZSetValue, event: &str) {
    if z.is_empty() {
        let db = ctx.db_index();
        if ctx.lookup_write(dst).is_some() && ctx.srv.dbs[db].remove(dst).is_some() {
            ctx.notify(notify::GENERIC, "del", dst);
            ctx.dirty(1);
        }
        return;
    }
    access::store(ctx, dst, z.wrap());
    ctx.notify(notify::ZSET, event, dst);
    ctx.signal_key_ready(dst);
    ctx.dirty(1);
}

fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrange_generic(ctx, args, 1, None, RangeType::Auto, None)
}

fn zrangestore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let dst = args[1].clone();
    zrange_generic(ctx, args, 2, Some(&dst), RangeType::Auto, None)
}

fn zrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrange_generic(ctx, args, 1, None, RangeType::Rank, Some(true))
}

fn zrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrange_generic(ctx, args, 1, None, RangeType::Score, Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrange_generic(ctx, args, 1, None, RangeType::Score, Some(true))
}

fn zrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrange_generic(ctx, args, 1, None, RangeType::Lex, Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zrange_generic(ctx, args, 1, None, RangeType::Lex, Some(true))
}

// ---- removals ----

fn zrem(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    access::remove_members::<ZSetValue>(ctx, &args[1], &args[2..], notify::ZSET, "zrem")
}

fn zremrange_generic(ctx: &mut Ctx, args: &[Bytes], rtype: RangeType) -> Frame {
    enum R {
        Rank(i64, i64),
        Score(ScoreBound, ScoreBound),
        Lex(LexBound, LexBound),
    }
    let r = match rtype {
        RangeType::Score => match parse_score_range(&args[2], &args[3]) {
            Ok((a, b)) => R::Score(a, b),
            Err(e) => return e,
        },
        RangeType::Lex => match parse_lex_range(&args[2], &args[3]) {
            Ok((a, b)) => R::Lex(a, b),
            Err(e) => return e,
        },
        _ => match (int_arg(&args[2]), int_arg(&args[3])) {
            (Ok(a), Ok(b)) => R::Rank(a, b),
            (Err(e), _) | (_, Err(e)) => return e,
        },
    };
    let key = &args[1];
    let (n, empty) = match access::write::<ZSetValue>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(z)) => {
            let (a, b) = match &r {
                R::Rank(s, e) => match normalize_range(*s, *e, z.len()) {
                    None => (0, 0),
                    Some((s, e)) => (s, e + 1),
                },
                R::Score(lo, hi) => z.score_range(lo, hi),
                R::Lex(lo, hi) => z.lex_range(lo, hi),
            };
            let removed = z.remove_range(a, b).len();
            (removed, z.is_empty())
        }
    };
    if n > 0 {
        let event = match rtype {
            RangeType::Score => "zremrangebyscore",
            RangeType::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        ctx.notify(notify::ZSET, event, key);
        if empty {
            access::delete_key(ctx, key);
        }
        ctx.dirty(n as u64);
    }
    Frame::Integer(n as i64)
}

fn zremrangebyrank(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zremrange_generic(ctx, args, RangeType::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zremrange_generic(ctx, args, RangeType::Score)
}

fn zremrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zremrange_generic(ctx, args, RangeType::Lex)
}

// ---- pops ----

enum PopOutcome {
    Popped { key: Bytes, entries: Vec<(Bytes, f64)> },
    Nothing,
    Failed(Frame),
}

/// Pops from the first non-empty sorted set among `keys` (ZPOP*, BZPOP*, ZMPOP, BZMPOP),
/// with notifications, deletion of emptied keys and ZPOPMIN/ZPOPMAX propagation.
fn pop_first(ctx: &mut Ctx, keys: &[Bytes], max: bool, count: usize, propagate_count: bool) -> PopOutcome {
    for key in keys {
        let z = match access::write::<ZSetValue>(ctx, key) {
            Err(e) => {
                if ctx.serving_blocked {
                    continue;
                }
                return PopOutcome::Failed(e);
            }
            Ok(None) => continue,
            Ok(Some(z)) => z,
        };
        if z.is_empty() {
            continue;
        }
        let entries: Vec<(Bytes, f64)> = z.pop(count, max).into_iter().map(|e| (e.member, e.score)).collect();
        let empty = z.is_empty();
        ctx.notify(notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        if empty {
            access::delete_key(ctx, key);
        }
        ctx.dirty(entries.len() as u64);
        let name = Bytes::from_static(if max { b"ZPOPMAX" } else { b"ZPOPMIN" });
        if propagate_count {
            ctx.propagate_as(vec![name, key.clone(), Bytes::from(entries.len().to_string())]);
        } else {
            ctx.propagate_as(vec![name, key.clone()]);
        }
        return PopOutcome::Popped { key: key.clone(), entries };
    }
    PopOutcome::Nothing
}

fn zpop_generic(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Frame {
    if args.len() > 3 {
        return err("ERR syntax error");
    }
    let count = if args.len() == 3 {
        match access::positive_arg(&args[2], "ERR value is out of range, must be positive") {
            Ok(c) => Some(c as usize),
            Err(e) => return e,
        }
    } else {
        None
    };
    if count == Some(0) {
        // Still type-checked, as Redis does before the count-0 fast path.
        return match access::check_type::<ZSetValue>(ctx, &args[1]) {
            Err(e) => e,
            Ok(_) => Frame::Array(Vec::new()),
        };
    }
    let nested = ctx.resp3() && count.is_some();
    match pop_first(ctx, &args[1..2], max, count.unwrap_or(1), count.is_some()) {
        PopOutcome::Failed(e) => e,
        PopOutcome::Nothing => Frame::Array(Vec::new()),
        PopOutcome::Popped { entries, .. } => {
            if nested {
                entries_reply(&entries, true, true)
            } else {
                entries_reply(&entries, true, false)
            }
        }
    }
}

fn zpopmin(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zpop_generic(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    zpop_generic(ctx, args, true)
}

fn bzpop_generic(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Frame {
    let timeout = match access::timeout_arg(ctx, &args[args.len() - 1]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let keys = &args[1..args.len() - 1];
    match pop_first(ctx, keys, max, 1, false) {
        PopOutcome::Failed(e) => e,
        PopOutcome::Nothing => ctx.block(keys.to_vec(), timeout, Frame::NullArray),
        PopOutcome::Popped { key, entries } => {
            let (m, s) = entries.into_iter().next().expect("popped one");
            Frame::Array(vec![Frame::Bulk(key), Frame::Bulk(m), score_frame(s)])
        }
    }
}

fn bzpopmin(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    bzpop_generic(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    bzpop_generic(ctx, args, true)
}

/// `numkeys key... MIN|MAX [COUNT n]` from `numkeys_idx`.
fn parse_zmpop(args: &[Bytes], numkeys_idx: usize) -> Result<(Vec<Bytes>, bool, usize), Frame> {
    let numkeys = access::range_arg(&args[numkeys_idx], 1, i64::MAX, "ERR numkeys should be greater than 0")? as usize;
    let where_idx = numkeys_idx.saturating_add(numkeys).saturating_add(1);
    if where_idx >= args.len() {
        return Err(err("ERR syntax error"));
    }
    let max = if args[where_idx].eq_ignore_ascii_case(b"min") {
        false
    } else if args[where_idx].eq_ignore_ascii_case(b"max") {
        true
    } else {
        return Err(err("ERR syntax error"));
    };
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
    Ok((args[numkeys_idx + 1..where_idx].to_vec(), max, count.unwrap_or(1)))
}

fn mpop_reply(key: Bytes, entries: &[(Bytes, f64)]) -> Frame {
    let items = entries.iter().map(|(m, s)| Frame::Array(vec![Frame::Bulk(m.clone()), score_frame(*s)])).collect();
    Frame::Array(vec![Frame::Bulk(key), Frame::Array(items)])
}

fn zmpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (keys, max, count) = match parse_zmpop(args, 1) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match pop_first(ctx, &keys, max, count, true) {
        PopOutcome::Failed(e) => e,
        PopOutcome::Nothing => Frame::NullArray,
        PopOutcome::Popped { key, entries } => mpop_reply(key, &entries),
    }
}

fn bzmpop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let timeout = match access::timeout_arg(ctx, &args[1]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let (keys, max, count) = match parse_zmpop(args, 2) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match pop_first(ctx, &keys, max, count, true) {
        PopOutcome::Failed(e) => e,
        PopOutcome::Nothing => ctx.block(keys, timeout, Frame::NullArray),
        PopOutcome::Popped { key, entries } => mpop_reply(key, &entries),
    }
}

// ---- random, scan ----

fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() >= 3 {
        let (count, withscores) = match super::hash::random_count_args(args, b"withscores") {
            Ok(v) => v,
            Err(e) => return e,
        };
        let resp3 = ctx.resp3();
        let z = match access::read::<ZSetValue>(ctx, &args[1]) {
            Err(e) => return e,
            Ok(None) => return Frame::Array(Vec::new()),
            Ok(Some(z)) => z,
        };
        if count.unsigned_abs() > super::hash::MAX_RANDOM_REPLY {
            return err("ERR value is out of range");
        }
        let picked: Vec<(Bytes, f64)> = pairs_of(z.random_entries(&mut rand::thread_rng(), count).into_iter());
        return entries_reply(&picked, withscores, resp3);
    }
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Frame::Null,
        Ok(Some(z)) => z.random_entries(&mut rand::thread_rng(), 1).first().map_or(Frame::Null, |e| Frame::Bulk(e.member_bytes())),
    }
}

fn zscan(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let cursor = match access::parse_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let opts = match access::scan_opts(&args[3..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let z = match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return access::scan_reply(0, Vec::new()),
        Ok(Some(z)) => z,
    };
    let mut items = Vec::new();
    let next = z.scan(cursor, opts.count, |e| {
        if access::scan_matches(&opts, e.member) {
            items.push(Frame::Bulk(e.member_bytes()));
            // ZSCAN replies with scores as bulk strings in both protocols.
            items.push(Frame::Bulk(Bytes::from(crate::resp::format_double(e.score))));
        }
    });
    access::scan_reply(next, items)
}

// ---- ZUNION / ZINTER / ZDIFF ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(acc: &mut f64, v: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *acc += v;
            if acc.is_nan() {
                *acc = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *acc {
                *acc = v;
            }
        }
        Aggregate::Max => {
            if v > *acc {
                *acc = v;
            }
        }
    }
}

/// A source of ZUNION & co: a sorted set, a plain set (scores 1), or missing.
enum Src<'a> {
    Z(&'a ZSetValue),
    S(&'a SetValue),
    Missing,
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
            Src::Missing => 0,
        }
    }
    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
            Src::Missing => None,
        }
    }
    fn items(&self) -> Vec<(Bytes, f64)> {
        match self {
            Src::Z(z) => pairs_of(z.iter()),
            Src::S(s) => s.iter().map(|m| (m, 1.0)).collect(),
            Src::Missing => Vec::new(),
        }
    }
}

struct SetOpArgs {
    keys: Vec<Bytes>,
    weights: Vec<f64>,
    agg: Aggregate,
    withscores: bool,
    limit: usize,
}

fn parse_setop(ctx: &mut Ctx, args: &[Bytes], numkeys_idx: usize, op: SetOp, store: bool, card_only: bool) -> Result<SetOpArgs, Frame> {
    let setnum = int_arg(&args[numkeys_idx])?;
    if setnum < 1 {
        return Err(err(&format!("ERR at least 1 input key is needed for '{}' command", String::from_utf8_lossy(&args[0]).to_lowercase())));
    }
    if setnum as u64 > (args.len() - numkeys_idx - 1) as u64 {
        return Err(err("ERR syntax error"));
    }
    let setnum = setnum as usize;
    let keys: Vec<Bytes> = args[numkeys_idx + 1..numkeys_idx + 1 + setnum].to_vec();
    // Type check of every input comes before option parsing, as in Redis.
    for k in &keys {
        if let Some(v) = ctx.read_value(k) {
            if !matches!(v, Value::ZSet(_) | Value::Set(_)) {
                return Err(crate::server::command::wrongtype());
            }
        }
    }
    let mut o = SetOpArgs { keys, weights: vec![1.0; setnum], agg: Aggregate::Sum, withscores: false, limit: 0 };
    let mut j = numkeys_idx + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && a.eq_ignore_ascii_case(b"weights") {
            j += 1;
            for i in 0..setnum {
                o.weights[i] = parse_redis_double(&args[j]).ok_or_else(|| err("ERR weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && a.eq_ignore_ascii_case(b"aggregate") {
            let v = &args[j + 1];
            o.agg = if v.eq_ignore_ascii_case(b"sum") {
                Aggregate::Sum
            } else if v.eq_ignore_ascii_case(b"min") {
                Aggregate::Min
            } else if v.eq_ignore_ascii_case(b"max") {
                Aggregate::Max
            } else {
                return Err(err("ERR syntax error"));
            };
            j += 2;
        } else if !store && !card_only && a.eq_ignore_ascii_case(b"withscores") {
            o.withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && a.eq_ignore_ascii_case(b"limit") {
            o.limit = access::positive_arg(&args[j + 1], "ERR LIMIT can't be negative")? as usize;
            j += 2;
        } else {
            return Err(err("ERR syntax error"));
        }
    }
    Ok(o)
}

fn compute_setop(ctx: &mut Ctx, o: &SetOpArgs, op: SetOp, card_limit: Option<usize>) -> Vec<(Bytes, f64)> {
    for k in &o.keys {
        ctx.lookup_read(k);
    }
    let db = &ctx.srv.dbs[ctx.client.db];
    let mut srcs: Vec<(Src, f64)> = o
        .keys
        .iter()
        .zip(&o.weights)
        .map(|(k, w)| {
            let src = match db.find(k).map(|p| &db.slot(p).value) {
                Some(Value::ZSet(z)) => Src::Z(z),
                Some(Value::Set(s)) => Src::S(s),
                _ => Src::Missing,
            };
            (src, *w)
        })
        .collect();
    if op != SetOp::Diff {
        srcs.sort_by_key(|(s, _)| s.len());
    }
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    match op {
        SetOp::Inter => {
            let mut out = Vec::new();
            if srcs[0].0.len() == 0 {
                return out;
            }
            for (m, s0) in srcs[0].0.items() {
                let mut score = weighted(s0, srcs[0].1);
                let mut all = true;
                for (src, w) in &srcs[1..] {
                    match src.score(&m) {
                        Some(s) => aggregate(&mut score, weighted(s, *w), o.agg),
                        None => {
                            all = false;
                            break;
                        }
                    }
                }
                if all {
                    out.push((m, score));
                    if let Some(l) = card_limit {
                        if l > 0 && out.len() >= l {
                            break;
                        }
                    }
                }
            }
            out
        }
        SetOp::Union => {
            let mut acc: crate::server::types::dict::Dict<f64> = crate::server::types::dict::Dict::new();
            for (src, w) in &srcs {
                for (m, s) in src.items() {
                    let v = weighted(s, *w);
                    match acc.get_mut(&m) {
                        Some(cur) => aggregate(cur, v, o.agg),
                        None => {
                            acc.insert(m, v);
                        }
                    }
                }
            }
            acc.into_entries()
        }
        SetOp::Diff => {
            let mut out = Vec::new();
            for (m, s) in srcs[0].0.items() {
                if !srcs[1..].iter().any(|(src, _)| src.score(&m).is_some()) {
                    out.push((m, s));
                }
            }
            out
        }
    }
}

fn setop_command(ctx: &mut Ctx, args: &[Bytes], op: SetOp, store: bool) -> Frame {
    let numkeys_idx = if store { 2 } else { 1 };
    let o = match parse_setop(ctx, args, numkeys_idx, op, store, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let result = compute_setop(ctx, &o, op, None);
    let limits = access::limits(ctx);
    let z = ZSetValue::from_pairs(result, &limits);
    if store {
        let n = z.len();
        let event = match op {
            SetOp::Union => "zunionstore",
            SetOp::Inter => "zinterstore",
            SetOp::Diff => "zdiffstore",
        };
        store_zset(ctx, &args[1], z, event);
        return Frame::Integer(n as i64);
    }
    let pairs = pairs_of(z.iter());
    entries_reply(&pairs, o.withscores, ctx.resp3())
}

fn zunion(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setop_command(ctx, args, SetOp::Union, false)
}
fn zunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setop_command(ctx, args, SetOp::Union, true)
}
fn zinter(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setop_command(ctx, args, SetOp::Inter, false)
}
fn zinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setop_command(ctx, args, SetOp::Inter, true)
}
fn zdiff(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setop_command(ctx, args, SetOp::Diff, false)
}
fn zdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    setop_command(ctx, args, SetOp::Diff, true)
}

fn zintercard(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let o = match parse_setop(ctx, args, 1, SetOp::Inter, false, true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let n = compute_setop(ctx, &o, SetOp::Inter, Some(o.limit)).len();
    Frame::Integer(n as i64)
}

#[cfg(test)]
mod tests {
    use crate::server::types::access::testing::{words, TestServer};

    #[test]
    fn zset_pops_propagate_as_zpop() {
        let mut t = TestServer::new();
        t.run(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
        let o = t.run(&["BZPOPMAX", "nokey", "z", "0"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["ZPOPMAX", "z"]);
        let o = t.run(&["ZMPOP", "1", "z", "MIN", "COUNT", "5"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["ZPOPMIN", "z", "2"]);
        let o = t.run(&["BZMPOP", "0", "1", "z", "MIN"]);
        assert!(o.blocked, "emptied and deleted: blocks");
    }
}
