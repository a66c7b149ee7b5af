//! `rdb-key-save-delay` and `key-load-delay`: Redis's hidden test knobs that slow an RDB
//! save or load down per key (debugDelay), so that a test can act while a save or a load
//! is still running. Process-wide, as in Redis: the savers and loaders run on their own
//! threads, away from the server state, and read them per key.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

static KEY_SAVE_DELAY_US: AtomicI32 = AtomicI32::new(0);
static KEY_LOAD_DELAY_US: AtomicI32 = AtomicI32::new(0);
/// Bumped when a save is stopped (FLUSHALL, SHUTDOWN): a save thread sleeping in its
/// per-key delay wakes up then instead of finishing a sleep of up to seconds.
static SAVE_ABORTS: AtomicU64 = AtomicU64::new(0);

/// Cuts short the per-key delay of the saves sleeping now.
pub fn wake_saves() {
    SAVE_ABORTS.fetch_add(1, Ordering::SeqCst);
}

/// Called after every config load / CONFIG SET.
pub fn configure(save_delay_us: i64, load_delay_us: i64) {
    let clamp = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    KEY_SAVE_DELAY_US.store(clamp(save_delay_us), Ordering::Relaxed);
    KEY_LOAD_DELAY_US.store(clamp(load_delay_us), Ordering::Relaxed);
}

pub fn save_delay_active() -> bool {
    KEY_SAVE_DELAY_US.load(Ordering::Relaxed) != 0
}

/// Once per key written to an RDB (file, replication payload).
pub fn after_key_saved() {
    let us = KEY_SAVE_DELAY_US.load(Ordering::Relaxed);
    if us <= 0 {
        return delay(us);
    }
    // slept in slices, so that a stopped save ends at once (wake_saves)
    let epoch = SAVE_ABORTS.load(Ordering::SeqCst);
    let mut left = us as u64;
    while left > 0 && SAVE_ABORTS.load(Ordering::SeqCst) == epoch {
        let slice = left.min(5_000);
        std::thread::sleep(Duration::from_micros(slice));
        left -= slice;
    }
}

/// Once per key read from an RDB.
pub fn after_key_loaded() {
    delay(KEY_LOAD_DELAY_US.load(Ordering::Relaxed));
}

/// Redis's debugDelay: a positive value sleeps that many microseconds; a negative one -N
/// sleeps 1 us with probability 1/N (the shortest sleep costs a context switch, so short
/// delays are made by sleeping less often).
fn delay(us: i32) {
    let us = match us {
        0 => return,
        n if n < 0 => {
            let every = -(n as i64) as u64;
            if rand::random::<u64>() % every != 0 {
                return;
            }
            1
        }
        n => n as u64,
    };
    std::thread::sleep(Duration::from_micros(us));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn positive_delay_sleeps_at_least_that_long() {
        let start = Instant::now();
        delay(2000);
        assert!(start.elapsed() >= Duration::from_micros(2000));
    }

    #[test]
    fn zero_and_extreme_values_do_not_panic() {
        delay(0);
        delay(i32::MIN); // -(i32::MIN) overflows an i32: computed in i64
        delay(-1);
    }
}
