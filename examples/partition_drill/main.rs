//! The partition drill (scripts/bench-partition.sh); everything is in `drill.rs`, which the
//! partition test (tests/partition.rs) includes too.

mod drill;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    drill::main_with(&args)
}
