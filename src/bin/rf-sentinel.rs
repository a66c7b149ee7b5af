//! rf-sentinel: a Redis Sentinel (see `redis_failover::sentinel`).
fn main() -> std::process::ExitCode {
    redis_failover::sentinel::cli::main(std::env::args_os().collect())
}
