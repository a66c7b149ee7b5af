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
//!
//! Background saves (BGSAVE, AOF rewrite, a replica's full sync) copy a database a little
//! at a time instead of in one stop of the server: see [`Db::start_capture`].

use std::hash::BuildHasher;
use std::sync::{Arc, Weak};

use hashbrown::HashTable;
use rand::Rng;

use super::value::{SmallBytes, Value};

/// Top bit of `Slot::vol`: whether the slot is settled for the capture in progress (it
/// equals `Db::mark`); the other bits are the position of the slot's expiry record.
const MARK: u32 = 1 << 31;
const NO_EXPIRY: u32 = MARK - 1;

/// A key with its value and metadata.
pub struct Slot {
    pub key: SmallBytes,
    pub value: Value,
    /// LRU clock (24 bits, seconds) or, under an LFU policy, `(minutes << 8) | counter`.
    pub lru: u32,
    /// Position in `Db::volatile`, or `NO_EXPIRY`; plus the capture mark (`MARK`).
    vol: u32,
}

impl Slot {
    pub fn has_expiry(&self) -> bool {
        self.vol_pos() != NO_EXPIRY
    }

    #[inline]
    fn vol_pos(&self) -> u32 {
        self.vol & !MARK
    }

    #[inline]
    fn set_vol_pos(&mut self, pos: u32) {
        self.vol = (self.vol & MARK) | pos;
    }
}

/// A key as it was when a capture started.
pub struct CapturedKey {
    pub key: SmallBytes,
    pub value: Value,
    pub expire: Option<i64>,
    pub lru: u32,
}

/// A point-in-time copy of a database taken a little at a time. At the start every slot
/// is unsettled (its mark differs from `Db::mark`) and still holds its state from that
/// instant. A background writer settles slots in small steps ([`Db::capture_step`]), from
/// the last position down like SCAN; any change to an unsettled slot first copies it
/// (`Db::preserve`). Keys created later are settled from birth, so they are left out.
struct Capture {
    id: u64,
    /// Positions at or above it have been walked.
    cursor: usize,
    /// Copies made by changes before the writer got there.
    preserved: Vec<CapturedKey>,
    /// The slots and expiry records the database had when it was emptied during the
    /// capture (FLUSHDB, a replica's full sync): the writer walks them instead.
    detached: Option<(Vec<Slot>, Vec<(u32, i64)>)>,
    /// The writer holds the `Arc`; once it is gone the capture is abandoned.
    owner: Weak<()>,
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
    /// The `MARK` bit of settled slots; it flips when a capture starts.
    mark: u32,
    capture: Option<Box<Capture>>,
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
            mark: 0,
            capture: None,
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
        self.preserve(pos);
        &mut self.slots[pos]
    }

    /// Expiry time (unix ms) of the key at `pos`.
    pub fn expiry_of(&self, pos: usize) -> Option<i64> {
        let vol = self.slots[pos].vol_pos();
        (vol != NO_EXPIRY).then(|| self.volatile[vol as usize].1)
    }

    /// Adds a key known to be absent; returns its position.
    pub fn insert_new(&mut self, key: &[u8], value: Value, lru: u32) -> usize {
        let hash = self.hash(key);
        let pos = self.slots.len();
        self.mem += (key.len() + value.heap_size()) as isize;
        self.slots.push(Slot { key: SmallBytes::new(key), value, lru, vol: NO_EXPIRY | self.mark });
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
        self.preserve(pos);
        self.mem += value.heap_size() as isize;
        let old = std::mem::replace(&mut self.slots[pos].value, value);
        self.mem -= old.heap_size() as isize;
        old
    }

    /// Sets the expiry (unix ms) of the key at `pos`.
    pub fn set_expiry(&mut self, pos: usize, when_ms: i64) {
        self.preserve(pos);
        let vol = self.slots[pos].vol_pos();
        if vol == NO_EXPIRY {
            let at = self.volatile.len() as u32;
            self.slots[pos].set_vol_pos(at);
            self.volatile.push((pos as u32, when_ms));
        } else {
            self.volatile[vol as usize].1 = when_ms;
        }
    }

    /// Removes the TTL of the key at `pos`; true if it had one.
    pub fn persist(&mut self, pos: usize) -> bool {
        let vol = self.slots[pos].vol_pos();
        if vol == NO_EXPIRY {
            return false;
        }
        self.preserve(pos);
        self.slots[pos].set_vol_pos(NO_EXPIRY);
        let vol = vol as usize;
        self.volatile.swap_remove(vol);
        if vol < self.volatile.len() {
            let moved = self.volatile[vol].0 as usize;
            self.slots[moved].set_vol_pos(vol as u32);
        }
        true
    }

    /// Removes the key at `pos` and returns it.
    pub fn remove_at(&mut self, pos: usize) -> Slot {
        self.preserve(pos);
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
            let vol = self.slots[last].vol_pos();
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
        let capture = self.detach_capture();
        let mark = self.mark;
        *self = Db::new();
        self.mark = mark;
        self.capture = capture;
    }

    // ------------------------------------------------------------------ captures

    /// Whether a capture with a live writer is running on this database.
    pub fn capture_running(&self) -> bool {
        self.capture.as_ref().is_some_and(|c| c.owner.strong_count() > 0)
    }

    /// Starts a point-in-time capture of this database, identified by `id`, for as long as
    /// `owner` lives. False if another capture is running (the caller copies in one go).
    pub fn start_capture(&mut self, id: u64, owner: &Arc<()>) -> bool {
        if let Some(c) = &self.capture {
            if c.owner.strong_count() > 0 {
                return false;
            }
            self.abandon_capture();
        }
        self.mark ^= MARK;
        self.capture = Some(Box::new(Capture { id, cursor: self.slots.len(), preserved: Vec::new(), detached: None, owner: Arc::downgrade(owner) }));
        true
    }

    /// The next keys of capture `id`: at most `budget` slots are walked, plus whatever
    /// changes preserved meanwhile. True once the capture is complete. None if this
    /// database holds no capture `id`.
    pub fn capture_step(&mut self, id: u64, budget: usize) -> Option<(Vec<CapturedKey>, bool)> {
        let Db { capture, slots, volatile, mark, .. } = self;
        let c = capture.as_mut().filter(|c| c.id == id)?;
        let mut out = std::mem::take(&mut c.preserved);
        let done = match &mut c.detached {
            // ours alone now: move the keys out instead of copying them
            Some((old_slots, old_volatile)) => {
                for _ in 0..budget {
                    let Some(slot) = old_slots.pop() else { break };
                    if slot.vol & MARK != *mark {
                        let vol = slot.vol_pos();
                        let expire = (vol != NO_EXPIRY).then(|| old_volatile[vol as usize].1);
                        out.push(CapturedKey { key: slot.key, value: slot.value, expire, lru: slot.lru });
                    }
                }
                old_slots.is_empty()
            }
            None => {
                c.cursor = c.cursor.min(slots.len());
                let stop = c.cursor.saturating_sub(budget);
                while c.cursor > stop {
                    c.cursor -= 1;
                    let slot = &mut slots[c.cursor];
                    if slot.vol & MARK != *mark {
                        slot.vol ^= MARK;
                        let vol = slot.vol_pos();
                        let expire = (vol != NO_EXPIRY).then(|| volatile[vol as usize].1);
                        out.push(CapturedKey { key: slot.key.clone(), value: slot.value.clone(), expire, lru: slot.lru });
                    }
                }
                c.cursor == 0
            }
        };
        if done {
            self.capture = None;
        }
        Some((out, done))
    }

    /// Before changing the slot at `pos`: copy it if the running capture still needs it.
    #[inline]
    fn preserve(&mut self, pos: usize) {
        if self.capture.is_some() && self.slots[pos].vol & MARK != self.mark {
            self.preserve_slow(pos);
        }
    }

    #[cold]
    fn preserve_slow(&mut self, pos: usize) {
        let alive = self.capture.as_ref().is_some_and(|c| c.owner.strong_count() > 0);
        if !alive {
            self.abandon_capture();
            return;
        }
        let expire = self.expiry_of(pos);
        let slot = &mut self.slots[pos];
        slot.vol ^= MARK;
        let copy = CapturedKey { key: slot.key.clone(), value: slot.value.clone(), expire, lru: slot.lru };
        if let Some(c) = self.capture.as_mut() {
            c.preserved.push(copy);
        }
    }

    /// A capture whose writer went away leaves slots settled and unsettled: make them all
    /// settled again so the next capture starts from a clean state.
    fn abandon_capture(&mut self) {
        self.capture = None;
        let mark = self.mark;
        for slot in &mut self.slots {
            slot.vol = (slot.vol & !MARK) | mark;
        }
    }

    /// The running capture, with the current slots moved into it if they are still needed
    /// (the database is about to be emptied or replaced).
    fn detach_capture(&mut self) -> Option<Box<Capture>> {
        let mut c = self.capture.take()?;
        if c.owner.strong_count() == 0 {
            return None;
        }
        if c.detached.is_none() {
            // the walk continues over the same positions, now owned by the capture
            let mut slots = std::mem::take(&mut self.slots);
            slots.truncate(c.cursor.min(slots.len()));
            c.detached = Some((slots, std::mem::take(&mut self.volatile)));
        }
        Some(c)
    }

    /// `fresh` replaces this database (a replica's swapdb load): a running capture moves
    /// over with the current contents, and everything in `fresh` counts as created after it.
    pub fn hand_capture_to(&mut self, fresh: &mut Db) {
        if let Some(c) = self.detach_capture() {
            fresh.mark = self.mark;
            for slot in &mut fresh.slots {
                slot.vol = (slot.vol & !MARK) | fresh.mark;
            }
            fresh.capture = Some(c);
        }
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

    /// The whole contents of `db` as (key, value, expiry), sorted.
    fn contents(db: &Db) -> Vec<(Vec<u8>, Vec<u8>, Option<i64>)> {
        let mut v: Vec<_> = (0..db.len()).map(|p| (db.slot(p).key.as_slice().to_vec(), str_of(&db.slot(p).value), db.expiry_of(p))).collect();
        v.sort();
        v
    }

    fn str_of(v: &Value) -> Vec<u8> {
        match v {
            Value::Str(s) => s.as_slice().to_vec(),
            _ => panic!("strings only here"),
        }
    }

    /// Random changes between the steps of a capture (sets, deletes, new keys, expiries,
    /// a FLUSHDB now and then): the capture returns exactly the contents at its start.
    #[test]
    fn capture_is_the_state_at_its_start_whatever_changes_meanwhile() {
        use rand::{rngs::StdRng, SeedableRng};
        for seed in 0..40u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut db = Db::new();
            for i in 0..rng.gen_range(0..3000) {
                let pos = db.insert_new(&key(i), Value::string(format!("v{i}").as_bytes()), 0);
                if i % 3 == 0 {
                    db.set_expiry(pos, 1_000_000 + i as i64);
                }
            }
            // an earlier capture abandoned half way must not confuse this one
            if seed % 4 == 1 {
                let owner = Arc::new(());
                assert!(db.start_capture(1000 + seed, &owner));
                db.capture_step(1000 + seed, 100);
                drop(owner);
            }
            let expected = contents(&db);
            let owner = Arc::new(());
            assert!(db.start_capture(seed, &owner));
            assert!(!db.start_capture(seed + 1, &owner), "a second capture must be refused while one runs");
            let mut got = Vec::new();
            loop {
                for _ in 0..rng.gen_range(0..40) {
                    let n = db.len();
                    match rng.gen_range(0..100) {
                        0..=29 if n > 0 => {
                            let pos = rng.gen_range(0..n);
                            db.replace_value(pos, Value::string(b"changed"));
                        }
                        30..=49 if n > 0 => {
                            db.remove_at(rng.gen_range(0..n));
                        }
                        50..=64 if n > 0 => {
                            let pos = rng.gen_range(0..n);
                            db.set_expiry(pos, 42);
                        }
                        65..=74 if n > 0 => {
                            db.persist(rng.gen_range(0..n));
                        }
                        75..=76 => db.clear(),
                        77..=79 if n > 0 => {
                            db.slot_mut(rng.gen_range(0..n)).lru = 7;
                        }
                        _ => {
                            let k = format!("new:{}", rng.gen::<u32>());
                            db.set(k.as_bytes(), Value::string(b"new"), false, 0);
                        }
                    }
                }
                let (batch, done) = db.capture_step(seed, rng.gen_range(1..300)).expect("capture present");
                got.extend(batch.into_iter().map(|k| (k.key.as_slice().to_vec(), str_of(&k.value), k.expire)));
                if done {
                    break;
                }
            }
            got.sort();
            assert_eq!(got.len(), expected.len(), "seed {seed}: wrong number of keys");
            assert!(got == expected, "seed {seed}: capture differs from the contents at its start");
            assert!(db.capture_step(seed, 10).is_none(), "a complete capture is gone");
            // and the next capture starts clean
            let now = contents(&db);
            let owner = Arc::new(());
            assert!(db.start_capture(99_999, &owner));
            let mut again = Vec::new();
            while let Some((batch, done)) = db.capture_step(99_999, 500) {
                again.extend(batch.into_iter().map(|k| (k.key.as_slice().to_vec(), str_of(&k.value), k.expire)));
                if done {
                    break;
                }
            }
            again.sort();
            assert!(again == now, "seed {seed}: the following capture is wrong");
        }
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
