//! Value types of rf-server and the pure algorithms behind their commands.
//!
//! Every type here is a plain data structure with no knowledge of the keyspace, clients or
//! replies, so it can be unit- and property-tested directly. The command families in
//! `server::commands::{list,hash,set,zset,hll,bitmap,sort}` wrap them.
//!
//! Encodings follow Redis 7.0 exactly as `OBJECT ENCODING` reports them:
//! lists are always `quicklist`; sets `intset` (all canonical integers, <= 512) else
//! `hashtable`; hashes `listpack` (<= 512 entries of <= 64 bytes: the built-in defaults,
//! redis.conf ships 128) else `hashtable`; sorted sets `listpack` (<= 128 / 64 bytes) else
//! `skiplist`. Conversions are one-way, as in Redis. HyperLogLogs are strings.

pub mod access;

use bytes::Bytes;

/// An element about to be stored in a collection, copied into its own allocation.
/// Arguments are parsed without copying, as slices of the connection's read buffer: kept
/// in a hash, list, set or sorted set, a slice would keep that whole buffer (16 KiB and
/// up) alive and force every later read into a fresh allocation.
#[inline]
pub fn detach(b: Bytes) -> Bytes {
    Bytes::copy_from_slice(&b)
}

/// Below this many elements a collection grows one slot at a time: most hashes, sets,
/// sorted sets and lists hold a few elements, and the usual doubling (to 4 at once) would
/// spend more on empty slots than on the data.
const EXACT_GROWTH_BELOW: usize = 8;

/// How many slots to add for one more element to a full collection of `len` elements
/// holding `unit` slots each: exactly one element's worth while small, doubling after.
#[inline]
pub fn growth(len: usize, unit: usize, used: usize) -> usize {
    if len < EXACT_GROWTH_BELOW { unit } else { unit.max(used) }
}

/// Room for one more element in `v`.
#[inline]
pub fn room_for_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(growth(v.len(), 1, v.len()));
    }
}

/// [`room_for_one`] for a deque.
#[inline]
pub fn room_for_one_deque<T>(v: &mut std::collections::VecDeque<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(growth(v.len(), 1, v.len()));
    }
}
pub mod bitops;
pub mod dict;
pub mod geohash;
pub mod glob;
pub mod hash;
pub mod hll;
pub mod list;
pub mod longdouble;
pub mod packed;
pub mod set;
pub mod stream;
pub mod zset;

use rand::Rng;

/// The `*-max-*` encoding thresholds of the configuration (CONFIG SET changes them at run time;
/// they only affect values created or grown afterwards, as in Redis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub hll_sparse_max_bytes: usize,
}

impl EncodingLimits {
    /// From the configuration; a negative setting falls back to the default.
    pub fn from_config(c: &crate::server::config::Config) -> Self {
        let d = EncodingLimits::default();
        let get = |name: &str, default: usize| -> usize {
            let v = c.get_int(name);
            if v < 0 { default } else { v as usize }
        };
        EncodingLimits {
            hash_max_listpack_entries: get("hash-max-listpack-entries", d.hash_max_listpack_entries),
            hash_max_listpack_value: get("hash-max-listpack-value", d.hash_max_listpack_value),
            set_max_intset_entries: get("set-max-intset-entries", d.set_max_intset_entries),
            zset_max_listpack_entries: get("zset-max-listpack-entries", d.zset_max_listpack_entries),
            zset_max_listpack_value: get("zset-max-listpack-value", d.zset_max_listpack_value),
            hll_sparse_max_bytes: get("hll-sparse-max-bytes", d.hll_sparse_max_bytes),
        }
    }
}

impl Default for EncodingLimits {
    /// Redis 7.0's compiled-in defaults (what `CONFIG GET` shows without a config file).
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            hll_sparse_max_bytes: 3000,
        }
    }
}

/// Redis's `string2ll`: the canonical decimal form of an i64 only (no `+`, no leading zeros,
/// no `-0`, no spaces). Decides intset membership and "integer-looking" strings.
pub fn parse_canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' { (true, &s[1..]) } else { (false, s) };
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Indexes for SRANDMEMBER / HRANDFIELD / ZRANDMEMBER / SPOP count semantics over `len`
/// elements: `count >= 0` gives min(count, len) DISTINCT indexes (all of them, in order, when
/// count >= len); `count < 0` gives |count| indexes with repetitions allowed.
pub fn sample_indices<R: Rng + ?Sized>(rng: &mut R, len: usize, count: i64) -> Vec<usize> {
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        let n = count.unsigned_abs() as usize;
        return (0..n).map(|_| rng.gen_range(0..len)).collect();
    }
    let n = count as u64;
    if n >= len as u64 {
        return (0..len).collect();
    }
    let n = n as usize;
    if n * 3 > len {
        // Partial Fisher-Yates over all indexes.
        let mut all: Vec<usize> = (0..len).collect();
        for i in 0..n {
            let j = rng.gen_range(i..len);
            all.swap(i, j);
        }
        all.truncate(n);
        all
    } else {
        let mut seen = std::collections::HashSet::with_capacity(n * 2);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let i = rng.gen_range(0..len);
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers() {
        assert_eq!(parse_canonical_i64(b"0"), Some(0));
        assert_eq!(parse_canonical_i64(b"-1"), Some(-1));
        assert_eq!(parse_canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"-0", b"01", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1.0", b"abc"] {
            assert_eq!(parse_canonical_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn sampling_counts() {
        let mut rng = rand::thread_rng();
        assert_eq!(sample_indices(&mut rng, 5, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(sample_indices(&mut rng, 0, 10), Vec::<usize>::new());
        assert_eq!(sample_indices(&mut rng, 0, -10), Vec::<usize>::new());
        for len in [10usize, 100, 1000] {
            for count in [1i64, 3, 9] {
                let v = sample_indices(&mut rng, len, count);
                let mut d = v.clone();
                d.sort();
                d.dedup();
                assert_eq!(d.len(), count as usize, "distinct");
                assert!(v.iter().all(|&i| i < len));
            }
        }
        let rep = sample_indices(&mut rng, 2, -50);
        assert_eq!(rep.len(), 50);
        assert!(rep.contains(&0) && rep.contains(&1), "repetitions cover both (p of failure 2^-49)");
    }
}

/// C `strtod` on a prefix: returns the value and the number of bytes consumed (0 when no
/// number was recognised). Leading whitespace, sign, decimal digits with '.', exponent,
/// `inf`/`infinity`/`nan` (any case) and hexadecimal `0x..` forms, as glibc accepts them.
pub fn strtod_prefix(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let num_start = i;
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let rest = &s[i..];
    let lower_starts = |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    if lower_starts(b"infinity") {
        return (if neg { f64::NEG_INFINITY } else { f64::INFINITY }, i + 8);
    }
    if lower_starts(b"inf") {
        return (if neg { f64::NEG_INFINITY } else { f64::INFINITY }, i + 3);
    }
    if lower_starts(b"nan") {
        let mut j = i + 3;
        if j < s.len() && s[j] == b'(' {
            if let Some(close) = s[j..].iter().position(|&c| c == b')') {
                if s[j + 1..j + close].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    j += close + 1;
                }
            }
        }
        return (f64::NAN, j);
    }
    if rest.len() >= 3 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' && (rest[2].is_ascii_hexdigit() || (rest[2] == b'.' && rest.get(3).is_some_and(u8::is_ascii_hexdigit))) {
        let mut j = i + 2;
        let mut mant: f64 = 0.0;
        let mut exp: i64 = 0;
        while j < s.len() && s[j].is_ascii_hexdigit() {
            mant = mant * 16.0 + (s[j] as char).to_digit(16).unwrap_or(0) as f64;
            j += 1;
        }
        if j < s.len() && s[j] == b'.' {
            j += 1;
            while j < s.len() && s[j].is_ascii_hexdigit() {
                mant = mant * 16.0 + (s[j] as char).to_digit(16).unwrap_or(0) as f64;
                exp -= 4;
                j += 1;
            }
        }
        if j < s.len() && (s[j] | 0x20) == b'p' {
            let mut k = j + 1;
            let mut eneg = false;
            if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
                eneg = s[k] == b'-';
                k += 1;
            }
            if k < s.len() && s[k].is_ascii_digit() {
                let mut e: i64 = 0;
                while k < s.len() && s[k].is_ascii_digit() {
                    e = (e * 10 + (s[k] - b'0') as i64).min(100_000);
                    k += 1;
                }
                exp += if eneg { -e } else { e };
                j = k;
            }
        }
        let v = mant * 2f64.powi(exp.clamp(-2000, 2000) as i32);
        return (if neg { -v } else { v }, j);
    }
    let mut j = i;
    let mut digits = 0;
    while j < s.len() && s[j].is_ascii_digit() {
        j += 1;
        digits += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0);
    }
    if j < s.len() && (s[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[num_start..j]).unwrap_or("0");
    let text = text.strip_prefix('+').unwrap_or(text);
    (text.parse::<f64>().unwrap_or(0.0), j)
}

/// Redis's `getDoubleFromObject` (ZADD scores, ZINCRBY, WEIGHTS, INCRBYFLOAT increments):
/// non-empty, no leading space, fully consumed, no overflow / underflow to zero, not NaN.
/// None -> "ERR value is not a valid float".
pub fn parse_redis_double(s: &[u8]) -> Option<f64> {
    if s.is_empty() || matches!(s[0], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return None;
    }
    let (v, used) = strtod_prefix(s);
    if used != s.len() || v.is_nan() {
        return None;
    }
    if v.is_infinite() {
        // ERANGE overflow: a finite literal that rounded to infinity.
        let t = s.iter().position(|c| c.is_ascii_alphabetic() && (c | 0x20) != b'e' && (c | 0x20) != b'x');
        let spelled_inf = t.is_some_and(|p| (s[p] | 0x20) == b'i');
        if !spelled_inf {
            return None;
        }
    }
    if v == 0.0 {
        // ERANGE underflow to zero: a non-zero mantissa digit.
        let mantissa_end = s.iter().position(|c| (c | 0x20) == b'e' || (c | 0x20) == b'p').unwrap_or(s.len());
        let is_hex = s.len() > 2 && s.windows(2).any(|w| w[0] == b'0' && (w[1] | 0x20) == b'x');
        let nonzero = s[..mantissa_end].iter().enumerate().any(|(i, c)| {
            c.is_ascii_hexdigit() && *c != b'0' && (is_hex || c.is_ascii_digit()) && !(is_hex && i > 0 && (s[i] | 0x20) == b'x')
        });
        if nonzero {
            return None;
        }
    }
    Some(v)
}

#[cfg(test)]
mod float_tests {
    use super::*;

    #[test]
    fn strtod_like_glibc() {
        assert_eq!(strtod_prefix(b"1.5abc"), (1.5, 3));
        assert_eq!(strtod_prefix(b"  -2e3"), (-2000.0, 6));
        assert_eq!(strtod_prefix(b"1e"), (1.0, 1));
        assert_eq!(strtod_prefix(b".5"), (0.5, 2));
        assert_eq!(strtod_prefix(b"5."), (5.0, 2));
        assert_eq!(strtod_prefix(b"."), (0.0, 0));
        assert_eq!(strtod_prefix(b"-inf"), (f64::NEG_INFINITY, 4));
        assert_eq!(strtod_prefix(b"Infinity"), (f64::INFINITY, 8));
        assert_eq!(strtod_prefix(b"0x10"), (16.0, 4));
        assert_eq!(strtod_prefix(b"0x1p4"), (16.0, 5));
        assert!(strtod_prefix(b"nan").0.is_nan());
    }

    #[test]
    fn redis_doubles() {
        assert_eq!(parse_redis_double(b"1.5"), Some(1.5));
        assert_eq!(parse_redis_double(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_redis_double(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_redis_double(b"0"), Some(0.0));
        assert_eq!(parse_redis_double(b"0.000"), Some(0.0));
        assert_eq!(parse_redis_double(b"1e308"), Some(1e308));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"1e999", b"-1e999", b"1e-999", b"abc", b"1.2.3"] {
            assert_eq!(parse_redis_double(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}

#[cfg(test)]
mod size_tests {
    /// Every small hash and sorted set is one boxed value of this size: the big encodings'
    /// tables are boxed once more so they do not inflate the small ones. (A set of
    /// strings is always a table in Redis 7.0, so its table stays inline.)
    #[test]
    fn collection_values_stay_small() {
        assert!(std::mem::size_of::<super::hash::HashValue>() <= 40);
        assert!(std::mem::size_of::<super::set::SetValue>() <= 72);
        assert!(std::mem::size_of::<super::zset::ZSetValue>() <= 72);
        assert!(std::mem::size_of::<super::list::ListValue>() <= 40);
    }
}
