//! Lazy freeing (Redis's lazyfree.c): UNLINK hands a value whose freeing takes more than
//! `LAZYFREE_THRESHOLD` allocations to a background thread, which drops it. INFO memory's
//! `lazyfree_pending_objects` counts the values queued and not yet freed,
//! `lazyfreed_objects` the values freed in the background since the last CONFIG RESETSTAT.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

use crate::server::value::Value;

/// Redis's LAZYFREE_THRESHOLD: values cheaper to free than this are freed at once.
const LAZYFREE_THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static QUEUE: OnceLock<Mutex<Option<Sender<Value>>>> = OnceLock::new();

/// `lazyfreeGetFreeEffort`: about how many allocations freeing `v` takes (elements of a
/// hash table or skiplist, list elements, stream nodes plus the consumer groups with the
/// first group's PEL size as the estimate for each); 1 for compact encodings and strings.
pub fn free_effort(v: &Value) -> usize {
    match v {
        Value::List(l) => l.len(),
        Value::Set(s) if s.encoding() == "hashtable" => s.len(),
        Value::Hash(h) if h.encoding() == "hashtable" => h.len(),
        Value::ZSet(z) if z.encoding() == "skiplist" => z.len(),
        Value::Stream(s) => s.free_effort(),
        _ => 1,
    }
}

fn queue() -> Option<Sender<Value>> {
    let q = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Value>();
        let started = std::thread::Builder::new().name("lazyfree".into()).spawn(move || {
            while let Ok(v) = rx.recv() {
                drop(v);
                FREED.fetch_add(1, Ordering::Relaxed);
                PENDING.fetch_sub(1, Ordering::Relaxed);
            }
        });
        Mutex::new(started.ok().map(|_| tx))
    });
    q.lock().ok().and_then(|g| g.clone())
}

/// `freeObjAsync`: frees `v` in the background when that is worth it, else at once.
pub fn free_async(v: Value) {
    if free_effort(&v) <= LAZYFREE_THRESHOLD {
        return;
    }
    let Some(tx) = queue() else {
        return; // no background thread: freed here
    };
    PENDING.fetch_add(1, Ordering::Relaxed);
    if let Err(back) = tx.send(v) {
        PENDING.fetch_sub(1, Ordering::Relaxed);
        drop(back.0);
    }
}

/// INFO memory: (lazyfree_pending_objects, lazyfreed_objects).
pub fn stats() -> (u64, u64) {
    (PENDING.load(Ordering::Relaxed), FREED.load(Ordering::Relaxed))
}

/// CONFIG RESETSTAT (`lazyfreeResetStats`).
pub fn reset_stats() {
    FREED.store(0, Ordering::Relaxed);
}
