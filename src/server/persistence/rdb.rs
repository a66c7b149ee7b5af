//! RDB version 10 (Redis 7.0) model, constants, errors and writer.
//! The reader lives in [`super::rdb_load`].

use std::io::{self, Write};

use bytes::Bytes;
use thiserror::Error;

use super::encodings::{canonical_int, intset_encode, ListpackBuilder};
use super::lzf;

pub const RDB_VERSION: u16 = 10;
pub const REDIS_VERSION_AUX: &str = "7.0.15";

// Value types.
pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
/// Redis 7.2 (RDB 11); read for convenience.
pub const TYPE_SET_LISTPACK: u8 = 20;

// Opcodes.
pub const OP_FUNCTION2: u8 = 0xf5;
pub const OP_FUNCTION: u8 = 0xf6;
pub const OP_MODULE_AUX: u8 = 0xf7;
pub const OP_IDLE: u8 = 0xf8;
pub const OP_FREQ: u8 = 0xf9;
pub const OP_AUX: u8 = 0xfa;
pub const OP_RESIZEDB: u8 = 0xfb;
pub const OP_EXPIRETIME_MS: u8 = 0xfc;
pub const OP_EXPIRETIME: u8 = 0xfd;
pub const OP_SELECTDB: u8 = 0xfe;
pub const OP_EOF: u8 = 0xff;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

const QUICKLIST_NODE_PACKED: u64 = 2;

/// A value as stored in an RDB file, independent of the server's in-memory types.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbValue {
    String(Bytes),
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    ZSet(Vec<(Bytes, f64)>),
    Hash(Vec<(Bytes, Bytes)>),
    Stream(Box<crate::server::types::stream::StreamValue>),
}

impl RdbValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            RdbValue::String(_) => "string",
            RdbValue::List(_) => "list",
            RdbValue::Set(_) => "set",
            RdbValue::ZSet(_) => "zset",
            RdbValue::Hash(_) => "hash",
            RdbValue::Stream(_) => "stream",
        }
    }
}

/// One key with its value and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct RdbEntry {
    pub key: Bytes,
    pub value: RdbValue,
    /// Absolute expiry, unix milliseconds.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (written when the eviction policy is LRU).
    pub idle_secs: Option<u64>,
    /// LFU logarithmic counter (written when the eviction policy is LFU).
    pub lfu_freq: Option<u8>,
}

impl RdbEntry {
    pub fn new(key: impl Into<Bytes>, value: RdbValue) -> Self {
        RdbEntry { key: key.into(), value, expire_ms: None, idle_secs: None, lfu_freq: None }
    }
}

#[derive(Debug, Error)]
pub enum RdbError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("wrong signature trying to load DB from file (offset 0)")]
    BadSignature,
    #[error("can't handle RDB format version {0}")]
    UnsupportedVersion(u32),
    #[error("unexpected end of file at offset {offset} while reading {what}")]
    Truncated { offset: usize, what: &'static str },
    #[error("unknown RDB type or opcode {ty} at offset {offset}")]
    UnknownType { ty: u8, offset: usize },
    #[error("unsupported RDB value type {ty} ({name}) at offset {offset}")]
    Unsupported { ty: u8, name: &'static str, offset: usize },
    #[error("corrupt RDB data at offset {offset}: {reason}")]
    Corrupt { offset: usize, reason: String },
    #[error("wrong RDB checksum at offset {offset}: file has {expected:016x}, computed {computed:016x}")]
    Checksum { offset: usize, expected: u64, computed: u64 },
}

impl RdbError {
    /// The line(s, one per `\n`) Redis 7.0 logs when a load at start-up fails this way
    /// (operators and log scanners look for these).
    pub fn redis_log_line(&self) -> String {
        match self {
            RdbError::Io(e) => format!("Short read or OOM loading DB. Unrecoverable error, aborting now. ({e})"),
            RdbError::BadSignature => "Wrong signature trying to load DB from file".into(),
            RdbError::UnsupportedVersion(v) => format!("Can't handle RDB format version {v}"),
            RdbError::Truncated { .. } => "Short read or OOM loading DB. Unrecoverable error, aborting now.".into(),
            // Redis's `expected` is the checksum it computed, `got` the one in the file;
            // it then reports the corruption (rdbReportCorruptRDB "RDB CRC error"), the
            // line the suite's integration/rdb looks for.
            RdbError::Checksum { expected, computed, offset } => format!(
                "Wrong RDB checksum expected: ({computed:x}) but got ({expected:x}). Aborting now.\n\
                 Internal error in RDB reading offset {offset}, function at rdb.rs -> RDB CRC error"
            ),
            RdbError::UnknownType { offset, .. } | RdbError::Unsupported { offset, .. } | RdbError::Corrupt { offset, .. } => {
                format!("Internal error in RDB reading offset {offset}, function at rdb.rs -> {self}")
            }
        }
    }
}

/// Encoding thresholds, as the redis.conf directives of the same names.
#[derive(Debug, Clone)]
pub struct RdbSaveOptions {
    pub compression: bool,
    pub checksum: bool,
    pub list_max_listpack_size: i64,
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
}

impl Default for RdbSaveOptions {
    fn default() -> Self {
        RdbSaveOptions {
            compression: true,
            checksum: true,
            list_max_listpack_size: -2,
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
        }
    }
}

/// Auxiliary fields Redis 7.0 writes at the start of every RDB.
#[derive(Debug, Clone, Default)]
pub struct AuxInfo {
    pub ctime_secs: i64,
    pub used_mem: u64,
    /// `Some((db, replid, offset))` when the RDB is made for/with replication info.
    pub replication: Option<(i64, String, i64)>,
    pub aof_base: bool,
}

// ---------------------------------------------------------------- low-level encoders

pub fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn put_int_encoded(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(b) = i8::try_from(v) {
        out.push(0xc0 | ENC_INT8);
        out.push(b as u8);
    } else if let Ok(s) = i16::try_from(v) {
        out.push(0xc0 | ENC_INT16);
        out.extend_from_slice(&s.to_le_bytes());
    } else if let Ok(i) = i32::try_from(v) {
        out.push(0xc0 | ENC_INT32);
        out.extend_from_slice(&i.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// rdbSaveRawString: integer encoding for short canonical integers, LZF for longer
/// strings when it saves space, raw otherwise.
pub fn put_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = canonical_int(s) {
            if put_int_encoded(out, v) {
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        if let Some(c) = lzf::compress(s, s.len() - 4) {
            out.push(0xc0 | ENC_LZF);
            put_len(out, c.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Formats a score the way listpack-encoded zsets store it (Redis's d2string).
pub fn score_to_string(score: f64) -> String {
    if score.is_nan() {
        "nan".into()
    } else if score.is_infinite() {
        if score > 0.0 { "inf".into() } else { "-inf".into() }
    } else if score.fract() == 0.0 && score.abs() < 1e17 {
        format!("{}", score as i64)
    } else {
        format!("{score:e}")
    }
}

fn zset_sorted(pairs: &[(Bytes, f64)]) -> Vec<(Bytes, f64)> {
    let mut v = pairs.to_vec();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Appends the type byte and the serialized value (rdbSaveObjectType + rdbSaveObject).
pub fn encode_value(out: &mut Vec<u8>, value: &RdbValue, opts: &RdbSaveOptions) {
    let z = opts.compression;
    match value {
        RdbValue::String(s) => {
            out.push(TYPE_STRING);
            put_string(out, s, z);
        }
        RdbValue::Stream(s) => {
            out.push(TYPE_STREAM_LISTPACKS_2);
            super::stream_rdb::encode_stream(out, s, z);
        }
        RdbValue::List(items) => {
            out.push(TYPE_LIST_QUICKLIST_2);
            let nodes = split_quicklist(items, opts.list_max_listpack_size);
            put_len(out, nodes.len() as u64);
            for node in nodes {
                put_len(out, QUICKLIST_NODE_PACKED);
                put_string(out, &node, z);
            }
        }
        RdbValue::Set(members) => {
            let ints: Option<Vec<i64>> = if members.len() <= opts.set_max_intset_entries {
                members.iter().map(|m| canonical_int(m)).collect()
            } else {
                None
            };
            match ints {
                Some(mut ints) => {
                    ints.sort_unstable();
                    ints.dedup();
                    out.push(TYPE_SET_INTSET);
                    put_string(out, &intset_encode(&ints), z);
                }
                None => {
                    out.push(TYPE_SET);
                    put_len(out, members.len() as u64);
                    for m in members {
                        put_string(out, m, z);
                    }
                }
            }
        }
        RdbValue::ZSet(pairs) => {
            let sorted = zset_sorted(pairs);
            let small = pairs.len() <= opts.zset_max_listpack_entries
                && pairs.iter().all(|(m, _)| m.len() <= opts.zset_max_listpack_value);
            if small {
                out.push(TYPE_ZSET_LISTPACK);
                let mut lp = ListpackBuilder::new();
                for (m, s) in &sorted {
                    lp.push(m);
                    lp.push(score_to_string(*s).as_bytes());
                }
                put_string(out, &lp.finish(), z);
            } else {
                out.push(TYPE_ZSET_2);
                put_len(out, sorted.len() as u64);
                // Redis writes from the tail so that loading inserts at the head cheaply.
                for (m, s) in sorted.iter().rev() {
                    put_string(out, m, z);
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
        RdbValue::Hash(pairs) => {
            let small = pairs.len() <= opts.hash_max_listpack_entries
                && pairs.iter().all(|(f, v)| f.len() <= opts.hash_max_listpack_value && v.len() <= opts.hash_max_listpack_value);
            if small {
                out.push(TYPE_HASH_LISTPACK);
                let mut lp = ListpackBuilder::new();
                for (f, v) in pairs {
                    lp.push(f);
                    lp.push(v);
                }
                put_string(out, &lp.finish(), z);
            } else {
                out.push(TYPE_HASH);
                put_len(out, pairs.len() as u64);
                for (f, v) in pairs {
                    put_string(out, f, z);
                    put_string(out, v, z);
                }
            }
        }
    }
}

/// Splits a list into listpack nodes as quicklist does with `list-max-listpack-size`
/// (negative: byte limit 4kb..64kb; positive: element count, bounded by 8kb safety limit).
fn split_quicklist(items: &[Bytes], fill: i64) -> Vec<Vec<u8>> {
    const SIZE_CLASSES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
    const SAFETY_LIMIT: usize = 8192;
    let mut nodes = Vec::new();
    let mut lp = ListpackBuilder::new();
    for it in items {
        if !lp.is_empty() {
            let new_size = lp.bytes_len() + ListpackBuilder::entry_size(it);
            let allowed = if fill < 0 {
                let idx = ((-fill) as usize).clamp(1, 5) - 1;
                new_size <= SIZE_CLASSES[idx]
            } else {
                new_size <= SAFETY_LIMIT && (lp.len() as i64) < fill.max(1)
            };
            if !allowed {
                nodes.push(std::mem::take(&mut lp).finish());
            }
        }
        lp.push(it);
    }
    if !lp.is_empty() {
        nodes.push(lp.finish());
    }
    nodes
}

// ---------------------------------------------------------------- writer

/// Streams an RDB file to `out`, computing the CRC64 as it goes.
pub struct RdbWriter<W: Write> {
    out: W,
    crc: u64,
    opts: RdbSaveOptions,
    scratch: Vec<u8>,
    written: u64,
}

impl<W: Write> RdbWriter<W> {
    pub fn new(out: W, opts: RdbSaveOptions) -> Self {
        RdbWriter { out, crc: 0, opts, scratch: Vec::with_capacity(4096), written: 0 }
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn flush_scratch(&mut self) -> io::Result<()> {
        if self.opts.checksum {
            self.crc = crc64::crc64(self.crc, &self.scratch);
        }
        self.out.write_all(&self.scratch)?;
        self.written += self.scratch.len() as u64;
        self.scratch.clear();
        Ok(())
    }

    pub fn write_header(&mut self) -> io::Result<()> {
        self.scratch.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
        self.flush_scratch()
    }

    pub fn write_aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.scratch.push(OP_AUX);
        put_string(&mut self.scratch, key, false);
        put_string(&mut self.scratch, value, false);
        self.flush_scratch()
    }

    /// The AUX fields of rdbSaveInfoAuxFields, in Redis's order.
    pub fn write_standard_aux(&mut self, info: &AuxInfo) -> io::Result<()> {
        self.write_aux(b"redis-ver", REDIS_VERSION_AUX.as_bytes())?;
        self.write_aux(b"redis-bits", b"64")?;
        self.write_aux(b"ctime", info.ctime_secs.to_string().as_bytes())?;
        self.write_aux(b"used-mem", info.used_mem.to_string().as_bytes())?;
        if let Some((db, replid, offset)) = &info.replication {
            self.write_aux(b"repl-stream-db", db.to_string().as_bytes())?;
            self.write_aux(b"repl-id", replid.as_bytes())?;
            self.write_aux(b"repl-offset", offset.to_string().as_bytes())?;
        }
        self.write_aux(b"aof-base", if info.aof_base { b"1" } else { b"0" })
    }

    pub fn select_db(&mut self, db: u32) -> io::Result<()> {
        self.scratch.push(OP_SELECTDB);
        put_len(&mut self.scratch, u64::from(db));
        self.flush_scratch()
    }

    pub fn resize_db(&mut self, db_size: u64, expires_size: u64) -> io::Result<()> {
        self.scratch.push(OP_RESIZEDB);
        put_len(&mut self.scratch, db_size);
        put_len(&mut self.scratch, expires_size);
        self.flush_scratch()
    }

    pub fn write_entry(&mut self, entry: &RdbEntry) -> io::Result<()> {
        self.write_key_value(&entry.key, &entry.value, entry.expire_ms, entry.idle_secs, entry.lfu_freq)
    }

    /// Writes one key without building an [`RdbEntry`] (the snapshot path).
    pub fn write_key_value(
        &mut self,
        key: &[u8],
        value: &RdbValue,
        expire_ms: Option<i64>,
        idle_secs: Option<u64>,
        lfu_freq: Option<u8>,
    ) -> io::Result<()> {
        self.put_key_prefix(expire_ms, idle_secs, lfu_freq);
        // type byte goes before the key: encode value into a side buffer first
        let mut value_buf = Vec::new();
        encode_value(&mut value_buf, value, &self.opts);
        self.scratch.push(value_buf[0]);
        put_string(&mut self.scratch, key, self.opts.compression);
        self.scratch.extend_from_slice(&value_buf[1..]);
        if self.scratch.len() >= 16 * 1024 || super::debug_delay::save_delay_active() {
            self.flush_scratch()?;
        }
        super::debug_delay::after_key_saved();
        Ok(())
    }

    /// A string key, encoded straight from its bytes (the snapshot's most common case:
    /// no intermediate value, no side buffer).
    pub fn write_string_key_value(
        &mut self,
        key: &[u8],
        value: &[u8],
        expire_ms: Option<i64>,
        idle_secs: Option<u64>,
        lfu_freq: Option<u8>,
    ) -> io::Result<()> {
        self.put_key_prefix(expire_ms, idle_secs, lfu_freq);
        self.scratch.push(TYPE_STRING);
        put_string(&mut self.scratch, key, self.opts.compression);
        put_string(&mut self.scratch, value, self.opts.compression);
        // With a save delay the bytes go out key by key, so that a reader sees a slow save.
        if self.scratch.len() >= 64 * 1024 || super::debug_delay::save_delay_active() {
            self.flush_scratch()?;
        }
        super::debug_delay::after_key_saved();
        Ok(())
    }

    /// EXPIRETIME_MS, IDLE and FREQ opcodes before a key.
    fn put_key_prefix(&mut self, expire_ms: Option<i64>, idle_secs: Option<u64>, lfu_freq: Option<u8>) {
        if let Some(ms) = expire_ms {
            self.scratch.push(OP_EXPIRETIME_MS);
            self.scratch.extend_from_slice(&ms.to_le_bytes());
        }
        if let Some(idle) = idle_secs {
            self.scratch.push(OP_IDLE);
            put_len(&mut self.scratch, idle);
        }
        if let Some(freq) = lfu_freq {
            self.scratch.push(OP_FREQ);
            self.scratch.push(freq);
        }
    }

    /// Writes a Redis 7.0 function library (FUNCTION2 opcode).
    pub fn write_function(&mut self, code: &[u8]) -> io::Result<()> {
        self.scratch.push(OP_FUNCTION2);
        put_string(&mut self.scratch, code, self.opts.compression);
        self.flush_scratch()
    }

    /// Writes EOF and the checksum (0 when `rdbchecksum no`), returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.scratch.push(OP_EOF);
        self.flush_scratch()?;
        let crc = if self.opts.checksum { self.crc } else { 0 };
        self.out.write_all(&crc.to_le_bytes())?;
        self.written += 8;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A whole file's worth of data, used by tests and small tools.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RdbFile {
    pub aux: Vec<(Bytes, Bytes)>,
    /// (db index, entries)
    pub dbs: Vec<(u32, Vec<RdbEntry>)>,
    pub functions: Vec<Bytes>,
}

/// Serializes an [`RdbFile`] to bytes.
pub fn write_rdb_file(file: &RdbFile, opts: &RdbSaveOptions) -> io::Result<Vec<u8>> {
    let mut w = RdbWriter::new(Vec::new(), opts.clone());
    w.write_header()?;
    for (k, v) in &file.aux {
        w.write_aux(k, v)?;
    }
    for f in &file.functions {
        w.write_function(f)?;
    }
    for (db, entries) in &file.dbs {
        w.select_db(*db)?;
        let expires = entries.iter().filter(|e| e.expire_ms.is_some()).count();
        w.resize_db(entries.len() as u64, expires as u64)?;
        for e in entries {
            w.write_entry(e)?;
        }
    }
    w.finish()
}
