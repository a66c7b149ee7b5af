//! Hash values: `listpack` (a `Vec` of field/value pairs in insertion order, linear lookup,
//! exactly Redis's small-hash order for HGETALL/HKEYS) while within
//! `hash-max-listpack-entries` / `hash-max-listpack-value`, else `hashtable` ([`Dict`]).

use super::dict::Dict;
use super::{sample_indices, EncodingLimits};
use bytes::Bytes;
use rand::Rng;

#[derive(Clone, Debug)]
enum Repr {
    Listpack(Vec<(Bytes, Bytes)>),
    /// Boxed: most hashes are small, and the value itself stays 40 bytes instead of 72.
    Table(Box<Dict<Bytes>>),
}

#[derive(Clone, Debug)]
pub struct HashValue {
    repr: Repr,
    /// Sum of field and value lengths: keeps `memory_usage` O(1).
    data_bytes: usize,
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue { repr: Repr::Listpack(Vec::new()), data_bytes: 0 }
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

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(v) => v.len(),
            Repr::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        match &self.repr {
            Repr::Listpack(v) => v.iter().find(|(f, _)| f.as_ref() == field).map(|(_, val)| val),
            Repr::Table(d) => d.get(field),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    fn convert_to_table(&mut self) {
        if let Repr::Listpack(v) = &mut self.repr {
            let mut d = Dict::with_capacity(v.len() + 1);
            for (f, val) in v.drain(..) {
                d.insert(f, val);
            }
            self.repr = Repr::Table(Box::new(d));
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
        let value = super::detach(value);
        self.prepare_for_lengths(field.len(), value.len(), limits);
        let added = field.len() + value.len();
        let is_new = match &mut self.repr {
            Repr::Listpack(v) => {
                if let Some(slot) = v.iter_mut().find(|(f, _)| *f == field) {
                    self.data_bytes -= slot.0.len() + slot.1.len();
                    slot.1 = value;
                    false
                } else {
                    super::room_for_one(v);
                    v.push((super::detach(field), value));
                    true
                }
            }
            Repr::Table(d) => match d.insert(super::detach(field.clone()), value) {
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
            Repr::Listpack(v) => v.iter().position(|(f, _)| f.as_ref() == field).map(|i| v.remove(i)),
            Repr::Table(d) => d.remove(field),
        };
        match removed {
            Some((f, v)) => {
                self.data_bytes -= f.len() + v.len();
                true
            }
            None => false,
        }
    }

    pub fn entry_at(&self, i: usize) -> (&Bytes, &Bytes) {
        match &self.repr {
            Repr::Listpack(v) => (&v[i].0, &v[i].1),
            Repr::Table(d) => d.entry_at(i),
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
        match &self.repr {
            Repr::Listpack(v) => {
                v.iter().for_each(|(f, val)| visit(f, val));
                0
            }
            Repr::Table(d) => d.scan(cursor, count, visit),
        }
    }

    /// Approximate heap bytes (O(1)).
    pub fn memory_usage(&self) -> usize {
        let per_entry = match self.repr {
            Repr::Listpack(_) => 64,
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
            proptest::prop_assert_eq!(h.data_bytes, model.iter().map(|(f, v)| f.len() + v.len()).sum::<usize>());
            for (f, v) in &model { proptest::prop_assert_eq!(h.get(f.as_bytes()).map(|b| b.to_vec()), Some(v.clone().into_bytes())); }
        }
    }
}
