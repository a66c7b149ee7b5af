//! redis-failover: a Redis-compatible server, a Redis Sentinel, and a Kubernetes operator
//! that runs highly available master/replica groups of them.
//!
//! - [`resp`]: the wire protocol (RESP2 + RESP3), one `Frame` type for everything.
//! - [`server`]: `rf-server`, the data server.
//! - [`sentinel`]: `rf-sentinel`, monitoring and failover.
//! - [`operator`]: `rf-operator`, the `RedisFailoverCluster` controller.

pub mod common;
pub mod operator;
pub mod resp;
pub mod sentinel;
pub mod server;
