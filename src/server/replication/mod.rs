//! Master/replica replication (PSYNC2), interoperable with Redis 7.0.

pub mod backlog;
pub mod state;

pub use state::{PsyncDecision, ReplConfig, Replication};
