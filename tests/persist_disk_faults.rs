//! Disk faults (issue 14 §6): a full disk during BGSAVE, AOF appends and AOF rewrite, on a
//! small tmpfs each test mounts (and unmounts). Every scenario runs against Debian's
//! redis-server and ours, and both must behave as Redis does: the same replies (`-MISCONF`
//! texts exact), the same INFO fields, recovery once space returns, and no write answered
//! `OK` missing after a restart from the AOF. Skipped, with the reason printed, when not
//! root or when tmpfs cannot be mounted.

mod persist_support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use persist_support::{have_redis, info_field, start_server, wait_until, ServerGuard};

const RF_SERVER: &str = env!("CARGO_BIN_EXE_rf-server");
const BGSAVE_MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
const AOF_MISCONF: &str = "MISCONF Errors writing to the AOF file: No space left on device";
/// Bigger than a tmpfs page, so an append needs a new page even when the file's last page
/// has room left.
const VALUE_LEN: usize = 5000;

/// A tmpfs of a given size mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    mount: tempfile::TempDir,
}

impl SmallDisk {
    /// None (with the reason printed) when this process cannot mount one.
    fn mount(size: &str) -> Option<SmallDisk> {
        let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        if uid != "0" {
            eprintln!("skipped: mounting a tmpfs needs root (uid {uid})");
            return None;
        }
        let mount = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(mount.path()).output().expect("run mount");
        if !out.status.success() {
            eprintln!("skipped: mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        Some(SmallDisk { mount })
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Fills the disk, then gives `leave` bytes back.
    fn fill_leaving(&self, leave: u64) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.filler()).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        // bounded: the disk is at most a few MB
        for _ in 0..10_000 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.write_all(&[0u8; 4096]);
        let len = f.metadata().expect("filler size").len();
        f.set_len(len.saturating_sub(leave)).expect("shrink filler");
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.mount.path()).status();
    }
}

/// Both servers, Debian's first (the reference); an empty list without Debian's.
fn programs() -> Vec<&'static str> {
    if !have_redis() {
        eprintln!("skipped: Debian's redis-server is not installed");
        return Vec::new();
    }
    vec!["redis-server", RF_SERVER]
}

/// One command sent inline; the first reply line without its type byte ("OK", an error's
/// text, a bulk's length) or "(closed)" when the server closed the connection.
fn reply_line(port: u16, command: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return "(closed)".into() };
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    if s.write_all(format!("{command}\r\n").as_bytes()).is_err() {
        return "(closed)".into();
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return "(closed)".into(),
        }
    }
    String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned()
}

/// `VALUE_LEN` pseudo-random letters after the index: an RDB (a rewrite's base) cannot
/// compress them away.
fn big_value(i: usize) -> String {
    let mut x = i as u64 * 2_654_435_761 + 1;
    let letters: String = (0..VALUE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect();
    format!("{i:06}{letters}")
}

fn set_big(port: u16, key: &str, i: usize) -> String {
    reply_line(port, &format!("SET {key} {}", big_value(i)))
}

fn info(server: &ServerGuard, field: &str) -> String {
    info_field(&mut server.conn(), "persistence", field).unwrap_or_else(|| panic!("INFO persistence has no {field}"))
}

fn wait_info(server: &ServerGuard, field: &str, value: &str) -> bool {
    wait_until(10, || info_field(&mut server.conn(), "persistence", field).as_deref() == Some(value))
}

/// Keys of `keys` (written with `big_value(i)` for their index) a server started on `dir`
/// with `args` does not hold with that value.
fn missing_after_restart(program: &str, dir: &Path, args: &[&str], keys: &[(String, usize)]) -> Vec<String> {
    let server = start_server(program, dir, args);
    assert!(wait_info(&server, "loading", "0"), "{program}: still loading");
    let mut c = server.conn();
    keys.iter()
        .filter(|(k, i)| redis::cmd("GET").arg(k).query::<Option<String>>(&mut c).ok().flatten() != Some(big_value(*i)))
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn bgsave_on_a_full_disk_refuses_writes_with_misconf_until_a_save_succeeds() {
    for program in programs() {
        let Some(disk) = SmallDisk::mount("2m") else { return };
        let server = start_server(program, disk.path(), &["--save", "3600 1"]);
        for i in 0..40 {
            assert_eq!(set_big(server.port, &format!("k{i}"), i), "OK");
        }
        disk.fill_leaving(0);
        assert_eq!(reply_line(server.port, "BGSAVE"), "Background saving started", "{program}");
        assert!(wait_info(&server, "rdb_bgsave_in_progress", "0"), "{program}: BGSAVE never ended");
        assert_eq!(info(&server, "rdb_last_bgsave_status"), "err", "{program}");
        assert_eq!(reply_line(server.port, "SET after 1"), BGSAVE_MISCONF, "{program}: a write");
        assert_eq!(reply_line(server.port, "PING"), BGSAVE_MISCONF, "{program}: PING (Redis refuses it too)");
        assert_eq!(reply_line(server.port, "GET k1"), (VALUE_LEN + 6).to_string(), "{program}: reads go on");

        disk.free();
        assert_eq!(reply_line(server.port, "BGSAVE"), "Background saving started", "{program}");
        assert!(wait_info(&server, "rdb_bgsave_in_progress", "0"), "{program}: BGSAVE never ended");
        assert_eq!(info(&server, "rdb_last_bgsave_status"), "ok", "{program}");
        assert_eq!(reply_line(server.port, "SET after 1"), "OK", "{program}: writes once a save succeeded");
        drop(server);
    }
}

/// Starts `program` with `args` on `disk`, writes a key, fills the disk, then writes big
/// values until one is refused: the server, the keys answered OK, and the refusal.
fn fill_while_writing(program: &str, disk: &SmallDisk, args: &[&str]) -> (ServerGuard, Vec<(String, usize)>, String) {
    let server = start_server(program, disk.path(), args);
    assert_eq!(set_big(server.port, "before", 0), "OK");
    disk.fill_leaving(0);
    let mut acked = vec![("before".to_string(), 0)];
    for i in 1..400 {
        let key = format!("full{i}");
        match set_big(server.port, &key, i).as_str() {
            "OK" => acked.push((key, i)),
            refused => return (server, acked, refused.to_string()),
        }
        // under everysec the refusal follows the failed write the next time the AOF is flushed
        std::thread::sleep(Duration::from_millis(5));
    }
    (server, acked, "(never refused)".into())
}

#[test]
fn aof_appends_on_a_full_disk_refuse_writes_until_space_returns_and_lose_nothing_acknowledged() {
    let args = ["--appendonly", "yes", "--appendfsync", "everysec"];
    for program in programs() {
        let Some(disk) = SmallDisk::mount("2m") else { return };
        let (mut server, mut acked, refusal) = fill_while_writing(program, &disk, &args);
        assert_eq!(refusal, AOF_MISCONF, "{program}: a write on the full disk");
        assert_eq!(info(&server, "aof_last_write_status"), "err", "{program}");
        assert_eq!(reply_line(server.port, "PING"), AOF_MISCONF, "{program}: PING (Redis refuses it too)");
        assert_eq!(reply_line(server.port, "GET before"), (VALUE_LEN + 6).to_string(), "{program}: reads go on");

        disk.free();
        assert!(wait_info(&server, "aof_last_write_status", "ok"), "{program}: the AOF never recovered");
        assert_eq!(set_big(server.port, "after", 1), "OK", "{program}: writes once the AOF is written again");
        acked.push(("after".into(), 1));
        // everysec: give the written data its fsync before the crash
        std::thread::sleep(Duration::from_millis(1500));
        server.kill();
        let missing = missing_after_restart(program, disk.path(), &args, &acked);
        assert!(missing.is_empty(), "{program}: acknowledged writes missing after a restart from the AOF: {missing:?}");
    }
}

#[test]
fn aof_appends_on_a_full_disk_under_always_exit_without_losing_an_acknowledged_write() {
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    for program in programs() {
        let Some(disk) = SmallDisk::mount("2m") else { return };
        let (mut server, acked, refusal) = fill_while_writing(program, &disk, &args);
        // Redis cannot take back a write it applied, so it exits rather than answer it
        assert_eq!(refusal, "(closed)", "{program}: the write that hit the full disk");
        assert!(wait_until(10, || matches!(server.child.try_wait(), Ok(Some(_)))), "{program}: still running after an AOF write error under always");
        assert_eq!(server.child.try_wait().ok().flatten().and_then(|s| s.code()), Some(1), "{program}: exit status");

        disk.free();
        let missing = missing_after_restart(program, disk.path(), &args, &acked);
        assert!(missing.is_empty(), "{program}: acknowledged writes missing after a restart from the AOF: {missing:?}");
    }
}

#[test]
fn aof_rewrite_on_a_full_disk_fails_is_reported_and_succeeds_once_space_returns() {
    let args = ["--appendonly", "yes", "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0"];
    for program in programs() {
        let Some(disk) = SmallDisk::mount("2m") else { return };
        let mut server = start_server(program, disk.path(), &args);
        let mut acked = Vec::new();
        for i in 0..60 {
            let key = format!("k{i}");
            assert_eq!(set_big(server.port, &key, i), "OK");
            acked.push((key, i));
        }
        // room for small appends, not for a new base file of the whole dataset (~300 kB)
        disk.fill_leaving(64 * 1024);
        assert_eq!(reply_line(server.port, "BGREWRITEAOF"), "Background append only file rewriting started", "{program}");
        assert!(wait_info(&server, "aof_rewrite_in_progress", "0"), "{program}: the rewrite never ended");
        assert_eq!(info(&server, "aof_last_bgrewrite_status"), "err", "{program}");
        assert_eq!(info(&server, "aof_rewrites_consecutive_failures"), "1", "{program}");
        // a failed rewrite does not stop writes: the current AOF is intact
        assert_eq!(info(&server, "aof_last_write_status"), "ok", "{program}");
        assert_eq!(reply_line(server.port, "SET small 1"), "OK", "{program}: a write after the failed rewrite");

        disk.free();
        assert_eq!(reply_line(server.port, "BGREWRITEAOF"), "Background append only file rewriting started", "{program}");
        assert!(wait_info(&server, "aof_rewrite_in_progress", "0"), "{program}: the rewrite never ended");
        assert_eq!(info(&server, "aof_last_bgrewrite_status"), "ok", "{program}");
        assert_eq!(info(&server, "aof_rewrites_consecutive_failures"), "0", "{program}");
        std::thread::sleep(Duration::from_millis(1500));
        server.kill();
        let missing = missing_after_restart(program, disk.path(), &args, &acked);
        assert!(missing.is_empty(), "{program}: writes missing after a restart from the rewritten AOF: {missing:?}");
    }
}

/// A replica whose AOF cannot be written: Redis 7.0 stops it at the master's next write
/// ("Guru Meditation: Replica was unable to write command to disk.", SIGABRT) rather than
/// hold data its disk does not; with `replica-ignore-disk-write-errors yes` it applies the
/// writes and warns.
#[test]
fn a_replica_that_cannot_write_its_aof_stops_at_the_next_write_unless_told_to_ignore() {
    use std::os::unix::process::ExitStatusExt;
    for program in programs() {
        for ignore in [false, true] {
            let Some(disk) = SmallDisk::mount("2m") else { return };
            let master_dir = tempfile::tempdir().expect("tempdir");
            let master = start_server(program, master_dir.path(), &[]);
            let log_dir = tempfile::tempdir().expect("tempdir");
            let log = log_dir.path().join("replica.log");
            let master_port = master.port.to_string();
            let mut replica = start_server(
                program,
                disk.path(),
                &[
                    "--appendonly", "yes", "--appendfsync", "everysec",
                    "--replicaof", "127.0.0.1", &master_port,
                    "--replica-ignore-disk-write-errors", if ignore { "yes" } else { "no" },
                    "--logfile", log.to_str().expect("utf-8 path"),
                ],
            );
            let what = format!("{program} (ignore {ignore})");
            assert!(
                wait_until(20, || info_field(&mut replica.conn(), "replication", "master_link_status").as_deref() == Some("up")),
                "{what}: the replica never linked"
            );
            assert_eq!(set_big(master.port, "before", 0), "OK");
            disk.fill_leaving(0);
            // bounded: the disk is full after a few writes; a write then stops the replica
            let mut stopped = None;
            for i in 1..200 {
                assert_eq!(set_big(master.port, &format!("k{i}"), i), "OK", "{what}: the master takes writes");
                std::thread::sleep(Duration::from_millis(20));
                if let Ok(Some(status)) = replica.child.try_wait() {
                    stopped = Some(status);
                    break;
                }
                if ignore && info_field(&mut replica.conn(), "persistence", "aof_last_write_status").as_deref() == Some("err") && i > 100 {
                    break;
                }
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if ignore {
                assert!(stopped.is_none(), "{what}: the replica stopped ({stopped:?}); log:\n{text}");
                assert_eq!(info(&replica, "aof_last_write_status"), "err", "{what}");
                let last = redis::cmd("GET").arg("k100").query::<Option<String>>(&mut replica.conn()).ok().flatten();
                assert_eq!(last, Some(big_value(100)), "{what}: the replica applies the master's writes");
                assert!(text.contains("Replica is applying a command even though it is unable to write to disk."), "{what}: log:\n{text}");
            } else {
                let status = stopped.unwrap_or_else(|| panic!("{what}: the replica kept applying writes it could not persist; log:\n{text}"));
                assert_eq!(status.signal(), Some(6), "{what}: stopped by abort, as serverPanic does ({status:?})");
                assert!(text.contains("Guru Meditation: Replica was unable to write command to disk."), "{what}: log:\n{text}");
            }
            replica.kill();
        }
    }
}
