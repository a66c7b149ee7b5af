//! The persistence service end to end over a small in-memory keyspace: SAVE/BGSAVE,
//! restart loading, appendonly on, AOF feed, BGREWRITEAOF, restart from the AOF, and a bad
//! file stopping the load with its name and offset.

mod persist_support;

use std::sync::Arc;

use bytes::Bytes;
use persist_support::toy::ToyHost;
use persist_support::wait_until;
use redis_failover::server::persistence::aof_writer::FsyncPolicy;
use redis_failover::server::persistence::host::DataHost;
use redis_failover::server::persistence::service::{PersistConfig, PersistError, Persistence};

fn cfg(dir: &std::path::Path) -> PersistConfig {
    PersistConfig { dir: dir.to_path_buf(), save_points: vec![], appendfsync: FsyncPolicy::Always, ..Default::default() }
}

fn write(p: &Persistence, host: &ToyHost, db: u32, args: &[&str]) {
    host.write(db, args);
    let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
    p.feed_aof(db, &argv);
}

#[test]
fn save_bgsave_restart_and_aof_lifecycle() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Arc::new(ToyHost::default());
    let dyn_host: Arc<dyn DataHost> = host.clone();
    let p = Persistence::new(cfg(tmp.path()));
    assert_eq!(p.load_at_startup(host.as_ref()).unwrap().keys, 0);
    for i in 0..1000 {
        host.write(i % 3, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    host.write(0, &["RPUSH", "list", "a", "b"]);
    p.save(host.as_ref(), None).unwrap();
    let before = p.lastsave();
    assert!(before > 0);

    // BGSAVE: a write after the snapshot must not be in the file.
    p.bgsave(dyn_host.clone(), None).unwrap();
    host.write(0, &["SET", "after-bgsave", "x"]);
    assert!(wait_until(10, || !p.state.bgsave_in_progress.load(std::sync::atomic::Ordering::SeqCst)));
    assert!(p.info_section(0).contains("rdb_last_bgsave_status:ok"));
    assert!(p.info_section(0).contains("rdb_saves:2"));

    let host2 = ToyHost::default();
    let loaded = Persistence::new(cfg(tmp.path())).load_at_startup(&host2).unwrap();
    assert_eq!(loaded.keys, 1001);
    let mut expected = host.dataset();
    expected.remove(&(0, Bytes::from_static(b"after-bgsave")));
    assert_eq!(host2.dataset(), expected);

    // appendonly on: base = snapshot, later writes go to the incr file.
    p.set_appendonly(true, dyn_host.clone()).unwrap();
    write(&p, &host, 1, &["SET", "aof-1", "one"]);
    write(&p, &host, 0, &["DEL", "k0"]);
    assert!(p.info_section(0).contains("aof_enabled:1"));
    // The base of a freshly enabled AOF is written in the background, like a rewrite.
    assert!(matches!(p.bgrewriteaof(dyn_host.clone()), Ok(true) | Err(PersistError::RewriteInProgress)));
    assert!(wait_until(10, || !p.state.aof_rewrite_in_progress.load(std::sync::atomic::Ordering::SeqCst)));
    assert!(p.bgrewriteaof(dyn_host.clone()).unwrap());
    write(&p, &host, 2, &["SET", "during-rewrite", "x"]);
    assert!(wait_until(10, || !p.state.aof_rewrite_in_progress.load(std::sync::atomic::Ordering::SeqCst)));
    write(&p, &host, 0, &["SET", "after-rewrite", "y"]);
    p.shutdown();
    let manifest = std::fs::read_to_string(tmp.path().join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(manifest.starts_with("file appendonly.aof.") && manifest.contains(".base.rdb seq ") && manifest.lines().count() == 2, "{manifest}");

    // Restart with appendonly yes: the AOF wins over the (older) RDB.
    let host3 = ToyHost::default();
    let p3 = Persistence::new(PersistConfig { appendonly: true, ..cfg(tmp.path()) });
    p3.load_at_startup(&host3).unwrap();
    assert_eq!(host3.dataset(), host.dataset());
}

#[test]
fn corrupt_rdb_stops_the_load_naming_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let host = ToyHost::default();
    let p = Persistence::new(cfg(tmp.path()));
    for i in 0..100 {
        host.write(0, &["SET", &format!("k{i}"), "v"]);
    }
    p.save(&host, None).unwrap();
    let path = tmp.path().join("dump.rdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 30);
    std::fs::write(&path, &bytes).unwrap();
    let err = Persistence::new(cfg(tmp.path())).load_at_startup(&ToyHost::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PersistError::Rdb { .. }), "{text}");
    assert!(text.contains("dump.rdb") && text.contains("offset"), "{text}");
    // Nothing was overwritten.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
