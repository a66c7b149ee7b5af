//! rf-sentinel: a Redis Sentinel. `machine` holds the decision logic (no I/O), `shell`
//! does the networking, `config` reads and rewrites sentinel.conf, `cli` is the program.

pub mod config;
pub mod machine;
pub mod links;
pub mod commands;
mod command_data;
pub mod command_info;
pub mod shell;
pub mod cli;
pub mod scripts;
pub mod acl;
pub mod logging;
