//! Persistence bookkeeping: `save` points, the dirty counter, LASTSAVE, BGSAVE/BGREWRITEAOF
//! status, and the `# Persistence` section of INFO with Redis 7.0's fields.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// One `save <seconds> <changes>` point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    pub seconds: u64,
    pub changes: u64,
}

/// Parses the value of the `save` directive: pairs of integers, or "" to disable.
pub fn parse_save_points(value: &str) -> Result<Vec<SavePoint>, String> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() % 2 != 0 {
        return Err("Invalid save parameters".into());
    }
    parts
        .chunks(2)
        .map(|p| match (p[0].parse::<u64>(), p[1].parse::<u64>()) {
            (Ok(seconds), Ok(changes)) => Ok(SavePoint { seconds, changes }),
            _ => Err("Invalid save parameters".into()),
        })
        .collect()
}

pub fn format_save_points(points: &[SavePoint]) -> String {
    points.iter().map(|p| format!("{} {}", p.seconds, p.changes)).collect::<Vec<_>>().join(" ")
}

/// Redis retries a failed automatic BGSAVE only after this delay.
const BGSAVE_RETRY_DELAY: Duration = Duration::from_secs(5);

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[derive(Debug)]
pub struct PersistenceState {
    /// Writes since the last successful save (`rdb_changes_since_last_save`).
    pub dirty: AtomicU64,
    /// Dirty value when the running BGSAVE started (subtracted on success).
    dirty_at_bgsave_start: AtomicU64,
    pub lastsave_unix: AtomicI64,
    last_save_instant: Mutex<Instant>,
    pub bgsave_in_progress: AtomicBool,
    /// RDB payloads for replicas' full syncs being produced: Redis produces them with an
    /// RDB child too, so INFO shows `rdb_bgsave_in_progress:1` meanwhile.
    pub repl_rdb_jobs: std::sync::atomic::AtomicUsize,
    /// Set to stop the running BGSAVE (Redis's killRDBChild, e.g. by FLUSHALL).
    pub bgsave_abort: AtomicBool,
    bgsave_started: Mutex<Option<Instant>>,
    last_bgsave_try: Mutex<Option<Instant>>,
    pub last_bgsave_ok: AtomicBool,
    pub last_bgsave_secs: AtomicI64,
    pub rdb_saves: AtomicU64,
    pub bgsave_scheduled: AtomicBool,
    pub keys_processed: AtomicU64,
    pub keys_total: AtomicU64,
    pub loading: AtomicBool,
    pub last_load_keys_loaded: AtomicU64,
    pub last_load_keys_expired: AtomicU64,
    // AOF
    pub aof_enabled: AtomicBool,
    pub aof_rewrite_in_progress: AtomicBool,
    /// Set to stop the running rewrite (Redis's killAppendOnlyChild: appendonly turned off).
    pub aof_rewrite_abort: AtomicBool,
    pub aof_rewrite_scheduled: AtomicBool,
    aof_rewrite_started: Mutex<Option<Instant>>,
    pub aof_last_rewrite_secs: AtomicI64,
    pub aof_last_rewrite_ok: AtomicBool,
    pub aof_rewrites: AtomicU64,
    pub aof_rewrite_failures: AtomicU64,
    pub aof_last_write_ok: AtomicBool,
    pub aof_current_size: AtomicU64,
    pub aof_base_size: AtomicU64,
}

impl Default for PersistenceState {
    fn default() -> Self {
        PersistenceState {
            dirty: AtomicU64::new(0),
            dirty_at_bgsave_start: AtomicU64::new(0),
            lastsave_unix: AtomicI64::new(unix_now()),
            last_save_instant: Mutex::new(Instant::now()),
            bgsave_in_progress: AtomicBool::new(false),
            repl_rdb_jobs: std::sync::atomic::AtomicUsize::new(0),
            bgsave_abort: AtomicBool::new(false),
            bgsave_started: Mutex::new(None),
            last_bgsave_try: Mutex::new(None),
            last_bgsave_ok: AtomicBool::new(true),
            last_bgsave_secs: AtomicI64::new(-1),
            rdb_saves: AtomicU64::new(0),
            bgsave_scheduled: AtomicBool::new(false),
            keys_processed: AtomicU64::new(0),
            keys_total: AtomicU64::new(0),
            loading: AtomicBool::new(false),
            last_load_keys_loaded: AtomicU64::new(0),
            last_load_keys_expired: AtomicU64::new(0),
            aof_enabled: AtomicBool::new(false),
            aof_rewrite_in_progress: AtomicBool::new(false),
            aof_rewrite_abort: AtomicBool::new(false),
            aof_rewrite_scheduled: AtomicBool::new(false),
            aof_rewrite_started: Mutex::new(None),
            aof_last_rewrite_secs: AtomicI64::new(-1),
            aof_last_rewrite_ok: AtomicBool::new(true),
            aof_rewrites: AtomicU64::new(0),
            aof_rewrite_failures: AtomicU64::new(0),
            aof_last_write_ok: AtomicBool::new(true),
            aof_current_size: AtomicU64::new(0),
            aof_base_size: AtomicU64::new(0),
        }
    }
}

impl PersistenceState {
    pub fn add_dirty(&self, n: u64) {
        self.dirty.fetch_add(n, Ordering::Relaxed);
    }

    /// True when a save point is reached and no save is running (serverCron's check).
    pub fn should_auto_save(&self, points: &[SavePoint]) -> bool {
        if self.bgsave_in_progress.load(Ordering::SeqCst) {
            return false;
        }
        let dirty = self.dirty.load(Ordering::Relaxed);
        let since = self.last_save_instant.lock().elapsed();
        let retry_ok = self.last_bgsave_ok.load(Ordering::Relaxed)
            || self.last_bgsave_try.lock().is_none_or(|t| t.elapsed() > BGSAVE_RETRY_DELAY);
        retry_ok && points.iter().any(|p| dirty >= p.changes && since.as_secs() >= p.seconds)
    }

    /// Marks the start of a (background) save; false if one already runs.
    pub fn begin_save(&self) -> bool {
        if self.bgsave_in_progress.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.bgsave_abort.store(false, Ordering::SeqCst);
        self.dirty_at_bgsave_start.store(self.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
        *self.bgsave_started.lock() = Some(Instant::now());
        *self.last_bgsave_try.lock() = Some(Instant::now());
        self.keys_processed.store(0, Ordering::Relaxed);
        true
    }

    /// The end of a save that was stopped on purpose (Redis's child killed by SIGUSR1):
    /// neither an error nor a save (status and change counter are left as they were).
    pub fn end_save_aborted(&self) {
        if let Some(s) = self.bgsave_started.lock().take() {
            self.last_bgsave_secs.store(s.elapsed().as_secs() as i64, Ordering::Relaxed);
        }
        self.bgsave_in_progress.store(false, Ordering::SeqCst);
    }

    pub fn end_save(&self, ok: bool) {
        let started = self.bgsave_started.lock().take();
        if let Some(s) = started {
            self.last_bgsave_secs.store(s.elapsed().as_secs() as i64, Ordering::Relaxed);
        }
        self.last_bgsave_ok.store(ok, Ordering::SeqCst);
        if ok {
            let at_start = self.dirty_at_bgsave_start.load(Ordering::Relaxed);
            let _ = self.dirty.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| Some(d.saturating_sub(at_start)));
            self.lastsave_unix.store(unix_now(), Ordering::SeqCst);
            *self.last_save_instant.lock() = Instant::now();
            self.rdb_saves.fetch_add(1, Ordering::Relaxed);
        }
        self.bgsave_in_progress.store(false, Ordering::SeqCst);
    }

    pub fn begin_rewrite(&self) -> bool {
        if self.aof_rewrite_in_progress.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.aof_rewrite_abort.store(false, Ordering::SeqCst);
        *self.aof_rewrite_started.lock() = Some(Instant::now());
        true
    }

    /// A rewrite stopped on purpose ends without counting as a success or a failure.
    pub fn end_rewrite_aborted(&self) {
        self.aof_rewrite_started.lock().take();
        self.aof_rewrite_in_progress.store(false, Ordering::SeqCst);
    }

    pub fn end_rewrite(&self, ok: bool) {
        if let Some(s) = self.aof_rewrite_started.lock().take() {
            self.aof_last_rewrite_secs.store(s.elapsed().as_secs() as i64, Ordering::Relaxed);
        }
        self.aof_last_rewrite_ok.store(ok, Ordering::Relaxed);
        if ok {
            self.aof_rewrites.fetch_add(1, Ordering::Relaxed);
            self.aof_rewrite_failures.store(0, Ordering::Relaxed);
        } else {
            self.aof_rewrite_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.aof_rewrite_in_progress.store(false, Ordering::SeqCst);
    }

    /// The `# Persistence` INFO section, field for field as Redis 7.0 (fork/COW fields are 0:
    /// we take snapshots without forking). `unsynced`: writes the core made since its last
    /// [`PersistenceState::add_dirty`] (the cron hands them over every 100 ms).
    pub fn info_section(&self, unsynced: u64) -> String {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let b = |a: &AtomicBool| u8::from(a.load(Ordering::Relaxed));
        let mut s = String::from("# Persistence\r\n");
        let _ = write!(s, "loading:{}\r\nasync_loading:0\r\n", b(&self.loading));
        s.push_str("current_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\n");
        let in_progress = self.bgsave_in_progress.load(Ordering::Relaxed);
        let (processed, total) = if in_progress { (ld(&self.keys_processed), ld(&self.keys_total)) } else { (0, 0) };
        let _ = write!(s, "current_save_keys_processed:{processed}\r\ncurrent_save_keys_total:{total}\r\n");
        let _ = write!(s, "rdb_changes_since_last_save:{}\r\n", ld(&self.dirty) + unsynced);
        let repl_job = self.repl_rdb_jobs.load(Ordering::Relaxed) > 0;
        let _ = write!(s, "rdb_bgsave_in_progress:{}\r\n", u8::from(in_progress || repl_job));
        let _ = write!(s, "rdb_last_save_time:{}\r\n", self.lastsave_unix.load(Ordering::Relaxed));
        let _ = write!(s, "rdb_last_bgsave_status:{}\r\n", if self.last_bgsave_ok.load(Ordering::Relaxed) { "ok" } else { "err" });
        let _ = write!(s, "rdb_last_bgsave_time_sec:{}\r\n", self.last_bgsave_secs.load(Ordering::Relaxed));
        let current = self.bgsave_started.lock().map(|t| t.elapsed().as_secs() as i64).unwrap_or(-1);
        let _ = write!(s, "rdb_current_bgsave_time_sec:{current}\r\n");
        let _ = write!(s, "rdb_saves:{}\r\nrdb_last_cow_size:0\r\n", ld(&self.rdb_saves));
        let _ = write!(
            s,
            "rdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\n",
            ld(&self.last_load_keys_expired),
            ld(&self.last_load_keys_loaded)
        );
        let aof_on = self.aof_enabled.load(Ordering::Relaxed);
        let _ = write!(s, "aof_enabled:{}\r\n", u8::from(aof_on));
        let _ = write!(s, "aof_rewrite_in_progress:{}\r\n", b(&self.aof_rewrite_in_progress));
        let _ = write!(s, "aof_rewrite_scheduled:{}\r\n", b(&self.aof_rewrite_scheduled));
        let _ = write!(s, "aof_last_rewrite_time_sec:{}\r\n", self.aof_last_rewrite_secs.load(Ordering::Relaxed));
        let cur = self.aof_rewrite_started.lock().map(|t| t.elapsed().as_secs() as i64).unwrap_or(-1);
        let _ = write!(s, "aof_current_rewrite_time_sec:{cur}\r\n");
        let _ = write!(s, "aof_last_bgrewrite_status:{}\r\n", if self.aof_last_rewrite_ok.load(Ordering::Relaxed) { "ok" } else { "err" });
        let _ = write!(s, "aof_rewrites:{}\r\n", ld(&self.aof_rewrites));
        let _ = write!(s, "aof_rewrites_consecutive_failures:{}\r\n", ld(&self.aof_rewrite_failures));
        let _ = write!(s, "aof_last_write_status:{}\r\n", if self.aof_last_write_ok.load(Ordering::Relaxed) { "ok" } else { "err" });
        s.push_str("aof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n");
        if aof_on {
            let _ = write!(s, "aof_current_size:{}\r\naof_base_size:{}\r\n", ld(&self.aof_current_size), ld(&self.aof_base_size));
            let _ = write!(s, "aof_pending_rewrite:{}\r\n", b(&self.aof_rewrite_scheduled));
            s.push_str("aof_buffer_length:0\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_points_parse_and_trigger() {
        assert_eq!(parse_save_points("3600 1 300 100").unwrap(), vec![SavePoint { seconds: 3600, changes: 1 }, SavePoint { seconds: 300, changes: 100 }]);
        assert_eq!(parse_save_points("").unwrap(), vec![]);
        assert!(parse_save_points("10").is_err());
        assert!(parse_save_points("a b").is_err());
        let st = PersistenceState::default();
        let points = parse_save_points("0 5").unwrap();
        assert!(!st.should_auto_save(&points));
        st.add_dirty(5);
        assert!(st.should_auto_save(&points));
        assert!(st.begin_save());
        assert!(!st.begin_save(), "one save at a time");
        st.add_dirty(2); // writes during the save stay dirty
        st.end_save(true);
        assert_eq!(st.dirty.load(Ordering::Relaxed), 2);
        assert!(!st.should_auto_save(&points));
    }

    #[test]
    fn info_has_redis_fields_in_order() {
        let st = PersistenceState::default();
        let info = st.info_section(0);
        let names: Vec<&str> = info.lines().skip(1).map(|l| l.split(':').next().unwrap()).collect();
        let expected = "loading async_loading current_cow_peak current_cow_size current_cow_size_age current_fork_perc current_save_keys_processed current_save_keys_total rdb_changes_since_last_save rdb_bgsave_in_progress rdb_last_save_time rdb_last_bgsave_status rdb_last_bgsave_time_sec rdb_current_bgsave_time_sec rdb_saves rdb_last_cow_size rdb_last_load_keys_expired rdb_last_load_keys_loaded aof_enabled aof_rewrite_in_progress aof_rewrite_scheduled aof_last_rewrite_time_sec aof_current_rewrite_time_sec aof_last_bgrewrite_status aof_rewrites aof_rewrites_consecutive_failures aof_last_write_status aof_last_cow_size module_fork_in_progress module_fork_last_cow_size";
        assert_eq!(names, expected.split(' ').collect::<Vec<_>>());
    }
}
