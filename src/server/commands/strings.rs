//! String commands: GET/SET and friends, counters, ranges, LCS.

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, not_integer, parse_int, syntax_error, wrongtype, CommandSpec, Ctx};
use crate::server::notify;
use crate::server::value::Value;

pub fn commands() -> Vec<CommandSpec> {
    let s = |c: CommandSpec| c.group("string");
    vec![
        s(cmd("get", 2, "readonly fast", 1, 1, 1, "read string fast", get).summary("Get the value of a key")),
        s(cmd("set", -3, "write denyoom", 1, 1, 1, "write string slow", set).summary("Set the string value of a key")),
        s(cmd("setnx", 3, "write denyoom fast", 1, 1, 1, "write string fast", setnx).summary("Set the value of a key, only if the key does not exist")),
        s(cmd("setex", 4, "write denyoom", 1, 1, 1, "write string slow", setex).since("2.0.0").summary("Set the value and expiration of a key")),
        s(cmd("psetex", 4, "write denyoom", 1, 1, 1, "write string slow", psetex).since("2.6.0").summary("Set the value and expiration in milliseconds of a key")),
        s(cmd("getset", 3, "write denyoom fast", 1, 1, 1, "write string fast", getset).summary("Set the string value of a key and return its old value")),
        s(cmd("getdel", 2, "write fast", 1, 1, 1, "write string fast", getdel).since("6.2.0").summary("Get the value of a key and delete the key")),
        s(cmd("getex", -2, "write fast", 1, 1, 1, "write string fast", getex).since("6.2.0").summary("Get the value of a key and optionally set its expiration")),
        s(cmd("mget", -2, "readonly fast", 1, -1, 1, "read string fast", mget).summary("Get the values of all the given keys")),
        s(cmd("mset", -3, "write denyoom", 1, -1, 2, "write string slow", mset).since("1.0.1").summary("Set multiple keys to multiple values")),
        s(cmd("msetnx", -3, "write denyoom", 1, -1, 2, "write string slow", msetnx).since("1.0.1").summary("Set multiple keys to multiple values, only if none of the keys exist")),
        s(cmd("append", 3, "write denyoom fast", 1, 1, 1, "write string fast", append).since("2.0.0").summary("Append a value to a key")),
        s(cmd("strlen", 2, "readonly fast", 1, 1, 1, "read string fast", strlen).since("2.2.0").summary("Get the length of the value stored in a key")),
        s(cmd("incr", 2, "write denyoom fast", 1, 1, 1, "write string fast", incr).summary("Increment the integer value of a key by one")),
        s(cmd("decr", 2, "write denyoom fast", 1, 1, 1, "write string fast", decr).summary("Decrement the integer value of a key by one")),
        s(cmd("incrby", 3, "write denyoom fast", 1, 1, 1, "write string fast", incrby).summary("Increment the integer value of a key by the given amount")),
        s(cmd("decrby", 3, "write denyoom fast", 1, 1, 1, "write string fast", decrby).summary("Decrement the integer value of a key by the given number")),
        s(cmd("incrbyfloat", 3, "write denyoom fast", 1, 1, 1, "write string fast", incrbyfloat).since("2.6.0").summary("Increment the float value of a key by the given amount")),
        s(cmd("setrange", 4, "write denyoom", 1, 1, 1, "write string slow", setrange).since("2.2.0").summary("Overwrite part of a string at key starting at the specified offset")),
        s(cmd("getrange", 4, "readonly", 1, 1, 1, "read string slow", getrange).since("2.4.0").summary("Get a substring of the string stored at a key")),
        s(cmd("substr", 4, "readonly", 1, 1, 1, "read string slow", getrange).summary("Get a substring of the string stored at a key")),
        s(cmd("lcs", -3, "readonly", 1, 2, 1, "read string slow", lcs).since("7.0.0").summary("Find longest common substring")),
    ]
}

/// The string at `key` for reading: Ok(None) if missing, Err(WRONGTYPE) if not a string.
pub fn read_string(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Bytes>, Frame> {
    match ctx.read_value(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(Bytes::copy_from_slice(s.as_slice()))),
        Some(_) => Err(wrongtype()),
    }
}

fn get(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match read_string(ctx, &args[1]) {
        Ok(Some(v)) => Frame::Bulk(v),
        Ok(None) => Frame::Null,
        Err(e) => e,
    }
}

/// Expiry unit of SET/GETEX options.
#[derive(Clone, Copy, PartialEq)]
enum ExpireArg {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpireArg {
    /// The SET / GETEX expire option named by `opt` (already upper-cased), if it is one.
    fn from_option(opt: &[u8]) -> Option<ExpireArg> {
        match opt {
            b"EX" => Some(ExpireArg::Ex),
            b"PX" => Some(ExpireArg::Px),
            b"EXAT" => Some(ExpireArg::ExAt),
            b"PXAT" => Some(ExpireArg::PxAt),
            _ => None,
        }
    }
}

/// Converts an expire option to an absolute unix ms time, with Redis's checks.
fn absolute_expire(ctx: &Ctx, kind: ExpireArg, raw: &[u8], cmd_name: &str) -> Result<i64, Frame> {
    let n = parse_int(raw)?;
    let invalid = || Frame::error(format!("ERR invalid expire time in '{cmd_name}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let ms = match kind {
        ExpireArg::Ex | ExpireArg::ExAt => n.checked_mul(1000).ok_or_else(invalid)?,
        _ => n,
    };
    match kind {
        ExpireArg::Ex | ExpireArg::Px => ms.checked_add(ctx.now_ms).ok_or_else(invalid),
        _ => Ok(ms),
    }
}

fn set(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (key, value) = (&args[1], &args[2]);
    let mut nx = false;
    let mut xx = false;
    let mut get_old = false;
    let mut keep_ttl = false;
    let mut expire: Option<(ExpireArg, &Bytes)> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let next = args.get(i + 1);
        let kind = ExpireArg::from_option(&opt);
        match opt.as_slice() {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get_old = true,
            b"KEEPTTL" if expire.is_none() => keep_ttl = true,
            _ if kind.is_some() && expire.is_none() && !keep_ttl && next.is_some() => {
                expire = kind.zip(next);
                i += 1;
            }
            _ => return syntax_error(),
        }
        i += 1;
    }
    let when = match expire {
        Some((kind, raw)) => match absolute_expire(ctx, kind, raw, "set") {
            Ok(w) => Some(w),
            Err(e) => return e,
        },
        None => None,
    };
    let existing = ctx.lookup_write(key);
    let old = if get_old {
        match existing.map(|p| &ctx.db().slot(p).value) {
            None => Frame::Null,
            Some(Value::Str(s)) => Frame::Bulk(Bytes::copy_from_slice(s.as_slice())),
            Some(_) => return wrongtype(),
        }
    } else {
        Frame::Null
    };
    if (nx && existing.is_some()) || (xx && existing.is_none()) {
        return if get_old { old } else { Frame::Null };
    }
    let pos = ctx.set_value(key, Value::string(value), keep_ttl);
    ctx.dirty(1);
    ctx.notify(notify::STRING, "set", key);
    if let Some(when) = when {
        if ctx.already_expired(when) {
            ctx.db().remove_at(pos);
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.notify(notify::GENERIC, "del", key);
        } else {
            ctx.db().set_expiry(pos, when);
            ctx.notify(notify::GENERIC, "expire", key);
            let mut argv = vec![Bytes::from_static(b"SET"), key.clone(), value.clone(), Bytes::from_static(b"PXAT"), Bytes::from(when.to_string())];
            if nx {
                argv.push(Bytes::from_static(b"NX"));
            }
            if xx {
                argv.push(Bytes::from_static(b"XX"));
            }
            ctx.propagate_as(argv);
        }
    } else if get_old {
        let mut argv = vec![Bytes::from_static(b"SET"), key.clone(), value.clone()];
        if keep_ttl {
            argv.push(Bytes::from_static(b"KEEPTTL"));
        }
        ctx.propagate_as(argv);
    }
    if get_old {
        old
    } else {
        Frame::ok()
    }
}

fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if ctx.lookup_write(&args[1]).is_some() {
        return Frame::Integer(0);
    }
    ctx.set_value(&args[1], Value::string(&args[2]), false);
    ctx.dirty(1);
    ctx.notify(notify::STRING, "set", &args[1]);
    Frame::Integer(1)
}

fn set_with_expire(ctx: &mut Ctx, args: &[Bytes], kind: ExpireArg, name: &str) -> Frame {
    let when = match absolute_expire(ctx, kind, &args[2], name) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let pos = ctx.set_value(&args[1], Value::string(&args[3]), false);
    ctx.db().set_expiry(pos, when);
    ctx.dirty(1);
    ctx.notify(notify::STRING, "set", &args[1]);
    ctx.notify(notify::GENERIC, "expire", &args[1]);
    ctx.propagate_as(vec![Bytes::from_static(b"SET"), args[1].clone(), args[3].clone(), Bytes::from_static(b"PXAT"), Bytes::from(when.to_string())]);
    Frame::ok()
}

fn setex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    set_with_expire(ctx, args, ExpireArg::Ex, "setex")
}

fn psetex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    set_with_expire(ctx, args, ExpireArg::Px, "psetex")
}

fn getset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let old = match ctx.lookup_write(&args[1]).map(|p| &ctx.db().slot(p).value) {
        None => Frame::Null,
        Some(Value::Str(s)) => Frame::Bulk(Bytes::copy_from_slice(s.as_slice())),
        Some(_) => return wrongtype(),
    };
    ctx.set_value(&args[1], Value::string(&args[2]), false);
    ctx.dirty(1);
    ctx.notify(notify::STRING, "set", &args[1]);
    // Replicas get a SET, as Redis propagates it (their command stats count SETs).
    ctx.propagate_as(vec![Bytes::from_static(b"SET"), args[1].clone(), args[2].clone()]);
    old
}

fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(pos) = ctx.lookup_read(&args[1]) else {
        return Frame::Null;
    };
    let v = match &ctx.db().slot(pos).value {
        Value::Str(s) => Bytes::copy_from_slice(s.as_slice()),
        _ => return wrongtype(),
    };
    ctx.db().remove_at(pos);
    ctx.dirty(1);
    ctx.notify(notify::GENERIC, "del", &args[1]);
    ctx.propagate_as(vec![Bytes::from_static(b"DEL"), args[1].clone()]);
    Frame::Bulk(v)
}

fn getex(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let mut expire: Option<(ExpireArg, &Bytes)> = None;
    let mut persist = false;
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let next = args.get(i + 1);
        let kind = ExpireArg::from_option(&opt);
        match opt.as_slice() {
            b"PERSIST" if expire.is_none() && !persist => persist = true,
            _ if kind.is_some() && expire.is_none() && !persist && next.is_some() => {
                expire = kind.zip(next);
                i += 1;
            }
            _ => return syntax_error(),
        }
        i += 1;
    }
    let when = match expire {
        Some((kind, raw)) => match absolute_expire(ctx, kind, raw, "getex") {
            Ok(w) => Some(w),
            Err(e) => return e,
        },
        None => None,
    };
    let Some(pos) = ctx.lookup_read(key) else {
        return Frame::Null;
    };
    let v = match &ctx.db().slot(pos).value {
        Value::Str(s) => Bytes::copy_from_slice(s.as_slice()),
        _ => return wrongtype(),
    };
    if let Some(when) = when {
        if ctx.already_expired(when) {
            ctx.db().remove_at(pos);
            ctx.dirty(1);
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.notify(notify::GENERIC, "del", key);
        } else {
            ctx.db().set_expiry(pos, when);
            ctx.dirty(1);
            ctx.propagate_as(vec![Bytes::from_static(b"PEXPIREAT"), key.clone(), Bytes::from(when.to_string())]);
            ctx.notify(notify::GENERIC, "expire", key);
        }
    } else if persist && ctx.db().persist(pos) {
        ctx.dirty(1);
        ctx.propagate_as(vec![Bytes::from_static(b"PERSIST"), key.clone()]);
        ctx.notify(notify::GENERIC, "persist", key);
    }
    Frame::Bulk(v)
}

fn mget(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        out.push(match ctx.read_value(key) {
            Some(Value::Str(s)) => Frame::Bulk(Bytes::copy_from_slice(s.as_slice())),
            _ => Frame::Null,
        });
    }
    Frame::Array(out)
}

fn mset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() % 2 == 0 {
        return crate::server::command::wrong_args("mset");
    }
    for pair in args[1..].chunks(2) {
        ctx.set_value(&pair[0], Value::string(&pair[1]), false);
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    ctx.dirty(((args.len() - 1) / 2) as u64);
    Frame::ok()
}

fn msetnx(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() % 2 == 0 {
        return crate::server::command::wrong_args("msetnx");
    }
    for pair in args[1..].chunks(2) {
        if ctx.lookup_write(&pair[0]).is_some() {
            return Frame::Integer(0);
        }
    }
    for pair in args[1..].chunks(2) {
        ctx.set_value(&pair[0], Value::string(&pair[1]), false);
        ctx.notify(notify::STRING, "set", &pair[0]);
    }
    ctx.dirty(((args.len() - 1) / 2) as u64);
    Frame::Integer(1)
}

/// Largest string SETRANGE/APPEND may build (proto-max-bulk-len).
fn check_size(ctx: &Ctx, total: usize) -> Result<(), Frame> {
    if total > ctx.srv.limits.proto_max_bulk_len {
        return Err(Frame::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    Ok(())
}

fn append(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let len = match ctx.lookup_write(&args[1]) {
        None => {
            ctx.add_value(&args[1], Value::string(&args[2]));
            args[2].len()
        }
        Some(pos) => {
            let cur_len = match &ctx.db().slot(pos).value {
                Value::Str(s) => s.len(),
                _ => return wrongtype(),
            };
            if let Err(e) = check_size(ctx, cur_len + args[2].len()) {
                return e;
            }
            let Value::Str(s) = ctx.value_at(pos) else { return wrongtype() };
            let v = s.make_growable();
            v.extend_from_slice(&args[2]);
            v.len()
        }
    };
    ctx.dirty(1);
    ctx.notify(notify::STRING, "append", &args[1]);
    Frame::Integer(len as i64)
}

fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match ctx.read_value(&args[1]) {
        None => Frame::Integer(0),
        Some(Value::Str(s)) => Frame::Integer(s.len() as i64),
        Some(_) => wrongtype(),
    }
}

fn incr_decr(ctx: &mut Ctx, key: &Bytes, delta: i64) -> Frame {
    let pos = ctx.lookup_write(key);
    let current = match pos.map(|p| &ctx.db().slot(p).value) {
        None => 0,
        Some(Value::Str(s)) => match crate::resp::parse_i64(s.as_slice()) {
            Some(n) => n,
            None => return not_integer(),
        },
        Some(_) => return wrongtype(),
    };
    let Some(new) = current.checked_add(delta) else {
        return Frame::error("ERR increment or decrement would overflow");
    };
    let text = itoa::Buffer::new().format(new).as_bytes().to_vec();
    match pos {
        Some(p) => {
            ctx.db().replace_value(p, Value::string(&text));
        }
        None => {
            ctx.add_value(key, Value::string(&text));
        }
    }
    ctx.dirty(1);
    ctx.notify(notify::STRING, if delta >= 0 { "incrby" } else { "decrby" }, key);
    Frame::Integer(new)
}

fn incr(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    incr_decr(ctx, &args[1], 1)
}

fn decr(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    incr_decr(ctx, &args[1], -1)
}

fn incrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match parse_int(&args[2]) {
        Ok(n) => incr_decr(ctx, &args[1], n),
        Err(e) => e,
    }
}

fn decrby(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match parse_int(&args[2]) {
        Ok(i64::MIN) => Frame::error("ERR decrement would overflow"),
        Ok(n) => incr_decr(ctx, &args[1], -n),
        Err(e) => e,
    }
}

fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    // Redis computes in 80-bit long double and prints with %.17Lf: the shared long-double
    // model gives the same digits (f64 alone would print 0.30000000000000004 for 0.1+0.2).
    use crate::server::types::longdouble::LongDouble;
    let key = &args[1];
    let Some(incr) = LongDouble::parse(&args[2]) else {
        return Frame::error("ERR value is not a valid float");
    };
    let pos = ctx.lookup_write(key);
    let current = match pos.map(|p| &ctx.db().slot(p).value) {
        None => LongDouble::zero(),
        Some(Value::Str(s)) => match LongDouble::parse(s.as_slice()) {
            Some(v) => v,
            None => return Frame::error("ERR value is not a valid float"),
        },
        Some(_) => return wrongtype(),
    };
    let new = current.add(&incr);
    if !new.is_finite() || !incr.is_finite() {
        return Frame::error("ERR increment would produce NaN or Infinity");
    }
    let text = new.to_human_string();
    match pos {
        Some(p) => {
            ctx.db().replace_value(p, Value::string(text.as_bytes()));
        }
        None => {
            ctx.add_value(key, Value::string(text.as_bytes()));
        }
    }
    ctx.dirty(1);
    ctx.notify(notify::STRING, "incrbyfloat", key);
    ctx.propagate_as(vec![Bytes::from_static(b"SET"), key.clone(), Bytes::from(text.clone()), Bytes::from_static(b"KEEPTTL")]);
    Frame::Bulk(Bytes::from(text))
}

fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let key = &args[1];
    let offset = match parse_int(&args[2]) {
        Ok(o) if o >= 0 => o as usize,
        Ok(_) => return Frame::error("ERR offset is out of range"),
        Err(e) => return e,
    };
    let value = &args[3];
    let pos = ctx.lookup_write(key);
    let cur_len = match pos.map(|p| &ctx.db().slot(p).value) {
        None => 0,
        Some(Value::Str(s)) => s.len(),
        Some(_) => return wrongtype(),
    };
    if value.is_empty() {
        return Frame::Integer(cur_len as i64);
    }
    if let Err(e) = check_size(ctx, offset + value.len()) {
        return e;
    }
    let pos = match pos {
        Some(p) => p,
        None => ctx.add_value(key, Value::string(b"")),
    };
    let Value::Str(s) = ctx.value_at(pos) else { return wrongtype() };
    let v = s.make_growable();
    if v.len() < offset + value.len() {
        v.resize(offset + value.len(), 0);
    }
    v[offset..offset + value.len()].copy_from_slice(value);
    let len = v.len();
    ctx.dirty(1);
    ctx.notify(notify::STRING, "setrange", key);
    Frame::Integer(len as i64)
}

fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (start, end) = match (parse_int(&args[2]), parse_int(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return not_integer(),
    };
    let s = match ctx.read_value(&args[1]) {
        None => return Frame::bulk(""),
        Some(Value::Str(s)) => s.as_slice(),
        Some(_) => return wrongtype(),
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Frame::bulk("");
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if end < 0 {
        end = 0;
    }
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Frame::bulk("");
    }
    Frame::Bulk(Bytes::copy_from_slice(&s[start as usize..=end as usize]))
}

fn lcs(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut get_len = false;
    let mut get_idx = false;
    let mut with_match_len = false;
    let mut min_match_len: i64 = 0;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match opt.as_slice() {
            b"IDX" => get_idx = true,
            b"LEN" => get_len = true,
            b"WITHMATCHLEN" => with_match_len = true,
            b"MINMATCHLEN" if i + 1 < args.len() => {
                match parse_int(&args[i + 1]) {
                    Ok(n) => min_match_len = n.max(0),
                    Err(e) => return e,
                }
                i += 1;
            }
            _ => return syntax_error(),
        }
        i += 1;
    }
    let a = match read_string(ctx, &args[1]) {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return Frame::error("ERR The specified keys must contain string values"),
    };
    let b = match read_string(ctx, &args[2]) {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return Frame::error("ERR The specified keys must contain string values"),
    };
    if get_idx && get_len {
        return Frame::error("ERR If you want both the length and indexes, please just use IDX.");
    }
    if (a.len() + 1).saturating_mul(b.len() + 1) > 512 * 1024 * 1024 {
        return Frame::error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let (alen, blen) = (a.len(), b.len());
    let w = blen + 1;
    let mut dp = vec![0u32; (alen + 1) * (blen + 1)];
    for i in 1..=alen {
        for j in 1..=blen {
            dp[i * w + j] = if a[i - 1] == b[j - 1] { dp[(i - 1) * w + j - 1] + 1 } else { dp[(i - 1) * w + j].max(dp[i * w + j - 1]) };
        }
    }
    let total = dp[alen * w + blen] as usize;
    if get_len {
        return Frame::Integer(total as i64);
    }
    // Walk back from the end collecting the LCS and, for IDX, the matching ranges.
    let mut result = vec![0u8; total];
    let mut idx = total;
    let (mut i, mut j) = (alen, blen);
    let mut matches = Vec::new();
    let mut range: Option<(usize, usize, usize, usize)> = None; // a_start, a_end, b_start, b_end
    let emit = |range: (usize, usize, usize, usize), matches: &mut Vec<Frame>| {
        let (a0, a1, b0, b1) = range;
        let len = a1 - a0 + 1;
        if len as i64 >= min_match_len {
            let mut m = vec![
                Frame::Array(vec![Frame::Integer(a0 as i64), Frame::Integer(a1 as i64)]),
                Frame::Array(vec![Frame::Integer(b0 as i64), Frame::Integer(b1 as i64)]),
            ];
            if with_match_len {
                m.push(Frame::Integer(len as i64));
            }
            matches.push(Frame::Array(m));
        }
    };
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            idx -= 1;
            result[idx] = a[i - 1];
            match range {
                Some((a0, a1, b0, b1)) if a0 == i && b0 == j => range = Some((i - 1, a1, j - 1, b1)),
                Some(r) => {
                    emit(r, &mut matches);
                    range = Some((i - 1, i - 1, j - 1, j - 1));
                }
                None => range = Some((i - 1, i - 1, j - 1, j - 1)),
            }
            i -= 1;
            j -= 1;
        } else if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    if let Some(r) = range {
        emit(r, &mut matches);
    }
    if get_idx {
        Frame::Map(vec![(Frame::bulk("matches"), Frame::Array(matches)), (Frame::bulk("len"), Frame::Integer(total as i64))])
    } else {
        Frame::Bulk(Bytes::from(result))
    }
}

#[cfg(test)]
mod tests {
    use crate::server::types::access::testing::{words, TestServer};

    #[test]
    fn getset_propagates_as_set() {
        let mut t = TestServer::new();
        t.run(&["SET", "k", "old"]);
        let o = t.run(&["GETSET", "k", "new"]);
        assert_eq!(words(&o.rewritten.unwrap()), ["SET", "k", "new"]);
    }
}
