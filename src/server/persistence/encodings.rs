//! The compact in-memory blobs Redis embeds in RDB files: listpack (written and read),
//! intset (written and read), ziplist and zipmap (read only, found in older files).

use bytes::Bytes;
use crate::server::types::packed::lp_backlen_size;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("corrupt {kind}: {reason} (at byte {pos} of the blob)")]
pub struct BlobError {
    pub kind: &'static str,
    pub reason: &'static str,
    pub pos: usize,
}

fn err(kind: &'static str, reason: &'static str, pos: usize) -> BlobError {
    BlobError { kind, reason, pos }
}

/// Parses a string as Redis's `string2ll` does: canonical decimal i64 only
/// (no leading zeros, no '+', no spaces, "-0" rejected).
pub fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: i128 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i128::from(d - b'0');
    }
    if neg {
        v = -v;
    }
    i64::try_from(v).ok()
}

/// One listpack/ziplist element: either raw bytes or an integer.
#[derive(Debug, Clone, PartialEq)]
pub enum PackedValue {
    Bytes(Bytes),
    Int(i64),
}

impl PackedValue {
    pub fn into_bytes(self) -> Bytes {
        match self {
            PackedValue::Bytes(b) => b,
            PackedValue::Int(i) => Bytes::from(i.to_string()),
        }
    }
}

// ---------------------------------------------------------------- listpack

const LP_HEADER: usize = 6;
const LP_EOF: u8 = 0xff;

fn lp_push_backlen(out: &mut Vec<u8>, l: usize) {
    let n = lp_backlen_size(l);
    // lpEncodeBacklen layout: highest 7-bit group first without the continuation bit,
    // the lower groups after it with bit 7 set (so it can be parsed right-to-left).
    for i in (0..n).rev() {
        let group = ((l >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { group } else { group | 128 });
    }
}

/// Builds a listpack blob incrementally; used for list nodes, small hashes and zsets.
#[derive(Debug, Clone)]
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; LP_HEADER]);
        ListpackBuilder { buf, count: 0 }
    }

    /// Size the listpack would have once finished (header + entries + EOF byte).
    pub fn bytes_len(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes an element would take, to decide whether a quicklist node is full.
    pub fn entry_size(value: &[u8]) -> usize {
        let enc = if let Some(i) = canonical_int(value) {
            lp_int_encoded_len(i)
        } else {
            lp_str_header_len(value.len()) + value.len()
        };
        enc + lp_backlen_size(enc)
    }

    pub fn push(&mut self, value: &[u8]) {
        let start = self.buf.len();
        if let Some(i) = canonical_int(value) {
            lp_push_int(&mut self.buf, i);
        } else {
            let len = value.len();
            if len < 64 {
                self.buf.push(0x80 | len as u8);
            } else if len < 4096 {
                self.buf.push(0xe0 | (len >> 8) as u8);
                self.buf.push(len as u8);
            } else {
                self.buf.push(0xf0);
                self.buf.extend_from_slice(&(len as u32).to_le_bytes());
            }
            self.buf.extend_from_slice(value);
        }
        let enc_len = self.buf.len() - start;
        lp_push_backlen(&mut self.buf, enc_len);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < 65535 { self.count as u16 } else { 65535 };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

fn lp_str_header_len(len: usize) -> usize {
    if len < 64 {
        1
    } else if len < 4096 {
        2
    } else {
        5
    }
}

fn lp_int_encoded_len(v: i64) -> usize {
    if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (-32768..=32767).contains(&v) {
        3
    } else if (-8388608..=8388607).contains(&v) {
        4
    } else if (-2147483648..=2147483647).contains(&v) {
        5
    } else {
        9
    }
}

fn lp_push_int(out: &mut Vec<u8>, v: i64) {
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = (v as u64) & 0x1fff;
        out.push(0xc0 | (u >> 8) as u8);
        out.push(u as u8);
    } else if (-32768..=32767).contains(&v) {
        out.push(0xf1);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-8388608..=8388607).contains(&v) {
        out.push(0xf2);
        out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if (-2147483648..=2147483647).contains(&v) {
        out.push(0xf3);
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        out.push(0xf4);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Decodes every element of a listpack blob, validating its structure.
pub fn listpack_entries(blob: &[u8]) -> Result<Vec<PackedValue>, BlobError> {
    const K: &str = "listpack";
    if blob.len() < LP_HEADER + 1 {
        return Err(err(K, "shorter than its header", 0));
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().expect("4 bytes")) as usize;
    if total != blob.len() {
        return Err(err(K, "total-bytes field does not match the blob length", 0));
    }
    let declared = u16::from_le_bytes([blob[4], blob[5]]) as usize;
    let mut pos = LP_HEADER;
    let mut out = Vec::with_capacity(if declared == 65535 { 16 } else { declared });
    let need = |pos: usize, n: usize| -> Result<(), BlobError> {
        if pos + n > blob.len() - 1 {
            Err(err(K, "entry runs past the end", pos))
        } else {
            Ok(())
        }
    };
    loop {
        let b = *blob.get(pos).ok_or(err(K, "missing terminator", pos))?;
        if b == LP_EOF {
            if pos != blob.len() - 1 {
                return Err(err(K, "terminator before the end", pos));
            }
            break;
        }
        let start = pos;
        let value = if b & 0x80 == 0 {
            pos += 1;
            PackedValue::Int(i64::from(b & 0x7f))
        } else if b & 0xc0 == 0x80 {
            let len = (b & 0x3f) as usize;
            need(pos + 1, len)?;
            let v = Bytes::copy_from_slice(&blob[pos + 1..pos + 1 + len]);
            pos += 1 + len;
            PackedValue::Bytes(v)
        } else if b & 0xe0 == 0xc0 {
            need(pos, 2)?;
            let u = (u64::from(b & 0x1f) << 8) | u64::from(blob[pos + 1]);
            pos += 2;
            PackedValue::Int(sign_extend(u, 13))
        } else if b & 0xf0 == 0xe0 {
            need(pos, 2)?;
            let len = (((b & 0x0f) as usize) << 8) | blob[pos + 1] as usize;
            need(pos + 2, len)?;
            let v = Bytes::copy_from_slice(&blob[pos + 2..pos + 2 + len]);
            pos += 2 + len;
            PackedValue::Bytes(v)
        } else {
            let (int_bytes, bits) = match b {
                0xf0 => {
                    need(pos, 5)?;
                    let len = u32::from_le_bytes(blob[pos + 1..pos + 5].try_into().expect("4")) as usize;
                    need(pos + 5, len)?;
                    let v = Bytes::copy_from_slice(&blob[pos + 5..pos + 5 + len]);
                    pos += 5 + len;
                    let enc = pos - start;
                    pos += lp_backlen_size(enc);
                    out.push(PackedValue::Bytes(v));
                    continue;
                }
                0xf1 => (2, 16),
                0xf2 => (3, 24),
                0xf3 => (4, 32),
                0xf4 => (8, 64),
                _ => return Err(err(K, "unknown entry encoding", pos)),
            };
            need(pos, 1 + int_bytes)?;
            let mut raw = [0u8; 8];
            raw[..int_bytes].copy_from_slice(&blob[pos + 1..pos + 1 + int_bytes]);
            pos += 1 + int_bytes;
            PackedValue::Int(sign_extend(u64::from_le_bytes(raw), bits))
        };
        let enc = pos - start;
        pos += lp_backlen_size(enc);
        if pos > blob.len() - 1 {
            return Err(err(K, "back-length runs past the end", start));
        }
        out.push(value);
    }
    if declared != 65535 && declared != out.len() {
        return Err(err(K, "element count does not match the header", 4));
    }
    Ok(out)
}

// ---------------------------------------------------------------- ziplist (read only)

/// Decodes every element of a ziplist blob (RDB files written by Redis < 7.0).
pub fn ziplist_entries(blob: &[u8]) -> Result<Vec<PackedValue>, BlobError> {
    const K: &str = "ziplist";
    if blob.len() < 11 {
        return Err(err(K, "shorter than its header", 0));
    }
    let total = u32::from_le_bytes(blob[0..4].try_into().expect("4")) as usize;
    if total != blob.len() {
        return Err(err(K, "total-bytes field does not match the blob length", 0));
    }
    let declared = u16::from_le_bytes([blob[8], blob[9]]) as usize;
    let end = blob.len() - 1;
    if blob[end] != 0xff {
        return Err(err(K, "missing terminator", end));
    }
    let mut pos = 10;
    let mut out = Vec::new();
    let need = |pos: usize, n: usize| -> Result<(), BlobError> {
        if pos + n > end {
            Err(err(K, "entry runs past the end", pos))
        } else {
            Ok(())
        }
    };
    while pos < end {
        // previous-entry length: 1 byte, or 0xfe + 4 bytes
        if blob[pos] == 0xfe {
            need(pos, 5)?;
            pos += 5;
        } else {
            pos += 1;
        }
        need(pos, 1)?;
        let b = blob[pos];
        let value = match b >> 6 {
            0 => {
                let len = (b & 0x3f) as usize;
                need(pos + 1, len)?;
                let v = Bytes::copy_from_slice(&blob[pos + 1..pos + 1 + len]);
                pos += 1 + len;
                PackedValue::Bytes(v)
            }
            1 => {
                need(pos, 2)?;
                let len = (((b & 0x3f) as usize) << 8) | blob[pos + 1] as usize;
                need(pos + 2, len)?;
                let v = Bytes::copy_from_slice(&blob[pos + 2..pos + 2 + len]);
                pos += 2 + len;
                PackedValue::Bytes(v)
            }
            2 => {
                need(pos, 5)?;
                let len = u32::from_be_bytes(blob[pos + 1..pos + 5].try_into().expect("4")) as usize;
                need(pos + 5, len)?;
                let v = Bytes::copy_from_slice(&blob[pos + 5..pos + 5 + len]);
                pos += 5 + len;
                PackedValue::Bytes(v)
            }
            _ => {
                let (n, bits) = match b {
                    0xc0 => (2, 16),
                    0xd0 => (4, 32),
                    0xe0 => (8, 64),
                    0xf0 => (3, 24),
                    0xfe => (1, 8),
                    0xf1..=0xfd => {
                        pos += 1;
                        out.push(PackedValue::Int(i64::from((b & 0x0f) - 1)));
                        continue;
                    }
                    _ => return Err(err(K, "unknown entry encoding", pos)),
                };
                need(pos, 1 + n)?;
                let mut raw = [0u8; 8];
                raw[..n].copy_from_slice(&blob[pos + 1..pos + 1 + n]);
                pos += 1 + n;
                PackedValue::Int(sign_extend(u64::from_le_bytes(raw), bits))
            }
        };
        out.push(value);
    }
    if declared != 65535 && declared != out.len() {
        return Err(err(K, "element count does not match the header", 8));
    }
    Ok(out)
}

// ---------------------------------------------------------------- zipmap (read only)

/// Decodes a zipmap blob (hashes in RDB files from Redis < 2.6) into field/value pairs.
pub fn zipmap_pairs(blob: &[u8]) -> Result<Vec<(Bytes, Bytes)>, BlobError> {
    const K: &str = "zipmap";
    if blob.is_empty() {
        return Err(err(K, "empty", 0));
    }
    let mut pos = 1;
    let read_len = |pos: &mut usize| -> Result<Option<usize>, BlobError> {
        let b = *blob.get(*pos).ok_or(err(K, "truncated length", *pos))?;
        match b {
            0xff => Ok(None),
            254 => {
                if *pos + 5 > blob.len() {
                    return Err(err(K, "truncated length", *pos));
                }
                let l = u32::from_le_bytes(blob[*pos + 1..*pos + 5].try_into().expect("4")) as usize;
                *pos += 5;
                Ok(Some(l))
            }
            253 => Err(err(K, "unknown length encoding", *pos)),
            n => {
                *pos += 1;
                Ok(Some(n as usize))
            }
        }
    };
    let mut out = Vec::new();
    loop {
        let Some(klen) = read_len(&mut pos)? else { break };
        if pos + klen > blob.len() {
            return Err(err(K, "field runs past the end", pos));
        }
        let key = Bytes::copy_from_slice(&blob[pos..pos + klen]);
        pos += klen;
        let vlen = read_len(&mut pos)?.ok_or(err(K, "field without value", pos))?;
        let free = *blob.get(pos).ok_or(err(K, "truncated free byte", pos))? as usize;
        pos += 1;
        if pos + vlen + free > blob.len() {
            return Err(err(K, "value runs past the end", pos));
        }
        let val = Bytes::copy_from_slice(&blob[pos..pos + vlen]);
        pos += vlen + free;
        out.push((key, val));
    }
    Ok(out)
}

// ---------------------------------------------------------------- intset

/// Encodes sorted, de-duplicated integers as an intset blob using the smallest width.
pub fn intset_encode(sorted: &[i64]) -> Vec<u8> {
    let width: usize = if sorted.iter().all(|&v| i16::try_from(v).is_ok()) {
        2
    } else if sorted.iter().all(|&v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * sorted.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for &v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

pub fn intset_decode(blob: &[u8]) -> Result<Vec<i64>, BlobError> {
    const K: &str = "intset";
    if blob.len() < 8 {
        return Err(err(K, "shorter than its header", 0));
    }
    let width = u32::from_le_bytes(blob[0..4].try_into().expect("4")) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(err(K, "invalid encoding width", 0));
    }
    let count = u32::from_le_bytes(blob[4..8].try_into().expect("4")) as usize;
    if blob.len() != 8 + count.saturating_mul(width) {
        return Err(err(K, "length does not match element count", 4));
    }
    let mut out = Vec::with_capacity(count);
    for chunk in blob[8..].chunks_exact(width) {
        let mut raw = [0u8; 8];
        raw[..width].copy_from_slice(chunk);
        out.push(sign_extend(u64::from_le_bytes(raw), (width * 8) as u32));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_int_matches_string2ll() {
        assert_eq!(canonical_int(b"123"), Some(123));
        assert_eq!(canonical_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(canonical_int(b"9223372036854775808"), None);
        assert_eq!(canonical_int(b"012"), None);
        assert_eq!(canonical_int(b"-0"), None);
        assert_eq!(canonical_int(b"+1"), None);
        assert_eq!(canonical_int(b" 1"), None);
        assert_eq!(canonical_int(b""), None);
    }

    #[test]
    fn listpack_round_trip_covers_every_encoding() {
        let big = vec![b'z'; 5000];
        let mid = vec![b'y'; 300];
        let values: Vec<Vec<u8>> = vec![
            b"0".to_vec(),
            b"127".to_vec(),
            b"128".to_vec(),
            b"-4096".to_vec(),
            b"4095".to_vec(),
            b"-32768".to_vec(),
            b"8388607".to_vec(),
            b"-2147483648".to_vec(),
            b"9223372036854775807".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"hello".to_vec(),
            b"007".to_vec(),
            mid.clone(),
            big.clone(),
            Vec::new(),
        ];
        let mut b = ListpackBuilder::new();
        let mut predicted = 7;
        for v in &values {
            predicted += ListpackBuilder::entry_size(v);
            b.push(v);
        }
        assert_eq!(b.bytes_len(), predicted);
        let blob = b.finish();
        assert_eq!(blob.len(), predicted);
        let back: Vec<Vec<u8>> = listpack_entries(&blob).unwrap().into_iter().map(|v| v.into_bytes().to_vec()).collect();
        assert_eq!(back, values);
    }

    #[test]
    fn listpack_backlen_matches_redis_layout() {
        let mut out = Vec::new();
        lp_push_backlen(&mut out, 500);
        // lpEncodeBacklen(500): buf[0] = 500>>7 = 3, buf[1] = (500&127)|128
        assert_eq!(out, vec![3, (500 & 127) as u8 | 128]);
    }

    #[test]
    fn corrupt_listpack_is_rejected() {
        let mut b = ListpackBuilder::new();
        b.push(b"hello");
        let mut blob = b.finish();
        blob[6] = 0x80 | 40; // claims a 40-byte string
        assert!(listpack_entries(&blob).is_err());
        assert!(listpack_entries(&[1, 2, 3]).is_err());
    }

    #[test]
    fn intset_round_trip() {
        for set in [vec![1i64, 2, 3], vec![-70000, 5], vec![i64::MIN, 0, i64::MAX]] {
            assert_eq!(intset_decode(&intset_encode(&set)).unwrap(), set);
        }
        assert_eq!(intset_encode(&[1, 2])[0], 2);
        assert!(intset_decode(&[2, 0, 0, 0, 5, 0, 0, 0]).is_err());
    }

    #[test]
    fn ziplist_decodes_hand_built_blob() {
        // entries: "ab", int 5 (immediate), int16 1000
        let mut body = vec![0u8, 0x02, b'a', b'b', 4, 0xf6, 2, 0xc0];
        body.extend_from_slice(&1000i16.to_le_bytes());
        let total = 10 + body.len() + 1;
        let mut blob = Vec::new();
        blob.extend_from_slice(&(total as u32).to_le_bytes());
        blob.extend_from_slice(&0u32.to_le_bytes());
        blob.extend_from_slice(&3u16.to_le_bytes());
        blob.extend_from_slice(&body);
        blob.push(0xff);
        let v = ziplist_entries(&blob).unwrap();
        assert_eq!(v, vec![PackedValue::Bytes(Bytes::from_static(b"ab")), PackedValue::Int(5), PackedValue::Int(1000)]);
    }

    #[test]
    fn zipmap_decodes_hand_built_blob() {
        let blob = [2u8, 3, b'f', b'o', b'o', 3, 1, b'b', b'a', b'r', b'X', 1, b'k', 1, 0, b'v', 0xff];
        let v = zipmap_pairs(&blob).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(&v[0].1[..], b"bar");
        assert_eq!(&v[1].0[..], b"k");
    }
}
