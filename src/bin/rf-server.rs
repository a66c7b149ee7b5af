//! `rf-server`: a Redis 7.0-compatible data server (see `redis_failover::server`).
fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RF_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(redis_failover::server::main_entry(args));
}
