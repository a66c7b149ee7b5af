//! `Dict<V>`: the hash table behind large hashes, sets and sorted sets.
//!
//! Entries live densely in a `Vec` (fast iteration, O(1) uniform random pick, no per-entry
//! allocation beyond the key bytes) and a `hashbrown::HashTable<u32>` maps a key to its slot.
//! Removal swaps the last entry into the hole. SCAN walks slots from the END towards 0, which
//! keeps Redis's guarantee (every element present for the whole scan is returned at least
//! once) under any mix of inserts, removals and table growth:
//! - inserts append past the cursor (new elements need not be returned);
//! - a removal moves the last entry into the hole: either both positions are already scanned,
//!   or an already-returned entry moves into the unscanned area (a duplicate, which SCAN allows),
//!   or both are unscanned (the moved entry is still ahead of the cursor).

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

pub struct Dict<V> {
    entries: Vec<(Bytes, V)>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> Clone for Dict<V> {
    fn clone(&self) -> Self {
        let mut d = Dict::with_capacity(self.len());
        for (k, v) in &self.entries {
            d.insert(k.clone(), v.clone());
        }
        d
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Dict<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(k, v)| (k, v))).finish()
    }
}

impl<V> Dict<V> {
    pub fn new() -> Self {
        Dict { entries: Vec::new(), index: HashTable::new(), hasher: DefaultHashBuilder::default() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Dict {
            entries: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
            hasher: DefaultHashBuilder::default(),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Slots the index can hold before it grows (DEBUG HTSTATS-KEY's "table size"). The index
    /// is open-addressed and grows in one step, so there are no chains and no rehashing target.
    pub fn table_capacity(&self) -> usize {
        self.index.capacity()
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn slot_of(&self, key: &[u8]) -> Option<usize> {
        let h = self.hash(key);
        let entries = &self.entries;
        self.index.find(h, |&i| entries[i as usize].0.as_ref() == key).map(|&i| i as usize)
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.slot_of(key).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.slot_of(key).map(move |i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.slot_of(key).is_some()
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: Bytes, value: V) -> Option<V> {
        let h = self.hash(&key);
        let entries = &mut self.entries;
        let hasher = &self.hasher;
        match self.index.find(h, |&i| entries[i as usize].0 == key) {
            Some(&i) => Some(std::mem::replace(&mut entries[i as usize].1, value)),
            None => {
                let slot = entries.len() as u32;
                self.index.insert_unique(h, slot, |&i| hasher.hash_one(entries[i as usize].0.as_ref()));
                super::room_for_one(entries);
                entries.push((key, value));
                None
            }
        }
    }

    /// Removes a key; returns the stored key and value.
    pub fn remove(&mut self, key: &[u8]) -> Option<(Bytes, V)> {
        let slot = self.slot_of(key)?;
        Some(self.remove_at(slot))
    }

    /// Removes the entry in `slot` (swap-remove, the last entry takes its place).
    pub fn remove_at(&mut self, slot: usize) -> (Bytes, V) {
        let h = self.hash(&self.entries[slot].0);
        let found = self.index.find_entry(h, |&i| i as usize == slot);
        if let Ok(e) = found {
            e.remove();
        }
        let last = self.entries.len() - 1;
        if slot != last {
            let hl = self.hash(&self.entries[last].0);
            if let Some(i) = self.index.find_mut(hl, |&i| i as usize == last) {
                *i = slot as u32;
            }
        }
        let removed = self.entries.swap_remove(slot);
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
            self.index.shrink_to(self.entries.len() * 2, |&i| {
                self.hasher.hash_one(self.entries[i as usize].0.as_ref())
            });
        }
        removed
    }

    /// Entry stored in `slot` (`0..len`), for random picks.
    #[inline]
    pub fn entry_at(&self, slot: usize) -> (&Bytes, &V) {
        let (k, v) = &self.entries[slot];
        (k, v)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    pub fn into_entries(self) -> Vec<(Bytes, V)> {
        self.entries
    }

    /// One SCAN step: visits up to `count` entries (at least 1) and returns the next cursor,
    /// 0 when the scan is complete. Cursor 0 starts a scan.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&Bytes, &V)) -> u64 {
        let len = self.entries.len();
        let mut hi = if cursor == 0 { len } else { (cursor.min(len as u64)) as usize };
        let mut n = count.max(1);
        while hi > 0 && n > 0 {
            hi -= 1;
            let (k, v) = &self.entries[hi];
            visit(k, v);
            n -= 1;
        }
        hi as u64
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn insert_get_remove() {
        let mut d: Dict<u32> = Dict::new();
        assert_eq!(d.insert(b("a"), 1), None);
        assert_eq!(d.insert(b("b"), 2), None);
        assert_eq!(d.insert(b("a"), 3), Some(1));
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(b"a"), Some(&3));
        assert_eq!(d.remove(b"a").map(|e| e.1), Some(3));
        assert_eq!(d.get(b"a"), None);
        assert_eq!(d.get(b"b"), Some(&2));
        assert_eq!(d.remove(b"zz"), None);
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_hashmap(ops in proptest::collection::vec((0u8..3, 0u16..200, 0u32..1000), 0..600)) {
            let mut d: Dict<u32> = Dict::new();
            let mut m: HashMap<Vec<u8>, u32> = HashMap::new();
            for (op, k, v) in ops {
                let key = format!("k{k}").into_bytes();
                match op {
                    0 | 1 => { proptest::prop_assert_eq!(d.insert(Bytes::from(key.clone()), v), m.insert(key, v)); }
                    _ => { proptest::prop_assert_eq!(d.remove(&key).map(|e| e.1), m.remove(&key)); }
                }
                proptest::prop_assert_eq!(d.len(), m.len());
            }
            for (k, v) in &m { proptest::prop_assert_eq!(d.get(k), Some(v)); }
            let seen: HashSet<Vec<u8>> = d.iter().map(|(k, _)| k.to_vec()).collect();
            proptest::prop_assert_eq!(seen.len(), m.len());
        }

        /// SCAN guarantee: elements present during the whole scan are all returned even with
        /// removals and inserts between steps.
        #[test]
        fn scan_returns_every_stable_element(n in 1usize..300, churn in proptest::collection::vec((0u8..2, 0u16..400), 0..200), count in 1usize..20) {
            let mut d: Dict<()> = Dict::new();
            for i in 0..n { d.insert(Bytes::from(format!("s{i}")), ()); }
            // keys named s* that are never removed are "stable"; churn only touches c* keys
            // and removes some s* keys.
            let mut removed: HashSet<String> = HashSet::new();
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            let mut cursor = 0u64;
            let mut churn = churn.into_iter();
            let mut steps = 0;
            loop {
                cursor = d.scan(cursor, count, |k, _| { seen.insert(k.to_vec()); });
                steps += 1;
                if let Some((op, x)) = churn.next() {
                    if op == 0 { d.insert(Bytes::from(format!("c{x}")), ()); }
                    else { let k = format!("s{}", x as usize % n); d.remove(k.as_bytes()); removed.insert(k); }
                }
                if cursor == 0 || steps > 10_000 { break; }
            }
            for i in 0..n {
                let k = format!("s{i}");
                if !removed.contains(&k) { proptest::prop_assert!(seen.contains(k.as_bytes()), "missed {}", k); }
            }
        }
    }
}
