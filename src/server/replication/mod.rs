//! Master/replica replication (PSYNC2), interoperable with Redis 7.0.
//!
//! - [`state`]: ids, offsets, backlog, attached replicas, propagation, INFO/ROLE/WAIT.
//! - [`master`]: REPLCONF and serving PSYNC/SYNC on a connection the server hands over.
//! - [`replica`]: the link to our master (handshake, full/partial sync, streaming, ACKs).
//! The keyspace is reached through [`crate::server::persistence::host::DataHost`].

pub mod backlog;
pub mod master;
pub mod replica;
pub mod state;

pub use crate::server::persistence::host::{ApplySource, DataHost, DatasetSnapshot};
pub use master::{replconf, serve_replica, ReplconfInfo};
pub use replica::run_master_link;
pub use state::{PsyncDecision, ReplConfig, Replication};

use std::sync::Arc;

use bytes::Bytes;

use super::command::CommandSpec;
use super::state::{ServerState, Shared};

#[derive(Debug)]
pub struct ReplicationState {
    pub replid: String,
    pub master_repl_offset: i64,
}

impl Default for ReplicationState {
    fn default() -> Self {
        ReplicationState { replid: super::state::random_hex(40), master_repl_offset: 0 }
    }
}

impl ReplicationState {
    pub fn feed(&mut self, _db: usize, _argv: &[Bytes]) {}

    pub fn is_replica(&self) -> bool {
        false
    }
}

pub fn info_section(srv: &ServerState) -> String {
    let r = &srv.repl;
    format!(
        "role:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
        r.replid,
        r.master_repl_offset,
        srv.config.get("repl-backlog-size")
    )
}

pub fn commands() -> Vec<CommandSpec> {
    Vec::new()
}

pub fn start(_shared: &Arc<Shared>) {}
