//! Persistence: RDB snapshots (Redis 7.0 format, RDB version 10), DUMP/RESTORE payloads
//! and the multi-part append-only file.
//!
//! The codecs work on an intermediate representation ([`rdb::RdbValue`]) so they can be
//! tested against real Redis files independently of the server's in-memory types.

/// Redis-style log lines (the server's log file), usable by persistence and replication.
macro_rules! notice {
    ($($t:tt)*) => { $crate::server::log::notice(&format!($($t)*)) };
}
macro_rules! warning {
    ($($t:tt)*) => { $crate::server::log::warning(&format!($($t)*)) };
}
pub(crate) use {notice, warning};

pub mod aof;
pub mod aof_manager;
pub mod aof_writer;
pub mod convert;
pub mod debug_delay;
pub mod dump;
pub mod encodings;
pub mod host;
pub mod lzf;
pub mod rdb;
pub mod rdb_load;
pub mod service;
pub mod state;
pub mod stream_rdb;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use self::aof_writer::FsyncPolicy;
use self::convert::{IncrementalSnapshot, KeyspaceSnapshot};
use self::host::{ApplySource, DataHost, DatasetSnapshot};
use super::replication::state::DisklessLoad;
use self::rdb::{RdbEntry, RdbValue};
use self::service::{PersistConfig, PersistError, Persistence};
use super::client::ClientState;
use super::command::{cmd, CommandSpec, Ctx};
use super::config::Config;
use super::state::{ServerState, Shared};
use crate::resp::Frame;

/// Held in `ServerState::persist`.
pub struct PersistenceState {
    pub svc: Arc<Persistence>,
    /// Keys the start-up load dropped as already expired (db, key): a master feeds their
    /// DELs to its replication backlog once its history is restored (Redis loads with
    /// RDBFLAGS_FEED_REPL), and INFO counts them (`rdb_last_load_keys_expired`).
    pub load_expired: Vec<(usize, Bytes)>,
    /// `ServerState::dirty` already accounted into the save-point counter.
    seen_dirty: u64,
    /// The appendonly value the service was last configured with.
    appendonly_applied: bool,
}

impl Default for PersistenceState {
    fn default() -> Self {
        PersistenceState { svc: Persistence::new(PersistConfig::default()), load_expired: Vec::new(), seen_dirty: 0, appendonly_applied: false }
    }
}

impl std::fmt::Debug for PersistenceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistenceState").field("appendonly_applied", &self.appendonly_applied).finish()
    }
}

impl PersistenceState {
    /// Every propagated write (dispatch::propagate): appended to the AOF when it is on.
    pub fn feed(&mut self, db: usize, argv: &[Bytes]) {
        self.svc.feed_aof(db as u32, argv);
    }
}

/// The persistence directives of the server configuration. `dir` is the working
/// directory (the config chdirs into it, as Redis does), so paths are relative to ".".
pub fn persist_config(cfg: &Config) -> PersistConfig {
    PersistConfig {
        dir: PathBuf::from("."),
        dbfilename: cfg.get("dbfilename").to_string(),
        rdbcompression: cfg.get_bool("rdbcompression"),
        rdbchecksum: cfg.get_bool("rdbchecksum"),
        save_points: state::parse_save_points(cfg.get("save")).unwrap_or_default(),
        appendonly: cfg.get_bool("appendonly"),
        appenddirname: cfg.get("appenddirname").to_string(),
        appendfilename: match cfg.get("appendfilename") {
            "" => "appendonly.aof".to_string(),
            v => v.to_string(),
        },
        appendfsync: FsyncPolicy::parse(cfg.get("appendfsync")).unwrap_or(FsyncPolicy::EverySec),
        aof_use_rdb_preamble: cfg.get_bool("aof-use-rdb-preamble"),
        aof_load_truncated: cfg.get_bool("aof-load-truncated"),
        auto_aof_rewrite_percentage: cfg.get_int("auto-aof-rewrite-percentage").max(0) as u64,
        auto_aof_rewrite_min_size: cfg.get_int("auto-aof-rewrite-min-size").max(0) as u64,
        stop_writes_on_bgsave_error: cfg.get_bool("stop-writes-on-bgsave-error"),
    }
}

/// The server as a [`DataHost`] for work that runs outside the server lock (background
/// jobs, the replication link): every call takes the lock briefly.
pub struct SharedHost {
    pub shared: Arc<Shared>,
    /// The server's persistence service (created once with the state), held here so that
    /// the replica link reaches the AOF without the state lock, which a busy script holds.
    persist: Arc<service::Persistence>,
}

static SHARED_HOST: OnceLock<Arc<SharedHost>> = OnceLock::new();

/// A snapshot for a job that writes it on another thread (BGSAVE, AOF rewrite, a full
/// sync): captured a step at a time once the server runs, else copied in one go. Never
/// for a writer that runs while its caller holds the server lock (SAVE, SHUTDOWN): its
/// steps take that lock.
pub fn background_snapshot(srv: &mut ServerState) -> Box<dyn DatasetSnapshot> {
    sync_dirty(srv);
    if let Some(host) = shared_host() {
        if let Some(s) = IncrementalSnapshot::start(srv, host.shared.clone()) {
            return Box::new(s);
        }
    }
    Box::new(KeyspaceSnapshot::capture(srv))
}

/// The host registered by [`start`] (None before the server listens).
pub fn shared_host() -> Option<Arc<SharedHost>> {
    SHARED_HOST.get().cloned()
}

/// Runs commands that don't come from a client (AOF at start-up, the master stream):
/// a client flagged as the master link so read-only and OOM checks let them through.
pub fn apply_commands_locked(srv: &mut ServerState, client: &mut ClientState, db: &mut u32, commands: Vec<Vec<Bytes>>) {
    apply_commands_from(srv, client, db, commands, false);
}

/// [`apply_commands_locked`]; `from_master`: the commands are our master's stream, whose
/// errors Redis logs ("== CRITICAL == This replica is sending an error to its master")
/// and counts (INFO `unexpected_error_replies`) since the reply never reaches anyone.
fn apply_commands_from(srv: &mut ServerState, client: &mut ClientState, db: &mut u32, commands: Vec<Vec<Bytes>>, from_master: bool) {
    let now = super::now_ms();
    client.db = *db as usize;
    for argv in commands {
        if argv.is_empty() {
            continue;
        }
        let known = from_master && srv.commands.lookup(&argv[0]).is_some();
        let outcome = super::dispatch::execute(srv, client, argv, now);
        if let (true, super::dispatch::Outcome::Reply(Frame::Error(e))) = (from_master, &outcome) {
            let cmd = if known { client.last_cmd.as_str() } else { "<unknown>" };
            // Redis logs the text its command gave, which for the common errors is
            // without the "ERR " that the reply adds.
            let text: String = e.strip_prefix("ERR ").unwrap_or(e).chars().take(4096).collect();
            super::log::warning(&format!("== CRITICAL == This replica is sending an error to its master: '{text}' after processing the command '{cmd}'"));
            srv.stats.unexpected_error_replies += 1;
        }
    }
    *db = client.db as u32;
}

fn fake_client(srv: &mut ServerState) -> ClientState {
    let id = srv.new_client_id();
    let mut c = ClientState::new(id, "127.0.0.1:0".into(), "127.0.0.1:0".into(), super::now_ms(), true);
    c.is_master_link = true;
    c
}

impl DataHost for SharedHost {
    fn snapshot(&self, barrier: &mut dyn FnMut()) -> Box<dyn DatasetSnapshot> {
        let mut srv = self.shared.state.lock();
        barrier();
        background_snapshot(&mut srv)
    }

    fn flush_all(&self) {
        let mut srv = self.shared.state.lock();
        srv.touch_all_watched(None, None, None);
        for db in srv.dbs.iter_mut() {
            db.clear();
        }
        srv.replica_keys_with_expire.clear();
    }

    fn load_entries(&self, db: u32, entries: Vec<RdbEntry>) {
        let mut srv = self.shared.state.lock();
        let keep_expired = srv.repl.is_replica();
        let now = super::now_ms();
        convert::load_entries(&mut srv, db, entries, keep_expired, now);
    }

    fn apply_commands(&self, db: &mut u32, commands: Vec<Vec<Bytes>>, source: ApplySource) {
        self.apply_then(db, commands, source, &mut |_| {});
    }

    fn apply_then(&self, db: &mut u32, commands: Vec<Vec<Bytes>>, source: ApplySource, after: &mut dyn FnMut(u32)) {
        let mut srv = self.shared.state.lock();
        let id = super::replication::master_client_id(&srv);
        let mut client = match id.and_then(|id| srv.clients.remove(&id)) {
            Some(c) => c,
            None => fake_client(&mut srv),
        };
        apply_commands_from(&mut srv, &mut client, db, commands, matches!(source, ApplySource::Master));
        if id == Some(client.id) {
            srv.clients.insert(client.id, client);
        }
        after(*db);
    }

    fn aof_before_reply(&self) -> Option<service::AofSync> {
        self.persist.aof_before_reply()
    }

    fn replace_dataset(&self, rdb: &[u8], mode: DisklessLoad) -> Result<host::LoadStats, rdb::RdbError> {
        let (svc, empty, del_sync_files) = {
            let srv = self.shared.state.lock();
            (srv.persist.svc.clone(), srv.dbs.iter().all(|db| db.is_empty()), srv.config.get_bool("rdb-del-sync-files"))
        };
        // Redis: `on-empty-db` loads straight from the socket only when there is nothing to
        // lose; otherwise, like `disabled`, the payload goes to disk first.
        let via_disk = match mode {
            DisklessLoad::Disabled => true,
            DisklessLoad::OnEmptyDb => !empty,
            DisklessLoad::SwapDb => false,
        };
        let stored = if via_disk {
            notice!("MASTER <-> REPLICA sync: receiving {} bytes from master to disk", rdb.len());
            // A payload that cannot be stored is not loaded: the sync fails and is retried,
            // and the current dataset stays as it is.
            Some(svc.store_sync_payload(rdb).map_err(|e| rdb::RdbError::Io(std::io::Error::other(e.to_string())))?)
        } else {
            notice!("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to parser");
            None
        };
        let result = match mode {
            // Serve the current data until the new dataset is complete, then swap at once
            // (and keep the current data if the payload turns out bad).
            DisklessLoad::SwapDb => {
                let (db_count, access) = {
                    let srv = self.shared.state.lock();
                    (srv.dbs.len(), convert::LoadAccess::of(&srv))
                };
                let mut fresh: Vec<super::keyspace::Db> = (0..db_count).map(|_| super::keyspace::Db::new()).collect();
                let now = super::now_ms();
                let stats = host::load_rdb_into_with(rdb, |db, entries| {
                    convert::load_entries_into(&mut fresh, db, entries, true, now, access);
                })?;
                let old = {
                    let mut srv = self.shared.state.lock();
                    crate::server::scripting::functions::replace_from_rdb(&mut srv, &stats.functions);
                    for (old, new) in srv.dbs.iter_mut().zip(fresh.iter_mut()) {
                        old.hand_capture_to(new);
                    }
                    // watched keys that existed before or exist now
                    srv.touch_all_watched(None, None, None);
                    let old = std::mem::replace(&mut srv.dbs, fresh);
                    srv.replica_keys_with_expire.clear();
                    srv.touch_all_watched(None, None, None);
                    old
                };
                // Freeing millions of keys takes a while: not under the lock.
                drop(old);
                Ok(stats)
            }
            // The dataset is emptied and loaded; clients get -LOADING meanwhile.
            DisklessLoad::Disabled | DisklessLoad::OnEmptyDb => {
                notice!("MASTER <-> REPLICA sync: Flushing old data");
                self.shared.state.lock().loading = true;
                self.flush_all();
                notice!("MASTER <-> REPLICA sync: Loading DB in memory");
                let result = host::load_rdb_into(self, rdb);
                let mut srv = self.shared.state.lock();
                srv.loading = false;
                if let Ok(stats) = &result {
                    crate::server::scripting::functions::replace_from_rdb(&mut srv, &stats.functions);
                }
                result
            }
        };
        if let Some(path) = stored {
            if del_sync_files && svc.all_persistence_disabled() {
                notice!("Removing the RDB file obtained from the master. This replica has persistence disabled");
                let _ = std::fs::remove_file(path);
            }
        }
        result
    }

    fn used_memory(&self) -> u64 {
        self.shared.state.lock().used_memory() as u64
    }

    fn wait_until_idle(&self) {
        drop(self.shared.state.lock());
    }

    fn script_watch(&self) -> Option<Arc<crate::server::scripting::busy::ScriptWatch>> {
        Some(self.shared.watch.clone())
    }

    fn on_master_link(&self, connected: bool, addr: &str) {
        let mut srv = self.shared.state.lock();
        super::replication::master_link_changed(&mut srv, connected, addr);
    }
}

/// A host over the locked state itself, for start-up (before `Shared` exists) and for
/// commands running under the lock (DEBUG RELOAD).
struct LockedHost<'a> {
    srv: parking_lot::Mutex<&'a mut ServerState>,
}

impl LockedHost<'_> {
    /// An RDB's keys and its FUNCTION libraries, which replace the loaded ones.
    fn load_rdb(&self, data: &[u8]) -> Result<host::LoadStats, rdb::RdbError> {
        let stats = self.load_rdb_keys(data)?;
        crate::server::scripting::functions::replace_from_rdb(&mut self.srv.lock(), &stats.functions);
        Ok(stats)
    }

    /// An RDB's keys (a master leaves out those already expired, remembered in
    /// `load_expired`); its libraries are left to the caller, in `functions`.
    fn load_rdb_keys(&self, data: &[u8]) -> Result<host::LoadStats, rdb::RdbError> {
        let mut expired = 0;
        let mut stats = host::load_rdb_into_with(data, |db, entries| {
            let mut srv = self.srv.lock();
            let keep = srv.repl.is_replica();
            let now = super::now_ms();
            if !keep {
                let expired = entries.iter().filter(|e| e.expire_ms.is_some_and(|w| w <= now)).map(|e| (db as usize, Bytes::copy_from_slice(&e.key)));
                let expired: Vec<(usize, Bytes)> = expired.collect();
                srv.persist.load_expired.extend(expired);
            }
            expired += convert::load_entries(&mut srv, db, entries, keep, now).1;
        })?;
        stats.expired = expired;
        stats.keys = stats.keys.saturating_sub(expired);
        Ok(stats)
    }
}

/// Replays commands read from the AOF (start-up, DEBUG LOADAOF) as a fake client; they are
/// not propagated again (they are what the files already hold).
fn replay_aof_commands(srv: &mut ServerState, db: &mut u32, commands: Vec<Vec<Bytes>>) {
    let mut client = fake_client(srv);
    srv.replaying_aof = true;
    apply_commands_locked(srv, &mut client, db, commands);
    srv.replaying_aof = false;
}

fn server_error(e: PersistError) -> String {
    format!("ERR {e}")
}

// ------------------------------------------------------------------ contract with the core

pub fn info_section(srv: &ServerState) -> String {
    // INFO right after a write must count it, as Redis's server.dirty does.
    let text = srv.persist.svc.info_section(srv.dirty.saturating_sub(srv.persist.seen_dirty));
    text.strip_prefix("# Persistence\r\n").unwrap_or(&text).to_string()
}

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("save", 1, "admin noscript no_async_loading no_multi", 0, 0, 0, "admin slow dangerous", save_command)
            .group("server")
            .summary("Synchronously save the dataset to disk"),
        cmd("bgsave", -1, "admin noscript no_async_loading", 0, 0, 0, "admin slow dangerous", bgsave_command)
            .group("server")
            .summary("Asynchronously save the dataset to disk"),
        cmd("bgrewriteaof", 1, "admin noscript no_async_loading", 0, 0, 0, "admin slow dangerous", bgrewriteaof_command)
            .group("server")
            .summary("Asynchronously rewrite the append-only file"),
        cmd("dump", 2, "readonly", 1, 1, 1, "keyspace read slow", dump_command)
            .group("generic")
            .since("2.6.0")
            .summary("Return a serialized version of the value stored at the specified key."),
        cmd("restore", -4, "write denyoom", 1, 1, 1, "keyspace write slow dangerous", restore_command)
            .group("generic")
            .since("2.6.0")
            .summary("Create a key using the provided serialized value, previously obtained using DUMP."),
    ]
}

fn repl_info_for_rdb(srv: &ServerState) -> Option<(i64, String, i64)> {
    let r = &srv.repl.repl;
    Some((0, r.replid(), r.master_repl_offset()))
}

fn save_command(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    if ctx.srv.persist.svc.state.bgsave_in_progress.load(std::sync::atomic::Ordering::SeqCst) {
        return Frame::error("ERR Background save already in progress");
    }
    sync_dirty(ctx.srv);
    let snapshot = KeyspaceSnapshot::capture(ctx.srv);
    let repl = repl_info_for_rdb(ctx.srv);
    let svc = ctx.srv.persist.svc.clone();
    match svc.save_snapshot(&snapshot, ctx.srv.used_memory() as u64, repl) {
        Ok(()) => {
            ctx.srv.lastsave = svc.lastsave();
            Frame::ok()
        }
        Err(e) => Frame::error(server_error(e)),
    }
}

fn bgsave_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let schedule = match args.len() {
        1 => false,
        2 if args[1].eq_ignore_ascii_case(b"schedule") => true,
        _ => return Frame::error("ERR syntax error"),
    };
    let svc = ctx.srv.persist.svc.clone();
    if svc.state.bgsave_in_progress.load(std::sync::atomic::Ordering::SeqCst) {
        return Frame::error("ERR Background save already in progress");
    }
    if svc.state.aof_rewrite_in_progress.load(std::sync::atomic::Ordering::SeqCst) {
        if schedule {
            svc.state.bgsave_scheduled.store(true, std::sync::atomic::Ordering::SeqCst);
            return Frame::Simple("Background saving scheduled".into());
        }
        return Frame::error("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.");
    }
    let repl = repl_info_for_rdb(ctx.srv);
    let used = ctx.srv.used_memory() as u64;
    let snapshot = background_snapshot(ctx.srv);
    match svc.bgsave_snapshot(snapshot, used, repl) {
        Ok(()) => Frame::Simple("Background saving started".into()),
        Err(e) => Frame::error(server_error(e)),
    }
}

fn bgrewriteaof_command(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let svc = ctx.srv.persist.svc.clone();
    if svc.state.aof_rewrite_in_progress.load(std::sync::atomic::Ordering::SeqCst) {
        return Frame::error("ERR Background append only file rewriting already in progress");
    }
    let used = ctx.srv.used_memory() as u64;
    let srv: &mut ServerState = ctx.srv;
    match svc.bgrewriteaof_with(used, &mut || background_snapshot(srv)) {
        Ok(true) => Frame::Simple("Background append only file rewriting started".into()),
        Ok(false) => Frame::Simple("Background append only file rewriting scheduled".into()),
        Err(e) => Frame::error(server_error(e)),
    }
}

fn dump_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(pos) = ctx.lookup_read(&args[1]) else { return Frame::Null };
    let value = convert::value_to_rdb(&ctx.db().slot(pos).value);
    let compression = ctx.srv.config.get_bool("rdbcompression");
    Frame::bulk(dump::dump_payload(&value, compression))
}

fn restore_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let ttl = match crate::resp::parse_i64(&args[2]) {
        Some(t) if t >= 0 => t,
        Some(_) => return Frame::error("ERR Invalid TTL value, must be >= 0"),
        None => return Frame::error("ERR value is not an integer or out of range"),
    };
    let (mut replace, mut absttl) = (false, false);
    let (mut idle_secs, mut lfu_freq) = (None, None);
    let mut i = 4;
    while i < args.len() {
        let opt = args[i].to_ascii_lowercase();
        match opt.as_slice() {
            b"replace" => replace = true,
            b"absttl" => absttl = true,
            b"idletime" | b"freq" if i + 1 < args.len() => {
                match crate::resp::parse_i64(&args[i + 1]) {
                    Some(v) if opt == b"freq" && (0..=255).contains(&v) => lfu_freq = Some(v as u8),
                    Some(v) if opt == b"idletime" && v >= 0 => idle_secs = Some(v as u64),
                    Some(_) if opt == b"freq" => return Frame::error("ERR Invalid FREQ value, must be >= 0 and <= 255"),
                    Some(_) => return Frame::error("ERR Invalid IDLETIME value, must be >= 0"),
                    None => return Frame::error("ERR value is not an integer or out of range"),
                }
                i += 1;
            }
            _ => return Frame::error("ERR syntax error"),
        }
        i += 1;
    }
    let key = args[1].clone();
    if !replace && ctx.key_exists(&key) {
        return Frame::error("BUSYKEY Target key name already exists.");
    }
    let value = match dump::restore_payload(&args[3]) {
        Ok(v) => v,
        Err(e) => return Frame::error(format!("ERR {e}")),
    };
    let expire_at = if ttl == 0 {
        None
    } else if absttl {
        Some(ttl)
    } else {
        Some(ctx.now_ms + ttl)
    };
    if let Some(when) = expire_at {
        if ctx.already_expired(when) {
            // Already expired: behaves as a delete, as Redis does.
            if ctx.delete(&key) {
                ctx.dirty(1);
                ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key]);
            }
            return Frame::ok();
        }
    }
    if matches!(&value, RdbValue::List(v) | RdbValue::Set(v) if v.is_empty()) {
        return Frame::error("ERR Bad data format");
    }
    let limits = ctx.srv.limits.encoding;
    let pos = ctx.set_value(&key, convert::rdb_to_value(value, &limits), false);
    if let Some(when) = expire_at {
        ctx.db().set_expiry(pos, when);
        if !absttl {
            // Replicas and the AOF get the absolute time, as Redis propagates it.
            let mut argv = args.to_vec();
            argv[2] = Bytes::from(when.to_string());
            argv.push(Bytes::from_static(b"ABSTTL"));
            ctx.propagate_as(argv);
        }
    }
    if idle_secs.is_some() || lfu_freq.is_some() {
        let word = convert::loaded_access_word(ctx.srv, idle_secs, lfu_freq);
        ctx.db().slot_mut(pos).lru = word;
    }
    ctx.signal_key_ready(&key);
    ctx.dirty(1);
    Frame::ok()
}

pub fn load_at_startup(srv: &mut ServerState) -> Result<(), String> {
    let cfg = persist_config(&srv.config);
    *srv.persist.svc.config.lock() = cfg.clone();
    aof_manager::set_timestamps(srv.config.get_bool("aof-timestamp-enabled"));
    srv.persist.appendonly_applied = cfg.appendonly;
    srv.persist.svc.state.aof_enabled.store(cfg.appendonly, std::sync::atomic::Ordering::Relaxed);
    srv.loading = true;
    let svc = srv.persist.svc.clone();
    let result = {
        let host = LockedHost { srv: parking_lot::Mutex::new(&mut *srv) };
        svc.load_at_startup_with(
            &|data| host.load_rdb(data),
            &mut |db, commands| {
                let mut guard = host.srv.lock();
                // Redis's loadSingleAppendOnlyFile: an unknown command ends the load (and
                // the server)
                if let Some(argv) = commands.iter().find(|argv| argv.first().is_some_and(|name| guard.commands.lookup(name).is_none())) {
                    let file = guard.persist.svc.loading_file.lock().clone();
                    super::log::warning(&format!("Unknown command '{}' reading the append only file {file}", String::from_utf8_lossy(&argv[0])));
                    std::process::exit(1);
                }
                // The dispatcher refuses commands while loading; AOF replay is the loading.
                guard.loading = false;
                replay_aof_commands(&mut guard, db, commands);
                guard.loading = true;
            },
            &mut || Box::new(KeyspaceSnapshot::capture(&host.srv.lock())),
        )
    };
    srv.loading = false;
    let loaded = result.map_err(|e| {
        let rdb_error = match &e {
            PersistError::Rdb { source, .. } | PersistError::Aof(aof::AofError::Rdb { source, .. }) => Some(source),
            _ => None,
        };
        if let Some(source) = rdb_error {
            for line in source.redis_log_line().lines() {
                super::log::warning(line);
            }
        }
        e.to_string()
    })?;
    srv.dirty = 0;
    srv.persist.seen_dirty = 0;
    let expired = std::mem::take(&mut srv.persist.load_expired);
    srv.persist.svc.state.last_load_keys_expired.store(expired.len() as u64, std::sync::atomic::Ordering::Relaxed);
    // Redis restores the history only from a file whose repl-stream-db is set.
    if let (Some(id), Some(off), Some(stream_db)) = (loaded.repl_id.clone(), loaded.repl_offset, loaded.repl_stream_db) {
        super::replication::restore_history(srv, &id, off, stream_db);
        if !srv.repl.is_replica() {
            // The DELs of the keys found expired, after the restored offset (as Redis
            // feeds them while loading and rebases the backlog on the RDB's offset).
            for (db, key) in expired {
                srv.repl.feed(db, &[Bytes::from_static(b"DEL"), key]);
            }
        }
    }
    Ok(())
}

pub fn on_shutdown(srv: &mut ServerState, save: Option<bool>) -> Result<(), String> {
    let svc = srv.persist.svc.clone();
    // Redis's prepareForShutdown kills a saving child first (it would race the final save)
    if svc.state.bgsave_in_progress.load(std::sync::atomic::Ordering::SeqCst) {
        super::log::warning("There is a child saving an .rdb. Killing it!");
        svc.kill_bgsave();
    }
    svc.shutdown();
    let configured = !svc.config.lock().save_points.is_empty();
    if save.unwrap_or(configured) {
        super::log::warning("Saving the final RDB snapshot before exiting.");
        sync_dirty(srv);
        let snapshot = KeyspaceSnapshot::capture(srv);
        svc.save_snapshot(&snapshot, srv.used_memory() as u64, repl_info_for_rdb(srv)).map_err(|e| {
            super::log::warning(&format!("Error trying to save the DB, can't exit: {e}"));
            "Errors trying to SHUTDOWN. Check logs.".to_string()
        })?;
        super::log::warning("DB saved on disk");
    }
    Ok(())
}

/// Redis's flushAllDataAndResetRDB after FLUSHALL emptied the dataset: a running BGSAVE is
/// stopped (its snapshot is of the data just dropped) and, with save points configured,
/// the empty dataset is saved at once (the change counter then reads 0).
pub fn after_flushall(srv: &mut ServerState) {
    let svc = srv.persist.svc.clone();
    svc.kill_bgsave();
    if svc.config.lock().save_points.is_empty() {
        return;
    }
    sync_dirty(srv);
    let snapshot = KeyspaceSnapshot::capture(srv);
    if svc.save_snapshot(&snapshot, srv.used_memory() as u64, repl_info_for_rdb(srv)).is_ok() {
        srv.lastsave = svc.lastsave();
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save the RDB (unless NOSAVE), empty the
/// dataset and the functions (unless NOFLUSH), load the file back.
pub fn debug_reload(srv: &mut ServerState, options: &[Bytes]) -> Result<(), String> {
    let (mut save, mut flush, mut merge) = (true, true, false);
    for opt in options {
        match opt.to_ascii_lowercase().as_slice() {
            b"merge" => merge = true,
            b"noflush" => flush = false,
            b"nosave" => save = false,
            _ => return Err("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.".into()),
        }
    }
    let svc = srv.persist.svc.clone();
    if save {
        sync_dirty(srv);
        let snapshot = KeyspaceSnapshot::capture(srv);
        svc.save_snapshot(&snapshot, srv.used_memory() as u64, repl_info_for_rdb(srv)).map_err(server_error)?;
    }
    const LOAD_FAILED: &str = "ERR Error trying to load the RDB dump";
    let path = svc.config.lock().rdb_path();
    let data = std::fs::read(&path).map_err(|e| {
        super::log::warning(&format!("DEBUG RELOAD: cannot read {}: {e}", path.display()));
        LOAD_FAILED.to_string()
    })?;
    if flush {
        srv.touch_all_watched(None, None, None);
        for db in srv.dbs.iter_mut() {
            db.clear();
        }
        srv.scripting.functions.flush();
    }
    // Keys already there are replaced (Redis, without MERGE, stops on them as a corrupt
    // file); a library already there fails the load unless MERGE replaces it, as Redis's.
    let loaded = LockedHost { srv: parking_lot::Mutex::new(&mut *srv) }.load_rdb_keys(&data);
    // Only a start-up load feeds the DELs of the keys it found expired (RDBFLAGS_FEED_REPL).
    srv.persist.load_expired.clear();
    let stats = loaded.map_err(|e| {
        super::log::warning(&format!("DEBUG RELOAD: {e}"));
        LOAD_FAILED.to_string()
    })?;
    for code in &stats.functions {
        if let Err(e) = srv.scripting.functions.load(code, merge, false) {
            super::log::warning(&format!("Failed loading library from RDB: {e}"));
            return Err(LOAD_FAILED.into());
        }
    }
    super::log::warning("DB reloaded by DEBUG RELOAD");
    Ok(())
}

/// DEBUG LOADAOF: flush the AOF, empty the dataset and load the append-only files again
/// (Redis uses it to check that what was written replays to the same data).
pub fn debug_loadaof(srv: &mut ServerState) -> Result<(), String> {
    let svc = srv.persist.svc.clone();
    svc.flush_aof();
    srv.touch_all_watched(None, None, None);
    for db in srv.dbs.iter_mut() {
        db.clear();
    }
    let watch = srv.scripting.watch.clone();
    watch.set_loading(true);
    let result = {
        let host = LockedHost { srv: parking_lot::Mutex::new(&mut *srv) };
        svc.reload_from_disk(&|data| host.load_rdb(data), &mut |db, commands| replay_aof_commands(&mut host.srv.lock(), db, commands))
    };
    watch.set_loading(false);
    // Only a start-up load feeds the DELs of the keys it found expired (RDBFLAGS_FEED_REPL).
    srv.persist.load_expired.clear();
    result.map_err(|e| format!("ERR {e}"))?;
    // The replayed commands are what the files already hold: nothing new to save.
    srv.dirty = 0;
    srv.persist.seen_dirty = 0;
    super::log::notice("Append Only File loaded by DEBUG LOADAOF");
    Ok(())
}

/// Hands the core's write count since the last call to the persistence service, which
/// counts changes since the last save (the cron does it every 100 ms; a save does it first,
/// so the writes just before it count as saved).
fn sync_dirty(srv: &mut ServerState) {
    let delta = srv.dirty.saturating_sub(srv.persist.seen_dirty);
    srv.persist.seen_dirty = srv.dirty;
    srv.persist.svc.state.add_dirty(delta);
}

/// Hands the persistence settings to the service (all but `appendonly`, which
/// [`apply_appendonly`] turns on and off): at every cron and at once after CONFIG SET.
pub fn apply_config(srv: &mut ServerState) -> PersistConfig {
    let cfg = persist_config(&srv.config);
    aof_manager::set_timestamps(srv.config.get_bool("aof-timestamp-enabled"));
    let svc = srv.persist.svc.clone();
    let mut c = svc.config.lock();
    let aof_on = c.appendonly;
    *c = cfg.clone();
    c.appendonly = aof_on;
    cfg
}

/// Starts or stops the AOF when `appendonly` changed: CONFIG SET calls it at once (Redis's
/// updateAppendonly starts the rewrite before replying, so INFO shows it in progress and a
/// following DEBUG LOADAOF reads the new files), the cron again as a fallback.
pub fn apply_appendonly(srv: &mut ServerState) -> Result<(), PersistError> {
    let cfg = apply_config(srv);
    if cfg.appendonly == srv.persist.appendonly_applied {
        return Ok(());
    }
    // Marked applied even when it fails: the cron does not retry (and log) every tick.
    srv.persist.appendonly_applied = cfg.appendonly;
    let used = srv.used_memory() as u64;
    let svc = srv.persist.svc.clone();
    svc.set_appendonly_with(cfg.appendonly, used, &mut || background_snapshot(srv))
}

/// Every 100 ms: save points, AOF auto rewrite, CONFIG SET appendonly, LASTSAVE.
pub fn cron(srv: &mut ServerState, _now_ms: i64) {
    super::replication::cron(srv);
    let svc = srv.persist.svc.clone();
    sync_dirty(srv);
    if let Err(e) = apply_appendonly(srv) {
        super::log::warning(&format!("Can't turn the append only file on: {e}"));
    }
    let used = srv.used_memory() as u64;
    let repl = repl_info_for_rdb(srv);
    svc.cron_with(used, repl, &mut || background_snapshot(srv));
    srv.lastsave = svc.lastsave();
}

pub fn start(shared: &Arc<Shared>) {
    let persist = shared.state.lock().persist.svc.clone();
    let _ = SHARED_HOST.set(Arc::new(SharedHost { shared: shared.clone(), persist }));
    let host: Arc<dyn DataHost> = SHARED_HOST.get().expect("just set").clone();
    shared.state.lock().persist.svc.set_host(host);
}
