//! Glue between the value types and the command context: typed lookups with Redis's
//! WRONGTYPE rule, creating/deleting aggregate keys, shared argument parsers and reply
//! builders used by the list/hash/set/zset/hll/bitmap/sort command families.

use bytes::Bytes;

use super::hash::HashValue;
use super::list::ListValue;
use super::set::SetValue;
use super::stream::StreamValue;
use super::zset::ZSetValue;
use super::EncodingLimits;
use crate::resp::Frame;
use crate::server::command::{wrongtype, Ctx};
use crate::server::value::Value;

/// An aggregate type stored in a [`Value`] variant.
pub trait Typed: Sized + Default {
    fn get(v: &Value) -> Option<&Self>;
    fn get_mut(v: &mut Value) -> Option<&mut Self>;
    fn wrap(self) -> Value;
}

macro_rules! typed {
    ($t:ty, $variant:ident) => {
        impl Typed for $t {
            #[inline]
            fn get(v: &Value) -> Option<&Self> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
            #[inline]
            fn get_mut(v: &mut Value) -> Option<&mut Self> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
            fn wrap(self) -> Value {
                Value::$variant(Box::new(self))
            }
        }
    };
}

typed!(ListValue, List);
typed!(HashValue, Hash);
typed!(SetValue, Set);
typed!(ZSetValue, ZSet);
typed!(StreamValue, Stream);

/// Reads `key` as `T`: Ok(None) when missing, Err(WRONGTYPE) for another type.
pub fn read<'c, T: Typed>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c T>, Frame> {
    match ctx.read_value(key) {
        None => Ok(None),
        Some(v) => T::get(v).map(Some).ok_or_else(wrongtype),
    }
}

/// Reads several keys at once (SINTER, ZUNION...): lazy expiry and statistics first, then
/// shared borrows of every value (positions are re-resolved after all expiries ran).
pub fn read_many<'c, T: Typed>(ctx: &'c mut Ctx, keys: &[Bytes]) -> Result<Vec<Option<&'c T>>, Frame> {
    for k in keys {
        ctx.lookup_read(k);
    }
    let db = &ctx.srv.dbs[ctx.client.db];
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        match db.find(k) {
            None => out.push(None),
            Some(pos) => out.push(Some(T::get(&db.slot(pos).value).ok_or_else(wrongtype)?)),
        }
    }
    Ok(out)
}

/// Like [`read`] but without hit/miss statistics (lookupKeyWrite semantics).
pub fn write<'c, T: Typed>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut T>, Frame> {
    match ctx.lookup_write(key) {
        None => Ok(None),
        Some(pos) => T::get_mut(ctx.value_at(pos)).map(Some).ok_or_else(wrongtype),
    }
}

/// Type check only (for commands that must fail before doing anything).
pub fn check_type<T: Typed>(ctx: &mut Ctx, key: &[u8]) -> Result<bool, Frame> {
    match ctx.lookup_write(key) {
        None => Ok(false),
        Some(pos) => {
            if T::get(ctx.value_at(pos)).is_some() {
                Ok(true)
            } else {
                Err(wrongtype())
            }
        }
    }
}

/// Existing value of `key`, or a new empty one built by `make` and added to the keyspace.
pub fn write_or_create<'c, T: Typed>(ctx: &'c mut Ctx, key: &[u8], make: impl FnOnce() -> T) -> Result<&'c mut T, Frame> {
    let pos = match ctx.lookup_write(key) {
        Some(pos) => pos,
        None => ctx.add_value(key, make().wrap()),
    };
    T::get_mut(ctx.value_at(pos)).ok_or_else(wrongtype)
}

/// Removes `key` (an aggregate that became empty) and emits the `del` notification.
pub fn delete_key(ctx: &mut Ctx, key: &[u8]) {
    let db = ctx.db_index();
    if ctx.srv.dbs[db].remove(key).is_some() {
        ctx.notify(crate::server::notify::GENERIC, "del", key);
    }
}

/// A collection whose members go one by one: hash fields, set and sorted-set members.
pub trait RemoveMembers: Typed {
    fn remove_member(&mut self, member: &[u8]) -> bool;
    fn has_no_members(&self) -> bool;
}

impl RemoveMembers for HashValue {
    fn remove_member(&mut self, member: &[u8]) -> bool {
        self.remove(member)
    }
    fn has_no_members(&self) -> bool {
        self.is_empty()
    }
}

impl RemoveMembers for SetValue {
    fn remove_member(&mut self, member: &[u8]) -> bool {
        self.remove(member)
    }
    fn has_no_members(&self) -> bool {
        self.is_empty()
    }
}

impl RemoveMembers for ZSetValue {
    fn remove_member(&mut self, member: &[u8]) -> bool {
        self.remove(member)
    }
    fn has_no_members(&self) -> bool {
        self.is_empty()
    }
}

/// HDEL / SREM / ZREM: removes `members` from the collection at `key` (stopping once it is
/// empty, as Redis does), then notifies `event`, deletes the emptied key and counts the
/// changes. Replies the number removed.
pub fn remove_members<T: RemoveMembers>(ctx: &mut Ctx, key: &[u8], members: &[Bytes], class: u32, event: &str) -> Frame {
    let (removed, empty) = match write::<T>(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(c)) => {
            let mut n: u64 = 0;
            for m in members {
                if c.remove_member(m) {
                    n += 1;
                    if c.has_no_members() {
                        break;
                    }
                }
            }
            (n, c.has_no_members())
        }
    };
    if removed > 0 {
        ctx.notify(class, event, key);
        if empty {
            delete_key(ctx, key);
        }
        ctx.dirty(removed);
    }
    Frame::Integer(removed as i64)
}

/// Stores `value` at `key` replacing anything (and its TTL), as the *STORE commands do.
pub fn store(ctx: &mut Ctx, key: &[u8], value: Value) {
    ctx.set_value(key, value, false);
}

/// The encoding thresholds in force (kept current by `ServerState::refresh_limits`).
pub fn limits(ctx: &Ctx) -> EncodingLimits {
    ctx.srv.limits.encoding
}

// ---- argument parsing ----

pub fn err(msg: &str) -> Frame {
    Frame::error(msg.to_string())
}

/// `getLongLongFromObjectOrReply`: "ERR value is not an integer or out of range".
pub fn int_arg(b: &[u8]) -> Result<i64, Frame> {
    // Redis goes through `string2ll`: only the canonical decimal form ("+1", "01" rejected).
    super::parse_canonical_i64(b).ok_or_else(|| err("ERR value is not an integer or out of range"))
}

/// `getPositiveLongFromObjectOrReply` with a custom message. As in Redis, the message is
/// also the reply to a value that is not an integer at all (`LPOP l x`).
pub fn positive_arg(b: &[u8], msg: &str) -> Result<i64, Frame> {
    range_arg(b, 0, i64::MAX, msg)
}

/// `getRangeLongFromObjectOrReply` with a message supplied by the caller, used for both a
/// value out of range and a value that does not parse (Redis passes it down to
/// `getLongLongFromObjectOrReply`).
pub fn range_arg(b: &[u8], min: i64, max: i64, msg: &str) -> Result<i64, Frame> {
    match super::parse_canonical_i64(b) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(err(msg)),
    }
}

/// `getRangeLongFromObjectOrReply` without a custom message (Redis's wording, typo included).
pub fn range_arg_default(b: &[u8], min: i64, max: i64) -> Result<i64, Frame> {
    let v = int_arg(b)?;
    if v < min || v > max {
        return Err(err(&format!("ERR value is out of range, value must between {min} and {max}")));
    }
    Ok(v)
}

/// `getDoubleFromObjectOrReply`: "ERR value is not a valid float".
pub fn float_arg(b: &[u8]) -> Result<f64, Frame> {
    super::parse_redis_double(b).ok_or_else(|| err("ERR value is not a valid float"))
}

/// Blocking timeout (seconds as a double, Redis 6+) -> absolute deadline in ms; None = 0 =
/// block forever. Errors as `getTimeoutFromObjectOrReply`.
pub fn timeout_arg(ctx: &Ctx, b: &[u8]) -> Result<Option<i64>, Frame> {
    let secs = super::parse_redis_double(b).ok_or_else(|| err("ERR timeout is not a float or out of range"))?;
    // `(long long) ceill(secs * 1000)`: a huge or infinite value converts to LLONG_MIN on
    // x86-64, hence "negative"; a tiny negative value rounds to 0 = block forever.
    let ms_f = (secs * 1000.0).ceil();
    let ms = if ms_f.is_finite() && ms_f < 9.2e18 && ms_f > -9.2e18 { ms_f as i64 } else { i64::MIN };
    if ms < 0 {
        return Err(err("ERR timeout is negative"));
    }
    if ms == 0 {
        return Ok(None);
    }
    Ok(Some(ctx.now_ms.saturating_add(ms)))
}

/// SCAN-family options after the cursor: `MATCH pattern`, `COUNT n`.
pub struct ScanOpts {
    pub pattern: Option<Bytes>,
    pub count: usize,
}

pub fn parse_cursor(b: &[u8]) -> Result<u64, Frame> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| err("ERR invalid cursor"))
}

pub fn scan_opts(args: &[Bytes]) -> Result<ScanOpts, Frame> {
    let mut o = ScanOpts { pattern: None, count: 10 };
    let mut i = 0;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(err("ERR syntax error"));
        }
        let opt = &args[i];
        if opt.eq_ignore_ascii_case(b"count") {
            let n = int_arg(&args[i + 1])?;
            if n < 1 {
                return Err(err("ERR syntax error"));
            }
            o.count = n as usize;
        } else if opt.eq_ignore_ascii_case(b"match") {
            let p = args[i + 1].clone();
            o.pattern = if p.as_ref() == b"*" { None } else { Some(p) };
        } else {
            return Err(err("ERR syntax error"));
        }
        i += 2;
    }
    Ok(o)
}

pub fn scan_matches(opts: &ScanOpts, item: &[u8]) -> bool {
    match &opts.pattern {
        None => true,
        Some(p) => super::glob::string_match(p, item, false),
    }
}

/// `[cursor, [items...]]`.
pub fn scan_reply(cursor: u64, items: Vec<Frame>) -> Frame {
    Frame::Array(vec![Frame::Bulk(Bytes::from(cursor.to_string())), Frame::Array(items)])
}

pub fn bulk(b: &Bytes) -> Frame {
    Frame::Bulk(b.clone())
}

/// A bulk reply copied from bytes held inside a value (a packed hash).
pub fn bulk_copy(b: &[u8]) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(b))
}

pub fn bulks<'a>(it: impl IntoIterator<Item = &'a Bytes>) -> Frame {
    Frame::Array(it.into_iter().map(bulk).collect())
}

pub fn owned_bulks(it: impl IntoIterator<Item = Bytes>) -> Frame {
    Frame::Array(it.into_iter().map(Frame::Bulk).collect())
}

/// Redis's `numkeys` argument ("ERR numkeys should be greater than 0" etc. are per command).
pub fn numkeys_arg(b: &[u8], msg_nonpositive: &str) -> Result<usize, Frame> {
    let n = int_arg(b)?;
    if n <= 0 {
        return Err(err(msg_nonpositive));
    }
    Ok(n as usize)
}

/// A server state and one client for calling command handlers directly in unit tests,
/// with access to what they asked to propagate.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::server::client::ClientState;
    use crate::server::command::CommandTable;
    use crate::server::state::ServerState;
    use std::sync::Arc;

    pub struct TestServer {
        pub srv: ServerState,
        pub client: ClientState,
    }

    /// What one command did: its reply and its propagation requests.
    pub struct Outcome {
        pub reply: Frame,
        pub rewritten: Option<Vec<Bytes>>,
        pub also: Vec<Vec<Bytes>>,
        pub prevented: bool,
        pub blocked: bool,
    }

    impl TestServer {
        pub fn new() -> Self {
            let cfg = crate::server::config::load(None, "").expect("default config");
            let table = Arc::new(CommandTable::build(crate::server::commands::all(), &[]));
            let srv = ServerState::new(cfg, table);
            let client = ClientState::new(1, "127.0.0.1:1".into(), "127.0.0.1:2".into(), 0, true);
            TestServer { srv, client }
        }

        pub fn run(&mut self, words: &[&str]) -> Outcome {
            let args: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
            let spec = self.srv.commands.lookup(&args[0]).cloned().expect("known command");
            let mut ctx = Ctx::new(&mut self.srv, &mut self.client, crate::server::now_ms());
            let reply = (spec.handler)(&mut ctx, &args);
            Outcome {
                reply,
                rewritten: ctx.rewritten.take(),
                also: ctx.also.drain(..).map(|(_, a)| a).collect(),
                prevented: ctx.prevent_propagation,
                blocked: ctx.block_request.is_some(),
            }
        }
    }

    pub fn words(v: &[Bytes]) -> Vec<String> {
        v.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }
}
