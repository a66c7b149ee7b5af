//! List values: a `VecDeque<Bytes>` (O(1) push/pop at both ends, O(1) index, cache-friendly
//! ranges). Redis 7.0 always reports the `quicklist` encoding for lists (the `listpack`
//! encoding for small lists only arrived in 7.2), so there is a single representation.

use bytes::Bytes;
use std::collections::VecDeque;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListValue {
    items: VecDeque<Bytes>,
    /// Sum of element lengths, so `memory_usage` is O(1) (the dispatcher calls it around
    /// every write).
    data_bytes: usize,
}

/// Which end of a list (LMOVE/BLMOVE `LEFT|RIGHT`, LMPOP direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl End {
    pub fn parse(arg: &[u8]) -> Option<End> {
        if arg.eq_ignore_ascii_case(b"left") {
            Some(End::Left)
        } else if arg.eq_ignore_ascii_case(b"right") {
            Some(End::Right)
        } else {
            None
        }
    }
}

/// Converts Redis's inclusive `start stop` (negative = from the end) to a clamped inclusive
/// index range over `len` elements, or `None` when empty (as LRANGE/LTRIM/ZRANGE/GETRANGE do).
pub fn normalize_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len_i = len as i64;
    let mut start = if start < 0 { len_i.saturating_add(start) } else { start };
    let mut stop = if stop < 0 { len_i.saturating_add(stop) } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len_i {
        return None;
    }
    if stop >= len_i {
        stop = len_i - 1;
    }
    Some((start as usize, stop as usize))
}

impl ListValue {
    pub fn new() -> Self {
        ListValue { items: VecDeque::new(), data_bytes: 0 }
    }

    pub fn from_vec(v: Vec<Bytes>) -> Self {
        let data_bytes = v.iter().map(|b| b.len()).sum();
        ListValue { items: v.into(), data_bytes }
    }

    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, end: End, v: Bytes) {
        let v = super::detach(v);
        self.data_bytes += v.len();
        match end {
            End::Left => {
                super::room_for_one_deque(&mut self.items);
                self.items.push_front(v)
            }
            End::Right => {
                super::room_for_one_deque(&mut self.items);
                self.items.push_back(v)
            }
        }
    }

    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        let v = match end {
            End::Left => self.items.pop_front(),
            End::Right => self.items.pop_back(),
        }?;
        self.data_bytes -= v.len();
        Some(v)
    }

    /// Pops up to `count` elements from one end, in pop order (LPOP/RPOP with count, LMPOP).
    pub fn pop_many(&mut self, end: End, count: usize) -> Vec<Bytes> {
        let n = count.min(self.items.len());
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.extend(self.pop(end));
        }
        out
    }

    pub fn peek(&self, end: End) -> Option<&Bytes> {
        match end {
            End::Left => self.items.front(),
            End::Right => self.items.back(),
        }
    }

    fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let i = if index < 0 { len.checked_add(index)? } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// LINDEX.
    pub fn get(&self, index: i64) -> Option<&Bytes> {
        self.resolve(index).map(|i| &self.items[i])
    }

    /// LSET; false when the index is out of range.
    pub fn set(&mut self, index: i64, v: Bytes) -> bool {
        let v = super::detach(v);
        match self.resolve(index) {
            Some(i) => {
                self.data_bytes = self.data_bytes + v.len() - self.items[i].len();
                self.items[i] = v;
                true
            }
            None => false,
        }
    }

    /// LRANGE.
    pub fn range(&self, start: i64, stop: i64) -> impl Iterator<Item = &Bytes> {
        let r = normalize_range(start, stop, self.items.len());
        let (a, b) = match r {
            Some((a, b)) => (a, b + 1),
            None => (0, 0),
        };
        self.items.range(a..b)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.items.iter()
    }

    /// LTRIM: keeps only `start..=stop`. Returns true when the list became empty.
    pub fn trim(&mut self, start: i64, stop: i64) -> bool {
        match normalize_range(start, stop, self.items.len()) {
            None => {
                self.items.clear();
                self.data_bytes = 0;
            }
            Some((a, b)) => {
                let dropped_tail: usize = self.items.range(b + 1..).map(|e| e.len()).sum();
                let dropped_head: usize = self.items.range(..a).map(|e| e.len()).sum();
                self.data_bytes -= dropped_tail + dropped_head;
                self.items.truncate(b + 1);
                self.items.drain(..a);
            }
        }
        self.items.is_empty()
    }

    /// LINSERT: returns the new length, or -1 when the pivot is missing.
    pub fn insert(&mut self, before: bool, pivot: &[u8], v: Bytes) -> i64 {
        let v = super::detach(v);
        match self.items.iter().position(|e| e.as_ref() == pivot) {
            Some(i) => {
                self.data_bytes += v.len();
                self.items.insert(if before { i } else { i + 1 }, v);
                self.items.len() as i64
            }
            None => -1,
        }
    }

    /// LREM: count > 0 removes from the head, < 0 from the tail, 0 all. Returns removed count.
    pub fn remove(&mut self, count: i64, v: &[u8]) -> usize {
        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
        let mut removed = 0;
        if count >= 0 {
            let mut kept = VecDeque::with_capacity(self.items.len());
            for e in self.items.drain(..) {
                if removed < limit && e.as_ref() == v {
                    removed += 1;
                } else {
                    kept.push_back(e);
                }
            }
            self.items = kept;
        } else {
            let mut kept = VecDeque::with_capacity(self.items.len());
            while let Some(e) = self.items.pop_back() {
                if removed < limit && e.as_ref() == v {
                    removed += 1;
                } else {
                    kept.push_front(e);
                }
            }
            self.items = kept;
        }
        self.data_bytes -= removed * v.len();
        removed
    }

    /// LPOS: `rank` != 0 (negative scans from the tail), `count` None = single answer,
    /// Some(0) = all matches, `maxlen` 0 = unlimited. Returns the matching indexes.
    pub fn positions(&self, v: &[u8], rank: i64, count: Option<u64>, maxlen: u64) -> Vec<usize> {
        let from_tail = rank < 0;
        let rank = rank.unsigned_abs().max(1);
        let want = match count {
            None => 1,
            Some(0) => u64::MAX,
            Some(c) => c,
        };
        let len = self.items.len();
        let mut out = Vec::new();
        let mut matches: u64 = 0;
        for scanned in 0..len {
            if maxlen != 0 && scanned as u64 >= maxlen {
                break;
            }
            let idx = if from_tail { len - 1 - scanned } else { scanned };
            if self.items[idx].as_ref() == v {
                matches += 1;
                if matches >= rank {
                    out.push(idx);
                    if out.len() as u64 >= want {
                        break;
                    }
                }
            }
        }
        out
    }

    /// Approximate heap bytes used (MEMORY USAGE, eviction accounting).
    pub fn memory_usage(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Bytes>() + self.data_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> ListValue {
        ListValue::from_vec(items.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
    }
    fn strs<'a>(it: impl Iterator<Item = &'a Bytes>) -> Vec<String> {
        it.map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    #[test]
    fn ranges_like_redis() {
        let l = list(&["a", "b", "c", "d"]);
        assert_eq!(strs(l.range(0, -1)), ["a", "b", "c", "d"]);
        assert_eq!(strs(l.range(-2, -1)), ["c", "d"]);
        assert_eq!(strs(l.range(-100, 1)), ["a", "b"]);
        assert_eq!(strs(l.range(2, 100)), ["c", "d"]);
        assert!(strs(l.range(3, 2)).is_empty());
        assert!(strs(l.range(5, 10)).is_empty());
        assert!(strs(l.range(i64::MIN, i64::MIN)).is_empty());
        assert_eq!(strs(l.range(i64::MIN, i64::MAX)).len(), 4);
    }

    #[test]
    fn index_set_insert() {
        let mut l = list(&["a", "b", "c"]);
        assert_eq!(l.get(-1).unwrap().as_ref(), b"c");
        assert!(l.get(3).is_none());
        assert!(l.get(-4).is_none());
        assert!(l.get(i64::MIN).is_none());
        assert!(l.set(-3, Bytes::from_static(b"A")));
        assert!(!l.set(3, Bytes::from_static(b"x")));
        assert_eq!(l.insert(true, b"b", Bytes::from_static(b"x")), 4);
        assert_eq!(l.insert(false, b"c", Bytes::from_static(b"y")), 5);
        assert_eq!(l.insert(false, b"zz", Bytes::from_static(b"y")), -1);
        assert_eq!(strs(l.iter()), ["A", "x", "b", "c", "y"]);
    }

    #[test]
    fn trim_and_rem() {
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert_eq!(l.remove(-1, b"a"), 1);
        assert_eq!(strs(l.iter()), ["a", "b", "a", "c"]);
        assert_eq!(l.remove(1, b"a"), 1);
        assert_eq!(strs(l.iter()), ["b", "a", "c"]);
        assert_eq!(l.remove(0, b"zz"), 0);
        let mut l2 = list(&["x", "a", "x", "x"]);
        assert_eq!(l2.remove(0, b"x"), 3);
        assert!(!l.trim(1, -1));
        assert_eq!(strs(l.iter()), ["a", "c"]);
        assert!(l.trim(5, 10));
        assert!(l.is_empty());
    }

    #[test]
    fn lpos_variants() {
        let l = list(&["a", "b", "c", "1", "2", "3", "c", "c"]);
        assert_eq!(l.positions(b"c", 1, None, 0), [2]);
        assert_eq!(l.positions(b"c", 2, None, 0), [6]);
        assert_eq!(l.positions(b"c", -1, None, 0), [7]);
        assert_eq!(l.positions(b"c", 1, Some(0), 0), [2, 6, 7]);
        assert_eq!(l.positions(b"c", 1, Some(2), 0), [2, 6]);
        assert_eq!(l.positions(b"c", -1, Some(2), 0), [7, 6]);
        assert_eq!(l.positions(b"c", 1, Some(0), 3), [2]);
        assert!(l.positions(b"c", 4, None, 0).is_empty());
        assert_eq!(l.positions(b"c", i64::MIN, Some(0), 0), Vec::<usize>::new());
    }

    #[test]
    fn byte_count_is_maintained() {
        let mut l = list(&["aa", "b", "aa", "ccc"]);
        let check = |l: &ListValue| assert_eq!(l.data_bytes, l.iter().map(|e| e.len()).sum::<usize>());
        check(&l);
        l.remove(0, b"aa");
        check(&l);
        l.push(End::Left, Bytes::from_static(b"dddd"));
        l.insert(true, b"b", Bytes::from_static(b"ee"));
        l.set(0, Bytes::from_static(b"f"));
        check(&l);
        l.trim(1, 2);
        check(&l);
        l.pop(End::Right);
        check(&l);
        l.trim(5, 6);
        check(&l);
    }

    #[test]
    fn pops() {
        let mut l = list(&["a", "b", "c"]);
        assert_eq!(strs(l.pop_many(End::Right, 2).iter()), ["c", "b"]);
        assert_eq!(strs(l.pop_many(End::Left, 5).iter()), ["a"]);
        assert!(l.pop(End::Left).is_none());
    }

    proptest::proptest! {
        #[test]
        fn range_matches_naive(len in 0usize..20, start in -30i64..30, stop in -30i64..30) {
            let l = ListValue::from_vec((0..len).map(|i| Bytes::from(i.to_string())).collect());
            let naive: Vec<String> = (0..len as i64)
                .filter(|&i| {
                    let s = if start < 0 { (len as i64 + start).max(0) } else { start };
                    let e = if stop < 0 { len as i64 + stop } else { stop };
                    i >= s && i <= e
                })
                .map(|i| i.to_string()).collect();
            proptest::prop_assert_eq!(strs(l.range(start, stop)), naive);
        }
    }
}
