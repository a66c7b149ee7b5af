//! Command families, one file each. Every file exposes `pub fn commands() ->
//! Vec<CommandSpec>`; [`all`] concatenates them into the one table (add new families
//! there). See `server::command` for how to write a handler.

pub mod bitmap;
pub mod connection;
pub mod docs;
pub mod geo;
mod docs_data;
mod info_data;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod latency;
pub mod list;
pub mod migrate;
pub mod pubsub;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod strings;
pub mod tracking;
pub mod transactions;
pub mod zset;

use super::command::CommandSpec;

/// Every command of rf-server.
pub fn all() -> Vec<CommandSpec> {
    let mut v = Vec::new();
    v.extend(connection::commands());
    v.extend(server::commands());
    v.extend(latency::commands());
    v.extend(keys::commands());
    v.extend(strings::commands());
    v.extend(pubsub::commands());
    v.extend(transactions::commands());
    v.extend(list::commands());
    v.extend(hash::commands());
    v.extend(set::commands());
    v.extend(zset::commands());
    v.extend(geo::commands());
    v.extend(hll::commands());
    v.extend(bitmap::commands());
    v.extend(sort::commands());
    v.extend(stream::commands());
    v.extend(migrate::commands());
    v.extend(super::persistence::commands());
    v.extend(super::replication::commands());
    v.extend(super::scripting::commands());
    v
}

/// True if `name` is a command (for `rename-command` validation).
pub fn command_exists(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    all().iter().any(|c| c.name == lower)
}
