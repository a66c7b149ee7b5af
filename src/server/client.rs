//! Per-connection state, kept in `ServerState::clients` so that CLIENT LIST/KILL, pub/sub
//! and blocking wake-ups can reach every client under the one server lock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::resp::{Frame, ProtocolVersion};
use crate::server::replication::state::OutputLimits;

/// Messages pushed to a connection task from other clients' commands.
#[derive(Debug)]
pub enum Outbound {
    /// Already encoded bytes (pub/sub messages, MONITOR lines, replication stream).
    Raw(Bytes),
    /// The reply to a blocked command that was served by someone else's write.
    Unblocked(Frame),
    /// Close the connection (CLIENT KILL, SHUTDOWN).
    Close,
}

/// Redis's CLIENTS_PEAK_MEM_USAGE_SLOTS: the largest client query and output buffers seen
/// in each of the last 8 seconds (INFO client_recent_max_input_buffer / _output_buffer).
#[derive(Debug, Default)]
pub struct ClientsPeak {
    /// (input, output) bytes, indexed by unix second modulo 8.
    slots: [(usize, usize); 8],
    last_second: i64,
}

impl ClientsPeak {
    const SLOTS: i64 = 8;

    pub fn track(&mut self, now_ms: i64, input: usize, output: usize) {
        let second = now_ms / 1000;
        if second != self.last_second {
            // Slots of the seconds since the last call hold stale peaks.
            for s in 1..=(second - self.last_second).clamp(0, Self::SLOTS) {
                self.slots[((self.last_second + s) % Self::SLOTS) as usize] = (0, 0);
            }
            self.last_second = second;
        }
        let slot = &mut self.slots[(second % Self::SLOTS) as usize];
        slot.0 = slot.0.max(input);
        slot.1 = slot.1.max(output);
    }

    /// (input, output) maxima over the recent seconds.
    pub fn recent_max(&self) -> (usize, usize) {
        self.slots.iter().fold((0, 0), |(i, o), &(si, so)| (i.max(si), o.max(so)))
    }
}

/// CLIENT REPLY mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    Skip,
    SkipNext,
}

/// A queued MULTI command.
#[derive(Debug, Clone)]
pub struct Queued {
    pub args: Vec<Bytes>,
}

#[derive(Debug)]
pub struct ClientState {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: Option<Bytes>,
    pub lib_name: Option<String>,
    pub lib_ver: Option<String>,
    pub db: usize,
    pub proto: ProtocolVersion,
    pub authenticated: bool,
    pub user: String,
    /// Unix ms of connection and of the last command.
    pub created_ms: i64,
    pub last_interaction_ms: i64,
    pub last_cmd: String,
    pub multi: Option<Vec<Queued>>,
    /// A command failed to queue: EXEC will abort with EXECABORT.
    pub multi_error: bool,
    /// A watched key was modified: EXEC will fail.
    pub dirty_cas: bool,
    pub watched: Vec<(usize, Bytes)>,
    /// Watched keys that were already expired (but not yet deleted) at WATCH time: their
    /// expiry or deletion is no change (Redis's watchedKey.expired).
    pub watched_stale: Vec<(usize, Bytes)>,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    /// SSUBSCRIBE channels (sharded pub/sub).
    pub shard_channels: HashSet<Bytes>,
    /// CLIENT TRACKING state (None = off).
    pub tracking: Option<crate::server::commands::tracking::ClientTracking>,
    pub reply_mode: ReplyMode,
    pub no_evict: bool,
    pub is_monitor: bool,
    /// Set on a replica's connection to its master, and by PSYNC/SYNC on a master (the
    /// replication family uses these; the core skips replies to the master link).
    pub is_master_link: bool,
    pub is_replica: bool,
    pub blocked: bool,
    pub killed: bool,
    pub tx: Option<UnboundedSender<Outbound>>,
    /// Bytes waiting in the connection's query buffer (CLIENT LIST qbuf).
    pub qbuf: usize,
    /// Room left in the query buffer's allocation (CLIENT LIST qbuf-free).
    pub qbuf_free: usize,
    /// Bytes queued for this connection by other clients and not yet taken by its task
    /// (pub/sub, MONITOR, replication stream).
    pub pending_out: Arc<AtomicUsize>,
    /// Bytes in the connection task's output buffer not yet written to the socket. With
    /// `pending_out`, the output buffer checked against client-output-buffer-limit.
    pub unwritten: Arc<AtomicUsize>,
    /// Since when (unix ms) the output buffer is above the soft limit.
    pub soft_limit_since_ms: Option<i64>,
    /// Set when the output buffer limit is exceeded: the connection closes at once,
    /// without writing what is queued.
    pub force_close: Arc<AtomicBool>,
    pub tot_cmds: u64,
    /// Replies of a command that answers with several frames (SUBSCRIBE a b).
    pub deferred: Vec<Frame>,
    /// True while this client's script runs commands (MONITOR shows them as `lua`).
    pub in_script: bool,
    /// The protocol replies are built for while its script runs commands (RESP2 unless the
    /// script called redis.setresp(3)); pushes to the client itself keep `proto`.
    pub reply_proto: Option<ProtocolVersion>,
}

impl ClientState {
    pub fn new(id: u64, addr: String, laddr: String, now_ms: i64, authenticated: bool) -> Self {
        ClientState {
            id,
            addr,
            laddr,
            name: None,
            lib_name: None,
            lib_ver: None,
            db: 0,
            proto: ProtocolVersion::Resp2,
            authenticated,
            user: "default".to_string(),
            created_ms: now_ms,
            last_interaction_ms: now_ms,
            last_cmd: "NULL".to_string(),
            multi: None,
            multi_error: false,
            dirty_cas: false,
            watched: Vec::new(),
            watched_stale: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            tracking: None,
            reply_mode: ReplyMode::On,
            no_evict: false,
            is_monitor: false,
            is_master_link: false,
            is_replica: false,
            blocked: false,
            killed: false,
            tx: None,
            qbuf: 0,
            qbuf_free: 0,
            pending_out: Arc::new(AtomicUsize::new(0)),
            unwritten: Arc::new(AtomicUsize::new(0)),
            soft_limit_since_ms: None,
            force_close: Arc::new(AtomicBool::new(false)),
            tot_cmds: 0,
            deferred: Vec::new(),
            in_script: false,
            reply_proto: None,
        }
    }

    /// A client with no connection (used to run commands for the master link, AOF loading
    /// or tests).
    pub fn internal(id: u64) -> Self {
        ClientState::new(id, String::new(), String::new(), 0, true)
    }

    /// Every subscription, shard channels included (what puts a client in pub/sub mode).
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// Sends already encoded bytes to this client's connection.
    pub fn send_raw(&self, data: Bytes) -> bool {
        if self.force_close.load(Ordering::Relaxed) {
            return false;
        }
        match &self.tx {
            Some(tx) => {
                self.pending_out.fetch_add(data.len(), Ordering::Relaxed);
                tx.send(Outbound::Raw(data)).is_ok()
            }
            None => false,
        }
    }

    /// Output bytes not yet written to the socket (CLIENT LIST omem, output buffer limits).
    pub fn output_bytes(&self) -> usize {
        self.pending_out.load(Ordering::Relaxed) + self.unwritten.load(Ordering::Relaxed)
    }

    /// The client-output-buffer-limit class of this client, as Redis's getClientType:
    /// pubsub once subscribed, normal otherwise (MONITOR included). Replicas and the master
    /// link have theirs in the replication state.
    pub fn output_limits(&self, limits: &crate::server::state::Limits) -> Option<OutputLimits> {
        if self.is_replica || self.is_master_link {
            None
        } else if self.subscriptions() > 0 {
            Some(limits.obuf_pubsub)
        } else {
            Some(limits.obuf_normal)
        }
    }

    /// Enforces the client's output buffer limits as Redis does: at once past the hard
    /// limit, or once above the soft limit for longer than its seconds (the time counts
    /// from the first check that found it above). A client over a limit is closed without
    /// writing what is queued. Returns false if the client is (now) to be closed.
    pub fn check_output_limit(&mut self, limits: &crate::server::state::Limits, now_ms: i64) -> bool {
        if self.force_close.load(Ordering::Relaxed) {
            return false;
        }
        let Some(class) = self.output_limits(limits) else { return true };
        let used = self.output_bytes() as u64;
        let hard = class.hard > 0 && used >= class.hard;
        let mut soft = class.soft > 0 && used >= class.soft;
        if soft {
            match self.soft_limit_since_ms {
                None => {
                    self.soft_limit_since_ms = Some(now_ms);
                    soft = false;
                }
                Some(since) => soft = (now_ms - since) / 1000 > class.soft_secs as i64,
            }
        } else {
            self.soft_limit_since_ms = None;
        }
        if !(hard || soft) {
            return true;
        }
        self.force_close.store(true, Ordering::Relaxed);
        crate::server::log::warning(&format!(
            "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
            crate::server::commands::connection::client_line(self, now_ms, None)
        ));
        if let Some(tx) = &self.tx {
            let _ = tx.send(Outbound::Close);
        }
        false
    }

    /// The `flags=` field of CLIENT LIST.
    pub fn flags(&self) -> String {
        let mut f = String::new();
        if self.is_replica {
            f.push('S');
        }
        if self.is_master_link {
            f.push('M');
        }
        if self.subscriptions() > 0 {
            f.push('P');
        }
        if self.multi.is_some() {
            f.push('x');
        }
        if self.blocked {
            f.push('b');
        }
        if let Some(t) = &self.tracking {
            f.push('t');
            if t.redirect_broken {
                f.push('R');
            }
            if t.bcast {
                f.push('B');
            }
        }
        if self.dirty_cas {
            f.push('d');
        }
        if self.is_monitor {
            f.push('O');
        }
        if self.no_evict {
            f.push('e');
        }
        if f.is_empty() {
            f.push('N');
        }
        f
    }
}
