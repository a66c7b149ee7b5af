//! The live AOF: a dedicated thread appends command bytes to the current incr file and
//! applies the `appendfsync` policy. Under `always`, writers get a sequence number and wait
//! (`wait_durable`) until the data covering it has been fsynced: many clients share one
//! fsync (group commit) and no tokio worker ever blocks on the disk.
//!
//! A failed write or fsync is handled as Redis does: a partial write is cut off the file;
//! under `always` the process exits (a write already applied cannot be taken back, and
//! nothing unsynced may be acknowledged); otherwise the data stays queued, is retried, and
//! the error (`write_error`) makes the server refuse writes until a write succeeds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

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

enum Msg {
    Append(u64, Bytes),
    /// Switch to another file (after it was created and registered in the manifest).
    Reopen(PathBuf, mpsc::Sender<std::io::Result<()>>),
    SetPolicy(FsyncPolicy),
    Flush(mpsc::Sender<std::io::Result<()>>),
    Stop,
}

/// Handle to the AOF writer thread. Cheap to share behind an `Arc`.
pub struct AofWriter {
    tx: mpsc::Sender<Msg>,
    next_seq: parking_lot::Mutex<u64>,
    durable: watch::Receiver<u64>,
    written_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    write_error: std::sync::Arc<parking_lot::Mutex<Option<String>>>,
    thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AofWriter {
    /// Opens (appending) `path` and starts the writer thread.
    pub fn open(path: &Path, policy: FsyncPolicy) -> std::io::Result<AofWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let start_len = file.metadata()?.len();
        let (tx, rx) = mpsc::channel();
        let (durable_tx, durable_rx) = watch::channel(0u64);
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(start_len));
        let err = std::sync::Arc::new(parking_lot::Mutex::new(None));
        let (w2, e2) = (written.clone(), err.clone());
        let thread = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || writer_loop(file, policy, rx, durable_tx, w2, e2))?;
        Ok(AofWriter {
            tx,
            next_seq: parking_lot::Mutex::new(0),
            durable: durable_rx,
            written_bytes: written,
            write_error: err,
            thread: parking_lot::Mutex::new(Some(thread)),
        })
    }

    /// Queues bytes (already RESP-encoded commands); returns the sequence to wait for.
    pub fn append(&self, data: Bytes) -> u64 {
        let mut seq = self.next_seq.lock();
        *seq += 1;
        let _ = self.tx.send(Msg::Append(*seq, data));
        *seq
    }

    /// Resolves once everything up to `seq` is written (and fsynced under `always`).
    pub async fn wait_durable(&self, seq: u64) {
        let mut rx = self.durable.clone();
        let _ = rx.wait_for(|d| *d >= seq).await;
    }

    /// Blocking variant for non-async callers (tests, shutdown).
    pub fn flush_blocking(&self) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel();
        let _ = self.tx.send(Msg::Flush(tx));
        rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("AOF writer stopped")))
    }

    pub fn reopen_blocking(&self, path: &Path) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel();
        let _ = self.tx.send(Msg::Reopen(path.to_path_buf(), tx));
        rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("AOF writer stopped")))
    }

    pub fn set_policy(&self, policy: FsyncPolicy) {
        let _ = self.tx.send(Msg::SetPolicy(policy));
    }

    /// Size of the current file (`aof_current_size`).
    pub fn current_size(&self) -> u64 {
        self.written_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The reason (Redis's strerror text) while the last write or fsync failed; None once
    /// one succeeded again.
    pub fn write_error(&self) -> Option<String> {
        self.write_error.lock().clone()
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

fn writer_loop(
    mut file: File,
    mut policy: FsyncPolicy,
    rx: mpsc::Receiver<Msg>,
    durable: watch::Sender<u64>,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    write_error: std::sync::Arc<parking_lot::Mutex<Option<String>>>,
) {
    let mut last_fsync = Instant::now();
    let mut last_error_log: Option<Instant> = None;
    let mut dirty = false;
    let mut pending_seq = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Not waited on by replies (everysec / no): let appends gather for a moment, so the
        // writer wakes and writes once per millisecond instead of once per client batch
        // (on a small machine every wake-up is taken from the clients).
        if policy != FsyncPolicy::Always && matches!(first, Some(Msg::Append(..))) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut control = Vec::new();
        let handle = |m: Msg, buf: &mut Vec<u8>, pending: &mut u64, control: &mut Vec<Msg>| match m {
            Msg::Append(seq, data) => {
                buf.extend_from_slice(&data);
                *pending = seq;
            }
            other => control.push(other),
        };
        if let Some(m) = first {
            handle(m, &mut buf, &mut pending_seq, &mut control);
        }
        // Group commit: take everything already queued.
        while control.is_empty() {
            match rx.try_recv() {
                Ok(m) => handle(m, &mut buf, &mut pending_seq, &mut control),
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            let good_len = written.load(std::sync::atomic::Ordering::Relaxed);
            match file.write_all(&buf) {
                Ok(()) => {
                    written.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    buf.clear();
                    dirty = true;
                    if write_error.lock().take().is_some() {
                        warning!("AOF write error looks solved, Redis can write again.");
                    }
                }
                Err(e) => {
                    // Redis logs this once per 30 s while the disk stays full
                    if last_error_log.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(30)) {
                        warning!("Error writing to the AOF file: {}", strerror(&e));
                        last_error_log = Some(Instant::now());
                    }
                    // Whatever part was written goes: the whole buffer is written again later.
                    if let Err(t) = file.set_len(good_len) {
                        warning!("Could not remove short write from the append-only file.  Redis may refuse to load the AOF the next time it starts.  ftruncate: {}", strerror(&t));
                    }
                    if policy == FsyncPolicy::Always {
                        warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                        std::process::exit(1);
                    }
                    *write_error.lock() = Some(strerror(&e));
                }
            }
        }
        let must_sync = match policy {
            FsyncPolicy::Always => dirty,
            FsyncPolicy::EverySec => dirty && last_fsync.elapsed() >= Duration::from_secs(1),
            FsyncPolicy::No => false,
        };
        if must_sync {
            if let Err(e) = file.sync_data() {
                if policy == FsyncPolicy::Always {
                    warning!("Can't persist AOF for fsync error when the AOF fsync policy is 'always': {}. Exiting...", strerror(&e));
                    std::process::exit(1);
                }
                warning!("Error syncing the AOF file: {}", strerror(&e));
                *write_error.lock() = Some(strerror(&e));
            } else {
                dirty = false;
                last_fsync = Instant::now();
                if buf.is_empty() {
                    write_error.lock().take();
                }
            }
        }
        if buf.is_empty() && (policy != FsyncPolicy::Always || !dirty) {
            durable.send_replace(pending_seq);
        }
        for m in control {
            match m {
                Msg::Append(..) => unreachable!("appends are handled above"),
                Msg::SetPolicy(p) => policy = p,
                Msg::Flush(reply) => {
                    let r = file.flush().and_then(|_| file.sync_data());
                    if r.is_ok() {
                        dirty = false;
                    }
                    let _ = reply.send(r);
                }
                Msg::Reopen(path, reply) => {
                    match OpenOptions::new().create(true).append(true).open(&path) {
                        Ok(f) => {
                            written.store(f.metadata().map(|m| m.len()).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
                            let old = std::mem::replace(&mut file, f);
                            // The caller holds the server lock: answer first, then make the
                            // old file durable (what `always` acknowledged already is).
                            let _ = reply.send(Ok(()));
                            if dirty {
                                if let Err(e) = old.sync_data() {
                                    warning!("Error syncing the AOF file: {}", strerror(&e));
                                }
                            }
                            dirty = false;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Msg::Stop => {
                    let _ = file.sync_data();
                    return;
                }
            }
        }
    }
}

/// C's strerror text of an I/O error ("No space left on device"), as Redis prints it.
fn strerror(e: &std::io::Error) -> String {
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
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), w.wait_durable(last)).await.expect("durable in time");
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("cmd0;cmd1;"));
        assert!(text.ends_with("cmd99;"));
        assert_eq!(w.current_size(), text.len() as u64);
        let other = dir.path().join("b.aof");
        w.reopen_blocking(&other).unwrap();
        w.append(Bytes::from_static(b"after"));
        w.flush_blocking().unwrap();
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "after");
    }
}
