//! Set values: `intset` (sorted `Vec<i64>`, SMEMBERS in ascending order as Redis) while every
//! member is a canonical integer and the size is within `set-max-intset-entries`, else a
//! `hashtable` ([`Dict`]). Conversion is one-way.

use super::dict::Dict;
use super::{parse_canonical_i64, sample_indices, EncodingLimits};
use bytes::Bytes;
use rand::Rng;

#[derive(Clone, Debug)]
enum Repr {
    Ints(Vec<i64>),
    Table(Dict<()>),
}

#[derive(Clone, Debug)]
pub struct SetValue {
    repr: Repr,
    /// Sum of member lengths in `hashtable` encoding: keeps `memory_usage` O(1).
    data_bytes: usize,
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue { repr: Repr::Ints(Vec::new()), data_bytes: 0 }
    }
}

fn int_bytes(v: i64) -> Bytes {
    let mut b = itoa::Buffer::new();
    Bytes::copy_from_slice(b.format(v).as_bytes())
}

impl SetValue {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set whose encoding suits `first` (as `setTypeCreate`).
    pub fn for_member(first: &[u8]) -> Self {
        if parse_canonical_i64(first).is_some() {
            SetValue::default()
        } else {
            SetValue { repr: Repr::Table(Dict::new()), data_bytes: 0 }
        }
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    /// The hash table behind a `hashtable` set (DEBUG HTSTATS-KEY): (table size, elements).
    pub fn table_stats(&self) -> Option<(usize, usize)> {
        match &self.repr {
            Repr::Ints(_) => None,
            Repr::Table(d) => Some((d.table_capacity(), d.len())),
        }
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.len(),
            Repr::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn convert_to_table(&mut self, extra: usize) {
        if let Repr::Ints(v) = &self.repr {
            let mut d = Dict::with_capacity(v.len() + extra);
            let mut bytes = 0;
            for &i in v.iter() {
                let m = int_bytes(i);
                bytes += m.len();
                d.insert(m, ());
            }
            self.repr = Repr::Table(d);
            self.data_bytes = bytes;
        }
    }

    /// SADD of one member; true when it was not present.
    pub fn add(&mut self, member: Bytes, limits: &EncodingLimits) -> bool {
        if let Repr::Ints(v) = &mut self.repr {
            if let Some(i) = parse_canonical_i64(&member) {
                return match v.binary_search(&i) {
                    Ok(_) => false,
                    Err(pos) => {
                        v.insert(pos, i);
                        if v.len() > limits.set_max_intset_entries {
                            self.convert_to_table(0);
                        }
                        true
                    }
                };
            }
            self.convert_to_table(1);
        }
        match &mut self.repr {
            Repr::Table(d) => {
                if d.contains_key(&member) {
                    false
                } else {
                    self.data_bytes += member.len();
                    d.insert(super::detach(member), ());
                    true
                }
            }
            Repr::Ints(_) => unreachable!("converted above"),
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(v) => match parse_canonical_i64(member).map(|i| v.binary_search(&i)) {
                Some(Ok(pos)) => {
                    v.remove(pos);
                    true
                }
                _ => false,
            },
            Repr::Table(d) => {
                let gone = d.remove(member).is_some();
                if gone {
                    self.data_bytes -= member.len();
                }
                gone
            }
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(v) => parse_canonical_i64(member).is_some_and(|i| v.binary_search(&i).is_ok()),
            Repr::Table(d) => d.contains_key(member),
        }
    }

    /// Member at position `i` (`0..len`) of the internal order.
    pub fn member_at(&self, i: usize) -> Bytes {
        match &self.repr {
            Repr::Ints(v) => int_bytes(v[i]),
            Repr::Table(d) => d.entry_at(i).0.clone(),
        }
    }

    /// Members in Redis's iteration order for intsets (ascending), table order otherwise.
    pub fn iter(&self) -> impl Iterator<Item = Bytes> + '_ {
        (0..self.len()).map(move |i| self.member_at(i))
    }

    pub fn members(&self) -> Vec<Bytes> {
        self.iter().collect()
    }

    /// SRANDMEMBER key count.
    pub fn random_members<R: Rng + ?Sized>(&self, rng: &mut R, count: i64) -> Vec<Bytes> {
        sample_indices(rng, self.len(), count).into_iter().map(|i| self.member_at(i)).collect()
    }

    pub fn random_member<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<Bytes> {
        (!self.is_empty()).then(|| self.member_at(rng.gen_range(0..self.len())))
    }

    /// SPOP key count: removes and returns up to `count` distinct random members.
    pub fn pop_random<R: Rng + ?Sized>(&mut self, rng: &mut R, count: usize) -> Vec<Bytes> {
        let n = count.min(self.len());
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let i = rng.gen_range(0..self.len());
            out.push(self.remove_at(i));
        }
        out
    }

    fn remove_at(&mut self, i: usize) -> Bytes {
        match &mut self.repr {
            Repr::Ints(v) => int_bytes(v.remove(i)),
            Repr::Table(d) => {
                let m = d.remove_at(i).0;
                self.data_bytes -= m.len();
                m
            }
        }
    }

    /// SSCAN step: small encodings return everything at once with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(Bytes)) -> u64 {
        match &self.repr {
            Repr::Ints(v) => {
                v.iter().for_each(|&i| visit(int_bytes(i)));
                0
            }
            Repr::Table(d) => d.scan(cursor, count, |k, _| visit(k.clone())),
        }
    }

    /// Builds a set from members with the encoding Redis would end up with.
    pub fn from_members<I: IntoIterator<Item = Bytes>>(members: I, limits: &EncodingLimits) -> Self {
        let mut s = SetValue::new();
        for m in members {
            s.add(m, limits);
        }
        s
    }

    pub fn memory_usage(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.capacity() * 8,
            Repr::Table(d) => self.data_bytes + d.len() * 48,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn intset_then_hashtable() {
        let lim = EncodingLimits::default();
        let mut s = SetValue::for_member(b"3");
        assert!(s.add(b("3"), &lim));
        assert!(s.add(b("-1"), &lim));
        assert!(s.add(b("10"), &lim));
        assert!(!s.add(b("10"), &lim));
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.members(), vec![b("-1"), b("3"), b("10")]);
        assert!(s.contains(b"3"));
        assert!(!s.contains(b"03"));
        assert!(s.add(b("x"), &lim));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"3") && s.contains(b"x"));
        assert!(s.remove(b"3"));
        assert!(!s.remove(b"3"));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn intset_size_limit_converts() {
        let lim = EncodingLimits { set_max_intset_entries: 4, ..Default::default() };
        let mut s = SetValue::new();
        for i in 0..4 {
            s.add(b(&i.to_string()), &lim);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b("4"), &lim);
        assert_eq!(s.encoding(), "hashtable");
        s.remove(b"4");
        assert_eq!(s.encoding(), "hashtable", "one-way conversion");
    }

    #[test]
    fn non_canonical_integers_are_strings() {
        let lim = EncodingLimits::default();
        let mut s = SetValue::new();
        s.add(b("1"), &lim);
        s.add(b("01"), &lim);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn pop_and_random() {
        let lim = EncodingLimits::default();
        let mut rng = rand::thread_rng();
        for seed in [&["1", "2", "3", "4", "5"][..], &["a", "b", "c", "d", "e"]] {
            let mut s = SetValue::from_members(seed.iter().map(|x| b(x)), &lim);
            let r = s.random_members(&mut rng, 3);
            assert_eq!(r.len(), 3);
            assert!(r.iter().all(|m| s.contains(m)));
            let popped = s.pop_random(&mut rng, 2);
            assert_eq!(popped.len(), 2);
            assert!(popped.iter().all(|m| !s.contains(m)));
            assert_eq!(s.len(), 3);
            assert_eq!(s.pop_random(&mut rng, 10).len(), 3);
            assert!(s.is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_btreeset(ops in proptest::collection::vec((proptest::bool::ANY, 0u8..40), 0..300)) {
            let lim = EncodingLimits { set_max_intset_entries: 16, ..Default::default() };
            let mut s = SetValue::new();
            let mut model = std::collections::BTreeSet::new();
            for (add, x) in ops {
                // mostly integers, sometimes strings
                let m = if x < 35 { x.to_string() } else { format!("s{x}") };
                if add { proptest::prop_assert_eq!(s.add(Bytes::from(m.clone()), &lim), model.insert(m)); }
                else { proptest::prop_assert_eq!(s.remove(m.as_bytes()), model.remove(&m)); }
            }
            let mut got: Vec<String> = s.iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect();
            got.sort();
            proptest::prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }
    }
}
