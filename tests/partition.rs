//! Partition guarantees (the drill of examples/partition_drill, network namespaces): with our
//! server and sentinel, the master's host cut from the other two hosts for 10 s while the
//! client still reaches it, min-replicas-to-write 0 and 1. The drill's `--check` fails the
//! run when a write confirmed by WAIT 1 is lost; when, with min-replicas-to-write 1, more than
//! 5% of the plain-acknowledged writes are lost; when the old master is not a replica of the
//! new one within 2 s of the heal; when the servers' data differ at the end (DEBUG DIGEST).
//!
//! A test without libtest's harness (Cargo.toml): the drill re-runs its own executable inside
//! the client namespace (`drive`), and this file is that executable. Needs root and `ip netns`
//! (CI has both); skips with the reason otherwise.

#[allow(dead_code)]
#[path = "../examples/partition_drill/drill.rs"]
mod drill;

use std::process::{Command, ExitCode};

fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not root: network namespaces and iptables need root".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("no `ip netns` (iproute2)".into()),
    }
    for tool in ["iptables", "setpriv"] {
        if Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map_or(true, |o| !o.status.success()) {
            return Some(format!("no {tool}"));
        }
    }
    None
}

const TEST_NAME: &str = "master_partition";

/// libtest's selection as `cargo test [FILTER] -- [--exact] [--skip S] [--list]` passes it:
/// a filtered run of other tests must not start a minute of partitions.
fn selected(args: &[String]) -> bool {
    const TAKES_VALUE: &[&str] = &["--test-threads", "--format", "--color", "--logfile", "-Z", "--shuffle-seed"];
    let (mut filters, mut skips, mut exact) = (Vec::new(), Vec::new(), false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--list" => {
                println!("{TEST_NAME}: test");
                return false;
            }
            "--exact" => exact = true,
            "--skip" => skips.extend(it.next().cloned()),
            flag if TAKES_VALUE.contains(&flag) => {
                it.next();
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_string()),
        }
    }
    let matches = |f: &String| if exact { f == TEST_NAME } else { TEST_NAME.contains(f.as_str()) };
    (filters.is_empty() || filters.iter().any(matches)) && !skips.iter().any(|s| TEST_NAME.contains(s.as_str()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("drive") {
        return drill::main_with(&args);
    }
    if !selected(&args) {
        println!("running 0 tests");
        return ExitCode::SUCCESS;
    }
    println!("running 1 test");
    if let Some(reason) = skip_reason() {
        println!("test {TEST_NAME} ... skipped: {reason}");
        return ExitCode::SUCCESS;
    }
    let run: Vec<String> = [
        "--systems", "rf", "--cases", "master-mrw0,master-mrw1", "--partition-secs", "10", "--check",
        "--rf-server", env!("CARGO_BIN_EXE_rf-server"), "--rf-sentinel", env!("CARGO_BIN_EXE_rf-sentinel"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match drill::run_args(&run) {
        Ok(true) => {
            println!("test {TEST_NAME} ... ok");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("test {TEST_NAME} ... FAILED (a partition guarantee failed, see GUARANTEE FAILED above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("test {TEST_NAME} ... FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
