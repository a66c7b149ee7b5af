//! Hash values: `listpack` (field/value pairs packed in one buffer in insertion order,
//! linear lookup, exactly Redis's small-hash order for HGETALL/HKEYS) while within
//! `hash-max-listpack-entries` / `hash-max-listpack-value`, else `hashtable` ([`Dict`]).
//!
//! The packed form is `[len][field][len][value]...` with varint lengths: a one-field hash
//! is one small allocation, as in Redis, instead of a vector of pairs of buffers.

use super::dict::Dict;
use super::packed::{get_len, put_len};
use super::{sample_indices, EncodingLimits};
use bytes::Bytes;
use rand::Rng;

#[derive(Clone, Debug)]
enum Repr {
    Listpack(Packed),
    /// Boxed: most hashes are small, and the value itself stays 40 bytes instead of 72.
    Table(Box<Dict<Bytes>>),
}

/// Field/value pairs in one buffer: `varint(len) bytes` twice per pair. (The pair count
/// lives in [`HashValue`], where it packs with `data_bytes` into 40 bytes in all.)
#[derive(Clone, Debug, Default)]
struct Packed {
    buf: Vec<u8>,
}

/// One pair: where it starts and ends in the buffer, and its two byte ranges.
struct PairAt {
    start: usize,
    end: usize,
    field: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

impl Packed {
    fn pairs(&self) -> impl Iterator<Item = PairAt> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= self.buf.len() {
                return None;
            }
            let start = at;
            let (flen, w) = get_len(&self.buf, at);
            let field = at + w..at + w + flen;
            at = field.end;
            let (vlen, w) = get_len(&self.buf, at);
            let value = at + w..at + w + vlen;
            at = value.end;
            Some(PairAt { start, end: at, field, value })
        })
    }

    fn find(&self, field: &[u8]) -> Option<PairAt> {
        self.pairs().find(|p| &self.buf[p.field.clone()] == field)
    }

    fn encode(field: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(field.len() + value.len() + 4);
        put_len(&mut out, field.len());
        out.extend_from_slice(field);
        put_len(&mut out, value.len());
        out.extend_from_slice(value);
        out
    }

    fn push(&mut self, field: &[u8], value: &[u8], count: usize) {
        let pair = Self::encode(field, value);
        super::packed::reserve(&mut self.buf, count, pair.len());
        self.buf.extend_from_slice(&pair);
    }
}

#[derive(Clone, Debug)]
pub struct HashValue {
    repr: Repr,
    /// Sum of field and value lengths: keeps `memory_usage` O(1).
    data_bytes: usize,
    /// Number of pairs in the listpack.
    packed_len: u32,
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue { repr: Repr::Listpack(Packed::default()), data_bytes: 0, packed_len: 0 }
    }
}

impl HashValue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// The hash table behind a `hashtable` hash (DEBUG HTSTATS-KEY): (table size, elements).
    pub fn table_stats(&self) -> Option<(usize, usize)> {
        match &self.repr {
            Repr::Listpack(_) => None,
            Repr::Table(d) => Some((d.table_capacity(), d.len())),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(_) => self.packed_len as usize,
            Repr::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Listpack(p) => p.find(field).map(|at| &p.buf[at.value]),
            Repr::Table(d) => d.get(field).map(|v| v.as_ref()),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    fn convert_to_table(&mut self) {
        if let Repr::Listpack(p) = &self.repr {
            let mut d = Dict::with_capacity(self.packed_len as usize + 1);
            for at in p.pairs() {
                d.insert(Bytes::copy_from_slice(&p.buf[at.field]), Bytes::copy_from_slice(&p.buf[at.value]));
            }
            self.repr = Repr::Table(Box::new(d));
            self.packed_len = 0;
        }
    }

    /// Converts to `hashtable` when a field or value of these lengths would not fit a listpack
    /// (Redis checks every argument of HSET/HSETNX/HINCRBY* before writing).
    pub fn prepare_for_lengths(&mut self, field_len: usize, value_len: usize, limits: &EncodingLimits) {
        if matches!(self.repr, Repr::Listpack(_))
            && (field_len > limits.hash_max_listpack_value || value_len > limits.hash_max_listpack_value)
        {
            self.convert_to_table();
        }
    }

    /// HSET of one field; true when the field is new.
    pub fn set(&mut self, field: Bytes, value: Bytes, limits: &EncodingLimits) -> bool {
        self.prepare_for_lengths(field.len(), value.len(), limits);
        let added = field.len() + value.len();
        let is_new = match &mut self.repr {
            Repr::Listpack(p) => match p.find(&field) {
                Some(at) => {
                    self.data_bytes -= at.field.len() + at.value.len();
                    if at.value.len() == value.len() {
                        p.buf[at.value].copy_from_slice(&value);
                    } else {
                        // the field keeps its place, as in Redis's listpack
                        p.buf.splice(at.start..at.end, Packed::encode(&field, &value));
                    }
                    false
                }
                None => {
                    p.push(&field, &value, self.packed_len as usize);
                    self.packed_len += 1;
                    true
                }
            },
            Repr::Table(d) => match d.insert(super::detach(field.clone()), super::detach(value)) {
                Some(old) => {
                    self.data_bytes -= field.len() + old.len();
                    false
                }
                None => true,
            },
        };
        self.data_bytes += added;
        if is_new && matches!(self.repr, Repr::Listpack(_)) && self.len() > limits.hash_max_listpack_entries {
            self.convert_to_table();
        }
        is_new
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = match &mut self.repr {
            Repr::Listpack(p) => p.find(field).map(|at| {
                let n = at.field.len() + at.value.len();
                p.buf.drain(at.start..at.end);
                self.packed_len -= 1;
                n
            }),
            Repr::Table(d) => d.remove(field).map(|(f, v)| f.len() + v.len()),
        };
        match removed {
            Some(n) => {
                self.data_bytes -= n;
                true
            }
            None => false,
        }
    }

    /// Every pair, in the encoding's order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match &self.repr {
            Repr::Listpack(p) => Box::new(p.pairs().map(move |at| (&p.buf[at.field], &p.buf[at.value]))),
            Repr::Table(d) => Box::new((0..d.len()).map(move |i| {
                let (f, v) = d.entry_at(i);
                (f.as_ref(), v.as_ref())
            })),
        }
    }

    /// HRANDFIELD key count: indexes sampled with Redis's count semantics.
    pub fn random_entries<R: Rng + ?Sized>(&self, rng: &mut R, count: i64) -> Vec<(&[u8], &[u8])> {
        let all: Vec<(&[u8], &[u8])> = match &self.repr {
            Repr::Listpack(_) => self.iter().collect(),
            Repr::Table(_) => Vec::new(),
        };
        sample_indices(rng, self.len(), count)
            .into_iter()
            .map(|i| match &self.repr {
                Repr::Listpack(_) => all[i],
                Repr::Table(d) => {
                    let (f, v) = d.entry_at(i);
                    (f.as_ref(), v.as_ref())
                }
            })
            .collect()
    }

    /// HSCAN step: listpacks return everything with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Listpack(_) => {
                self.iter().for_each(|(f, v)| visit(f, v));
                0
            }
            Repr::Table(d) => d.scan(cursor, count, |f, v| visit(f, v)),
        }
    }

    /// Approximate heap bytes (O(1)).
    pub fn memory_usage(&self) -> usize {
        let per_entry = match self.repr {
            Repr::Listpack(_) => 2,
            Repr::Table(_) => 64 + 8,
        };
        self.data_bytes + self.len() * per_entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let lim = EncodingLimits::default();
        let mut h = HashValue::new();
        assert!(h.set(b("b"), b("1"), &lim));
        assert!(h.set(b("a"), b("2"), &lim));
        assert!(!h.set(b("b"), b("3"), &lim));
        let got: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(got, vec![(b"b".to_vec(), b"3".to_vec()), (b"a".to_vec(), b"2".to_vec())]);
        assert_eq!(h.encoding(), "listpack");
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn converts_on_long_value_or_many_entries() {
        let lim = EncodingLimits { hash_max_listpack_entries: 3, ..Default::default() };
        let mut h = HashValue::new();
        h.set(b("f"), Bytes::from(vec![b'x'; 64]), &lim);
        assert_eq!(h.encoding(), "listpack");
        h.set(b("g"), Bytes::from(vec![b'x'; 65]), &lim);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = HashValue::new();
        for i in 0..3 {
            h.set(b(&i.to_string()), b("v"), &lim);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b("3"), b("v"), &lim);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"0"), Some(&b"v"[..]));
        assert_eq!(h.len(), 4);
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_map(ops in proptest::collection::vec((proptest::bool::ANY, 0u8..30, 0u16..3000), 0..300)) {
            let lim = EncodingLimits { hash_max_listpack_entries: 8, ..Default::default() };
            let mut h = HashValue::new();
            let mut model = std::collections::BTreeMap::new();
            // insertion order of the listpack, as Redis keeps it
            let mut order: Vec<String> = Vec::new();
            for (set, f, v) in ops {
                let f = format!("f{f}");
                // values of 1 to 4 digits (and some long ones): in-place and resized updates
                let v = if v % 7 == 0 { "x".repeat(v as usize / 30) } else { v.to_string() };
                if set {
                    let new = model.insert(f.clone(), v.clone()).is_none();
                    if new { order.push(f.clone()); }
                    proptest::prop_assert_eq!(h.set(Bytes::from(f.clone()), Bytes::from(v), &lim), new);
                } else {
                    order.retain(|o| *o != f);
                    proptest::prop_assert_eq!(h.remove(f.as_bytes()), model.remove(&f).is_some());
                }
                if h.encoding() == "listpack" {
                    let fields: Vec<String> = h.iter().map(|(f, _)| String::from_utf8(f.to_vec()).unwrap()).collect();
                    proptest::prop_assert_eq!(&fields, &order);
                }
            }
            proptest::prop_assert_eq!(h.len(), model.len());
            proptest::prop_assert_eq!(h.data_bytes, model.iter().map(|(f, v)| f.len() + v.len()).sum::<usize>());
            for (f, v) in &model { proptest::prop_assert_eq!(h.get(f.as_bytes()).map(|b| b.to_vec()), Some(v.clone().into_bytes())); }
        }
    }
}
