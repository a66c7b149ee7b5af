//! The stream type (Redis 7.0 semantics): entries keyed by `ms-seq` IDs, consumer groups
//! with their pending entries lists (PEL) and consumers.
//!
//! Entries are kept in nodes shaped as Redis's listpack nodes of a rax (a master entry's
//! fields, up to `stream-node-max-entries` entries or `stream-node-max-bytes` bytes, deleted
//! entries kept as tombstones until the node empties). Approximate trimming (`~`) removes
//! whole nodes only, so the node boundaries must fall where Redis puts them for XTRIM and
//! XADD to delete the same entries; the encoded size of each entry is computed as a
//! listpack would store it for that reason.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use super::packed::lp_backlen_size;

/// A stream entry ID: milliseconds and sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    pub fn is_zero(&self) -> bool {
        self.ms == 0 && self.seq == 0
    }

    /// The next ID (None past the maximum), as `streamIncrID`.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (None before 0-0), as `streamDecrID`.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    /// The 128-bit big-endian form Redis uses as rax key (and in RDB files).
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn from_be_bytes(b: &[u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq))
    }

    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses an ID as `streamGenericParseIDOrReply`: `-` / `+` (unless `strict`), `ms`,
/// `ms-seq`, and `ms-*` when `allow_auto_seq`. The bool is false for `ms-*` (the sequence
/// is to be generated). A missing sequence takes `missing_seq`.
pub fn parse_id(s: &[u8], missing_seq: u64, strict: bool, allow_auto_seq: bool) -> Option<(StreamId, bool)> {
    if s.len() > 127 {
        return None;
    }
    // Redis copies the argument into a C buffer: a NUL ends it.
    let s = match s.iter().position(|&c| c == 0) {
        Some(p) => &s[..p],
        None => s,
    };
    if s == b"-" || s == b"+" {
        if strict {
            return None;
        }
        return Some((if s == b"-" { StreamId::MIN } else { StreamId::MAX }, true));
    }
    let (ms_part, seq_part) = match s.iter().position(|&c| c == b'-') {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    let ms = parse_u64(ms_part)?;
    match seq_part {
        None => Some((StreamId::new(ms, missing_seq), true)),
        Some(b"*") if allow_auto_seq => Some((StreamId::new(ms, 0), false)),
        Some(seq) => Some((StreamId::new(ms, parse_u64(seq)?), true)),
    }
}

/// Redis's `string2ull`: `string2ll` (negative refused), else C's `strtoull` of the whole
/// string (leading spaces, a sign, leading zeros; a '-' wraps around as in C).
fn parse_u64(s: &[u8]) -> Option<u64> {
    if let Some(v) = super::parse_canonical_i64(s) {
        return u64::try_from(v).ok();
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits_from = i;
    let mut v: u64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(s[i] - b'0'))?;
        i += 1;
    }
    if i == digits_from || i != s.len() {
        return None;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

// ---- listpack sizes (to place node boundaries where Redis does) ----

fn lp_int_size(v: i64) -> usize {
    let enc = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (-32768..=32767).contains(&v) {
        3
    } else if (-8388608..=8388607).contains(&v) {
        4
    } else if (-2147483648..=2147483647).contains(&v) {
        5
    } else {
        9
    };
    enc + lp_backlen_size(enc)
}

fn lp_str_size(s: &[u8]) -> usize {
    if let Some(i) = super::parse_canonical_i64(s) {
        return lp_int_size(i);
    }
    let hdr = if s.len() < 64 {
        1
    } else if s.len() < 4096 {
        2
    } else {
        5
    };
    let enc = hdr + s.len();
    enc + lp_backlen_size(enc)
}

/// Entry flag bits as stored in a listpack node.
pub const FLAG_DELETED: i64 = 1;
pub const FLAG_SAMEFIELDS: i64 = 2;

/// One entry of a node: its fields and values alternate in `fields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: StreamId,
    pub fields: Vec<Bytes>,
    pub deleted: bool,
    /// Stored without field names (they are the node's master fields).
    pub same_fields: bool,
}

impl Entry {
    pub fn flags(&self) -> i64 {
        (if self.deleted { FLAG_DELETED } else { 0 }) | (if self.same_fields { FLAG_SAMEFIELDS } else { 0 })
    }

    pub fn num_fields(&self) -> usize {
        self.fields.len() / 2
    }
}

/// A listpack node of the rax: master entry fields and entries in ID order.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub master_id: StreamId,
    pub master_fields: Vec<Bytes>,
    pub entries: Vec<Entry>,
    /// Entries not deleted.
    pub live: u64,
    /// Tombstones.
    pub deleted: u64,
    body_bytes: usize,
}

impl Node {
    /// The node's listpack size as Redis's `lpBytes`.
    pub fn lp_bytes(&self) -> usize {
        let master: usize = self.master_fields.iter().map(|f| lp_str_size(f)).sum();
        6 + 1 + lp_int_size(self.live as i64) + lp_int_size(self.deleted as i64) + lp_int_size(self.master_fields.len() as i64) + master + lp_int_size(0) + self.body_bytes
    }

    fn find(&self, id: StreamId) -> Option<usize> {
        self.entries.binary_search_by(|e| e.id.cmp(&id)).ok()
    }

    pub fn last_id(&self) -> StreamId {
        self.entries.last().map_or(self.master_id, |e| e.id)
    }
}

/// A pending entry of a consumer group.
#[derive(Clone, Debug, PartialEq)]
pub struct Nack {
    pub consumer: Bytes,
    pub delivery_time: i64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Consumer {
    pub seen_time: i64,
    pub pel: BTreeSet<StreamId>,
}

/// `entries_read` of a group whose read counter is not known.
pub const ENTRIES_READ_INVALID: i64 = -1;

#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerGroup {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl ConsumerGroup {
    pub fn new(last_id: StreamId, entries_read: i64) -> Self {
        ConsumerGroup { last_id, entries_read, pel: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// Removes a pending entry from the group and its consumer.
    pub fn remove_pending(&mut self, id: StreamId) -> Option<Nack> {
        let nack = self.pel.remove(&id)?;
        if let Some(c) = self.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
        Some(nack)
    }

    /// Gives pending entry `id` to `consumer` (which must exist), creating it if absent.
    pub fn assign_pending(&mut self, id: StreamId, consumer: &Bytes, now: i64) -> &mut Nack {
        if let Some(old) = self.pel.get(&id).map(|n| n.consumer.clone()) {
            if &old != consumer {
                if let Some(c) = self.consumers.get_mut(&old) {
                    c.pel.remove(&id);
                }
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        let nack = self.pel.entry(id).or_insert_with(|| Nack { consumer: consumer.clone(), delivery_time: now, delivery_count: 1 });
        nack.consumer = consumer.clone();
        nack
    }
}

/// How XADD / XTRIM trim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimStrategy {
    None,
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Copy, Debug)]
pub struct TrimArgs {
    pub strategy: TrimStrategy,
    /// `~`: whole nodes only.
    pub approx: bool,
    /// Most entries to delete (0: no limit).
    pub limit: u64,
}

/// The node size limits of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub max_bytes: usize,
    pub max_entries: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits { max_bytes: 4096, max_entries: 100 }
    }
}

/// Largest listpack a stream node may be (Redis's STREAM_LISTPACK_MAX_SIZE).
pub const LISTPACK_MAX_SIZE: usize = 1 << 30;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamValue {
    nodes: BTreeMap<StreamId, Node>,
    length: u64,
    pub last_id: StreamId,
    /// `recorded-first-entry-id`.
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Bytes, ConsumerGroup>,
}

/// Why an append failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The ID is not greater than the last one.
    IdTooSmall,
    /// Field and value bytes over the listpack maximum.
    TooLarge,
}

impl StreamValue {
    pub fn new() -> Self {
        StreamValue::default()
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Appends an entry (fields and values alternate). `id`: explicit ID and whether its
    /// sequence was given; None generates one from `now_ms`.
    pub fn append(&mut self, fields: &[Bytes], id: Option<(StreamId, bool)>, now_ms: u64, limits: NodeLimits) -> Result<StreamId, AppendError> {
        let new_id = match id {
            Some((id, true)) => id,
            Some((id, false)) => {
                if self.last_id.ms == id.ms {
                    if self.last_id.seq == u64::MAX {
                        return Err(AppendError::IdTooSmall);
                    }
                    StreamId::new(id.ms, self.last_id.seq + 1)
                } else {
                    id
                }
            }
            None => {
                if now_ms > self.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    self.last_id.incr().unwrap_or(self.last_id)
                }
            }
        };
        if new_id <= self.last_id {
            return Err(AppendError::IdTooSmall);
        }
        let total: usize = fields.iter().map(|f| f.len()).sum();
        if total > LISTPACK_MAX_SIZE {
            return Err(AppendError::TooLarge);
        }
        self.push_entry(new_id, fields.to_vec(), false, limits);
        self.length += 1;
        self.entries_added = self.entries_added.wrapping_add(1);
        self.last_id = new_id;
        if self.length == 1 {
            self.first_id = new_id;
        }
        Ok(new_id)
    }

    /// Adds an entry at the tail, opening a node as Redis would.
    fn push_entry(&mut self, id: StreamId, fields: Vec<Bytes>, deleted: bool, limits: NodeLimits) {
        let total: usize = fields.iter().map(|f| f.len()).sum();
        let max_bytes = if limits.max_bytes == 0 || limits.max_bytes > LISTPACK_MAX_SIZE { LISTPACK_MAX_SIZE } else { limits.max_bytes };
        let need_new = match self.nodes.values().next_back() {
            None => true,
            Some(tail) => tail.lp_bytes() + total >= max_bytes || (limits.max_entries > 0 && tail.live + tail.deleted >= limits.max_entries),
        };
        if need_new {
            let master_fields: Vec<Bytes> = fields.iter().step_by(2).cloned().collect();
            self.nodes.insert(id, Node { master_id: id, master_fields, entries: Vec::new(), live: 0, deleted: 0, body_bytes: 0 });
        }
        let tail = self.nodes.values_mut().next_back().expect("a tail node");
        tail.push(id, fields, deleted);
    }

    /// The live entry with this ID.
    pub fn get(&self, id: StreamId) -> Option<&Entry> {
        let (_, node) = self.nodes.range(..=id).next_back()?;
        let e = &node.entries[node.find(id)?];
        (!e.deleted).then_some(e)
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// Live entries from `start` to `end` inclusive (reversed: from `end` down), at most
    /// `count` (0: all).
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, count: usize) -> Vec<&Entry> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        let first_key = self.nodes.range(..=start).next_back().map_or(start, |(k, _)| *k);
        if !rev {
            'outer: for node in self.nodes.range(first_key..=end).map(|(_, n)| n) {
                for e in &node.entries {
                    if e.id < start || e.deleted {
                        continue;
                    }
                    if e.id > end {
                        break 'outer;
                    }
                    out.push(e);
                    if count != 0 && out.len() >= count {
                        break 'outer;
                    }
                }
            }
        } else {
            'outer: for node in self.nodes.range(first_key..=end).rev().map(|(_, n)| n) {
                for e in node.entries.iter().rev() {
                    if e.id > end || e.deleted {
                        continue;
                    }
                    if e.id < start {
                        break 'outer;
                    }
                    out.push(e);
                    if count != 0 && out.len() >= count {
                        break 'outer;
                    }
                }
            }
        }
        out
    }

    /// The last live entry's ID (0-0 when empty), as `streamLastValidID`.
    pub fn last_valid_id(&self) -> StreamId {
        self.range(StreamId::MIN, StreamId::MAX, true, 1).first().map_or(StreamId::MIN, |e| e.id)
    }

    /// The first live entry's ID, or MAX when empty (`streamGetEdgeID(first, skip)`).
    fn first_live_id(&self) -> StreamId {
        self.range(StreamId::MIN, StreamId::MAX, false, 1).first().map_or(StreamId::MAX, |e| e.id)
    }

    /// The first entry's ID, tombstones included (what a `MINID ~` trim propagates).
    pub fn first_id_with_tombstones(&self) -> StreamId {
        self.nodes.values().next().and_then(|n| n.entries.first()).map_or(StreamId::MAX, |e| e.id)
    }

    /// XDEL of one ID: true if a live entry was deleted.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&key, node)) = self.nodes.range_mut(..=id).next_back() else {
            return false;
        };
        let Some(i) = node.find(id) else {
            return false;
        };
        if node.entries[i].deleted {
            return false;
        }
        if node.live == 1 {
            self.nodes.remove(&key);
        } else {
            node.entries[i].deleted = true;
            node.live -= 1;
            node.deleted += 1;
        }
        self.length -= 1;
        true
    }

    /// XDEL bookkeeping after deleting `ids` (those that were deleted).
    pub fn after_delete(&mut self, deleted_ids: &[StreamId]) {
        if deleted_ids.is_empty() {
            return;
        }
        let mut first_gone = false;
        for &id in deleted_ids {
            if id == self.first_id {
                first_gone = true;
            }
            if id > self.max_deleted_id {
                self.max_deleted_id = id;
            }
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if first_gone {
            self.first_id = self.first_live_id();
        }
    }

    /// `streamTrim`: returns how many entries were removed.
    pub fn trim(&mut self, args: &TrimArgs) -> u64 {
        if args.strategy == TrimStrategy::None {
            return 0;
        }
        let mut deleted: u64 = 0;
        loop {
            if let TrimStrategy::MaxLen(maxlen) = args.strategy {
                if self.length <= maxlen {
                    break;
                }
            }
            let Some((&key, node)) = self.nodes.iter_mut().next() else {
                break;
            };
            let entries = node.live;
            if args.limit != 0 && deleted + entries > args.limit {
                break;
            }
            let remove_node = match args.strategy {
                TrimStrategy::MaxLen(maxlen) => self.length - entries >= maxlen,
                TrimStrategy::MinId(minid) => node.last_id() < minid,
                TrimStrategy::None => false,
            };
            if remove_node {
                self.nodes.remove(&key);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if args.approx {
                break;
            }
            let mut from_node = 0;
            for e in node.entries.iter_mut() {
                let stop = match args.strategy {
                    TrimStrategy::MaxLen(maxlen) => self.length <= maxlen,
                    TrimStrategy::MinId(minid) => e.id >= minid,
                    TrimStrategy::None => true,
                };
                if stop {
                    break;
                }
                if !e.deleted {
                    e.deleted = true;
                    from_node += 1;
                    self.length -= 1;
                }
            }
            node.live -= from_node;
            node.deleted += from_node;
            deleted += from_node;
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.first_live_id();
        }
        deleted
    }

    /// `streamRangeHasTombstones` from `start` (None: 0-0) to the end.
    fn range_has_tombstones(&self, start: Option<StreamId>) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start.unwrap_or(StreamId::MIN) <= self.max_deleted_id
    }

    /// `streamEstimateDistanceFromFirstEverEntry`: None when not obtainable.
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return Some(self.entries_added.wrapping_sub(self.length));
            }
            if id == self.first_id {
                return Some(self.entries_added.wrapping_sub(self.length).wrapping_add(1));
            }
        }
        None
    }

    /// A group's lag (None when it cannot be known), as `streamReplyWithCGLag`.
    pub fn group_lag(&self, g: &ConsumerGroup) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != ENTRIES_READ_INVALID && !self.range_has_tombstones(Some(g.last_id)) {
            return Some((self.entries_added as i64).wrapping_sub(g.entries_read));
        }
        self.estimate_distance(g.last_id).map(|read| (self.entries_added as i64).wrapping_sub(read as i64))
    }

    /// A group delivered `id` (greater than its last ID): advances its last ID and read
    /// counter as `streamReplyWithRange` does.
    pub fn advance_group(&mut self, group: &Bytes, id: StreamId) {
        let has_tomb = self.range_has_tombstones(Some(id));
        let estimate = self.estimate_distance(id);
        let entries_added = self.entries_added;
        let Some(g) = self.groups.get_mut(group) else { return };
        if id <= g.last_id {
            return;
        }
        if g.entries_read != ENTRIES_READ_INVALID && !has_tomb {
            g.entries_read = g.entries_read.wrapping_add(1);
        } else if entries_added != 0 {
            g.entries_read = estimate.map_or(ENTRIES_READ_INVALID, |v| v as i64);
        }
        g.last_id = id;
    }

    /// Number of nodes of Redis's rax holding the node keys (XINFO `radix-tree-nodes`):
    /// a compressed radix tree over 16-byte keys.
    pub fn rax_node_count(&self) -> u64 {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|k| k.to_be_bytes()).collect();
        if keys.is_empty() {
            return 1;
        }
        rax_nodes(&keys, 0)
    }

    // ---- building from a saved form (RDB) ----

    /// Adds a node as loaded (entries in order, tombstones included).
    pub fn load_node(&mut self, master_id: StreamId, master_fields: Vec<Bytes>, entries: Vec<(StreamId, Vec<Bytes>, bool)>) {
        let mut node = Node { master_id, master_fields, entries: Vec::new(), live: 0, deleted: 0, body_bytes: 0 };
        for (id, fields, deleted) in entries {
            node.push(id, fields, deleted);
        }
        self.length += node.live;
        if node.live > 0 || !node.entries.is_empty() {
            self.nodes.insert(master_id, node);
        }
    }

    /// Approximate heap bytes (MEMORY USAGE, maxmemory).
    /// Redis's free effort of a stream: its nodes, plus every consumer group counted as one
    /// allocation and the first group's PEL size (lazyfreeGetFreeEffort).
    pub fn free_effort(&self) -> usize {
        let groups = self.groups.len();
        let first_pel = self.groups.values().next().map_or(0, |g| g.pel.len());
        self.nodes.len() + groups * (1 + first_pel)
    }

    pub fn memory_usage(&self) -> usize {
        let mut total = 128;
        for n in self.nodes.values() {
            total += n.lp_bytes() + 64;
        }
        for (name, g) in &self.groups {
            total += 96 + name.len() + g.pel.len() * 48;
            for (c, _) in &g.consumers {
                total += 64 + c.len();
            }
        }
        total
    }
}

impl Node {
    fn push(&mut self, id: StreamId, fields: Vec<Bytes>, deleted: bool) {
        let nf = fields.len() / 2;
        let same = nf == self.master_fields.len() && fields.iter().step_by(2).zip(&self.master_fields).all(|(a, b)| a == b);
        let mut size = lp_int_size(0) // flags (0..3: one byte)
            + lp_int_size(id.ms.wrapping_sub(self.master_id.ms) as i64)
            + lp_int_size(id.seq.wrapping_sub(self.master_id.seq) as i64);
        let lp_count = if same {
            size += fields.iter().skip(1).step_by(2).map(|v| lp_str_size(v)).sum::<usize>();
            nf + 3
        } else {
            size += lp_int_size(nf as i64) + fields.iter().map(|v| lp_str_size(v)).sum::<usize>();
            2 * nf + 4
        };
        size += lp_int_size(lp_count as i64);
        self.body_bytes += size;
        if deleted {
            self.deleted += 1;
        } else {
            self.live += 1;
        }
        self.entries.push(Entry { id, fields, deleted, same_fields: same });
    }
}

/// Nodes of a compressed radix tree over `keys` (sorted, equal length) below depth `d`.
fn rax_nodes(keys: &[[u8; 16]], d: usize) -> u64 {
    if d == 16 {
        return 1;
    }
    // Common prefix from d.
    let first = &keys[0];
    let last = &keys[keys.len() - 1];
    let mut l = 0;
    while d + l < 16 && first[d + l] == last[d + l] {
        l += 1;
    }
    if l > 0 {
        return 1 + rax_nodes(keys, d + l);
    }
    let mut total = 1;
    let mut i = 0;
    while i < keys.len() {
        let b = keys[i][d];
        let mut j = i;
        while j < keys.len() && keys[j][d] == b {
            j += 1;
        }
        total += rax_nodes(&keys[i..j], d + 1);
        i = j;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv(pairs: &[(&str, &str)]) -> Vec<Bytes> {
        pairs.iter().flat_map(|(f, v)| [Bytes::from(f.to_string()), Bytes::from(v.to_string())]).collect()
    }

    #[test]
    fn ids_parse_as_redis() {
        assert_eq!(parse_id(b"1-2", 0, false, false), Some((StreamId::new(1, 2), true)));
        assert_eq!(parse_id(b"5", 7, false, false), Some((StreamId::new(5, 7), true)));
        assert_eq!(parse_id(b"-", 0, false, false), Some((StreamId::MIN, true)));
        assert_eq!(parse_id(b"+", 0, true, false), None);
        assert_eq!(parse_id(b"3-*", 0, true, true), Some((StreamId::new(3, 0), false)));
        assert_eq!(parse_id(b"3-*", 0, true, false), None);
        assert_eq!(parse_id(b" 01-+2", 0, false, false), Some((StreamId::new(1, 2), true)));
        for bad in [&b"x"[..], b"1-", b"-1", b"1-2-3", b"1 ", b"18446744073709551616"] {
            assert_eq!(parse_id(bad, 0, false, false), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn append_range_delete_trim() {
        let mut s = StreamValue::new();
        let l = NodeLimits { max_bytes: 4096, max_entries: 3 };
        for i in 1..=10u64 {
            s.append(&fv(&[("f", "v")]), Some((StreamId::new(i, 0), true)), 0, l).unwrap();
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.node_count(), 4);
        assert_eq!(s.append(&fv(&[("f", "v")]), Some((StreamId::new(10, 0), true)), 0, l), Err(AppendError::IdTooSmall));
        let r: Vec<u64> = s.range(StreamId::new(3, 0), StreamId::new(6, 0), false, 0).iter().map(|e| e.id.ms).collect();
        assert_eq!(r, vec![3, 4, 5, 6]);
        let r: Vec<u64> = s.range(StreamId::MIN, StreamId::MAX, true, 2).iter().map(|e| e.id.ms).collect();
        assert_eq!(r, vec![10, 9]);
        assert!(s.delete(StreamId::new(4, 0)));
        assert!(!s.delete(StreamId::new(4, 0)));
        assert_eq!(s.len(), 9);
        // Approximate: only the first whole node (1..3) can go for MAXLEN 5.
        let n = s.trim(&TrimArgs { strategy: TrimStrategy::MaxLen(5), approx: true, limit: 0 });
        assert_eq!(n, 3);
        let n = s.trim(&TrimArgs { strategy: TrimStrategy::MaxLen(5), approx: false, limit: 0 });
        assert_eq!(n, 1);
        assert_eq!(s.len(), 5);
        assert_eq!(s.first_id, StreamId::new(6, 0));
    }

    #[test]
    fn rax_nodes_counts() {
        let mut s = StreamValue::new();
        assert_eq!(s.rax_node_count(), 1);
        s.append(&fv(&[("a", "1")]), Some((StreamId::new(1, 0), true)), 0, NodeLimits::default()).unwrap();
        assert_eq!(s.rax_node_count(), 2);
    }
}
