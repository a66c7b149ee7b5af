//! The server state: every database, every client, pub/sub, blocked clients, stats,
//! configuration. It lives behind ONE mutex (`Shared::state`); connection tasks parse and
//! encode outside the lock and execute a whole pipelined batch inside it, which keeps
//! Redis's atomicity (every command, MULTI/EXEC, blocking wake-ups) without per-key locks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::client::ClientState;
use super::command::CommandTable;
use super::config::Config;
use super::keyspace::Db;
use super::persistence::PersistenceState;
use super::replication::state::OutputLimits;
use super::replication::ReplicationState;
use crate::resp::Frame;

/// Values from the config that are read on hot paths, refreshed after CONFIG SET.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub maxmemory: u64,
    pub policy: EvictionPolicy,
    pub maxmemory_samples: usize,
    pub requirepass: Option<Bytes>,
    pub protected_mode: bool,
    pub proto_max_bulk_len: usize,
    pub query_buffer_limit: usize,
    pub slowlog_slower_than: i64,
    pub slowlog_max_len: usize,
    pub latency_threshold: i64,
    /// `latency-tracking`: per-command latency histograms.
    pub latency_tracking: bool,
    pub lfu_log_factor: u32,
    pub lfu_decay_time: u32,
    pub timeout_secs: u64,
    pub notify_flags: u32,
    pub replica_read_only: bool,
    /// `replica-ignore-disk-write-errors`: apply the master's writes when we cannot persist.
    pub replica_ignore_disk_write_errors: bool,
    pub maxclients: usize,
    /// client-output-buffer-limit for normal and pubsub clients (replicas: ReplConfig).
    pub obuf_normal: OutputLimits,
    pub obuf_pubsub: OutputLimits,
    /// `tcp-keepalive` seconds (0 = off), set on every accepted connection.
    pub tcp_keepalive_secs: u64,
    /// The `*-max-*` encoding thresholds, read per write of a hash, set or sorted set.
    pub encoding: crate::server::types::EncodingLimits,
    /// `busy-reply-threshold` (`lua-time-limit`): a script running longer is "busy".
    pub busy_reply_threshold_ms: i64,
    /// `tracking-table-max-keys` (0 = no limit).
    pub tracking_table_max_keys: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    #[default]
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl EvictionPolicy {
    pub fn parse(s: &str) -> Self {
        match s {
            "allkeys-lru" => Self::AllkeysLru,
            "allkeys-lfu" => Self::AllkeysLfu,
            "allkeys-random" => Self::AllkeysRandom,
            "volatile-lru" => Self::VolatileLru,
            "volatile-lfu" => Self::VolatileLfu,
            "volatile-random" => Self::VolatileRandom,
            "volatile-ttl" => Self::VolatileTtl,
            _ => Self::NoEviction,
        }
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Self::AllkeysLfu | Self::VolatileLfu)
    }
}

/// Counters for INFO stats.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub total_connections: u64,
    pub total_commands: u64,
    pub rejected_connections: u64,
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub total_error_replies: u64,
    /// Errors our master's stream got (Redis's stat_unexpected_error_replies).
    pub unexpected_error_replies: u64,
    pub pubsub_messages: u64,
    /// Per error prefix ("ERR", "WRONGTYPE"...).
    pub errors: HashMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct SlowlogEntry {
    pub id: u64,
    pub time: i64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub addr: String,
    pub name: String,
}

/// A client waiting in BLPOP & co.
#[derive(Debug)]
pub struct BlockedClient {
    pub db: usize,
    pub keys: Vec<Bytes>,
    pub args: Vec<Bytes>,
    pub deadline_ms: Option<i64>,
    pub timeout_reply: Frame,
}

/// Pub/sub registry.
#[derive(Debug, Default)]
pub struct PubSub {
    pub channels: HashMap<Bytes, Vec<u64>>,
    pub patterns: HashMap<Bytes, Vec<u64>>,
    /// SSUBSCRIBE channels.
    pub shard_channels: HashMap<Bytes, Vec<u64>>,
}

pub struct ServerState {
    pub config: Config,
    pub limits: Limits,
    pub commands: Arc<CommandTable>,
    /// ACL users and the ACL LOG.
    pub acl: super::acl::AclState,
    pub dbs: Vec<Db>,
    pub clients: HashMap<u64, ClientState>,
    pub next_client_id: u64,
    pub pubsub: PubSub,
    /// (db, key) -> client ids blocked on it, first come first served.
    pub blocking_keys: HashMap<(usize, Bytes), VecDeque<u64>>,
    pub blocked: HashMap<u64, BlockedClient>,
    /// Keys signalled ready by writes since the last wake-up pass.
    pub ready_keys: Vec<(usize, Bytes)>,
    /// (db, key) -> clients watching it.
    pub watched: HashMap<(usize, Bytes), Vec<u64>>,
    pub monitors: Vec<u64>,
    pub stats: Stats,
    pub slowlog: VecDeque<SlowlogEntry>,
    pub slowlog_next_id: u64,
    /// Latency events: name -> (last time, last ms, max ms).
    pub latency: super::commands::latency::LatencyMonitor,
    /// CLIENT TRACKING: tracked keys, BCAST prefixes, pending invalidations.
    pub tracking: super::commands::tracking::TrackingTable,
    /// Number of changes since the last save (the `save` points and INFO use it).
    pub dirty: u64,
    pub lastsave: i64,
    pub start_time: Instant,
    pub start_unix_ms: i64,
    pub run_id: String,
    pub port: u16,
    pub tcp_port_bound: u16,
    pub active_expire_enabled: bool,
    /// DEBUG PAUSE-CRON: the periodic tick does nothing while set.
    pub pause_cron: bool,
    /// Keys given a TTL by clients of a writable replica (not by the master): key -> bitmap
    /// of the dbs (0..63) it has one in. The master never sends a DEL for them, so the
    /// replica expires them itself (Redis's slaveKeysWithExpire / expireSlaveKeys).
    pub replica_keys_with_expire: HashMap<Bytes, u64>,
    /// CLIENT PAUSE end (unix ms); shared with connection tasks so they check it lock-free.
    pub client_pause_until_ms: Arc<std::sync::atomic::AtomicI64>,
    pub client_pause_writes_only: bool,
    pub shutdown_requested: Option<ShutdownRequest>,
    pub repl: ReplicationState,
    pub persist: PersistenceState,
    pub executable: String,
    pub config_file: String,
    /// True while loading a dataset (replies -LOADING).
    pub loading: bool,
    /// Commands replayed from the AOF (start-up, DEBUG LOADAOF) are not propagated, as
    /// Redis's alsoPropagate does nothing while loading.
    pub replaying_aof: bool,
    pub lru_clock: u32,
    pub stat_peak_memory: usize,
    /// Recent largest client buffers (INFO clients).
    pub clients_peak: super::client::ClientsPeak,
    /// Lua scripts and functions (EVAL, FCALL...).
    pub scripting: super::scripting::Scripting,
    /// Set while a script runs: its writes are collected here and propagated together
    /// (wrapped in MULTI/EXEC) when it ends.
    pub script_effects: Option<super::scripting::Effects>,
    /// The error reply of the command running now already counts in the error stats (a
    /// script's error that came from a command it called): `call` counts only its failure.
    pub reply_error_counted: bool,
    /// True between the MULTI that EXEC (or a script inside EXEC) propagated and its EXEC.
    pub multi_propagated: bool,
    /// Set while EXEC runs its queue: the writes (targets, db, argv) are collected here and
    /// propagated when it ends, in MULTI/EXEC only if there are several (Redis 7.0's
    /// `propagatePendingCommands`: one write goes alone, a transaction with no effect
    /// propagates nothing).
    pub exec_effects: Option<Vec<(u8, usize, Vec<Bytes>)>>,
    /// Whether the current command found the server over maxmemory after evicting
    /// (Redis's `pre_command_oom_state`, read by scripts' allow-oom rules).
    pub pre_command_oom: bool,
}

/// How the server should stop (SHUTDOWN or a signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownRequest {
    /// Some(true) = SAVE, Some(false) = NOSAVE, None = as configured.
    pub save: Option<bool>,
    pub force: bool,
}

/// What every task shares.
pub struct Shared {
    pub state: Mutex<ServerState>,
    /// Wakes the main loop for SHUTDOWN.
    pub shutdown: Notify,
    /// The running script (busy scripts answer without the state).
    pub watch: Arc<crate::server::scripting::busy::ScriptWatch>,
    /// `io-threads 1`: one runtime worker, so the state is only ever contended by threads
    /// outside the runtime (a script that went busy, persistence threads).
    pub single_worker: bool,
    /// The command table (the same as `ServerState::commands`), readable while busy.
    pub commands: Arc<CommandTable>,
}

impl Shared {
    /// The state for an async task, or None while a script is busy (the task answers
    /// without it, or waits with [`Shared::lock_async`]). Never blocks the worker thread on
    /// a lock a script holds from outside the runtime (see `scripting::busy`).
    pub async fn lock_unless_busy(&self) -> Option<parking_lot::MutexGuard<'_, ServerState>> {
        for attempt in 0u32.. {
            if self.watch.is_busy() {
                return None;
            }
            if let Some(guard) = self.state.try_lock() {
                return Some(guard);
            }
            if !self.single_worker && !self.watch.script_running() {
                // Ordinary contention between runtime workers.
                return Some(self.state.lock());
            }
            // Held by a thread outside the runtime: a script that went busy (and may still
            // be finishing its batch), persistence. Wait without blocking the worker.
            if attempt < 16 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        unreachable!("the loop above only ends by returning")
    }

    /// The state for an async task, once no busy script holds it.
    pub async fn lock_async(&self) -> parking_lot::MutexGuard<'_, ServerState> {
        loop {
            if let Some(guard) = self.lock_unless_busy().await {
                return guard;
            }
            self.watch.until_idle().await;
        }
    }
}

impl ServerState {
    pub fn new(config: Config, commands: Arc<CommandTable>) -> Self {
        let databases = config.get_int("databases").max(1) as usize;
        let port = config.get_int("port") as u16;
        let now = super::now_ms();
        let mut st = ServerState {
            limits: Limits::default(),
            acl: super::acl::AclState::new(config.get("requirepass"), config.get("acl-pubsub-default") == "allchannels"),
            commands,
            dbs: (0..databases).map(|_| Db::new()).collect(),
            clients: HashMap::new(),
            next_client_id: 1,
            pubsub: PubSub::default(),
            blocking_keys: HashMap::new(),
            blocked: HashMap::new(),
            ready_keys: Vec::new(),
            watched: HashMap::new(),
            monitors: Vec::new(),
            stats: Stats::default(),
            slowlog: VecDeque::new(),
            slowlog_next_id: 0,
            latency: Default::default(),
            tracking: Default::default(),
            dirty: 0,
            lastsave: now / 1000,
            start_time: Instant::now(),
            start_unix_ms: now,
            run_id: random_hex(40),
            port,
            tcp_port_bound: port,
            active_expire_enabled: true,
            pause_cron: false,
            replica_keys_with_expire: HashMap::new(),
            client_pause_until_ms: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            client_pause_writes_only: false,
            shutdown_requested: None,
            repl: ReplicationState::default(),
            persist: PersistenceState::default(),
            executable: std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            config_file: config.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            loading: false,
            replaying_aof: false,
            lru_clock: 0,
            stat_peak_memory: 0,
            clients_peak: Default::default(),
            scripting: super::scripting::Scripting::new(),
            script_effects: None,
            reply_error_counted: false,
            multi_propagated: false,
            exec_effects: None,
            pre_command_oom: false,
            config,
        };
        st.refresh_limits();
        st.lru_clock = lru_clock_now();
        st
    }

    /// The `user` lines of the config, then the `aclfile` (Redis's `ACLLoadUsersAtStartup`).
    /// Err: the log line Redis writes before it exits.
    pub fn load_users_at_startup(&mut self) -> Result<(), String> {
        self.acl.file = self.config.get("aclfile").to_string();
        if !self.acl.file.is_empty() && !self.config.users.is_empty() {
            return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
        }
        let lines = self.config.users.clone();
        for line in &lines {
            let name = &line[0];
            if !crate::common::acl::valid_username(name.as_bytes()) {
                return Err("Spaces not allowed in ACL usernames".into());
            }
            let (catalog, opts) = (self.acl.catalog.clone(), self.acl.opts);
            let u = self.acl.users.entry(name.clone()).or_insert_with(|| crate::common::acl::User::new(name, &catalog, opts));
            if name == "default" {
                let _ = u.apply(&catalog, opts, b"reset");
            }
            let rules: Vec<Vec<u8>> = line[1..].iter().map(|r| r.as_bytes().to_vec()).collect();
            let merged = crate::common::acl::merge_selector_args(&rules).unwrap_or(rules);
            for r in &merged {
                if let Err(e) = u.apply(&catalog, opts, r) {
                    super::log::warning(&format!("Error loading ACL rule '{}' for the user named '{name}': {e}", String::from_utf8_lossy(r)));
                    return Err("Critical error while loading ACLs. Exiting.".into());
                }
            }
            if !u.enabled {
                super::log::notice(&format!("The user '{name}' is disabled (there is no 'on' modifier in the user description). Make sure this is not a configuration error."));
            }
        }
        if !self.acl.file.is_empty() {
            if let Err(e) = super::acl::load_file(self) {
                return Err(format!("Aborting Redis startup because of ACL errors: {e}"));
            }
        }
        Ok(())
    }

    /// Re-reads the hot config values (after load or CONFIG SET).
    pub fn refresh_limits(&mut self) {
        let c = &self.config;
        self.acl.opts.pubsub_default_all = c.get("acl-pubsub-default") == "allchannels";
        // A shorter acllog-max-len trims the log at its next entry, as Redis does.
        self.acl.log_max_len = c.get_int("acllog-max-len").max(0) as usize;
        let pass = c.get("requirepass");
        let obuf: Vec<&str> = c.get("client-output-buffer-limit").split(' ').collect();
        let class_limits = |class: &str| -> OutputLimits {
            let field = |ch: &[&str], i: usize| ch.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            obuf.chunks(4)
                .find(|ch| ch[0] == class)
                .map(|ch| OutputLimits { hard: field(ch, 1), soft: field(ch, 2), soft_secs: field(ch, 3) })
                .unwrap_or_default()
        };
        self.limits = Limits {
            maxmemory: c.get_int("maxmemory").max(0) as u64,
            policy: EvictionPolicy::parse(c.get("maxmemory-policy")),
            maxmemory_samples: c.get_int("maxmemory-samples").max(1) as usize,
            requirepass: (!pass.is_empty()).then(|| Bytes::copy_from_slice(pass.as_bytes())),
            protected_mode: c.get_bool("protected-mode"),
            proto_max_bulk_len: c.get_int("proto-max-bulk-len").max(1) as usize,
            query_buffer_limit: c.get_int("client-query-buffer-limit").max(1) as usize,
            slowlog_slower_than: c.get_int("slowlog-log-slower-than"),
            slowlog_max_len: c.get_int("slowlog-max-len").max(0) as usize,
            latency_threshold: c.get_int("latency-monitor-threshold"),
            latency_tracking: c.get_bool("latency-tracking"),
            tracking_table_max_keys: c.get_int("tracking-table-max-keys").max(0) as usize,
            lfu_log_factor: c.get_int("lfu-log-factor") as u32,
            lfu_decay_time: c.get_int("lfu-decay-time") as u32,
            timeout_secs: c.get_int("timeout").max(0) as u64,
            notify_flags: super::notify::parse_flags(c.get("notify-keyspace-events")),
            replica_read_only: c.get_bool("replica-read-only"),
            replica_ignore_disk_write_errors: c.get_bool("replica-ignore-disk-write-errors"),
            maxclients: c.get_int("maxclients").max(1) as usize,
            obuf_normal: class_limits("normal"),
            obuf_pubsub: class_limits("pubsub"),
            tcp_keepalive_secs: c.get_int("tcp-keepalive").max(0) as u64,
            encoding: crate::server::types::EncodingLimits::from_config(c),
            busy_reply_threshold_ms: c.get_int("lua-time-limit"),
        };
        super::persistence::debug_delay::configure(c.get_int("rdb-key-save-delay"), c.get_int("key-load-delay"));
    }

    pub fn new_client_id(&mut self) -> u64 {
        let id = self.next_client_id;
        self.next_client_id += 1;
        id
    }

    /// Estimated memory used by the dataset and the server (INFO used_memory, maxmemory).
    pub fn used_memory(&self) -> usize {
        let base = 1024 * 1024;
        let dbs: usize = self.dbs.iter().map(|d| d.memory()).sum();
        let clients: usize = self.clients.values().map(|c| 20 * 1024 + c.qbuf + c.output_bytes()).sum();
        base + dbs + clients
    }

    /// Marks a key modified: invalidates WATCH of every client watching it, and the key in
    /// the client-side caches of tracking clients. A key that was already expired when a
    /// client watched it does not invalidate that client's WATCH; once it is gone (deleted
    /// on expiry) it counts as a plain missing key (Redis's touchWatchedKey).
    pub fn touch_watched_key(&mut self, db: usize, key: &[u8], mut current: Option<&mut ClientState>) {
        if self.tracking.is_active() {
            super::commands::tracking::invalidate_key(self, current.as_deref_mut(), key);
        }
        if self.watched.is_empty() {
            return;
        }
        let k = (db, Bytes::copy_from_slice(key));
        let Some(ids) = self.watched.get(&k).cloned() else { return };
        let present = self.dbs[db].find(key).is_some();
        let touch = |c: &mut ClientState| match c.watched_stale.iter().position(|s| *s == k) {
            Some(i) => {
                if !present {
                    c.watched_stale.swap_remove(i);
                }
            }
            None => c.dirty_cas = true,
        };
        for id in &ids {
            if let Some(c) = self.clients.get_mut(id) {
                touch(c);
            }
        }
        if let Some(cur) = current {
            if ids.contains(&cur.id) {
                touch(cur);
            }
        }
    }

    /// Invalidates the WATCH of clients watching a key of `db` (every db when None) that
    /// holds a value, or that holds one in `swapped_with`: call it before FLUSHDB/FLUSHALL
    /// empty the db, or before SWAPDB swaps. As Redis's `touchAllWatchedKeysInDb`: a watched
    /// key that exists in neither is not touched; one that was stale when watched and is
    /// now gone, or still stale after the swap, is no change; a missing key replaced by a
    /// stale one becomes a stale watched key.
    pub fn touch_all_watched(&mut self, db: Option<usize>, swapped_with: Option<usize>, mut current: Option<&mut ClientState>) {
        struct Touch {
            id: u64,
            key: (usize, Bytes),
            in_emptied: bool,
            in_replaced: bool,
            replaced_expired: bool,
        }
        let now = super::now_ms();
        let dbs = &self.dbs;
        let mut touches = Vec::new();
        for ((d, k), ids) in &self.watched {
            if !db.is_none_or(|x| x == *d) {
                continue;
            }
            let in_emptied = dbs[*d].find(k).is_some();
            let replaced = swapped_with.and_then(|o| dbs[o].find(k).map(|p| (o, p)));
            if !in_emptied && replaced.is_none() {
                continue;
            }
            let replaced_expired = replaced.is_some_and(|(o, p)| dbs[o].expiry_of(p).is_some_and(|w| w <= now));
            for &id in ids {
                touches.push(Touch { id, key: (*d, k.clone()), in_emptied, in_replaced: replaced.is_some(), replaced_expired });
            }
        }
        let apply = |c: &mut ClientState, t: &Touch| {
            let stale = c.watched_stale.iter().position(|s| *s == t.key);
            match stale {
                Some(i) if !t.in_replaced => {
                    c.watched_stale.swap_remove(i);
                    return;
                }
                Some(_) if t.replaced_expired => return,
                None if !t.in_emptied && t.replaced_expired => {
                    c.watched_stale.push(t.key.clone());
                    return;
                }
                _ => {}
            }
            c.dirty_cas = true;
        };
        for t in &touches {
            match current.as_deref_mut() {
                Some(cur) if cur.id == t.id => apply(cur, t),
                _ => {
                    if let Some(c) = self.clients.get_mut(&t.id) {
                        apply(c, t);
                    }
                }
            }
        }
    }

    pub fn uptime_secs(&self) -> u64 {
        self.start_time.elapsed().as_secs()
    }
}

/// Redis's 24-bit LRU clock (seconds resolution).
pub fn lru_clock_now() -> u32 {
    ((super::now_ms() / 1000) as u32) & ((1 << 24) - 1)
}

pub fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n).map(|_| std::char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0')).collect()
}
