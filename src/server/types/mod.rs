//! Data structures of the aggregate types (owned by the types family; the core only
//! placed minimal placeholders here). Each type must provide `Clone + Debug + Default`,
//! `encoding(&self) -> &'static str` (OBJECT ENCODING) and `memory_usage(&self) -> usize`
//! (approximate heap bytes, used by MEMORY USAGE and maxmemory accounting).

pub mod hash;
pub mod list;
pub mod set;
pub mod zset;
