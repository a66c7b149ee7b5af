//! The live AOF, written as Redis writes it: commands fed while they execute gather in a
//! buffer, and the buffer is write()n to the current incr file (one write(2), page cache
//! only) before any reply that could depend on them leaves — Redis does it in beforeSleep.
//! A `kill -9` of the process then loses nothing it acknowledged. Only fsync is left to
//! the writer thread: once a second under `everysec`; under `always` on request, many
//! clients sharing one fsync (group commit) while their replies wait (`wait_durable`), so
//! no tokio worker ever blocks on an fsync. The thread also writes what nobody flushed
//! (writes no reply depends on yet) and retries failed writes.
//!
//! A failed write or fsync is handled as Redis does: a partial write is cut off the file;
//! under `always` the process exits (a write already applied cannot be taken back, and
//! nothing unsynced may be acknowledged); otherwise the data stays queued, is retried, and
//! the error (`write_error`) makes the server refuse writes until a write succeeds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::watch;

/// How often the writer thread writes what no reply has flushed yet, and retries a failed
/// write (Redis retries in every event-loop turn).
const WRITE_BEHIND_TICK: Duration = Duration::from_millis(10);

/// A buffer that grew past this is not kept for reuse.
const SPARE_BUFFER_MAX: usize = 1024 * 1024;

/// `DEBUG AOF-FLUSH-SLEEP <us>`: Redis's test knob that sleeps before every write of a
/// non-empty AOF buffer (process-wide, as Redis's server.aof_flush_sleep).
static FLUSH_SLEEP_US: AtomicU64 = AtomicU64::new(0);

/// Sets the `DEBUG AOF-FLUSH-SLEEP` delay (0: none).
pub fn set_flush_sleep_us(us: u64) {
    FLUSH_SLEEP_US.store(us, Ordering::Relaxed);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    EverySec,
    No,
}

impl FsyncPolicy {
    pub fn parse(s: &str) -> Option<FsyncPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

/// Requests to the writer thread.
enum Msg {
    /// fsync what is written now (a reply waits for it, or a file was switched).
    Sync,
    Stop,
}

/// Commands fed and not written yet.
struct Pending {
    buf: BytesMut,
    /// Sequence number of the last command in `buf`.
    last_seq: u64,
}

/// The file end. Its lock is held across a write, so writes reach the file in feed order.
struct FileSide {
    file: Arc<File>,
    /// Files switched away from (AOF rewrite) whose last writes may not be fsynced yet.
    retired: Vec<Arc<File>>,
    last_error_log: Option<Instant>,
    /// An empty buffer kept to swap in for the pending one (no allocation per write).
    spare: BytesMut,
}

/// State shared by the handle and the writer thread. Lock order: `file`, then `pending`.
struct Core {
    pending: Mutex<Pending>,
    file: Mutex<FileSide>,
    /// Sequence of the last command fed / written to the file.
    appended_seq: AtomicU64,
    written_seq: AtomicU64,
    /// Size of the current file.
    written_bytes: AtomicU64,
    policy: Mutex<FsyncPolicy>,
    write_error: Mutex<Option<String>>,
    /// Sequence of the last command fsynced.
    durable: watch::Sender<u64>,
}

impl Core {
    /// Writes what is pending, if anything. Returns the sequence written so far.
    fn write_pending(&self) -> std::io::Result<u64> {
        let written = self.written_seq.load(Ordering::Acquire);
        if self.appended_seq.load(Ordering::Acquire) == written {
            return Ok(written);
        }
        let mut side = self.file.lock();
        self.write_locked(&mut side)
    }

    fn write_locked(&self, side: &mut FileSide) -> std::io::Result<u64> {
        let (mut data, seq) = {
            let mut pending = self.pending.lock();
            if pending.buf.is_empty() {
                return Ok(self.written_seq.load(Ordering::Acquire));
            }
            let spare = std::mem::take(&mut side.spare);
            (std::mem::replace(&mut pending.buf, spare), pending.last_seq)
        };
        let sleep_us = FLUSH_SLEEP_US.load(Ordering::Relaxed);
        if sleep_us > 0 {
            std::thread::sleep(Duration::from_micros(sleep_us));
        }
        let good_len = self.written_bytes.load(Ordering::Relaxed);
        match (&*side.file).write_all(&data) {
            Ok(()) => {
                self.written_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                self.written_seq.store(seq, Ordering::Release);
                data.clear();
                if data.capacity() <= SPARE_BUFFER_MAX {
                    side.spare = data;
                }
                if self.write_error.lock().take().is_some() {
                    warning!("AOF write error looks solved, Redis can write again.");
                }
                Ok(seq)
            }
            Err(e) => {
                // Redis logs this once per 30 s while the disk stays full
                if side.last_error_log.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(30)) {
                    warning!("Error writing to the AOF file: {}", strerror(&e));
                    side.last_error_log = Some(Instant::now());
                }
                // Whatever part was written goes: the whole buffer is written again later.
                if let Err(t) = side.file.set_len(good_len) {
                    warning!("Could not remove short write from the append-only file.  Redis may refuse to load the AOF the next time it starts.  ftruncate: {}", strerror(&t));
                }
                if *self.policy.lock() == FsyncPolicy::Always {
                    warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                    std::process::exit(1);
                }
                *self.write_error.lock() = Some(strerror(&e));
                // Back in front of what was fed meanwhile.
                let mut pending = self.pending.lock();
                data.extend_from_slice(&pending.buf);
                pending.buf = data;
                Err(e)
            }
        }
    }

    /// fsyncs every file holding written data (the current one and any switched away
    /// from), then publishes the sequence that is now durable.
    fn sync(&self) -> std::io::Result<()> {
        let (files, seq) = {
            let mut side = self.file.lock();
            let mut files = std::mem::take(&mut side.retired);
            files.push(side.file.clone());
            (files, self.written_seq.load(Ordering::Acquire))
        };
        let current = files.len() - 1;
        for (i, f) in files.iter().enumerate() {
            if let Err(e) = f.sync_data() {
                // the switched-away files not synced yet stay to be synced
                self.file.lock().retired.extend(files[i.min(current)..current].iter().cloned());
                return Err(e);
            }
        }
        self.durable.send_if_modified(|d| {
            let newer = seq > *d;
            if newer {
                *d = seq;
            }
            newer
        });
        Ok(())
    }

    fn unsynced(&self) -> bool {
        *self.durable.borrow() < self.written_seq.load(Ordering::Acquire) || !self.file.lock().retired.is_empty()
    }

    fn all_written(&self) -> bool {
        self.appended_seq.load(Ordering::Acquire) == self.written_seq.load(Ordering::Acquire)
    }
}

/// Handle to the live AOF. Cheap to share behind an `Arc`.
pub struct AofWriter {
    core: Arc<Core>,
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AofWriter {
    /// Opens (appending) `path` and starts the writer thread.
    pub fn open(path: &Path, policy: FsyncPolicy) -> std::io::Result<AofWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let start_len = file.metadata()?.len();
        let core = Arc::new(Core {
            pending: Mutex::new(Pending { buf: BytesMut::with_capacity(64 * 1024), last_seq: 0 }),
            file: Mutex::new(FileSide { file: Arc::new(file), retired: Vec::new(), last_error_log: None, spare: BytesMut::with_capacity(64 * 1024) }),
            appended_seq: AtomicU64::new(0),
            written_seq: AtomicU64::new(0),
            written_bytes: AtomicU64::new(start_len),
            policy: Mutex::new(policy),
            write_error: Mutex::new(None),
            durable: watch::channel(0u64).0,
        });
        let (tx, rx) = mpsc::channel();
        let thread_core = core.clone();
        let thread = std::thread::Builder::new().name("aof-writer".into()).spawn(move || writer_loop(&thread_core, &rx))?;
        Ok(AofWriter { core, tx, thread: Mutex::new(Some(thread)) })
    }

    /// Queues bytes (already RESP-encoded commands) for the next write; returns their
    /// sequence number.
    pub fn append(&self, data: Bytes) -> u64 {
        self.append_with(|buf| buf.extend_from_slice(&data))
    }

    /// [`AofWriter::append`] of what `encode` puts straight into the buffer.
    pub fn append_with(&self, encode: impl FnOnce(&mut BytesMut)) -> u64 {
        let mut pending = self.core.pending.lock();
        encode(&mut pending.buf);
        pending.last_seq += 1;
        self.core.appended_seq.store(pending.last_seq, Ordering::Release);
        pending.last_seq
    }

    /// write()s everything queued (one write, no fsync): call before sending a reply that
    /// may depend on it. Returns the sequence written so far; a failed write is kept
    /// queued and reported by [`AofWriter::write_error`], as Redis does.
    pub fn write_pending(&self) -> u64 {
        self.core.write_pending().unwrap_or_else(|_| self.core.written_seq.load(Ordering::Acquire))
    }

    /// Resolves once everything up to `seq` is fsynced (the writer thread groups the
    /// requests of many clients into one fsync). `seq` must be written already.
    pub async fn wait_durable(&self, seq: u64) {
        if *self.core.durable.borrow() >= seq {
            return;
        }
        let mut durable = self.core.durable.subscribe();
        let _ = self.tx.send(Msg::Sync);
        let _ = durable.wait_for(|d| *d >= seq).await;
    }

    /// Writes and fsyncs everything queued, on the caller's thread (shutdown, turning the
    /// AOF off, tests).
    pub fn flush_blocking(&self) -> std::io::Result<()> {
        self.core.write_pending()?;
        self.core.sync()
    }

    /// Switches to another file (after it was created and registered in the manifest).
    /// What was fed before the switch is written to the old file first; if that fails the
    /// switch does not happen.
    pub fn reopen_blocking(&self, path: &Path) -> std::io::Result<()> {
        let mut side = self.core.file.lock();
        self.core.write_locked(&mut side)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        self.core.written_bytes.store(file.metadata().map(|m| m.len()).unwrap_or(0), Ordering::Relaxed);
        let old = std::mem::replace(&mut side.file, Arc::new(file));
        side.retired.push(old);
        drop(side);
        // The caller holds the server lock: the old file is made durable on the thread.
        let _ = self.tx.send(Msg::Sync);
        Ok(())
    }

    pub fn set_policy(&self, policy: FsyncPolicy) {
        *self.core.policy.lock() = policy;
    }

    /// Size of the current file (`aof_current_size`).
    pub fn current_size(&self) -> u64 {
        self.core.written_bytes.load(Ordering::Relaxed)
    }

    /// The reason (Redis's strerror text) while the last write or fsync failed; None once
    /// one succeeded again.
    pub fn write_error(&self) -> Option<String> {
        self.core.write_error.lock().clone()
    }
}

impl Drop for AofWriter {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: writes what no reply flushed (and retries failed writes) every tick,
/// and fsyncs as the policy says or as asked.
fn writer_loop(core: &Core, rx: &mpsc::Receiver<Msg>) {
    let mut last_fsync = Instant::now();
    loop {
        let first = match rx.recv_timeout(WRITE_BEHIND_TICK) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Stop),
        };
        // Group commit: one fsync answers every request already queued.
        let (mut sync_requested, mut stop) = (false, false);
        for m in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok()).take(4096)) {
            match m {
                Msg::Sync => sync_requested = true,
                Msg::Stop => stop = true,
            }
        }
        let _ = core.write_pending();
        if stop {
            let _ = core.sync();
            return;
        }
        let policy = *core.policy.lock();
        let due = match policy {
            _ if sync_requested => true,
            FsyncPolicy::Always => core.unsynced(),
            FsyncPolicy::EverySec => last_fsync.elapsed() >= Duration::from_secs(1) && core.unsynced(),
            FsyncPolicy::No => false,
        };
        if !due {
            continue;
        }
        match core.sync() {
            Ok(()) => {
                last_fsync = Instant::now();
                if core.all_written() {
                    core.write_error.lock().take();
                }
            }
            Err(e) => {
                if policy == FsyncPolicy::Always {
                    warning!("Can't persist AOF for fsync error when the AOF fsync policy is 'always': {}. Exiting...", strerror(&e));
                    std::process::exit(1);
                }
                warning!("Error syncing the AOF file: {}", strerror(&e));
                *core.write_error.lock() = Some(strerror(&e));
            }
        }
    }
}

/// C's strerror text of an I/O error ("No space left on device"), as Redis prints it.
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if e.raw_os_error().is_some() => text[..at].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_written_and_become_durable_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.aof");
        let w = AofWriter::open(&path, FsyncPolicy::Always).unwrap();
        let mut last = 0;
        for i in 0..100 {
            last = w.append(Bytes::from(format!("cmd{i};")));
        }
        assert_eq!(w.write_pending(), last);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), w.wait_durable(last)).await.expect("durable in time");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("cmd0;cmd1;"));
        assert!(text.ends_with("cmd99;"));
        assert_eq!(w.current_size(), text.len() as u64);
    }

    #[test]
    fn write_pending_puts_every_queued_byte_in_the_file_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.aof");
        let w = AofWriter::open(&path, FsyncPolicy::EverySec).unwrap();
        for round in 0..50 {
            let mut last = 0;
            for i in 0..20 {
                last = w.append(Bytes::from(format!("r{round}c{i};")));
            }
            assert_eq!(w.write_pending(), last);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.ends_with(&format!("r{round}c19;")), "round {round}: the file ends with {:?}", &text[text.len().saturating_sub(20)..]);
            assert_eq!(w.current_size(), text.len() as u64);
        }
    }

    #[test]
    fn what_was_fed_before_a_reopen_stays_in_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.aof"), dir.path().join("b.aof"));
        let w = AofWriter::open(&first, FsyncPolicy::No).unwrap();
        w.append(Bytes::from_static(b"before;"));
        w.reopen_blocking(&second).unwrap();
        w.append(Bytes::from_static(b"after;"));
        w.flush_blocking().unwrap();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "before;");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "after;");
        assert_eq!(w.current_size(), "after;".len() as u64);
    }
}
