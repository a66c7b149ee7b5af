//! Persistence: RDB snapshots (Redis 7.0 format, RDB version 10), DUMP/RESTORE payloads
//! and the multi-part append-only file.
//!
//! The codecs work on an intermediate representation ([`rdb::RdbValue`]) so they can be
//! tested against real Redis files independently of the server's in-memory types.

pub mod aof;
pub mod aof_manager;
pub mod aof_writer;
pub mod dump;
pub mod encodings;
pub mod host;
pub mod lzf;
pub mod rdb;
pub mod rdb_load;
pub mod service;
pub mod state;
