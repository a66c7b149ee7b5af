//! The one trait the server's keyspace implements for persistence and replication:
//! consistent snapshots (BGSAVE, AOF rewrite, full sync), bulk loading (RDB files, full
//! sync payloads) and applying commands that do not come from clients (AOF, master stream).

use std::io::{self, Write};

use bytes::Bytes;

use super::rdb::{AuxInfo, RdbEntry, RdbError, RdbSaveOptions, RdbWriter};
use super::rdb_load::{RdbItem, RdbReader};
use crate::server::replication::state::DisklessLoad;

/// A point-in-time copy of every database, written out after the barrier is released.
pub trait DatasetSnapshot: Send {
    /// Writes SELECTDB / RESIZEDB and every key of every non-empty database.
    fn write_dbs(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()>;
    /// Number of keys (for INFO `current_save_keys_total`).
    fn key_count(&self) -> u64 {
        0
    }
    /// Writes the FUNCTION libraries only (`REPLCONF rdb-filter-only functions`).
    fn write_functions_only(&self, _w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()> {
        Ok(())
    }
}

/// A snapshot written without its keys (`REPLCONF rdb-filter-only`): with its functions
/// when `.1` (the "functions" filter; redis-cli --functions-rdb asks for it), else empty.
pub struct WithoutData(pub Box<dyn DatasetSnapshot>, pub bool);

impl DatasetSnapshot for WithoutData {
    fn write_dbs(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()> {
        if self.1 {
            self.0.write_functions_only(w)?;
        }
        Ok(())
    }
}

/// Where commands passed to [`DataHost::apply_commands`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplySource {
    /// Loading the AOF at start-up.
    Aof,
    /// The replication stream of our master: feed them to our AOF, not to our replicas
    /// (replication forwards the master's raw bytes itself).
    Master,
}

pub trait DataHost: Send + Sync + 'static {
    /// Takes a consistent snapshot of the dataset. `barrier` must run while no write command
    /// can execute or propagate, so the snapshot matches what `barrier` records (the
    /// replication offset, the switch to a new AOF file).
    fn snapshot(&self, barrier: &mut dyn FnMut()) -> Box<dyn DatasetSnapshot>;

    /// Empties every database (before loading a full dataset).
    fn flush_all(&self);

    /// Inserts loaded keys into `db` (replacing existing ones). Expiry is absolute unix ms.
    fn load_entries(&self, db: u32, entries: Vec<RdbEntry>);

    /// Executes commands in order as one batch (MULTI/EXEC blocks are never split), with no
    /// replies. `db` is the database selected by the stream and is updated by SELECT.
    fn apply_commands(&self, db: &mut u32, commands: Vec<Vec<Bytes>>, source: ApplySource);

    /// Replaces the whole dataset with an RDB image received from our master, according
    /// to `repl-diskless-load`. The default empties the dataset and loads in batches.
    fn replace_dataset(&self, rdb: &[u8], mode: DisklessLoad) -> Result<LoadStats, RdbError> {
        let _ = mode;
        self.flush_all();
        load_rdb_into_with(rdb, |db, entries| self.load_entries(db, entries))
    }

    /// [`DataHost::apply_commands`], then `after(db)` with the database selected at the end,
    /// while no other write can run (the replica link accounts the stream bytes of the batch
    /// there).
    fn apply_then(&self, db: &mut u32, commands: Vec<Vec<Bytes>>, source: ApplySource, after: &mut dyn FnMut(u32)) {
        self.apply_commands(db, commands, source);
        after(*db);
    }

    /// `used-mem` for the RDB aux field.
    fn used_memory(&self) -> u64 {
        0
    }

    /// Returns once no command is running. The replica link calls it before PSYNC, so that a
    /// server busy with one command (DEBUG SLEEP, a slow script) reconnects only after it,
    /// as Redis's single thread does.
    fn wait_until_idle(&self) {}

    /// The server's running-script watch, which async callers check before the calls above
    /// (a busy script holds the state).
    fn script_watch(&self) -> Option<std::sync::Arc<crate::server::scripting::busy::ScriptWatch>> {
        None
    }

    /// [`super::service::Persistence::aof_before_reply`]: the AOF holds every write
    /// applied so far before something depending on them is sent.
    fn aof_before_reply(&self) -> Option<super::service::AofSync> {
        None
    }

    /// The replication link to our master went up (after sync) or down.
    fn on_master_link(&self, _connected: bool, _addr: &str) {}
}

/// Serializes a snapshot as a complete RDB image with Redis's aux fields.
pub fn snapshot_to_rdb(
    snapshot: &dyn DatasetSnapshot,
    aux: &AuxInfo,
    opts: &RdbSaveOptions,
    out: &mut dyn Write,
) -> io::Result<u64> {
    let mut w = RdbWriter::new(out, opts.clone());
    w.write_header()?;
    w.write_standard_aux(aux)?;
    snapshot.write_dbs(&mut w)?;
    let n = w.bytes_written() + 9;
    w.finish()?;
    Ok(n)
}

/// What a load found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadStats {
    pub keys: u64,
    /// Keys dropped because their time had passed (a master loading); not in `keys`
    /// when the host reports them (`rdb_last_load_keys_expired`).
    pub expired: u64,
    pub aux: Vec<(Bytes, Bytes)>,
    /// Bytes consumed (an AOF base may continue with commands after the RDB part).
    pub consumed: usize,
    /// FUNCTION libraries' code found in the file.
    pub functions: Vec<Bytes>,
}

impl LoadStats {
    pub fn aux_value(&self, name: &str) -> Option<&Bytes> {
        self.aux.iter().find(|(k, _)| &k[..] == name.as_bytes()).map(|(_, v)| v)
    }
}

/// Loads an RDB image into the host (without flushing first), in batches.
pub fn load_rdb_into(host: &dyn DataHost, rdb: &[u8]) -> Result<LoadStats, RdbError> {
    load_rdb_into_with(rdb, |db, entries| host.load_entries(db, entries))
}

/// Loads an RDB image, handing batches of entries to `load(db, entries)`.
pub fn load_rdb_into_with(rdb: &[u8], mut load: impl FnMut(u32, Vec<RdbEntry>)) -> Result<LoadStats, RdbError> {
    const BATCH: usize = 1024;
    let mut reader = RdbReader::new(rdb)?;
    let mut stats = LoadStats::default();
    let mut db = 0u32;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(item) = reader.next_item()? {
        match item {
            RdbItem::SelectDb(n) => {
                if !batch.is_empty() {
                    load(db, std::mem::take(&mut batch));
                }
                db = n;
            }
            RdbItem::Entry(e) => {
                super::debug_delay::after_key_loaded();
                stats.keys += 1;
                batch.push(e);
                if batch.len() >= BATCH {
                    load(db, std::mem::take(&mut batch));
                }
            }
            RdbItem::Aux(k, v) => stats.aux.push((k, v)),
            RdbItem::Function(code) => stats.functions.push(code),
            RdbItem::ResizeDb { .. } | RdbItem::ModuleAux => {}
        }
    }
    if !batch.is_empty() {
        load(db, batch);
    }
    stats.consumed = reader.position();
    Ok(stats)
}
