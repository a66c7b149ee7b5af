//! Long scripts as Redis 7.0 handles them, and FUNCTION LOAD's time limit.
//!
//! Past `busy-reply-threshold` (`lua-time-limit`) a running EVAL / FCALL is "busy": other
//! clients get `-BUSY`, except for the commands flagged `allow_busy`; SCRIPT KILL / FUNCTION
//! KILL stop a script that has not written, `SHUTDOWN NOSAVE` stops the server.
//!
//! A script runs with the server state locked, on the runtime's worker thread. Redis serves
//! events from its Lua hook while a script is busy; we cannot poll other tasks from inside
//! one, so the hook hands the worker over instead: `io-threads 1` runs a multi-thread
//! runtime with one worker, and once the threshold passes the hook calls
//! [`tokio::task::block_in_place`], which gives the worker's core to a new thread. The hook
//! waits (bounded) until a probe task ran there, proof that the new thread owns the core;
//! the rest of the script then runs on this thread outside the worker, which serves the
//! other connections meanwhile. They read the atomics of [`ScriptWatch`] before locking the
//! state (see `Shared::lock_unless_busy`): a busy script is answered without the state,
//! and a KILL sets a flag the hook reads. Short scripts pay two atomic stores per run and
//! a hook call every 100 000 VM instructions, as in Redis. The other ways out were a thread
//! hop per EVAL (a script thread) or a hook that polls the connections itself, which tokio
//! does not offer.
//!
//! Not as Redis yet: the `allow_busy` commands that need the state (MULTI, WATCH, UNWATCH,
//! DISCARD, RESET, AUTH, HELLO, REPLCONF, FUNCTION STATS during an FCALL) run once the script
//! ended instead of at once; with `io-threads` > 1 a worker that was already waiting for the
//! lock when the script went busy stays blocked until it ends (other workers answer).
//!
//! FUNCTION LOAD's top level may run 500 ms, then the load fails with "FUNCTION LOAD
//! timeout" (Redis's `luaEngineLoadHook`); it never goes busy.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mlua::{HookTriggers, Lua, Table, VmState};

use crate::resp::Frame;
use crate::server::command::{flags, CommandTable};

/// VM instructions between two looks at the clock (Redis's count hook uses the same).
const HOOK_EVERY: u32 = 100_000;

/// How long the hook waits for a new thread to take over the worker.
const HAND_OFF_WAIT: Duration = Duration::from_secs(1);

pub const BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// Why the running script must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Kill,
    /// SHUTDOWN NOSAVE (FORCE when `force`).
    Shutdown { force: bool },
}

const STOP_NONE: u8 = 0;
const STOP_KILL: u8 = 1;
const STOP_SHUTDOWN: u8 = 2;
const STOP_SHUTDOWN_FORCE: u8 = 3;

/// The running script as the other tasks see it, without the server lock.
#[derive(Debug, Default)]
pub struct ScriptWatch {
    /// When the running script started (ms), 0 when none runs.
    started_ms: AtomicI64,
    threshold_ms: AtomicI64,
    /// Past the threshold: other clients get -BUSY (Redis's "timed out" script).
    busy: AtomicBool,
    /// The worker was handed to another thread during this run.
    handed_off: AtomicBool,
    eval_mode: AtomicBool,
    write_dirty: AtomicBool,
    stop: AtomicU8,
    /// requirepass is set: clients that did not AUTH get NOAUTH rather than -BUSY.
    auth_required: AtomicBool,
    /// Protected mode without a password: only loopback clients are served at all.
    loopback_only: AtomicBool,
    /// The dataset is being loaded (DEBUG LOADAOF replaying a script): commands not allowed
    /// while loading get -LOADING before -BUSY, as in Redis's processCommand.
    loading: AtomicBool,
    /// The running function's FUNCTION STATS, answered while it is busy.
    running_function: parking_lot::Mutex<Option<RunningFunction>>,
}

/// What FUNCTION STATS shows about a running function (Redis's `functionStatsCommand`).
#[derive(Debug, Clone)]
pub struct RunningFunction {
    pub name: String,
    pub command: Vec<Bytes>,
    pub libraries: i64,
    pub functions: i64,
}

impl ScriptWatch {
    /// A script starts (under the server lock).
    pub fn begin(&self, eval_mode: bool, threshold_ms: i64, auth_required: bool, loopback_only: bool) {
        self.loopback_only.store(loopback_only, Ordering::Relaxed);
        self.threshold_ms.store(threshold_ms, Ordering::Relaxed);
        self.eval_mode.store(eval_mode, Ordering::Relaxed);
        self.auth_required.store(auth_required, Ordering::Relaxed);
        self.write_dirty.store(false, Ordering::Relaxed);
        self.stop.store(STOP_NONE, Ordering::Relaxed);
        self.started_ms.store(crate::server::now_ms().max(1), Ordering::Release);
    }

    /// The script ended (still under the lock): what stopped it, if anything did.
    pub fn end(&self) -> Option<Stop> {
        *self.running_function.lock() = None;
        self.started_ms.store(0, Ordering::Release);
        self.handed_off.store(false, Ordering::Relaxed);
        let stop = self.stop.swap(STOP_NONE, Ordering::AcqRel);
        self.busy.store(false, Ordering::Release);
        decode_stop(stop)
    }

    /// A load (DEBUG LOADAOF) starts or ends.
    pub fn set_loading(&self, on: bool) {
        self.loading.store(on, Ordering::Release);
    }

    /// The function now starting (FUNCTION STATS while it runs).
    pub fn set_running_function(&self, f: Option<RunningFunction>) {
        *self.running_function.lock() = f;
    }

    /// FUNCTION STATS answered during a busy function, as Redis answers it.
    fn function_stats(&self) -> Frame {
        let Some(f) = self.running_function.lock().clone() else { return self.busy_error() };
        let started = self.started_ms.load(Ordering::Acquire);
        let duration = (crate::server::now_ms() - started).max(0);
        Frame::Map(vec![
            (
                Frame::bulk("running_script"),
                Frame::Map(vec![
                    (Frame::bulk("name"), Frame::bulk(f.name)),
                    (Frame::bulk("command"), Frame::Array(f.command.into_iter().map(Frame::Bulk).collect())),
                    (Frame::bulk("duration_ms"), Frame::Integer(duration)),
                ]),
            ),
            (
                Frame::bulk("engines"),
                Frame::Map(vec![(
                    Frame::bulk("LUA"),
                    Frame::Map(vec![
                        (Frame::bulk("libraries_count"), Frame::Integer(f.libraries)),
                        (Frame::bulk("functions_count"), Frame::Integer(f.functions)),
                    ]),
                )]),
            ),
        ])
    }

    /// The script ran a write command: it can no longer be killed.
    pub fn note_write(&self) {
        self.write_dirty.store(true, Ordering::Relaxed);
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Whether a new connection from `loopback` may be answered while the script is busy
    /// (protected mode refuses the others once the state is free).
    pub fn may_answer_new_client(&self, loopback: bool) -> bool {
        loopback || !self.loopback_only.load(Ordering::Relaxed)
    }

    pub fn script_running(&self) -> bool {
        self.started_ms.load(Ordering::Acquire) != 0
    }

    /// The -BUSY error for the kind of script running.
    pub fn busy_error(&self) -> Frame {
        Frame::error(if self.eval_mode.load(Ordering::Relaxed) { BUSY_EVAL } else { BUSY_FUNCTION })
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL while a script is busy (Redis's `scriptKill`).
    pub fn kill(&self, eval: bool) -> Frame {
        if !self.is_busy() {
            return Frame::error("NOTBUSY No scripts in execution right now.");
        }
        if self.write_dirty.load(Ordering::Relaxed) {
            return Frame::error(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            );
        }
        let running_eval = self.eval_mode.load(Ordering::Relaxed);
        if eval != running_eval {
            // The KILL of the other kind gets the -BUSY text that names the right one.
            return self.busy_error();
        }
        let _ = self.stop.compare_exchange(STOP_NONE, STOP_KILL, Ordering::AcqRel, Ordering::Relaxed);
        Frame::ok()
    }

    /// SHUTDOWN NOSAVE while busy: the script stops at its next hook call and the server
    /// shuts down once it released the state.
    pub fn request_shutdown(&self, force: bool) {
        self.stop.store(if force { STOP_SHUTDOWN_FORCE } else { STOP_SHUTDOWN }, Ordering::Release);
    }

    /// Waits (asynchronously) until no busy script holds the state.
    pub async fn until_idle(&self) {
        while self.is_busy() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The count hook of the script interpreters (Redis's `luaMaskCountHook`).
    fn on_hook(self: &Arc<Self>, lua: &Lua) -> mlua::Result<VmState> {
        let started = self.started_ms.load(Ordering::Acquire);
        if started == 0 {
            return Ok(VmState::Continue);
        }
        if let Some(stop) = decode_stop(self.stop.load(Ordering::Acquire)) {
            if stop == Stop::Kill {
                crate::server::log::warning("Lua script killed by user with SCRIPT KILL.");
            }
            // From now on every line raises, so a script cannot catch the error with pcall
            // and go on for good.
            install_hook(lua, self.clone(), HookTriggers::new().every_line().every_nth_instruction(HOOK_EVERY))?;
            return Err(mlua::Error::RuntimeError(KILLED.into()));
        }
        if !self.is_busy() {
            let elapsed = crate::server::now_ms() - started;
            if elapsed < self.threshold_ms.load(Ordering::Relaxed) {
                return Ok(VmState::Continue);
            }
            let kill = if self.eval_mode.load(Ordering::Relaxed) { "SCRIPT KILL" } else { "FUNCTION KILL" };
            crate::server::log::warning(&format!(
                "Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the {kill} command."
            ));
            self.busy.store(true, Ordering::Release);
        }
        if !self.handed_off.load(Ordering::Relaxed) && hand_off_worker() {
            self.handed_off.store(true, Ordering::Relaxed);
        }
        Ok(VmState::Continue)
    }
}

fn decode_stop(stop: u8) -> Option<Stop> {
    match stop {
        STOP_KILL => Some(Stop::Kill),
        STOP_SHUTDOWN => Some(Stop::Shutdown { force: false }),
        STOP_SHUTDOWN_FORCE => Some(Stop::Shutdown { force: true }),
        _ => None,
    }
}

fn install_hook(lua: &Lua, watch: Arc<ScriptWatch>, triggers: HookTriggers) -> mlua::Result<()> {
    lua.set_global_hook(triggers, move |lua, _| watch.on_hook(lua))
}

/// Installs the busy-script hook on an interpreter (again after a kill or a FUNCTION LOAD,
/// which replace it).
pub fn install_busy_hook(lua: &Lua, watch: &Arc<ScriptWatch>) -> mlua::Result<()> {
    install_hook(lua, watch.clone(), HookTriggers::new().every_nth_instruction(HOOK_EVERY))
}

/// Gives this thread's runtime worker to a new thread (see the module doc). True once a
/// probe task ran on it; false outside a multi-thread runtime or when nothing took over in
/// time (the hook tries again at its next call).
fn hand_off_worker() -> bool {
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return false };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return false;
    }
    tokio::task::block_in_place(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        handle.spawn(async move {
            let _ = tx.send(());
        });
        rx.recv_timeout(HAND_OFF_WAIT).is_ok()
    })
}

/// What a connection does with a request while a script is busy.
pub enum WhileBusy {
    /// The command ran (KILL) or answered its own error.
    Reply(Frame),
    /// Redis's `rejectCommand`: the error, and a transaction in progress is flagged so that
    /// its EXEC aborts.
    Rejected(Frame),
    /// EXEC of an open transaction: rejected, which discards the transaction.
    AbortExec(Frame),
    /// QUIT: +OK and close.
    Quit,
    /// SHUTDOWN NOSAVE was passed on to the script; the server exits when it stops (the
    /// command runs as usual afterwards if it did not).
    Shutdown,
    /// An allow_busy command that needs the server state (MULTI, WATCH, AUTH, HELLO...): it
    /// runs once the script ended.
    WaitForState,
    /// MULTI: answered at once as Redis (+OK, or the nesting error); the transaction is
    /// opened in the client's state at its next batch.
    OpenMulti,
}

/// Redis's processCommand for a busy script: the checks before it (unknown command, arity,
/// authentication), then -BUSY unless the command is allowed while busy. `in_multi`: the
/// client has a transaction open (a command rejected meanwhile makes its EXEC abort).
pub fn answer_while_busy(watch: &ScriptWatch, table: &CommandTable, args: &[Bytes], authenticated: bool, in_multi: bool) -> WhileBusy {
    use crate::server::dispatch;
    let Some(top) = table.lookup(&args[0]) else {
        return WhileBusy::Rejected(dispatch::unknown_command_error(args));
    };
    let spec = match dispatch::resolve(top, args) {
        Ok(s) => s,
        Err(e) => return WhileBusy::Rejected(e),
    };
    if !spec.check_arity(args.len()) {
        return WhileBusy::Rejected(crate::server::command::wrong_args(&spec.name));
    }
    if !authenticated && watch.auth_required.load(Ordering::Relaxed) && !spec.has(flags::NO_AUTH) {
        return WhileBusy::Rejected(Frame::error("NOAUTH Authentication required."));
    }
    if spec.name == "quit" {
        return WhileBusy::Quit;
    }
    if watch.loading.load(Ordering::Acquire) && !spec.has(flags::LOADING) {
        return WhileBusy::Rejected(Frame::error("LOADING Redis is loading the dataset in memory"));
    }
    if !spec.has(flags::ALLOW_BUSY) {
        if spec.name == "exec" && in_multi {
            let Frame::Error(reason) = watch.busy_error() else { unreachable!("busy_error is an error") };
            return WhileBusy::AbortExec(Frame::error(format!("EXECABORT Transaction discarded because of: {reason}")));
        }
        return WhileBusy::Rejected(watch.busy_error());
    }
    match spec.name.as_str() {
        "script|kill" => WhileBusy::Reply(watch.kill(true)),
        "function|kill" => WhileBusy::Reply(watch.kill(false)),
        "shutdown" => {
            let has = |word: &[u8]| args[1..].iter().any(|a| a.eq_ignore_ascii_case(word));
            if !has(b"nosave") || has(b"save") {
                return WhileBusy::Reply(watch.busy_error());
            }
            watch.request_shutdown(has(b"force"));
            WhileBusy::Shutdown
        }
        "function|stats" if watch.eval_mode.load(Ordering::Relaxed) => WhileBusy::Reply(watch.busy_error()),
        "function|stats" => WhileBusy::Reply(watch.function_stats()),
        "multi" if in_multi => WhileBusy::Reply(Frame::error("ERR MULTI calls can not be nested")),
        "multi" => WhileBusy::OpenMulti,
        _ => WhileBusy::WaitForState,
    }
}

/// Bounds the next Lua run to `timeout_ms` (the busy hook is installed again after it).
pub fn install_load_timeout(lua: &Lua, runtime: &Table, timeout_ms: i64) -> mlua::Result<()> {
    let runtime = runtime.clone();
    let started = crate::server::now_ms();
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |lua, _| {
        if crate::server::now_ms() - started > timeout_ms {
            let err = super::engine::error_table(lua, b"FUNCTION LOAD timeout")?;
            return super::engine::raise(&runtime, err);
        }
        Ok(VmState::Continue)
    })
}
