//! Replication state shared by the master side, the replica link and the server:
//! replication ids and offsets (PSYNC2), the backlog, the attached replicas, the
//! propagation feed, and what INFO replication / ROLE / WAIT report.

use crate::server::persistence::{notice, warning};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{mpsc, Notify};

use super::backlog::Backlog;
use crate::resp::{encode_command, Frame};

pub const NULL_REPLID: &str = "0000000000000000000000000000000000000000";

pub fn random_replid() -> String {
    let mut rng = rand::thread_rng();
    (0..40).map(|_| char::from_digit(rng.gen_range(0..16), 16).expect("hex digit")).collect()
}

/// The replication settings of redis.conf (kept here so the core only has to copy them in).
#[derive(Debug, Clone)]
pub struct ReplConfig {
    pub backlog_size: usize,
    pub backlog_ttl: Duration,
    pub ping_period: Duration,
    pub timeout: Duration,
    pub min_replicas_to_write: usize,
    pub min_replicas_max_lag: u64,
    /// Ours (`min-replicas-max-lag-ms`): when non-zero, a replica is good while its last ACK
    /// is at most this old, instead of Redis's whole-second `min-replicas-max-lag`.
    pub min_replicas_max_lag_ms: u64,
    /// Ours (`repl-ack-period-ms`): how often a replica sends REPLCONF ACK to its master.
    pub ack_period: Duration,
    pub replica_read_only: bool,
    pub replica_serve_stale_data: bool,
    pub replica_priority: u32,
    pub replica_announced: bool,
    pub announce_ip: Option<String>,
    pub announce_port: Option<u16>,
    pub masterauth: Option<String>,
    pub masteruser: Option<String>,
    pub diskless_sync: bool,
    pub diskless_sync_delay: Duration,
    pub rdb_compression: bool,
    /// Our own listening port (sent as REPLCONF listening-port).
    pub listening_port: u16,
    /// client-output-buffer-limit replica: hard limit in bytes (0 = none).
    pub replica_output_limit: u64,
    /// client-output-buffer-limit replica: soft limit in bytes (0 = none) and how long
    /// (seconds) a replica may stay above it.
    pub replica_output_soft_limit: u64,
    pub replica_output_soft_secs: u64,
    /// repl-diskless-sync-max-replicas: start the diskless transfer at once when this many
    /// replicas wait (0 = no maximum, wait the whole delay).
    pub diskless_sync_max_replicas: usize,
    /// repl-diskless-load (replica side).
    pub diskless_load: DisklessLoad,
}

/// `repl-diskless-load`: how a replica loads the RDB of a full sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisklessLoad {
    /// Receive the whole payload first, then empty the dataset and load it (clients get
    /// `-LOADING` meanwhile).
    #[default]
    Disabled,
    /// As `Disabled`, except that an empty dataset is not worth protecting: loading starts
    /// while the payload still streams in.
    OnEmptyDb,
    /// Keep serving the current dataset while the new one is loaded aside, then swap them
    /// at once; a failed transfer leaves the current dataset untouched.
    SwapDb,
}

impl DisklessLoad {
    pub fn parse(s: &str) -> Option<DisklessLoad> {
        match s.to_ascii_lowercase().as_str() {
            "disabled" => Some(DisklessLoad::Disabled),
            "on-empty-db" => Some(DisklessLoad::OnEmptyDb),
            "swapdb" => Some(DisklessLoad::SwapDb),
            _ => None,
        }
    }
}

impl ReplConfig {
    /// Whether `replica` counts for min-replicas-to-write (online, recent enough ACK).
    fn is_good_replica(&self, replica: &AttachedReplica) -> bool {
        if *replica.state.lock() != AttachedState::Online {
            return false;
        }
        if self.min_replicas_max_lag_ms > 0 {
            replica.ack_time.lock().elapsed() <= Duration::from_millis(self.min_replicas_max_lag_ms)
        } else {
            replica.lag_secs() <= self.min_replicas_max_lag
        }
    }

    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits { hard: self.replica_output_limit, soft: self.replica_output_soft_limit, soft_secs: self.replica_output_soft_secs }
    }
}

impl Default for ReplConfig {
    fn default() -> Self {
        ReplConfig {
            backlog_size: 1024 * 1024,
            backlog_ttl: Duration::from_secs(3600),
            ping_period: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
            min_replicas_max_lag_ms: 0,
            ack_period: Duration::from_millis(100),
            replica_read_only: true,
            replica_serve_stale_data: true,
            replica_priority: 100,
            replica_announced: true,
            announce_ip: None,
            announce_port: None,
            masterauth: None,
            masteruser: None,
            diskless_sync: true,
            diskless_sync_delay: Duration::from_secs(0),
            rdb_compression: true,
            listening_port: 6379,
            replica_output_limit: 256 * 1024 * 1024,
            replica_output_soft_limit: 64 * 1024 * 1024,
            replica_output_soft_secs: 60,
            diskless_sync_max_replicas: 0,
            diskless_load: DisklessLoad::Disabled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedState {
    WaitBgsave,
    SendBulk,
    Online,
}

impl AttachedState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachedState::WaitBgsave => "wait_bgsave",
            AttachedState::SendBulk => "send_bulk",
            AttachedState::Online => "online",
        }
    }
}

/// Where the stream for an attached replica goes.
pub enum ReplicaSink {
    /// A task owning the socket reads this channel (socket taken over by replication).
    Channel(mpsc::UnboundedSender<Bytes>),
    /// The server's own connection task for that client writes it.
    Client(ClientSink),
}

/// A replica served by the server's connection task.
pub struct ClientSink {
    pub tx: mpsc::UnboundedSender<crate::server::client::Outbound>,
    /// Bytes queued to the connection task and not yet taken by it
    /// (`ClientState::pending_out`: the connection task decrements it).
    pub queued: Arc<AtomicUsize>,
    /// Makes the connection task drop the socket at once, even with a write stuck on a
    /// replica that stopped reading (`ClientState::force_close`).
    pub force_close: Arc<AtomicBool>,
    /// `ip:port` of the connection (log lines).
    pub addr: String,
}

/// `client-output-buffer-limit replica <hard> <soft> <soft seconds>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputLimits {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

/// A replica connected to us (we are its master).
pub struct AttachedReplica {
    pub id: u64,
    pub ip: String,
    pub listening_port: u16,
    pub state: Mutex<AttachedState>,
    pub ack_offset: AtomicI64,
    pub ack_time: Mutex<Instant>,
    sink: ReplicaSink,
    /// While the RDB is being produced and sent (and, after a diskless transfer, until the
    /// replica's first ACK) the stream is held here (`Some`), then flushed.
    buffer: Mutex<Option<Vec<Bytes>>>,
    /// Bytes held in `buffer`.
    held_bytes: AtomicU64,
    /// Stream bytes handed to a client sink (the RDB payload and keep-alive newlines, which
    /// all precede them in the queue, are not counted: see [`AttachedReplica::output_used`]).
    stream_bytes: AtomicU64,
    /// Since when the output buffer is above the soft limit.
    soft_limit_since: Mutex<Option<Instant>>,
    /// Diskless transfer done: the held stream goes out on the replica's first ACK.
    start_stream_on_ack: AtomicBool,
    /// Full sync requested but not started yet (diskless sync delay): nothing is kept.
    awaiting_bgsave_start: AtomicBool,
    /// The server's client id when the sink is a client connection.
    pub client_id: Option<u64>,
    /// Bytes queued but not yet written to the socket (channel sinks).
    pub pending_bytes: AtomicU64,
    closed: AtomicBool,
    pub close_notify: Notify,
}

impl AttachedReplica {
    pub fn close(&self) {
        if let ReplicaSink::Client(sink) = &self.sink {
            sink.force_close.store(true, Ordering::SeqCst);
            let _ = sink.tx.send(crate::server::client::Outbound::Close);
        }
        self.closed.store(true, Ordering::SeqCst);
        self.close_notify.notify_waiters();
        self.close_notify.notify_one();
    }
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Adds stream bytes (held while the replica is not ready for them), then enforces the
    /// output buffer limits.
    fn send(&self, data: &Bytes, limits: &OutputLimits) {
        if self.is_closed() || self.awaiting_bgsave_start.load(Ordering::Relaxed) {
            return;
        }
        {
            let mut held = self.buffer.lock();
            if let Some(buf) = held.as_mut() {
                self.held_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                buf.push(data.clone());
            } else {
                drop(held);
                if !self.push_stream(data.clone()) {
                    self.close();
                    return;
                }
            }
        }
        self.enforce_output_limits(limits, Instant::now(), true);
    }

    /// Stream bytes going to the sink now.
    fn push_stream(&self, data: Bytes) -> bool {
        match &self.sink {
            ReplicaSink::Channel(tx) => {
                self.pending_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                tx.send(data).is_ok()
            }
            ReplicaSink::Client(sink) => {
                self.stream_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                sink.queued.fetch_add(data.len(), Ordering::Relaxed);
                sink.tx.send(crate::server::client::Outbound::Raw(data)).is_ok()
            }
        }
    }

    /// Sends bytes to the replica now, bypassing the stream buffer: `+FULLRESYNC`, keep-alive
    /// newlines, the RDB payload. Never counted against the output buffer limits.
    pub fn push(&self, data: Bytes) -> bool {
        match &self.sink {
            ReplicaSink::Channel(tx) => tx.send(data).is_ok(),
            ReplicaSink::Client(sink) => {
                sink.queued.fetch_add(data.len(), Ordering::Relaxed);
                sink.tx.send(crate::server::client::Outbound::Raw(data)).is_ok()
            }
        }
    }

    /// Output buffer in use, as Redis counts it for a replica: the held stream plus the
    /// stream bytes not yet taken by the connection. The connection takes its queue in
    /// order and every payload byte precedes every stream byte in it, so what is still
    /// queued is stream data up to `stream_bytes`.
    pub fn output_used(&self) -> u64 {
        let queued = match &self.sink {
            ReplicaSink::Channel(_) => self.pending_bytes.load(Ordering::Relaxed),
            ReplicaSink::Client(sink) => (sink.queued.load(Ordering::Relaxed) as u64).min(self.stream_bytes.load(Ordering::Relaxed)),
        };
        self.held_bytes.load(Ordering::Relaxed) + queued
    }

    /// Drops the replica over the hard limit, or above the soft limit for longer than
    /// the soft seconds (checkClientOutputBufferLimits). True if it was dropped.
    pub fn enforce_output_limits(&self, limits: &OutputLimits, now: Instant, from_feed: bool) -> bool {
        if self.is_closed() {
            return false;
        }
        let used = self.output_used();
        let hard = limits.hard > 0 && used >= limits.hard;
        let mut soft = false;
        if limits.soft > 0 && used >= limits.soft {
            let mut since = self.soft_limit_since.lock();
            match *since {
                None => *since = Some(now),
                Some(t) => soft = now.saturating_duration_since(t) > Duration::from_secs(limits.soft_secs),
            }
        } else {
            *self.soft_limit_since.lock() = None;
        }
        if !(hard || soft) {
            return false;
        }
        let addr = match &self.sink {
            ReplicaSink::Client(sink) => sink.addr.clone(),
            ReplicaSink::Channel(_) => format!("{}:{}", self.ip, self.listening_port),
        };
        // As Redis: found while adding output, the client is closed asynchronously; found by
        // the periodic check, at once.
        let outcome = if from_feed { "scheduled to be closed ASAP" } else { "closed" };
        warning!(
            "Client id={} addr={} laddr= fd= name= flags=S db=0 omem={} cmd=psync {} for overcoming of output buffer limits.",
            self.client_id.unwrap_or(self.id),
            addr,
            used,
            outcome
        );
        warning!("Connection with replica {}:{} lost.", self.ip, self.listening_port);
        self.close();
        true
    }

    pub fn lag_secs(&self) -> u64 {
        self.ack_time.lock().elapsed().as_secs()
    }

    /// Flushes the held stream (call under the replication lock, so no feed interleaves).
    fn flush_held(&self) {
        if let Some(held) = self.buffer.lock().take() {
            self.held_bytes.store(0, Ordering::Relaxed);
            for chunk in held {
                if !self.push_stream(chunk) {
                    self.close();
                    break;
                }
            }
        }
    }
}

/// State of our link to our master when we are a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Must connect (REPL_STATE_CONNECT).
    Connect,
    Connecting,
    Handshake,
    /// Receiving the RDB.
    Transfer,
    Connected,
}

impl LinkState {
    /// Name used by the ROLE command.
    pub fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MasterLink {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    pub last_io: Option<Instant>,
    pub down_since: Option<Instant>,
    pub sync_total_bytes: i64,
    pub sync_read_bytes: i64,
    /// Bumped on every REPLICAOF so that a stale link task stops.
    pub generation: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ReplStats {
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
}

pub(crate) struct Inner {
    pub replid: String,
    pub replid2: String,
    pub second_repl_offset: i64,
    pub master_repl_offset: i64,
    pub backlog: Option<Backlog>,
    /// Database of the last SELECT in the stream we generate (None: emit one).
    pub stream_db: Option<u32>,
    /// As a replica: the database selected by our master's stream at `master_repl_offset`
    /// (Redis's `server.master->db`). It outlives the link, as Redis's cached master does:
    /// a PSYNC continues the stream where it stopped, with no SELECT to repeat it.
    pub master_stream_db: u32,
    pub replicas: Vec<Arc<AttachedReplica>>,
    pub master: Option<MasterLink>,
    pub stats: ReplStats,
    pub no_replicas_since: Option<Instant>,
    next_replica_id: u64,
    /// `master_repl_offset` right after our last `REPLCONF GETACK *`: while it has not
    /// moved, the replicas' answer to that one covers every write, so WAITs share it (as
    /// Redis sends one GETACK per event loop iteration for all blocked clients).
    getack_sent_at: Option<i64>,
}

/// Outcome of a PSYNC request on the master side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncDecision {
    /// `+CONTINUE`: send the backlog from this offset.
    Continue { from: i64 },
    Full { reason: String },
}

pub struct Replication {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) config: Mutex<ReplConfig>,
    /// Wakes WAIT callers when an ACK arrives.
    pub(crate) ack_notify: Notify,
    /// Bumped by CLIENT KILL TYPE master: the link drops and reconnects (PSYNC).
    kill_epoch: AtomicU64,
    pub(crate) kill_notify: Notify,
    /// Duplicate of the current link's socket (see [`Replication::stop_link_task`]).
    link_socket: Mutex<Option<(u64, std::net::TcpStream)>>,
    /// `inner.master.is_some()`, readable without the lock (checked for every command).
    replica: AtomicBool,
    /// FAILOVER in progress: the link's next PSYNC carries `FAILOVER` (the target
    /// becomes a master on it).
    pub failover_psync: AtomicBool,
    /// The reply to that PSYNC: Some(true) accepted (+CONTINUE / +FULLRESYNC), Some(false)
    /// refused; read by the server cron, which ends or aborts the failover.
    pub failover_outcome: Mutex<Option<bool>>,
}

impl Replication {
    pub fn new(config: ReplConfig) -> Arc<Replication> {
        Arc::new(Replication {
            inner: Mutex::new(Inner {
                replid: random_replid(),
                replid2: NULL_REPLID.to_string(),
                second_repl_offset: -1,
                master_repl_offset: 0,
                backlog: None,
                stream_db: None,
                master_stream_db: 0,
                replicas: Vec::new(),
                master: None,
                stats: ReplStats::default(),
                no_replicas_since: Some(Instant::now()),
                next_replica_id: 1,
                getack_sent_at: None,
            }),
            config: Mutex::new(config),
            ack_notify: Notify::new(),
            kill_epoch: AtomicU64::new(0),
            kill_notify: Notify::new(),
            link_socket: Mutex::new(None),
            replica: AtomicBool::new(false),
            failover_psync: AtomicBool::new(false),
            failover_outcome: Mutex::new(None),
        })
    }

    pub fn config(&self) -> ReplConfig {
        self.config.lock().clone()
    }

    pub fn update_config(&self, f: impl FnOnce(&mut ReplConfig)) {
        let mut cfg = self.config.lock();
        f(&mut cfg);
        let size = cfg.backlog_size;
        drop(cfg);
        if let Some(b) = self.inner.lock().backlog.as_mut() {
            if b.size() != size.max(16 * 1024) {
                b.resize(size);
            }
        }
    }

    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Acquire)
    }

    pub fn master_addr(&self) -> Option<(String, u16)> {
        self.inner.lock().master.as_ref().map(|m| (m.host.clone(), m.port))
    }

    pub fn master_link_up(&self) -> bool {
        self.inner.lock().master.as_ref().is_some_and(|m| m.state == LinkState::Connected)
    }

    pub fn replid(&self) -> String {
        self.inner.lock().replid.clone()
    }

    /// DEBUG CHANGE-REPL-ID: a new primary id and no secondary one (changeReplicationId +
    /// clearReplicationId2), so that the next PSYNC of a replica is refused.
    pub fn change_replication_id(&self) {
        let mut inner = self.inner.lock();
        inner.replid = random_replid();
        inner.replid2 = NULL_REPLID.into();
        inner.second_repl_offset = -1;
    }

    pub fn master_repl_offset(&self) -> i64 {
        self.inner.lock().master_repl_offset
    }

    /// INFO memory's replication buffer fields as Redis 7 counts its shared replication
    /// buffer: (mem_replication_backlog, mem_clients_slaves, mem_total_replication_buffers).
    /// The stream is held once for the backlog and every replica, so the total is the
    /// longest of the backlog and the replicas' unsent output; the replicas' share is what
    /// exceeds the backlog.
    pub fn buffer_memory(&self) -> (u64, u64, u64) {
        let inner = self.inner.lock();
        let backlog = inner.backlog.as_ref().map_or(0, |b| b.histlen() as u64);
        let pending = inner.replicas.iter().map(|r| r.output_used()).max().unwrap_or(0);
        let total = backlog.max(pending);
        (backlog, total - backlog, total)
    }

    pub fn stats(&self) -> ReplStats {
        self.inner.lock().stats
    }

    pub fn reset_stats(&self) {
        self.inner.lock().stats = ReplStats::default();
    }

    /// The attached replicas as (ip, listening port, online, acknowledged offset).
    pub fn replica_list(&self) -> Vec<(String, u16, bool, i64)> {
        let inner = self.inner.lock();
        inner.replicas.iter().map(|r| (r.ip.clone(), r.listening_port, *r.state.lock() == AttachedState::Online, r.ack_offset.load(Ordering::Acquire))).collect()
    }

    /// Number of attached replicas.
    pub fn connected_replicas(&self) -> usize {
        self.inner.lock().replicas.len()
    }

    // ------------------------------------------------------------ propagation (master)

    /// Feeds a write command executed on this server (as a master) to the backlog and
    /// every attached replica, with a SELECT first when the database changes. Must be
    /// called in execution order (inside the keyspace's write critical section).
    pub fn propagate(&self, db: u32, argv: &[Bytes]) {
        let mut inner = self.inner.lock();
        if inner.master.is_some() || (inner.backlog.is_none() && inner.replicas.is_empty()) {
            return;
        }
        let mut buf = BytesMut::new();
        if inner.stream_db != Some(db) {
            let dbs = db.to_string();
            encode_command(&[b"SELECT", dbs.as_bytes()], &mut buf);
            inner.stream_db = Some(db);
        }
        let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
        encode_command(&refs, &mut buf);
        let limit = self.config.lock().output_limits();
        feed_locked(&mut inner, buf.freeze(), limit);
    }

    /// DEBUG REPLICATE: feeds `argv` to the backlog and replicas as is, in whatever db the
    /// stream has selected (no SELECT), as Redis's replicationFeedSlaves with slaveseldb.
    pub fn propagate_in_stream_db(&self, argv: &[Bytes]) {
        let mut inner = self.inner.lock();
        if inner.master.is_some() || (inner.backlog.is_none() && inner.replicas.is_empty()) {
            return;
        }
        let mut buf = BytesMut::new();
        let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
        encode_command(&refs, &mut buf);
        let limit = self.config.lock().output_limits();
        feed_locked(&mut inner, buf.freeze(), limit);
    }

    /// Several commands that must reach replicas together (MULTI ... EXEC).
    pub fn propagate_many(&self, db: u32, commands: &[Vec<Bytes>]) {
        for c in commands {
            self.propagate(db, c);
        }
    }

    /// Feeds raw bytes received from our master (replica side): they go unchanged to the
    /// backlog and to sub-replicas, so offsets stay identical along a chain. `db` is the
    /// database the stream selects once they are applied.
    pub fn feed_from_master_stream(&self, data: Bytes, db: u32) {
        let mut inner = self.inner.lock();
        inner.master_stream_db = db;
        let limit = self.config.lock().output_limits();
        feed_locked(&mut inner, data, limit);
    }

    /// Master-side periodic duties (call every 100ms-1s): PING replicas every
    /// repl-ping-replica-period, newline keep-alive to replicas waiting for the RDB,
    /// drop timed-out replicas, free the backlog after repl-backlog-ttl.
    pub fn cron(&self, now: Instant, last_ping: &mut Instant) {
        let cfg = self.config();
        let mut inner = self.inner.lock();
        if inner.master.is_none() && !inner.replicas.is_empty() && now.duration_since(*last_ping) >= cfg.ping_period {
            *last_ping = now;
            let mut buf = BytesMut::new();
            encode_command(&[b"PING"], &mut buf);
            feed_locked(&mut inner, buf.freeze(), cfg.output_limits());
        }
        let limits = cfg.output_limits();
        for r in &inner.replicas {
            // The soft limit is about time: check it even when nothing new is fed.
            r.enforce_output_limits(&limits, now, false);
            let state = *r.state.lock();
            // (Replicas waiting for the RDB get keep-alive newlines from their own task.)
            if state == AttachedState::Online && r.lag_secs() > cfg.timeout.as_secs() {
                warning!("Disconnecting timedout replica (streaming sync): {}:{}", r.ip, r.listening_port);
                r.close();
            }
        }
        inner.replicas.retain(|r| !r.is_closed());
        if inner.replicas.is_empty() {
            let since = *inner.no_replicas_since.get_or_insert(now);
            if inner.master.is_none() && inner.backlog.is_some() && !cfg.backlog_ttl.is_zero() && now.duration_since(since) >= cfg.backlog_ttl {
                notice!("Replication backlog freed after {} seconds without connected replicas.", cfg.backlog_ttl.as_secs());
                inner.backlog = None;
                // A new backlog means a new history: change the id as Redis does.
                inner.replid = random_replid();
                inner.replid2 = NULL_REPLID.into();
                inner.second_repl_offset = -1;
            }
        } else {
            inner.no_replicas_since = None;
        }
    }

    // ------------------------------------------------------------ master side: PSYNC

    /// Decides how to serve `PSYNC replid offset` (masterTryPartialResynchronization).
    pub fn psync_decision(&self, replid: &str, offset: i64) -> PsyncDecision {
        let inner = self.inner.lock();
        if inner.master.is_some() && inner.master.as_ref().is_some_and(|m| m.state != LinkState::Connected) {
            return PsyncDecision::Full { reason: "we are a replica not connected to our master".into() };
        }
        let id_ok = replid == inner.replid || (replid == inner.replid2 && offset <= inner.second_repl_offset);
        if !id_ok {
            return PsyncDecision::Full {
                reason: if replid == "?" {
                    "full resync requested by the replica".into()
                } else {
                    format!("replication ID mismatch (replica asked for '{replid}', my replication IDs are '{}' and '{}')", inner.replid, inner.replid2)
                },
            };
        }
        match &inner.backlog {
            Some(b) if b.covers(offset) => PsyncDecision::Continue { from: offset },
            Some(b) => PsyncDecision::Full {
                reason: format!(
                    "requested offset {offset} not in the backlog range {}..{}",
                    b.first_offset(),
                    b.end_offset() + 1
                ),
            },
            None => PsyncDecision::Full { reason: "no backlog".into() },
        }
    }

    /// Registers a replica for a partial resync: returns the replica handle, its stream
    /// receiver and the backlog bytes to send after `+CONTINUE`, atomically with respect to
    /// the feed. `None` if the backlog no longer covers `from`.
    pub fn attach_partial(
        &self,
        ip: String,
        listening_port: u16,
        from: i64,
    ) -> Option<(Arc<AttachedReplica>, mpsc::UnboundedReceiver<Bytes>, Vec<u8>, String)> {
        let mut inner = self.inner.lock();
        let backlog_bytes = inner.backlog.as_ref()?.copy_from(from)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let r = new_attached(&mut inner, ip, listening_port, AttachedState::Online, from - 1, ReplicaSink::Channel(tx), None, false);
        inner.stats.sync_partial_ok += 1;
        let replid = inner.replid.clone();
        Some((r, rx, backlog_bytes, replid))
    }

    /// Partial resync for a replica served by the server's connection task: the backlog
    /// bytes are queued to the client right after the `+CONTINUE` reply.
    pub fn attach_partial_client(
        &self,
        ip: String,
        listening_port: u16,
        from: i64,
        client_id: u64,
        sink: ClientSink,
    ) -> Option<(Arc<AttachedReplica>, String)> {
        let mut inner = self.inner.lock();
        let backlog_bytes = inner.backlog.as_ref()?.copy_from(from)?;
        let r = new_attached(&mut inner, ip, listening_port, AttachedState::Online, from - 1, ReplicaSink::Client(sink), Some(client_id), false);
        if !backlog_bytes.is_empty() && !r.push_stream(Bytes::from(backlog_bytes)) {
            r.close();
        }
        inner.stats.sync_partial_ok += 1;
        Some((r, inner.replid.clone()))
    }

    /// Registers a replica for a full resync. Call it inside the keyspace barrier of the
    /// snapshot: the stream the replica gets starts exactly at the returned offset.
    /// Creates the backlog (with a new replication id) if there is none yet.
    pub fn attach_full(&self, ip: String, listening_port: u16) -> (Arc<AttachedReplica>, mpsc::UnboundedReceiver<Bytes>, String, i64, u32) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (r, replid, offset, db) = self.attach_full_sink(ip, listening_port, ReplicaSink::Channel(tx), None, false);
        (r, rx, replid, offset, db)
    }

    /// Full resync with any sink; `buffered` holds the stream until [`Replication::go_online`]
    /// (needed when the sink also carries the RDB payload).
    pub fn attach_full_sink(
        &self,
        ip: String,
        listening_port: u16,
        sink: ReplicaSink,
        client_id: Option<u64>,
        buffered: bool,
    ) -> (Arc<AttachedReplica>, String, i64, u32) {
        let mut inner = self.inner.lock();
        let r = new_attached(&mut inner, ip, listening_port, AttachedState::WaitBgsave, 0, sink, client_id, false);
        let (replid, offset, stream_db) = self.begin_full_sync_locked(&mut inner, &r, buffered);
        (r, replid, offset, stream_db)
    }

    /// A replica that asked for a full sync which starts later (`repl-diskless-sync-delay`):
    /// listed (`wait_bgsave`), but the stream is not kept for it until
    /// [`Replication::begin_full_sync`].
    pub fn attach_full_deferred(&self, ip: String, listening_port: u16, sink: ReplicaSink, client_id: Option<u64>) -> Arc<AttachedReplica> {
        let mut inner = self.inner.lock();
        let r = new_attached(&mut inner, ip, listening_port, AttachedState::WaitBgsave, 0, sink, client_id, false);
        r.awaiting_bgsave_start.store(true, Ordering::SeqCst);
        r
    }

    /// Starts the full sync of a deferred replica: from now on its stream is held until the
    /// payload went out. Call it in the same critical section as the snapshot.
    /// Returns (replid, offset) for `+FULLRESYNC` and the payload's `repl-stream-db`.
    pub fn begin_full_sync(&self, r: &AttachedReplica) -> (String, i64, u32) {
        let mut inner = self.inner.lock();
        self.begin_full_sync_locked(&mut inner, r, true)
    }

    fn begin_full_sync_locked(&self, inner: &mut Inner, r: &AttachedReplica, buffered: bool) -> (String, i64, u32) {
        if inner.backlog.is_none() {
            if inner.master.is_none() && inner.replicas.iter().all(|other| other.id == r.id || other.awaiting_bgsave_start.load(Ordering::SeqCst)) {
                inner.replid = random_replid();
                inner.replid2 = NULL_REPLID.into();
                inner.second_repl_offset = -1;
            }
            let size = self.config.lock().backlog_size;
            let off = inner.master_repl_offset;
            inner.backlog = Some(Backlog::new(size, off));
        }
        if buffered {
            *r.buffer.lock() = Some(Vec::new());
        }
        r.awaiting_bgsave_start.store(false, Ordering::SeqCst);
        inner.stats.sync_full += 1;
        // The payload's repl-stream-db. A master forces a SELECT at the start of the stream
        // the replica gets; a replica passes its master's stream on as it is, so the
        // sub-replica must know the database that stream is in.
        let stream_db = if inner.master.is_some() {
            inner.master_stream_db
        } else {
            inner.stream_db = None;
            0
        };
        (inner.replid.clone(), inner.master_repl_offset, stream_db)
    }

    /// After the RDB went out: flush the held stream and mark the replica online,
    /// atomically with respect to the feed.
    pub fn go_online(&self, r: &AttachedReplica) {
        let mut inner = self.inner.lock();
        // It missed the GETACKs sent so far.
        inner.getack_sent_at = None;
        r.flush_held();
        *r.ack_time.lock() = Instant::now();
        *r.state.lock() = AttachedState::Online;
    }

    /// Before a diskless transfer (Redis's `repl_start_cmd_stream_on_ack`): the stream
    /// accumulated since the snapshot goes out on the replica's first `REPLCONF ACK`, which
    /// shows that it loaded the payload (so that, after a failed load, the replica cannot
    /// confuse its own failure with its master's). Armed before the payload is queued, so
    /// even an ACK racing with [`Replication::transfer_done`] starts the stream.
    pub fn stream_on_first_ack(&self, r: &AttachedReplica) {
        r.start_stream_on_ack.store(true, Ordering::SeqCst);
    }

    /// The diskless payload went out: the replica is online (as Redis, even before its
    /// first ACK).
    pub fn transfer_done(&self, r: &AttachedReplica) {
        let mut inner = self.inner.lock();
        inner.getack_sent_at = None;
        *r.ack_time.lock() = Instant::now();
        *r.state.lock() = AttachedState::Online;
    }

    /// Finds the attached replica served by a client connection.
    pub fn replica_by_client(&self, client_id: u64) -> Option<Arc<AttachedReplica>> {
        self.inner.lock().replicas.iter().find(|r| r.client_id == Some(client_id)).cloned()
    }

    pub fn count_partial_err(&self) {
        self.inner.lock().stats.sync_partial_err += 1;
    }

    pub fn detach(&self, id: u64) {
        let mut inner = self.inner.lock();
        inner.replicas.retain(|r| {
            if r.id == id {
                r.closed.store(true, Ordering::SeqCst);
                r.close_notify.notify_waiters();
            }
            r.id != id
        });
    }

    /// CLIENT KILL TYPE replica / slave.
    pub fn kill_replicas(&self) -> usize {
        let inner = self.inner.lock();
        for r in &inner.replicas {
            r.close();
        }
        inner.replicas.len()
    }

    pub fn record_ack(&self, replica: &AttachedReplica, offset: i64) {
        if replica.start_stream_on_ack.swap(false, Ordering::SeqCst) {
            let _inner = self.inner.lock();
            replica.flush_held();
        }
        replica.ack_offset.fetch_max(offset, Ordering::SeqCst);
        *replica.ack_time.lock() = Instant::now();
        self.ack_notify.notify_waiters();
    }

    // ------------------------------------------------------------ WAIT / min-replicas

    /// Replicas whose acknowledged offset is at least `offset`.
    pub fn replicas_acked(&self, offset: i64) -> usize {
        let inner = self.inner.lock();
        inner
            .replicas
            .iter()
            .filter(|r| *r.state.lock() == AttachedState::Online && r.ack_offset.load(Ordering::SeqCst) >= offset)
            .count()
    }

    /// Asks replicas for an ACK (REPLCONF GETACK *), as WAIT does.
    pub fn request_acks(&self) {
        let mut inner = self.inner.lock();
        if inner.master.is_some() || inner.replicas.is_empty() {
            return;
        }
        if inner.getack_sent_at == Some(inner.master_repl_offset) {
            return;
        }
        let mut buf = BytesMut::new();
        encode_command(&[b"REPLCONF", b"GETACK", b"*"], &mut buf);
        let limit = self.config.lock().output_limits();
        feed_locked(&mut inner, buf.freeze(), limit);
        inner.getack_sent_at = Some(inner.master_repl_offset);
    }

    /// WAIT numreplicas timeout: resolves with the number of replicas that acknowledged
    /// `offset` (the caller's last write), once `needed` did or when `timeout` (0 = forever)
    /// expires. The caller sends the GETACK ([`Replication::request_acks`]) first, under the
    /// server lock: from this task it could land between the MULTI and the EXEC of a
    /// transaction being propagated, and a replica would then forward the stream reordered.
    pub async fn wait(&self, offset: i64, needed: usize, timeout: Option<Duration>) -> usize {
        let acked = self.replicas_acked(offset);
        if acked >= needed || self.is_replica() {
            return acked;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let notified = self.ack_notify.notified();
            let acked = self.replicas_acked(offset);
            if acked >= needed {
                return acked;
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return self.replicas_acked(offset);
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Replicas online with lag <= min-replicas-max-lag (`min_slaves_good_slaves`).
    pub fn good_replicas(&self) -> usize {
        let cfg = self.config.lock().clone();
        let inner = self.inner.lock();
        inner.replicas.iter().filter(|r| cfg.is_good_replica(r)).count()
    }

    /// The error a write must get on this server, if any: `-NOREPLICAS` (master with too
    /// few good replicas) or `-READONLY` (read-only replica). `from_master` commands pass.
    pub fn write_refusal(&self, from_master: bool) -> Option<Frame> {
        if from_master {
            return None;
        }
        let cfg = self.config.lock().clone();
        if self.is_replica() {
            if cfg.replica_read_only {
                return Some(Frame::error("READONLY You can't write against a read only replica."));
            }
            return None;
        }
        if cfg.min_replicas_to_write > 0 && self.good_replicas() < cfg.min_replicas_to_write {
            return Some(Frame::error("NOREPLICAS Not enough good replicas to write."));
        }
        None
    }

    /// `-NOREPLICAS` when min-replicas-to-write is set on a master without enough good
    /// replicas (checked by the dispatcher for write commands).
    pub fn min_replicas_refusal(&self) -> Option<Frame> {
        let min = self.config.lock().min_replicas_to_write;
        if min == 0 || self.is_replica() || self.good_replicas() >= min {
            return None;
        }
        Some(Frame::error("NOREPLICAS Not enough good replicas to write."))
    }

    /// `-MASTERDOWN` for data commands on a replica whose link is down with
    /// replica-serve-stale-data no.
    pub fn stale_refusal(&self) -> Option<Frame> {
        if !self.is_replica() {
            return None;
        }
        let serve = self.config.lock().replica_serve_stale_data;
        let inner = self.inner.lock();
        match &inner.master {
            Some(m) if m.state != LinkState::Connected && !serve => Some(Frame::error(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            )),
            _ => None,
        }
    }

    // ------------------------------------------------------------ role changes

    /// REPLICAOF NO ONE: keep the history under replid2 so that the other replicas and
    /// the old master can continue with PSYNC (shiftReplicationId).
    pub fn promote(&self) -> bool {
        let mut inner = self.inner.lock();
        if inner.master.is_none() {
            return false;
        }
        inner.master = None;
        self.replica.store(false, Ordering::Release);
        inner.replid2 = std::mem::replace(&mut inner.replid, random_replid());
        inner.second_repl_offset = inner.master_repl_offset + 1;
        inner.stream_db = None;
        // No backlog is made here: a replica that never synced has no history to offer, and
        // its first replica gets a fresh one (as Redis: master_repl_offset stays 0 until then).
        // Sub-replicas reconnect and learn the new id via +CONTINUE.
        for r in &inner.replicas {
            r.close();
        }
        notice!(
            "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
            inner.replid2,
            inner.second_repl_offset,
            inner.replid
        );
        drop(inner);
        self.stop_link_task();
        true
    }

    /// REPLICAOF host port: returns the generation the link task must carry.
    pub fn set_master(&self, host: String, port: u16) -> u64 {
        let mut inner = self.inner.lock();
        let generation = inner.master.as_ref().map(|m| m.generation + 1).unwrap_or(1) + rand::random::<u32>() as u64;
        if inner.master.is_none() {
            // Our own history goes on with the new master's stream, which starts with a
            // SELECT (replicationCacheMasterUsingMyself: no database selected).
            inner.master_stream_db = 0;
        }
        self.replica.store(true, Ordering::Release);
        inner.master = Some(MasterLink {
            host,
            port,
            state: LinkState::Connect,
            last_io: None,
            down_since: None,
            sync_total_bytes: -1,
            sync_read_bytes: 0,
            generation,
        });
        for r in &inner.replicas {
            r.close();
        }
        drop(inner);
        self.stop_link_task();
        generation
    }

    pub fn link_generation(&self) -> Option<u64> {
        self.inner.lock().master.as_ref().map(|m| m.generation)
    }

    /// Updates the master link if `generation` is still current; false means "stop".
    pub fn update_link(&self, generation: u64, f: impl FnOnce(&mut MasterLink)) -> bool {
        let mut inner = self.inner.lock();
        match inner.master.as_mut() {
            Some(m) if m.generation == generation => {
                f(m);
                true
            }
            _ => false,
        }
    }

    /// The `PSYNC` arguments we send to our master: our history if we have one.
    pub fn psync_request(&self) -> (String, i64) {
        let inner = self.inner.lock();
        if inner.backlog.is_some() || inner.master_repl_offset > 0 {
            (inner.replid.clone(), inner.master_repl_offset + 1)
        } else {
            ("?".into(), -1)
        }
    }

    /// The database our master's stream selects at our offset (replica side).
    pub fn master_stream_db(&self) -> u32 {
        self.inner.lock().master_stream_db
    }

    /// After a full sync as a replica: adopt the master's history. `stream_db` is the
    /// payload's `repl-stream-db`: the database its stream selects at `offset`.
    pub fn adopt_master_history(&self, replid: &str, offset: i64, stream_db: u32) {
        let size = self.config.lock().backlog_size;
        let mut inner = self.inner.lock();
        inner.master_stream_db = stream_db;
        inner.replid = replid.to_string();
        inner.replid2 = NULL_REPLID.into();
        inner.second_repl_offset = -1;
        inner.master_repl_offset = offset;
        inner.backlog = Some(Backlog::new(size, offset));
        for r in &inner.replicas {
            r.close();
        }
    }

    /// A master restarted from an RDB with `repl-id`/`repl-offset`: that history becomes
    /// its secondary one (replid2, valid up to `offset + 1`), its offset continues from
    /// `offset` and a backlog starts there (empty), so replicas of the old run can PSYNC.
    pub fn restore_as_master(&self, replid: &str, offset: i64) {
        let size = self.config.lock().backlog_size;
        let mut inner = self.inner.lock();
        inner.replid2 = replid.to_string();
        inner.second_repl_offset = offset + 1;
        inner.master_repl_offset = offset;
        inner.stream_db = None;
        inner.backlog = Some(Backlog::new(size, offset));
    }

    /// After `+CONTINUE <newid>`: keep serving our history under replid2.
    pub fn continue_with_id(&self, new_replid: &str) {
        let mut inner = self.inner.lock();
        if inner.replid != new_replid {
            inner.replid2 = std::mem::replace(&mut inner.replid, new_replid.to_string());
            inner.second_repl_offset = inner.master_repl_offset + 1;
            for r in &inner.replicas {
                r.close();
            }
        }
        let size = self.config.lock().backlog_size;
        if inner.backlog.is_none() {
            let off = inner.master_repl_offset;
            inner.backlog = Some(Backlog::new(size, off));
        }
    }

    /// CLIENT KILL TYPE master: drop the link (the link task reconnects with PSYNC).
    pub fn kill_master_link(&self) -> bool {
        {
            let mut inner = self.inner.lock();
            let Some(m) = inner.master.as_mut() else { return false };
            if m.state == LinkState::Connected {
                m.down_since = Some(Instant::now());
            }
            m.state = LinkState::Connect;
        }
        self.stop_link_task();
        true
    }

    /// Makes the running link task (if any) drop its connection right away. The socket is
    /// shut down here, not only when the task notices: the task may be waiting for the
    /// keyspace (a DEBUG SLEEP on this server), and Redis's master sees the link close at
    /// once (its backlog TTL starts counting, the replica's next PSYNC may fail).
    fn stop_link_task(&self) {
        self.kill_epoch.fetch_add(1, Ordering::SeqCst);
        if let Some((_, socket)) = self.link_socket.lock().take() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        self.kill_notify.notify_waiters();
    }

    /// A handle on the socket (a duplicate) of the link task started at kill `epoch`, for
    /// [`Replication::stop_link_task`].
    pub fn register_link_socket(&self, epoch: u64, socket: std::net::TcpStream) {
        *self.link_socket.lock() = Some((epoch, socket));
    }

    /// The link of kill `epoch` closed (a newer link's socket stays registered).
    pub fn forget_link_socket(&self, epoch: u64) {
        let mut held = self.link_socket.lock();
        if held.as_ref().is_some_and(|(e, _)| *e == epoch) {
            *held = None;
        }
    }

    pub fn kill_epoch(&self) -> u64 {
        self.kill_epoch.load(Ordering::SeqCst)
    }

    // ------------------------------------------------------------ INFO / ROLE

    /// The `# Replication` section of INFO, field for field as Redis 7.0.
    pub fn info_section(&self) -> String {
        use std::fmt::Write;
        let cfg = self.config();
        let inner = self.inner.lock();
        let mut s = String::from("# Replication\r\n");
        match &inner.master {
            None => s.push_str("role:master\r\n"),
            Some(m) => {
                s.push_str("role:slave\r\n");
                let _ = write!(s, "master_host:{}\r\nmaster_port:{}\r\n", m.host, m.port);
                let up = m.state == LinkState::Connected;
                let _ = write!(s, "master_link_status:{}\r\n", if up { "up" } else { "down" });
                let last_io = m.last_io.filter(|_| up).map(|t| t.elapsed().as_secs() as i64).unwrap_or(-1);
                let _ = write!(s, "master_last_io_seconds_ago:{last_io}\r\n");
                let syncing = m.state == LinkState::Transfer;
                let _ = write!(s, "master_sync_in_progress:{}\r\n", u8::from(syncing));
                let _ = write!(s, "slave_read_repl_offset:{}\r\n", inner.master_repl_offset);
                let _ = write!(s, "slave_repl_offset:{}\r\n", inner.master_repl_offset);
                if syncing {
                    let left = if m.sync_total_bytes >= 0 { m.sync_total_bytes - m.sync_read_bytes } else { -1 };
                    let perc = if m.sync_total_bytes > 0 { m.sync_read_bytes as f64 * 100.0 / m.sync_total_bytes as f64 } else { 0.0 };
                    let _ = write!(
                        s,
                        "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
                        m.sync_total_bytes,
                        m.sync_read_bytes,
                        left,
                        perc,
                        m.last_io.map(|t| t.elapsed().as_secs() as i64).unwrap_or(0)
                    );
                }
                if !up {
                    let down = m.down_since.map(|t| t.elapsed().as_secs() as i64).unwrap_or(-1);
                    let _ = write!(s, "master_link_down_since_seconds:{down}\r\n");
                }
                let _ = write!(s, "slave_priority:{}\r\n", cfg.replica_priority);
                let _ = write!(s, "slave_read_only:{}\r\n", u8::from(cfg.replica_read_only));
                let _ = write!(s, "replica_announced:{}\r\n", u8::from(cfg.replica_announced));
            }
        }
        let _ = write!(s, "connected_slaves:{}\r\n", inner.replicas.len());
        if inner.master.is_none() && cfg.min_replicas_to_write > 0 {
            let good = inner.replicas.iter().filter(|r| cfg.is_good_replica(r)).count();
            let _ = write!(s, "min_slaves_good_slaves:{good}\r\n");
        }
        for (i, r) in inner.replicas.iter().enumerate() {
            let state = *r.state.lock();
            let _ = write!(
                s,
                "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
                r.ip,
                r.listening_port,
                state.as_str(),
                r.ack_offset.load(Ordering::SeqCst),
                r.lag_secs()
            );
        }
        s.push_str("master_failover_state:no-failover\r\n");
        let _ = write!(s, "master_replid:{}\r\nmaster_replid2:{}\r\n", inner.replid, inner.replid2);
        let _ = write!(s, "master_repl_offset:{}\r\nsecond_repl_offset:{}\r\n", inner.master_repl_offset, inner.second_repl_offset);
        match &inner.backlog {
            Some(b) => {
                let first = if b.histlen() > 0 { b.first_offset() } else { b.end_offset() + 1 };
                let _ = write!(
                    s,
                    "repl_backlog_active:1\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
                    cfg.backlog_size,
                    first,
                    b.histlen()
                );
            }
            None => {
                let _ = write!(
                    s,
                    "repl_backlog_active:0\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
                    cfg.backlog_size
                );
            }
        }
        s
    }

    /// The ROLE reply.
    pub fn role_frame(&self) -> Frame {
        let inner = self.inner.lock();
        match &inner.master {
            None => Frame::Array(vec![
                Frame::bulk("master"),
                Frame::Integer(inner.master_repl_offset),
                Frame::Array(
                    inner
                        .replicas
                        .iter()
                        .filter(|r| *r.state.lock() == AttachedState::Online)
                        .map(|r| {
                            Frame::Array(vec![
                                Frame::bulk(r.ip.clone()),
                                Frame::bulk(r.listening_port.to_string()),
                                Frame::bulk(r.ack_offset.load(Ordering::SeqCst).to_string()),
                            ])
                        })
                        .collect(),
                ),
            ]),
            Some(m) => Frame::Array(vec![
                Frame::bulk("slave"),
                Frame::bulk(m.host.clone()),
                Frame::Integer(i64::from(m.port)),
                Frame::bulk(m.state.role_name()),
                Frame::Integer(if m.state == LinkState::Connected { inner.master_repl_offset } else { -1 }),
            ]),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn new_attached(
    inner: &mut Inner,
    ip: String,
    listening_port: u16,
    state: AttachedState,
    ack_offset: i64,
    sink: ReplicaSink,
    client_id: Option<u64>,
    buffered: bool,
) -> Arc<AttachedReplica> {
    let id = inner.next_replica_id;
    inner.next_replica_id += 1;
    let r = Arc::new(AttachedReplica {
        id,
        ip,
        listening_port,
        state: Mutex::new(state),
        ack_offset: AtomicI64::new(ack_offset),
        ack_time: Mutex::new(Instant::now()),
        sink,
        buffer: Mutex::new(buffered.then(Vec::new)),
        held_bytes: AtomicU64::new(0),
        stream_bytes: AtomicU64::new(0),
        soft_limit_since: Mutex::new(None),
        start_stream_on_ack: AtomicBool::new(false),
        awaiting_bgsave_start: AtomicBool::new(false),
        client_id,
        pending_bytes: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        close_notify: Notify::new(),
    });
    inner.replicas.push(r.clone());
    inner.no_replicas_since = None;
    inner.getack_sent_at = None;
    r
}

fn feed_locked(inner: &mut Inner, data: Bytes, limits: OutputLimits) {
    inner.master_repl_offset += data.len() as i64;
    if let Some(b) = inner.backlog.as_mut() {
        b.append(&data);
    }
    for r in &inner.replicas {
        r.send(&data, &limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn feed_selects_db_and_counts_offsets() {
        let r = Replication::new(ReplConfig::default());
        r.propagate(0, &argv(&["SET", "a", "1"]));
        assert_eq!(r.master_repl_offset(), 0, "no backlog, no replicas: nothing is fed");
        let (_rep, mut rx, _id, off, _) = r.attach_full("127.0.0.1".into(), 7000);
        assert_eq!(off, 0);
        r.propagate(0, &argv(&["SET", "a", "1"]));
        let got = rx.try_recv().unwrap();
        assert_eq!(&got[..], b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n");
        assert_eq!(r.master_repl_offset(), got.len() as i64);
        r.propagate(0, &argv(&["DEL", "a"]));
        assert_eq!(&rx.try_recv().unwrap()[..], b"*2\r\n$3\r\nDEL\r\n$1\r\na\r\n");
    }

    #[test]
    fn psync_decisions_follow_psync2_rules() {
        let r = Replication::new(ReplConfig::default());
        let (_a, _rx, id, _, _) = r.attach_full("127.0.0.1".into(), 7000);
        for i in 0..10 {
            r.propagate(0, &argv(&["SET", "k", &i.to_string()]));
        }
        let end = r.master_repl_offset();
        assert_eq!(r.psync_decision(&id, end + 1), PsyncDecision::Continue { from: end + 1 });
        assert_eq!(r.psync_decision(&id, 1), PsyncDecision::Continue { from: 1 });
        assert!(matches!(r.psync_decision(&id, end + 2), PsyncDecision::Full { .. }));
        assert!(matches!(r.psync_decision("?", -1), PsyncDecision::Full { .. }));
        assert!(matches!(r.psync_decision(&random_replid(), 1), PsyncDecision::Full { .. }));

        // Become a replica of someone then get promoted: old id is valid up to the offset.
        r.set_master("127.0.0.1".into(), 1);
        assert!(r.promote());
        let (new_id, old_id) = {
            let i = r.inner.lock();
            (i.replid.clone(), i.replid2.clone())
        };
        assert_eq!(old_id, id);
        assert_ne!(new_id, id);
        assert_eq!(r.psync_decision(&id, end + 1), PsyncDecision::Continue { from: end + 1 });
        r.propagate(0, &argv(&["SET", "after", "promotion"]));
        // A replica that followed the old master beyond our history must full-sync.
        assert!(matches!(r.psync_decision(&id, end + 2), PsyncDecision::Full { .. }));
        assert_eq!(r.psync_decision(&new_id, end + 1), PsyncDecision::Continue { from: end + 1 });
    }

    #[test]
    fn info_fields_as_redis() {
        let r = Replication::new(ReplConfig::default());
        let info = r.info_section();
        for field in ["role:master", "connected_slaves:0", "master_failover_state:no-failover", "master_replid2:0000000000000000000000000000000000000000", "second_repl_offset:-1", "repl_backlog_active:0", "repl_backlog_size:1048576"] {
            assert!(info.contains(field), "{field} missing in {info}");
        }
        r.set_master("10.0.0.1".into(), 6379);
        let info = r.info_section();
        for field in ["role:slave", "master_host:10.0.0.1", "master_port:6379", "master_link_status:down", "master_last_io_seconds_ago:-1", "slave_priority:100", "slave_read_only:1", "replica_announced:1"] {
            assert!(info.contains(field), "{field} missing in {info}");
        }
        assert_eq!(r.write_refusal(false).unwrap(), Frame::error("READONLY You can't write against a read only replica."));
        assert!(r.write_refusal(true).is_none());
    }

    #[test]
    fn concurrent_waits_share_one_getack() {
        let r = Replication::new(ReplConfig::default());
        let (rep, mut rx, _, _, _) = r.attach_full("127.0.0.1".into(), 7000);
        r.go_online(&rep);
        r.propagate(0, &argv(&["SET", "a", "1"]));
        let _ = rx.try_recv();
        r.request_acks();
        r.request_acks();
        let getack = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
        assert_eq!(&rx.try_recv().unwrap()[..], getack);
        assert!(rx.try_recv().is_err(), "a second GETACK with no write in between");
        r.propagate(0, &argv(&["SET", "a", "2"]));
        let _ = rx.try_recv();
        r.request_acks();
        assert_eq!(&rx.try_recv().unwrap()[..], getack, "a write since the last GETACK needs a new one");
    }

    #[test]
    fn wait_counts_acks() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = Replication::new(ReplConfig::default());
            let (rep, _rx, _, _, _) = r.attach_full("127.0.0.1".into(), 7000);
            *rep.state.lock() = AttachedState::Online;
            r.propagate(0, &argv(&["SET", "a", "1"]));
            let target = r.master_repl_offset();
            assert_eq!(r.wait(target, 1, Some(Duration::from_millis(50))).await, 0);
            let r2 = r.clone();
            let rep2 = rep.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                r2.record_ack(&rep2, target + 1000);
            });
            assert_eq!(r.wait(target, 1, Some(Duration::from_secs(5))).await, 1);
        });
    }
}
