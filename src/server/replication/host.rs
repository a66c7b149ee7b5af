//! What replication needs from the server's keyspace. The server core implements
//! [`ReplicationHost`]; tests implement it with a small in-memory model.

use std::io::{self, Write};

use bytes::Bytes;

use crate::server::persistence::rdb::{AuxInfo, RdbSaveOptions, RdbWriter};

/// A point-in-time copy of every database, written out after the barrier is released.
pub trait DatasetSnapshot: Send {
    /// Writes SELECTDB / RESIZEDB and every key of every non-empty database.
    fn write_dbs(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()>;
}

pub trait ReplicationHost: Send + Sync + 'static {
    /// Takes a consistent snapshot of the dataset. `barrier` must run while no write command
    /// can execute or propagate, so the snapshot matches the replication offset it records.
    fn snapshot(&self, barrier: &mut dyn FnMut()) -> Box<dyn DatasetSnapshot>;

    /// Replaces the whole dataset with the content of an RDB image (full sync on a replica).
    fn load_rdb(&self, rdb: &[u8]) -> Result<(), String>;

    /// Executes commands received from our master, in order, as one batch (MULTI/EXEC
    /// blocks are never split). No replies; the host must not propagate them to replicas
    /// (replication forwards the master's raw stream) but does feed its AOF. `db` is the
    /// database currently selected by the stream and is updated by SELECT.
    fn apply_from_master(&self, db: &mut u32, commands: Vec<Vec<Bytes>>);

    /// `used-mem` for the RDB aux field.
    fn used_memory(&self) -> u64 {
        0
    }
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
