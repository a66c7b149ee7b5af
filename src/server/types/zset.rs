//! Sorted-set values, ordered by (score, member bytes) like Redis.
//!
//! `listpack` encoding (<= zset-max-listpack-entries members of <= zset-max-listpack-value
//! bytes): the entries packed in order in one buffer, found by a linear scan, as Redis does.
//! `skiplist` encoding: the order lives in [`SortedSeq`], a list of sorted chunks (at most
//! [`CHUNK_MAX`] entries each) with a Fenwick tree over the chunk sizes, so rank <-> element
//! is O(log n) and range walks are contiguous memory; a [`Dict`] maps member -> score for
//! O(1) ZSCORE.
//!
//! Range queries (by score, by lex) resolve to a half-open rank interval `[start, end)`,
//! so ZCOUNT, ZRANGE ... BYSCORE LIMIT, REV and ZREMRANGEBY* all share one code path.

use super::dict::Dict;
use super::packed::{get_len, put_len};
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

/// (score, member) order. Scores are never NaN in a zset; -0.0 == 0.0 as with C's `<`.
#[inline]
fn cmp_parts(score: f64, member: &[u8], other_score: f64, other_member: &[u8]) -> Ordering {
    if score < other_score {
        Ordering::Less
    } else if score > other_score {
        Ordering::Greater
    } else {
        member.cmp(other_member)
    }
}

#[inline]
fn cmp_key(score: f64, member: &[u8], e: &Entry) -> Ordering {
    cmp_parts(score, member, e.score, &e.member)
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

/// A borrowed entry. `shared` is the member's own buffer when it has one (`skiplist`), so
/// replies take a reference to it instead of a copy.
#[derive(Clone, Copy, Debug)]
pub struct EntryRef<'a> {
    pub score: f64,
    pub member: &'a [u8],
    shared: Option<&'a Bytes>,
}

impl<'a> EntryRef<'a> {
    fn of(e: &'a Entry) -> Self {
        EntryRef { score: e.score, member: &e.member, shared: Some(&e.member) }
    }

    /// The member as `Bytes`: shared when it has its own buffer, else copied.
    pub fn member_bytes(&self) -> Bytes {
        match self.shared {
            Some(b) => b.clone(),
            None => Bytes::copy_from_slice(self.member),
        }
    }

    pub fn to_entry(&self) -> Entry {
        Entry { score: self.score, member: self.member_bytes() }
    }
}

/// `listpack` encoding: entries in (score, member) order back to back in one buffer, each
/// `score (8 bytes LE) varint(len) member`. A one-member sorted set is one small allocation
/// instead of a chunk list, a Fenwick tree and a buffer per member.
#[derive(Clone, Debug, Default)]
struct Packed {
    buf: Vec<u8>,
}

/// One packed entry: its byte span in the buffer and what it holds.
struct PackedAt<'a> {
    start: usize,
    end: usize,
    entry: EntryRef<'a>,
}

impl Packed {
    fn walk(&self) -> impl Iterator<Item = PackedAt<'_>> + '_ {
        let buf = &self.buf;
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= buf.len() {
                return None;
            }
            let start = at;
            let score = f64::from_le_bytes(buf[at..at + 8].try_into().expect("an 8-byte score"));
            let (len, w) = get_len(buf, at + 8);
            let member = at + 8 + w;
            at = member + len;
            Some(PackedAt { start, end: at, entry: EntryRef { score, member: &buf[member..at], shared: None } })
        })
    }

    fn find(&self, member: &[u8]) -> Option<PackedAt<'_>> {
        self.walk().find(|p| p.entry.member == member)
    }

    fn encode(score: f64, member: &[u8]) -> Vec<u8> {
        let mut encoded = Vec::with_capacity(member.len() + 12);
        encoded.extend_from_slice(&score.to_le_bytes());
        put_len(&mut encoded, member.len());
        encoded.extend_from_slice(member);
        encoded
    }

    /// Inserts an absent member in order; `count` is the number of entries before.
    fn insert(&mut self, score: f64, member: &[u8], count: usize) {
        let at = self
            .walk()
            .find(|p| cmp_parts(score, member, p.entry.score, p.entry.member) == Ordering::Less)
            .map_or(self.buf.len(), |p| p.start);
        let encoded = Self::encode(score, member);
        super::packed::reserve(&mut self.buf, count, encoded.len());
        self.buf.splice(at..at, encoded);
    }

    /// Entries with rank in `start..end`.
    fn refs(&self, start: usize, end: usize) -> Vec<EntryRef<'_>> {
        self.walk().skip(start).take(end.saturating_sub(start)).map(|p| p.entry).collect()
    }

    /// Redis's listpack walks for a lex range (`zzlFirstInLexRange` then forward while within
    /// max; `zzlLastInLexRange` then backward while within min for the REV forms): with mixed
    /// scores they are not binary searches, and this gives Redis's answers.
    fn lex_range(&self, min: &LexBound, max: &LexBound, rev: bool) -> (usize, usize) {
        let all: Vec<EntryRef<'_>> = self.walk().map(|at| at.entry).collect();
        let (Some(first), Some(last)) = (all.first(), all.last()) else { return (0, 0) };
        if !min.gte_min(last.member) || !max.lte_max(first.member) {
            return (0, 0);
        }
        if rev {
            let Some(end) = all.iter().rposition(|e| max.lte_max(e.member)) else { return (0, 0) };
            let within = all[..=end].iter().rev().take_while(|e| min.gte_min(e.member)).count();
            (end + 1 - within, end + 1)
        } else {
            let Some(start) = all.iter().position(|e| min.gte_min(e.member)) else { return (0, 0) };
            let within = all[start..].iter().take_while(|e| max.lte_max(e.member)).count();
            (start, start + within)
        }
    }

}

/// `skiplist` encoding: the order in a [`SortedSeq`], member -> score in a [`Dict`].
#[derive(Clone, Debug, Default)]
struct Table {
    seq: SortedSeq,
    dict: Dict<f64>,
    /// Sum of member lengths: keeps `memory_usage` O(1).
    data_bytes: usize,
}

#[derive(Clone, Debug)]
enum Repr {
    Listpack(Packed),
    /// Boxed: most sorted sets are small, and the value stays 32 bytes.
    Skiplist(Box<Table>),
}

#[derive(Clone, Debug)]
pub struct ZSetValue {
    repr: Repr,
    /// Number of entries in the listpack.
    packed_len: usize,
}

impl Default for ZSetValue {
    fn default() -> Self {
        ZSetValue { repr: Repr::Listpack(Packed::default()), packed_len: 0 }
    }
}

impl ZSetValue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from (member, score) pairs with distinct members; the encoding is chosen from
    /// the final size and longest member, as Redis does for ZUNIONSTORE/ZRANGESTORE results.
    pub fn from_pairs(pairs: Vec<(Bytes, f64)>, limits: &EncodingLimits) -> Self {
        let mut entries: Vec<Entry> = pairs.into_iter().map(|(member, score)| Entry { score, member }).collect();
        let small = entries.len() <= limits.zset_max_listpack_entries
            && entries.iter().all(|e| e.member.len() <= limits.zset_max_listpack_value);
        entries.sort_by(|a, b| cmp_key(a.score, &a.member, b));
        if small {
            let mut buf = Vec::with_capacity(entries.iter().map(|e| e.member.len() + 12).sum());
            for e in &entries {
                // listpack normalisation of -0 (see `add`); -0 and 0 sort alike
                let score = if e.score == 0.0 { 0.0 } else { e.score };
                buf.extend_from_slice(&Packed::encode(score, &e.member));
            }
            return ZSetValue { repr: Repr::Listpack(Packed { buf }), packed_len: entries.len() };
        }
        let mut dict = Dict::with_capacity(entries.len());
        for e in &entries {
            dict.insert(e.member.clone(), e.score);
        }
        let data_bytes = entries.iter().map(|e| e.member.len()).sum();
        ZSetValue { repr: Repr::Skiplist(Box::new(Table { seq: SortedSeq::from_sorted(entries), dict, data_bytes })), packed_len: 0 }
    }

    /// The member dict of a `skiplist` zset (DEBUG HTSTATS-KEY): (table size, elements).
    pub fn table_stats(&self) -> Option<(usize, usize)> {
        match &self.repr {
            Repr::Listpack(_) => None,
            Repr::Skiplist(t) => Some((t.dict.table_capacity(), t.dict.len())),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Skiplist(_) => "skiplist",
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(_) => self.packed_len,
            Repr::Skiplist(t) => t.seq.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Listpack(p) => p.find(member).map(|at| at.entry.score),
            Repr::Skiplist(t) => t.dict.get(member).copied(),
        }
    }

    fn convert_to_skiplist(&mut self) {
        if let Repr::Listpack(p) = &self.repr {
            let entries: Vec<Entry> = p.walk().map(|at| at.entry.to_entry()).collect();
            let mut dict = Dict::with_capacity(entries.len() + 1);
            for e in &entries {
                dict.insert(e.member.clone(), e.score);
            }
            let data_bytes = entries.iter().map(|e| e.member.len()).sum();
            self.repr = Repr::Skiplist(Box::new(Table { seq: SortedSeq::from_sorted(entries), dict, data_bytes }));
            self.packed_len = 0;
        }
    }

    /// Sets `member`'s score (ZADD without flags). `score` must not be NaN.
    pub fn add(&mut self, member: Bytes, score: f64, limits: &EncodingLimits) -> AddOutcome {
        // A listpack stores "-0" as the integer 0, so Redis reads it back as +0.
        let listpack = matches!(self.repr, Repr::Listpack(_));
        let score = if score == 0.0 && listpack { 0.0 } else { score };
        match self.score(&member) {
            Some(old) if old == score => AddOutcome::Unchanged,
            Some(old) => {
                match &mut self.repr {
                    Repr::Listpack(p) => {
                        let at = p.find(&member).expect("a member just found");
                        p.buf.drain(at.start..at.end);
                        p.insert(score, &member, self.packed_len - 1);
                    }
                    Repr::Skiplist(t) => {
                        let member = super::detach(member);
                        t.seq.remove(old, &member);
                        t.dict.insert(member.clone(), score);
                        t.seq.insert(score, member);
                    }
                }
                AddOutcome::Updated
            }
            None => {
                if listpack
                    && (self.packed_len + 1 > limits.zset_max_listpack_entries
                        || member.len() > limits.zset_max_listpack_value)
                {
                    self.convert_to_skiplist();
                }
                match &mut self.repr {
                    Repr::Listpack(p) => {
                        p.insert(score, &member, self.packed_len);
                        self.packed_len += 1;
                    }
                    Repr::Skiplist(t) => {
                        let member = super::detach(member);
                        t.dict.insert(member.clone(), score);
                        t.data_bytes += member.len();
                        t.seq.insert(score, member);
                    }
                }
                AddOutcome::Added
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(p) => {
                let Some(at) = p.find(member) else { return false };
                let span = at.start..at.end;
                p.buf.drain(span);
                self.packed_len -= 1;
            }
            Repr::Skiplist(t) => {
                let Some((_, score)) = t.dict.remove(member) else { return false };
                t.seq.remove(score, member);
                t.data_bytes -= member.len();
            }
        }
        true
    }

    /// ZRANK / ZREVRANK.
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let r = match &self.repr {
            Repr::Listpack(p) => p.walk().position(|at| at.entry.member == member)?,
            Repr::Skiplist(t) => t.seq.rank(*t.dict.get(member)?, member)?,
        };
        Some(if rev { self.len() - 1 - r } else { r })
    }

    pub fn get(&self, rank: usize) -> Option<EntryRef<'_>> {
        match &self.repr {
            Repr::Listpack(p) => p.walk().nth(rank).map(|at| at.entry),
            Repr::Skiplist(t) => t.seq.get(rank).map(EntryRef::of),
        }
    }

    /// Ascending entries with rank in `start..end`.
    pub fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = EntryRef<'_>> + '_ {
        match &self.repr {
            Repr::Listpack(p) => either::Either::Left(p.refs(start, end).into_iter()),
            Repr::Skiplist(t) => either::Either::Right(t.seq.iter_range(start, end).map(EntryRef::of)),
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = EntryRef<'_>> + '_ {
        self.range(0, self.len())
    }

    /// Number of leading entries for which `pred` holds (monotone: true..false).
    fn partition_point(&self, pred: impl Fn(EntryRef<'_>) -> bool) -> usize {
        match &self.repr {
            Repr::Listpack(p) => p.walk().take_while(|at| pred(at.entry)).count(),
            Repr::Skiplist(t) => t.seq.partition_point(|e| pred(EntryRef::of(e))),
        }
    }

    /// Rank interval `[start, end)` of scores within `min..max`.
    pub fn score_range(&self, min: &ScoreBound, max: &ScoreBound) -> (usize, usize) {
        let start = self.partition_point(|e| !min.admits_from_below(e.score));
        let end = self.partition_point(|e| max.admits_from_above(e.score));
        (start, end.max(start))
    }

    /// Rank interval `[start, end)` of members within `min..max` (meaningful when all scores
    /// are equal, as Redis documents).
    pub fn lex_range(&self, min: &LexBound, max: &LexBound) -> (usize, usize) {
        self.lex_range_dir(min, max, false)
    }

    /// [`Self::lex_range`] as the REV forms find it (the same unless scores differ).
    pub fn lex_range_dir(&self, min: &LexBound, max: &LexBound, rev: bool) -> (usize, usize) {
        if let Repr::Listpack(p) = &self.repr {
            return p.lex_range(min, max, rev);
        }
        let start = self.partition_point(|e| !min.gte_min(e.member));
        let end = self.partition_point(|e| max.lte_max(e.member));
        (start, end.max(start))
    }

    /// Removes ranks `start..end` (ZREMRANGEBY*, ZPOPMIN); returns the removed entries.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<Entry> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        match &mut self.repr {
            Repr::Listpack(p) => {
                let picked: Vec<PackedAt<'_>> = p.walk().skip(start).take(end - start).collect();
                let span = picked[0].start..picked[picked.len() - 1].end;
                let removed: Vec<Entry> = picked.iter().map(|at| at.entry.to_entry()).collect();
                p.buf.drain(span);
                self.packed_len -= removed.len();
                removed
            }
            Repr::Skiplist(t) => {
                let removed = t.seq.remove_range(start, end);
                for e in &removed {
                    t.dict.remove(&e.member);
                }
                t.data_bytes -= removed.iter().map(|e| e.member.len()).sum::<usize>();
                removed
            }
        }
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
    pub fn random_entries<R: Rng + ?Sized>(&self, rng: &mut R, count: i64) -> Vec<EntryRef<'_>> {
        let picks = sample_indices(rng, self.len(), count);
        match &self.repr {
            Repr::Listpack(p) => {
                let all = p.refs(0, self.packed_len);
                picks.into_iter().filter_map(|i| all.get(i).copied()).collect()
            }
            Repr::Skiplist(t) => picks.into_iter().filter_map(|i| t.seq.get(i)).map(EntryRef::of).collect(),
        }
    }

    /// ZSCAN step: listpacks return everything with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(EntryRef<'_>)) -> u64 {
        match &self.repr {
            Repr::Listpack(p) => {
                p.walk().for_each(|at| visit(at.entry));
                0
            }
            Repr::Skiplist(t) => t.dict.scan(cursor, count, |m, s| visit(EntryRef { score: *s, member: m, shared: Some(m) })),
        }
    }

    pub fn memory_usage(&self) -> usize {
        match &self.repr {
            Repr::Listpack(p) => p.buf.capacity() + 16,
            Repr::Skiplist(t) => t.data_bytes + t.seq.len() * 96,
        }
    }

    /// The member byte count `memory_usage` relies on (tracked in `skiplist`).
    #[cfg(test)]
    fn tracked_member_bytes(&self) -> usize {
        match &self.repr {
            Repr::Listpack(_) => self.iter().map(|e| e.member.len()).sum(),
            Repr::Skiplist(t) => t.data_bytes,
        }
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
    fn ref_members<'a>(it: impl Iterator<Item = EntryRef<'a>>) -> Vec<String> {
        it.map(|e| String::from_utf8_lossy(e.member).into_owned()).collect()
    }

    #[test]
    fn order_and_rank() {
        let lim = EncodingLimits::default();
        let mut z = ZSetValue::new();
        assert_eq!(z.add(b("b"), 1.0, &lim), AddOutcome::Added);
        assert_eq!(z.add(b("a"), 1.0, &lim), AddOutcome::Added);
        assert_eq!(z.add(b("c"), 0.5, &lim), AddOutcome::Added);
        assert_eq!(z.add(b("c"), 0.5, &lim), AddOutcome::Unchanged);
        assert_eq!(ref_members(z.iter()), ["c", "a", "b"]);
        assert_eq!(z.rank(b"a", false), Some(1));
        assert_eq!(z.rank(b"a", true), Some(1));
        assert_eq!(z.rank(b"c", true), Some(2));
        assert_eq!(z.add(b("c"), 2.0, &lim), AddOutcome::Updated);
        assert_eq!(ref_members(z.iter()), ["a", "b", "c"]);
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
        assert_eq!(ref_members(z.iter()), ["a", "b"]);
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
        assert_eq!(z.tracked_member_bytes(), sorted.iter().map(|(_, m)| m.len()).sum::<usize>());
        let got: Vec<(f64, String)> = z.iter().map(|e| (e.score, String::from_utf8_lossy(e.member).into_owned())).collect();
        assert_eq!(got, sorted);
        for (i, (s, m)) in sorted.iter().enumerate().step_by(7) {
            assert_eq!(z.rank(m.as_bytes(), false), Some(i));
            assert_eq!(z.get(i).unwrap().score, *s);
        }
        // iter_range at chunk boundaries and in reverse
        for (a, bnd) in [(0, sorted.len()), (1, 200), (127, 129), (sorted.len() - 3, sorted.len() + 5)] {
            let got = ref_members(z.range(a, bnd));
            let want: Vec<String> = sorted[a.min(sorted.len())..bnd.min(sorted.len())].iter().map(|x| x.1.clone()).collect();
            assert_eq!(got, want);
            let mut rev = ref_members(z.range(a, bnd).rev());
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

    /// Both encodings answer every query alike under random adds, updates, removes and range
    /// removals (the listpack kept packed by a high entry limit, the other converted at once).
    #[test]
    fn listpack_and_skiplist_agree() {
        use rand::{Rng, SeedableRng};
        let packed_limits = EncodingLimits { zset_max_listpack_entries: 1 << 20, zset_max_listpack_value: 1 << 20, ..Default::default() };
        let table_limits = EncodingLimits { zset_max_listpack_entries: 0, ..Default::default() };
        for seed in 0..20 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (mut packed, mut table) = (ZSetValue::new(), ZSetValue::new());
            for _ in 0..400 {
                let m = Bytes::from(format!("m{}", rng.gen_range(0..60)).repeat(rng.gen_range(1..4)));
                // Even seeds: one score for all, where lex ranges are meaningful.
                let s = if seed % 2 == 0 { 1.0 } else { [0.0, 1.0, -2.5, 3.0, f64::INFINITY, f64::NEG_INFINITY][rng.gen_range(0..6)] };
                match rng.gen_range(0..10) {
                    0..=5 => assert_eq!(packed.add(m.clone(), s, &packed_limits), table.add(m, s, &table_limits)),
                    6 | 7 => assert_eq!(packed.remove(&m), table.remove(&m)),
                    _ => {
                        let a = rng.gen_range(0..=packed.len());
                        let b = a + rng.gen_range(0..4);
                        assert_eq!(packed.remove_range(a, b), table.remove_range(a, b));
                    }
                }
                if !table.is_empty() {
                    assert_eq!((packed.encoding(), table.encoding()), ("listpack", "skiplist"));
                }
                let all = |z: &ZSetValue| z.iter().map(|e| e.to_entry()).collect::<Vec<_>>();
                assert_eq!(all(&packed), all(&table), "seed {seed}");
                assert_eq!(packed.len(), table.len());
                assert_eq!(packed.tracked_member_bytes(), table.tracked_member_bytes());
                let n = packed.len();
                let (a, b) = (rng.gen_range(0..=n), rng.gen_range(0..=n + 2));
                let rev = |z: &ZSetValue| z.range(a, b).rev().map(|e| e.to_entry()).collect::<Vec<_>>();
                assert_eq!(rev(&packed), rev(&table));
                assert_eq!(packed.get(a).map(|e| e.to_entry()), table.get(a).map(|e| e.to_entry()));
                for member in ["m1", "m7m7", "m59", "zz"] {
                    assert_eq!(packed.rank(member.as_bytes(), false), table.rank(member.as_bytes(), false));
                    assert_eq!(packed.rank(member.as_bytes(), true), table.rank(member.as_bytes(), true));
                    assert_eq!(packed.score(member.as_bytes()), table.score(member.as_bytes()));
                }
                let (lo, hi) = (ScoreBound { value: -2.5, exclusive: true }, ScoreBound { value: 3.0, exclusive: false });
                assert_eq!(packed.score_range(&lo, &hi), table.score_range(&lo, &hi));
                if seed % 2 == 0 {
                    let (lo, hi) = (LexBound::Inclusive(Bytes::from_static(b"m2")), LexBound::Exclusive(Bytes::from_static(b"m5")));
                    // an empty interval may sit anywhere
                    let norm = |(a, b): (usize, usize)| if a < b { (a, b) } else { (0, 0) };
                    assert_eq!(norm(packed.lex_range(&lo, &hi)), norm(table.lex_range(&lo, &hi)));
                    assert_eq!(norm(packed.lex_range(&hi, &lo)), norm(table.lex_range(&hi, &lo)));
                    assert_eq!(norm(packed.lex_range_dir(&lo, &hi, true)), norm(table.lex_range_dir(&lo, &hi, true)));
                }
            }
            let mut seen = Vec::new();
            assert_eq!(packed.scan(0, 10, |e| seen.push(e.to_entry())), 0, "a listpack scans in one step");
            assert_eq!(seen, packed.iter().map(|e| e.to_entry()).collect::<Vec<_>>());
            let popped = (packed.pop(3, true), table.pop(3, true));
            assert_eq!(popped.0, popped.1);
        }
    }

    #[test]
    fn listpack_converts_on_the_entry_and_length_limits() {
        let lim = EncodingLimits { zset_max_listpack_entries: 3, zset_max_listpack_value: 4, ..Default::default() };
        let mut z = ZSetValue::new();
        for (m, s) in [("c", 3.0), ("a", 1.0), ("b", 2.0)] {
            z.add(b(m), s, &lim);
        }
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(z.add(b("b"), 9.0, &lim), AddOutcome::Updated, "an update never converts");
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(ref_members(z.iter()), ["a", "c", "b"]);
        z.add(b("d"), 0.0, &lim);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(ref_members(z.iter()), ["d", "a", "c", "b"]);
        let mut long = ZSetValue::new();
        long.add(b("abcd"), 1.0, &lim);
        assert_eq!(long.encoding(), "listpack");
        long.add(b("abcde"), 1.0, &lim);
        assert_eq!(long.encoding(), "skiplist");
        assert_eq!(long.score(b"abcd"), Some(1.0));
        let built = ZSetValue::from_pairs(vec![(b("y"), 2.0), (b("x"), -0.0), (b("w"), 2.0)], &lim);
        assert_eq!(built.encoding(), "listpack");
        assert_eq!(built.iter().map(|e| (e.member.to_vec(), e.score.to_bits())).collect::<Vec<_>>(), vec![(b"x".to_vec(), 0f64.to_bits()), (b"w".to_vec(), 2f64.to_bits()), (b"y".to_vec(), 2f64.to_bits())]);
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
