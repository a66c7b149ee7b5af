//! maxmemory eviction (all Redis policies, sampled like Redis) and the LFU counter.

use rand::Rng;

use super::state::{EvictionPolicy, ServerState};

/// Redis's LFU_INIT_VAL.
const LFU_INIT: u32 = 5;

fn minutes_now() -> u32 {
    ((super::now_ms() / 60_000) as u32) & 0xffff
}

pub fn lfu_initial() -> u32 {
    (minutes_now() << 8) | LFU_INIT
}

/// Decays then logarithmically increments the LFU counter, as Redis's `updateLFU`.
pub fn lfu_touch(word: u32, log_factor: u32, decay_time: u32) -> u32 {
    let counter = lfu_decayed(word, decay_time);
    let mut counter = counter;
    if counter < 255 {
        let r: f64 = rand::thread_rng().gen();
        let base = counter.saturating_sub(LFU_INIT) as f64;
        let p = 1.0 / (base * log_factor as f64 + 1.0);
        if r < p {
            counter += 1;
        }
    }
    (minutes_now() << 8) | counter
}

/// The counter after decay (OBJECT FREQ).
pub fn lfu_decayed(word: u32, decay_time: u32) -> u32 {
    let last = word >> 8;
    let counter = word & 0xff;
    let now = minutes_now();
    let elapsed = if now >= last { now - last } else { 65535 - last + now };
    let periods = if decay_time > 0 { elapsed / decay_time } else { 0 };
    counter.saturating_sub(periods)
}

/// Seconds since the key was last touched (OBJECT IDLETIME).
pub fn idle_secs(word: u32, clock: u32) -> u64 {
    if clock >= word {
        (clock - word) as u64
    } else {
        ((1u32 << 24) - word + clock) as u64
    }
}

/// Frees memory until under `maxmemory`. Returns false if it cannot (noeviction or
/// nothing evictable): the caller then refuses the command with OOM.
/// `current`: the client whose command triggered it (its invalidations are queued for it).
pub fn perform_evictions(srv: &mut ServerState, mut current: Option<&mut super::client::ClientState>) -> bool {
    let limit = srv.limits.maxmemory as usize;
    if limit == 0 {
        return true;
    }
    let mut guard = 0;
    while srv.used_memory() > limit {
        guard += 1;
        if guard > 100_000 {
            return false;
        }
        let policy = srv.limits.policy;
        if policy == EvictionPolicy::NoEviction {
            return false;
        }
        let volatile = matches!(policy, EvictionPolicy::VolatileLru | EvictionPolicy::VolatileLfu | EvictionPolicy::VolatileRandom | EvictionPolicy::VolatileTtl);
        let samples = srv.limits.maxmemory_samples;
        let clock = srv.lru_clock;
        let decay = srv.limits.lfu_decay_time;
        // Best candidate over all dbs: (score: higher = evict first, db, pos).
        let mut best: Option<(u64, usize, usize)> = None;
        for (dbi, db) in srv.dbs.iter().enumerate() {
            if db.is_empty() || (volatile && db.expires_len() == 0) {
                continue;
            }
            for _ in 0..samples {
                let (pos, ttl) = if volatile {
                    match db.random_volatile() {
                        Some((p, when)) => (p, Some(when)),
                        None => break,
                    }
                } else {
                    match db.random_pos() {
                        Some(p) => (p, None),
                        None => break,
                    }
                };
                let slot = db.slot(pos);
                let score = match policy {
                    EvictionPolicy::AllkeysLru | EvictionPolicy::VolatileLru => idle_secs(slot.lru, clock),
                    EvictionPolicy::AllkeysLfu | EvictionPolicy::VolatileLfu => 255 - lfu_decayed(slot.lru, decay) as u64,
                    EvictionPolicy::VolatileTtl => u64::MAX - ttl.unwrap_or(i64::MAX).max(0) as u64,
                    _ => rand::thread_rng().gen(),
                };
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, dbi, pos));
                }
            }
        }
        let Some((_, dbi, pos)) = best else {
            return false;
        };
        let slot = srv.dbs[dbi].remove_at(pos);
        let key = bytes::Bytes::copy_from_slice(slot.key.as_slice());
        srv.stats.evicted_keys += 1;
        srv.touch_watched_key(dbi, &key, current.as_deref_mut());
        super::notify::notify(srv, super::notify::EVICTED, "evicted", &key, dbi);
        super::dispatch::propagate(srv, dbi, &[bytes::Bytes::from_static(b"DEL"), key]);
    }
    true
}
