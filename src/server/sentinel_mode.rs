//! `rf-server --sentinel`: runs the sentinel instead of the data server, as
//! `redis-server sentinel.conf --sentinel` does. The sentinel family provides
//! `redis_failover::sentinel::cli::main(args)`; until that is merged this shim refuses.

/// Runs sentinel mode with the full command line (program name excluded). Returns the
/// process exit code.
pub fn run(_args: Vec<String>) -> i32 {
    eprintln!("rf-server: --sentinel is not available in this build yet (use rf-sentinel)");
    1
}
