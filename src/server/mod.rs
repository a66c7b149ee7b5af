//! server (under construction)
pub mod types;
