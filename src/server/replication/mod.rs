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
