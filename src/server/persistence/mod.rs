//! Persistence (RDB, AOF, DUMP/RESTORE) — owned by the persistence/replication family.
//! This file is the placeholder the core compiles against; the contract the core calls:
//! - `PersistenceState: Default`, held in `ServerState::persist`;
//! - `PersistenceState::feed(db, argv)`: every propagated write (AOF);
//! - `info_section(&ServerState) -> String`: the body of INFO persistence;
//! - `commands() -> Vec<CommandSpec>`: SAVE, BGSAVE, BGREWRITEAOF, DUMP, RESTORE...;
//! - `load_at_startup(&mut ServerState) -> Result<(), String>`: before accepting clients;
//! - `on_shutdown(&mut ServerState, save: Option<bool>) -> Result<(), String>`: SHUTDOWN
//!   and SIGTERM (`None` = save if save points are configured);
//! - `debug_reload(&mut ServerState) -> Result<(), String>`: DEBUG RELOAD;
//! - `cron(&mut ServerState, now_ms)`: every 100 ms (save points, fsync everysec);
//! - `start(&Arc<Shared>)`: once the server listens.
//! `ServerState::dirty` counts changes and `ServerState::lastsave` is the LASTSAVE time.

use std::sync::Arc;

use bytes::Bytes;

use super::command::CommandSpec;
use super::state::{ServerState, Shared};

#[derive(Debug, Default)]
pub struct PersistenceState {}

impl PersistenceState {
    pub fn feed(&mut self, _db: usize, _argv: &[Bytes]) {}
}

pub fn info_section(srv: &ServerState) -> String {
    format!(
        "loading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_saves:0\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\naof_rewrites_consecutive_failures:0\r\naof_last_write_status:ok\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        srv.dirty, srv.lastsave
    )
}

pub fn commands() -> Vec<CommandSpec> {
    Vec::new()
}

pub fn load_at_startup(_srv: &mut ServerState) -> Result<(), String> {
    Ok(())
}

pub fn on_shutdown(_srv: &mut ServerState, _save: Option<bool>) -> Result<(), String> {
    Ok(())
}

pub fn debug_reload(_srv: &mut ServerState) -> Result<(), String> {
    Err("ERR DEBUG RELOAD needs persistence, which is not built yet".into())
}

pub fn cron(_srv: &mut ServerState, _now_ms: i64) {}

pub fn start(_shared: &Arc<Shared>) {}
