//! Bit operations on string values (SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD), ported
//! from the semantics of Redis 7.0's bitops.c: MSB-first bit order, BYTE|BIT ranges with
//! negative indexes, BITPOS's "zero-padded on the right unless an end was given" rule, and
//! BITFIELD's i1..i64 / u1..u63 types with WRAP/SAT/FAIL overflow.

use super::parse_canonical_i64;

pub const ERR_BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
pub const ERR_BIT_VALUE: &str = "ERR bit is not an integer or out of range";
pub const ERR_BITFIELD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
pub const ERR_BITPOS_BIT: &str = "ERR The bit argument must be 1 or 0.";
pub const ERR_BITOP_NOT: &str = "ERR BITOP NOT must be called with a single source key.";
pub const ERR_OVERFLOW_TYPE: &str = "ERR Invalid OVERFLOW type specified";
pub const ERR_BITFIELD_RO: &str = "ERR BITFIELD_RO only supports the GET subcommand";

/// `getBitOffsetFromArgument`: `#N` (when `hash_bits` is given) multiplies by the type width;
/// offsets must be >= 0 and address a byte below `max_bulk_len` (proto-max-bulk-len).
pub fn parse_bit_offset(arg: &[u8], hash_bits: Option<u32>, max_bulk_len: u64) -> Option<u64> {
    let (usehash, digits) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(b)) if b > 0 => (Some(b), &arg[1..]),
        _ => (None, arg),
    };
    let mut v = parse_canonical_i64(digits)?;
    if let Some(b) = usehash {
        v = v.wrapping_mul(b as i64);
    }
    if v < 0 || ((v as u64) >> 3) >= max_bulk_len {
        return None;
    }
    Some(v as u64)
}

pub fn get_bit(s: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    let bit = 7 - (offset & 7);
    s.get(byte).map_or(0, |b| (b >> bit) & 1)
}

/// Grows `v` with zero bytes so that bit `maxbit` exists; true when it grew.
pub fn grow_for_bit(v: &mut Vec<u8>, maxbit: u64) -> bool {
    let need = (maxbit >> 3) as usize + 1;
    if v.len() < need {
        v.resize(need, 0);
        true
    } else {
        false
    }
}

/// SETBIT (after growing): returns the previous bit.
pub fn set_bit(v: &mut [u8], offset: u64, on: bool) -> u8 {
    let byte = (offset >> 3) as usize;
    let bit = 7 - (offset & 7);
    let old = (v[byte] >> bit) & 1;
    v[byte] = (v[byte] & !(1 << bit)) | ((on as u8) << bit);
    old
}

#[inline]
fn popcount(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        n += u64::from_ne_bytes(c.try_into().expect("8 bytes")).count_ones() as u64;
    }
    n + chunks.remainder().iter().map(|b| b.count_ones() as u64).sum::<u64>()
}

/// First position of `bit` in `s` (MSB first); for bit 0 not found returns len*8 (the string
/// is seen as zero-padded), for bit 1 returns -1.
fn first_bit(s: &[u8], bit: u8) -> i64 {
    let skip = if bit == 1 { 0u8 } else { 0xff };
    for (i, &b) in s.iter().enumerate() {
        if b != skip {
            let x = if bit == 1 { b } else { !b };
            return (i as i64) * 8 + x.leading_zeros() as i64;
        }
    }
    if bit == 1 {
        -1
    } else {
        s.len() as i64 * 8
    }
}

/// Index unit of BITCOUNT / BITPOS ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeUnit {
    Byte,
    Bit,
}

impl RangeUnit {
    pub fn parse(arg: &[u8]) -> Option<RangeUnit> {
        if arg.eq_ignore_ascii_case(b"bit") {
            Some(RangeUnit::Bit)
        } else if arg.eq_ignore_ascii_case(b"byte") {
            Some(RangeUnit::Byte)
        } else {
            None
        }
    }
}

/// Normalised byte range plus edge masks of bits to exclude (for BIT ranges).
struct Span {
    start: i64,
    end: i64,
    first_neg_mask: u8,
    last_neg_mask: u8,
}

fn normalize(len: usize, mut start: i64, mut end: i64, unit: RangeUnit) -> Span {
    let mut totlen = len as i64;
    if unit == RangeUnit::Bit {
        totlen <<= 3;
    }
    if start < 0 {
        start = totlen.saturating_add(start);
    }
    if end < 0 {
        end = totlen.saturating_add(end);
    }
    if start < 0 {
        start = 0;
    }
    if end < 0 {
        end = 0;
    }
    if end >= totlen {
        end = totlen - 1;
    }
    let (mut first_neg_mask, mut last_neg_mask) = (0u8, 0u8);
    if unit == RangeUnit::Bit && start <= end {
        first_neg_mask = !(((1u32 << (8 - (start & 7))) - 1) as u8);
        last_neg_mask = ((1u32 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Span { start, end, first_neg_mask, last_neg_mask }
}

/// BITCOUNT key [start end [BYTE|BIT]].
pub fn bitcount(s: &[u8], range: Option<(i64, i64, RangeUnit)>) -> i64 {
    let span = match range {
        None => Span { start: 0, end: s.len() as i64 - 1, first_neg_mask: 0, last_neg_mask: 0 },
        Some((start, end, unit)) => {
            if start < 0 && end < 0 && start > end {
                return 0;
            }
            normalize(s.len(), start, end, unit)
        }
    };
    if span.start > span.end {
        return 0;
    }
    let (a, b) = (span.start as usize, span.end as usize);
    let mut count = popcount(&s[a..=b]) as i64;
    if span.first_neg_mask != 0 {
        count -= (s[a] & span.first_neg_mask).count_ones() as i64;
    }
    if span.last_neg_mask != 0 {
        count -= (s[b] & span.last_neg_mask).count_ones() as i64;
    }
    count
}

/// BITPOS key bit [start [end [BYTE|BIT]]] on an existing string (a missing key answers
/// `bit ? -1 : 0` before any range parsing, as Redis).
pub fn bitpos(s: &[u8], bit: u8, start: Option<i64>, end: Option<i64>, unit: RangeUnit) -> i64 {
    let end_given = end.is_some();
    let span = match start {
        None => Span { start: 0, end: s.len() as i64 - 1, first_neg_mask: 0, last_neg_mask: 0 },
        Some(st) => {
            let totlen = s.len() as i64;
            let e = end.unwrap_or(if unit == RangeUnit::Bit { (totlen << 3) + 7 } else { totlen - 1 });
            normalize(s.len(), st, e, unit)
        }
    };
    if span.start > span.end {
        return -1;
    }
    let mut start = span.start;
    let end = span.end;
    let mut bytes = end - start + 1;
    let (fm, lm) = (span.first_neg_mask, span.last_neg_mask);
    let pos: i64 = 'found: {
        if fm != 0 {
            let mut t = if bit == 1 { s[start as usize] & !fm } else { s[start as usize] | fm };
            if lm != 0 && bytes == 1 {
                t = if bit == 1 { t & !lm } else { t | lm };
            }
            let p = first_bit(&[t], bit);
            if bytes == 1 || (p != -1 && p != 8) {
                break 'found p;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - if lm != 0 { 1 } else { 0 };
        if cur > 0 {
            let p = first_bit(&s[start as usize..(start + cur) as usize], bit);
            if bytes == cur || (p != -1 && p != cur << 3) {
                break 'found p;
            }
            start += cur;
            bytes -= cur;
        }
        let t = if bit == 1 { s[end as usize] & !lm } else { s[end as usize] | lm };
        first_bit(&[t], bit)
    };
    if end_given && bit == 0 && pos == bytes << 3 {
        return -1;
    }
    if pos != -1 {
        pos + (start << 3)
    } else {
        pos
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

impl BitOp {
    pub fn parse(arg: &[u8]) -> Option<BitOp> {
        [(&b"and"[..], BitOp::And), (b"or", BitOp::Or), (b"xor", BitOp::Xor), (b"not", BitOp::Not)]
            .into_iter()
            .find(|(n, _)| arg.eq_ignore_ascii_case(n))
            .map(|(_, op)| op)
    }
}

/// BITOP over sources (missing keys = empty strings). Result length is the longest source;
/// an empty result means "delete the destination".
pub fn bitop(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let maxlen = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![0u8; maxlen];
    let Some(first) = sources.first() else { return out };
    out[..first.len()].copy_from_slice(first);
    match op {
        BitOp::Not => out.iter_mut().for_each(|b| *b = !*b),
        BitOp::And => {
            for s in &sources[1..] {
                for (i, o) in out.iter_mut().enumerate() {
                    *o &= s.get(i).copied().unwrap_or(0);
                }
            }
        }
        BitOp::Or => {
            for s in &sources[1..] {
                for (o, b) in out.iter_mut().zip(s.iter()) {
                    *o |= b;
                }
            }
        }
        BitOp::Xor => {
            for s in &sources[1..] {
                for (o, b) in out.iter_mut().zip(s.iter()) {
                    *o ^= b;
                }
            }
        }
    }
    out
}

/// A BITFIELD integer type: `i1..i64` or `u1..u63`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldType {
    pub signed: bool,
    pub bits: u32,
}

impl FieldType {
    pub fn parse(arg: &[u8]) -> Option<FieldType> {
        let signed = match arg.first()? {
            b'i' => true,
            b'u' => false,
            _ => return None,
        };
        let bits = parse_canonical_i64(&arg[1..])?;
        if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
            return None;
        }
        Some(FieldType { signed, bits: bits as u32 })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

impl Overflow {
    pub fn parse(arg: &[u8]) -> Option<Overflow> {
        if arg.eq_ignore_ascii_case(b"wrap") {
            Some(Overflow::Wrap)
        } else if arg.eq_ignore_ascii_case(b"sat") {
            Some(Overflow::Sat)
        } else if arg.eq_ignore_ascii_case(b"fail") {
            Some(Overflow::Fail)
        } else {
            None
        }
    }
}

fn get_unsigned(p: &[u8], mut offset: u64, bits: u32) -> u64 {
    let mut value = 0u64;
    for _ in 0..bits {
        let byte = (offset >> 3) as usize;
        let bit = 7 - (offset & 7);
        let bv = p.get(byte).map_or(0, |b| (b >> bit) & 1) as u64;
        value = (value << 1) | bv;
        offset += 1;
    }
    value
}

fn set_unsigned(p: &mut [u8], mut offset: u64, bits: u32, value: u64) {
    for j in 0..bits {
        let bv = ((value >> (bits - 1 - j)) & 1) as u8;
        let byte = (offset >> 3) as usize;
        let bit = 7 - (offset & 7);
        p[byte] = (p[byte] & !(1 << bit)) | (bv << bit);
        offset += 1;
    }
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let mut v = get_unsigned(p, offset, bits) as i64;
    if bits < 64 && (v as u64 & (1u64 << (bits - 1))) != 0 {
        v |= (u64::MAX << bits) as i64;
    }
    v
}

/// BITFIELD GET on a possibly missing / short string (zero-padded).
pub fn field_get(s: &[u8], ty: FieldType, offset: u64) -> i64 {
    if ty.signed {
        get_signed(s, offset, ty.bits)
    } else {
        get_unsigned(s, offset, ty.bits) as i64
    }
}

/// Returns Some(limit-or-wrapped) on overflow, None when value+incr fits.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = (value as i64).wrapping_neg();
    let wrap = || {
        let mask = if bits >= 64 { 0 } else { u64::MAX << bits };
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > maxincr) {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if incr < 0 && incr < minincr {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => 0,
        })
    } else {
        None
    }
}

fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max: i64 = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let msb = 1u64 << (bits - 1);
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & msb != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        Some(match ow {
            Overflow::Wrap => wrap(),
            _ => min,
        })
    } else {
        None
    }
}

/// Result of a BITFIELD SET / INCRBY on a string already grown to hold the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldWrite {
    /// The reply: old value for SET, new value for INCRBY; None = nil (FAIL overflow).
    pub reply: Option<i64>,
    /// Whether the stored bits changed.
    pub changed: bool,
}

/// BITFIELD SET (`incr == false`, `arg` = new value) or INCRBY (`arg` = increment).
pub fn field_write(v: &mut [u8], ty: FieldType, offset: u64, arg: i64, incr: bool, ow: Overflow) -> FieldWrite {
    if ty.signed {
        let old = get_signed(v, offset, ty.bits);
        let (newval, overflow, reply) = if incr {
            let o = signed_overflow(old, arg, ty.bits, ow);
            let n = o.unwrap_or(old.wrapping_add(arg));
            (n, o.is_some(), n)
        } else {
            let o = signed_overflow(arg, 0, ty.bits, ow);
            (o.unwrap_or(arg), o.is_some(), old)
        };
        if overflow && ow == Overflow::Fail {
            return FieldWrite { reply: None, changed: false };
        }
        set_unsigned(v, offset, ty.bits, newval as u64);
        FieldWrite { reply: Some(reply), changed: old != newval }
    } else {
        let old = get_unsigned(v, offset, ty.bits);
        let (newval, overflow, reply) = if incr {
            let o = unsigned_overflow(old, arg, ty.bits, ow);
            let n = o.unwrap_or(old.wrapping_add(arg as u64));
            (n, o.is_some(), n)
        } else {
            let o = unsigned_overflow(arg as u64, 0, ty.bits, ow);
            (o.unwrap_or(arg as u64), o.is_some(), old)
        };
        if overflow && ow == Overflow::Fail {
            return FieldWrite { reply: None, changed: false };
        }
        set_unsigned(v, offset, ty.bits, newval);
        FieldWrite { reply: Some(reply as i64), changed: old != newval }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setbit_getbit() {
        let mut v = Vec::new();
        assert!(grow_for_bit(&mut v, 7));
        assert_eq!(set_bit(&mut v, 7, true), 0);
        assert_eq!(v, [0x01]);
        assert!(grow_for_bit(&mut v, 8));
        assert_eq!(set_bit(&mut v, 8, true), 0);
        assert_eq!(v, [0x01, 0x80]);
        assert_eq!(get_bit(&v, 8), 1);
        assert_eq!(get_bit(&v, 1000), 0);
        assert_eq!(set_bit(&mut v, 8, false), 1);
        assert!(!grow_for_bit(&mut v, 15));
    }

    #[test]
    fn offsets() {
        let max = 512 * 1024 * 1024;
        assert_eq!(parse_bit_offset(b"0", None, max), Some(0));
        assert_eq!(parse_bit_offset(b"-1", None, max), None);
        assert_eq!(parse_bit_offset(b"4294967295", None, max), Some(4294967295));
        assert_eq!(parse_bit_offset(b"4294967296", None, max), None);
        assert_eq!(parse_bit_offset(b"#2", Some(8), max), Some(16));
        assert_eq!(parse_bit_offset(b"#2", None, max), None);
        assert_eq!(parse_bit_offset(b"x", None, max), None);
    }

    #[test]
    fn bitcount_ranges() {
        let s = b"foobar";
        assert_eq!(bitcount(s, None), 26);
        assert_eq!(bitcount(s, Some((0, 0, RangeUnit::Byte))), 4);
        assert_eq!(bitcount(s, Some((1, 1, RangeUnit::Byte))), 6);
        assert_eq!(bitcount(s, Some((1, 1, RangeUnit::Bit))), 1);
        assert_eq!(bitcount(s, Some((5, 30, RangeUnit::Bit))), 17);
        assert_eq!(bitcount(s, Some((-1, -2, RangeUnit::Byte))), 0);
        assert_eq!(bitcount(s, Some((0, -1, RangeUnit::Byte))), 26);
        assert_eq!(bitcount(b"", None), 0);
    }

    #[test]
    fn bitpos_cases() {
        let s = [0xff, 0xf0, 0x00];
        assert_eq!(bitpos(&s, 0, None, None, RangeUnit::Byte), 12);
        assert_eq!(bitpos(&[0xff, 0xff], 0, None, None, RangeUnit::Byte), 16);
        assert_eq!(bitpos(&[0xff, 0xff], 0, Some(0), Some(-1), RangeUnit::Byte), -1);
        assert_eq!(bitpos(&[0x00, 0x0f], 1, Some(1), None, RangeUnit::Byte), 12);
        assert_eq!(bitpos(&[0x00, 0xff, 0xf0], 1, Some(2), Some(-1), RangeUnit::Byte), 16);
        assert_eq!(bitpos(&[0x00, 0xff, 0xf0], 1, Some(7), Some(15), RangeUnit::Bit), 8);
        assert_eq!(bitpos(&[0x00, 0xff, 0xf0], 1, Some(7), Some(7), RangeUnit::Bit), -1);
        assert_eq!(bitpos(&[0x00], 1, None, None, RangeUnit::Byte), -1);
        assert_eq!(bitpos(b"", 0, None, None, RangeUnit::Byte), -1);
    }

    #[test]
    fn bitop_ops() {
        assert_eq!(bitop(BitOp::And, &[b"\xff\x0f", b"\x0f"]), [0x0f, 0x00]);
        assert_eq!(bitop(BitOp::Or, &[b"\x01", b"\x10\x01"]), [0x11, 0x01]);
        assert_eq!(bitop(BitOp::Xor, &[b"\xff", b"\x0f"]), [0xf0]);
        assert_eq!(bitop(BitOp::Not, &[b"\x0f"]), [0xf0]);
        assert!(bitop(BitOp::Or, &[b"", b""]).is_empty());
    }

    #[test]
    fn bitfield_types_and_overflow() {
        assert_eq!(FieldType::parse(b"i64"), Some(FieldType { signed: true, bits: 64 }));
        assert_eq!(FieldType::parse(b"u64"), None);
        assert_eq!(FieldType::parse(b"u0"), None);
        assert_eq!(FieldType::parse(b"x8"), None);
        let u8t = FieldType::parse(b"u8").unwrap();
        let i8t = FieldType::parse(b"i8").unwrap();
        let mut v = vec![0u8; 1];
        assert_eq!(field_write(&mut v, u8t, 0, 255, false, Overflow::Wrap).reply, Some(0));
        assert_eq!(field_write(&mut v, u8t, 0, 10, true, Overflow::Wrap).reply, Some(9));
        assert_eq!(field_write(&mut v, u8t, 0, 300, true, Overflow::Sat).reply, Some(255));
        assert_eq!(field_write(&mut v, u8t, 0, 1, true, Overflow::Fail), FieldWrite { reply: None, changed: false });
        assert_eq!(field_write(&mut v, i8t, 0, 0, false, Overflow::Wrap).reply, Some(-1));
        assert_eq!(field_write(&mut v, i8t, 0, 127, true, Overflow::Wrap).reply, Some(127));
        assert_eq!(field_write(&mut v, i8t, 0, 1, true, Overflow::Wrap).reply, Some(-128));
        assert_eq!(field_write(&mut v, i8t, 0, -100, true, Overflow::Sat).reply, Some(-128));
        assert_eq!(field_write(&mut v, i8t, 0, 1000, false, Overflow::Sat).reply, Some(-128));
        assert_eq!(field_get(&v, i8t, 0), 127);
        let i64t = FieldType::parse(b"i64").unwrap();
        let mut w = vec![0u8; 8];
        field_write(&mut w, i64t, 0, i64::MAX, false, Overflow::Wrap);
        assert_eq!(field_write(&mut w, i64t, 0, 1, true, Overflow::Wrap).reply, Some(i64::MIN));
        assert_eq!(field_write(&mut w, i64t, 0, -1, true, Overflow::Sat).reply, Some(i64::MIN));
        // GET past the end reads zeros; unaligned access spans bytes MSB first.
        assert_eq!(field_get(b"\x0f\xf0", FieldType { signed: false, bits: 8 }, 4), 0xff);
        assert_eq!(field_get(b"", FieldType { signed: true, bits: 5 }, 100), 0);
    }

    /// Naive model of BITCOUNT with BIT ranges: count bit by bit.
    fn naive_bitcount(s: &[u8], start: i64, end: i64) -> i64 {
        let n = s.len() as i64 * 8;
        if start < 0 && end < 0 && start > end {
            return 0;
        }
        let st = if start < 0 { (n + start).max(0) } else { start };
        let mut en = if end < 0 { (n + end).max(0) } else { end };
        if en >= n {
            en = n - 1;
        }
        (st..=en).filter(|&i| get_bit(s, i as u64) == 1).count() as i64
    }

    proptest::proptest! {
        #[test]
        fn bitcount_bit_ranges_match_naive(s in proptest::collection::vec(proptest::num::u8::ANY, 0..12), a in -100i64..100, b in -100i64..100) {
            proptest::prop_assert_eq!(bitcount(&s, Some((a, b, RangeUnit::Bit))), naive_bitcount(&s, a, b));
        }

        #[test]
        fn bitpos_bit_ranges_match_naive(s in proptest::collection::vec(proptest::num::u8::ANY, 1..6), bit in 0u8..2, a in -50i64..50, b in -50i64..50) {
            let n = s.len() as i64 * 8;
            let st = if a < 0 { (n + a).max(0) } else { a };
            let mut en = if b < 0 { (n + b).max(0) } else { b };
            if en >= n { en = n - 1; }
            let want = (st..=en).find(|&i| get_bit(&s, i as u64) == bit).unwrap_or(-1);
            proptest::prop_assert_eq!(bitpos(&s, bit, Some(a), Some(b), RangeUnit::Bit), want);
        }

        #[test]
        fn bitfield_roundtrip(signed in proptest::bool::ANY, bits in 1u32..64, offset in 0u64..40, value in proptest::num::i64::ANY) {
            let ty = FieldType { signed, bits };
            let mut v = vec![0u8; 16];
            field_write(&mut v, ty, offset, value, false, Overflow::Wrap);
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            let raw = value as u64 & mask;
            let want = if signed && bits < 64 && raw & (1 << (bits - 1)) != 0 { (raw | !mask) as i64 } else { raw as i64 };
            proptest::prop_assert_eq!(field_get(&v, ty, offset), want);
        }
    }
}
