//! `rf-server`: a Redis 7.0-compatible data server (see `redis_failover::server`).
//! `rf-server sentinel.conf --sentinel` runs the sentinel instead, as redis-server does.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Sentinel mode sets up its own logging (logfile, daemonize), so branch off first.
    if args.iter().any(|a| a == "--sentinel") {
        std::process::exit(redis_failover::server::sentinel_mode::run(args));
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("RF_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    std::process::exit(redis_failover::server::main_entry(args));
}
