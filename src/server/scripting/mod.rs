//! Lua scripting as Redis 7.0 has it (server only; the sentinel has none).
//!
//! - `engine`: the interpreter and its sandbox (`sandbox.lua`), the error handler;
//! - `convert`: replies <-> Lua values, RESP2 and RESP3;
//! - `eval`: EVAL, EVALSHA, their `_RO` forms and SCRIPT;
//! - this file: the script cache, shebang flags, and [`invoke`], which runs a script the way
//!   Redis's `scriptPrepareForRun` / `scriptCall` do: the checks before it starts, the
//!   commands it calls (through the one dispatcher, so notifications, tracking and WATCH
//!   behave as for any client), and its writes propagated as effects in MULTI/EXEC.

pub mod busy;
pub mod convert;
pub mod engine;
pub mod eval;
pub mod functions;
mod libs;
mod rand48;

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Value, Variadic};

use super::client::ClientState;
use super::command::{flags, CommandSpec, Ctx};
use super::dispatch;
use super::state::ServerState;
use crate::resp::{format_g, Frame, ProtocolVersion};
use engine::{LuaEngine, OP_ACL_CHECK, OP_CALL, OP_RANDOM, OP_RANDOMSEED, OP_SETRESP, OP_SET_REPL};
use rand48::Rand48;

/// EVAL & co., SCRIPT, FCALL & co. and FUNCTION.
pub fn commands() -> Vec<CommandSpec> {
    let mut v = eval::commands();
    v.extend(functions::commands());
    v
}

/// Script flags (shebang `flags=` and, later, function flags).
pub mod script_flags {
    pub const NO_WRITES: u32 = 1 << 0;
    pub const ALLOW_OOM: u32 = 1 << 1;
    pub const ALLOW_STALE: u32 = 1 << 2;
    pub const NO_CLUSTER: u32 = 1 << 3;
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 4;
    /// A script without a shebang: the rules of Redis 6 apply.
    pub const EVAL_COMPAT_MODE: u32 = 1 << 5;

    pub const NAMES: &[(&str, u32)] = &[
        ("no-writes", NO_WRITES),
        ("allow-oom", ALLOW_OOM),
        ("allow-stale", ALLOW_STALE),
        ("no-cluster", NO_CLUSTER),
        ("allow-cross-slot-keys", ALLOW_CROSS_SLOT),
    ];
}

/// Where a script's writes go (`redis.set_repl`).
pub mod repl_targets {
    pub const AOF: u8 = 1;
    pub const REPLICA: u8 = 2;
    pub const ALL: u8 = AOF | REPLICA;
}

/// A script of the EVAL cache.
pub struct CachedScript {
    pub body: Bytes,
    pub function: Function,
    pub flags: u32,
}

/// All the scripting state of a server.
pub struct Scripting {
    pub engine: LuaEngine,
    /// sha1 (lowercase hex) -> script.
    pub scripts: HashMap<String, CachedScript>,
    /// Bytes of the cached bodies and their names (INFO used_memory_scripts_eval).
    pub scripts_mem: usize,
    pub rand: Rand48,
    runs: u64,
    /// FUNCTION libraries, in their own interpreter.
    pub functions: functions::Functions,
    /// The running script, seen by other tasks without the server lock (busy scripts).
    pub watch: std::sync::Arc<busy::ScriptWatch>,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call `noscript` commands (tests use it).
    pub disable_deny_scripts: bool,
}

impl std::fmt::Debug for Scripting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripting").field("scripts", &self.scripts.len()).finish()
    }
}

impl Default for Scripting {
    fn default() -> Self {
        Self::new()
    }
}

impl Scripting {
    pub fn new() -> Self {
        Scripting {
            engine: LuaEngine::new().expect("the Lua sandbox must build"),
            scripts: HashMap::new(),
            scripts_mem: 0,
            rand: Rand48::default(),
            runs: 0,
            functions: functions::Functions::new(),
            watch: Default::default(),
            disable_deny_scripts: false,
        }
    }

    /// SCRIPT FLUSH: a fresh interpreter and an empty cache (the rand48 state is kept, as
    /// Redis keeps it).
    pub fn flush_scripts(&mut self) {
        self.engine = LuaEngine::new().expect("the Lua sandbox must build");
        self.scripts.clear();
        self.scripts_mem = 0;
    }

    /// The scripting lines of INFO memory (Redis 7.0's names and order).
    pub fn info_memory(&self) -> String {
        use crate::server::commands::server::human;
        let vm_eval = self.engine.used_memory() as u64;
        let vm_functions = self.functions.engine.used_memory() as u64;
        // The caches' bookkeeping: bodies and names, plus Redis's per-entry overhead.
        let scripts_eval = (self.scripts_mem + self.scripts.len() * 48) as u64;
        let functions_mem = self.functions.libraries.values().map(|l| l.code.len() + l.name.len() + 64 + l.functions.len() * 96).sum::<usize>() as u64;
        let scripts_total = scripts_eval + functions_mem;
        format!(
            "used_memory_lua:{vm_eval}\r\nused_memory_vm_eval:{vm_eval}\r\nused_memory_lua_human:{}\r\nused_memory_scripts_eval:{scripts_eval}\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{}\r\nnumber_of_libraries:{}\r\nused_memory_vm_functions:{vm_functions}\r\nused_memory_vm_total:{}\r\nused_memory_vm_total_human:{}\r\nused_memory_functions:{functions_mem}\r\nused_memory_scripts:{scripts_total}\r\nused_memory_scripts_human:{}\r\n",
            human(vm_eval),
            self.scripts.len(),
            self.functions.function_count(),
            self.functions.libraries.len(),
            vm_eval + vm_functions,
            human(vm_eval + vm_functions),
            human(scripts_total),
        )
    }

    /// Compiles `body` into the cache unless it is there; returns its sha1.
    pub fn load_script(&mut self, body: &Bytes) -> Result<String, Frame> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = parse_shebang(body).map_err(|e| Frame::error(format!("ERR {e}")))?;
        // The shebang line is dropped but its newline kept, so line numbers stay right.
        let function = self
            .engine
            .compile(&body[shebang_len..])
            .map_err(|e| Frame::error(convert::script_error_text(format!("ERR Error compiling script (new function): {e}").as_bytes())))?;
        self.scripts_mem += sha.len() + body.len();
        self.scripts.insert(sha.clone(), CachedScript { body: body.clone(), function, flags });
        Ok(sha)
    }
}

pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    hex::encode(Sha1::digest(data))
}

/// Redis's `evalExtractShebangFlags`: the flags of a `#!lua flags=...` first line and the
/// length of that line (0 and compat mode when there is none).
pub fn parse_shebang(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((script_flags::EVAL_COMPAT_MODE, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let parts = crate::resp::split_args(&body[..end]).unwrap_or_default();
    let Some(engine) = parts.first() else {
        return Err("Invalid engine in script shebang".into());
    };
    if engine.as_slice() != b"#!lua" {
        return Err(format!("Unexpected engine in script shebang: {}", String::from_utf8_lossy(engine)));
    }
    let mut flags = 0;
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err(format!("Unknown lua shebang option: {}", String::from_utf8_lossy(part)));
        };
        // Redis splits with sdssplitlen: an empty list is no flags at all.
        if list.is_empty() {
            continue;
        }
        for name in list.split(|&b| b == b',') {
            match script_flags::NAMES.iter().find(|(n, _)| n.as_bytes() == name) {
                Some((_, bit)) => flags |= bit,
                None => return Err(format!("Unexpected flag in script shebang: {}", String::from_utf8_lossy(name))),
            }
        }
    }
    Ok((flags, end))
}

/// Redis's `scriptFlagsToCmdFlags`: the command flags a script with declared flags runs
/// under (the dispatcher's OOM, read-only replica and stale checks read them).
pub fn command_flags_for_script(cmd_flags: u32, script: u32) -> u32 {
    if script & script_flags::EVAL_COMPAT_MODE != 0 {
        return cmd_flags;
    }
    let mut f = cmd_flags & !(flags::STALE | flags::DENYOOM | flags::WRITE | flags::MAY_REPLICATE);
    if script & (script_flags::ALLOW_OOM | script_flags::NO_WRITES) == 0 {
        f |= flags::DENYOOM;
    }
    if script & script_flags::NO_WRITES == 0 {
        f |= flags::WRITE;
    }
    if script & script_flags::ALLOW_STALE != 0 {
        f |= flags::STALE;
    }
    f
}

/// The command flags the dispatcher checks for a command of the scripting group: those a
/// cached or shebang-declared script implies for EVAL & co., the table's otherwise.
pub fn effective_command_flags(srv: &ServerState, spec: &CommandSpec, args: &[Bytes]) -> u32 {
    if args.len() < 2 {
        return spec.flags;
    }
    let requested = match spec.name.as_str() {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" => eval::requested_script_flags(srv, args),
        "fcall" | "fcall_ro" => functions::requested_function_flags(srv, args),
        _ => return spec.flags,
    };
    match requested {
        Some(script) => command_flags_for_script(spec.flags, script),
        None => spec.flags,
    }
}

/// The writes of the running script, propagated together when it ends.
#[derive(Debug, Default)]
pub struct Effects {
    /// Where writes go from now on (`redis.set_repl`).
    pub targets: u8,
    items: Vec<(u8, usize, Vec<Bytes>)>,
}

impl Effects {
    /// A write that goes only to some of the script's current targets (PUBLISH: replicas).
    pub fn push_to(&mut self, targets: u8, db: usize, argv: &[Bytes]) {
        let targets = targets & self.targets;
        if targets != 0 {
            self.items.push((targets, db, argv.to_vec()));
        }
    }

    pub fn push(&mut self, db: usize, argv: &[Bytes]) {
        if self.targets != 0 {
            self.items.push((self.targets, db, argv.to_vec()));
        }
    }
}

pub(crate) fn feed(srv: &mut ServerState, targets: u8, db: usize, argv: &[Bytes]) {
    if let Some(effects) = srv.exec_effects.as_mut() {
        effects.push((targets, db, argv.to_vec()));
        return;
    }
    if targets & repl_targets::REPLICA != 0 {
        srv.repl.feed(db, argv);
    }
    if targets & repl_targets::AOF != 0 {
        srv.persist.feed(db, argv);
    }
}

/// Propagates a finished script's writes: one write as it is, several in MULTI/EXEC (as
/// Redis 7.0's `propagatePendingCommands`); inside EXEC they join the transaction's own.
fn propagate_effects(srv: &mut ServerState, effects: Effects, in_exec: bool) {
    let items = effects.items;
    let Some(&(_, first_db, _)) = items.first() else { return };
    if srv.exec_effects.is_some() {
        // Inside EXEC: they join the transaction's writes, wrapped when EXEC ends.
        for (targets, db, argv) in &items {
            feed(srv, *targets, *db, argv);
        }
        return;
    }
    let open_transaction = in_exec && !srv.multi_propagated;
    let wrap = !srv.multi_propagated && (items.len() > 1 || open_transaction);
    if wrap {
        feed(srv, repl_targets::ALL, first_db, &[Bytes::from_static(b"MULTI")]);
    }
    for (targets, db, argv) in &items {
        feed(srv, *targets, *db, argv);
    }
    if open_transaction {
        srv.multi_propagated = true;
    } else if wrap {
        feed(srv, repl_targets::ALL, first_db, &[Bytes::from_static(b"EXEC")]);
    }
}

/// One run of a script or function.
pub struct Invocation<'a> {
    /// The interpreter the function belongs to (EVAL's or the libraries').
    pub engine: LuaEngine,
    pub function: Function,
    /// The sha1 of an EVAL script, the name of a function: shown in error replies.
    pub name: &'a str,
    pub keys: &'a [Bytes],
    pub args: &'a [Bytes],
    pub flags: u32,
    /// EVAL_RO, EVALSHA_RO, FCALL_RO.
    pub read_only_command: bool,
    /// EVAL (KEYS and ARGV are globals) rather than FCALL.
    pub eval_mode: bool,
}

/// Redis's `scriptPrepareForRun` checks: the refusals a script gets before it starts.
fn refusal_before_run(ctx: &Ctx, script: u32, read_only_command: bool) -> Option<Frame> {
    let srv = &*ctx.srv;
    let obey = ctx.client.is_master_link;
    let stale = !obey && srv.repl.repl.stale_refusal().is_some();
    if script & script_flags::EVAL_COMPAT_MODE != 0 {
        return stale.then(|| srv.repl.repl.stale_refusal()).flatten();
    }
    if stale && script & script_flags::ALLOW_STALE == 0 {
        return Some(Frame::error(
            "MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script.",
        ));
    }
    if script & script_flags::NO_WRITES == 0 {
        if srv.repl.is_replica() && srv.limits.replica_read_only && !obey {
            return Some(Frame::error("READONLY Can not run script with write flag on readonly replica"));
        }
        if read_only_command {
            return Some(Frame::error("ERR Can not execute a script with write flag using *_ro command."));
        }
        if let Some(e) = srv.repl.repl.min_replicas_refusal() {
            return Some(e);
        }
    }
    if srv.pre_command_oom && srv.limits.maxmemory > 0 && script & (script_flags::ALLOW_OOM | script_flags::NO_WRITES) == 0 {
        return Some(Frame::error("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'"));
    }
    None
}

/// Redis's field of an error table whose error already counts in the error stats (a
/// command's error reply or refusal): the script's reply with it does not count again.
const STATS_COUNTED: &str = "ignore_error_stats_update";

/// The script's outcome is an error table already counted (see [`STATS_COUNTED`]).
fn stats_counted(v: &Value) -> bool {
    matches!(v, Value::Table(t) if t.raw_get::<bool>(STATS_COUNTED).unwrap_or(false))
}

/// A command a script names, with its arguments.
type ResolvedCall = (std::sync::Arc<CommandSpec>, Vec<Bytes>);

/// What the host callback of a running script reaches.
struct Run<'a> {
    srv: &'a mut ServerState,
    client: &'a mut ClientState,
    now_ms: i64,
    resp3: bool,
    read_only: bool,
    allow_oom: bool,
    /// A write already ran: later ones can no longer be refused (Redis's WRITE_DIRTY).
    write_dirty: bool,
    /// The keys the EVAL / FCALL declared (client tracking remembers these).
    declared_keys: &'a [Bytes],
    /// Where redis.call / redis.pcall leave the command line they ask for.
    host_slot: engine::SharedHostSlot,
}

fn as_int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Integer(i)) => *i,
        Some(Value::Number(n)) => *n as i64,
        _ => 0,
    }
}

impl Run<'_> {
    fn host(&mut self, lua: &Lua, args: Variadic<Value>) -> mlua::Result<MultiValue> {
        let rest = &args[1.min(args.len())..];
        match as_int(args.first()) {
            // redis.call / redis.pcall left the command line in the slot.
            OP_CALL => {
                let Some(argv) = self.host_slot.lock().pending_call.take() else { return Ok(MultiValue::new()) };
                match self.command(lua, argv)? {
                    Ok(v) => v.into_lua_multi(lua),
                    Err(e) => (e, true).into_lua_multi(lua),
                }
            }
            OP_SETRESP => {
                self.resp3 = as_int(rest.first()) == 3;
                Ok(MultiValue::new())
            }
            OP_SET_REPL => {
                if let Some(effects) = self.srv.script_effects.as_mut() {
                    effects.targets = as_int(rest.first()) as u8;
                }
                Ok(MultiValue::new())
            }
            OP_RANDOM => self.srv.scripting.rand.next_unit().into_lua_multi(lua),
            OP_RANDOMSEED => {
                self.srv.scripting.rand.seed(as_int(rest.first()) as i32);
                Ok(MultiValue::new())
            }
            OP_ACL_CHECK => match self.lookup(lua, rest)? {
                Ok((spec, argv)) => crate::server::acl::check_client(self.srv, self.client, &spec, &argv).is_ok().into_lua_multi(lua),
                Err(_) => (engine::error_table(lua, b"Invalid command passed to redis.acl_check_cmd()")?, true).into_lua_multi(lua),
            },
            _ => Ok(MultiValue::new()),
        }
    }

    /// The command a `redis.*` call names (with its arity checked), or the error table.
    fn lookup(&self, lua: &Lua, args: &[Value]) -> mlua::Result<Result<ResolvedCall, mlua::Table>> {
        match engine::command_line(lua, args)? {
            Ok(argv) => match self.resolve(argv) {
                Ok(found) => Ok(Ok(found)),
                Err((_, why)) => Ok(Err(engine::error_table(lua, why.as_bytes())?)),
            },
            Err(e) => Ok(Err(e)),
        }
    }

    /// The command of a command line already converted, or why there is none (with the
    /// command when only its arity is wrong).
    fn resolve(&self, argv: Vec<Bytes>) -> Result<ResolvedCall, (Option<std::sync::Arc<CommandSpec>>, &'static str)> {
        let table = self.srv.commands.clone();
        let spec = table.lookup(&argv[0]).and_then(|top| dispatch::resolve(top, &argv).ok()).cloned();
        match spec {
            None => Err((None, "Unknown Redis command called from script")),
            Some(spec) if !spec.check_arity(argv.len()) => Err((Some(spec), "Wrong number of args calling Redis command from script")),
            Some(spec) => Ok((spec, argv)),
        }
    }

    /// Redis's `scriptCall` refusing a command: the error counts in the error stats (and
    /// the command's rejected calls) now, so the script's final reply does not count it again.
    fn rejected(&mut self, lua: &Lua, spec: Option<&CommandSpec>, why: &[u8]) -> mlua::Result<Result<Value, mlua::Table>> {
        if let Some(spec) = spec {
            spec.stats.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        dispatch::count_error(self.srv, &Frame::Error(String::from_utf8_lossy(&engine::error_text(why)).into_owned()));
        let t = engine::error_table(lua, why)?;
        t.raw_set(STATS_COUNTED, true)?;
        Ok(Err(t))
    }

    /// `redis.call` / `redis.pcall`: Redis's `scriptCall` checks, then the command through
    /// the dispatcher's `call`, its reply converted for the script.
    fn command(&mut self, lua: &Lua, argv: Vec<Bytes>) -> mlua::Result<Result<Value, mlua::Table>> {
        let (spec, argv) = match self.resolve(argv) {
            Ok(found) => found,
            Err((spec, why)) => return self.rejected(lua, spec.as_deref(), why.as_bytes()),
        };
        if let Err((d, idx)) = crate::server::acl::check_client(self.srv, self.client, &spec, &argv) {
            crate::server::acl::log_command_denial(self.srv, self.client, &spec, &argv, d, idx, "lua", self.now_ms);
            let why = match d {
                crate::common::acl::Denied::Command => "can't run this command or subcommand",
                crate::common::acl::Denied::Key => "can't access at least one of the keys mentioned in the command arguments",
                crate::common::acl::Denied::Channel => "can't publish to the channel mentioned in the command",
            };
            return self.rejected(lua, Some(&spec), format!("The user executing the script {why}").as_bytes());
        }
        if let Some(refusal) = self.refusal(&spec) {
            return self.rejected(lua, Some(&spec), refusal.as_bytes());
        }
        if spec.has(flags::WRITE) {
            self.write_dirty = true;
            self.srv.scripting.watch.note_write();
        }
        self.client.reply_proto = Some(if self.resp3 { ProtocolVersion::Resp3 } else { ProtocolVersion::Resp2 });
        let (reply, _) = dispatch::call(self.srv, self.client, &spec, &argv, self.now_ms, true);
        self.client.reply_proto = None;
        if self.client.tracking.is_some() {
            crate::server::commands::tracking::remember_script_read(self.srv, self.client, &spec, self.declared_keys);
        }
        match reply {
            Frame::Error(_) => {
                let Value::Table(t) = convert::reply_to_lua(lua, &reply, self.resp3)? else { unreachable!("errors convert to tables") };
                // `call` counted it already.
                t.raw_set(STATS_COUNTED, true)?;
                Ok(Err(t))
            }
            other => Ok(Ok(convert::reply_to_lua(lua, &other, self.resp3)?)),
        }
    }

    /// Why a command may not run from this script, as Redis words it.
    fn refusal(&self, spec: &CommandSpec) -> Option<String> {
        let srv = &*self.srv;
        let obey = self.client.is_master_link;
        if spec.has(flags::NOSCRIPT) && !srv.scripting.disable_deny_scripts {
            return Some("This Redis command is not allowed from script".into());
        }
        if !spec.has(flags::STALE) && !obey && srv.repl.repl.stale_refusal().is_some() {
            return Some("Can not execute the command on a stale replica".into());
        }
        if self.read_only && spec.flags & (flags::WRITE | flags::MAY_REPLICATE) != 0 {
            return Some("Write commands are not allowed from read-only scripts.".into());
        }
        if spec.has(flags::WRITE) && !self.write_dirty {
            if srv.repl.is_replica() && srv.limits.replica_read_only && !obey {
                return Some("-READONLY You can't write against a read only replica.".into());
            }
            if let Some(Frame::Error(e)) = srv.repl.repl.min_replicas_refusal() {
                return Some(format!("-{e}"));
            }
        }
        if !self.allow_oom && srv.limits.maxmemory > 0 && !obey && !self.write_dirty && srv.pre_command_oom && spec.has(flags::DENYOOM) {
            return Some("-OOM command not allowed when used memory > 'maxmemory'.".into());
        }
        None
    }
}

/// KEYS or ARGV as a Lua array of strings.
fn byte_sequence(lua: &Lua, items: &[Bytes]) -> mlua::Result<mlua::Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        // Text goes onto the Lua stack as it is; other bytes through a string handle.
        match std::str::from_utf8(item) {
            Ok(text) => t.raw_set(i + 1, text)?,
            Err(_) => t.raw_set(i + 1, lua.create_string(item)?)?,
        }
    }
    Ok(t)
}

/// Runs a script for the client of `ctx` and returns its reply.
pub fn invoke(ctx: &mut Ctx, inv: Invocation) -> Frame {
    if let Some(refusal) = refusal_before_run(ctx, inv.flags, inv.read_only_command) {
        return refusal;
    }
    let compat = inv.flags & script_flags::EVAL_COMPAT_MODE != 0;
    let read_only = inv.read_only_command || (!compat && inv.flags & script_flags::NO_WRITES != 0);
    let allow_oom = !compat && inv.flags & script_flags::ALLOW_OOM != 0;
    // Cloned handles: the host callback borrows the whole state mutably while Lua runs.
    let engine = inv.engine;
    let lua = &engine.lua;
    let watch = ctx.srv.scripting.watch.clone();
    let default_nopass = ctx.srv.acl.default_user().is_none_or(|u| u.nopass);
    let limits = &ctx.srv.limits;
    watch.begin(inv.eval_mode, limits.busy_reply_threshold_ms, !ctx.srv.acl.default_open(), limits.protected_mode && default_nopass);
    if !inv.eval_mode {
        let mut command = vec![Bytes::from_static(if inv.read_only_command { b"fcall_ro" } else { b"fcall" }), Bytes::copy_from_slice(inv.name.as_bytes()), Bytes::from(inv.keys.len().to_string())];
        command.extend(inv.keys.iter().cloned());
        command.extend(inv.args.iter().cloned());
        let f = &ctx.srv.scripting.functions;
        watch.set_running_function(Some(busy::RunningFunction { name: inv.name.to_string(), command, libraries: f.libraries.len() as i64, functions: f.function_count() as i64 }));
    }
    let mut shutting_down = false;
    let outcome = (|| -> mlua::Result<(Result<Value, Value>, bool)> {
        let keys = byte_sequence(lua, inv.keys)?;
        let args = byte_sequence(lua, inv.args)?;
        if inv.eval_mode {
            engine.set_keys_and_argv(&keys, &args)?;
        }
        let caller_db = ctx.client.db;
        engine.ensure_busy_hook(&watch)?;
        ctx.client.in_script = true;
        ctx.srv.script_effects = Some(Effects { targets: repl_targets::ALL, items: Vec::new() });
        let run = RefCell::new(Run { srv: &mut *ctx.srv, client: &mut *ctx.client, now_ms: ctx.now_ms, resp3: false, read_only, allow_oom, write_dirty: false, declared_keys: inv.keys, host_slot: engine.host_slot.clone() });
        let result = lua.scope(|scope| {
            let host = scope.create_function_mut(|lua, args: Variadic<Value>| run.borrow_mut().host(lua, args))?;
            engine.run(host, &inv.function, keys, args)
        });
        let resp3 = run.borrow().resp3;
        ctx.client.in_script = false;
        ctx.client.db = caller_db;
        let effects = ctx.srv.script_effects.take().unwrap_or_default();
        match watch.end() {
            None => propagate_effects(ctx.srv, effects, ctx.in_exec),
            Some(stop) => {
                engine.forget_busy_hook();
                match stop {
                    busy::Stop::Kill => propagate_effects(ctx.srv, effects, ctx.in_exec),
                    // The server exits without saving: the half-run script's writes are
                    // not propagated, as Redis propagates a script's writes when it ends.
                    busy::Stop::Shutdown { force } => {
                        ctx.srv.shutdown_requested = Some(super::state::ShutdownRequest { save: Some(false), force });
                        shutting_down = true;
                    }
                }
            }
        }
        Ok((result?, resp3))
    })();
    ctx.prevent_propagation();
    let scripting = &mut ctx.srv.scripting;
    scripting.runs += 1;
    if scripting.runs.is_multiple_of(50) {
        // Redis steps the collector every 50 runs rather than letting a full cycle stall one.
        let _ = lua.gc_step();
    }
    if shutting_down {
        // The server exits without answering the script's client, as Redis does.
        return Frame::Simple(super::commands::pubsub::NO_REPLY.into());
    }
    let reply = match &outcome {
        Ok((Ok(value), resp3)) => convert::lua_to_reply(value, *resp3),
        Ok((Err(error), _)) => error_reply(error, inv.name),
        Err(e) => Frame::error(convert::script_error_text(format!("ERR Error running script {}, {:.100}", inv.name, engine::lua_error_text(e)).as_bytes())),
    };
    if reply.is_error() && matches!(&outcome, Ok((Ok(v) | Err(v), _)) if stats_counted(v)) {
        ctx.srv.reply_error_counted = true;
    }
    reply
}

/// The reply for a script's error object (`{err=..., source=..., line=...}`).
fn error_reply(error: &Value, name: &str) -> Frame {
    let Value::Table(t) = error else {
        let msg = match error {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "execution failure".to_string(),
        };
        return Frame::error(convert::script_error_text(format!("ERR Error running script {name}, {msg:.100}").as_bytes()));
    };
    let text = |field: &str| -> Option<String> {
        match t.raw_get::<Value>(field) {
            Ok(Value::String(s)) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
            Ok(Value::Integer(i)) => Some(i.to_string()),
            Ok(Value::Number(n)) => Some(format_g(n, 14)),
            _ => None,
        }
    };
    let mut msg = text("err").unwrap_or_default();
    if let (Some(source), Some(line)) = (text("source"), text("line")) {
        msg.push_str(&format!(" script: {name}, on {source}:{line}."));
    }
    Frame::Error(msg.replace(['\r', '\n'], " "))
}
