//! Varint lengths for the packed (`listpack`) forms of small hashes and sorted sets: their
//! elements live back to back in one buffer, each byte string preceded by its length.

/// Appends `n` as a little-endian base-128 varint.
pub fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Room for `bytes` more in a packed buffer holding `count` elements, by the growth rule of
/// small collections ([`super::growth`]).
pub fn reserve(buf: &mut Vec<u8>, count: usize, bytes: usize) {
    if buf.capacity() - buf.len() < bytes {
        buf.reserve_exact(super::growth(count, bytes, buf.len()));
    }
}

/// (length, bytes it took) of the varint at `at`.
pub fn get_len(buf: &[u8], mut at: usize) -> (usize, usize) {
    let (mut n, mut shift, start) = (0usize, 0, at);
    loop {
        let b = buf[at];
        n |= ((b & 0x7f) as usize) << shift;
        at += 1;
        if b < 0x80 {
            return (n, at - start);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 30] {
            let mut buf = vec![9u8];
            put_len(&mut buf, n);
            assert_eq!(get_len(&buf, 1), (n, buf.len() - 1), "{n}");
        }
    }
}

/// Bytes of a listpack entry's back-length field for an entry of `l` bytes (Redis's
/// lpEncodeBacklen), for the listpack sizes streams and RDB encodings compute.
pub fn lp_backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}
