//! Master/replica replication (PSYNC2), interoperable with Redis 7.0.
//!
//! - [`state`]: ids, offsets, backlog, attached replicas, propagation, INFO/ROLE/WAIT.
//! - [`master`]: REPLCONF and serving PSYNC/SYNC on a connection the server hands over.
//! - [`replica`]: the link to our master (handshake, full/partial sync, streaming, ACKs).
//! - [`stream`]: the master's command stream split into steps and bytes (no I/O).
//! The keyspace is reached through [`crate::server::persistence::host::DataHost`].

pub mod backlog;
pub mod master;
pub mod replica;
pub mod state;
pub mod stream;

pub use crate::server::persistence::host::{ApplySource, DataHost, DatasetSnapshot};
pub use master::{replconf, serve_replica, ReplconfInfo};
pub use replica::run_master_link;
pub use state::{PsyncDecision, ReplConfig, Replication};


use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::state::{AttachedReplica, ClientSink, ReplicaSink, ReplStats};
use super::client::{ClientState, Outbound};
use super::command::{cmd, CommandSpec, Ctx};
use super::commands::pubsub::NO_REPLY;
use super::config::Config;
use super::persistence::host::snapshot_to_rdb;
use super::persistence::rdb::{AuxInfo, RdbSaveOptions};
use super::state::{ServerState, Shared};
use crate::resp::Frame;

/// Held in `ServerState::repl`.
pub struct ReplicationState {
    pub repl: Arc<Replication>,
    /// Client id of our master's connection (CLIENT LIST/KILL TYPE master).
    pub master_client: Option<u64>,
    /// REPLCONF declarations per client, until PSYNC.
    replconf: HashMap<u64, ReplconfInfo>,
    last_ping: Instant,
    /// Diskless full syncs waiting for repl-diskless-sync-delay.
    pending_full: Vec<PendingFullSync>,
    last_presync_newline: Instant,
    /// A FAILOVER command's progress (Redis's failover_state and target).
    pub failover: Option<Failover>,
}

/// FAILOVER [TO host port [FORCE]] [TIMEOUT ms]: writes are paused until the target (or
/// any replica) has our offset, then we turn into its replica with `PSYNC ... FAILOVER`.
pub struct Failover {
    target: Option<(String, u16)>,
    /// Unix ms after which the failover is aborted (or forced); 0 = no timeout.
    end_ms: i64,
    force: bool,
    /// PSYNC FAILOVER sent (failover-in-progress), else waiting-for-sync.
    in_progress: bool,
}

impl Default for ReplicationState {
    fn default() -> Self {
        ReplicationState {
            repl: Replication::new(ReplConfig::default()),
            master_client: None,
            replconf: HashMap::new(),
            last_ping: Instant::now(),
            pending_full: Vec::new(),
            last_presync_newline: Instant::now(),
            failover: None,
        }
    }
}

impl std::fmt::Debug for ReplicationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationState").field("master_client", &self.master_client).finish()
    }
}

impl ReplicationState {
    /// Every propagated write, in execution order (called under the server lock).
    pub fn feed(&mut self, db: usize, argv: &[Bytes]) {
        self.repl.propagate(db as u32, argv);
    }

    pub fn is_replica(&self) -> bool {
        self.repl.is_replica()
    }

    pub fn stats(&self) -> ReplStats {
        self.repl.stats()
    }
}

/// The replication directives of the configuration.
pub fn repl_config(cfg: &Config, port: u16) -> ReplConfig {
    let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let secs = |name: &str| Duration::from_secs(cfg.get_int(name).max(0) as u64);
    let obuf: Vec<&str> = cfg.get("client-output-buffer-limit").split(' ').collect();
    let replica_class = obuf.chunks(4).find(|c| c[0] == "slave" || c[0] == "replica");
    let limit_field = |i: usize| replica_class.and_then(|c| c.get(i)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ReplConfig {
        backlog_size: cfg.get_int("repl-backlog-size").max(16 * 1024) as usize,
        backlog_ttl: secs("repl-backlog-ttl"),
        ping_period: secs("repl-ping-replica-period").max(Duration::from_secs(1)),
        timeout: secs("repl-timeout").max(Duration::from_secs(1)),
        min_replicas_to_write: cfg.get_int("min-replicas-to-write").max(0) as usize,
        min_replicas_max_lag: cfg.get_int("min-replicas-max-lag").max(0) as u64,
        min_replicas_max_lag_ms: cfg.get_int("min-replicas-max-lag-ms").max(0) as u64,
        ack_period: Duration::from_millis(cfg.get_int("repl-ack-period-ms").max(1) as u64),
        replica_read_only: cfg.get_bool("replica-read-only"),
        replica_serve_stale_data: cfg.get_bool("replica-serve-stale-data"),
        replica_priority: cfg.get_int("replica-priority").max(0) as u32,
        replica_announced: cfg.get_bool("replica-announced"),
        announce_ip: non_empty(cfg.get("replica-announce-ip")),
        announce_port: match cfg.get_int("replica-announce-port") {
            0 => None,
            p => Some(p as u16),
        },
        masterauth: non_empty(cfg.get("masterauth")),
        masteruser: non_empty(cfg.get("masteruser")),
        diskless_sync: cfg.get_bool("repl-diskless-sync"),
        diskless_sync_delay: secs("repl-diskless-sync-delay"),
        rdb_compression: cfg.get_bool("rdbcompression"),
        listening_port: port,
        replica_output_limit: limit_field(1),
        replica_output_soft_limit: limit_field(2),
        replica_output_soft_secs: limit_field(3),
        diskless_sync_max_replicas: cfg.get_int("repl-diskless-sync-max-replicas").max(0) as usize,
        diskless_load: state::DisklessLoad::parse(cfg.get("repl-diskless-load")).unwrap_or_default(),
    }
}

/// The `replicaof` directive: `host port`, or empty.
fn configured_master(cfg: &Config) -> Option<(String, u16)> {
    let v = cfg.get("replicaof");
    let mut parts = v.split_whitespace();
    let host = parts.next()?;
    let port = parts.next()?.parse().ok()?;
    Some((host.to_string(), port))
}

pub fn master_client_id(srv: &ServerState) -> Option<u64> {
    srv.repl.master_client
}

/// Called by the link (through the host) when it is up (synced) or down: registers the
/// master's connection as a client flagged `M`, whose kill (CLIENT KILL TYPE master) drops
/// the link, which then reconnects with PSYNC.
pub fn master_link_changed(srv: &mut ServerState, connected: bool, addr: &str) {
    if let Some(id) = srv.repl.master_client.take() {
        srv.clients.remove(&id);
    }
    if !connected {
        return;
    }
    let id = srv.new_client_id();
    let mut c = ClientState::new(id, addr.to_string(), format!("127.0.0.1:{}", srv.port), super::now_ms(), true);
    c.is_master_link = true;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    c.tx = Some(tx);
    srv.clients.insert(id, c);
    srv.repl.master_client = Some(id);
    let repl = srv.repl.repl.clone();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if matches!(msg, Outbound::Close) {
                repl.kill_master_link();
                return;
            }
        }
    });
}

/// After loading an RDB with `repl-id` / `repl-offset` on a configured replica: keep that
/// history so the first sync can be a partial one (as Redis 7.0 does after a restart).
pub fn restore_history(srv: &mut ServerState, replid: &str, offset: i64, stream_db: u32) {
    if replid.len() != 40 || offset < 0 {
        return;
    }
    if configured_master(&srv.config).is_some() {
        srv.repl.repl.adopt_master_history(replid, offset, stream_db);
    } else {
        // A master keeps the file's history as its secondary one, so its replicas can
        // continue with a partial resync after its restart (Redis 7.0's loadDataFromDisk).
        srv.repl.repl.restore_as_master(replid, offset);
    }
}

pub fn info_section(srv: &ServerState) -> String {
    let text = srv.repl.repl.info_section().replace("master_failover_state:no-failover", &format!("master_failover_state:{}", failover_state_name(srv)));
    text.strip_prefix("# Replication\r\n").unwrap_or(&text).to_string()
}

/// Every 100 ms from the server cron: settings, PINGs, timeouts, backlog TTL.
/// Makes the replication settings of `srv.config` effective (CONFIG SET applies at once, as
/// in Redis: a sentinel reading INFO right after `CONFIG SET replica-priority 0` must see it).
pub fn apply_config(srv: &mut ServerState) {
    let cfg = repl_config(&srv.config, srv.port);
    srv.repl.repl.update_config(|c| *c = cfg);
}

pub fn cron(srv: &mut ServerState) {
    apply_config(srv);
    let mut last_ping = srv.repl.last_ping;
    srv.repl.repl.cron(Instant::now(), &mut last_ping);
    srv.repl.last_ping = last_ping;
    let live: Vec<u64> = srv.clients.keys().copied().collect();
    srv.repl.replconf.retain(|id, _| live.contains(id));
    start_due_full_syncs(srv);
    update_failover(srv);
}

pub fn start(shared: &Arc<Shared>) {
    let (target, cfg) = {
        let srv = shared.state.lock();
        (configured_master(&srv.config), repl_config(&srv.config, srv.port))
    };
    let repl = shared.state.lock().repl.repl.clone();
    repl.update_config(|c| *c = cfg);
    if let Some((host, port)) = target {
        start_link(&repl, host, port);
    }
}

fn start_link(repl: &Arc<Replication>, host: String, port: u16) {
    super::log::notice(&format!("Connecting to MASTER {host}:{port}"));
    let generation = repl.set_master(host, port);
    if let Some(h) = super::persistence::shared_host() {
        let h: Arc<dyn DataHost> = h;
        tokio::spawn(run_master_link(repl.clone(), h, generation));
    }
}

// ------------------------------------------------------------------ commands

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("replicaof", 3, "admin noscript stale no_async_loading", 0, 0, 0, "admin slow dangerous", replicaof_command)
            .group("server")
            .since("5.0.0")
            .summary("Make the server a replica of another instance, or promote it as master."),
        cmd("slaveof", 3, "admin noscript stale no_async_loading", 0, 0, 0, "admin slow dangerous", replicaof_command)
            .group("server")
            .summary("Make the server a replica of another instance, or promote it as master."),
        cmd("role", 1, "noscript loading stale fast", 0, 0, 0, "admin fast dangerous", role_command)
            .group("server")
            .since("2.8.12")
            .summary("Return the role of the instance in the context of replication"),
        cmd("replconf", -1, "admin noscript loading stale allow_busy", 0, 0, 0, "admin slow dangerous", replconf_command)
            .group("server")
            .since("3.0.0")
            .summary("An internal command for configuring the replication stream"),
        cmd("psync", -3, "admin noscript no_async_loading no_multi", 0, 0, 0, "admin slow dangerous", psync_command)
            .group("server")
            .since("2.8.0")
            .summary("Internal command used for replication"),
        cmd("sync", 1, "admin noscript no_async_loading no_multi", 0, 0, 0, "admin slow dangerous", psync_command)
            .group("server")
            .summary("Internal command used for replication"),
        cmd("failover", -1, "admin noscript stale", 0, 0, 0, "admin slow dangerous", failover_command)
            .group("server")
            .since("6.2.0")
            .summary("Start a coordinated failover between this server and one of its replicas."),
        cmd("wait", 3, "noscript", 0, 0, 0, "slow connection", wait_command)
            .group("generic")
            .since("3.0.0")
            .summary("Wait for the synchronous replication of all the write commands sent in the context of the current connection"),
    ]
}

fn replicaof_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if ctx.srv.repl.failover.is_some() {
        return Frame::error("ERR REPLICAOF not allowed while failing over.");
    }
    let repl = ctx.srv.repl.repl.clone();
    if args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one") {
        become_master(ctx.srv, "user request from 'id=... addr=... laddr=... fd=... name= age=... idle=0'");
        return Frame::ok();
    }
    let host = String::from_utf8_lossy(&args[1]).to_string();
    let port = match crate::resp::parse_i64(&args[2]) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => return Frame::error("ERR Invalid master port"),
    };
    if repl.master_addr() == Some((host.clone(), port)) {
        return Frame::Simple("OK Already connected to specified master".into());
    }
    become_replica(ctx.srv, host, port);
    Frame::ok()
}

/// Turns into a master (REPLICAOF NO ONE, a FAILOVER's target, an aborted failover): the
/// master's client goes, the oom score and the log's role follow, and the change is logged
/// with `why`. Nothing when already a master.
fn become_master(srv: &mut ServerState, why: &str) {
    if !srv.repl.repl.promote() {
        return;
    }
    if let Some(id) = srv.repl.master_client.take() {
        srv.clients.remove(&id);
    }
    srv.config.set_raw("replicaof", String::new());
    super::oom::apply_logged(&srv.config);
    super::log::set_role('M');
    super::log::notice(&format!("MASTER MODE enabled ({why})"));
}

/// Turns into a replica of `host:port` (REPLICAOF, a FAILOVER's last step): the old
/// master's client goes, blocked clients are disconnected, the oom score and the log's role
/// follow, and the link starts.
fn become_replica(srv: &mut ServerState, host: String, port: u16) {
    if let Some(id) = srv.repl.master_client.take() {
        srv.clients.remove(&id);
    }
    disconnect_blocked_clients(srv);
    srv.config.set_raw("replicaof", format!("{host} {port}"));
    super::oom::apply_logged(&srv.config);
    super::log::set_role('S');
    let repl = srv.repl.repl.clone();
    start_link(&repl, host, port);
}

/// Turning into a replica (Redis's disconnectAllBlockedClients): a client blocked on keys
/// would otherwise be served by the master's stream, popping on the replica what the
/// master keeps. Every blocked client gets `-UNBLOCKED` and is disconnected after it.
fn disconnect_blocked_clients(srv: &mut ServerState) {
    let ids: Vec<u64> = srv.blocked.keys().copied().collect();
    for id in ids {
        if super::dispatch::unregister_blocked(srv, id).is_none() {
            continue;
        }
        if let Some(tx) = srv.clients.get(&id).and_then(|c| c.tx.as_ref()) {
            let _ = tx.send(Outbound::Unblocked(Frame::error(
                "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
            )));
            let _ = tx.send(Outbound::Close);
        }
    }
}

fn role_command(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    ctx.srv.repl.repl.role_frame()
}

fn no_reply() -> Frame {
    Frame::Simple(NO_REPLY.to_string())
}

fn replconf_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let id = ctx.client.id;
    if ctx.client.is_replica {
        if args.len() >= 3 && args[1].eq_ignore_ascii_case(b"ack") {
            if let (Some(r), Some(off)) = (ctx.srv.repl.repl.replica_by_client(id), crate::resp::parse_i64(&args[2])) {
                ctx.srv.repl.repl.record_ack(&r, off);
            }
        }
        return no_reply();
    }
    let info = ctx.srv.repl.replconf.entry(id).or_default();
    match replconf(info, args) {
        Some(f) => f,
        None => no_reply(),
    }
}

fn psync_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if ctx.client.is_replica {
        return no_reply();
    }
    let repl = ctx.srv.repl.repl.clone();
    if args.len() > 3 && args[0].eq_ignore_ascii_case(b"psync") && args[3].eq_ignore_ascii_case(b"failover") {
        let replid = String::from_utf8_lossy(&args[1]).to_string();
        super::log::warning(&format!("Failover request received for replid {replid}."));
        if !repl.is_replica() {
            return Frame::error("ERR PSYNC FAILOVER can't be sent to a master.");
        }
        if replid != repl.replid() {
            return Frame::error("ERR PSYNC FAILOVER replid must match my replid.");
        }
        let why = format!("failover request from 'addr={}'", ctx.client.addr);
        become_master(ctx.srv, &why);
    }
    if ctx.srv.repl.failover.is_some() {
        return Frame::error("NOMASTERLINK Can't SYNC while failing over");
    }
    let repl = ctx.srv.repl.repl.clone();
    if repl.is_replica() && !repl.master_link_up() {
        return Frame::error("NOMASTERLINK Can't SYNC while not connected with my master");
    }
    let Some(tx) = ctx.client.tx.clone() else { return Frame::error("ERR no connection") };
    let (queued, force_close, addr) = (ctx.client.pending_out.clone(), ctx.client.force_close.clone(), ctx.client.addr.clone());
    let sink = || ClientSink { tx: tx.clone(), queued: queued.clone(), force_close: force_close.clone(), addr: addr.clone() };
    let info = ctx.srv.repl.replconf.remove(&ctx.client.id).unwrap_or_default();
    let peer_ip = ctx.client.addr.rsplit_once(':').map(|(ip, _)| ip.trim_matches(|c| c == '[' || c == ']').to_string()).unwrap_or_default();
    let ip = info.ip_address.clone().unwrap_or(peer_ip);
    let port = info.listening_port.unwrap_or(0);
    let is_psync = args[0].eq_ignore_ascii_case(b"psync");
    if is_psync && crate::resp::parse_i64(&args[2]).is_none() {
        let name = if ip.is_empty() { format!("client id #{}", ctx.client.id) } else { format!("{ip}:{port}") };
        super::log::warning(&format!("Replica {name} asks for synchronization but with a wrong offset"));
        ctx.srv.repl.replconf.insert(ctx.client.id, info);
        return Frame::error("ERR value is not an integer or out of range");
    }
    let decision = if is_psync {
        let replid = String::from_utf8_lossy(&args[1]).to_string();
        let offset = crate::resp::parse_i64(&args[2]).unwrap_or(-1);
        let d = repl.psync_decision(&replid, offset);
        if let PsyncDecision::Full { reason } = &d {
            if replid != "?" {
                repl.count_partial_err();
                super::log::notice(&format!("Partial resynchronization not accepted: {reason}"));
            }
        }
        d
    } else {
        PsyncDecision::Full { reason: "SYNC".into() }
    };
    super::log::notice(&format!("Replica {ip}:{port} asks for synchronization"));
    if let PsyncDecision::Continue { from } = decision {
        if let Some((_r, replid)) = repl.attach_partial_client(ip.clone(), port, from, ctx.client.id, sink()) {
            ctx.client.is_replica = true;
            super::log::notice(&format!("Partial resynchronization request from {ip}:{port} accepted, from offset {from}."));
            return Frame::Simple(if info.capa_psync2 { format!("CONTINUE {replid}") } else { "CONTINUE".into() });
        }
    }
    // Full resync. The replica is listed (wait_bgsave) now; its `+FULLRESYNC` goes out when
    // the snapshot is taken, which for diskless replicas waits repl-diskless-sync-delay for
    // others to share the same transfer, as Redis does.
    ctx.client.is_replica = true;
    let cfg = repl.config();
    let diskless = cfg.diskless_sync && info.capa_eof;
    let replica = repl.attach_full_deferred(ip.clone(), port, ReplicaSink::Client(sink()), Some(ctx.client.id));
    let pending = PendingFullSync { replica, is_psync, capa_eof: info.capa_eof, since: Instant::now(), rdb_filter: info.rdb_filter };
    // a filtered payload (REPLCONF rdb-filter-only) is made for this replica alone
    if diskless && !cfg.diskless_sync_delay.is_zero() && info.rdb_filter.is_none() {
        super::log::notice("Delay next BGSAVE for diskless SYNC");
        ctx.srv.repl.pending_full.push(pending);
        start_due_full_syncs(ctx.srv);
    } else {
        start_full_syncs(ctx.srv, vec![pending]);
    }
    no_reply()
}

/// A replica waiting for the start of its full sync.
pub struct PendingFullSync {
    replica: Arc<AttachedReplica>,
    is_psync: bool,
    capa_eof: bool,
    since: Instant,
    /// REPLCONF rdb-filter-only: no keys, functions when `Some(true)`; such a replica
    /// always has a batch of its own.
    rdb_filter: Option<bool>,
}

/// Starts the delayed diskless transfers once the oldest waiter waited
/// repl-diskless-sync-delay, or repl-diskless-sync-max-replicas are waiting
/// (shouldStartChildForReplication).
fn start_due_full_syncs(srv: &mut ServerState) {
    srv.repl.pending_full.retain(|p| !p.replica.is_closed());
    if srv.repl.pending_full.is_empty() {
        return;
    }
    let cfg = srv.repl.repl.config();
    let waiting = srv.repl.pending_full.len();
    let max_idle = srv.repl.pending_full.iter().map(|p| p.since.elapsed()).max().unwrap_or_default();
    let due = !cfg.diskless_sync
        || (cfg.diskless_sync_max_replicas > 0 && waiting >= cfg.diskless_sync_max_replicas)
        || max_idle >= cfg.diskless_sync_delay;
    if due {
        let batch = std::mem::take(&mut srv.repl.pending_full);
        start_full_syncs(srv, batch);
    } else if srv.repl.last_presync_newline.elapsed() >= Duration::from_secs(1) {
        // Keep the waiting replicas' read timeout from firing (replicationCron).
        srv.repl.last_presync_newline = Instant::now();
        for p in &srv.repl.pending_full {
            p.replica.push(Bytes::from_static(b"\n"));
        }
    }
}

/// One snapshot, one RDB, sent to every replica of `batch` (all get the same offset):
/// `+FULLRESYNC`, then the payload (`$<len>` or, for diskless, `$EOF:<mark>`), then the
/// stream held since the snapshot.
fn start_full_syncs(srv: &mut ServerState, batch: Vec<PendingFullSync>) {
    let repl = srv.repl.repl.clone();
    let cfg = repl.config();
    // One transfer for all: diskless only if every replica can take it (mincapa).
    let diskless = cfg.diskless_sync && batch.iter().all(|p| p.capa_eof);
    let rdb_filter = match batch.as_slice() {
        [only] => only.rdb_filter,
        _ => None,
    };
    let mut targets = Vec::new();
    let mut history = None;
    for p in batch {
        if p.replica.is_closed() {
            continue;
        }
        let (replid, offset, stream_db) = repl.begin_full_sync(&p.replica);
        if p.is_psync && !p.replica.push(Bytes::from(format!("+FULLRESYNC {replid} {offset}\r\n"))) {
            p.replica.close();
            continue;
        }
        history.get_or_insert((replid, offset, stream_db));
        targets.push(p.replica);
    }
    let Some((replid, offset, stream_db)) = history else { return };
    // The keyspace is copied in the same critical section, so the RDB matches the offset.
    let mut snapshot = super::persistence::background_snapshot(srv);
    if let Some(functions) = rdb_filter {
        snapshot = Box::new(super::persistence::host::WithoutData(snapshot, functions));
    }
    let aux = AuxInfo {
        ctime_secs: chrono::Utc::now().timestamp(),
        used_mem: srv.used_memory() as u64,
        replication: Some((i64::from(stream_db), replid, offset)),
        aof_base: false,
    };
    let opts = RdbSaveOptions { compression: cfg.rdb_compression, ..Default::default() };
    super::log::notice(&format!("Starting BGSAVE for SYNC with target: {}", if diskless { "replicas sockets" } else { "disk" }));
    let job_flag = RdbJobFlag::raise(&srv.persist.svc);
    tokio::spawn(async move {
        let _job_flag = job_flag;
        // A plain thread, outside the runtime: the snapshot's capture steps run as a task
        // on the runtime and this thread waits for them.
        let (done, mut job) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("repl-rdb".into()).spawn(move || {
            let mut out = Vec::new();
            let _ = done.send(snapshot_to_rdb(&*snapshot, &aux, &opts, &mut out).map(|_| out));
        });
        if spawned.is_err() {
            super::log::warning("Background RDB for replica sync failed: cannot start a thread");
            for r in &targets {
                r.close();
            }
            return;
        }
        let mut keepalive = tokio::time::interval(Duration::from_secs(1));
        keepalive.tick().await;
        let rdb = loop {
            tokio::select! {
                r = &mut job => break r,
                _ = keepalive.tick() => {
                    targets.retain(|r| !r.is_closed() && r.push(Bytes::from_static(b"\n")));
                    if targets.is_empty() {
                        return;
                    }
                }
            }
        };
        let Ok(Ok(rdb)) = rdb else {
            super::log::warning("Background RDB for replica sync failed");
            for r in &targets {
                r.close();
            }
            return;
        };
        let rdb = Bytes::from(rdb);
        for replica in targets {
            let name = format!("{}:{}", replica.ip, replica.listening_port);
            let sent = if diskless {
                repl.stream_on_first_ack(&replica);
                let mark = state::random_replid();
                replica.push(Bytes::from(format!("$EOF:{mark}\r\n"))) && replica.push(rdb.clone()) && replica.push(Bytes::from(mark))
            } else {
                *replica.state.lock() = state::AttachedState::SendBulk;
                replica.push(Bytes::from(format!("${}\r\n", rdb.len()))) && replica.push(rdb.clone())
            };
            if !sent {
                replica.close();
                continue;
            }
            if diskless {
                super::log::notice(&format!("Streamed RDB transfer with replica {name} succeeded (socket). Waiting for REPLCONF ACK from slave to enable streaming"));
                repl.transfer_done(&replica);
            } else {
                repl.go_online(&replica);
            }
            super::log::notice(&format!("Synchronization with replica {name} succeeded"));
        }
    });
}

/// Counts a full-sync RDB job in `repl_rdb_jobs` for its lifetime (INFO's
/// `rdb_bgsave_in_progress` is 1 while one runs, as with Redis's RDB child).
struct RdbJobFlag(Arc<super::persistence::service::Persistence>);

impl RdbJobFlag {
    fn raise(svc: &Arc<super::persistence::service::Persistence>) -> Self {
        svc.state.repl_rdb_jobs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RdbJobFlag(svc.clone())
    }
}

impl Drop for RdbJobFlag {
    fn drop(&mut self) {
        self.0.state.repl_rdb_jobs.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn failover_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() == 2 && args[1].eq_ignore_ascii_case(b"abort") {
        if ctx.srv.repl.failover.is_none() {
            return Frame::error("ERR No failover in progress.");
        }
        abort_failover(ctx.srv, "Failover manually aborted");
        return Frame::ok();
    }
    let mut timeout_ms: i64 = 0;
    let mut force = false;
    let mut target: Option<(String, i64)> = None;
    let mut j = 1;
    while j < args.len() {
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"timeout") && j + 1 < args.len() && timeout_ms == 0 {
            let Some(t) = crate::resp::parse_i64(&args[j + 1]) else { return Frame::error("ERR value is not an integer or out of range") };
            if t <= 0 {
                return Frame::error("ERR FAILOVER timeout must be greater than 0");
            }
            timeout_ms = t;
            j += 2;
        } else if a.eq_ignore_ascii_case(b"to") && j + 2 < args.len() && target.is_none() {
            let Some(p) = crate::resp::parse_i64(&args[j + 2]) else { return Frame::error("ERR value is not an integer or out of range") };
            target = Some((String::from_utf8_lossy(&args[j + 1]).to_string(), p));
            j += 3;
        } else if a.eq_ignore_ascii_case(b"force") && !force {
            force = true;
            j += 1;
        } else {
            return Frame::error("ERR syntax error");
        }
    }
    if ctx.srv.repl.failover.is_some() {
        return Frame::error("ERR FAILOVER already in progress.");
    }
    let repl = ctx.srv.repl.repl.clone();
    if repl.is_replica() {
        return Frame::error("ERR FAILOVER is not valid when server is a replica.");
    }
    let replicas = repl.replica_list();
    if replicas.is_empty() {
        return Frame::error("ERR FAILOVER requires connected replicas.");
    }
    if force && (timeout_ms == 0 || target.is_none()) {
        return Frame::error("ERR FAILOVER with force option requires both a timeout and target HOST and IP.");
    }
    let target = match target {
        Some((host, port)) => {
            let Some(found) = replicas.iter().find(|(ip, p, _, _)| *ip == host && i64::from(*p) == port) else {
                return Frame::error("ERR FAILOVER target HOST and PORT is not a replica.");
            };
            if !found.2 {
                return Frame::error("ERR FAILOVER target replica is not online.");
            }
            super::log::notice(&format!("FAILOVER requested to {host}:{port}."));
            Some((host, found.1))
        }
        None => {
            super::log::notice("FAILOVER requested to any replica.");
            None
        }
    };
    let end_ms = if timeout_ms > 0 { super::now_ms() + timeout_ms } else { 0 };
    ctx.srv.repl.failover = Some(Failover { target, end_ms, force, in_progress: false });
    // Writes wait until the failover ends (Redis's PAUSE_DURING_FAILOVER, writes only).
    ctx.srv.client_pause_until_ms.store(i64::MAX, std::sync::atomic::Ordering::SeqCst);
    ctx.srv.client_pause_writes_only = true;
    Frame::ok()
}

/// INFO's master_failover_state.
pub fn failover_state_name(srv: &ServerState) -> &'static str {
    match &srv.repl.failover {
        None => "no-failover",
        Some(f) if f.in_progress => "failover-in-progress",
        Some(_) => "waiting-for-sync",
    }
}

fn clear_failover(srv: &mut ServerState) {
    srv.repl.failover = None;
    srv.repl.repl.failover_psync.store(false, std::sync::atomic::Ordering::SeqCst);
    *srv.repl.repl.failover_outcome.lock() = None;
    srv.client_pause_until_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    srv.client_pause_writes_only = false;
}

fn abort_failover(srv: &mut ServerState, why: &str) {
    let Some(f) = srv.repl.failover.as_ref() else { return };
    match &f.target {
        Some((h, p)) => super::log::notice(&format!("FAILOVER to {h}:{p} aborted: {why}")),
        None => super::log::notice(&format!("FAILOVER to any replica aborted: {why}")),
    }
    if f.in_progress {
        become_master(srv, "failover aborted");
    }
    clear_failover(srv);
}

/// From the cron: the failover's timeout, its target catching up, the PSYNC's outcome.
fn update_failover(srv: &mut ServerState) {
    let Some(f) = srv.repl.failover.as_ref() else { return };
    if f.in_progress {
        let outcome = srv.repl.repl.failover_outcome.lock().take();
        match outcome {
            Some(true) => clear_failover(srv),
            Some(false) => abort_failover(srv, "Failover target rejected psync request"),
            None => {}
        }
        return;
    }
    let now = super::now_ms();
    if f.end_ms > 0 && f.end_ms <= now {
        if f.force {
            if let Some((h, p)) = f.target.clone() {
                super::log::notice(&format!("FAILOVER to {h}:{p} time out exceeded, failing over."));
                start_failover_link(srv, h, p);
                return;
            }
        }
        abort_failover(srv, "Replica never caught up before timeout");
        return;
    }
    let repl = srv.repl.repl.clone();
    let offset = repl.master_repl_offset();
    let replicas = repl.replica_list();
    let synced = match &f.target {
        Some((h, p)) => replicas.iter().find(|(ip, port, _, ack)| ip == h && port == p && *ack == offset).map(|(ip, port, _, _)| (ip.clone(), *port)),
        None => replicas.iter().find(|(_, _, _, ack)| *ack == offset).map(|(ip, port, _, _)| (ip.clone(), *port)),
    };
    if let Some((h, p)) = synced {
        super::log::notice(&format!("Failover target {h}:{p} is synced, failing over."));
        start_failover_link(srv, h, p);
    }
}

/// Becomes a replica of the failover target; the link's PSYNC carries FAILOVER.
fn start_failover_link(srv: &mut ServerState, host: String, port: u16) {
    if let Some(f) = srv.repl.failover.as_mut() {
        f.in_progress = true;
        f.target = Some((host.clone(), port));
    }
    let repl = srv.repl.repl.clone();
    *repl.failover_outcome.lock() = None;
    repl.failover_psync.store(true, std::sync::atomic::Ordering::SeqCst);
    become_replica(srv, host, port);
}

fn wait_command(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let repl = ctx.srv.repl.repl.clone();
    if repl.is_replica() {
        return Frame::error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    let Some(needed) = crate::resp::parse_i64(&args[1]) else { return Frame::error("ERR value is not an integer or out of range") };
    let timeout = match crate::resp::parse_i64(&args[2]) {
        Some(t) if t < 0 => return Frame::error("ERR timeout is negative"),
        Some(t) => t,
        None => return Frame::error("ERR timeout is not an integer or out of range"),
    };
    let target = repl.master_repl_offset();
    let acked = repl.replicas_acked(target) as i64;
    if acked >= needed || ctx.in_exec || ctx.client.is_master_link {
        return Frame::Integer(acked);
    }
    let Some(host) = super::persistence::shared_host() else { return Frame::Integer(acked) };
    let id = ctx.client.id;
    let timeout = (timeout > 0).then(|| Duration::from_millis(timeout as u64));
    repl.request_acks();
    tokio::spawn(async move {
        let n = repl.wait(target, needed.max(0) as usize, timeout).await;
        let mut srv = host.shared.lock_async().await;
        if srv.blocked.contains_key(&id) {
            super::dispatch::unregister_blocked(&mut srv, id);
            if let Some(tx) = srv.clients.get(&id).and_then(|c| c.tx.clone()) {
                let _ = tx.send(Outbound::Unblocked(Frame::Integer(n as i64)));
            }
        }
    });
    ctx.block(Vec::new(), None, Frame::Integer(acked))
}
