//! Property tests of config parsing: random, truncated and mangled config files and
//! `--directive` command lines never panic, and every refusal has Redis's form
//! (`*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***`, `at line N`, `>>> '<line>'`, a reason)
//! naming the first line that is wrong. A bounded sample is also run through Debian's
//! `redis-server` and must be refused (or accepted) at the very same line, for the same reason.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use redis_failover::server::config::{args_to_text, Config, ConfigFileError};

const HEADER: &str = "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line ";

/// Directives that only validate their value (no file system side effects: `dir` changes
/// the working directory, `include` reads files, `daemonize`/`logfile`/`pidfile` would act
/// when a real server starts).
const NAMES: &[&str] = &[
    "port", "bind", "timeout", "tcp-keepalive", "protected-mode", "databases", "loglevel", "save", "maxmemory",
    "maxmemory-policy", "maxmemory-samples", "appendonly", "appendfsync", "requirepass", "masterauth", "replicaof",
    "slaveof", "replica-read-only", "slave-read-only", "repl-backlog-size", "repl-timeout", "min-replicas-to-write",
    "notify-keyspace-events", "hz", "maxclients", "rename-command", "list-max-listpack-size", "hash-max-ziplist-entries",
    "client-output-buffer-limit", "lua-time-limit", "slowlog-log-slower-than", "latency-tracking", "shutdown-on-sigterm",
    "supervised", "rdbcompression", "dbfilename", "activerehashing", "no-such-directive", "PORT", "Save",
];

const VALUES: &[&str] = &[
    "", "0", "1", "-1", "6379", "65536", "100mb", "1gb", "1G", "10x", "yes", "no", "YES", "maybe", "allkeys-lru", "bad",
    "everysec", "always", "127.0.0.1", "::1", "\"\"", "\"quoted value\"", "'single'", "\"unbalanced", "'also", "a\\x41b",
    "\"\\x4\"", "9223372036854775808", "-9223372036854775809", "3.5", "KEA", "Ex$", "Q", "normal 0 0 0", "replica 1mb 2mb x",
    "pubsub 32mb 8mb 60", "get", "GET newget", "nosuchcommand x", "900 1", "300 10 60 10000", "\"\"", "1 2 3", "\t", "#x",
];

fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        // name + zero to three values
        (prop::sample::select(NAMES), prop::collection::vec(prop::sample::select(VALUES), 0..4))
            .prop_map(|(n, vs)| format!("{n} {}", vs.join(" "))),
        // comments and blank lines (skipped, but they count for line numbers)
        prop::sample::select(&["", "# a comment", "   ", "\t# indented comment"][..]).prop_map(str::to_string),
        // any printable garbage
        "[ -~]{0,40}",
    ]
}

/// Checks that `result` of loading `text` is Redis-shaped and names the first bad line.
fn check(text: &str, result: Result<(), ConfigFileError>) -> Result<(), TestCaseError> {
    let Err(err) = result else {
        return Ok(());
    };
    let shown = err.to_string();
    match err {
        ConfigFileError::Line { line, text: bad, reason } => {
            let lines: Vec<&str> = text.lines().collect();
            prop_assert!(line >= 1 && line <= lines.len(), "line {line} out of 1..={}: {shown}", lines.len());
            prop_assert_eq!(bad.as_str(), lines[line - 1].trim());
            prop_assert!(!reason.is_empty());
            let expected = format!("{HEADER}{line}\n>>> '{bad}'\n{reason}");
            prop_assert_eq!(shown, expected);
            // Every line before the reported one is accepted: the error names the first one.
            let before = lines[..line - 1].join("\n");
            prop_assert!(Config::default().load_text(&before, None).is_ok(), "lines before {line} alone are refused:\n{before}");
        }
        ConfigFileError::Open { .. } => prop_assert!(false, "no directive here opens a file: {shown}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_config_files_never_panic_and_name_the_bad_line(lines in prop::collection::vec(line_strategy(), 0..12)) {
        let text = lines.join("\n");
        let result = Config::default().load_text(&text, None);
        check(&text, result)?;
    }

    #[test]
    fn truncated_config_files_never_panic(lines in prop::collection::vec(line_strategy(), 1..10), cut in any::<prop::sample::Index>()) {
        let text = lines.join("\n");
        // Cut at any byte, then keep valid UTF-8 (config files are read as text).
        let bytes = text.as_bytes();
        let at = cut.index(bytes.len() + 1);
        let truncated = String::from_utf8_lossy(&bytes[..at]).into_owned();
        let result = Config::default().load_text(&truncated, None);
        check(&truncated, result)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let result = Config::default().load_text(&text, None);
        check(&text, result)?;
    }

    #[test]
    fn command_line_directives_never_panic(
        args in prop::collection::vec((prop::sample::select(NAMES), prop::collection::vec(prop::sample::select(VALUES), 0..3)), 0..6)
    ) {
        let argv: Vec<String> = args
            .iter()
            .flat_map(|(n, vs)| std::iter::once(format!("--{n}")).chain(vs.iter().map(|v| v.to_string())))
            .collect();
        let text = args_to_text(&argv);
        let result = Config::default().load_text(&text, None);
        check(&text, result)?;
    }
}

/// What a server binary says about a config given on stdin, with `--port 0` appended (a
/// valid config then makes Redis exit at once: "Configured to not listen anywhere").
/// Returns the reported line number and reason of a FATAL error, or None if accepted.
fn fatal_line_of(bin: &Path, config: &str, dir: &Path) -> Option<(usize, String)> {
    use std::io::Write;
    let mut child = Command::new(bin)
        .arg("-")
        .args(["--port", "0", "--save", "", "--appendonly", "no"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn server");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(config.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("server output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let at = text.find("at line ")?;
    let line = text[at + 8..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    // The reason is the line after `>>> '...'`.
    let reason = text[at..].lines().skip_while(|l| !l.starts_with(">>> ")).nth(1).unwrap_or_default().trim().to_string();
    Some((line, reason))
}

#[test]
fn refused_at_the_same_line_as_redis() {
    let reference = Path::new("/usr/bin/redis-server");
    if !reference.exists() {
        eprintln!("SKIPPED: /usr/bin/redis-server is not installed");
        return;
    }
    let ours = Path::new(env!("CARGO_BIN_EXE_rf-server"));
    let dir = tempfile::tempdir().expect("tempdir");
    // A fixed seed keeps the sample (and the run time) the same from run to run.
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig { cases: 1, ..ProptestConfig::default() },
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = prop::collection::vec(
        prop_oneof![
            3 => (prop::sample::select(NAMES), prop::collection::vec(prop::sample::select(VALUES), 0..3))
                .prop_map(|(n, vs)| format!("{n} {}", vs.join(" "))),
            4 => prop::sample::select(&[
                "", "# comment", "port 6380", "maxmemory 100mb", "maxmemory-policy allkeys-lru", "appendfsync everysec",
                "notify-keyspace-events KEA", "save 900 1", "timeout 0", "requirepass \"s e c r e t\"", "hz 10",
                "rename-command FLUSHALL \"\"", "protected-mode no", "tcp-keepalive 300", "databases 16",
            ][..]).prop_map(str::to_string),
        ],
        1..5,
    );
    let mut disagreements = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let lines = strategy.new_tree(&mut runner).expect("sample").current();
        let text = lines.join("\n") + "\n";
        // Text that Redis would accept but that names no real master may try to connect:
        // both exit on port 0 before any replication starts.
        let redis_line = fatal_line_of(reference, &text, dir.path());
        let our_line = fatal_line_of(ours, &text, dir.path());
        refused += usize::from(redis_line.is_some());
        if redis_line != our_line {
            disagreements.push(format!("redis {redis_line:?} vs ours {our_line:?} for:\n{text}"));
        }
    }
    // The sample must exercise both outcomes to mean anything.
    assert!((5..=35).contains(&refused), "the sample has {refused}/40 refused configs");
    assert!(disagreements.is_empty(), "{} configs refused differently:\n{}", disagreements.len(), disagreements.join("\n---\n"));
}
