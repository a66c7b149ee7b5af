//! A tiny in-memory keyspace implementing `ReplicationHost`, so the replication protocol
//! can be tested against Debian redis-server before/independently of the server core.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use redis_failover::resp::{Frame, ProtocolVersion, RequestParser};
use redis_failover::server::persistence::rdb::{RdbValue, RdbWriter};
use redis_failover::server::persistence::rdb_load::parse_score;
use redis_failover::server::persistence::host::{ApplySource, DataHost, DatasetSnapshot};
use redis_failover::server::persistence::rdb::RdbEntry;
use redis_failover::server::replication::{replconf, serve_replica, ReplconfInfo, Replication};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Dataset;

#[derive(Default)]
pub struct ToyHost {
    pub data: Mutex<BTreeMap<(u32, Bytes), RdbValue>>,
    pub repl: Mutex<Option<Arc<Replication>>>,
}

struct ToySnapshot(BTreeMap<(u32, Bytes), RdbValue>);

impl DatasetSnapshot for ToySnapshot {
    fn write_dbs(&self, w: &mut RdbWriter<&mut dyn Write>) -> io::Result<()> {
        let mut current = None;
        for ((db, key), value) in &self.0 {
            if current != Some(*db) {
                w.select_db(*db)?;
                current = Some(*db);
            }
            w.write_key_value(key, value, None, None, None)?;
        }
        Ok(())
    }
}

pub fn apply_one(data: &mut BTreeMap<(u32, Bytes), RdbValue>, db: &mut u32, argv: &[Bytes]) {
    let name = argv[0].to_ascii_lowercase();
    let key = |i: usize| (*db, argv[i].clone());
    match name.as_slice() {
        b"select" => *db = std::str::from_utf8(&argv[1]).unwrap().parse().unwrap(),
        b"set" => {
            data.insert(key(1), RdbValue::String(argv[2].clone()));
        }
        b"del" | b"unlink" => {
            for k in &argv[1..] {
                data.remove(&(*db, k.clone()));
            }
        }
        b"flushall" => data.clear(),
        b"rpush" => {
            let e = data.entry(key(1)).or_insert(RdbValue::List(vec![]));
            if let RdbValue::List(l) = e {
                l.extend(argv[2..].iter().cloned());
            }
        }
        b"sadd" => {
            let e = data.entry(key(1)).or_insert(RdbValue::Set(vec![]));
            if let RdbValue::Set(s) = e {
                for m in &argv[2..] {
                    if !s.contains(m) {
                        s.push(m.clone());
                    }
                }
            }
        }
        b"hset" | b"hmset" => {
            let e = data.entry(key(1)).or_insert(RdbValue::Hash(vec![]));
            if let RdbValue::Hash(h) = e {
                for p in argv[2..].chunks(2) {
                    h.retain(|(f, _)| f != &p[0]);
                    h.push((p[0].clone(), p[1].clone()));
                }
            }
        }
        b"zadd" => {
            let e = data.entry(key(1)).or_insert(RdbValue::ZSet(vec![]));
            if let RdbValue::ZSet(z) = e {
                for p in argv[2..].chunks(2) {
                    z.retain(|(m, _)| m != &p[1]);
                    z.push((p[1].clone(), parse_score(&p[0]).unwrap()));
                }
            }
        }
        b"incr" => {
            let cur = match data.get(&key(1)) {
                Some(RdbValue::String(s)) => std::str::from_utf8(s).unwrap().parse::<i64>().unwrap(),
                _ => 0,
            };
            data.insert(key(1), RdbValue::String(Bytes::from((cur + 1).to_string())));
        }
        // Expiry metadata is not modelled; everything else in the tests is listed above.
        b"pexpireat" | b"expire" | b"pexpire" | b"multi" | b"exec" | b"ping" => {}
        other => panic!("toy host cannot apply {}", String::from_utf8_lossy(other)),
    }
}

impl DataHost for ToyHost {
    fn snapshot(&self, barrier: &mut dyn FnMut()) -> Box<dyn DatasetSnapshot> {
        let data = self.data.lock();
        barrier();
        Box::new(ToySnapshot(data.clone()))
    }

    fn flush_all(&self) {
        self.data.lock().clear();
    }

    fn load_entries(&self, db: u32, entries: Vec<RdbEntry>) {
        let mut data = self.data.lock();
        for e in entries {
            data.insert((db, e.key), e.value);
        }
    }

    fn apply_commands(&self, db: &mut u32, commands: Vec<Vec<Bytes>>, _source: ApplySource) {
        let mut data = self.data.lock();
        for c in commands {
            apply_one(&mut data, db, &c);
        }
    }
}

impl ToyHost {
    /// A write as a master: apply and propagate under the same lock (execution order).
    pub fn write(&self, db: u32, args: &[&str]) {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        let mut data = self.data.lock();
        let mut d = db;
        apply_one(&mut data, &mut d, &argv);
        if let Some(r) = self.repl.lock().as_ref() {
            r.propagate(db, &argv);
        }
    }

    pub fn dataset(&self) -> Dataset {
        self.data.lock().iter().map(|((db, k), v)| ((*db, k.clone()), (super::normalize(v.clone()), false))).collect()
    }
}

/// A minimal server front: PING, AUTH-less, REPLCONF, PSYNC/SYNC handed to replication,
/// INFO replication, ROLE. Enough for redis-server to replicate from us.
pub async fn serve_toy_master(listener: tokio::net::TcpListener, repl: Arc<Replication>, host: Arc<ToyHost>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let repl = repl.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let mut parser = RequestParser::new();
            let mut buf = BytesMut::new();
            let mut info = ReplconfInfo::default();
            loop {
                while let Ok(Some(argv)) = parser.parse(&mut buf) {
                    if argv.is_empty() {
                        continue;
                    }
                    let name = argv[0].to_ascii_lowercase();
                    let reply = match name.as_slice() {
                        b"ping" => Some(Frame::Simple("PONG".into())),
                        b"replconf" => replconf(&mut info, &argv),
                        b"psync" | b"sync" => {
                            let h: Arc<dyn DataHost> = host.clone();
                            serve_replica(repl, h, sock, buf, info, argv).await;
                            return;
                        }
                        b"info" => Some(Frame::bulk(repl.info_section())),
                        b"role" => Some(repl.role_frame()),
                        _ => Some(Frame::error("ERR unknown command")),
                    };
                    if let Some(r) = reply {
                        if sock.write_all(&r.to_bytes(ProtocolVersion::Resp2)).await.is_err() {
                            return;
                        }
                    }
                }
                match sock.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
    }
}
