//! `rf-server`: a Redis 7.0-compatible data server (see `redis_failover::server`);
//! `rf-server sentinel.conf --sentinel` runs the sentinel instead.
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    redis_failover::server::main_entry(args)
}
