//! The replication backlog: a circular buffer holding the last `repl-backlog-size` bytes of
//! the replication stream, addressed by replication offset (the first byte has offset 1).

#[derive(Debug)]
pub struct Backlog {
    buf: Vec<u8>,
    /// Next write position in `buf`.
    idx: usize,
    /// Number of valid bytes (<= buf.len()).
    histlen: usize,
    /// Replication offset of the last byte appended (Redis's `master_repl_offset`).
    end_offset: i64,
}

impl Backlog {
    /// A backlog whose next appended byte gets offset `end_offset + 1`.
    pub fn new(size: usize, end_offset: i64) -> Self {
        Backlog { buf: vec![0; size.max(16 * 1024)], idx: 0, histlen: 0, end_offset }
    }

    pub fn size(&self) -> usize {
        self.buf.len()
    }

    pub fn histlen(&self) -> usize {
        self.histlen
    }

    /// Offset of the first byte held (`repl_backlog_first_byte_offset`).
    pub fn first_offset(&self) -> i64 {
        self.end_offset - self.histlen as i64 + 1
    }

    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    pub fn append(&mut self, mut data: &[u8]) {
        self.end_offset += data.len() as i64;
        let size = self.buf.len();
        if data.len() > size {
            data = &data[data.len() - size..];
        }
        while !data.is_empty() {
            let n = (size - self.idx).min(data.len());
            self.buf[self.idx..self.idx + n].copy_from_slice(&data[..n]);
            self.idx = (self.idx + n) % size;
            self.histlen = (self.histlen + n).min(size);
            data = &data[n..];
        }
    }

    /// True when the bytes from `offset` to the end are all held (PSYNC can continue).
    pub fn covers(&self, offset: i64) -> bool {
        self.histlen > 0 && offset >= self.first_offset() && offset <= self.end_offset + 1
            || offset == self.end_offset + 1
    }

    /// Bytes from `offset` (inclusive) to the end, or `None` when not covered.
    pub fn copy_from(&self, offset: i64) -> Option<Vec<u8>> {
        if !self.covers(offset) {
            return None;
        }
        let len = (self.end_offset + 1 - offset) as usize;
        let size = self.buf.len();
        let start = (self.idx + size - len) % size;
        let mut out = Vec::with_capacity(len);
        if start + len <= size {
            out.extend_from_slice(&self.buf[start..start + len]);
        } else {
            out.extend_from_slice(&self.buf[start..]);
            out.extend_from_slice(&self.buf[..len - (size - start)]);
        }
        Some(out)
    }

    /// Changes the size keeping the most recent bytes (CONFIG SET repl-backlog-size).
    pub fn resize(&mut self, new_size: usize) {
        let keep = self.copy_from(self.first_offset()).unwrap_or_default();
        let end = self.end_offset;
        *self = Backlog::new(new_size, end - keep.len() as i64);
        self.append(&keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_serves_the_right_bytes() {
        let mut b = Backlog::new(16 * 1024, 0);
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        for chunk in data.chunks(777) {
            b.append(chunk);
        }
        assert_eq!(b.end_offset(), 50_000);
        assert_eq!(b.histlen(), 16 * 1024);
        assert_eq!(b.first_offset(), 50_000 - 16 * 1024 + 1);
        let from = 40_000;
        assert_eq!(b.copy_from(from).unwrap(), data[(from - 1) as usize..].to_vec());
        assert_eq!(b.copy_from(50_001).unwrap(), Vec::<u8>::new());
        assert!(b.copy_from(b.first_offset() - 1).is_none());
        assert!(b.copy_from(50_002).is_none());
        b.resize(20_000);
        assert_eq!(b.copy_from(from).unwrap(), data[(from - 1) as usize..].to_vec());
    }

    #[test]
    fn empty_backlog_covers_only_the_next_offset() {
        let b = Backlog::new(1 << 20, 100);
        assert!(b.covers(101));
        assert!(!b.covers(100));
        assert_eq!(b.copy_from(101).unwrap(), Vec::<u8>::new());
    }
}
