//! Replication (PSYNC2) — owned by the persistence/replication family. This file is the
//! placeholder the core compiles against; the functions and methods below are the
//! contract the core calls:
//! - `ReplicationState: Default`, held in `ServerState::repl`;
//! - `ReplicationState::feed(db, argv)`: every propagated write, in order;
//! - `ReplicationState::is_replica()`: read-only replica checks, lazy-expiry rules;
//! - `info_section(&ServerState) -> String`: the body of INFO replication;
//! - `commands() -> Vec<CommandSpec>`: REPLICAOF/SLAVEOF, ROLE, PSYNC, SYNC, REPLCONF, WAIT;
//! - `start(&Arc<Shared>)`: called once the server listens (connect to a configured master).

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
