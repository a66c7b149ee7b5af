//! LZF compression as used by Redis for RDB strings (`rdbcompression yes`).
//! Format: a control byte `c`; `c < 32` starts a run of `c + 1` literal bytes,
//! otherwise `len = c >> 5` (7 means "add the next byte"), back-reference offset
//! `((c & 0x1f) << 8) + next byte + 1`, copying `len + 2` bytes.

use thiserror::Error;

const HASH_LOG: u32 = 14;
const HASH_SIZE: usize = 1 << HASH_LOG;
const MAX_LITERAL: usize = 32;
const MAX_OFFSET: usize = 1 << 13;
const MAX_MATCH: usize = (1 << 8) + (1 << 3);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LzfError {
    #[error("LZF data truncated at input offset {0}")]
    Truncated(usize),
    #[error("LZF back-reference before start of output at input offset {0}")]
    BadReference(usize),
    #[error("LZF output length {actual} differs from the expected {expected}")]
    LengthMismatch { expected: usize, actual: usize },
}

fn hash3(b: &[u8]) -> usize {
    let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    (v.wrapping_mul(2654435761) >> (32 - HASH_LOG)) as usize
}

/// Compresses `input`; returns `None` when the result would be longer than `max_out`
/// (Redis only stores the compressed form when it saves at least 4 bytes).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n == 0 {
        return None;
    }
    let mut table = vec![0u32; HASH_SIZE];
    let mut out: Vec<u8> = Vec::with_capacity(max_out.min(n + n / 32 + 1));
    let mut lit_pos = 0usize;
    let mut lit = 0usize;
    out.push(0);
    let mut ip = 0usize;
    while ip < n {
        if ip + 2 < n {
            let h = hash3(&input[ip..]);
            let candidate = table[h] as usize;
            table[h] = (ip + 1) as u32;
            if candidate != 0 {
                let r = candidate - 1;
                let off = ip - r - 1;
                if off < MAX_OFFSET && input[r..r + 3] == input[ip..ip + 3] {
                    let max_len = (n - ip).min(MAX_MATCH);
                    let mut len = 3;
                    while len < max_len && input[r + len] == input[ip + len] {
                        len += 1;
                    }
                    if lit == 0 {
                        out.pop();
                    } else {
                        out[lit_pos] = (lit - 1) as u8;
                    }
                    let l = len - 2;
                    if l < 7 {
                        out.push(((off >> 8) as u8) | ((l as u8) << 5));
                    } else {
                        out.push(((off >> 8) as u8) | (7 << 5));
                        out.push((l - 7) as u8);
                    }
                    out.push(off as u8);
                    // Index a couple of positions inside the match to find later repeats.
                    let end = ip + len;
                    let mut p = ip + 1;
                    while p < end && p + 2 < n && p < ip + 3 {
                        table[hash3(&input[p..])] = (p + 1) as u32;
                        p += 1;
                    }
                    ip = end;
                    lit = 0;
                    lit_pos = out.len();
                    out.push(0);
                    if out.len() > max_out + 1 {
                        return None;
                    }
                    continue;
                }
            }
        }
        out.push(input[ip]);
        lit += 1;
        ip += 1;
        if lit == MAX_LITERAL {
            out[lit_pos] = (MAX_LITERAL - 1) as u8;
            lit = 0;
            lit_pos = out.len();
            out.push(0);
        }
        if out.len() > max_out + 1 {
            return None;
        }
    }
    if lit == 0 {
        out.pop();
    } else {
        out[lit_pos] = (lit - 1) as u8;
    }
    if out.len() > max_out {
        return None;
    }
    Some(out)
}

/// Decompresses `input` that must expand to exactly `expected_len` bytes.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, LzfError> {
    let mut out: Vec<u8> = Vec::with_capacity(expected_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if ip + run > input.len() {
                return Err(LzfError::Truncated(ip));
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip).ok_or(LzfError::Truncated(ip))? as usize;
                ip += 1;
            }
            let low = *input.get(ip).ok_or(LzfError::Truncated(ip))? as usize;
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            if back > out.len() {
                return Err(LzfError::BadReference(ip));
            }
            let start = out.len() - back;
            for i in 0..len + 2 {
                let b = out[start + i];
                out.push(b);
            }
        }
        if out.len() > expected_len {
            return Err(LzfError::LengthMismatch { expected: expected_len, actual: out.len() });
        }
    }
    if out.len() != expected_len {
        return Err(LzfError::LengthMismatch { expected: expected_len, actual: out.len() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_repetitive_and_random_data() {
        let mut samples: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"hello world hello world hello world hello world!".to_vec(),
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
        ];
        let mut x: u64 = 12345;
        samples.push(
            (0..3000)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 60) as u8 + b'a'
                })
                .collect(),
        );
        for s in samples {
            let c = compress(&s, s.len() + 64).expect("compressible");
            assert_eq!(decompress(&c, s.len()).unwrap(), s);
        }
    }

    #[test]
    fn compressible_data_shrinks_and_limit_is_respected() {
        let s = vec![b'x'; 1000];
        let c = compress(&s, s.len() - 4).unwrap();
        assert!(c.len() < 40, "{}", c.len());
        assert_eq!(compress(b"abcdefgh", 4), None);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert_eq!(decompress(&[0xe0, 0x05], 10), Err(LzfError::Truncated(2)));
        assert!(matches!(decompress(&[0x20, 0x00], 3), Err(LzfError::BadReference(_))));
        assert!(matches!(decompress(&[0x01, b'a', b'b'], 3), Err(LzfError::LengthMismatch { .. })));
    }
}
