//! The command table and the execution context.
//!
//! ONE table of [`CommandSpec`] drives dispatch, arity checks, COMMAND INFO/DOCS/LIST/
//! COUNT/GETKEYS, key extraction (WATCH invalidation, memory accounting), and renaming.
//!
//! ## Adding a command family
//! Each file in `src/server/commands/` exposes `pub fn commands() -> Vec<CommandSpec>`;
//! `commands::all()` collects them (add your module there). A spec is built with
//! [`cmd`]: `cmd("get", 2, "readonly fast", 1, 1, 1, "read string fast", get)`
//! followed by `.group("string").since("1.0.0").summary("...")`, `.subs(vec![...])` for
//! container commands (subcommand specs are named `"config|get"`), `.keys_fn(f)` for
//! commands whose keys move (ZUNIONSTORE, BLMPOP...), `.tips(..)`, `.key_flags(..)`.
//!
//! ## Writing a handler
//! `fn(&mut Ctx, &[Bytes]) -> Frame`; `args[0]` is the command name. Use the `Ctx`
//! helpers for keys (`lookup_read`, `lookup_write`, `set_value`, `delete`...): they do
//! lazy expiry, LRU/LFU updates and hit/miss stats. After a change call `ctx.dirty(n)`:
//! the dispatcher then propagates the command (to replication/AOF) and invalidates WATCH
//! on its keys. Use `ctx.propagate_as(argv)` to propagate a different form (SET EX ->
//! SET PXAT, BLPOP -> LPOP), `ctx.also_propagate(argv)` for extra commands.
//! A write that may serve blocked clients calls `ctx.signal_key_ready(key)`. A
//! blocking command that cannot be served returns `ctx.block(keys, timeout, reply)`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::client::ClientState;
use super::keyspace::Db;
use super::state::{BlockedClient, ServerState};
use super::value::Value;
use crate::resp::{Frame, ProtocolVersion};

pub type Handler = fn(&mut Ctx, &[Bytes]) -> Frame;
pub type KeysFn = fn(&[Bytes]) -> Vec<usize>;

pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const MOVABLEKEYS: u32 = 1 << 15;
    pub const ALLOW_BUSY: u32 = 1 << 16;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 17;
    pub const SENTINEL: u32 = 1 << 18;
    pub const ONLY_SENTINEL: u32 = 1 << 19;
    pub const NO_ASYNC_LOADING: u32 = 1 << 20;

    pub const NAMES: &[(&str, u32)] = &[
        ("write", WRITE),
        ("readonly", READONLY),
        ("denyoom", DENYOOM),
        ("admin", ADMIN),
        ("pubsub", PUBSUB),
        ("noscript", NOSCRIPT),
        ("blocking", BLOCKING),
        ("loading", LOADING),
        ("stale", STALE),
        ("skip_monitor", SKIP_MONITOR),
        ("skip_slowlog", SKIP_SLOWLOG),
        ("fast", FAST),
        ("no_auth", NO_AUTH),
        ("may_replicate", MAY_REPLICATE),
        ("sentinel", SENTINEL),
        ("only_sentinel", ONLY_SENTINEL),
        ("no_mandatory_keys", NO_MANDATORY_KEYS),
        ("no_async_loading", NO_ASYNC_LOADING),
        ("no_multi", NO_MULTI),
        ("movablekeys", MOVABLEKEYS),
        ("allow_busy", ALLOW_BUSY),
    ];
}

/// One command (or subcommand) of the table.
pub struct CommandSpec {
    /// Lowercase; subcommands are `"parent|sub"`.
    pub name: String,
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// ACL categories without '@' (`read`, `string`, `fast`...).
    pub acl: Vec<&'static str>,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub tips: Vec<&'static str>,
    pub key_flags: Vec<&'static str>,
    pub handler: Handler,
    pub keys_fn: Option<KeysFn>,
    pub subcommands: Vec<Arc<CommandSpec>>,
    /// INFO commandstats counters (kept in the spec, as Redis keeps them in its table).
    pub stats: CommandStats,
}

#[derive(Default, Debug)]
pub struct CommandStats {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    /// `latency-tracking`: LATENCY HISTOGRAM and INFO latencystats.
    pub latency: super::commands::latency::LatencyHistogram,
}

impl CommandStats {
    pub fn reset(&self) {
        for c in [&self.calls, &self.usec, &self.rejected, &self.failed] {
            c.store(0, Ordering::Relaxed);
        }
        self.latency.reset();
    }
}

/// Builds a spec: `flags` and `acl` are space-separated lists.
pub fn cmd(name: &str, arity: i32, flag_list: &str, first: i32, last: i32, step: i32, acl: &'static str, handler: Handler) -> CommandSpec {
    let mut f = 0;
    for word in flag_list.split_whitespace() {
        match flags::NAMES.iter().find(|(n, _)| *n == word) {
            Some((_, bit)) => f |= bit,
            None => panic!("unknown command flag {word} for {name}"),
        }
    }
    CommandSpec {
        name: name.to_ascii_lowercase(),
        arity,
        flags: f,
        first_key: first,
        last_key: last,
        step,
        acl: acl.split_whitespace().collect(),
        group: "generic",
        since: "1.0.0",
        summary: "",
        tips: Vec::new(),
        key_flags: Vec::new(),
        handler,
        keys_fn: None,
        subcommands: Vec::new(),
        stats: CommandStats::default(),
    }
}

impl CommandSpec {
    /// Sets the group of the command and of its subcommands that have none of their own.
    pub fn group(mut self, g: &'static str) -> Self {
        self.group = g;
        for sub in &mut self.subcommands {
            if let Some(s) = Arc::get_mut(sub) {
                if s.group == "generic" {
                    s.group = g;
                }
            }
        }
        self
    }
    pub fn since(mut self, s: &'static str) -> Self {
        self.since = s;
        self
    }
    pub fn summary(mut self, s: &'static str) -> Self {
        self.summary = s;
        self
    }
    pub fn tips(mut self, t: &[&'static str]) -> Self {
        self.tips = t.to_vec();
        self
    }
    pub fn key_flags(mut self, k: &[&'static str]) -> Self {
        self.key_flags = k.to_vec();
        self
    }
    pub fn keys_fn(mut self, f: KeysFn) -> Self {
        self.keys_fn = Some(f);
        self.flags |= flags::MOVABLEKEYS;
        self
    }
    pub fn subs(mut self, subs: Vec<CommandSpec>) -> Self {
        let parent = self.name.clone();
        self.subcommands = subs
            .into_iter()
            .map(|mut s| {
                if !s.name.contains('|') {
                    s.name = format!("{parent}|{}", s.name);
                }
                if s.group == "generic" {
                    s.group = self.group;
                }
                Arc::new(s)
            })
            .collect();
        self
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn check_arity(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Indices of the key arguments in `args`.
    pub fn key_indices(&self, args: &[Bytes]) -> Vec<usize> {
        if let Some(f) = self.keys_fn {
            return f(args);
        }
        if self.first_key <= 0 {
            return Vec::new();
        }
        let argc = args.len() as i32;
        let last = if self.last_key < 0 { argc + self.last_key } else { self.last_key.min(argc - 1) };
        let step = self.step.max(1);
        let mut out = Vec::new();
        let mut i = self.first_key;
        while i <= last && i < argc {
            out.push(i as usize);
            i += step;
        }
        out
    }

    /// The name as shown to users (`config|get`).
    pub fn full_name(&self) -> &str {
        &self.name
    }

    /// COMMAND INFO's reply for this command.
    pub fn info_frame(&self) -> Frame {
        // may_replicate is "hidden on purpose" by Redis 7.0.
        let flag_frames: Vec<Frame> = flags::NAMES
            .iter()
            .filter(|(_, bit)| self.flags & bit != 0 && *bit != flags::MAY_REPLICATE)
            .map(|(n, _)| Frame::Simple(n.to_string()))
            .collect();
        let acl: Vec<Frame> = self.acl.iter().map(|c| Frame::Simple(format!("@{c}"))).collect();
        let tips: Vec<Frame> = self.tips.iter().map(|t| Frame::bulk(t.to_string())).collect();
        let mut key_specs = Vec::new();
        if self.first_key > 0 {
            let kf: Vec<&str> = if !self.key_flags.is_empty() {
                self.key_flags.clone()
            } else if self.has(flags::WRITE) {
                vec!["RW", "update"]
            } else {
                vec!["RO", "access"]
            };
            let lastkey = if self.last_key < 0 { self.last_key as i64 } else { (self.last_key - self.first_key) as i64 };
            key_specs.push(Frame::Map(vec![
                (Frame::bulk("flags"), Frame::Set(kf.iter().map(|f| Frame::Simple(f.to_string())).collect())),
                (
                    Frame::bulk("begin_search"),
                    Frame::Map(vec![
                        (Frame::bulk("type"), Frame::bulk("index")),
                        (Frame::bulk("spec"), Frame::Map(vec![(Frame::bulk("index"), Frame::Integer(self.first_key as i64))])),
                    ]),
                ),
                (
                    Frame::bulk("find_keys"),
                    Frame::Map(vec![
                        (Frame::bulk("type"), Frame::bulk("range")),
                        (
                            Frame::bulk("spec"),
                            Frame::Map(vec![
                                (Frame::bulk("lastkey"), Frame::Integer(lastkey)),
                                (Frame::bulk("keystep"), Frame::Integer(self.step as i64)),
                                (Frame::bulk("limit"), Frame::Integer(0)),
                            ]),
                        ),
                    ]),
                ),
            ]));
        }
        Frame::Array(vec![
            Frame::bulk(self.name.clone()),
            Frame::Integer(self.arity as i64),
            Frame::Set(flag_frames),
            Frame::Integer(self.first_key as i64),
            Frame::Integer(self.last_key as i64),
            Frame::Integer(self.step as i64),
            Frame::Set(acl),
            // Tips and key specs as Redis states them when it has the command (generated
            // data), else derived from the table.
            match super::commands::docs::find_info(&self.name) {
                Some(info) => Frame::Set(info.tips.iter().map(|t| Frame::bulk(*t)).collect()),
                None => Frame::Set(tips),
            },
            // Redis sends the key specs as a set, and "no subcommands" as an empty set.
            match super::commands::docs::find_info(&self.name) {
                Some(info) => info.key_specs.frame(),
                None => Frame::Set(key_specs),
            },
            if self.subcommands.is_empty() { Frame::Set(Vec::new()) } else { Frame::Array(self.subcommands.iter().map(|s| s.info_frame()).collect()) },
        ])
    }

    /// COMMAND DOCS's reply for this command (see `commands::docs`).
    pub fn docs_frame(&self) -> Frame {
        super::commands::docs::docs_frame(self)
    }
}

/// Name -> spec, after `rename-command`.
pub struct CommandTable {
    map: HashMap<Vec<u8>, Arc<CommandSpec>>,
    /// Every spec by original name (COMMAND INFO/DOCS list the original names).
    pub all: Vec<Arc<CommandSpec>>,
}

impl CommandTable {
    pub fn build(specs: Vec<CommandSpec>, renames: &[(String, String)]) -> Self {
        let all: Vec<Arc<CommandSpec>> = specs.into_iter().map(Arc::new).collect();
        let mut map: HashMap<Vec<u8>, Arc<CommandSpec>> = all.iter().map(|s| (s.name.as_bytes().to_vec(), s.clone())).collect();
        for (from, to) in renames {
            if let Some(spec) = map.remove(from.as_bytes()) {
                if !to.is_empty() {
                    map.insert(to.to_ascii_lowercase().into_bytes(), spec);
                }
            }
        }
        CommandTable { map, all }
    }

    /// Case-insensitive lookup of a (possibly renamed) command name.
    pub fn lookup(&self, name: &[u8]) -> Option<&Arc<CommandSpec>> {
        if name.len() <= 32 {
            let mut buf = [0u8; 32];
            let lower = &mut buf[..name.len()];
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            self.map.get(&lower[..])
        } else {
            self.map.get(&name.to_ascii_lowercase())
        }
    }

    /// Lookup by original name (COMMAND INFO, GETKEYS).
    pub fn original(&self, name: &[u8]) -> Option<&Arc<CommandSpec>> {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.all.iter().find(|s| s.name == lower)
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// A request to block the current client (see [`Ctx::block`]).
#[derive(Debug)]
pub struct BlockRequest {
    pub keys: Vec<Bytes>,
    pub timeout_ms: Option<i64>,
    pub timeout_reply: Frame,
    /// The arguments to run again when a key is ready, if not the command as received
    /// (XREAD's `$` becomes the ID it stood for when the client blocked).
    pub rerun_args: Option<Vec<Bytes>>,
}

/// What a handler sees: the server, the calling client, the time, and the hooks.
pub struct Ctx<'a> {
    pub srv: &'a mut ServerState,
    pub client: &'a mut ClientState,
    /// Unix time in ms, fixed for the whole command (Redis's `server.mstime` cache).
    pub now_ms: i64,
    /// Set by `block()`.
    pub block_request: Option<BlockRequest>,
    pub(crate) rewritten: Option<Vec<Bytes>>,
    pub(crate) also: Vec<(usize, Vec<Bytes>)>,
    pub(crate) prevent_propagation: bool,
    /// Keys of the command that a write left as they were (see [`Ctx::left_unchanged`]).
    pub(crate) unchanged_keys: Vec<Bytes>,
    /// True while running inside EXEC (blocking commands must not block).
    pub in_exec: bool,
    /// True while re-running a blocked command to serve it.
    pub serving_blocked: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(srv: &'a mut ServerState, client: &'a mut ClientState, now_ms: i64) -> Self {
        Ctx { srv, client, now_ms, block_request: None, rewritten: None, also: Vec::new(), prevent_propagation: false, unchanged_keys: Vec::new(), in_exec: false, serving_blocked: false }
    }

    pub fn db_index(&self) -> usize {
        self.client.db
    }

    #[inline]
    pub fn db(&mut self) -> &mut Db {
        &mut self.srv.dbs[self.client.db]
    }

    pub fn resp3(&self) -> bool {
        self.client.reply_proto.unwrap_or(self.client.proto) == ProtocolVersion::Resp3
    }

    /// An absolute expiry time given to a write (SET PXAT, EXPIREAT, GETEX...) that is already
    /// past: the key is deleted at once, except when the write comes from our master, which
    /// sends its own DEL when the key expires there (Redis's checkAlreadyExpired). A late
    /// replica deleting it itself would lose a later PERSIST or SET KEEPTTL of the master.
    pub fn already_expired(&self, when: i64) -> bool {
        when <= self.now_ms && !self.client.is_master_link
    }

    /// Deletes `key` at `pos` of `db` if its TTL passed. True if it was expired.
    fn expire_if_needed(&mut self, db: usize, pos: usize) -> bool {
        self.expire_if_needed_for(db, pos, false)
    }

    /// [`Self::expire_if_needed`]; `for_write` is a lookup for writing, which deletes the
    /// expired key even on a writable replica (Redis's LOOKUP_WRITE and
    /// EXPIRE_FORCE_DELETE_EXPIRED), so the write recreates the key from scratch.
    fn expire_if_needed_for(&mut self, db: usize, pos: usize, for_write: bool) -> bool {
        let Some(when) = self.srv.dbs[db].expiry_of(pos) else {
            return false;
        };
        if when > self.now_ms {
            return false;
        }
        let writable_replica_write = for_write && !self.srv.limits.replica_read_only;
        if self.srv.repl.is_replica() && !self.client.is_master_link && !writable_replica_write {
            // Replicas wait for the master's DEL but report the key as missing.
            return true;
        }
        if self.client.is_master_link {
            return false;
        }
        let slot = self.srv.dbs[db].remove_at(pos);
        self.srv.stats.expired_keys += 1;
        let key = Bytes::copy_from_slice(slot.key.as_slice());
        self.srv.touch_watched_key(db, &key, Some(self.client));
        super::notify::notify(self.srv, super::notify::EXPIRED, "expired", &key, db);
        self.also.push((db, vec![Bytes::from_static(b"DEL"), key]));
        true
    }

    /// Position of a live key in the selected db (lazy expiry), without touching stats.
    pub fn lookup_write(&mut self, key: &[u8]) -> Option<usize> {
        let db = self.client.db;
        self.lookup_write_in(db, key)
    }

    pub fn lookup_write_in(&mut self, db: usize, key: &[u8]) -> Option<usize> {
        let pos = self.srv.dbs[db].find(key)?;
        if self.expire_if_needed_for(db, pos, true) {
            return None;
        }
        self.touch_lru(db, pos);
        Some(pos)
    }

    /// Position of a live key for reading: counts keyspace hits/misses, updates LRU/LFU.
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<usize> {
        self.lookup_read_with(key, true)
    }

    /// [`Self::lookup_read`] leaving the key's LRU/LFU alone (Redis's LOOKUP_NOTOUCH: TYPE,
    /// EXISTS, TTL and friends do not make a key look used).
    pub fn lookup_read_no_touch(&mut self, key: &[u8]) -> Option<usize> {
        self.lookup_read_with(key, false)
    }

    fn lookup_read_with(&mut self, key: &[u8], touch: bool) -> Option<usize> {
        let db = self.client.db;
        let found = match self.srv.dbs[db].find(key) {
            Some(pos) if !self.expire_if_needed(db, pos) => Some(pos),
            _ => None,
        };
        match found {
            Some(pos) => {
                self.srv.stats.keyspace_hits += 1;
                if touch {
                    self.touch_lru(db, pos);
                }
                Some(pos)
            }
            None => {
                self.srv.stats.keyspace_misses += 1;
                None
            }
        }
    }

    /// Existence check without stats or LRU update (EXISTS semantics on expiry).
    pub fn key_exists(&mut self, key: &[u8]) -> bool {
        let db = self.client.db;
        match self.srv.dbs[db].find(key) {
            Some(pos) => !self.expire_if_needed(db, pos),
            None => false,
        }
    }

    fn touch_lru(&mut self, db: usize, pos: usize) {
        let policy = self.srv.limits.policy;
        let slot = self.srv.dbs[db].slot_mut(pos);
        if policy.is_lfu() {
            slot.lru = super::evict::lfu_touch(slot.lru, self.srv.limits.lfu_log_factor, self.srv.limits.lfu_decay_time);
        } else {
            slot.lru = self.srv.lru_clock;
        }
    }

    /// The value of a live key for reading.
    pub fn read_value(&mut self, key: &[u8]) -> Option<&Value> {
        let pos = self.lookup_read(key)?;
        Some(&self.db().slot(pos).value)
    }

    pub fn value_at(&mut self, pos: usize) -> &mut Value {
        &mut self.db().slot_mut(pos).value
    }

    /// Fresh LRU/LFU word for a new key.
    pub fn new_lru(&self) -> u32 {
        if self.srv.limits.policy.is_lfu() {
            super::evict::lfu_initial()
        } else {
            self.srv.lru_clock
        }
    }

    /// SET semantics: stores `value`, dropping any TTL unless `keep_ttl`. Returns position.
    pub fn set_value(&mut self, key: &[u8], value: Value, keep_ttl: bool) -> usize {
        let lru = self.new_lru();
        let db = self.client.db;
        // Expired-but-present keys are replaced like missing ones.
        if let Some(pos) = self.srv.dbs[db].find(key) {
            self.expire_if_needed_for(db, pos, true);
        }
        let created = self.srv.dbs[db].find(key).is_none();
        let pos = self.srv.dbs[db].set(key, value, keep_ttl, lru);
        if created {
            self.notify_new_in(db, key);
        }
        pos
    }

    /// Adds a key that the caller knows is absent (after a failed lookup).
    pub fn add_value(&mut self, key: &[u8], value: Value) -> usize {
        let lru = self.new_lru();
        let db = self.client.db;
        let pos = self.srv.dbs[db].insert_new(key, value, lru);
        self.notify_new_in(db, key);
        pos
    }

    /// The `new` keyspace event of a key just created in `db` (Redis's dbAdd fires it
    /// before the command's own event).
    pub fn notify_new_in(&mut self, db: usize, key: &[u8]) {
        if self.srv.limits.notify_flags & super::notify::NEW != 0 {
            super::notify::notify_with_current(self.srv, Some(self.client), super::notify::NEW, "new", key, db);
        }
    }

    /// Takes a live key out of the selected db.
    fn take_live(&mut self, key: &[u8]) -> Option<crate::server::keyspace::Slot> {
        let pos = self.lookup_write(key)?;
        Some(self.db().remove_at(pos))
    }

    /// Deletes a live key; true if it existed.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.take_live(key).is_some()
    }

    /// UNLINK's delete: as [`Ctx::delete`], the value freed in the background when large
    /// (Redis's dbAsyncDelete).
    pub fn delete_async(&mut self, key: &[u8]) -> bool {
        match self.take_live(key) {
            Some(slot) => {
                crate::server::lazyfree::free_async(slot.value);
                true
            }
            None => false,
        }
    }

    /// Counts `n` changes: the command will be propagated and its keys' WATCH invalidated.
    pub fn dirty(&mut self, n: u64) {
        self.srv.dirty += n;
    }

    /// Propagate `argv` instead of the command as received.
    pub fn propagate_as(&mut self, argv: Vec<Bytes>) {
        self.rewritten = Some(argv);
    }

    /// Propagate an extra command (to the selected db) after this one.
    pub fn also_propagate(&mut self, argv: Vec<Bytes>) {
        let db = self.client.db;
        self.also.push((db, argv));
    }

    /// Do not propagate this command even though it changed the dataset.
    pub fn prevent_propagation(&mut self) {
        self.prevent_propagation = true;
    }

    /// Wakes clients blocked on `key` of the selected db (after the current command).
    pub fn signal_key_ready(&mut self, key: &[u8]) {
        let db = self.client.db;
        self.signal_key_ready_in(db, key);
    }

    pub fn signal_key_ready_in(&mut self, db: usize, key: &[u8]) {
        if self.srv.blocking_keys.is_empty() {
            return;
        }
        let k = (db, Bytes::copy_from_slice(key));
        if self.srv.blocking_keys.contains_key(&k) && !self.srv.ready_keys.contains(&k) {
            self.srv.ready_keys.push(k);
        }
    }

    /// A key of a writing command that stayed as it was (SMOVE's destination already holding
    /// the member): the dispatcher leaves its WATCHes and tracking alone, as Redis signals
    /// only the keys a write changed.
    pub fn left_unchanged(&mut self, key: &Bytes) {
        self.unchanged_keys.push(key.clone());
    }

    /// Invalidates WATCH on a key (the dispatcher does this for the command's own keys).
    pub fn signal_modified(&mut self, db: usize, key: &[u8]) {
        self.srv.touch_watched_key(db, key, Some(self.client));
    }

    /// Keyspace notification (no-op unless `notify-keyspace-events` enables `class`).
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        if self.srv.limits.notify_flags & class == 0 {
            return;
        }
        let db = self.client.db;
        super::notify::notify_with_current(self.srv, Some(self.client), class, event, key, db);
    }

    /// Blocks the client on `keys` until one is signalled ready (the handler is then run
    /// again) or `timeout_ms` (None = forever) passes, when `timeout_reply` is sent.
    /// Inside MULTI/EXEC the timeout reply is returned at once, as Redis does.
    pub fn block(&mut self, keys: Vec<Bytes>, timeout_ms: Option<i64>, timeout_reply: Frame) -> Frame {
        if self.in_exec || self.client.is_master_link {
            return timeout_reply;
        }
        self.block_request = Some(BlockRequest { keys, timeout_ms, timeout_reply, rerun_args: None });
        Frame::Null
    }

    /// [`Self::block`], running `rerun_args` instead of the command when a key is ready.
    pub fn block_with_args(&mut self, keys: Vec<Bytes>, timeout_ms: Option<i64>, timeout_reply: Frame, rerun_args: Vec<Bytes>) -> Frame {
        let reply = self.block(keys, timeout_ms, timeout_reply);
        if let Some(req) = self.block_request.as_mut() {
            req.rerun_args = Some(rerun_args);
        }
        reply
    }
}

// ---- common replies and argument parsers ----

pub fn wrongtype() -> Frame {
    Frame::error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

pub fn syntax_error() -> Frame {
    Frame::error("ERR syntax error")
}

pub fn not_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}

pub fn not_float() -> Frame {
    Frame::error("ERR value is not a valid float")
}

pub fn wrong_args(name: &str) -> Frame {
    Frame::error(format!("ERR wrong number of arguments for '{name}' command"))
}

pub fn parse_int(b: &[u8]) -> Result<i64, Frame> {
    crate::resp::parse_i64(b).ok_or_else(not_integer)
}

/// Parses a float as Redis's `string2ld`/`strtold`: no spaces, "inf"/"-inf" allowed, no nan.
pub fn parse_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if lower.contains("nan") || lower.contains("inf") || lower.starts_with("0x") {
                return None;
            }
            s.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// Blocking timeout in seconds (float) -> absolute deadline in ms (None = forever).
pub fn parse_timeout(ctx: &Ctx, b: &[u8]) -> Result<Option<i64>, Frame> {
    let secs = parse_float(b).filter(|v| v.is_finite()).ok_or_else(|| Frame::error("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(Frame::error("ERR timeout is negative"));
    }
    let ms = (secs * 1000.0).ceil() as i64;
    if ms == 0 {
        return Ok(None);
    }
    Ok(Some(ctx.now_ms + ms))
}

impl BlockedClient {
    pub fn from_request(db: usize, args: Vec<Bytes>, req: BlockRequest) -> Self {
        let args = req.rerun_args.unwrap_or(args);
        BlockedClient { db, keys: req.keys, args, deadline_ms: req.timeout_ms, timeout_reply: req.timeout_reply }
    }
}
