//! Between the server's keyspace ([`Value`], [`Db`]) and the RDB model ([`RdbValue`]):
//! a cheap point-in-time copy of every database for background saves and full syncs, and
//! inserting loaded keys.
//!
//! The aggregate conversions use only the types' public API (`iter()`, `from_*`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::host::DatasetSnapshot;
use super::rdb::{RdbEntry, RdbValue, RdbWriter};
use crate::server::evict;
use crate::server::keyspace::{CapturedKey, Db};
use crate::server::state::{EvictionPolicy, ServerState, Shared};
use crate::server::types::{hash::HashValue, list::ListValue, set::SetValue, zset::ZSetValue, EncodingLimits};
use crate::server::value::{SmallBytes, Value};

pub fn value_to_rdb(v: &Value) -> RdbValue {
    match v {
        Value::Str(s) => RdbValue::String(Bytes::copy_from_slice(s.as_slice())),
        Value::List(l) => RdbValue::List(l.iter().cloned().collect()),
        Value::Hash(h) => RdbValue::Hash(h.iter().map(|(f, v)| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v))).collect()),
        Value::Set(s) => RdbValue::Set(s.iter().collect()),
        Value::ZSet(z) => RdbValue::ZSet(z.iter().map(|e| (e.member_bytes(), e.score)).collect()),
        Value::Stream(s) => RdbValue::Stream(s.clone()),
    }
}

/// Builds a value; encodings follow the server's configured thresholds, as Redis's
/// rdbLoadObject converts by `server.*_max_*` (a zset saved as a skiplist stays one under
/// `zset-max-listpack-entries 0`).
pub fn rdb_to_value(v: RdbValue, limits: &EncodingLimits) -> Value {
    let limits = *limits;
    match v {
        RdbValue::String(s) => Value::string(&s),
        RdbValue::List(items) => Value::List(Box::new(ListValue::from_vec(items))),
        RdbValue::Hash(pairs) => {
            let mut h = HashValue::new();
            for (f, v) in pairs {
                h.set(f, v, &limits);
            }
            Value::Hash(Box::new(h))
        }
        RdbValue::Set(members) => Value::Set(Box::new(SetValue::from_members(members, &limits))),
        RdbValue::ZSet(mut pairs) => {
            // from_pairs wants distinct members: keep the last score of a duplicate.
            let mut seen = std::collections::HashSet::new();
            pairs.reverse();
            pairs.retain(|(m, _)| seen.insert(m.clone()));
            Value::ZSet(Box::new(ZSetValue::from_pairs(pairs, &limits)))
        }
        RdbValue::Stream(s) => Value::Stream(s),
    }
}

/// One database's keys, copied: key, value, expiry, LRU/LFU word.
struct DbCopy {
    index: u32,
    keys: Vec<(SmallBytes, Value, Option<i64>, u32)>,
    expires: u64,
}

/// Which access information an RDB carries, from `maxmemory-policy` (rdbSaveKeyValuePair:
/// IDLE under an LRU policy, FREQ under an LFU one, nothing otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessInfo {
    None,
    /// LRU idle seconds, relative to this LRU clock.
    Idle { clock: u32 },
    /// LFU counter, decayed with this `lfu-decay-time`.
    Freq { decay_time: u32 },
}

impl AccessInfo {
    pub fn of(srv: &ServerState) -> AccessInfo {
        match srv.limits.policy {
            EvictionPolicy::AllkeysLru | EvictionPolicy::VolatileLru => AccessInfo::Idle { clock: srv.lru_clock },
            EvictionPolicy::AllkeysLfu | EvictionPolicy::VolatileLfu => AccessInfo::Freq { decay_time: srv.limits.lfu_decay_time },
            _ => AccessInfo::None,
        }
    }

    /// (IDLE seconds, FREQ counter) to write for a key with this LRU/LFU word.
    pub fn for_word(self, word: u32) -> (Option<u64>, Option<u8>) {
        match self {
            AccessInfo::None => (None, None),
            AccessInfo::Idle { clock } => (Some(evict::idle_secs(word, clock)), None),
            AccessInfo::Freq { decay_time } => (None, Some(evict::lfu_decayed(word, decay_time).min(255) as u8)),
        }
    }
}

/// What a load needs to set the LRU/LFU word of the keys it creates.
#[derive(Debug, Clone, Copy)]
pub struct LoadAccess {
    pub lfu: bool,
    pub lru_clock: u32,
    /// The encoding thresholds loaded values are built with.
    pub encoding: EncodingLimits,
}

impl LoadAccess {
    pub fn of(srv: &ServerState) -> LoadAccess {
        LoadAccess { lfu: srv.limits.policy.is_lfu(), lru_clock: srv.lru_clock, encoding: srv.limits.encoding }
    }

    /// The LRU/LFU word of a key loaded (RDB, RESTORE) with optional IDLE / FREQ
    /// information, as Redis's `objectSetLRUOrLFU`: FREQ applies under an LFU policy, IDLE
    /// under any other one; without the matching information the key counts as just
    /// accessed.
    pub fn word(self, idle_secs: Option<u64>, lfu_freq: Option<u8>) -> u32 {
        const LRU_CLOCK_MAX: i64 = (1 << 24) - 1;
        if self.lfu {
            let fresh = evict::lfu_initial();
            match lfu_freq {
                Some(freq) => (fresh & !0xff) | u32::from(freq),
                None => fresh,
            }
        } else {
            match idle_secs {
                Some(idle) => {
                    let clock = i64::from(self.lru_clock);
                    let mut at = clock - (idle.min(LRU_CLOCK_MAX as u64) as i64);
                    if at < 0 {
                        at += LRU_CLOCK_MAX;
                    }
                    at as u32
                }
                None => self.lru_clock,
            }
        }
    }
}

/// [`LoadAccess::word`] with the server's current policy and clock.
pub fn loaded_access_word(srv: &ServerState, idle_secs: Option<u64>, lfu_freq: Option<u8>) -> u32 {
    LoadAccess::of(srv).word(idle_secs, lfu_freq)
}

/// A point-in-time copy of the keyspace, taken under the server lock in one pass
/// (keys and small strings are inline, so this is a memcpy-like walk of the slot arrays)
/// and serialized later on another thread while clients keep running.
pub struct KeyspaceSnapshot {
    /// FUNCTION libraries' code (Redis writes them before the databases).
    functions: Vec<Bytes>,
    dbs: Vec<DbCopy>,
    total: u64,
    access: AccessInfo,
}

impl KeyspaceSnapshot {
    pub fn capture(srv: &ServerState) -> KeyspaceSnapshot {
        let mut dbs = Vec::new();
        let mut total = 0;
        for (i, db) in srv.dbs.iter().enumerate() {
            if db.is_empty() {
                continue;
            }
            let mut keys = Vec::with_capacity(db.len());
            for (pos, slot) in db.iter().enumerate() {
                keys.push((slot.key.clone(), slot.value.clone(), db.expiry_of(pos), slot.lru));
            }
            total += keys.len() as u64;
            dbs.push(DbCopy { index: i as u32, keys, expires: db.expires_len() as u64 });
        }
        KeyspaceSnapshot { functions: srv.scripting.functions.codes(), dbs, total, access: AccessInfo::of(srv) }
    }
}

fn write_key(w: &mut RdbWriter<&mut dyn Write>, access: AccessInfo, key: &SmallBytes, value: &Value, expire: Option<i64>, word: u32) -> io::Result<()> {
    let (idle, freq) = access.for_word(word);
    match value {
        Value::Str(s) => w.write_string_key_value(key.as_slice(), s.as_slice(), expire, idle, freq),
        other => w.write_key_value(key.as_slice(), &value_to_rdb(other), expire, idle, freq),
    }
}

fn write_functions(w: &mut RdbWriter<&mut dyn Write>, functions: &[Bytes]) -> io::Result<()> {
    for code in functions {
        w.write_function(code)?;
    }
    Ok(())
}

impl DatasetSnapshot for KeyspaceSnapshot {
    fn write_functions_only(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()> {
        write_functions(w, &self.functions)
    }

    fn write_dbs(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()> {
        write_functions(w, &self.functions)?;
        for db in &self.dbs {
            w.select_db(db.index)?;
            w.resize_db(db.keys.len() as u64, db.expires)?;
            for (n, (key, value, expire, word)) in db.keys.iter().enumerate() {
                write_key(w, self.access, key, value, *expire, *word)?;
                // A background job shares the machine with the server: step aside now and
                // then so client requests are not queued behind a long run of encoding.
                if n % 4096 == 4095 {
                    std::thread::yield_now();
                }
            }
        }
        Ok(())
    }

    fn key_count(&self) -> u64 {
        self.total
    }
}

/// Slots copied per capture step (one visit to the server lock): about 50 µs of work, so
/// a client request waits at most that long behind it.
const CAPTURE_STEP: usize = 1024;

/// A point-in-time snapshot taken without stopping the server for a whole copy: starting
/// it only flips a mark per database ([`Db::start_capture`]); the copy then goes one small
/// step at a time, and commands copy a key before changing it. The steps run as a task on
/// the server's own runtime, between client requests (as Redis does its incremental
/// work in the main thread), so the writer thread never competes with clients for the
/// lock; they are paced by a small channel to the writer.
pub struct IncrementalSnapshot {
    functions: Vec<Bytes>,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Handle>,
    /// (database index at the start, capture id, keys, keys with an expiry)
    dbs: Vec<(u32, u64, u64, u64)>,
    total: u64,
    access: AccessInfo,
    /// Keeps the captures alive; dropping the snapshot abandons what is left of them.
    owner: Arc<()>,
}

impl IncrementalSnapshot {
    /// Starts capturing every non-empty database, under the server lock held by the
    /// caller. None if a capture is already running (the caller copies in one go).
    pub fn start(srv: &mut ServerState, shared: Arc<Shared>) -> Option<IncrementalSnapshot> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        if srv.dbs.iter().any(|db| db.capture_running()) {
            return None;
        }
        let owner = Arc::new(());
        let mut dbs = Vec::new();
        let mut total = 0;
        for (i, db) in srv.dbs.iter_mut().enumerate() {
            if db.is_empty() {
                continue;
            }
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            if !db.start_capture(id, &owner) {
                return None;
            }
            total += db.len() as u64;
            dbs.push((i as u32, id, db.len() as u64, db.expires_len() as u64));
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        Some(IncrementalSnapshot { functions: srv.scripting.functions.codes(), shared, runtime, dbs, total, access: AccessInfo::of(srv), owner })
    }

    /// One step of capture `id` under the server lock (None: the database went away).
    fn step(srv: &mut ServerState, id: u64) -> Option<(Vec<CapturedKey>, bool)> {
        srv.dbs.iter_mut().find_map(|db| db.capture_step(id, CAPTURE_STEP))
    }

    /// Runs the steps on the server runtime; `each` gets every batch in order.
    fn steps_on_runtime(&self, runtime: &tokio::runtime::Handle, each: &mut dyn FnMut(usize, Vec<CapturedKey>) -> io::Result<()>) -> io::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<(usize, Vec<CapturedKey>, bool)>>(4);
        let shared = self.shared.clone();
        let ids: Vec<u64> = self.dbs.iter().map(|d| d.1).collect();
        runtime.spawn(async move {
            for (part, id) in ids.into_iter().enumerate() {
                loop {
                    let step = Self::step(&mut *shared.lock_async().await, id);
                    let done = step.as_ref().is_none_or(|s| s.1);
                    let lost = step.is_none();
                    if tx.send(step.map(|(batch, done)| (part, batch, done))).await.is_err() || lost {
                        return;
                    }
                    if done {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut finished = 0;
        while finished < self.dbs.len() {
            match rx.blocking_recv() {
                Some(Some((part, batch, done))) => {
                    each(part, batch)?;
                    if done {
                        finished += 1;
                    }
                }
                _ => return Err(io::Error::other("the database being saved went away")),
            }
        }
        Ok(())
    }
}

impl DatasetSnapshot for IncrementalSnapshot {
    fn write_functions_only(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()> {
        write_functions(w, &self.functions)
    }

    fn write_dbs(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()> {
        write_functions(w, &self.functions)?;
        let _owner = &self.owner;
        let access = self.access;
        let mut current = None;
        let mut each = |part: usize, batch: Vec<CapturedKey>| -> io::Result<()> {
            if current != Some(part) {
                let (index, _, keys, expires) = self.dbs[part];
                w.select_db(index)?;
                w.resize_db(keys, expires)?;
                current = Some(part);
            }
            for k in &batch {
                write_key(w, access, &k.key, &k.value, k.expire, k.lru)?;
            }
            Ok(())
        };
        // Called on a runtime thread (a test, a tool) the steps cannot wait for that
        // runtime: take them here.
        match &self.runtime {
            Some(rt) if tokio::runtime::Handle::try_current().is_err() => self.steps_on_runtime(rt, &mut each),
            _ => {
                for (part, &(_, id, _, _)) in self.dbs.iter().enumerate() {
                    loop {
                        // SWAPDB may have moved the database: it is found by its capture
                        let Some((batch, done)) = Self::step(&mut *self.shared.state.lock(), id) else {
                            return Err(io::Error::other("the database being saved went away"));
                        };
                        each(part, batch)?;
                        if done {
                            break;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn key_count(&self) -> u64 {
        self.total
    }
}

/// Inserts loaded keys into `db`. Keys already expired are dropped unless `keep_expired`
/// (replicas keep them: their master will send the DEL). Returns (loaded, expired).
pub fn load_entries(srv: &mut ServerState, db: u32, entries: Vec<RdbEntry>, keep_expired: bool, now_ms: i64) -> (u64, u64) {
    let access = LoadAccess::of(srv);
    load_entries_into(&mut srv.dbs, db, entries, keep_expired, now_ms, access)
}

/// [`load_entries`] into a set of databases that need not be the server's (a dataset
/// being built aside).
pub fn load_entries_into(dbs: &mut [Db], db: u32, entries: Vec<RdbEntry>, keep_expired: bool, now_ms: i64, access: LoadAccess) -> (u64, u64) {
    let db_count = dbs.len();
    let Some(target) = dbs.get_mut(db as usize) else {
        warning!("RDB/AOF data for database {db} ignored: only {db_count} databases configured");
        return (0, 0);
    };
    let (mut loaded, mut expired) = (0, 0);
    for e in entries {
        if let Some(when) = e.expire_ms {
            if when <= now_ms && !keep_expired {
                expired += 1;
                continue;
            }
        }
        let pos = target.set(&e.key, rdb_to_value(e.value, &access.encoding), false, access.word(e.idle_secs, e.lfu_freq));
        if let Some(when) = e.expire_ms {
            target.set_expiry(pos, when);
        }
        loaded += 1;
    }
    (loaded, expired)
}
