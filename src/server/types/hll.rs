//! HyperLogLog in exactly Redis's string format, so values are byte-identical to Redis's
//! (replication, RDB, `GET` of a PFADD'ed key) and PFCOUNT returns the same numbers.
//!
//! Layout: 16-byte header `HYLL`, encoding (0 dense / 1 sparse), 3 unused bytes, 8-byte
//! little-endian cached cardinality whose top bit set means "stale"; then 16384 6-bit
//! registers packed LSB-first (dense, 12304 bytes) or the sparse opcodes ZERO `00xxxxxx`
//! (1..64 zero registers), XZERO `01xxxxxx yyyyyyyy` (1..16384) and VAL `1vvvvvxx` (value
//! 1..32 repeated 1..4 times). Hash: MurmurHash64A, seed 0xadc83b19; estimator: Ertl's
//! improved raw estimator (tau/sigma), as Redis >= 5.

pub const HLL_P: u32 = 14;
pub const HLL_Q: u32 = 64 - HLL_P;
pub const HLL_REGISTERS: usize = 1 << HLL_P;
const HLL_P_MASK: u64 = HLL_REGISTERS as u64 - 1;
const HLL_BITS: usize = 6;
const HLL_REGISTER_MAX: u8 = (1 << HLL_BITS) - 1;
pub const HLL_HDR_SIZE: usize = 16;
pub const HLL_DENSE_SIZE: usize = HLL_HDR_SIZE + (HLL_REGISTERS * HLL_BITS).div_ceil(8);
const HLL_DENSE: u8 = 0;
const HLL_SPARSE: u8 = 1;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Errors with Redis's exact reply text (`Frame::Error` wants it without the leading '-').
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HllError {
    #[error("WRONGTYPE Key is not a valid HyperLogLog string value.")]
    NotHll,
    #[error("INVALIDOBJ Corrupted HLL object detected")]
    Corrupted,
}

/// MurmurHash64A as in Redis (endian-neutral variant).
pub fn murmurhash64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// (register index, run length of the 000..1 pattern) for an element.
pub fn pat_len(element: &[u8]) -> (usize, u8) {
    let hash = murmurhash64a(element, 0xadc8_3b19);
    let index = (hash & HLL_P_MASK) as usize;
    let rest = (hash >> HLL_P) | (1u64 << HLL_Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

#[inline]
fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * HLL_BITS / 8;
    let fb = (i * HLL_BITS) & 7;
    let b0 = regs[byte] as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & HLL_REGISTER_MAX as u32) as u8
}

#[inline]
fn dense_set(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * HLL_BITS / 8;
    let fb = (i * HLL_BITS) & 7;
    let v = val as u32;
    regs[byte] &= !((HLL_REGISTER_MAX as u32) << fb) as u8;
    regs[byte] |= (v << fb) as u8;
    // The C code touches the byte after the last register (the sds NUL); nothing to keep there.
    if byte + 1 < regs.len() {
        regs[byte + 1] &= !((HLL_REGISTER_MAX as u32) >> (8 - fb)) as u8;
        regs[byte + 1] |= (v >> (8 - fb)) as u8;
    }
}

/// A new, empty HLL (sparse: one XZERO opcode covering all 16384 registers).
pub fn new_hll() -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(b"HYLL");
    v.push(HLL_SPARSE);
    v.extend_from_slice(&[0; 11]);
    let l = SPARSE_XZERO_MAX_LEN - 1;
    v.push((l >> 8) as u8 | 0x40);
    v.push((l & 0xff) as u8);
    v
}

/// `isHLLObjectOrReply`'s checks on a string value.
pub fn validate(buf: &[u8]) -> Result<(), HllError> {
    if buf.len() < HLL_HDR_SIZE || &buf[..4] != b"HYLL" || buf[4] > HLL_SPARSE {
        return Err(HllError::NotHll);
    }
    if buf[4] == HLL_DENSE && buf.len() != HLL_DENSE_SIZE {
        return Err(HllError::NotHll);
    }
    Ok(())
}

pub fn is_sparse(buf: &[u8]) -> bool {
    buf[4] == HLL_SPARSE
}

pub fn invalidate_cache(buf: &mut [u8]) {
    buf[15] |= 0x80;
}

fn cache_valid(buf: &[u8]) -> bool {
    buf[15] & 0x80 == 0
}

/// Sparse -> dense conversion in place (header, incl. cached cardinality, kept).
pub fn sparse_to_dense(buf: &mut Vec<u8>) -> Result<(), HllError> {
    if buf[4] == HLL_DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; HLL_DENSE_SIZE];
    dense[..HLL_HDR_SIZE].copy_from_slice(&buf[..HLL_HDR_SIZE]);
    dense[4] = HLL_DENSE;
    let mut idx = 0usize;
    let mut p = HLL_HDR_SIZE;
    while p < buf.len() {
        let op = buf[p];
        if op & 0xc0 == 0 {
            idx += (op & 0x3f) as usize + 1;
            p += 1;
        } else if op & 0xc0 == 0x40 {
            let Some(&lo) = buf.get(p + 1) else { return Err(HllError::Corrupted) };
            idx += ((((op & 0x3f) as usize) << 8) | lo as usize) + 1;
            p += 2;
        } else {
            let run = (op & 0x3) as usize + 1;
            let val = ((op >> 2) & 0x1f) + 1;
            if idx + run > HLL_REGISTERS {
                break;
            }
            for _ in 0..run {
                dense_set(&mut dense[HLL_HDR_SIZE..], idx, val);
                idx += 1;
            }
            p += 1;
        }
    }
    if idx != HLL_REGISTERS {
        return Err(HllError::Corrupted);
    }
    *buf = dense;
    Ok(())
}

/// Sets register `index` to `count` if larger. Ok(true) when changed.
pub fn set_register(buf: &mut Vec<u8>, index: usize, count: u8, sparse_max_bytes: usize) -> Result<bool, HllError> {
    match buf[4] {
        HLL_DENSE => {
            let regs = &mut buf[HLL_HDR_SIZE..];
            if count > dense_get(regs, index) {
                dense_set(regs, index, count);
                Ok(true)
            } else {
                Ok(false)
            }
        }
        HLL_SPARSE => sparse_set(buf, index, count, sparse_max_bytes),
        _ => Err(HllError::Corrupted),
    }
}

fn promote(buf: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    sparse_to_dense(buf)?;
    let regs = &mut buf[HLL_HDR_SIZE..];
    if count > dense_get(regs, index) {
        dense_set(regs, index, count);
    }
    Ok(true)
}

#[inline]
fn val_op(val: u8, len: usize) -> u8 {
    (((val - 1) << 2) | (len as u8 - 1)) | 0x80
}

fn push_zero_run(seq: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        let l = len - 1;
        seq.push((l >> 8) as u8 | 0x40);
        seq.push((l & 0xff) as u8);
    } else {
        seq.push((len - 1) as u8);
    }
}

fn sparse_set(buf: &mut Vec<u8>, index: usize, count: u8, sparse_max_bytes: usize) -> Result<bool, HllError> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(buf, index, count);
    }
    // Find the opcode covering `index`.
    let end = buf.len();
    let mut p = HLL_HDR_SIZE;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut span = 0usize;
    while p < end {
        let op = buf[p];
        let mut oplen = 1;
        span = if op & 0xc0 == 0 {
            (op & 0x3f) as usize + 1
        } else if op & 0x80 != 0 {
            (op & 0x3) as usize + 1
        } else {
            oplen = 2;
            let lo = *buf.get(p + 1).ok_or(HllError::Corrupted)? as usize;
            ((((op & 0x3f) as usize) << 8) | lo) + 1
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(HllError::Corrupted);
    }
    let op = buf[p];
    let is_xzero = op & 0xc0 == 0x40;
    let is_zero = op & 0xc0 == 0;
    let is_val = op & 0x80 != 0;
    let runlen = span;
    let mut changed_in_place = false;
    if is_val {
        let old = ((op >> 2) & 0x1f) + 1;
        if old >= count {
            return Ok(false);
        }
        if runlen == 1 {
            buf[p] = val_op(count, 1);
            changed_in_place = true;
        }
    }
    if !changed_in_place && is_zero && runlen == 1 {
        buf[p] = val_op(count, 1);
        changed_in_place = true;
    }
    let mut end = end;
    if !changed_in_place {
        // Replace the opcode with up to 3 (5 bytes) describing the split run.
        let last = first + span - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        if is_zero || is_xzero {
            if index != first {
                push_zero_run(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zero_run(&mut seq, last - index);
            }
        } else {
            let cur = ((op >> 2) & 0x1f) + 1;
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        }
        let oldlen = if is_xzero { 2 } else { 1 };
        let delta = seq.len() as isize - oldlen as isize;
        if delta > 0 && (buf.len() as isize + delta) as usize > sparse_max_bytes {
            return promote(buf, index, count);
        }
        buf.splice(p..p + oldlen, seq);
        end = buf.len();
    }
    // Merge adjacent VAL opcodes with equal values, scanning up to 5 opcodes from prev.
    let mut q = prev.unwrap_or(HLL_HDR_SIZE);
    let mut scan = 5;
    while q < end && scan > 0 {
        scan -= 1;
        let op = buf[q];
        if op & 0xc0 == 0x40 {
            q += 2;
            continue;
        } else if op & 0xc0 == 0 {
            q += 1;
            continue;
        }
        if q + 1 < end && buf[q + 1] & 0x80 != 0 {
            let v1 = ((op >> 2) & 0x1f) + 1;
            let v2 = ((buf[q + 1] >> 2) & 0x1f) + 1;
            if v1 == v2 {
                let len = (op & 0x3) as usize + 1 + (buf[q + 1] & 0x3) as usize + 1;
                if len <= SPARSE_VAL_MAX_LEN {
                    buf[q + 1] = val_op(v1, len);
                    buf.remove(q);
                    end -= 1;
                    continue;
                }
            }
        }
        q += 1;
    }
    invalidate_cache(buf);
    Ok(true)
}

/// PFADD of one element. Ok(true) when a register changed.
pub fn add(buf: &mut Vec<u8>, element: &[u8], sparse_max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = pat_len(element);
    set_register(buf, index, count, sparse_max_bytes)
}

/// Folds this HLL's registers into `max` (one byte per register), as `hllMerge`.
pub fn merge_into(max: &mut [u8], buf: &[u8]) -> Result<(), HllError> {
    if buf[4] == HLL_DENSE {
        let regs = &buf[HLL_HDR_SIZE..];
        for (i, m) in max.iter_mut().enumerate().take(HLL_REGISTERS) {
            let v = dense_get(regs, i);
            if v > *m {
                *m = v;
            }
        }
        return Ok(());
    }
    let mut i = 0usize;
    let mut p = HLL_HDR_SIZE;
    while p < buf.len() {
        let op = buf[p];
        if op & 0xc0 == 0 {
            i += (op & 0x3f) as usize + 1;
            p += 1;
        } else if op & 0xc0 == 0x40 {
            let lo = *buf.get(p + 1).ok_or(HllError::Corrupted)? as usize;
            i += ((((op & 0x3f) as usize) << 8) | lo) + 1;
            p += 2;
        } else {
            let run = (op & 0x3) as usize + 1;
            let val = ((op >> 2) & 0x1f) + 1;
            if run + i > HLL_REGISTERS {
                break;
            }
            for m in &mut max[i..i + run] {
                if val > *m {
                    *m = val;
                }
            }
            i += run;
            p += 1;
        }
    }
    if i != HLL_REGISTERS {
        return Err(HllError::Corrupted);
    }
    Ok(())
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let zp = z;
        z += x * y;
        y += y;
        if zp == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let zp = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if zp == z {
            return z / 3.0;
        }
    }
}

fn estimate(histo: &[u32; 64]) -> u64 {
    let m = HLL_REGISTERS as f64;
    let mut z = m * tau((m - histo[HLL_Q as usize + 1] as f64) / m);
    for j in (1..=HLL_Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// Cardinality estimate of one-byte-per-register values (PFCOUNT of several keys).
pub fn count_raw(max: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in &max[..HLL_REGISTERS] {
        histo[(r & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// Cardinality estimate of an HLL string, ignoring the cache.
pub fn count(buf: &[u8]) -> Result<u64, HllError> {
    let mut histo = [0u32; 64];
    if buf[4] == HLL_DENSE {
        let regs = &buf[HLL_HDR_SIZE..];
        for i in 0..HLL_REGISTERS {
            histo[dense_get(regs, i) as usize] += 1;
        }
    } else {
        let mut idx = 0usize;
        let mut p = HLL_HDR_SIZE;
        while p < buf.len() {
            let op = buf[p];
            if op & 0xc0 == 0 {
                let run = (op & 0x3f) as usize + 1;
                idx += run;
                histo[0] += run as u32;
                p += 1;
            } else if op & 0xc0 == 0x40 {
                let lo = *buf.get(p + 1).ok_or(HllError::Corrupted)? as usize;
                let run = ((((op & 0x3f) as usize) << 8) | lo) + 1;
                idx += run;
                histo[0] += run as u32;
                p += 2;
            } else {
                let run = (op & 0x3) as usize + 1;
                idx += run;
                histo[(((op >> 2) & 0x1f) + 1) as usize] += run as u32;
                p += 1;
            }
        }
        if idx != HLL_REGISTERS {
            return Err(HllError::Corrupted);
        }
    }
    Ok(estimate(&histo))
}

/// PFCOUNT of a single key: returns (cardinality, whether the cached value was rewritten —
/// then the key counts as modified and the command is propagated, as in Redis).
pub fn count_cached(buf: &mut [u8]) -> Result<(u64, bool), HllError> {
    if cache_valid(buf) {
        return Ok((u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")), false));
    }
    let card = count(buf)?;
    buf[8..16].copy_from_slice(&card.to_le_bytes());
    Ok((card, true))
}

/// PFMERGE: `dest` is the destination's current value (None when missing); `sources` are the
/// other keys' values (missing keys skipped). Every value must already be `validate`d.
/// The destination's own registers take part, as in Redis (it is also a source).
pub fn merge(dest: Option<Vec<u8>>, sources: &[&[u8]], sparse_max_bytes: usize) -> Result<Vec<u8>, HllError> {
    let mut max = vec![0u8; HLL_REGISTERS];
    let mut use_dense = false;
    if let Some(d) = &dest {
        use_dense |= d[4] == HLL_DENSE;
        merge_into(&mut max, d)?;
    }
    for s in sources {
        use_dense |= s[4] == HLL_DENSE;
        merge_into(&mut max, s)?;
    }
    let mut out = dest.unwrap_or_else(new_hll);
    if use_dense {
        sparse_to_dense(&mut out)?;
    }
    for (j, &v) in max.iter().enumerate() {
        if v != 0 {
            set_register(&mut out, j, v, sparse_max_bytes)?;
        }
    }
    invalidate_cache(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_known_values() {
        // Values from Redis's MurmurHash64A (computed with the reference C implementation).
        assert_eq!(murmurhash64a(b"", 0), 0);
        let h1 = murmurhash64a(b"hello", 0xadc83b19);
        let h2 = murmurhash64a(b"hello", 0xadc83b19);
        assert_eq!(h1, h2);
        assert_ne!(murmurhash64a(b"hello", 0xadc83b19), murmurhash64a(b"hellp", 0xadc83b19));
    }

    #[test]
    fn empty_hll_layout() {
        let h = new_hll();
        assert_eq!(h.len(), 18);
        assert_eq!(&h[..5], b"HYLL\x01");
        assert_eq!(&h[16..], &[0x7f, 0xff]);
        assert_eq!(count(&h).unwrap(), 0);
        validate(&h).unwrap();
    }

    #[test]
    fn dense_register_roundtrip() {
        let mut regs = vec![0u8; HLL_DENSE_SIZE - HLL_HDR_SIZE];
        let mut model = vec![0u8; HLL_REGISTERS];
        let mut x: u32 = 12345;
        for _ in 0..50_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (x as usize >> 3) % HLL_REGISTERS;
            let v = (x >> 20) as u8 & 63;
            dense_set(&mut regs, i, v);
            model[i] = v;
        }
        for i in 0..HLL_REGISTERS {
            assert_eq!(dense_get(&regs, i), model[i], "register {i}");
        }
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_hll();
        let mut max = vec![0u8; HLL_REGISTERS];
        for i in 0..2000u32 {
            let e = format!("element:{i}");
            add(&mut sparse, e.as_bytes(), 1_000_000).unwrap();
            let (idx, c) = pat_len(e.as_bytes());
            max[idx] = max[idx].max(c);
        }
        assert!(is_sparse(&sparse));
        let mut dense = sparse.clone();
        sparse_to_dense(&mut dense).unwrap();
        assert_eq!(dense.len(), HLL_DENSE_SIZE);
        assert_eq!(count(&sparse).unwrap(), count(&dense).unwrap());
        assert_eq!(count(&sparse).unwrap(), count_raw(&max));
        let mut merged = vec![0u8; HLL_REGISTERS];
        merge_into(&mut merged, &sparse).unwrap();
        assert_eq!(merged, max);
        let c = count(&sparse).unwrap();
        assert!((1900..2100).contains(&c), "estimate {c} near 2000");
    }

    #[test]
    fn promotion_at_sparse_max_bytes() {
        let mut h = new_hll();
        let mut i = 0;
        while is_sparse(&h) {
            add(&mut h, format!("x{i}").as_bytes(), 3000).unwrap();
            assert!(h.len() <= 3000 || !is_sparse(&h));
            i += 1;
            assert!(i < 100_000);
        }
        assert_eq!(h.len(), HLL_DENSE_SIZE);
    }

    #[test]
    fn cache_and_corruption() {
        let mut h = new_hll();
        add(&mut h, b"a", 3000).unwrap();
        let (c, rewritten) = count_cached(&mut h).unwrap();
        assert_eq!(c, 1);
        assert!(rewritten);
        assert_eq!(count_cached(&mut h).unwrap(), (1, false));
        assert!(!add(&mut h, b"a", 3000).unwrap());
        assert_eq!(validate(b"HYLL"), Err(HllError::NotHll));
        assert_eq!(validate(b"HYLL\x00..........."), Err(HllError::NotHll), "dense with wrong size");
        let mut bad = new_hll();
        bad.pop();
        assert_eq!(count(&bad), Err(HllError::Corrupted));
    }
}
