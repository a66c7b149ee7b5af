//! server (under construction)

pub mod persistence;
pub mod replication;
