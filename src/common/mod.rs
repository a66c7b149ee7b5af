//! Pieces shared by the server and the sentinel: Redis's log line format and the
//! line-by-line config rewrite.

pub mod acl;
pub mod log_line;
pub mod conf_rewrite;
pub mod proc_stats;
