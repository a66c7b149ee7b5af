//! `rf-server sentinel.conf --sentinel`: runs the sentinel instead of the data server, as
//! `redis-server sentinel.conf --sentinel` does (the seed's init script starts it that way).

/// Runs sentinel mode with the full command line (program name excluded). Returns the
/// process exit code.
pub fn run(args: Vec<String>) -> i32 {
    let argv = std::iter::once("rf-server".to_string()).chain(args).map(Into::into).collect();
    crate::sentinel::cli::run(argv)
}
