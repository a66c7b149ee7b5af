//! Hash values: `listpack` (a `Vec` of field/value pairs in insertion order, linear lookup,
//! exactly Redis's small-hash order for HGETALL/HKEYS) while within
//! `hash-max-listpack-entries` / `hash-max-listpack-value`, else `hashtable` ([`Dict`]).

use super::dict::Dict;
use super::{sample_indices, EncodingLimits};
use bytes::Bytes;
use rand::Rng;

#[derive(Clone, Debug)]
pub enum HashValue {
    Listpack(Vec<(Bytes, Bytes)>),
    Table(Dict<Bytes>),
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue::Listpack(Vec::new())
    }
}

impl HashValue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            HashValue::Listpack(_) => "listpack",
            HashValue::Table(_) => "hashtable",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HashValue::Listpack(v) => v.len(),
            HashValue::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        match self {
            HashValue::Listpack(v) => v.iter().find(|(f, _)| f.as_ref() == field).map(|(_, val)| val),
            HashValue::Table(d) => d.get(field),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    fn convert_to_table(&mut self) {
        if let HashValue::Listpack(v) = self {
            let mut d = Dict::with_capacity(v.len() + 1);
            for (f, val) in v.drain(..) {
                d.insert(f, val);
            }
            *self = HashValue::Table(d);
        }
    }

    /// Converts to `hashtable` when a field or value of these lengths would not fit a listpack
    /// (Redis checks every argument of HSET/HSETNX/HINCRBY* before writing).
    pub fn prepare_for_lengths(&mut self, field_len: usize, value_len: usize, limits: &EncodingLimits) {
        if matches!(self, HashValue::Listpack(_))
            && (field_len > limits.hash_max_listpack_value || value_len > limits.hash_max_listpack_value)
        {
            self.convert_to_table();
        }
    }

    /// HSET of one field; true when the field is new.
    pub fn set(&mut self, field: Bytes, value: Bytes, limits: &EncodingLimits) -> bool {
        self.prepare_for_lengths(field.len(), value.len(), limits);
        match self {
            HashValue::Listpack(v) => {
                if let Some(slot) = v.iter_mut().find(|(f, _)| *f == field) {
                    slot.1 = value;
                    return false;
                }
                v.push((field, value));
                if v.len() > limits.hash_max_listpack_entries {
                    self.convert_to_table();
                }
                true
            }
            HashValue::Table(d) => d.insert(field, value).is_none(),
        }
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashValue::Listpack(v) => match v.iter().position(|(f, _)| f.as_ref() == field) {
                Some(i) => {
                    v.remove(i);
                    true
                }
                None => false,
            },
            HashValue::Table(d) => d.remove(field).is_some(),
        }
    }

    pub fn entry_at(&self, i: usize) -> (&Bytes, &Bytes) {
        match self {
            HashValue::Listpack(v) => (&v[i].0, &v[i].1),
            HashValue::Table(d) => d.entry_at(i),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> + '_ {
        (0..self.len()).map(move |i| self.entry_at(i))
    }

    /// HRANDFIELD key count: indexes sampled with Redis's count semantics.
    pub fn random_entries<R: Rng + ?Sized>(&self, rng: &mut R, count: i64) -> Vec<(&Bytes, &Bytes)> {
        sample_indices(rng, self.len(), count).into_iter().map(|i| self.entry_at(i)).collect()
    }

    /// HSCAN step: listpacks return everything with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&Bytes, &Bytes)) -> u64 {
        match self {
            HashValue::Listpack(v) => {
                v.iter().for_each(|(f, val)| visit(f, val));
                0
            }
            HashValue::Table(d) => d.scan(cursor, count, visit),
        }
    }

    pub fn memory_usage(&self) -> usize {
        self.iter().map(|(f, v)| f.len() + v.len() + 64).sum()
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
        let got: Vec<_> = h.iter().map(|(f, v)| (f.clone(), v.clone())).collect();
        assert_eq!(got, vec![(b("b"), b("3")), (b("a"), b("2"))]);
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
        assert_eq!(h.get(b"0"), Some(&b("v")));
        assert_eq!(h.len(), 4);
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_map(ops in proptest::collection::vec((proptest::bool::ANY, 0u8..30, 0u8..5), 0..300)) {
            let lim = EncodingLimits { hash_max_listpack_entries: 8, ..Default::default() };
            let mut h = HashValue::new();
            let mut model = std::collections::BTreeMap::new();
            for (set, f, v) in ops {
                let f = format!("f{f}");
                if set { proptest::prop_assert_eq!(h.set(Bytes::from(f.clone()), Bytes::from(v.to_string()), &lim), model.insert(f, v.to_string()).is_none()); }
                else { proptest::prop_assert_eq!(h.remove(f.as_bytes()), model.remove(&f).is_some()); }
            }
            proptest::prop_assert_eq!(h.len(), model.len());
            for (f, v) in &model { proptest::prop_assert_eq!(h.get(f.as_bytes()).map(|b| b.to_vec()), Some(v.clone().into_bytes())); }
        }
    }
}
