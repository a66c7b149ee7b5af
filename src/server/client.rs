//! Per-connection state, kept in `ServerState::clients` so that CLIENT LIST/KILL, pub/sub
//! and blocking wake-ups can reach every client under the one server lock.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::resp::{Frame, ProtocolVersion};

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
    /// Bytes waiting in the connection's query buffer / output (CLIENT LIST qbuf, omem).
    pub qbuf: usize,
    pub omem: usize,
    /// Bytes queued for this connection by other clients and not yet written (pub/sub,
    /// MONITOR, replication stream): checked against client-output-buffer-limit.
    pub pending_out: Arc<AtomicUsize>,
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
            omem: 0,
            pending_out: Arc::new(AtomicUsize::new(0)),
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

    /// Enforces a hard output-buffer limit (0 = none): past it the client is dropped, as
    /// Redis does with slow pub/sub consumers.
    pub fn check_output_limit(&self, hard_limit: u64) -> bool {
        if hard_limit > 0 && self.pending_out.load(Ordering::Relaxed) as u64 > hard_limit {
            if !self.force_close.swap(true, Ordering::Relaxed) {
                crate::server::log::warning(&format!(
                    "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                    self.id, self.addr
                ));
                if let Some(tx) = &self.tx {
                    let _ = tx.send(Outbound::Close);
                }
            }
            return false;
        }
        true
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
