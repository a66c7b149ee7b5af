//! Corrupt or truncated RDB and AOF files at start-up (issue 14 §5), compared with Debian's
//! redis-server 7.0 on the very same files: truncated at several offsets, bit flips, bad and
//! zeroed checksums, AOF truncation with and without aof-load-truncated, garbage in an AOF,
//! multi-part manifest errors. Both must refuse to start (same exit code, Redis's reason in
//! the log) or both start with the same dataset: never a panic, never a partial dataset
//! where Redis refuses.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const REDIS: &str = "/usr/bin/redis-server";

#[derive(Debug)]
enum Outcome {
    Refused { code: Option<i32>, log: String },
    Running { dataset: BTreeMap<String, String>, log: String },
}

impl Outcome {
    fn log(&self) -> &str {
        match self {
            Outcome::Refused { log, .. } | Outcome::Running { log, .. } => log,
        }
    }
}

struct Started {
    child: Child,
    port: u16,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every key of db 0 and 1 with its type and value in a form both servers agree on.
fn dataset(port: u16) -> BTreeMap<String, String> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    let mut out = BTreeMap::new();
    for db in 0..2 {
        redis::cmd("SELECT").arg(db).query::<()>(&mut c).unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        for key in keys {
            let ty: String = redis::cmd("TYPE").arg(&key).query(&mut c).unwrap();
            let value = match ty.as_str() {
                "string" => redis::cmd("GET").arg(&key).query::<String>(&mut c).unwrap(),
                "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query::<Vec<String>>(&mut c).unwrap().join(","),
                "set" => {
                    let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query(&mut c).unwrap();
                    m.sort();
                    m.join(",")
                }
                "hash" => {
                    let m: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&key).query(&mut c).unwrap();
                    format!("{m:?}")
                }
                "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").query::<Vec<String>>(&mut c).unwrap().join(","),
                other => other.to_string(),
            };
            out.insert(format!("{db}:{key}"), format!("{ty}:{value}"));
        }
    }
    out
}

/// Starts `bin` on the files in `dir`; returns whether it refused (and how) or runs (and
/// with what data).
fn start(bin: &str, dir: &Path, args: &[&str]) -> Outcome {
    let log_path = dir.join("server.log");
    let port = free_port();
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut started = Started { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = started.child.try_wait() {
            return Outcome::Refused { code: status.code(), log: std::fs::read_to_string(&log_path).unwrap_or_default() };
        }
        if wait_ready(started.port, Duration::from_millis(100)) && redis_cli(started.port, &["PING"]) == "PONG" {
            let dataset = dataset(started.port);
            return Outcome::Running { dataset, log: std::fs::read_to_string(&log_path).unwrap_or_default() };
        }
    }
    panic!("{bin} neither started nor exited in 20 s:\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
}

/// Copies `files` (relative path -> bytes) into a fresh dir for each server, starts both,
/// and checks that they agree. Returns both outcomes and dirs for further checks.
fn compare(case: &str, files: &[(PathBuf, Vec<u8>)], args: &[&str]) -> [(Outcome, tempfile::TempDir); 2] {
    let run = |bin: &str| {
        let dir = tempfile::tempdir().unwrap();
        for (rel, bytes) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        (start(bin, dir.path(), args), dir)
    };
    let ours = run(rf_server_bin().to_str().unwrap());
    let theirs = run(REDIS);
    match (&ours.0, &theirs.0) {
        (Outcome::Refused { code: a, log }, Outcome::Refused { code: b, .. }) => {
            assert_eq!(a, b, "{case}: exit codes differ; ours logged:\n{log}");
            assert!(!log.contains("panicked"), "{case}: we panicked:\n{log}");
        }
        (Outcome::Running { dataset: a, .. }, Outcome::Running { dataset: b, .. }) => {
            assert_eq!(a, b, "{case}: the loaded datasets differ");
        }
        (a, b) => panic!("{case}: rf-server {} but redis-server {}\nours:\n{}\nredis:\n{}", kind(a), kind(b), a.log(), b.log()),
    }
    [ours, theirs]
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Refused { .. } => "refused to start",
        Outcome::Running { .. } => "started",
    }
}

/// The reasons Redis logs for a refused load; ours must log the same one.
const REASONS: &[&str] = &[
    "Short read or OOM loading DB. Unrecoverable error, aborting now.",
    "Wrong RDB checksum expected",
    "Wrong signature trying to load DB from file",
    "Can't handle RDB format version",
    "Unexpected end of file reading the append only file",
    "Bad file format reading the append only file",
    "Internal error in RDB reading offset",
];

fn assert_same_reason(case: &str, outcomes: &[(Outcome, tempfile::TempDir); 2]) {
    let (ours, theirs) = (outcomes[0].0.log(), outcomes[1].0.log());
    let reason = REASONS.iter().find(|r| theirs.contains(*r)).unwrap_or_else(|| panic!("{case}: Redis logged no known reason:\n{theirs}"));
    // A value Redis finds corrupt may be caught by our checksum, or the other way round:
    // the class of error (a refused RDB) is what must agree there.
    let ours_has = ours.contains(reason)
        || (reason.starts_with("Internal error") || reason.starts_with("Wrong RDB checksum"))
            && (ours.contains("Internal error in RDB reading offset") || ours.contains("Wrong RDB checksum expected"));
    assert!(ours_has, "{case}: Redis logged '{reason}', we did not:\n{ours}");
}

/// A dataset of every type (small and large encodings, an expiry, two databases) saved by
/// Debian's Redis: its RDB, and its multi-part AOF directory.
fn redis_made_files(appendonly: bool) -> Vec<(PathBuf, Vec<u8>)> {
    let mut args = vec!["--appendonly", if appendonly { "yes" } else { "no" }];
    if appendonly {
        args.extend(["--aof-use-rdb-preamble", "yes"]);
    }
    let srv = spawn_server(Path::new(REDIS), &args);
    let mut c = srv.client();
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("str").arg("hello").ignore().cmd("SET").arg("int").arg(12345).ignore();
    pipe.cmd("SET").arg("expiring").arg("v").arg("PX").arg(999_999_999).ignore();
    pipe.cmd("RPUSH").arg("list").arg(&["a", "b", "c"]).ignore();
    pipe.cmd("SADD").arg("intset").arg(&[1, 2, 3]).ignore();
    pipe.cmd("HSET").arg("hash").arg("f").arg("v").ignore();
    pipe.cmd("ZADD").arg("zset").arg(1.5).arg("a").arg(2).arg("b").ignore();
    for i in 0..300 {
        pipe.cmd("RPUSH").arg("biglist").arg(format!("item-{i}")).ignore();
        pipe.cmd("SADD").arg("bigset").arg(format!("member-{i}")).ignore();
        pipe.cmd("HSET").arg("bighash").arg(format!("f{i}")).arg(format!("value-{i}")).ignore();
        pipe.cmd("ZADD").arg("bigzset").arg(i).arg(format!("m{i}")).ignore();
        pipe.cmd("SET").arg(format!("key:{i}")).arg(format!("value:{i}")).ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap();
    redis::cmd("SET").arg("in-db-1").arg("x").query::<()>(&mut c).unwrap();
    redis::cmd("SELECT").arg(0).query::<()>(&mut c).unwrap();
    redis::pipe().atomic().cmd("INCR").arg("counter").cmd("INCR").arg("counter").query::<()>(&mut c).unwrap();
    if !appendonly {
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
        return vec![("dump.rdb".into(), std::fs::read(srv.dir.path().join("dump.rdb")).unwrap())];
    }
    let dir = srv.dir.path().join("appendonlydir");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (Path::new("appendonlydir").join(p.file_name().unwrap()), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn truncated_rdb_files_are_refused_as_redis_refuses_them() {
    let files = redis_made_files(false);
    let rdb = &files[0].1;
    let len = rdb.len();
    for cut in [5, 9, 30, len / 4, len / 2, 3 * len / 4, len - 9, len - 1] {
        let case = format!("RDB cut at {cut} of {len}");
        let outcomes = compare(&case, &[("dump.rdb".into(), rdb[..cut].to_vec())], &[]);
        assert!(matches!(outcomes[1].0, Outcome::Refused { .. }), "{case}: Redis started");
        assert_same_reason(&case, &outcomes);
    }
}

#[test]
fn flipped_bits_and_checksums_in_rdb_files_end_as_in_redis() {
    let files = redis_made_files(false);
    let rdb = &files[0].1;
    let len = rdb.len();
    let mutate = |at: usize, f: &dyn Fn(&mut u8)| {
        let mut copy = rdb.clone();
        f(&mut copy[at]);
        copy
    };
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("signature".into(), mutate(4, &|b| *b = b'X')),
        ("version 99".into(), {
            let mut c = rdb.clone();
            c[5..9].copy_from_slice(b"0099");
            c
        }),
        ("checksum byte".into(), mutate(len - 3, &|b| *b ^= 1)),
    ];
    for at in [len / 5, len / 3, len / 2, 2 * len / 3, len - 20] {
        cases.push((format!("bit flip at {at}"), mutate(at, &|b| *b ^= 0x10)));
    }
    for (case, bytes) in cases {
        let outcomes = compare(&case, &[("dump.rdb".into(), bytes)], &[]);
        if matches!(outcomes[1].0, Outcome::Refused { .. }) {
            assert_same_reason(&case, &outcomes);
        }
    }
    // A zero checksum means "saved without one": both load the whole file.
    let mut unchecked = rdb.clone();
    unchecked[len - 8..].fill(0);
    let outcomes = compare("zero checksum", &[("dump.rdb".into(), unchecked)], &[]);
    match &outcomes[0].0 {
        Outcome::Running { dataset, .. } => assert!(dataset.len() > 300, "only {} keys", dataset.len()),
        other => panic!("zero checksum: {other:?}"),
    }
}

fn aof_file<'a>(files: &'a mut [(PathBuf, Vec<u8>)], suffix: &str) -> &'a mut Vec<u8> {
    &mut files.iter_mut().find(|(p, _)| p.to_string_lossy().ends_with(suffix)).unwrap_or_else(|| panic!("no {suffix}")).1
}

#[test]
fn a_truncated_aof_is_recovered_or_refused_by_aof_load_truncated() {
    let files = redis_made_files(true);
    let incr_len = files.iter().find(|(p, _)| p.to_string_lossy().ends_with(".incr.aof")).unwrap().1.len();
    // Cut inside the last command (the MULTI block of INCRs), and a few bytes in.
    for cut in [incr_len - 5, incr_len - 40, incr_len / 2] {
        let mut truncated = files.clone();
        aof_file(&mut truncated, ".incr.aof").truncate(cut);
        let case = format!("incr AOF cut at {cut} of {incr_len}");
        let outcomes = compare(&case, &truncated, &["--appendonly", "yes"]);
        let Outcome::Running { dataset, log } = &outcomes[0].0 else { unreachable!("compare checked") };
        assert!(log.contains("!!! Warning: short read while loading the AOF file"), "{case}:\n{log}");
        assert!(!dataset.contains_key("0:counter") || dataset["0:counter"] == "string:2", "{case}: half a transaction applied");
        // Both cut the file at the same place.
        let size = |dir: &Path| {
            std::fs::read_dir(dir.join("appendonlydir"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
                .map(|p| std::fs::metadata(p).unwrap().len())
        };
        assert_eq!(size(outcomes[0].1.path()), size(outcomes[1].1.path()), "{case}: truncated to different lengths");

        let case = format!("{case}, aof-load-truncated no");
        let outcomes = compare(&case, &truncated, &["--appendonly", "yes", "--aof-load-truncated", "no"]);
        assert!(matches!(outcomes[1].0, Outcome::Refused { .. }), "{case}: Redis started");
        assert_same_reason(&case, &outcomes);
    }
}

#[test]
fn aof_garbage_and_manifest_errors_are_refused_as_redis_refuses_them() {
    let files = redis_made_files(true);
    let mut cases: Vec<(String, Vec<(PathBuf, Vec<u8>)>)> = Vec::new();
    // A command's `*` replaced in the middle of the incr file.
    let mut garbage = files.clone();
    let incr = aof_file(&mut garbage, ".incr.aof");
    let at = incr.len() / 2 + incr[incr.len() / 2..].windows(3).position(|w| w == b"\n*3").expect("a command") + 1;
    incr[at] = b'X';
    cases.push(("garbage in the incr file".into(), garbage));
    // The RDB preamble of the base file truncated (not the last file: never recovered).
    let mut base = files.clone();
    aof_file(&mut base, ".base.rdb").truncate(40);
    cases.push(("truncated base".into(), base));
    let mut base_flip = files.clone();
    let b = aof_file(&mut base_flip, ".base.rdb");
    let at = b.len() - 3;
    b[at] ^= 1;
    cases.push(("base checksum".into(), base_flip));
    let mut bogus = files.clone();
    aof_file(&mut bogus, ".manifest").extend_from_slice(b"bogus line here\n");
    cases.push(("a bogus manifest line".into(), bogus));
    let mut empty = files.clone();
    aof_file(&mut empty, ".manifest").clear();
    cases.push(("an empty manifest".into(), empty));
    let mut missing = files.clone();
    missing.retain(|(p, _)| !p.to_string_lossy().ends_with(".incr.aof"));
    cases.push(("the incr file missing".into(), missing));
    let mut two_bases = files.clone();
    aof_file(&mut two_bases, ".manifest").extend_from_slice(b"file appendonly.aof.2.base.rdb seq 2 type b\n");
    cases.push(("two base files".into(), two_bases));
    for (case, files) in cases {
        let outcomes = compare(&case, &files, &["--appendonly", "yes"]);
        assert!(matches!(outcomes[1].0, Outcome::Refused { .. }), "{case}: Redis started");
        if REASONS.iter().any(|r| outcomes[1].0.log().contains(r)) {
            assert_same_reason(&case, &outcomes);
        }
    }
}
