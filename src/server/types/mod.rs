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

pub mod bitops;
pub mod dict;
pub mod glob;
pub mod hash;
pub mod hll;
pub mod list;
pub mod set;
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
