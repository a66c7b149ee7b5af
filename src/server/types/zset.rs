//! Sorted-set values, ordered by (score, member bytes) like Redis.
//!
//! The order lives in [`SortedSeq`]: a list of sorted chunks (at most [`CHUNK_MAX`] entries
//! each) with a Fenwick tree over the chunk sizes, so rank <-> element is O(log n) and range
//! walks are contiguous memory. In `skiplist` encoding a [`Dict`] maps member -> score for
//! O(1) ZSCORE; in `listpack` encoding (<= zset-max-listpack-entries members of <=
//! zset-max-listpack-value bytes) members are found by a linear scan, as Redis does.
//!
//! Range queries (by score, by lex) resolve to a half-open rank interval `[start, end)`,
//! so ZCOUNT, ZRANGE ... BYSCORE LIMIT, REV and ZREMRANGEBY* all share one code path.

use super::dict::Dict;
use super::{sample_indices, EncodingLimits};
use bytes::Bytes;
use rand::Rng;
use std::cmp::Ordering;

pub const CHUNK_MAX: usize = 128;

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub score: f64,
    pub member: Bytes,
}

#[inline]
fn cmp_key(score: f64, member: &[u8], e: &Entry) -> Ordering {
    // Scores are never NaN in a zset; -0.0 == 0.0 as with C's `<`.
    if score < e.score {
        Ordering::Less
    } else if score > e.score {
        Ordering::Greater
    } else {
        member.cmp(e.member.as_ref())
    }
}

/// Fenwick (binary indexed) tree over chunk sizes.
#[derive(Clone, Debug, Default)]
struct Fenwick {
    tree: Vec<usize>, // 1-based
}

impl Fenwick {
    fn build(sizes: impl Iterator<Item = usize>) -> Self {
        let mut tree = vec![0];
        tree.extend(sizes);
        let n = tree.len() - 1;
        for i in 1..=n {
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                tree[j] += tree[i];
            }
        }
        Fenwick { tree }
    }

    fn add(&mut self, chunk: usize, delta: isize) {
        let n = self.tree.len() - 1;
        let mut i = chunk + 1;
        while i <= n {
            self.tree[i] = (self.tree[i] as isize + delta) as usize;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of the sizes of chunks `0..chunk`.
    fn prefix(&self, chunk: usize) -> usize {
        let mut i = chunk;
        let mut s = 0;
        while i > 0 {
            s += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        s
    }

    /// (chunk, offset) holding global `rank` (must be < total).
    fn find(&self, rank: usize) -> (usize, usize) {
        let n = self.tree.len() - 1;
        let mut pos = 0;
        let mut rem = rank;
        let mut step = n.next_power_of_two();
        while step > 0 {
            if pos + step <= n && self.tree[pos + step] <= rem {
                pos += step;
                rem -= self.tree[pos];
            }
            step >>= 1;
        }
        (pos, rem)
    }
}

/// Order-statistic sequence of entries sorted by (score, member).
#[derive(Clone, Debug, Default)]
pub struct SortedSeq {
    chunks: Vec<Vec<Entry>>,
    sizes: Fenwick,
    len: usize,
}

impl SortedSeq {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn rebuild(&mut self) {
        self.chunks.retain(|c| !c.is_empty());
        self.sizes = Fenwick::build(self.chunks.iter().map(|c| c.len()));
    }

    /// Builds from entries already sorted by (score, member) with distinct members.
    pub fn from_sorted(entries: Vec<Entry>) -> Self {
        let len = entries.len();
        let mut chunks = Vec::with_capacity(len / (CHUNK_MAX / 2) + 1);
        let mut it = entries.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(CHUNK_MAX / 2 + CHUNK_MAX / 4).collect());
        }
        let mut s = SortedSeq { chunks, sizes: Fenwick::default(), len };
        s.rebuild();
        s
    }

    fn chunk_for(&self, score: f64, member: &[u8]) -> usize {
        self.chunks.partition_point(|c| cmp_key(score, member, c.last().expect("no empty chunks")) == Ordering::Greater)
    }

    /// Inserts an entry whose member is not present.
    pub fn insert(&mut self, score: f64, member: Bytes) {
        if self.chunks.is_empty() {
            let mut first = Vec::with_capacity(1);
            first.push(Entry { score, member });
            self.chunks.reserve_exact(1);
            self.chunks.push(first);
            self.sizes = Fenwick::build(std::iter::once(1));
            self.len = 1;
            return;
        }
        let ci = self.chunk_for(score, &member).min(self.chunks.len() - 1);
        let chunk = &mut self.chunks[ci];
        let pos = chunk.partition_point(|e| cmp_key(score, &member, e) == Ordering::Greater);
        super::room_for_one(chunk);
        chunk.insert(pos, Entry { score, member });
        self.len += 1;
        if chunk.len() > CHUNK_MAX {
            let tail = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(ci + 1, tail);
            self.rebuild();
        } else {
            self.sizes.add(ci, 1);
        }
    }

    fn locate(&self, score: f64, member: &[u8]) -> Option<(usize, usize)> {
        let ci = self.chunk_for(score, member);
        let chunk = self.chunks.get(ci)?;
        chunk.binary_search_by(|e| cmp_key(score, member, e).reverse()).ok().map(|pos| (ci, pos))
    }

    /// Removes (score, member); false when absent.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let Some((ci, pos)) = self.locate(score, member) else { return false };
        self.chunks[ci].remove(pos);
        self.len -= 1;
        self.after_shrink(ci);
        true
    }

    fn after_shrink(&mut self, ci: usize) {
        let n = self.chunks[ci].len();
        if n == 0 {
            self.chunks.remove(ci);
            self.rebuild();
        } else if n < CHUNK_MAX / 4 && ci + 1 < self.chunks.len() && n + self.chunks[ci + 1].len() <= CHUNK_MAX {
            let next = self.chunks.remove(ci + 1);
            self.chunks[ci].extend(next);
            self.rebuild();
        } else {
            self.sizes.add(ci, -1);
        }
    }

    /// 0-based rank of (score, member) in ascending order.
    pub fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        self.locate(score, member).map(|(ci, pos)| self.sizes.prefix(ci) + pos)
    }

    pub fn get(&self, rank: usize) -> Option<&Entry> {
        if rank >= self.len {
            return None;
        }
        let (ci, off) = self.sizes.find(rank);
        Some(&self.chunks[ci][off])
    }

    /// Number of leading entries for which `pred` holds (pred must be monotone: true..false).
    pub fn partition_point(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| pred(c.last().expect("no empty chunks")));
        if ci == self.chunks.len() {
            return self.len;
        }
        self.sizes.prefix(ci) + self.chunks[ci].partition_point(pred)
    }

    /// Entries with rank in `start..end`, ascending.
    pub fn iter_range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        let end = end.min(self.len);
        let start = start.min(end);
        let (ci, off) = if start < self.len { self.sizes.find(start) } else { (self.chunks.len(), 0) };
        let (cj, offj) = if end < self.len { self.sizes.find(end) } else { (self.chunks.len(), 0) };
        // Flatten the chunk slices covering [start, end).
        let slices = (ci..cj.min(self.chunks.len()).max(ci)).chain((cj < self.chunks.len() && offj > 0).then_some(cj));
        let chunks = &self.chunks;
        slices
            .filter(move |&c| c < chunks.len())
            .map(move |c| {
                let lo = if c == ci { off } else { 0 };
                let hi = if c == cj { offj } else { chunks[c].len() };
                &chunks[c][lo..hi]
            })
            .flat_map(|s| s.iter())
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Removes ranks `start..end`, returning the removed entries in order.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<Entry> {
        let end = end.min(self.len);
        if start >= end {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(end - start);
        let (mut ci, mut off) = self.sizes.find(start);
        let mut left = end - start;
        while left > 0 {
            let chunk = &mut self.chunks[ci];
            let take = left.min(chunk.len() - off);
            out.extend(chunk.drain(off..off + take));
            left -= take;
            ci += 1;
            off = 0;
        }
        self.len -= out.len();
        // Merge small neighbours so the chunk count stays proportional to len.
        let mut merged: Vec<Vec<Entry>> = Vec::with_capacity(self.chunks.len());
        for c in self.chunks.drain(..) {
            if c.is_empty() {
                continue;
            }
            match merged.last_mut() {
                Some(last) if last.len() + c.len() <= CHUNK_MAX / 2 => last.extend(c),
                _ => merged.push(c),
            }
        }
        self.chunks = merged;
        self.rebuild();
        out
    }
}

/// A score range bound: `1.5`, `(1.5`, `-inf`, `+inf`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    /// Redis's `zslParseRange` for one bound (strtod semantics); None -> "ERR min or max is not a float".
    pub fn parse(arg: &[u8]) -> Option<ScoreBound> {
        let (exclusive, text) = match arg.first() {
            Some(b'(') => (true, &arg[1..]),
            _ => (false, arg),
        };
        let value = strtod_whole(text)?;
        Some(ScoreBound { value, exclusive })
    }

    fn admits_from_below(&self, score: f64) -> bool {
        if self.exclusive {
            score > self.value
        } else {
            score >= self.value
        }
    }

    fn admits_from_above(&self, score: f64) -> bool {
        if self.exclusive {
            score < self.value
        } else {
            score <= self.value
        }
    }
}

/// A lex range bound: `[a`, `(a`, `-`, `+`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl LexBound {
    /// None -> "ERR min or max not valid string range item".
    pub fn parse(arg: &[u8]) -> Option<LexBound> {
        match arg.first()? {
            b'+' if arg.len() == 1 => Some(LexBound::PosInf),
            b'-' if arg.len() == 1 => Some(LexBound::NegInf),
            b'[' => Some(LexBound::Inclusive(Bytes::copy_from_slice(&arg[1..]))),
            b'(' => Some(LexBound::Exclusive(Bytes::copy_from_slice(&arg[1..]))),
            _ => None,
        }
    }

    /// member >= / > min (zslLexValueGteMin).
    fn gte_min(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Inclusive(b) => m >= b.as_ref(),
            LexBound::Exclusive(b) => m > b.as_ref(),
        }
    }

    /// member <= / < max (zslLexValueLteMax).
    fn lte_max(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(b) => m <= b.as_ref(),
            LexBound::Exclusive(b) => m < b.as_ref(),
        }
    }
}

/// C `strtod` over the whole argument as `zslParseRange` uses it: leading whitespace allowed,
/// the entire rest must be consumed, NaN rejected. The empty string parses as 0 (as in Redis).
pub fn strtod_whole(text: &[u8]) -> Option<f64> {
    if text.is_empty() {
        return Some(0.0);
    }
    let (v, used) = super::strtod_prefix(text);
    if used == 0 || used != text.len() || v.is_nan() {
        return None;
    }
    Some(v)
}

/// Outcome of [`ZSetValue::add`] for ZADD's reply counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    Updated,
    Unchanged,
}

#[derive(Clone, Debug, Default)]
pub struct ZSetValue {
    seq: SortedSeq,
    /// Some(..) in `skiplist` encoding.
    dict: Option<Box<Dict<f64>>>,
    /// Sum of member lengths: keeps `memory_usage` O(1).
    data_bytes: usize,
}

impl ZSetValue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from (member, score) pairs with distinct members; the encoding is chosen from
    /// the final size and longest member, as Redis does for ZUNIONSTORE/ZRANGESTORE results.
    pub fn from_pairs(pairs: Vec<(Bytes, f64)>, limits: &EncodingLimits) -> Self {
        let mut entries: Vec<Entry> = pairs.into_iter().map(|(member, score)| Entry { score, member }).collect();
        let small_n = entries.len() <= limits.zset_max_listpack_entries;
        if small_n {
            for e in entries.iter_mut().filter(|e| e.score == 0.0) {
                e.score = 0.0; // listpack normalisation of -0, see `add`
            }
        }
        entries.sort_by(|a, b| cmp_key(a.score, &a.member, b));
        let small = entries.len() <= limits.zset_max_listpack_entries
            && entries.iter().all(|e| e.member.len() <= limits.zset_max_listpack_value);
        let dict = (!small).then(|| {
            let mut d = Box::new(Dict::with_capacity(entries.len()));
            for e in &entries {
                d.insert(e.member.clone(), e.score);
            }
            d
        });
        let data_bytes = entries.iter().map(|e| e.member.len()).sum();
        ZSetValue { seq: SortedSeq::from_sorted(entries), dict, data_bytes }
    }

    pub fn encoding(&self) -> &'static str {
        if self.dict.is_some() {
            "skiplist"
        } else {
            "listpack"
        }
    }

    pub fn len(&self) -> usize {
        self.seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.dict {
            Some(d) => d.get(member).copied(),
            None => self.seq.iter().find(|e| e.member.as_ref() == member).map(|e| e.score),
        }
    }

    fn convert_to_skiplist(&mut self) {
        if self.dict.is_none() {
            let mut d = Dict::with_capacity(self.seq.len() + 1);
            for e in self.seq.iter() {
                d.insert(e.member.clone(), e.score);
            }
            self.dict = Some(Box::new(d));
        }
    }

    /// Sets `member`'s score (ZADD without flags). `score` must not be NaN.
    pub fn add(&mut self, member: Bytes, score: f64, limits: &EncodingLimits) -> AddOutcome {
        // A listpack stores "-0" as the integer 0, so Redis reads it back as +0.
        let score = if score == 0.0 && self.dict.is_none() { 0.0 } else { score };
        match self.score(&member) {
            Some(old) => {
                if old == score {
                    return AddOutcome::Unchanged;
                }
                let member = super::detach(member);
                self.seq.remove(old, &member);
                if let Some(d) = &mut self.dict {
                    d.insert(member.clone(), score);
                }
                self.seq.insert(score, member);
                AddOutcome::Updated
            }
            None => {
                let member = super::detach(member);
                if self.dict.is_none()
                    && (self.seq.len() + 1 > limits.zset_max_listpack_entries
                        || member.len() > limits.zset_max_listpack_value)
                {
                    self.convert_to_skiplist();
                }
                if let Some(d) = &mut self.dict {
                    d.insert(member.clone(), score);
                }
                self.data_bytes += member.len();
                self.seq.insert(score, member);
                AddOutcome::Added
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        let Some(score) = self.score(member) else { return false };
        self.seq.remove(score, member);
        if let Some(d) = &mut self.dict {
            d.remove(member);
        }
        self.data_bytes -= member.len();
        true
    }

    /// ZRANK / ZREVRANK.
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let score = self.score(member)?;
        let r = self.seq.rank(score, member)?;
        Some(if rev { self.len() - 1 - r } else { r })
    }

    pub fn get(&self, rank: usize) -> Option<&Entry> {
        self.seq.get(rank)
    }

    /// Ascending entries with rank in `start..end`.
    pub fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        self.seq.iter_range(start, end)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        self.seq.iter()
    }

    /// Rank interval `[start, end)` of scores within `min..max`.
    pub fn score_range(&self, min: &ScoreBound, max: &ScoreBound) -> (usize, usize) {
        let start = self.seq.partition_point(|e| !min.admits_from_below(e.score));
        let end = self.seq.partition_point(|e| max.admits_from_above(e.score));
        (start, end.max(start))
    }

    /// Rank interval `[start, end)` of members within `min..max` (meaningful when all scores
    /// are equal, as Redis documents).
    pub fn lex_range(&self, min: &LexBound, max: &LexBound) -> (usize, usize) {
        let start = self.seq.partition_point(|e| !min.gte_min(&e.member));
        let end = self.seq.partition_point(|e| max.lte_max(&e.member));
        (start, end.max(start))
    }

    /// Removes ranks `start..end` (ZREMRANGEBY*, ZPOPMIN); returns the removed entries.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<Entry> {
        let removed = self.seq.remove_range(start, end);
        if let Some(d) = &mut self.dict {
            for e in &removed {
                d.remove(&e.member);
            }
        }
        self.data_bytes -= removed.iter().map(|e| e.member.len()).sum::<usize>();
        removed
    }

    /// ZPOPMIN/ZPOPMAX: up to `count` entries from the low (or high) end, in pop order.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<Entry> {
        let n = count.min(self.len());
        if max {
            let len = self.len();
            let mut v = self.remove_range(len - n, len);
            v.reverse();
            v
        } else {
            self.remove_range(0, n)
        }
    }

    /// ZRANDMEMBER key count.
    pub fn random_entries<R: Rng + ?Sized>(&self, rng: &mut R, count: i64) -> Vec<&Entry> {
        sample_indices(rng, self.len(), count).into_iter().filter_map(|i| self.seq.get(i)).collect()
    }

    /// ZSCAN step: listpacks return everything with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&Bytes, f64)) -> u64 {
        match &self.dict {
            None => {
                self.seq.iter().for_each(|e| visit(&e.member, e.score));
                0
            }
            Some(d) => d.scan(cursor, count, |m, s| visit(m, *s)),
        }
    }

    pub fn memory_usage(&self) -> usize {
        let per = if self.dict.is_some() { 96 } else { 48 };
        self.data_bytes + self.len() * per
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }
    fn members<'a>(it: impl Iterator<Item = &'a Entry>) -> Vec<String> {
        it.map(|e| String::from_utf8_lossy(&e.member).into_owned()).collect()
    }

    #[test]
    fn order_and_rank() {
        let lim = EncodingLimits::default();
        let mut z = ZSetValue::new();
        assert_eq!(z.add(b("b"), 1.0, &lim), AddOutcome::Added);
        assert_eq!(z.add(b("a"), 1.0, &lim), AddOutcome::Added);
        assert_eq!(z.add(b("c"), 0.5, &lim), AddOutcome::Added);
        assert_eq!(z.add(b("c"), 0.5, &lim), AddOutcome::Unchanged);
        assert_eq!(members(z.iter()), ["c", "a", "b"]);
        assert_eq!(z.rank(b"a", false), Some(1));
        assert_eq!(z.rank(b"a", true), Some(1));
        assert_eq!(z.rank(b"c", true), Some(2));
        assert_eq!(z.add(b("c"), 2.0, &lim), AddOutcome::Updated);
        assert_eq!(members(z.iter()), ["a", "b", "c"]);
        assert_eq!(z.score(b"c"), Some(2.0));
        assert!(z.remove(b"a"));
        assert!(!z.remove(b"a"));
        assert_eq!(z.rank(b"a", false), None);
        assert_eq!(z.encoding(), "listpack");
    }

    #[test]
    fn negative_zero_equals_zero() {
        let lim = EncodingLimits::default();
        let mut z = ZSetValue::new();
        z.add(b("b"), -0.0, &lim);
        z.add(b("a"), 0.0, &lim);
        assert_eq!(members(z.iter()), ["a", "b"]);
        assert_eq!(z.add(b("b"), 0.0, &lim), AddOutcome::Unchanged);
    }

    #[test]
    fn score_and_lex_ranges() {
        let lim = EncodingLimits::default();
        let mut z = ZSetValue::new();
        for (m, s) in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 3.0), ("e", f64::INFINITY)] {
            z.add(b(m), s, &lim);
        }
        let p = |s: &str| ScoreBound::parse(s.as_bytes()).unwrap();
        assert_eq!(z.score_range(&p("2"), &p("3")), (1, 4));
        assert_eq!(z.score_range(&p("(2"), &p("3")), (2, 4));
        assert_eq!(z.score_range(&p("2"), &p("(3")), (1, 2));
        assert_eq!(z.score_range(&p("-inf"), &p("+inf")), (0, 5));
        assert_eq!(z.score_range(&p("(3"), &p("(3")).0, z.score_range(&p("(3"), &p("(3")).1);
        assert_eq!(z.score_range(&p("5"), &p("1")), (4, 4));
        assert_eq!(z.score_range(&p("inf"), &p("inf")), (4, 5));
        assert!(ScoreBound::parse(b"nan").is_none());
        assert!(ScoreBound::parse(b"1x").is_none());
        assert!(ScoreBound::parse(b"(").is_some(), "strtod of an empty string is 0 in Redis");
        assert_eq!(ScoreBound::parse(b" 1").unwrap().value, 1.0);

        let mut l = ZSetValue::new();
        for m in ["a", "b", "c", "d"] {
            l.add(b(m), 0.0, &lim);
        }
        let lx = |s: &str| LexBound::parse(s.as_bytes()).unwrap();
        assert_eq!(l.lex_range(&lx("-"), &lx("+")), (0, 4));
        assert_eq!(l.lex_range(&lx("[b"), &lx("(d")), (1, 3));
        assert_eq!(l.lex_range(&lx("(b"), &lx("[d")), (2, 4));
        assert_eq!(l.lex_range(&lx("+"), &lx("-")).1 - l.lex_range(&lx("+"), &lx("-")).0, 0);
        assert!(LexBound::parse(b"a").is_none());
        assert!(LexBound::parse(b"").is_none());
        assert!(LexBound::parse(b"-x").is_none());
    }

    #[test]
    fn encoding_conversion_and_pops() {
        let lim = EncodingLimits { zset_max_listpack_entries: 4, ..Default::default() };
        let mut z = ZSetValue::new();
        for i in 0..4 {
            z.add(b(&format!("m{i}")), i as f64, &lim);
        }
        assert_eq!(z.encoding(), "listpack");
        z.add(b("m4"), 4.0, &lim);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.score(b"m4"), Some(4.0));
        let popped = z.pop(2, true);
        assert_eq!(members(popped.iter()), ["m4", "m3"]);
        let popped = z.pop(1, false);
        assert_eq!(members(popped.iter()), ["m0"]);
        assert_eq!(z.score(b"m0"), None);
        assert_eq!(z.len(), 2);
        let mut big = ZSetValue::new();
        big.add(Bytes::from(vec![b'x'; 65]), 1.0, &EncodingLimits::default());
        assert_eq!(big.encoding(), "skiplist");
        let small = ZSetValue::from_pairs(vec![(b("x"), 1.0)], &lim);
        assert_eq!(small.encoding(), "listpack");
    }

    /// Model: a sorted Vec. Random adds/removes/range removals on a large zset with many
    /// chunks; every rank, element and range must match.
    #[test]
    fn large_against_model() {
        use rand::{Rng, SeedableRng};
        let lim = EncodingLimits::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut z = ZSetValue::new();
        let mut model: std::collections::BTreeMap<String, f64> = Default::default();
        for step in 0..20_000 {
            let m = format!("m{}", rng.gen_range(0..3000));
            let s = rng.gen_range(0..500) as f64;
            match rng.gen_range(0..10) {
                0..=6 => {
                    z.add(Bytes::from(m.clone()), s, &lim);
                    model.insert(m, s);
                }
                7 | 8 => {
                    assert_eq!(z.remove(m.as_bytes()), model.remove(&m).is_some());
                }
                _ => {
                    if step % 50 == 0 && !model.is_empty() {
                        let mut sorted: Vec<(f64, String)> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
                        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
                        let a = rng.gen_range(0..sorted.len());
                        let bnd = (a + rng.gen_range(0..40)).min(sorted.len());
                        let removed = z.remove_range(a, bnd);
                        assert_eq!(removed.len(), bnd - a);
                        for (_, m) in &sorted[a..bnd] {
                            model.remove(m);
                        }
                    }
                }
            }
        }
        let mut sorted: Vec<(f64, String)> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(z.len(), sorted.len());
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.data_bytes, sorted.iter().map(|(_, m)| m.len()).sum::<usize>());
        let got: Vec<(f64, String)> = z.iter().map(|e| (e.score, String::from_utf8_lossy(&e.member).into_owned())).collect();
        assert_eq!(got, sorted);
        for (i, (s, m)) in sorted.iter().enumerate().step_by(7) {
            assert_eq!(z.rank(m.as_bytes(), false), Some(i));
            assert_eq!(z.get(i).unwrap().score, *s);
        }
        // iter_range at chunk boundaries and in reverse
        for (a, bnd) in [(0, sorted.len()), (1, 200), (127, 129), (sorted.len() - 3, sorted.len() + 5)] {
            let got = members(z.range(a, bnd));
            let want: Vec<String> = sorted[a.min(sorted.len())..bnd.min(sorted.len())].iter().map(|x| x.1.clone()).collect();
            assert_eq!(got, want);
            let mut rev = members(z.range(a, bnd).rev());
            rev.reverse();
            assert_eq!(rev, want);
        }
        let lo = ScoreBound { value: 100.0, exclusive: true };
        let hi = ScoreBound { value: 200.0, exclusive: false };
        let (a, bnd) = z.score_range(&lo, &hi);
        let want = sorted.iter().filter(|(s, _)| *s > 100.0 && *s <= 200.0).count();
        assert_eq!(bnd - a, want);
        assert!(z.get(a).unwrap().score > 100.0);
    }

    proptest::proptest! {
        #[test]
        fn seq_ranges_match_model(n in 0usize..700, a in 0usize..800, len in 0usize..400, removes in proptest::collection::vec(0usize..700, 0..50)) {
            let mut seq = SortedSeq::default();
            let mut model: Vec<(f64, String)> = Vec::new();
            for i in 0..n {
                let m = format!("m{:04}", (i * 7919) % 1000);
                let s = ((i * 31) % 17) as f64;
                if model.iter().any(|x| x.1 == m) { continue; }
                seq.insert(s, Bytes::from(m.clone()));
                model.push((s, m));
            }
            model.sort_by(|x, y| x.partial_cmp(y).unwrap());
            for r in removes {
                if model.is_empty() { break; }
                let (s, m) = model.remove(r % model.len());
                proptest::prop_assert!(seq.remove(s, m.as_bytes()));
            }
            proptest::prop_assert_eq!(seq.len(), model.len());
            let b = a + len;
            let want: Vec<String> = model.iter().skip(a).take(b.min(model.len()).saturating_sub(a)).map(|x| x.1.clone()).collect();
            proptest::prop_assert_eq!(members(seq.iter_range(a, b)), want.clone());
            let mut rev = members(seq.iter_range(a, b).rev());
            rev.reverse();
            proptest::prop_assert_eq!(rev, want);
            for (i, (s, m)) in model.iter().enumerate() {
                proptest::prop_assert_eq!(seq.rank(*s, m.as_bytes()), Some(i));
            }
            let rebuilt = SortedSeq::from_sorted(model.iter().map(|(s, m)| Entry { score: *s, member: Bytes::from(m.clone()) }).collect());
            proptest::prop_assert_eq!(members(rebuilt.iter()), members(seq.iter()));
        }
    }
}
