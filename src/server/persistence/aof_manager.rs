//! The AOF directory at run time: creating it when `appendonly` turns on, opening it after a
//! load, and BGREWRITEAOF's file switch (a new incr file at the start, the new base and a
//! manifest without the old files at the end), as Redis 7.0's multi-part AOF.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::aof::{append_command, base_name, incr_name, manifest_name, AofFileInfo, AofFileKind, AofManifest};
use super::aof_writer::{AofWriter, FsyncPolicy};
use super::rdb::RdbValue;

/// `aof-timestamp-enabled` (process-wide, as Redis's server.aof_timestamp_enabled) and the
/// second of the last `#TS:` annotation written (server.aof_cur_timestamp).
static TIMESTAMPS: AtomicBool = AtomicBool::new(false);
static CUR_TIMESTAMP: AtomicI64 = AtomicI64::new(0);

/// Called whenever the configuration is applied.
pub fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, Ordering::Relaxed);
}

/// Redis's genAofTimestampAnnotationIfNeeded: `#TS:<unix time>` once per new second (or
/// always when `force`), when aof-timestamp-enabled is on.
fn timestamp_annotation(force: bool) -> Option<String> {
    if !TIMESTAMPS.load(Ordering::Relaxed) {
        return None;
    }
    let now = chrono::Utc::now().timestamp();
    let prev = CUR_TIMESTAMP.load(Ordering::Relaxed);
    if !force && prev >= now {
        return None;
    }
    CUR_TIMESTAMP.store(now, Ordering::Relaxed);
    Some(format!("#TS:{now}\r\n"))
}

/// Commands that recreate a key (what an AOF without RDB preamble contains).
pub fn value_to_commands(key: &Bytes, value: &RdbValue, expire_ms: Option<i64>) -> Vec<Vec<Bytes>> {
    const BATCH: usize = 64; // AOF_REWRITE_ITEMS_PER_CMD
    let mut out = Vec::new();
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    match value {
        RdbValue::String(s) => out.push(vec![b("SET"), key.clone(), s.clone()]),
        RdbValue::List(items) => {
            for chunk in items.chunks(BATCH) {
                let mut c = vec![b("RPUSH"), key.clone()];
                c.extend(chunk.iter().cloned());
                out.push(c);
            }
        }
        RdbValue::Set(items) => {
            for chunk in items.chunks(BATCH) {
                let mut c = vec![b("SADD"), key.clone()];
                c.extend(chunk.iter().cloned());
                out.push(c);
            }
        }
        RdbValue::ZSet(pairs) => {
            for chunk in pairs.chunks(BATCH) {
                let mut c = vec![b("ZADD"), key.clone()];
                for (m, s) in chunk {
                    c.push(Bytes::from(crate::resp::format_double(*s)));
                    c.push(m.clone());
                }
                out.push(c);
            }
        }
        RdbValue::Hash(pairs) => {
            for chunk in pairs.chunks(BATCH) {
                let mut c = vec![b("HSET"), key.clone()];
                for (f, v) in chunk {
                    c.push(f.clone());
                    c.push(v.clone());
                }
                out.push(c);
            }
        }
        RdbValue::Stream(st) => stream_commands(key, st, &mut out),
    }
    if let Some(ms) = expire_ms {
        out.push(vec![b("PEXPIREAT"), key.clone(), Bytes::from(ms.to_string())]);
    }
    out
}

/// Redis's `rewriteStreamObject`: the entries as XADDs (an empty stream as an XADD trimmed
/// to nothing), XSETID for the counters, then each group, its pending entries as XCLAIMs
/// and its consumers without pending entries.
fn stream_commands(key: &Bytes, s: &crate::server::types::stream::StreamValue, out: &mut Vec<Vec<Bytes>>) {
    use crate::server::types::stream::StreamId;
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    if s.is_empty() {
        out.push(vec![b("XADD"), key.clone(), b("MAXLEN"), b("0"), StreamId::new(0, 1).to_bytes(), b("x"), b("y")]);
    } else {
        for e in s.range(StreamId::MIN, StreamId::MAX, false, 0) {
            let mut c = vec![b("XADD"), key.clone(), e.id.to_bytes()];
            c.extend(e.fields.iter().cloned());
            out.push(c);
        }
    }
    out.push(vec![
        b("XSETID"),
        key.clone(),
        s.last_id.to_bytes(),
        b("ENTRIESADDED"),
        Bytes::from(s.entries_added.to_string()),
        b("MAXDELETEDID"),
        s.max_deleted_id.to_bytes(),
    ]);
    for (name, g) in &s.groups {
        out.push(vec![b("XGROUP"), b("CREATE"), key.clone(), name.clone(), g.last_id.to_bytes(), b("ENTRIESREAD"), Bytes::from(g.entries_read.to_string())]);
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                out.push(vec![b("XGROUP"), b("CREATECONSUMER"), key.clone(), name.clone(), cname.clone()]);
                continue;
            }
            for id in &c.pel {
                let Some(n) = g.pel.get(id) else { continue };
                out.push(vec![
                    b("XCLAIM"),
                    key.clone(),
                    name.clone(),
                    cname.clone(),
                    b("0"),
                    id.to_bytes(),
                    b("TIME"),
                    Bytes::from(n.delivery_time.to_string()),
                    b("RETRYCOUNT"),
                    Bytes::from(n.delivery_count.to_string()),
                    b("JUSTID"),
                    b("FORCE"),
                ]);
            }
        }
    }
}

/// Converts an RDB image into the equivalent AOF command text (base without preamble).
pub fn rdb_to_aof(rdb: &[u8]) -> Result<Vec<u8>, super::rdb::RdbError> {
    use super::rdb_load::{RdbItem, RdbReader};
    let mut r = RdbReader::new(rdb)?;
    let mut out = BytesMut::new();
    while let Some(item) = r.next_item()? {
        match item {
            RdbItem::SelectDb(db) => append_command(&mut out, &[Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())]),
            RdbItem::Entry(e) => {
                for c in value_to_commands(&e.key, &e.value, e.expire_ms) {
                    append_command(&mut out, &c);
                }
            }
            // Redis's rewriteFunctions: each library as FUNCTION LOAD <code> (the RDB
            // holds them before the databases, so they come first here too)
            RdbItem::Function(code) => append_command(&mut out, &[Bytes::from_static(b"FUNCTION"), Bytes::from_static(b"LOAD"), code]),
            _ => {}
        }
    }
    Ok(out.to_vec())
}

pub struct AofManager {
    pub dir: PathBuf,
    pub filename: String,
    pub manifest: AofManifest,
    pub writer: Arc<AofWriter>,
    /// Database of the last SELECT written to the current incr file.
    selected_db: Option<u32>,
}

pub fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl AofManager {
    /// `appendonly yes` with no AOF yet: writes `base` (an RDB image; commands when
    /// `rdb_preamble` is false) as seq 1, opens incr seq 1, then writes the manifest.
    pub fn create(dir: &Path, filename: &str, base_rdb: &[u8], rdb_preamble: bool, policy: FsyncPolicy) -> io::Result<AofManager> {
        let mut m = AofManager::create_pending(dir, filename, policy)?;
        let (name, _) = AofManager::write_base(dir, filename, 1, base_rdb, rdb_preamble)?;
        m.install_base(name, 1)?;
        Ok(m)
    }

    /// First half of turning the AOF on: opens incr seq 1 so writes can be captured from
    /// this instant (call inside the snapshot barrier). No manifest yet: until
    /// [`AofManager::install_base`] runs, a restart still loads the RDB file.
    pub fn create_pending(dir: &Path, filename: &str, policy: FsyncPolicy) -> io::Result<AofManager> {
        fs::create_dir_all(dir)?;
        let incr = incr_name(filename, 1);
        fs::File::create(dir.join(&incr))?;
        let manifest = AofManifest {
            base: None,
            incrs: vec![AofFileInfo { name: incr.clone(), seq: 1, kind: AofFileKind::Incr }],
            history: vec![],
        };
        let writer = Arc::new(AofWriter::open(&dir.join(&incr), policy)?);
        Ok(AofManager { dir: dir.to_path_buf(), filename: filename.to_string(), manifest, writer, selected_db: None })
    }

    /// Writes a base file (no manifest change; no lock needed). Returns its name and size.
    pub fn write_base(dir: &Path, filename: &str, seq: u64, base_rdb: &[u8], rdb_preamble: bool) -> io::Result<(String, u64)> {
        let name = base_name(filename, seq, rdb_preamble);
        let bytes = if rdb_preamble {
            base_rdb.to_vec()
        } else {
            // a rewrite without preamble starts with a timestamp (rewriteAppendOnlyFileRio)
            let mut out = timestamp_annotation(true).map(String::into_bytes).unwrap_or_default();
            out.extend(rdb_to_aof(base_rdb).map_err(io::Error::other)?);
            out
        };
        write_atomically(&dir.join(&name), &bytes)?;
        Ok((name, bytes.len() as u64))
    }

    /// The sequence number the next base file gets.
    pub fn next_base_seq(&self) -> u64 {
        self.manifest.base_seq() + 1
    }

    /// Registers a base written by [`AofManager::write_base`] as the first one.
    pub fn install_base(&mut self, name: String, seq: u64) -> io::Result<()> {
        self.manifest.base = Some(AofFileInfo { name, seq, kind: AofFileKind::Base });
        write_atomically(&self.dir.join(manifest_name(&self.filename)), self.manifest.format().as_bytes())
    }

    /// After loading an existing AOF directory: append to its last incr file (creating one
    /// if the manifest has none).
    pub fn open(dir: &Path, filename: &str, policy: FsyncPolicy) -> io::Result<AofManager> {
        let text = fs::read_to_string(dir.join(manifest_name(filename)))?;
        let mut manifest = AofManifest::parse(&text).map_err(|(l, r)| io::Error::other(format!("manifest line {l}: {r}")))?;
        if manifest.incrs.is_empty() {
            let seq = manifest.last_incr_seq() + 1;
            manifest.incrs.push(AofFileInfo { name: incr_name(filename, seq), seq, kind: AofFileKind::Incr });
            write_atomically(&dir.join(manifest_name(filename)), manifest.format().as_bytes())?;
        }
        let last = manifest.incrs.last().expect("one incr").name.clone();
        let writer = Arc::new(AofWriter::open(&dir.join(last), policy)?);
        Ok(AofManager { dir: dir.to_path_buf(), filename: filename.to_string(), manifest, writer, selected_db: None })
    }

    /// BGREWRITEAOF, step 1 — call inside the keyspace barrier with the snapshot: new writes
    /// go to a fresh incr file from now on.
    pub fn begin_rewrite(&mut self) -> io::Result<()> {
        let seq = self.manifest.last_incr_seq() + 1;
        let name = incr_name(&self.filename, seq);
        fs::File::create(self.dir.join(&name))?;
        self.manifest.incrs.push(AofFileInfo { name: name.clone(), seq, kind: AofFileKind::Incr });
        write_atomically(&self.dir.join(manifest_name(&self.filename)), self.manifest.format().as_bytes())?;
        // The new file is loaded by a fresh client: it must start with a SELECT.
        self.selected_db = None;
        self.writer.reopen_blocking(&self.dir.join(name))
    }

    /// BGREWRITEAOF, step 2: make the new base (written by [`AofManager::write_base`] from
    /// the snapshot of step 1) current, and drop the files it replaces.
    pub fn commit_rewrite(&mut self, base_name: String, seq: u64) -> io::Result<()> {
        let current_incr = self.manifest.incrs.pop().expect("begin_rewrite added an incr");
        let old: Vec<AofFileInfo> = self.manifest.base.take().into_iter().chain(self.manifest.incrs.drain(..)).collect();
        self.manifest.base = Some(AofFileInfo { name: base_name, seq, kind: AofFileKind::Base });
        self.manifest.incrs = vec![current_incr];
        write_atomically(&self.dir.join(manifest_name(&self.filename)), self.manifest.format().as_bytes())?;
        for f in old {
            let _ = fs::remove_file(self.dir.join(&f.name));
        }
        Ok(())
    }

    /// Test/tool helper: step 2 in one call.
    pub fn finish_rewrite(&mut self, base_rdb: &[u8], rdb_preamble: bool) -> io::Result<u64> {
        let seq = self.next_base_seq();
        let (name, size) = AofManager::write_base(&self.dir, &self.filename, seq, base_rdb, rdb_preamble)?;
        self.commit_rewrite(name, seq)?;
        Ok(size)
    }

    /// Queues raw command bytes; returns their sequence number.
    pub fn feed(&self, data: Bytes) -> u64 {
        self.writer.append(data)
    }

    /// Queues one command executed in `db`, preceded by SELECT when the database changes.
    pub fn feed_command(&mut self, db: u32, argv: &[Bytes]) -> u64 {
        let select = (self.selected_db != Some(db)).then(|| [Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())]);
        self.selected_db = Some(db);
        let ts = timestamp_annotation(false);
        self.writer.append_with(|buf| {
            if let Some(ts) = &ts {
                buf.extend_from_slice(ts.as_bytes());
            }
            if let Some(select) = &select {
                append_command(buf, select);
            }
            append_command(buf, argv);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::persistence::aof::{load_aof_dir, AofLoadEvent};
    use crate::server::persistence::rdb::{write_rdb_file, RdbEntry, RdbFile, RdbSaveOptions};

    fn rdb_with(key: &str, val: &str) -> Vec<u8> {
        let f = RdbFile {
            dbs: vec![(0, vec![RdbEntry::new(Bytes::copy_from_slice(key.as_bytes()), RdbValue::String(Bytes::copy_from_slice(val.as_bytes())))])],
            ..Default::default()
        };
        write_rdb_file(&f, &RdbSaveOptions::default()).unwrap()
    }

    fn load(dir: &Path) -> Vec<String> {
        let mut seen = Vec::new();
        load_aof_dir(dir, "appendonly.aof", false, |ev| match ev {
            AofLoadEvent::Rdb(crate::server::persistence::rdb_load::RdbItem::Entry(e)) => seen.push(format!("rdb:{}", String::from_utf8_lossy(&e.key))),
            AofLoadEvent::Command(c) if &c[0][..] == b"SELECT" => {}
            AofLoadEvent::Command(c) => seen.push(format!("cmd:{}", String::from_utf8_lossy(&c[c.len() - 1]))),
            _ => {}
        })
        .unwrap()
        .unwrap();
        seen
    }

    #[test]
    fn create_feed_rewrite_reload() {
        for preamble in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("appendonlydir");
            let mut m = AofManager::create(&dir, "appendonly.aof", &rdb_with("base", "1"), preamble, FsyncPolicy::Always).unwrap();
            let mut buf = BytesMut::new();
            append_command(&mut buf, &[Bytes::from_static(b"SET"), Bytes::from_static(b"a"), Bytes::from_static(b"x1")]);
            m.feed(buf.split().freeze());
            m.writer.flush_blocking().unwrap();
            let expect_base = if preamble { "rdb:base" } else { "cmd:1" };
            assert_eq!(load(&dir), vec![expect_base.to_string(), "cmd:x1".into()]);

            m.begin_rewrite().unwrap();
            append_command(&mut buf, &[Bytes::from_static(b"SET"), Bytes::from_static(b"b"), Bytes::from_static(b"x2")]);
            m.feed(buf.split().freeze());
            m.writer.flush_blocking().unwrap();
            // Mid-rewrite the directory still loads everything.
            assert_eq!(load(&dir), vec![expect_base.to_string(), "cmd:x1".into(), "cmd:x2".into()]);
            m.finish_rewrite(&rdb_with("rewritten", "2"), preamble).unwrap();
            let expect_new = if preamble { "rdb:rewritten" } else { "cmd:2" };
            assert_eq!(load(&dir), vec![expect_new.to_string(), "cmd:x2".into()]);
            let names: Vec<String> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
            assert_eq!(names.len(), 3, "{names:?}");
            let manifest = fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
            let ext = if preamble { "rdb" } else { "aof" };
            assert_eq!(manifest, format!("file appendonly.aof.2.base.{ext} seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"));
        }
    }
}
