//! Value types of rf-server and the pure algorithms behind their commands.
//!
//! Every type here is a plain data structure with no knowledge of the keyspace, clients or
//! replies, so it can be unit- and property-tested directly. The command families in
//! `server::commands::{list,hash,set,zset,hll,bitmap,sort}` wrap them.

pub mod glob;
