//! RDB reader: everything Redis 7.0 writes (RDB 10) plus the older encodings
//! (ziplist, zipmap, quicklist v1, intset, string-encoded zset scores), and the
//! RDB 11 set listpack of Redis 7.2. Streams and module values are reported as
//! unsupported with their offset.

use bytes::Bytes;

use super::encodings::{intset_decode, listpack_entries, ziplist_entries, zipmap_pairs, BlobError, PackedValue};
use super::lzf;
use super::rdb::*;

/// One item of an RDB stream, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbItem {
    Aux(Bytes, Bytes),
    SelectDb(u32),
    ResizeDb { db_size: u64, expires_size: u64 },
    Entry(RdbEntry),
    Function(Bytes),
    ModuleAux,
}

/// Pull-based reader over an in-memory RDB image.
pub struct RdbReader<'a> {
    data: &'a [u8],
    pos: usize,
    version: u32,
    finished: bool,
    verify_checksum: bool,
}

enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> RdbReader<'a> {
    /// Checks the `REDISnnnn` header.
    pub fn new(data: &'a [u8]) -> Result<Self, RdbError> {
        // Redis reads the 9 header bytes first: fewer is a short read, not a bad signature.
        if data.len() < 9 {
            return Err(RdbError::Truncated { offset: data.len(), what: "signature" });
        }
        if &data[..5] != b"REDIS" {
            return Err(RdbError::BadSignature);
        }
        let ver = std::str::from_utf8(&data[5..9]).ok().and_then(|s| s.parse::<u32>().ok()).ok_or(RdbError::BadSignature)?;
        if !(1..=11).contains(&ver) {
            return Err(RdbError::UnsupportedVersion(ver));
        }
        Ok(RdbReader { data, pos: 9, version: ver, finished: false, verify_checksum: true })
    }

    pub fn with_checksum_verification(mut self, on: bool) -> Self {
        self.verify_checksum = on;
        self
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes consumed so far; after the last item, the length of the RDB part
    /// (an AOF with RDB preamble continues with commands there).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn truncated(&self, what: &'static str) -> RdbError {
        RdbError::Truncated { offset: self.pos, what }
    }

    fn corrupt(&self, at: usize, reason: impl Into<String>) -> RdbError {
        RdbError::Corrupt { offset: at, reason: reason.into() }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RdbError> {
        if self.data.len() - self.pos < n {
            return Err(self.truncated(what));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, RdbError> {
        Ok(self.take(1, what)?[0])
    }

    /// The next byte (a record type of a payload that is not a whole RDB file).
    pub fn read_type(&mut self) -> Result<u8, RdbError> {
        self.byte("record type")
    }

    fn read_len_raw(&mut self, what: &'static str) -> Result<Len, RdbError> {
        let b = self.byte(what)?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => {
                let b2 = self.byte(what)?;
                Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(b2))
            }
            2 => match b {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.take(4, what)?.try_into().expect("4")))),
                0x81 => Len::Plain(u64::from_be_bytes(self.take(8, what)?.try_into().expect("8"))),
                _ => return Err(self.corrupt(self.pos - 1, format!("unknown length encoding {b:#04x}"))),
            },
            _ => Len::Encoded(b & 0x3f),
        })
    }

    fn read_len(&mut self, what: &'static str) -> Result<u64, RdbError> {
        let at = self.pos;
        match self.read_len_raw(what)? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(self.corrupt(at, format!("encoded value where a length was expected ({what})"))),
        }
    }

    /// A count of elements; bounded by the remaining bytes so corrupt files cannot
    /// make us reserve absurd amounts of memory. More elements than bytes left is a short
    /// read, as Redis finds it when it reads them (a truncated file, most often).
    fn read_count(&mut self, what: &'static str) -> Result<usize, RdbError> {
        let n = self.read_len(what)?;
        if n > (self.data.len() - self.pos) as u64 {
            return Err(self.truncated(what));
        }
        Ok(n as usize)
    }

    pub fn read_string(&mut self, what: &'static str) -> Result<Bytes, RdbError> {
        let at = self.pos;
        match self.read_len_raw(what)? {
            Len::Plain(n) => {
                if n > (self.data.len() - self.pos) as u64 {
                    return Err(self.truncated(what));
                }
                Ok(Bytes::copy_from_slice(self.take(n as usize, what)?))
            }
            Len::Encoded(0) => Ok(Bytes::from((self.byte(what)? as i8).to_string())),
            Len::Encoded(1) => Ok(Bytes::from(i16::from_le_bytes(self.take(2, what)?.try_into().expect("2")).to_string())),
            Len::Encoded(2) => Ok(Bytes::from(i32::from_le_bytes(self.take(4, what)?.try_into().expect("4")).to_string())),
            Len::Encoded(3) => {
                let clen = self.read_len(what)?;
                let len = self.read_len(what)?;
                if clen > (self.data.len() - self.pos) as u64 {
                    return Err(self.truncated(what));
                }
                if len > 1 << 32 {
                    return Err(self.corrupt(at, "LZF uncompressed length too large"));
                }
                let body = self.take(clen as usize, what)?;
                lzf::decompress(body, len as usize).map(Bytes::from).map_err(|e| self.corrupt(at, e.to_string()))
            }
            Len::Encoded(e) => Err(self.corrupt(at, format!("unknown string encoding {e}"))),
        }
    }

    fn blob_err(&self, at: usize, e: BlobError) -> RdbError {
        self.corrupt(at, e.to_string())
    }

    fn read_double_string(&mut self) -> Result<f64, RdbError> {
        let at = self.pos;
        let n = self.byte("zset score")?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let s = self.take(n as usize, "zset score")?;
                parse_score(s).ok_or_else(|| self.corrupt(at, "invalid zset score"))
            }
        }
    }

    /// Returns the next item, or `None` after EOF (checksum verified).
    pub fn next_item(&mut self) -> Result<Option<RdbItem>, RdbError> {
        if self.finished {
            return Ok(None);
        }
        let mut expire_ms = None;
        let mut idle_secs = None;
        let mut lfu_freq = None;
        loop {
            let at = self.pos;
            let op = self.byte("opcode")?;
            match op {
                OP_EOF => {
                    self.finished = true;
                    if self.version >= 5 {
                        let computed = crc64::crc64(0, &self.data[..self.pos]);
                        let expected = u64::from_le_bytes(self.take(8, "checksum")?.try_into().expect("8"));
                        if self.verify_checksum && expected != 0 && expected != computed {
                            return Err(RdbError::Checksum { offset: at + 1, expected, computed });
                        }
                    }
                    return Ok(None);
                }
                OP_AUX => {
                    let k = self.read_string("aux key")?;
                    let v = self.read_string("aux value")?;
                    return Ok(Some(RdbItem::Aux(k, v)));
                }
                OP_SELECTDB => {
                    let db = self.read_len("db number")?;
                    let db = u32::try_from(db).map_err(|_| self.corrupt(at, "db number out of range"))?;
                    return Ok(Some(RdbItem::SelectDb(db)));
                }
                OP_RESIZEDB => {
                    let db_size = self.read_len("resizedb")?;
                    let expires_size = self.read_len("resizedb")?;
                    return Ok(Some(RdbItem::ResizeDb { db_size, expires_size }));
                }
                OP_EXPIRETIME_MS => {
                    expire_ms = Some(i64::from_le_bytes(self.take(8, "expire time")?.try_into().expect("8")));
                }
                OP_EXPIRETIME => {
                    let secs = i32::from_le_bytes(self.take(4, "expire time")?.try_into().expect("4"));
                    expire_ms = Some(i64::from(secs) * 1000);
                }
                OP_IDLE => idle_secs = Some(self.read_len("idle time")?),
                OP_FREQ => lfu_freq = Some(self.byte("lfu frequency")?),
                OP_FUNCTION2 => return Ok(Some(RdbItem::Function(self.read_string("function library")?))),
                OP_FUNCTION => return Err(RdbError::Unsupported { ty: op, name: "pre-release function format", offset: at }),
                OP_MODULE_AUX => {
                    self.skip_module_aux()?;
                    return Ok(Some(RdbItem::ModuleAux));
                }
                ty => {
                    let key = self.read_string("key")?;
                    let value = self.read_value(ty, at)?;
                    return Ok(Some(RdbItem::Entry(RdbEntry { key, value, expire_ms, idle_secs, lfu_freq })));
                }
            }
        }
    }

    fn skip_module_aux(&mut self) -> Result<(), RdbError> {
        let _module_id = self.read_len("module id")?;
        let _when_opcode = self.read_len("module aux")?;
        let _when = self.read_len("module aux")?;
        loop {
            let at = self.pos;
            match self.read_len("module opcode")? {
                0 => return Ok(()),
                1 | 2 => {
                    self.read_len("module integer")?;
                }
                3 => {
                    self.take(4, "module float")?;
                }
                4 => {
                    self.take(8, "module double")?;
                }
                5 => {
                    self.read_string("module string")?;
                }
                other => return Err(self.corrupt(at, format!("unknown module opcode {other}"))),
            }
        }
    }

    /// For DUMP payloads: the reader is positioned at the type byte just after the header.
    pub fn read_value_after_type(&mut self, ty: u8) -> Result<RdbValue, RdbError> {
        let at = self.pos;
        self.byte("type")?;
        self.read_value(ty, at)
    }

    /// Reads a value body of type `ty` (type byte already consumed; `at` is its offset).
    pub fn read_value(&mut self, ty: u8, at: usize) -> Result<RdbValue, RdbError> {
        Ok(match ty {
            TYPE_STRING => RdbValue::String(self.read_string("string value")?),
            TYPE_LIST | TYPE_SET => {
                let n = self.read_count("elements")?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.read_string("element")?);
                }
                if ty == TYPE_LIST { RdbValue::List(items) } else { RdbValue::Set(items) }
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.read_count("zset elements")?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let m = self.read_string("zset member")?;
                    let s = if ty == TYPE_ZSET_2 {
                        f64::from_le_bytes(self.take(8, "zset score")?.try_into().expect("8"))
                    } else {
                        self.read_double_string()?
                    };
                    if s.is_nan() {
                        return Err(self.corrupt(at, "zset score is NaN"));
                    }
                    pairs.push((m, s));
                }
                RdbValue::ZSet(pairs)
            }
            TYPE_HASH => {
                let n = self.read_count("hash fields")?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let f = self.read_string("hash field")?;
                    let v = self.read_string("hash value")?;
                    pairs.push((f, v));
                }
                RdbValue::Hash(pairs)
            }
            TYPE_HASH_ZIPMAP => {
                let blob = self.read_string("zipmap")?;
                RdbValue::Hash(zipmap_pairs(&blob).map_err(|e| self.blob_err(at, e))?)
            }
            TYPE_LIST_ZIPLIST => {
                let blob = self.read_string("ziplist")?;
                let v = ziplist_entries(&blob).map_err(|e| self.blob_err(at, e))?;
                RdbValue::List(v.into_iter().map(PackedValue::into_bytes).collect())
            }
            TYPE_SET_INTSET => {
                let blob = self.read_string("intset")?;
                let v = intset_decode(&blob).map_err(|e| self.blob_err(at, e))?;
                RdbValue::Set(v.into_iter().map(|i| Bytes::from(i.to_string())).collect())
            }
            TYPE_SET_LISTPACK => {
                let blob = self.read_string("set listpack")?;
                let v = listpack_entries(&blob).map_err(|e| self.blob_err(at, e))?;
                RdbValue::Set(v.into_iter().map(PackedValue::into_bytes).collect())
            }
            TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
                let blob = self.read_string("zset blob")?;
                let v = if ty == TYPE_ZSET_ZIPLIST { ziplist_entries(&blob) } else { listpack_entries(&blob) }
                    .map_err(|e| self.blob_err(at, e))?;
                if v.len() % 2 != 0 {
                    return Err(self.corrupt(at, "zset blob with an odd number of elements"));
                }
                let mut pairs = Vec::with_capacity(v.len() / 2);
                let mut it = v.into_iter();
                while let (Some(m), Some(s)) = (it.next(), it.next()) {
                    let score = match s {
                        PackedValue::Int(i) => i as f64,
                        PackedValue::Bytes(b) => parse_score(&b).ok_or_else(|| self.corrupt(at, "invalid zset score"))?,
                    };
                    pairs.push((m.into_bytes(), score));
                }
                RdbValue::ZSet(pairs)
            }
            TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
                let blob = self.read_string("hash blob")?;
                let v = if ty == TYPE_HASH_ZIPLIST { ziplist_entries(&blob) } else { listpack_entries(&blob) }
                    .map_err(|e| self.blob_err(at, e))?;
                if v.len() % 2 != 0 {
                    return Err(self.corrupt(at, "hash blob with an odd number of elements"));
                }
                let mut pairs = Vec::with_capacity(v.len() / 2);
                let mut it = v.into_iter();
                while let (Some(f), Some(val)) = (it.next(), it.next()) {
                    pairs.push((f.into_bytes(), val.into_bytes()));
                }
                RdbValue::Hash(pairs)
            }
            TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.read_count("quicklist nodes")?;
                let mut items = Vec::new();
                for _ in 0..nodes {
                    let container = if ty == TYPE_LIST_QUICKLIST_2 { self.read_len("quicklist container")? } else { 2 };
                    let blob = self.read_string("quicklist node")?;
                    match container {
                        1 => items.push(blob),
                        2 => {
                            let v = if ty == TYPE_LIST_QUICKLIST { ziplist_entries(&blob) } else { listpack_entries(&blob) }
                                .map_err(|e| self.blob_err(at, e))?;
                            if v.is_empty() {
                                return Err(self.corrupt(at, "empty quicklist node"));
                            }
                            items.extend(v.into_iter().map(PackedValue::into_bytes));
                        }
                        other => return Err(self.corrupt(at, format!("unknown quicklist container {other}"))),
                    }
                }
                RdbValue::List(items)
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | 21 => {
                let s = super::stream_rdb::decode_stream(self, ty).map_err(|reason| self.corrupt(at, reason))?;
                RdbValue::Stream(Box::new(s))
            }
            TYPE_MODULE | TYPE_MODULE_2 => return Err(RdbError::Unsupported { ty, name: "module", offset: at }),
            _ => return Err(RdbError::UnknownType { ty, offset: at }),
        })
    }
}

/// Parses a score as strtod does for the forms Redis writes ("1.5", "inf", "-inf", "3e+20").
pub fn parse_score(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?;
    match t {
        "inf" | "+inf" | "Inf" => Some(f64::INFINITY),
        "-inf" | "-Inf" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

/// Reads a whole RDB image into memory.
pub fn read_rdb_file(data: &[u8]) -> Result<RdbFile, RdbError> {
    let mut r = RdbReader::new(data)?;
    let mut file = RdbFile::default();
    let mut current_db = 0u32;
    while let Some(item) = r.next_item()? {
        match item {
            RdbItem::Aux(k, v) => file.aux.push((k, v)),
            RdbItem::SelectDb(db) => current_db = db,
            RdbItem::ResizeDb { .. } | RdbItem::ModuleAux => {}
            RdbItem::Function(code) => file.functions.push(code),
            RdbItem::Entry(e) => match file.dbs.last_mut() {
                Some((db, entries)) if *db == current_db => entries.push(e),
                _ => file.dbs.push((current_db, vec![e])),
            },
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn sample() -> RdbFile {
        let long = "x".repeat(100);
        let mut e1 = RdbEntry::new(b("str"), RdbValue::String(b("hello")));
        e1.expire_ms = Some(1_900_000_000_123);
        e1.idle_secs = Some(42);
        let mut e2 = RdbEntry::new(b("int"), RdbValue::String(b("-12345")));
        e2.lfu_freq = Some(7);
        let entries = vec![
            e1,
            e2,
            RdbEntry::new(b("long"), RdbValue::String(Bytes::from(long.clone()))),
            RdbEntry::new(b("list"), RdbValue::List((0..3000).map(|i| Bytes::from(format!("item{i}"))).collect())),
            RdbEntry::new(b("iset"), RdbValue::Set(vec![b("3"), b("1"), b("-70000")])),
            RdbEntry::new(b("sset"), RdbValue::Set(vec![b("a"), b("b")])),
            RdbEntry::new(b("zsmall"), RdbValue::ZSet(vec![(b("a"), 1.5), (b("b"), -2.0), (b("c"), f64::INFINITY)])),
            RdbEntry::new(b("zbig"), RdbValue::ZSet((0..200).map(|i| (Bytes::from(format!("m{i}")), i as f64 / 3.0)).collect())),
            RdbEntry::new(b("hsmall"), RdbValue::Hash(vec![(b("f"), b("1")), (b("g"), b("v"))])),
            RdbEntry::new(b("hbig"), RdbValue::Hash(vec![(b("f"), Bytes::from(long))])),
        ];
        RdbFile {
            aux: vec![(b("redis-ver"), b("7.0.15")), (b("redis-bits"), b("64"))],
            dbs: vec![(0, entries), (3, vec![RdbEntry::new(b("k"), RdbValue::String(b("v")))])],
            functions: vec![],
        }
    }

    fn normalize(mut f: RdbFile) -> RdbFile {
        for (_, entries) in &mut f.dbs {
            for e in entries {
                match &mut e.value {
                    RdbValue::Set(m) => m.sort(),
                    RdbValue::ZSet(p) => p.sort_by(|a, b| a.0.cmp(&b.0)),
                    _ => {}
                }
            }
        }
        f
    }

    #[test]
    fn write_then_read_round_trips_all_types() {
        for compression in [true, false] {
            let opts = RdbSaveOptions { compression, ..Default::default() };
            let bytes = write_rdb_file(&sample(), &opts).unwrap();
            assert_eq!(&bytes[..9], b"REDIS0010");
            let back = read_rdb_file(&bytes).unwrap();
            assert_eq!(normalize(back), normalize(sample()));
        }
    }

    #[test]
    fn compression_makes_repetitive_values_smaller() {
        let f = RdbFile { dbs: vec![(0, vec![RdbEntry::new(b("k"), RdbValue::String(Bytes::from("ab".repeat(1000))))])], ..Default::default() };
        let on = write_rdb_file(&f, &RdbSaveOptions::default()).unwrap();
        let off = write_rdb_file(&f, &RdbSaveOptions { compression: false, ..Default::default() }).unwrap();
        assert!(on.len() + 1500 < off.len());
    }

    #[test]
    fn checksum_mismatch_and_truncation_name_the_offset() {
        let mut bytes = write_rdb_file(&sample(), &RdbSaveOptions::default()).unwrap();
        let n = bytes.len();
        let truncated = &bytes[..n / 2];
        let err = read_rdb_file(truncated).unwrap_err();
        assert!(matches!(err, RdbError::Truncated { .. } | RdbError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("offset"));
        bytes[n - 1] ^= 0xff;
        match read_rdb_file(&bytes).unwrap_err() {
            RdbError::Checksum { offset, .. } => assert_eq!(offset, n - 8),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn checksum_disabled_writes_zero_and_loads() {
        let bytes = write_rdb_file(&sample(), &RdbSaveOptions { checksum: false, ..Default::default() }).unwrap();
        assert_eq!(&bytes[bytes.len() - 8..], &[0u8; 8]);
        read_rdb_file(&bytes).unwrap();
    }

    #[test]
    fn garbage_never_panics() {
        let good = write_rdb_file(&sample(), &RdbSaveOptions::default()).unwrap();
        let mut x: u64 = 99;
        for i in 0..400 {
            let mut bad = good.clone();
            for _ in 0..3 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let p = 9 + (x >> 33) as usize % (bad.len() - 9);
                bad[p] = (x >> 13) as u8;
            }
            if i % 2 == 0 {
                bad.truncate(9 + (x as usize % (bad.len() - 9)));
            }
            let _ = RdbReader::new(&bad).map(|r| r.with_checksum_verification(false)).and_then(|mut r| {
                while r.next_item()?.is_some() {}
                Ok(())
            });
        }
        assert!(matches!(read_rdb_file(b"REDIS0099"), Err(RdbError::UnsupportedVersion(99))));
        assert!(matches!(read_rdb_file(b"NOTREDIS!"), Err(RdbError::BadSignature)));
    }

    #[test]
    fn crc64_matches_redis_check_value() {
        assert_eq!(crc64::crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn string_encodings() {
        let mut out = Vec::new();
        put_string(&mut out, b"-1", false);
        assert_eq!(out, vec![0xc0, 0xff]);
        out.clear();
        put_string(&mut out, b"300", false);
        assert_eq!(out, vec![0xc1, 0x2c, 0x01]);
        out.clear();
        put_string(&mut out, b"12345678901", false); // > i32: raw
        assert_eq!(out[0], 11);
    }
}

impl super::stream_rdb::StreamSource for RdbReader<'_> {
    fn len(&mut self, what: &'static str) -> Result<u64, String> {
        self.read_len(what).map_err(|e| e.to_string())
    }
    fn string(&mut self, what: &'static str) -> Result<Bytes, String> {
        self.read_string(what).map_err(|e| e.to_string())
    }
    fn raw(&mut self, n: usize, what: &'static str) -> Result<Vec<u8>, String> {
        self.take(n, what).map(<[u8]>::to_vec).map_err(|e| e.to_string())
    }
}
