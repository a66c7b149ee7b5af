//! The persistence service the server core drives: load at start-up, SAVE, BGSAVE
//! [SCHEDULE], save points, BGREWRITEAOF and its auto thresholds, the live AOF feed,
//! CONFIG SET appendonly, DEBUG RELOAD, INFO persistence.
//!
//! Background saves never fork: the host hands out a consistent snapshot inside a short
//! barrier (see [`DataHost::snapshot`]) and a plain thread serializes it while clients run.

use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use thiserror::Error;

use super::aof::{load_aof_dir, manifest_name, AofError, AofLoadEvent};
use super::aof_manager::AofManager;
use super::aof_writer::{AofWriter, FsyncPolicy};
use super::host::{load_rdb_into, snapshot_to_rdb, ApplySource, DataHost, DatasetSnapshot, LoadStats};
use super::rdb::{AuxInfo, RdbError, RdbSaveOptions};
use super::state::{PersistenceState, SavePoint};

/// The persistence directives of redis.conf.
#[derive(Debug, Clone)]
pub struct PersistConfig {
    pub dir: PathBuf,
    pub dbfilename: String,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub save_points: Vec<SavePoint>,
    pub appendonly: bool,
    pub appenddirname: String,
    pub appendfilename: String,
    pub appendfsync: FsyncPolicy,
    pub aof_use_rdb_preamble: bool,
    pub aof_load_truncated: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size: u64,
    pub stop_writes_on_bgsave_error: bool,
}

impl Default for PersistConfig {
    fn default() -> Self {
        PersistConfig {
            dir: PathBuf::from("."),
            dbfilename: "dump.rdb".into(),
            rdbcompression: true,
            rdbchecksum: true,
            save_points: vec![
                SavePoint { seconds: 3600, changes: 1 },
                SavePoint { seconds: 300, changes: 100 },
                SavePoint { seconds: 60, changes: 10000 },
            ],
            appendonly: false,
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
            appendfsync: FsyncPolicy::EverySec,
            aof_use_rdb_preamble: true,
            aof_load_truncated: true,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            stop_writes_on_bgsave_error: true,
        }
    }
}

impl PersistConfig {
    pub fn rdb_path(&self) -> PathBuf {
        self.dir.join(&self.dbfilename)
    }
    pub fn aof_dir(&self) -> PathBuf {
        self.dir.join(&self.appenddirname)
    }
    fn save_options(&self) -> RdbSaveOptions {
        RdbSaveOptions { compression: self.rdbcompression, checksum: self.rdbchecksum, ..Default::default() }
    }
}

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("Error loading {path}: {source}")]
    Rdb { path: PathBuf, source: RdbError },
    #[error("{0}")]
    Aof(#[from] AofError),
    #[error("Failed opening the RDB file {path} for saving: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("Background save already in progress")]
    SaveInProgress,
    #[error("Background append only file rewriting already in progress")]
    RewriteInProgress,
}

/// What the start-up load did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartupLoad {
    pub source: Option<PathBuf>,
    pub keys: u64,
    /// Keys of the RDB file left out because they had expired.
    pub expired: u64,
    pub commands: u64,
    /// `repl-id` / `repl-offset` aux fields of the RDB (a restarted replica may PSYNC).
    pub repl_id: Option<String>,
    pub repl_offset: Option<i64>,
    /// `repl-stream-db`: the database the replication stream selects at that offset.
    pub repl_stream_db: Option<u32>,
}

/// Produces a consistent snapshot; the caller guarantees no write runs between the
/// preceding bookkeeping and the snapshot (it holds the server lock, or is a test).
pub type SnapshotFn<'a> = &'a mut dyn FnMut() -> Box<dyn DatasetSnapshot>;

/// The fsync a reply waits for under `appendfsync always`.
pub struct AofSync {
    writer: Arc<AofWriter>,
    seq: u64,
}

impl AofSync {
    pub async fn wait(self) {
        self.writer.wait_durable(self.seq).await;
    }
}

pub struct Persistence {
    pub config: Mutex<PersistConfig>,
    pub state: PersistenceState,
    aof: Mutex<Option<AofManager>>,
    /// AOF size after the last rewrite (auto-aof-rewrite-percentage base).
    aof_rewrite_base_size: std::sync::atomic::AtomicU64,
    /// The server, for jobs that start later on their own (BGSAVE SCHEDULE).
    host: Mutex<Option<Arc<dyn DataHost>>>,
    /// Name of the AOF file whose commands are being replayed (Redis names it in its
    /// loading errors).
    pub loading_file: Mutex<String>,
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn aux(used_mem: u64, aof_base: bool, repl: Option<(i64, String, i64)>) -> AuxInfo {
    AuxInfo { ctime_secs: now_secs(), used_mem, replication: repl, aof_base }
}

impl Persistence {
    pub fn new(config: PersistConfig) -> Arc<Persistence> {
        let p = Arc::new(Persistence {
            config: Mutex::new(config),
            state: PersistenceState::default(),
            aof: Mutex::new(None),
            aof_rewrite_base_size: std::sync::atomic::AtomicU64::new(0),
            loading_file: Mutex::new(String::new()),
            host: Mutex::new(None),
        });
        p.state.aof_enabled.store(p.config.lock().appendonly, Ordering::Relaxed);
        p
    }

    pub fn set_host(&self, host: Arc<dyn DataHost>) {
        *self.host.lock() = Some(host);
    }

    // ------------------------------------------------------------------ start-up

    /// Start-up load through a [`DataHost`] (tests, tools).
    pub fn load_at_startup(&self, host: &dyn DataHost) -> Result<StartupLoad, PersistError> {
        self.load_at_startup_with(
            &|data| load_rdb_into(host, data),
            &mut |db, cmds| host.apply_commands(db, cmds, ApplySource::Aof),
            &mut || host.snapshot(&mut || {}),
        )
    }

    /// Loads the AOF when `appendonly yes` and a manifest exists, else the RDB file; then
    /// opens (or creates) the AOF when it is on. A bad file stops start-up with an error
    /// naming it and the offset; nothing is written in that case.
    pub fn load_at_startup_with(
        &self,
        load_rdb: &dyn Fn(&[u8]) -> Result<LoadStats, RdbError>,
        apply: &mut dyn FnMut(&mut u32, Vec<Vec<Bytes>>),
        snapshot: SnapshotFn<'_>,
    ) -> Result<StartupLoad, PersistError> {
        let cfg = self.config.lock().clone();
        if cfg.appendonly {
            upgrade_old_aof(&cfg);
        }
        self.state.loading.store(true, Ordering::SeqCst);
        let result = self.load_inner(&cfg, load_rdb, apply);
        self.state.loading.store(false, Ordering::SeqCst);
        let loaded = result?;
        self.state.last_load_keys_loaded.store(loaded.keys, Ordering::Relaxed);
        self.state.last_load_keys_expired.store(loaded.expired, Ordering::Relaxed);
        if cfg.appendonly {
            let mgr = if cfg.aof_dir().join(manifest_name(&cfg.appendfilename)).exists() {
                AofManager::open(&cfg.aof_dir(), &cfg.appendfilename, cfg.appendfsync)
            } else {
                // First start with appendonly: the base is what we just loaded.
                let rdb = self.render(&*snapshot(), 0, true)?;
                AofManager::create(&cfg.aof_dir(), &cfg.appendfilename, &rdb, cfg.aof_use_rdb_preamble, cfg.appendfsync)
            }
            .map_err(|source| PersistError::Io { path: cfg.aof_dir(), source })?;
            self.state.aof_current_size.store(mgr.writer.current_size(), Ordering::Relaxed);
            self.aof_rewrite_base_size.store(mgr.writer.current_size(), Ordering::Relaxed);
            *self.aof.lock() = Some(mgr);
            self.state.aof_enabled.store(true, Ordering::Relaxed);
        }
        Ok(loaded)
    }

    fn load_inner(
        &self,
        cfg: &PersistConfig,
        load_rdb: &dyn Fn(&[u8]) -> Result<LoadStats, RdbError>,
        apply: &mut dyn FnMut(&mut u32, Vec<Vec<Bytes>>),
    ) -> Result<StartupLoad, PersistError> {
        let aof_dir = cfg.aof_dir();
        if cfg.appendonly && aof_dir.join(manifest_name(&cfg.appendfilename)).exists() {
            let mut out = StartupLoad { source: Some(aof_dir.clone()), ..Default::default() };
            let mut cmd_db = 0u32;
            let mut pending: Vec<Vec<Bytes>> = Vec::new();
            let mut rdb_error = None;
            let report = load_aof_dir(&aof_dir, &cfg.appendfilename, cfg.aof_load_truncated, |ev| match ev {
                AofLoadEvent::FileStart(path) => {
                    if !pending.is_empty() {
                        apply(&mut cmd_db, std::mem::take(&mut pending));
                    }
                    cmd_db = 0;
                    *self.loading_file.lock() = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    // A base with an RDB preamble is loaded as a whole by `load_rdb`.
                    if let Ok(data) = std::fs::read(&path) {
                        if data.starts_with(b"REDIS") {
                            if let Err(e) = load_rdb(&data) {
                                rdb_error.get_or_insert((path.clone(), e));
                            }
                        }
                    }
                }
                AofLoadEvent::Rdb(_) => {}
                AofLoadEvent::Command(argv) => {
                    pending.push(argv);
                    if pending.len() >= 1024 {
                        apply(&mut cmd_db, std::mem::take(&mut pending));
                    }
                }
            })?;
            if let Some((path, source)) = rdb_error {
                return Err(PersistError::Rdb { path, source });
            }
            if !pending.is_empty() {
                apply(&mut cmd_db, pending);
            }
            if let Some(r) = report {
                out.keys = r.rdb_keys;
                out.commands = r.commands;
                notice!("DB loaded from append only file: {} keys, {} commands", r.rdb_keys, r.commands);
            }
            return Ok(out);
        }
        let path = cfg.rdb_path();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StartupLoad::default()),
            Err(source) => return Err(PersistError::Io { path, source }),
        };
        let stats = load_rdb(&data).map_err(|source| PersistError::Rdb { path: path.clone(), source })?;
        notice!("DB loaded from disk: {} keys", stats.keys);
        Ok(startup_from_stats(path, &stats))
    }

    // ------------------------------------------------------------------ RDB saves

    fn render(&self, snapshot: &dyn DatasetSnapshot, used_mem: u64, aof_base: bool) -> Result<Vec<u8>, PersistError> {
        let cfg = self.config.lock().clone();
        let mut out = Vec::new();
        // only an AOF rewrite (a base) can be stopped half-way
        let never = AtomicBool::new(false);
        let abort = if aof_base { &self.state.aof_rewrite_abort } else { &never };
        let mut w = Abortable { inner: &mut out, abort };
        snapshot_to_rdb(snapshot, &aux(used_mem, aof_base, None), &cfg.save_options(), &mut w)
            .map_err(|source| PersistError::Io { path: cfg.rdb_path(), source })?;
        Ok(out)
    }

    /// Writes the snapshot to `dbfilename` through a temp file + fsync + rename.
    fn write_rdb_file(&self, snapshot: &dyn DatasetSnapshot, aux: &AuxInfo) -> Result<(), PersistError> {
        let cfg = self.config.lock().clone();
        let final_path = cfg.rdb_path();
        let tmp = cfg.dir.join(format!("temp-{}.rdb", std::process::id()));
        let io = |source| PersistError::Io { path: final_path.clone(), source };
        let write = || -> std::io::Result<()> {
            let file = std::fs::File::create(&tmp)?;
            let mut w = Abortable { inner: BufWriter::with_capacity(1 << 20, file), abort: &self.state.bgsave_abort };
            snapshot_to_rdb(snapshot, aux, &cfg.save_options(), &mut w)?;
            let file = w.inner.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &final_path)
        };
        // Redis's rdbSave unlinks its temp file on failure (and when its child is killed)
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }

    /// Stops a running BGSAVE, as Redis's killRDBChild (FLUSHALL does it: the snapshot being
    /// written is of a dataset that is gone). Returns once the save thread has ended (it
    /// checks at every write; bounded wait), so that a SAVE can follow.
    pub fn kill_bgsave(&self) {
        if !self.state.bgsave_in_progress.load(Ordering::SeqCst) {
            return;
        }
        stop_job(&self.state.bgsave_abort, &self.state.bgsave_in_progress);
    }

    /// The end of a rewrite stopped on purpose (appendonly turned off), as Redis's killed
    /// rewrite child: logged, neither a success nor a failure. False when it was not stopped.
    fn end_if_rewrite_stopped(&self) -> bool {
        if !self.state.aof_rewrite_abort.load(Ordering::SeqCst) {
            return false;
        }
        warning!("Background AOF rewrite terminated by signal 10");
        self.state.end_rewrite_aborted();
        true
    }

    /// With `repl-diskless-load disabled` (and `on-empty-db` over a non-empty dataset) Redis
    /// keeps the payload from its master as its RDB file before loading it: a temp file,
    /// fsync, rename to `dbfilename`, fsync of the directory. A replica restarted later
    /// loads that file, with the master's replication id and offset, and can partially resync.
    pub fn store_sync_payload(&self, rdb: &[u8]) -> Result<PathBuf, PersistError> {
        let cfg = self.config.lock().clone();
        let final_path = cfg.rdb_path();
        let tmp = cfg.dir.join(format!("temp-{}.{}.rdb", chrono::Utc::now().timestamp_millis(), std::process::id()));
        let io = |source| PersistError::Io { path: final_path.clone(), source };
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, rdb)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &final_path)?;
            std::fs::File::open(&cfg.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })?;
        Ok(final_path)
    }

    /// Neither save points nor AOF: `rdb-del-sync-files` then removes a stored sync payload.
    pub fn all_persistence_disabled(&self) -> bool {
        let cfg = self.config.lock();
        cfg.save_points.is_empty() && !cfg.appendonly
    }

    /// SAVE through a host (tests, tools).
    pub fn save(&self, host: &dyn DataHost, repl: Option<(i64, String, i64)>) -> Result<(), PersistError> {
        let snapshot = host.snapshot(&mut || {});
        self.save_snapshot(&*snapshot, host.used_memory(), repl)
    }

    /// SAVE: synchronous, as in Redis.
    pub fn save_snapshot(&self, snapshot: &dyn DatasetSnapshot, used_mem: u64, repl: Option<(i64, String, i64)>) -> Result<(), PersistError> {
        if !self.state.begin_save() {
            return Err(PersistError::SaveInProgress);
        }
        self.state.keys_total.store(snapshot.key_count(), Ordering::Relaxed);
        let r = self.write_rdb_file(snapshot, &aux(used_mem, false, repl));
        self.state.end_save(r.is_ok());
        if r.is_ok() {
            notice!("DB saved on disk");
        }
        r
    }

    /// BGSAVE through a host (tests, tools, scheduled saves).
    pub fn bgsave(self: &Arc<Self>, host: Arc<dyn DataHost>, repl: Option<(i64, String, i64)>) -> Result<(), PersistError> {
        if self.state.bgsave_in_progress.load(Ordering::SeqCst) {
            return Err(PersistError::SaveInProgress);
        }
        let snapshot = host.snapshot(&mut || {});
        self.bgsave_snapshot(snapshot, host.used_memory(), repl)
    }

    /// BGSAVE: the snapshot is taken; a background thread writes it.
    pub fn bgsave_snapshot(self: &Arc<Self>, snapshot: Box<dyn DatasetSnapshot>, used_mem: u64, repl: Option<(i64, String, i64)>) -> Result<(), PersistError> {
        if self.state.aof_rewrite_in_progress.load(Ordering::SeqCst) {
            return Err(PersistError::RewriteInProgress);
        }
        if !self.state.begin_save() {
            return Err(PersistError::SaveInProgress);
        }
        self.state.keys_total.store(snapshot.key_count(), Ordering::Relaxed);
        let aux = aux(used_mem, false, repl);
        let me = self.clone();
        notice!("Background saving started");
        std::thread::Builder::new()
            .name("bgsave".into())
            .spawn(move || {
                let r = me.write_rdb_file(&*snapshot, &aux);
                match &r {
                    Ok(()) => notice!("Background saving terminated with success"),
                    // Redis's child killed by killRDBChild's SIGUSR1 (10): not an error
                    Err(_) if me.state.bgsave_abort.load(Ordering::SeqCst) => {
                        warning!("Background saving terminated by signal 10");
                        me.state.end_save_aborted();
                        me.run_scheduled();
                        return;
                    }
                    Err(e) => warning!("Background saving error: {e}"),
                }
                me.state.end_save(r.is_ok());
                me.run_scheduled();
            })
            .map_err(|source| PersistError::Io { path: PathBuf::from("bgsave thread"), source })?;
        Ok(())
    }

    /// Starts a save or rewrite that was scheduled while another job ran.
    fn run_scheduled(self: &Arc<Self>) {
        let Some(host) = self.host.lock().clone() else { return };
        if self.state.aof_rewrite_scheduled.swap(false, Ordering::SeqCst) {
            let _ = self.bgrewriteaof(host);
        } else if self.state.bgsave_scheduled.swap(false, Ordering::SeqCst) {
            let _ = self.bgsave(host, None);
        }
    }

    /// `-MISCONF` (Redis's writeCommandsDeniedByDiskError): when the last background save
    /// failed and stop-writes-on-bgsave-error is on, or while the AOF cannot be written.
    pub fn write_refusal(&self) -> Option<String> {
        let cfg = self.config.lock();
        if cfg.stop_writes_on_bgsave_error && !cfg.save_points.is_empty() && !self.state.last_bgsave_ok.load(Ordering::Relaxed) {
            return Some("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.".into());
        }
        drop(cfg);
        self.aof_write_error().map(|reason| format!("MISCONF Errors writing to the AOF file: {reason}"))
    }

    /// Why the AOF cannot be written now (the writer thread's last write or fsync failed).
    fn aof_write_error(&self) -> Option<String> {
        self.aof.lock().as_ref().and_then(|m| m.writer.write_error())
    }

    pub fn lastsave(&self) -> i64 {
        self.state.lastsave_unix.load(Ordering::SeqCst)
    }

    // ------------------------------------------------------------------ AOF

    /// Feeds one executed write command to the AOF (when enabled); it is written by the
    /// next [`Persistence::aof_before_reply`].
    pub fn feed_aof(&self, db: u32, argv: &[Bytes]) {
        if let Some(mgr) = self.aof.lock().as_mut() {
            mgr.feed_command(db, argv);
        }
    }

    /// Redis's beforeSleep for the AOF: call before sending anything that may depend on
    /// the writes executed so far (replies, a replica's ACK). write()s every command fed
    /// (a process crash then loses none of them); under `appendfsync always`, returns the
    /// fsync to wait for before sending.
    pub fn aof_before_reply(&self) -> Option<AofSync> {
        let writer = self.aof.lock().as_ref()?.writer.clone();
        let seq = writer.write_pending();
        (self.config.lock().appendfsync == FsyncPolicy::Always).then_some(AofSync { writer, seq })
    }

    /// CONFIG SET appendonly through a host (tests).
    pub fn set_appendonly(self: &Arc<Self>, on: bool, host: Arc<dyn DataHost>) -> Result<(), PersistError> {
        let used = host.used_memory();
        self.set_appendonly_with(on, used, &mut || host.snapshot(&mut || {}))
    }

    /// CONFIG SET appendonly yes|no. Turning it on captures writes from this instant into
    /// a new incr file; the base (the snapshot) is written before the manifest exists.
    pub fn set_appendonly_with(self: &Arc<Self>, on: bool, used_mem: u64, snapshot: SnapshotFn<'_>) -> Result<(), PersistError> {
        let cfg = self.config.lock().clone();
        if !on {
            // Redis's stopAppendOnly kills a running rewrite child and waits for it
            if self.state.aof_rewrite_in_progress.load(Ordering::SeqCst) {
                notice!("Killing running AOF rewrite child: {}", std::process::id());
                stop_job(&self.state.aof_rewrite_abort, &self.state.aof_rewrite_in_progress);
            }
            if let Some(m) = self.aof.lock().take() {
                let _ = m.writer.flush_blocking();
            }
            self.config.lock().appendonly = false;
            self.state.aof_enabled.store(false, Ordering::Relaxed);
            return Ok(());
        }
        if self.aof.lock().is_some() {
            return Ok(());
        }
        let aof_dir = cfg.aof_dir();
        let mgr = AofManager::create_pending(&aof_dir, &cfg.appendfilename, cfg.appendfsync)
            .map_err(|source| PersistError::Io { path: aof_dir.clone(), source })?;
        *self.aof.lock() = Some(mgr);
        self.state.aof_enabled.store(true, Ordering::Relaxed);
        self.config.lock().appendonly = true;
        let snap = snapshot();
        let me = self.clone();
        // The base is written in the background, as Redis's rewrite child does.
        self.state.begin_rewrite();
        std::thread::Builder::new()
            .name("aof-base".into())
            .spawn(move || {
                let fail = |source| PersistError::Io { path: aof_dir.clone(), source };
                let result = me.render(&*snap, used_mem, true).and_then(|rdb| {
                    let (name, size) = AofManager::write_base(&aof_dir, &cfg.appendfilename, 1, &rdb, cfg.aof_use_rdb_preamble).map_err(fail)?;
                    if let Some(m) = me.aof.lock().as_mut() {
                        m.install_base(name, 1).map_err(fail)?;
                    }
                    Ok(size)
                });
                if let Ok(size) = &result {
                    me.state.aof_base_size.store(*size, Ordering::Relaxed);
                    me.aof_rewrite_base_size.store(*size, Ordering::Relaxed);
                }
                if result.is_err() && me.end_if_rewrite_stopped() {
                    return;
                }
                if let Err(e) = &result {
                    warning!("Creating the AOF base failed: {e}");
                }
                me.state.end_rewrite(result.is_ok());
            })
            .map_err(|source| PersistError::Io { path: PathBuf::from("aof thread"), source })?;
        Ok(())
    }

    /// BGREWRITEAOF through a host (tests, scheduled rewrites).
    pub fn bgrewriteaof(self: &Arc<Self>, host: Arc<dyn DataHost>) -> Result<bool, PersistError> {
        let used = host.used_memory();
        // The host's barrier makes the file switch and the snapshot atomic.
        let mut switched: Option<Result<bool, PersistError>> = None;
        let mut snap = None;
        let me = self.clone();
        let snapshot = host.snapshot(&mut || {
            switched = Some(me.begin_rewrite_switch());
        });
        if let Some(Ok(true)) = switched {
            snap = Some(snapshot);
        }
        match switched.expect("barrier ran") {
            Ok(true) => self.spawn_rewrite(snap.expect("snapshot"), used).map(|_| true),
            other => other,
        }
    }

    /// BGREWRITEAOF under the server lock: switch files, snapshot, write in the background.
    /// `Ok(false)` means scheduled after the running BGSAVE.
    pub fn bgrewriteaof_with(self: &Arc<Self>, used_mem: u64, snapshot: SnapshotFn<'_>) -> Result<bool, PersistError> {
        if self.aof.lock().is_none() && !self.state.aof_enabled.load(Ordering::SeqCst) {
            return self.rewrite_with_aof_off(used_mem, snapshot);
        }
        if !self.begin_rewrite_switch()? {
            return Ok(false);
        }
        let snap = snapshot();
        self.spawn_rewrite(snap, used_mem)?;
        Ok(true)
    }

    /// BGREWRITEAOF with the AOF off, as Redis 7.0 does it: a new base in the AOF directory
    /// and a manifest listing only it (the incr files of an earlier AOF become history and
    /// are deleted), so that DEBUG LOADAOF or a later start with the AOF on loads it.
    fn rewrite_with_aof_off(self: &Arc<Self>, used_mem: u64, snapshot: SnapshotFn<'_>) -> Result<bool, PersistError> {
        use super::aof::AofManifest;
        if self.state.bgsave_in_progress.load(Ordering::SeqCst) {
            self.state.aof_rewrite_scheduled.store(true, Ordering::SeqCst);
            return Ok(false);
        }
        if !self.state.begin_rewrite() {
            return Err(PersistError::RewriteInProgress);
        }
        let snap = snapshot();
        let me = self.clone();
        notice!("Background append only file rewriting started");
        std::thread::Builder::new()
            .name("aof-rewrite".into())
            .spawn(move || {
                let cfg = me.config.lock().clone();
                let dir = cfg.aof_dir();
                let io = |source| PersistError::Io { path: dir.clone(), source };
                let manifest_path = dir.join(manifest_name(&cfg.appendfilename));
                let result = (|| -> Result<u64, PersistError> {
                    std::fs::create_dir_all(&dir).map_err(io)?;
                    let old = std::fs::read_to_string(&manifest_path).ok().and_then(|t| AofManifest::parse(&t).ok()).unwrap_or_default();
                    let seq = old.base_seq() + 1;
                    let rdb = me.render(&*snap, used_mem, true)?;
                    let (name, size) = AofManager::write_base(&dir, &cfg.appendfilename, seq, &rdb, cfg.aof_use_rdb_preamble).map_err(io)?;
                    let new = AofManifest { base: Some(super::aof::AofFileInfo { name, seq, kind: super::aof::AofFileKind::Base }), incrs: vec![], history: vec![] };
                    super::aof_manager::write_atomically(&manifest_path, new.format().as_bytes()).map_err(io)?;
                    for f in old.base.iter().chain(old.incrs.iter()).chain(old.history.iter()) {
                        let _ = std::fs::remove_file(dir.join(&f.name));
                    }
                    Ok(size)
                })();
                match &result {
                    Ok(size) => {
                        me.state.aof_base_size.store(*size, Ordering::Relaxed);
                        notice!("Background AOF rewrite finished successfully");
                    }
                    Err(e) => warning!("Background AOF rewrite failed: {e}"),
                }
                me.state.end_rewrite(result.is_ok());
                me.run_scheduled();
            })
            .map_err(|source| PersistError::Io { path: PathBuf::from("aof-rewrite thread"), source })?;
        Ok(true)
    }

    fn begin_rewrite_switch(&self) -> Result<bool, PersistError> {
        if self.aof.lock().is_none() {
            return Ok(false);
        }
        if self.state.bgsave_in_progress.load(Ordering::SeqCst) {
            self.state.aof_rewrite_scheduled.store(true, Ordering::SeqCst);
            return Ok(false);
        }
        if !self.state.begin_rewrite() {
            return Err(PersistError::RewriteInProgress);
        }
        let switched = self.aof.lock().as_mut().map(|m| m.begin_rewrite()).unwrap_or(Ok(()));
        if let Err(e) = switched {
            self.state.end_rewrite(false);
            return Err(PersistError::Io { path: self.config.lock().aof_dir(), source: e });
        }
        Ok(true)
    }

    fn spawn_rewrite(self: &Arc<Self>, snapshot: Box<dyn DatasetSnapshot>, used_mem: u64) -> Result<(), PersistError> {
        let me = self.clone();
        notice!("Background append only file rewriting started");
        std::thread::Builder::new()
            .name("aof-rewrite".into())
            .spawn(move || {
                let preamble = me.config.lock().aof_use_rdb_preamble;
                // The base is written without holding the AOF lock; only the manifest switch
                // takes it, so writers are not held up by the rewrite.
                let target = me.aof.lock().as_ref().map(|m| (m.dir.clone(), m.filename.clone(), m.next_base_seq()));
                let result = match target {
                    None => Ok(0),
                    Some((dir, filename, seq)) => me.render(&*snapshot, used_mem, true).and_then(|rdb| {
                        let io = |source| PersistError::Io { path: dir.clone(), source };
                        let (name, size) = AofManager::write_base(&dir, &filename, seq, &rdb, preamble).map_err(io)?;
                        match me.aof.lock().as_mut() {
                            Some(m) => m.commit_rewrite(name, seq).map_err(io).map(|_| size),
                            None => Ok(0),
                        }
                    }),
                };
                if result.is_err() && me.end_if_rewrite_stopped() {
                    me.run_scheduled();
                    return;
                }
                match &result {
                    Ok(size) => {
                        me.state.aof_base_size.store(*size, Ordering::Relaxed);
                        me.aof_rewrite_base_size.store(*size, Ordering::Relaxed);
                        notice!("Background AOF rewrite finished successfully");
                    }
                    Err(e) => warning!("Background AOF rewrite failed: {e}"),
                }
                me.state.end_rewrite(result.is_ok());
                me.run_scheduled();
            })
            .map_err(|source| PersistError::Io { path: PathBuf::from("aof-rewrite thread"), source })?;
        Ok(())
    }

    /// Periodic duties through a host (tests).
    pub fn cron(self: &Arc<Self>, host: &Arc<dyn DataHost>) {
        let used = host.used_memory();
        let h = host.clone();
        self.cron_with(used, None, &mut || h.snapshot(&mut || {}));
    }

    /// Periodic duties (every 100 ms, under the server lock): save points and the auto
    /// AOF rewrite.
    pub fn cron_with(self: &Arc<Self>, used_mem: u64, repl: Option<(i64, String, i64)>, snapshot: SnapshotFn<'_>) {
        let cfg = self.config.lock().clone();
        if let Some(m) = self.aof.lock().as_ref() {
            // CONFIG SET appendfsync reaches the writer here
            m.writer.set_policy(cfg.appendfsync);
            self.state.aof_current_size.store(m.writer.current_size(), Ordering::Relaxed);
        }
        let rewriting = self.state.aof_rewrite_in_progress.load(Ordering::SeqCst);
        if !rewriting && self.state.should_auto_save(&cfg.save_points) {
            notice!("{} changes since the last save. Saving...", self.state.dirty.load(Ordering::Relaxed));
            let _ = self.bgsave_snapshot(snapshot(), used_mem, repl);
            return;
        }
        if cfg.appendonly && cfg.auto_aof_rewrite_percentage > 0 && !rewriting && !self.state.bgsave_in_progress.load(Ordering::SeqCst) {
            let cur = self.state.aof_current_size.load(Ordering::Relaxed);
            let base = self.aof_rewrite_base_size.load(Ordering::Relaxed).max(1);
            let growth = cur.saturating_sub(base) * 100 / base;
            if cur >= cfg.auto_aof_rewrite_min_size && growth >= cfg.auto_aof_rewrite_percentage {
                notice!("Starting automatic rewriting of AOF on {}% growth", growth);
                let _ = self.bgrewriteaof_with(used_mem, snapshot);
            }
        }
    }

    /// DEBUG RELOAD through a host: save, empty the dataset, load the file again.
    pub fn debug_reload(&self, host: &dyn DataHost) -> Result<(), PersistError> {
        self.save(host, None)?;
        let path = self.config.lock().rdb_path();
        let data = std::fs::read(&path).map_err(|source| PersistError::Io { path: path.clone(), source })?;
        host.flush_all();
        load_rdb_into(host, &data).map_err(|source| PersistError::Rdb { path, source })?;
        Ok(())
    }

    /// Flushes the AOF at shutdown.
    pub fn shutdown(&self) {
        self.flush_aof();
    }

    /// Writes (and fsyncs) what the AOF writer holds, when the AOF is on.
    pub fn flush_aof(&self) {
        if let Some(m) = self.aof.lock().as_ref() {
            let _ = m.writer.flush_blocking();
        }
    }

    /// DEBUG LOADAOF: loads the files again as at start-up (the AOF when it is on and has
    /// a manifest, else the RDB file) into a dataset the caller has emptied.
    pub fn reload_from_disk(
        &self,
        load_rdb: &dyn Fn(&[u8]) -> Result<LoadStats, RdbError>,
        apply: &mut dyn FnMut(&mut u32, Vec<Vec<Bytes>>),
    ) -> Result<StartupLoad, PersistError> {
        let mut cfg = self.config.lock().clone();
        // Redis's DEBUG LOADAOF loads the manifest's files even with the AOF off (after a
        // BGREWRITEAOF, which writes them regardless)
        cfg.appendonly = true;
        self.state.loading.store(true, Ordering::SeqCst);
        let result = self.load_inner(&cfg, load_rdb, apply);
        self.state.loading.store(false, Ordering::SeqCst);
        result
    }

    pub fn info_section(&self, unsynced: u64) -> String {
        // the writer thread owns the AOF's status; INFO shows it as of now
        self.state.aof_last_write_ok.store(self.aof_write_error().is_none(), Ordering::Relaxed);
        self.state.info_section(unsynced)
    }
}

/// Redis 7.0's loadAppendOnlyFiles upgrade from a single-file AOF (Redis < 7): an
/// `appendfilename` file in `dir`, and no AOF directory, or one whose manifest is missing or
/// lists nothing, or only that file as base while the directory lacks it. The file is
/// moved into the AOF directory as the base of a new manifest (aofUpgradePrepare). A
/// failure here exits, as in Redis.
fn upgrade_old_aof(cfg: &PersistConfig) {
    use super::aof::{AofFileInfo, AofFileKind, AofManifest};
    let old = cfg.dir.join(&cfg.appendfilename);
    if !old.is_file() {
        return;
    }
    let aof_dir = cfg.aof_dir();
    let manifest_path = aof_dir.join(manifest_name(&cfg.appendfilename));
    let upgrade = if !aof_dir.is_dir() {
        true
    } else {
        match std::fs::read_to_string(&manifest_path) {
            Err(_) => true,
            Ok(text) => match AofManifest::parse(&text) {
                Ok(m) => {
                    (m.base.is_none() && m.incrs.is_empty())
                        || (m.incrs.is_empty()
                            && m.base.as_ref().is_some_and(|b| b.name == cfg.appendfilename)
                            && !aof_dir.join(&cfg.appendfilename).exists())
                }
                Err(_) => false, // the load reports the bad manifest
            },
        }
    };
    if !upgrade {
        return;
    }
    if let Err(e) = std::fs::create_dir_all(&aof_dir) {
        warning!("Can't open or create append-only dir {}: {}", cfg.appenddirname, super::aof_writer::strerror(&e));
        std::process::exit(1);
    }
    let manifest = AofManifest {
        base: Some(AofFileInfo { name: cfg.appendfilename.clone(), seq: 1, kind: AofFileKind::Base }),
        incrs: vec![],
        history: vec![],
    };
    if let Err(e) = super::aof_manager::write_atomically(&manifest_path, manifest.format().as_bytes()) {
        warning!("Can't persist the AOF manifest file {}: {}", manifest_path.display(), super::aof_writer::strerror(&e));
        std::process::exit(1);
    }
    if let Err(e) = std::fs::rename(&old, aof_dir.join(&cfg.appendfilename)) {
        warning!(
            "Error trying to move the old AOF file {} into dir {}: {}",
            cfg.appendfilename,
            cfg.appenddirname,
            super::aof_writer::strerror(&e)
        );
        std::process::exit(1);
    }
    notice!("Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).", cfg.appendfilename, cfg.appenddirname);
}

fn startup_from_stats(path: PathBuf, stats: &LoadStats) -> StartupLoad {
    StartupLoad {
        source: Some(path),
        keys: stats.keys,
        expired: stats.expired,
        commands: 0,
        repl_id: stats.aux_value("repl-id").map(|v| String::from_utf8_lossy(v).to_string()),
        repl_offset: stats.aux_value("repl-offset").and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()),
        repl_stream_db: stats.aux_value("repl-stream-db").and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()),
    }
}

/// Stops a background job as Redis kills its child: `abort` is set (the job's writer checks
/// it at every write), a per-key save delay is cut short, and the wait for `running` to
/// clear is bounded (10 s).
fn stop_job(abort: &AtomicBool, running: &AtomicBool) {
    abort.store(true, Ordering::SeqCst);
    super::debug_delay::wake_saves();
    for _ in 0..10_000 {
        if !running.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A writer that fails once `abort` is set: how a BGSAVE thread is stopped between two
/// writes of its snapshot (Redis kills its child).
struct Abortable<'a, W: std::io::Write> {
    inner: W,
    abort: &'a AtomicBool,
}

impl<W: std::io::Write> std::io::Write for Abortable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.abort.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("background save aborted"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
