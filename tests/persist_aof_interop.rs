//! Multi-part AOF interoperability with Debian redis-server 7.0, both ways.

mod persist_support;

use std::collections::BTreeMap;

use bytes::Bytes;
use persist_support::toy::apply_one;
use persist_support::*;
use redis_failover::server::persistence::aof::{load_aof_dir, AofLoadEvent};
use redis_failover::server::persistence::aof_manager::AofManager;
use redis_failover::server::persistence::aof_writer::FsyncPolicy;
use redis_failover::server::persistence::rdb::{write_rdb_file, RdbEntry, RdbFile, RdbSaveOptions, RdbValue};
use redis_failover::server::persistence::rdb_load::RdbItem;

type Model = BTreeMap<(u32, Bytes), RdbValue>;

fn load_into_model(dir: &std::path::Path) -> Model {
    let mut model = Model::new();
    let mut rdb_db = 0u32;
    let mut cmd_db = 0u32;
    load_aof_dir(dir, "appendonly.aof", false, |ev| match ev {
        AofLoadEvent::Rdb(RdbItem::SelectDb(db)) => rdb_db = db,
        AofLoadEvent::Rdb(RdbItem::Entry(e)) => {
            model.insert((rdb_db, e.key), e.value);
        }
        AofLoadEvent::Rdb(_) => {}
        AofLoadEvent::FileStart(_) => cmd_db = 0,
        AofLoadEvent::Command(argv) => apply_one(&mut model, &mut cmd_db, &argv),
    })
    .unwrap()
    .expect("manifest present");
    model
}

fn strip(d: Dataset) -> Vec<((u32, Bytes), RdbValue)> {
    d.into_iter().map(|(k, (v, _))| (k, v)).collect()
}

fn model_dataset(m: &Model) -> Dataset {
    m.iter().map(|(k, v)| (k.clone(), (normalize(v.clone()), false))).collect()
}

#[test]
fn we_load_aof_directories_written_by_redis() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let redis = start_server("redis-server", dir.path(), &["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        let mut c = redis.conn();
        populate_all_types(&mut c);
        redis::cmd("BGREWRITEAOF").query::<String>(&mut c).unwrap();
        assert!(wait_until(20, || info_field(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
            && info_field(&mut c, "persistence", "aof_rewrites").as_deref() == Some("1")));
        // Writes after the rewrite land in the incr file.
        for i in 0..100 {
            redis::cmd("SET").arg(format!("after:{i}")).arg(i).query::<()>(&mut c).unwrap();
        }
        redis::cmd("RPUSH").arg("list:small").arg("tail").query::<()>(&mut c).unwrap();
        redis::cmd("DEL").arg("hash:big").query::<()>(&mut c).unwrap();
        let expected = dataset_of_server(&mut c);
        let base_ext = if preamble == "yes" { "rdb" } else { "aof" };
        let aof_dir = dir.path().join("appendonlydir");
        assert!(aof_dir.join(format!("appendonly.aof.2.base.{base_ext}")).exists());
        let model = load_into_model(&aof_dir);
        assert_eq!(strip(model_dataset(&model)), strip(expected), "aof-use-rdb-preamble {preamble}");
    }
}

#[test]
fn redis_loads_aof_directories_we_write() {
    if !have_redis() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let bs = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let base = RdbFile {
        dbs: vec![(
            0,
            vec![
                RdbEntry::new(bs("s"), RdbValue::String(bs("base"))),
                RdbEntry::new(bs("l"), RdbValue::List(vec![bs("1"), bs("2")])),
                RdbEntry::new(bs("z"), RdbValue::ZSet(vec![(bs("m"), 2.5)])),
                RdbEntry::new(bs("h"), RdbValue::Hash(vec![(bs("f"), bs("v"))])),
                RdbEntry::new(bs("st"), RdbValue::Set(vec![bs("a"), bs("7")])),
            ],
        )],
        ..Default::default()
    };
    let rdb = write_rdb_file(&base, &RdbSaveOptions::default()).unwrap();
    for preamble in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let aof_dir = dir.path().join("appendonlydir");
        let mut model: Model = base.dbs[0].1.iter().map(|e| ((0, e.key.clone()), e.value.clone())).collect();
        {
            let mut m = AofManager::create(&aof_dir, "appendonly.aof", &rdb, preamble, FsyncPolicy::Always).unwrap();
            let cmds: Vec<(u32, Vec<&str>)> = vec![
                (0, vec!["SET", "s", "changed"]),
                (0, vec!["RPUSH", "l", "3"]),
                (2, vec!["SET", "in2", "x"]),
                (2, vec!["SET", "in2b", "y"]),
                (0, vec!["DEL", "h"]),
            ];
            for (i, (cmd_db, c)) in cmds.iter().enumerate() {
                let argv: Vec<Bytes> = c.iter().map(|a| bs(a)).collect();
                let mut db = *cmd_db;
                apply_one(&mut model, &mut db, &argv);
                m.feed_command(*cmd_db, &argv);
                if i == 2 {
                    // A rewrite in the middle: the new base is the model at this point.
                    m.begin_rewrite().unwrap();
                    let snap = RdbFile {
                        dbs: {
                            let mut by_db: BTreeMap<u32, Vec<RdbEntry>> = BTreeMap::new();
                            for ((d, k), v) in &model {
                                by_db.entry(*d).or_default().push(RdbEntry::new(k.clone(), v.clone()));
                            }
                            by_db.into_iter().collect()
                        },
                        ..Default::default()
                    };
                    m.finish_rewrite(&write_rdb_file(&snap, &RdbSaveOptions::default()).unwrap(), preamble).unwrap();
                }
            }
            m.writer.flush_blocking().unwrap();
        }
        // Our own loader agrees with the model...
        assert_eq!(strip(model_dataset(&load_into_model(&aof_dir))), strip(model_dataset(&model)));
        // ...and so does Redis.
        let redis = start_server("redis-server", dir.path(), &["--appendonly", "yes"]);
        let mut c = redis.conn();
        assert_eq!(strip(dataset_of_server(&mut c)), strip(model_dataset(&model)), "preamble {preamble}");
    }
}
