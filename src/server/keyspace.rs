//! One logical database: a compact hash index over a dense slot vector.
//!
//! Layout (why): Redis spends ~70-80 bytes per small string key. A `HashMap<Bytes, _>`
//! costs more than that in headers and separate allocations, so a database here is
//! - `slots: Vec<Slot>`: key and value inline (24 + 24 bytes for strings up to 22 bytes),
//!   the LRU/LFU word and the position of the key's expiry record (56 bytes in all);
//! - `index: HashTable<u32>`: 4 bytes + 1 control byte per bucket, pointing into `slots`;
//! - `volatile: Vec<(slot, expire_at_ms)>`: Redis's separate `expires` dict, dense so the
//!   active expiry cycle can sample it at random in O(1).
//!
//! Deletion is `swap_remove` with index fix-ups, so every operation is O(1). SCAN walks
//! slot positions from the end towards 0: a removal only moves the *last* slot down, so a
//! key present for the whole iteration is always returned (it may be returned twice),
//! which is the guarantee Redis's SCAN gives.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rand::Rng;

use super::value::{SmallBytes, Value};

const NO_EXPIRY: u32 = u32::MAX;

/// A key with its value and metadata.
pub struct Slot {
    pub key: SmallBytes,
    pub value: Value,
    /// LRU clock (24 bits, seconds) or, under an LFU policy, `(minutes << 8) | counter`.
    pub lru: u32,
    /// Position in `Db::volatile`, or `NO_EXPIRY`.
    vol: u32,
}

impl Slot {
    pub fn has_expiry(&self) -> bool {
        self.vol != NO_EXPIRY
    }
}

pub struct Db {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    volatile: Vec<(u32, i64)>,
    hasher: foldhash::fast::RandomState,
    /// Estimated heap bytes of keys and values (maintained by the command dispatcher).
    pub mem: isize,
    /// Sum of TTLs seen by the last expiry cycle (INFO keyspace `avg_ttl`).
    pub avg_ttl: i64,
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

impl Db {
    pub fn new() -> Self {
        Db {
            index: HashTable::new(),
            slots: Vec::new(),
            volatile: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            mem: 0,
            avg_ttl: 0,
        }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn expires_len(&self) -> usize {
        self.volatile.len()
    }

    /// Slot position of `key`, ignoring expiry.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let hash = self.hash(key);
        let slots = &self.slots;
        self.index.find(hash, |&i| slots[i as usize].key.as_slice() == key).map(|&i| i as usize)
    }

    pub fn slot(&self, pos: usize) -> &Slot {
        &self.slots[pos]
    }

    pub fn slot_mut(&mut self, pos: usize) -> &mut Slot {
        &mut self.slots[pos]
    }

    /// Expiry time (unix ms) of the key at `pos`.
    pub fn expiry_of(&self, pos: usize) -> Option<i64> {
        let vol = self.slots[pos].vol;
        (vol != NO_EXPIRY).then(|| self.volatile[vol as usize].1)
    }

    /// Adds a key known to be absent; returns its position.
    pub fn insert_new(&mut self, key: &[u8], value: Value, lru: u32) -> usize {
        let hash = self.hash(key);
        let pos = self.slots.len();
        self.mem += (key.len() + value.heap_size()) as isize;
        self.slots.push(Slot { key: SmallBytes::new(key), value, lru, vol: NO_EXPIRY });
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, pos as u32, |&i| hasher.hash_one(slots[i as usize].key.as_slice()));
        pos
    }

    /// Sets `key` to `value`. The old TTL is dropped unless `keep_ttl`. Returns the position.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool, lru: u32) -> usize {
        match self.find(key) {
            Some(pos) => {
                self.replace_value(pos, value);
                self.slots[pos].lru = lru;
                if !keep_ttl {
                    self.persist(pos);
                }
                pos
            }
            None => self.insert_new(key, value, lru),
        }
    }

    /// Replaces the value at `pos`, keeping TTL and metadata; returns the old value.
    pub fn replace_value(&mut self, pos: usize, value: Value) -> Value {
        self.mem += value.heap_size() as isize;
        let old = std::mem::replace(&mut self.slots[pos].value, value);
        self.mem -= old.heap_size() as isize;
        old
    }

    /// Sets the expiry (unix ms) of the key at `pos`.
    pub fn set_expiry(&mut self, pos: usize, when_ms: i64) {
        let vol = self.slots[pos].vol;
        if vol == NO_EXPIRY {
            self.slots[pos].vol = self.volatile.len() as u32;
            self.volatile.push((pos as u32, when_ms));
        } else {
            self.volatile[vol as usize].1 = when_ms;
        }
    }

    /// Removes the TTL of the key at `pos`; true if it had one.
    pub fn persist(&mut self, pos: usize) -> bool {
        let vol = self.slots[pos].vol;
        if vol == NO_EXPIRY {
            return false;
        }
        self.slots[pos].vol = NO_EXPIRY;
        let vol = vol as usize;
        self.volatile.swap_remove(vol);
        if vol < self.volatile.len() {
            let moved = self.volatile[vol].0 as usize;
            self.slots[moved].vol = vol as u32;
        }
        true
    }

    /// Removes the key at `pos` and returns it.
    pub fn remove_at(&mut self, pos: usize) -> Slot {
        self.persist(pos);
        let hash = self.hash(self.slots[pos].key.as_slice());
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == pos) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        if pos != last {
            // The last slot moves to `pos`: repoint its index entry and expiry record.
            let last_hash = self.hash(self.slots[last].key.as_slice());
            if let Some(i) = self.index.find_mut(last_hash, |&i| i as usize == last) {
                *i = pos as u32;
            }
            let vol = self.slots[last].vol;
            if vol != NO_EXPIRY {
                self.volatile[vol as usize].0 = pos as u32;
            }
        }
        let slot = self.slots.swap_remove(pos);
        self.mem -= (slot.key.len() + slot.value.heap_size()) as isize;
        if self.slots.is_empty() {
            self.mem = 0;
        }
        slot
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Slot> {
        let pos = self.find(key)?;
        Some(self.remove_at(pos))
    }

    pub fn clear(&mut self) {
        *self = Db::new();
    }

    /// A uniformly random slot position.
    pub fn random_pos(&self) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(rand::thread_rng().gen_range(0..self.slots.len()))
    }

    /// A random key with a TTL: (slot position, expire at ms).
    pub fn random_volatile(&self) -> Option<(usize, i64)> {
        if self.volatile.is_empty() {
            return None;
        }
        let (pos, when) = self.volatile[rand::thread_rng().gen_range(0..self.volatile.len())];
        Some((pos as usize, when))
    }

    /// Visits up to `count` slots for SCAN, from the cursor downwards. Cursor 0 starts a
    /// new iteration; the returned cursor is 0 when the iteration is complete.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&Slot)) -> u64 {
        let mut next = if cursor == 0 { self.slots.len() } else { (cursor as usize).min(self.slots.len()) };
        let mut visited = 0;
        while next > 0 && visited < count.max(1) {
            next -= 1;
            visit(&self.slots[next]);
            visited += 1;
        }
        next as u64
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter()
    }

    /// Approximate bytes used by this database's own structures plus keys and values.
    pub fn memory(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.index.capacity() * 5
            + self.volatile.capacity() * 16
            + self.mem.max(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("key:{i:07}").into_bytes()
    }

    #[test]
    fn slot_is_56_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 56);
    }

    #[test]
    fn insert_find_remove_with_expiry_fixups() {
        let mut db = Db::new();
        for i in 0..1000 {
            let pos = db.insert_new(&key(i), Value::string(b"v"), 0);
            if i % 3 == 0 {
                db.set_expiry(pos, i as i64);
            }
        }
        for i in (0..1000).step_by(2) {
            assert!(db.remove(&key(i)).is_some());
        }
        assert_eq!(db.len(), 500);
        for i in 0..1000 {
            let found = db.find(&key(i));
            assert_eq!(found.is_some(), i % 2 == 1, "key {i}");
            if let Some(pos) = found {
                assert_eq!(db.slot(pos).key.as_slice(), &key(i)[..]);
                assert_eq!(db.expiry_of(pos), (i % 3 == 0).then_some(i as i64));
            }
        }
        assert_eq!(db.expires_len(), (0..1000).filter(|i| i % 2 == 1 && i % 3 == 0).count());
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_deletes() {
        let mut db = Db::new();
        for i in 0..500 {
            db.insert_new(&key(i), Value::string(b"v"), 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = db.scan(cursor, 10, |s| {
                seen.insert(s.key.as_slice().to_vec());
            });
            // Delete keys >= 400 while scanning: the others must all be seen.
            if round < 100 {
                db.remove(&key(400 + round));
            }
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..400 {
            assert!(seen.contains(&key(i)), "missing {i}");
        }
    }
}
