//! Master/replica replication (PSYNC2), interoperable with Redis 7.0.
//!
//! - [`state`]: ids, offsets, backlog, attached replicas, propagation, INFO/ROLE/WAIT.
//! - [`master`]: REPLCONF and serving PSYNC/SYNC on a connection the server hands over.
//! - [`replica`]: the link to our master (handshake, full/partial sync, streaming, ACKs).
//! - [`host`]: the trait the server's keyspace implements for snapshots and applying.

pub mod backlog;
pub mod host;
pub mod master;
pub mod replica;
pub mod state;

pub use host::{DatasetSnapshot, ReplicationHost};
pub use master::{replconf, serve_replica, ReplconfInfo};
pub use replica::run_master_link;
pub use state::{PsyncDecision, ReplConfig, Replication};
