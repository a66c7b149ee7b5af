//! Behaviours that Redis 7.0.15's integration units and spawned-server units (issue 15:
//! integration/rdb, integration/aof, unit/info, ...) check, each run against our rf-server
//! and Debian's redis-server side by side: the two must agree.

mod common;

use std::time::Duration;

use common::*;

fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{info}"))
}

/// integration/rdb "Test FLUSHALL aborts bgsave": FLUSHALL stops a running BGSAVE (Redis
/// kills its child with SIGUSR1), which is neither a save (the change counter stays) nor an
/// error (rdb_last_bgsave_status stays ok), and the server takes writes afterwards.
#[test]
fn flushall_aborts_a_running_bgsave_as_redis_does() {
    let args = ["--save", "", "--appendonly", "no", "--enable-debug-command", "yes", "--rdb-key-save-delay", "1000"];
    for srv in [spawn_rf(&args), spawn_redis(&args[4..])] {
        let mut c = srv.client();
        let mut pipe = redis::pipe();
        for i in 0..2000 {
            pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
        let changes: u64 = info_field(&mut c, "persistence", "rdb_changes_since_last_save").parse().unwrap();
        assert!(changes >= 2000, "changes {changes}");
        redis::cmd("BGSAVE").query::<()>(&mut c).unwrap();
        assert_eq!(info_field(&mut c, "persistence", "rdb_bgsave_in_progress"), "1");
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
        // 2000 keys at 1 ms each would take 2 s: an aborted save ends long before
        let ended = wait_for(Duration::from_millis(1500), || info_field(&mut c, "persistence", "rdb_bgsave_in_progress") == "0");
        assert!(ended, "bgsave not aborted; log:\n{}", srv.log_text());
        let changes: u64 = info_field(&mut c, "persistence", "rdb_changes_since_last_save").parse().unwrap();
        assert!(changes >= 2000, "the aborted save reset the change counter to {changes}");
        assert_eq!(info_field(&mut c, "persistence", "rdb_last_bgsave_status"), "ok");
        assert!(srv.log_text().contains("Background saving terminated by signal 10"), "log:\n{}", srv.log_text());
        assert!(!srv.dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("temp-")), "temp file left");
        redis::cmd("SET").arg("x").arg("xx").query::<()>(&mut c).unwrap();
        // and a save can run again, resetting the counter
        redis::cmd("CONFIG").arg("SET").arg("rdb-key-save-delay").arg(0).query::<()>(&mut c).unwrap();
        redis::cmd("BGSAVE").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(10), || info_field(&mut c, "persistence", "rdb_bgsave_in_progress") == "0"));
        assert_eq!(info_field(&mut c, "persistence", "rdb_changes_since_last_save"), "0");
    }
}

/// FLUSHALL with save points configured saves the (empty) dataset at once, as Redis's
/// flushAllDataAndResetRDB: the counter reads 0 and dump.rdb holds no keys.
#[test]
fn flushall_with_save_points_saves_at_once() {
    let args = ["--save", "3600 1", "--appendonly", "no"];
    let mut counters = Vec::new();
    for srv in [spawn_rf(&args), spawn_server(std::path::Path::new("/usr/bin/redis-server"), &args)] {
        let mut c = srv.client();
        redis::cmd("SET").arg("a").arg("1").query::<()>(&mut c).unwrap();
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
        counters.push(info_field(&mut c, "persistence", "rdb_changes_since_last_save"));
        assert!(srv.dir.path().join("dump.rdb").exists(), "no dump.rdb after FLUSHALL");
        assert!(srv.log_text().contains("DB saved on disk"));
    }
    assert_eq!(counters[0], counters[1]);
}

/// integration/rdb "Server should not start if RDB is corrupted": a wrong checksum is
/// reported with Redis's "RDB CRC error" line.
#[test]
fn rdb_with_a_wrong_checksum_logs_crc_error() {
    let mut logs = Vec::new();
    for bin in [rf_server_bin(), std::path::PathBuf::from("/usr/bin/redis-server")] {
        let srv = spawn_server(&bin, &["--save", "", "--appendonly", "no"]);
        let mut c = srv.client();
        redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c).unwrap();
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
        let mut rdb = std::fs::read(srv.dir.path().join("dump.rdb")).unwrap();
        drop(srv);
        let n = rdb.len();
        rdb[n - 8..].copy_from_slice(b"foobar00");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dump.rdb"), &rdb).unwrap();
        let port = free_port();
        let (code, out, err) = run_with_timeout(
            std::process::Command::new(&bin).args(["--port", &port.to_string(), "--save", ""]).current_dir(dir.path()),
            Duration::from_secs(20),
        );
        assert_eq!(code, Some(1), "{}: {out}{err}", bin.display());
        logs.push(out + &err);
    }
    for log in &logs {
        assert!(log.contains("Wrong RDB checksum expected"), "{log}");
        assert!(log.contains("RDB CRC error"), "{log}");
    }
}

/// integration/aof "AOF fsync always barrier issue" sets Redis's DEBUG AOF-FLUSH-SLEEP; with
/// it set, a write's reply still follows its AOF write.
#[test]
fn debug_aof_flush_sleep_delays_the_aof_write_not_its_order() {
    let args = ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--enable-debug-command", "yes"];
    for srv in [spawn_rf(&args), spawn_server(std::path::Path::new("/usr/bin/redis-server"), &args)] {
        let mut c = srv.client();
        assert!(wait_for(Duration::from_secs(10), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"));
        let incr_size = || -> u64 {
            let dir = srv.dir.path().join("appendonlydir");
            dir.read_dir()
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
                .map(|p| std::fs::metadata(p).unwrap().len())
                .sum()
        };
        let reply: String = redis::cmd("DEBUG").arg("AOF-FLUSH-SLEEP").arg(200_000).query(&mut c).unwrap();
        assert_eq!(reply, "OK");
        let before = incr_size();
        let _: i64 = redis::cmd("INCR").arg("n").query(&mut c).unwrap();
        assert!(incr_size() > before, "INCR answered before its AOF write");
        let reply: String = redis::cmd("DEBUG").arg("aof-flush-sleep").arg(0).query(&mut c).unwrap();
        assert_eq!(reply, "OK");
        let err = redis::cmd("DEBUG").arg("aof-flush-sleep").query::<String>(&mut c).unwrap_err();
        assert!(err.to_string().contains("unknown subcommand or wrong number of arguments for 'aof-flush-sleep'"), "{err}");
    }
}

/// SHUTDOWN (and SIGTERM) while a BGSAVE runs: Redis kills the saving child and saves, it
/// does not refuse to exit (integration/rdb's last test leaves such a save running).
#[test]
fn shutdown_stops_a_running_bgsave_and_saves() {
    let args = ["--save", "3600 1", "--appendonly", "no", "--rdb-key-save-delay", "1000000"];
    for mut srv in [spawn_rf(&args), spawn_server(std::path::Path::new("/usr/bin/redis-server"), &args)] {
        let mut c = srv.client();
        for i in 0..20 {
            redis::cmd("SET").arg(format!("k{i}")).arg(i).query::<()>(&mut c).unwrap();
        }
        redis::cmd("BGSAVE").query::<()>(&mut c).unwrap();
        assert_eq!(info_field(&mut c, "persistence", "rdb_bgsave_in_progress"), "1");
        redis::cmd("CONFIG").arg("SET").arg("rdb-key-save-delay").arg(0).query::<()>(&mut c).unwrap();
        let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
        assert_eq!(srv.wait_exit(Duration::from_secs(10)), Some(0), "log:\n{}", srv.log_text());
        let log = srv.log_text();
        assert!(log.contains("There is a child saving an .rdb. Killing it!"), "{log}");
        assert!(log.contains("DB saved on disk"), "{log}");
    }
}

/// Starts `bin` in `dir` (files prepared by the caller) with `args`; returns the server,
/// or its exit code and output when it refused to start.
fn start_in(bin: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> Result<ServerGuard, (Option<i32>, String)> {
    let port = free_port();
    let log = dir.join("server.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new(bin)
        .args(args)
        .args(["--port", &port.to_string(), "--dir", dir.to_str().unwrap()])
        .current_dir(dir)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut srv = ServerGuard { child: Some(child), port, dir: tempfile::tempdir().unwrap(), log };
    if let Some(code) = srv.wait_exit(Duration::from_millis(1500)) {
        return Err((Some(code), srv.log_text()));
    }
    assert!(wait_ready(port, Duration::from_secs(20)), "{} did not start:\n{}", bin.display(), srv.log_text());
    Ok(srv)
}

fn resp(argv: &[&str]) -> String {
    let mut s = format!("*{}\r\n", argv.len());
    for a in argv {
        s += &format!("${}\r\n{a}\r\n", a.len());
    }
    s
}

fn aof_dir_with(incr: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let aof = dir.path().join("appendonlydir");
    std::fs::create_dir(&aof).unwrap();
    std::fs::write(aof.join("appendonly.aof.manifest"), "file appendonly.aof.1.incr.aof seq 1 type i\n").unwrap();
    std::fs::write(aof.join("appendonly.aof.1.incr.aof"), incr).unwrap();
    dir
}

const BINS: [&str; 2] = [env!("CARGO_BIN_EXE_rf-server"), "/usr/bin/redis-server"];

/// integration/aof "Unknown command: Server should have logged an error": the load stops
/// and the server exits, naming the command and the file.
#[test]
fn unknown_command_in_the_aof_ends_the_load() {
    for bin in BINS {
        let dir = aof_dir_with(&(resp(&["set", "foo", "hello"]) + &resp(&["bla", "foo", "hello"]) + &resp(&["set", "foo", "hello"])));
        let args = ["--appendonly", "yes", "--save", "", "--aof-load-truncated", "yes"];
        let Err((code, log)) = start_in(std::path::Path::new(bin), dir.path(), &args) else { panic!("{bin} started") };
        assert_eq!(code, Some(1), "{bin}:\n{log}");
        assert!(log.contains("Unknown command 'bla' reading the append only file appendonly.aof.1.incr.aof"), "{bin}:\n{log}");
    }
}

/// integration/aof "Generate timestamp annotations in AOF": with aof-timestamp-enabled the
/// incr file starts with `#TS:<unix time>` and so does a rewritten base without preamble.
#[test]
fn aof_timestamp_annotations_as_redis_writes_them() {
    let args = ["--save", "", "--appendonly", "yes", "--enable-debug-command", "yes"];
    for srv in [spawn_rf(&args), spawn_server(std::path::Path::new("/usr/bin/redis-server"), &args)] {
        let mut c = srv.client();
        assert!(wait_for(Duration::from_secs(10), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"));
        redis::cmd("CONFIG").arg("SET").arg("aof-timestamp-enabled").arg("yes").query::<()>(&mut c).unwrap();
        redis::cmd("CONFIG").arg("SET").arg("aof-use-rdb-preamble").arg("no").query::<()>(&mut c).unwrap();
        redis::cmd("SET").arg("foo").arg("bar").query::<()>(&mut c).unwrap();
        let dir = srv.dir.path().join("appendonlydir");
        let file_ending = |suffix: &str| -> String {
            let p = dir.read_dir().unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().ends_with(suffix)).unwrap();
            std::fs::read_to_string(p).unwrap()
        };
        let incr = file_ending(".incr.aof");
        let first = incr.lines().next().unwrap_or_default().to_string();
        let ts: i64 = first.strip_prefix("#TS:").unwrap_or_else(|| panic!("incr file starts with {first:?}")).parse().unwrap();
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 60);
        redis::cmd("BGREWRITEAOF").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"
            && info_field(&mut c, "persistence", "aof_rewrite_scheduled") == "0"));
        assert!(file_ending(".base.aof").starts_with("#TS:"));
        // and the files load back
        redis::cmd("DEBUG").arg("LOADAOF").query::<()>(&mut c).unwrap();
        let v: String = redis::cmd("GET").arg("foo").query(&mut c).unwrap();
        assert_eq!(v, "bar");
    }
}

/// integration/rdb "Test RDB load info": keys whose time passed are left out of a load and
/// counted in rdb_last_load_keys_expired, not in rdb_last_load_keys_loaded.
#[test]
fn rdb_load_counts_expired_keys_apart() {
    let mut counts = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no", "--enable-debug-command", "yes"]);
        let mut c = srv.client();
        redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(0).query::<()>(&mut c).unwrap();
        for i in 0..30 {
            redis::cmd("SET").arg(format!("live{i}")).arg(i).query::<()>(&mut c).unwrap();
        }
        for i in 0..20 {
            redis::cmd("SET").arg(format!("gone{i}")).arg(i).arg("PX").arg(10).query::<()>(&mut c).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
        let rdb = std::fs::read(srv.dir.path().join("dump.rdb")).unwrap();
        drop(srv);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dump.rdb"), rdb).unwrap();
        let srv = start_in(std::path::Path::new(bin), dir.path(), &["--save", "", "--appendonly", "no"]).unwrap_or_else(|e| panic!("{e:?}"));
        let mut c = srv.client();
        counts.push((info_field(&mut c, "persistence", "rdb_last_load_keys_loaded"), info_field(&mut c, "persistence", "rdb_last_load_keys_expired")));
    }
    assert_eq!(counts[0], ("30".to_string(), "20".to_string()));
    assert_eq!(counts[0], counts[1]);
}

/// integration/aof "EVAL timeout with slow verbatim Lua script from AOF": while DEBUG
/// LOADAOF replays a script that went busy, other clients get -LOADING, not -BUSY.
#[test]
fn loadaof_busy_script_answers_loading() {
    for bin in BINS {
        let script = "redis.call('set',KEYS[1],'y'); for i=1,1000000 do redis.call('ping') end return 'ok'";
        let dir = aof_dir_with(&(resp(&["select", "9"]) + &resp(&["eval", script, "1", "x"])));
        let args = ["--appendonly", "yes", "--save", "", "--lua-time-limit", "1", "--aof-use-rdb-preamble", "no", "--enable-debug-command", "yes"];
        let srv = start_in(std::path::Path::new(bin), dir.path(), &args).unwrap_or_else(|e| panic!("{e:?}"));
        let port = srv.port;
        let loader = std::thread::spawn(move || {
            let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
            redis::cmd("DEBUG").arg("LOADAOF").query::<String>(&mut c)
        });
        let mut c = srv.client();
        let mut seen = None;
        let busy_seen = wait_for(Duration::from_secs(20), || match redis::cmd("PING").query::<String>(&mut c) {
            Ok(_) => false,
            Err(e) => {
                seen = Some(e.to_string());
                true
            }
        });
        assert!(busy_seen, "{bin}: never refused while loading");
        let seen = seen.unwrap();
        // the redis crate shows -LOADING as its BusyLoading kind
        assert!(seen.contains("Redis is loading the dataset in memory"), "{bin}: {seen}");
        assert_eq!(loader.join().unwrap().unwrap(), "OK");
        redis::cmd("SELECT").arg(9).query::<()>(&mut c).unwrap();
        let v: String = redis::cmd("GET").arg("x").query(&mut c).unwrap();
        assert_eq!(v, "y");
    }
}

/// integration/aof-multi-part: a single-file AOF of Redis < 7 (`appendonly.aof` in `dir`,
/// no AOF directory) is moved into the directory as the base of a new manifest and loaded;
/// a manifest naming a missing file is refused with Redis's line.
#[test]
fn old_style_aof_is_upgraded_and_missing_files_are_named() {
    let mut manifests = Vec::new();
    for bin in BINS {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("appendonly.aof"), resp(&["set", "k1", "v1"]) + &resp(&["set", "k2", "v2"])).unwrap();
        let srv = start_in(std::path::Path::new(bin), dir.path(), &["--appendonly", "yes", "--save", ""]).unwrap_or_else(|e| panic!("{e:?}"));
        let mut c = srv.client();
        let v: String = redis::cmd("GET").arg("k2").query(&mut c).unwrap();
        assert_eq!(v, "v2");
        assert!(!dir.path().join("appendonly.aof").exists());
        assert!(dir.path().join("appendonlydir/appendonly.aof").exists());
        assert!(srv.log_text().contains("Successfully migrated an old-style AOF file (appendonly.aof) into the AOF directory (appendonlydir)."));
        manifests.push(std::fs::read_to_string(dir.path().join("appendonlydir/appendonly.aof.manifest")).unwrap());
        drop(srv);

        // a manifest naming an incr file that is not there
        let dir = tempfile::tempdir().unwrap();
        let aof = dir.path().join("appendonlydir");
        std::fs::create_dir(&aof).unwrap();
        std::fs::write(aof.join("appendonly.aof.1.base.aof"), resp(&["set", "k1", "v1"])).unwrap();
        std::fs::write(aof.join("appendonly.aof.manifest"), "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n").unwrap();
        let Err((code, log)) = start_in(std::path::Path::new(bin), dir.path(), &["--appendonly", "yes", "--save", ""]) else { panic!("{bin} started") };
        assert_eq!(code, Some(1));
        assert!(log.contains("Unable to obtain the AOF file appendonly.aof.1.incr.aof length. stat: No such file or directory"), "{bin}:\n{log}");
    }
    assert_eq!(manifests[0], manifests[1]);
}

/// integration/logging: a crash (DEBUG SEGFAULT, SIGABRT from outside) leaves Redis's bug
/// report with a STACK TRACE section in the log, and the process dies of the signal;
/// `watchdog-period` is a settable (hidden) parameter.
#[test]
fn crash_reports_as_redis_logs_them() {
    for bin in BINS {
        let args = ["--save", "", "--appendonly", "no", "--enable-debug-command", "yes", "--crash-memcheck-enabled", "no"];
        let mut srv = spawn_server(std::path::Path::new(bin), &args);
        let mut c = srv.client();
        redis::cmd("CONFIG").arg("SET").arg("watchdog-period").arg(0).query::<()>(&mut c).unwrap();
        let _ = redis::cmd("DEBUG").arg("SEGFAULT").query::<()>(&mut c);
        assert!(srv.wait_exit(Duration::from_secs(20)).is_some(), "{bin} still runs");
        let log = srv.log_text();
        assert!(log.contains("=== REDIS BUG REPORT START") && log.contains("crashed by signal: 11") && log.contains("STACK TRACE"), "{bin}:\n{log}");

        let mut srv = spawn_server(std::path::Path::new(bin), &args);
        let killed = std::process::Command::new("kill").args(["-ABRT", &srv.pid().to_string()]).status().unwrap();
        assert!(killed.success());
        assert!(srv.wait_exit(Duration::from_secs(20)).is_some(), "{bin} still runs");
        let log = srv.log_text();
        assert!(log.contains("crashed by signal: 6") && log.contains("STACK TRACE"), "{bin}:\n{log}");
    }
}

/// integration/shutdown fills a paused replica's link until INFO memory's
/// mem_total_replication_buffers passes 2 MB: the field follows the replication stream
/// held for the replicas (it read 0 for ever, and the unit's loop never ended).
#[test]
fn replication_buffers_show_a_paused_replicas_backlog() {
    for bin in BINS {
        let master = spawn_for_replication(bin, &["--enable-debug-command", "yes", "--repl-backlog-size", "16384"]);
        let replica = spawn_for_replication(bin, &[]);
        let mut m = master.client();
        let mut r = replica.client();
        redis::cmd("REPLICAOF").arg("127.0.0.1").arg(master.port).query::<()>(&mut r).unwrap();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut r, "replication", "master_link_status") == "up"));
        let idle = info_field(&mut m, "memory", "mem_total_replication_buffers").parse::<u64>().unwrap();
        assert!(idle < 1024 * 1024, "{bin}: {idle}");
        assert!(std::process::Command::new("kill").args(["-STOP", &replica.pid().to_string()]).status().unwrap().success());
        let mut reached = false;
        for i in 0..200 {
            let mut pipe = redis::pipe();
            for j in 0..256 {
                pipe.cmd("SET").arg(format!("junk{i}:{j}")).arg("x".repeat(1024)).ignore();
            }
            pipe.query::<()>(&mut m).unwrap();
            if info_field(&mut m, "memory", "mem_total_replication_buffers").parse::<u64>().unwrap() > 2 * 1024 * 1024 {
                reached = true;
                break;
            }
        }
        let _ = std::process::Command::new("kill").args(["-CONT", &replica.pid().to_string()]).status();
        assert!(reached, "{bin}: mem_total_replication_buffers stayed under 2 MB");
        let clients: u64 = info_field(&mut m, "memory", "mem_clients_slaves").parse().unwrap();
        assert!(clients > 0, "{bin}: mem_clients_slaves {clients}");
    }
}

/// corrupt-dump's servers run with Redis's hidden `use-exit-on-panic`: settable, and left
/// out of CONFIG GET globs.
#[test]
fn use_exit_on_panic_is_a_hidden_parameter() {
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--use-exit-on-panic", "yes"]);
        let mut c = srv.client();
        let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("use-exit-on-panic").query(&mut c).unwrap();
        assert_eq!(got, ["use-exit-on-panic", "yes"]);
        redis::cmd("CONFIG").arg("SET").arg("use-exit-on-panic").arg("no").query::<()>(&mut c).unwrap();
        let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("use-exit-on-panic").query(&mut c).unwrap();
        assert_eq!(got, ["use-exit-on-panic", "no"]);
        let all: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("*").query(&mut c).unwrap();
        assert!(!all.iter().any(|k| k == "use-exit-on-panic" || k == "watchdog-period"), "{bin}");
    }
}

/// integration/dismiss-mem and integration/redis-cli: BGREWRITEAOF with the AOF off writes
/// a base and a manifest that DEBUG LOADAOF loads; DEBUG LOADAOF with the AOF on does not
/// append the replayed commands to the AOF again; DEBUG RELOAD NOSAVE loads the file as it
/// is on disk (functions included) and refuses unknown options.
#[test]
fn rewrite_with_aof_off_loadaof_and_reload_options_as_redis() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no", "--enable-debug-command", "yes"]);
        let mut c = srv.client();
        redis::cmd("RPUSH").arg("l").arg(&["a", "b", "c"]).query::<()>(&mut c).unwrap();
        redis::cmd("XADD").arg("st").arg("1-1").arg("f").arg("v").query::<()>(&mut c).unwrap();
        let digest: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
        redis::cmd("CONFIG").arg("SET").arg("aof-use-rdb-preamble").arg("no").query::<()>(&mut c).unwrap();
        for _ in 0..2 {
            redis::cmd("BGREWRITEAOF").query::<()>(&mut c).unwrap();
            assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"));
        }
        redis::cmd("DEBUG").arg("LOADAOF").query::<()>(&mut c).unwrap();
        let after: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
        assert_eq!(digest, after, "{bin}");
        let mut files: Vec<String> = srv.dir.path().join("appendonlydir").read_dir().unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let manifest = std::fs::read_to_string(srv.dir.path().join("appendonlydir/appendonly.aof.manifest")).unwrap();

        // AOF on: a LOADAOF leaves the incr file as it was
        redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"));
        redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c).unwrap();
        let incr_size = || -> u64 {
            let dir = srv.dir.path().join("appendonlydir");
            dir.read_dir().unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(".incr.aof")).map(|p| std::fs::metadata(p).unwrap().len()).sum()
        };
        let before = incr_size();
        redis::cmd("DEBUG").arg("LOADAOF").query::<()>(&mut c).unwrap();
        assert_eq!(incr_size(), before, "{bin}: the replay was appended to the AOF");

        // DEBUG RELOAD NOSAVE
        redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("no").query::<()>(&mut c).unwrap();
        redis::cmd("FUNCTION").arg("LOAD").arg("#!lua name=lib1\nredis.register_function('f1', function() return 1 end)").query::<()>(&mut c).unwrap();
        redis::cmd("SAVE").query::<()>(&mut c).unwrap();
        redis::cmd("SET").arg("later").arg("1").query::<()>(&mut c).unwrap();
        redis::cmd("FUNCTION").arg("LOAD").arg("#!lua name=lib2\nredis.register_function('f2', function() return 2 end)").query::<()>(&mut c).unwrap();
        redis::cmd("DEBUG").arg("RELOAD").arg("NOSAVE").query::<()>(&mut c).unwrap();
        let later: Option<String> = redis::cmd("GET").arg("later").query(&mut c).unwrap();
        assert_eq!(later, None, "{bin}");
        let libs: redis::Value = redis::cmd("FUNCTION").arg("LIST").query(&mut c).unwrap();
        let err = redis::cmd("DEBUG").arg("RELOAD").arg("bogus").query::<()>(&mut c).unwrap_err();
        seen.push((files, manifest, format!("{libs:?}"), err.to_string()));
    }
    assert_eq!(seen[0], seen[1]);
}

/// integration/aof-race runs redis-benchmark over the server's `unixsocket`: commands sent
/// there are served (and survive an AOF rewrite and a restart); the socket file goes at
/// shutdown.
#[test]
fn unixsocket_serves_clients_as_redis() {
    for bin in BINS {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let sock_s = sock.to_str().unwrap().to_string();
        let mut srv = start_in(std::path::Path::new(bin), dir.path(), &["--save", "", "--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--unixsocket", &sock_s])
            .unwrap_or_else(|e| panic!("{e:?}"));
        let out = std::process::Command::new("redis-cli").args(["-s", &sock_s, "INCRBY", "foo", "5"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5", "{bin}");
        let (code, _, err) = run_with_timeout(std::process::Command::new("redis-benchmark").args(["-q", "-s", &sock_s, "-c", "5", "-n", "2000", "incr", "foo"]), Duration::from_secs(60));
        assert_eq!(code, Some(0), "{bin}: {err}");
        let mut c = srv.client();
        let v: i64 = redis::cmd("GET").arg("foo").query(&mut c).unwrap();
        assert_eq!(v, 2005, "{bin}");
        let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
        assert!(srv.wait_exit(Duration::from_secs(20)).is_some());
        assert!(!sock.exists(), "{bin}: socket file left");
        let srv = start_in(std::path::Path::new(bin), dir.path(), &["--save", "", "--appendonly", "yes"]).unwrap_or_else(|e| panic!("{e:?}"));
        let v: i64 = redis::cmd("GET").arg("foo").query(&mut srv.client()).unwrap();
        assert_eq!(v, 2005, "{bin}");
    }
}

/// unit/info "errorstats: blocking commands": CLIENT UNBLOCK ... ERROR counts the
/// UNBLOCKED error reply in errorstats and as a failed call of the blocked command.
#[test]
fn client_unblock_error_is_counted_as_redis_counts_it() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no"]);
        let mut c = srv.client();
        let port = srv.port;
        let blocked = std::thread::spawn(move || {
            let mut b = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut b).unwrap();
            let tx = id;
            (tx, b)
        });
        let (id, mut b) = blocked.join().unwrap();
        let waiter = std::thread::spawn(move || redis::cmd("BLPOP").arg("list1").arg(0).query::<Option<Vec<String>>>(&mut b).map_err(|e| e.to_string()));
        assert!(wait_for(Duration::from_secs(10), || info_field(&mut c, "clients", "blocked_clients") == "1"));
        let n: i64 = redis::cmd("CLIENT").arg("UNBLOCK").arg(id).arg("ERROR").query(&mut c).unwrap();
        assert_eq!(n, 1);
        let err = waiter.join().unwrap().unwrap_err();
        assert!(err.contains("UNBLOCKED"), "{bin}: {err}");
        let stats: String = redis::cmd("INFO").arg("errorstats").query(&mut c).unwrap();
        let unblocked = stats.lines().find(|l| l.starts_with("errorstat_UNBLOCKED:")).map(str::to_string);
        let cmdstat: String = redis::cmd("INFO").arg("commandstats").query(&mut c).unwrap();
        let blpop = cmdstat.lines().find(|l| l.starts_with("cmdstat_blpop:")).unwrap_or_default();
        let failed = blpop.split(',').find(|f| f.starts_with("failed_calls=")).unwrap_or_default().to_string();
        seen.push((unblocked, failed));
    }
    assert_eq!(seen[0], (Some("errorstat_UNBLOCKED:count=1".to_string()), "failed_calls=1".to_string()));
    assert_eq!(seen[0], seen[1]);
}

/// unit/oom-score-adj: the process's oom_score_adj follows oom-score-adj (relative to the
/// value found when it was turned on, or absolute) and the role's class, and comes back
/// when turned off; out-of-range values are refused with Redis's error.
#[test]
fn oom_score_adj_as_redis_sets_it() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no"]);
        let mut c = srv.client();
        let proc_file = format!("/proc/{}/oom_score_adj", srv.pid());
        let read = || std::fs::read_to_string(&proc_file).unwrap().trim().parse::<i64>().unwrap();
        std::fs::write(&proc_file, "22\n").unwrap();
        let set = |c: &mut redis::Connection, k: &str, v: &str| redis::cmd("CONFIG").arg("SET").arg(k).arg(v).query::<()>(c).map_err(|e| e.to_string());
        let mut got = Vec::new();
        set(&mut c, "oom-score-adj-values", "15 20 30").unwrap();
        got.push(read());
        set(&mut c, "oom-score-adj", "yes").unwrap();
        got.push(read());
        redis::cmd("REPLICAOF").arg("127.0.0.1").arg(1).query::<()>(&mut c).unwrap();
        got.push(read());
        redis::cmd("REPLICAOF").arg("NO").arg("ONE").query::<()>(&mut c).unwrap();
        got.push(read());
        set(&mut c, "oom-score-adj", "absolute").unwrap();
        got.push(read());
        set(&mut c, "oom-score-adj", "no").unwrap();
        got.push(read());
        let err = set(&mut c, "oom-score-adj-values", "-2001 -2001 -2001").unwrap_err();
        seen.push((got, err.contains("Invalid oom-score-adj-values, elements must be between -2000 and 2000.")));
    }
    assert_eq!(seen[0], (vec![22, 37, 42, 37, 15, 22], true));
    assert_eq!(seen[0], seen[1]);
}

/// unit/pause waits for paused clients with `blocked_clients`: a client whose write waits
/// for CLIENT PAUSE WRITE to end counts there, as Redis's postponed clients do.
#[test]
fn paused_clients_count_as_blocked() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no"]);
        let mut c = srv.client();
        redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query::<()>(&mut c).unwrap();
        let port = srv.port;
        let writer = std::thread::spawn(move || {
            let mut w = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
            redis::cmd("SET").arg("k").arg("v").query::<()>(&mut w).unwrap();
        });
        let counted = wait_for(Duration::from_secs(10), || info_field(&mut c, "clients", "blocked_clients") == "1");
        let _: Option<String> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
        redis::cmd("CLIENT").arg("UNPAUSE").query::<()>(&mut c).unwrap();
        writer.join().unwrap();
        let after = info_field(&mut c, "clients", "blocked_clients");
        seen.push((counted, after));
    }
    assert_eq!(seen[0], (true, "0".to_string()));
    assert_eq!(seen[0], seen[1]);
}

/// unit/networking: CONFIG SET port moves the listener; a port in use or a bad bind
/// address is refused with Redis's errors and the server keeps its listener.
#[test]
fn config_set_port_and_bind_rebind_as_redis() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]);
        let mut c = srv.client();
        let new_port = free_port();
        redis::cmd("CONFIG").arg("SET").arg("port").arg(new_port).query::<()>(&mut c).unwrap();
        assert!(wait_ready(new_port, Duration::from_secs(10)), "{bin}");
        let mut n = redis::Client::open(format!("redis://127.0.0.1:{new_port}/")).unwrap().get_connection().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let port_err = redis::cmd("CONFIG").arg("SET").arg("port").arg(taken_port).query::<()>(&mut n).unwrap_err().to_string();
        let bind_err = redis::cmd("CONFIG").arg("SET").arg("bind").arg("999.999.999.999").query::<()>(&mut n).unwrap_err().to_string();
        let port_now: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("port").query(&mut n).unwrap();
        let bind_now: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("bind").query(&mut n).unwrap();
        assert_eq!(port_now[1], new_port.to_string(), "{bin}");
        assert!(wait_ready(new_port, Duration::from_secs(5)), "{bin}: stopped listening");
        seen.push((
            port_err.contains("CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port. Check server logs."),
            bind_err.contains("CONFIG SET failed (possibly related to argument 'bind') - Failed to bind to specified addresses."),
            bind_now[1].clone(),
        ));
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut n);
    }
    assert_eq!(seen[0], (true, true, "127.0.0.1".to_string()));
    assert_eq!(seen[0], seen[1]);
}

/// unit/aofrw: CONFIG SET appendonly yes starts the rewrite that writes the base before it
/// replies (Redis's startAppendOnly), so a waitForBgrewriteaof right after it waits for it.
#[test]
fn config_set_appendonly_starts_the_rewrite_before_replying() {
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no", "--rdb-key-save-delay", "50000"]);
        let mut c = srv.client();
        for i in 0..10 {
            redis::cmd("SET").arg(format!("k{i}")).arg(i).query::<()>(&mut c).unwrap();
        }
        redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query::<()>(&mut c).unwrap();
        assert_eq!(info_field(&mut c, "persistence", "aof_rewrite_in_progress"), "1", "{bin}");
        assert!(wait_for(Duration::from_secs(30), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"), "{bin}");
        redis::cmd("CONFIG").arg("SET").arg("rdb-key-save-delay").arg(0).query::<()>(&mut c).unwrap();
        redis::cmd("BGREWRITEAOF").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(30), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"), "{bin}");
    }
}

/// integration/redis-cli "Dumping an RDB - functions only": `redis-cli --functions-rdb`
/// (REPLCONF rdb-filter-only functions) gets an RDB with the libraries and no keys;
/// `--rdb` gets both.
#[test]
fn redis_cli_functions_rdb_holds_functions_only() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no"]);
        let mut c = srv.client();
        redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c).unwrap();
        redis::cmd("FUNCTION").arg("LOAD").arg("#!lua name=lib1\nredis.register_function('func1', function() return 123 end)").query::<()>(&mut c).unwrap();
        let mut got = Vec::new();
        for flag in ["--functions-rdb", "--rdb"] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("dump.rdb");
            let (code, out, err) = run_with_timeout(
                std::process::Command::new("redis-cli").args(["-p", &srv.port.to_string(), flag, file.to_str().unwrap()]),
                Duration::from_secs(30),
            );
            assert_eq!(code, Some(0), "{bin} {flag}: {out}{err}");
            let loaded = start_in(std::path::Path::new(bin), dir.path(), &["--save", "", "--appendonly", "no"]).unwrap_or_else(|e| panic!("{e:?}"));
            let mut l = loaded.client();
            let size: i64 = redis::cmd("DBSIZE").query(&mut l).unwrap();
            let f: i64 = redis::cmd("FCALL").arg("func1").arg(0).query(&mut l).unwrap();
            got.push((size, f));
        }
        let err = redis::cmd("REPLCONF").arg("rdb-filter-only").arg("keys").query::<()>(&mut c).unwrap_err().to_string();
        seen.push((got, err.contains("Unsupported rdb-filter-only option: keys")));
    }
    assert_eq!(seen[0], (vec![(0, 123), (1, 123)], true));
    assert_eq!(seen[0], seen[1]);
}

/// unit/networking "Default bind address configuration handling": CONFIG SET bind ""
/// closes the TCP listeners; connected clients stay.
#[test]
fn config_set_empty_bind_stops_listening() {
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]);
        let mut c = srv.client();
        redis::cmd("CONFIG").arg("SET").arg("bind").arg("").query::<()>(&mut c).unwrap();
        let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("bind").query(&mut c).unwrap();
        assert_eq!(got[1], "", "{bin}");
        assert!(std::net::TcpStream::connect(("127.0.0.1", srv.port)).is_err(), "{bin}: still listening");
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
    }
}

/// unit/aofrw "Turning off AOF kills the background writing child if any": CONFIG SET
/// appendonly no stops a running rewrite ('Killing running AOF rewrite child') without
/// counting it as a failure, and a new rewrite can start.
#[test]
fn turning_the_aof_off_stops_a_running_rewrite() {
    for bin in BINS {
        let mut srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "yes"]);
        let mut c = srv.client();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"));
        redis::cmd("SET").arg("k").arg("v").query::<()>(&mut c).unwrap();
        redis::cmd("CONFIG").arg("SET").arg("rdb-key-save-delay").arg(10_000_000).query::<()>(&mut c).unwrap();
        redis::cmd("BGREWRITEAOF").query::<()>(&mut c).unwrap();
        redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("no").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(5), || srv.log_text().contains("Killing running AOF rewrite child")), "{bin}:\n{}", srv.log_text());
        assert!(wait_for(Duration::from_secs(10), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"), "{bin}");
        assert_eq!(info_field(&mut c, "persistence", "aof_last_bgrewrite_status"), "ok", "{bin}");
        redis::cmd("CONFIG").arg("SET").arg("rdb-key-save-delay").arg(0).query::<()>(&mut c).unwrap();
        redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"), "{bin}");
        redis::cmd("BGREWRITEAOF").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"), "{bin}");
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
        let _ = srv.wait_exit(Duration::from_secs(10));
    }
}

/// unit/aofrw "AOF rewrite functions" (the AOF is off there): a rewrite without RDB
/// preamble writes each library as FUNCTION LOAD, so DEBUG LOADAOF brings the functions
/// back. (With the AOF on, the FUNCTION FLUSH in the incr file flushes them again, in
/// Redis too.)
#[test]
fn aof_rewrite_without_preamble_keeps_functions() {
    for bin in BINS {
        let appendonly = "no";
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", appendonly, "--aof-use-rdb-preamble", "no", "--enable-debug-command", "yes"]);
        let mut c = srv.client();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"));
        redis::cmd("FUNCTION").arg("LOAD").arg("#!lua name=test\nredis.register_function('test', function() return 1 end)").query::<()>(&mut c).unwrap();
        redis::cmd("BGREWRITEAOF").query::<()>(&mut c).unwrap();
        assert!(wait_for(Duration::from_secs(20), || info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"));
        redis::cmd("FUNCTION").arg("FLUSH").query::<()>(&mut c).unwrap();
        redis::cmd("DEBUG").arg("LOADAOF").query::<()>(&mut c).unwrap();
        let v: i64 = redis::cmd("FCALL").arg("test").arg(0).query(&mut c).unwrap();
        assert_eq!(v, 1, "{bin} appendonly {appendonly}");
    }
}

/// integration/corrupt-dump: DEBUG SET-SKIP-CHECKSUM-VALIDATION 1 lets RESTORE take a
/// payload with a wrong CRC64 (the value is still decoded and checked); 0 checks again.
#[test]
fn restore_can_skip_the_payload_checksum() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no", "--enable-debug-command", "yes"]);
        let mut c = srv.client();
        redis::cmd("SET").arg("k").arg("value").query::<()>(&mut c).unwrap();
        let mut payload: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut c).unwrap();
        let n = payload.len();
        payload[n - 1] ^= 0xff;
        let refused = redis::cmd("RESTORE").arg("k2").arg(0).arg(&payload).query::<()>(&mut c).unwrap_err().to_string();
        redis::cmd("DEBUG").arg("SET-SKIP-CHECKSUM-VALIDATION").arg(1).query::<()>(&mut c).unwrap();
        redis::cmd("RESTORE").arg("k2").arg(0).arg(&payload).query::<()>(&mut c).unwrap();
        let v: String = redis::cmd("GET").arg("k2").query(&mut c).unwrap();
        redis::cmd("DEBUG").arg("SET-SKIP-CHECKSUM-VALIDATION").arg(0).query::<()>(&mut c).unwrap();
        let again = redis::cmd("RESTORE").arg("k3").arg(0).arg(&payload).query::<()>(&mut c).is_err();
        seen.push((refused.contains("DUMP payload version or checksum are wrong"), v, again));
    }
    assert_eq!(seen[0], (true, "value".to_string(), true));
    assert_eq!(seen[0], seen[1]);
}

/// unit/pause "special commands / scripts are paused by RO": CLIENT PAUSE WRITE also holds
/// may-replicate commands (PUBLISH, EVAL without no-writes) and counts them as blocked; a
/// no-writes script is answered at once.
#[test]
fn pause_write_holds_may_replicate_commands() {
    let mut seen = Vec::new();
    for bin in BINS {
        let srv = spawn_server(std::path::Path::new(bin), &["--save", "", "--appendonly", "no"]);
        let mut c = srv.client();
        redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query::<()>(&mut c).unwrap();
        let ro: i64 = redis::cmd("EVAL").arg("#!lua flags=no-writes\nreturn 1").arg(0).query(&mut c).unwrap();
        let port = srv.port;
        let mut held = Vec::new();
        for (i, cmd) in [vec!["PUBLISH", "ch", "m"], vec!["EVAL", "return 1", "0"]].into_iter().enumerate() {
            held.push(std::thread::spawn(move || {
                let mut w = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
                let mut r = redis::cmd(cmd[0]);
                for a in &cmd[1..] {
                    r.arg(*a);
                }
                r.query::<redis::Value>(&mut w).map(|_| i).map_err(|e| e.to_string())
            }));
            let want = (i + 1).to_string();
            assert!(wait_for(Duration::from_secs(10), || info_field(&mut c, "clients", "blocked_clients") == want), "{bin}: command {i} not held");
        }
        redis::cmd("CLIENT").arg("UNPAUSE").query::<()>(&mut c).unwrap();
        let done: Vec<bool> = held.into_iter().map(|h| h.join().unwrap().is_ok()).collect();
        seen.push((ro, done));
    }
    assert_eq!(seen[0], (1, vec![true, true]));
    assert_eq!(seen[0], seen[1]);
}
