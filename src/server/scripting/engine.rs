//! The Lua 5.1 interpreter (mlua, vendored) with Redis's sandbox: the libraries Redis loads,
//! protected globals, read-only library tables, the `redis` API and `math.random` on
//! Redis's rand48 (see `sandbox.lua`), plus the error handler that records where a script
//! failed (`@user_script:LINE`).

use mlua::{Function, IntoLua, IntoLuaMulti, Lua, LuaOptions, LuaString, MultiValue, StdLib, Table, Value, Variadic};

use crate::server::config::REDIS_VERSION;

/// Chunk name of the sandbox itself: the error handler skips its frames, so errors raised
/// through the `redis` wrappers point at the user's line as Redis's C functions do.
const SANDBOX_CHUNK: &str = "=rf_sandbox";

/// `REDIS_VERSION_NUM` of 7.0.15.
const REDIS_VERSION_NUM: i64 = 0x0007_000f;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Lua interpreter: {0}")]
    Lua(#[from] mlua::Error),
}

/// What `redis.call` / `redis.pcall` hand to the running script's host: the callback
/// itself (kept here rather than looked up by name in the runtime table on every call) and
/// the command line they converted, so the host gets it without a second conversion of
/// the Lua arguments.
#[derive(Default)]
pub struct HostSlot {
    host: Option<Function>,
    /// The command line of the `redis.call` / `redis.pcall` being served.
    pub pending_call: Option<Vec<bytes::Bytes>>,
}

pub type SharedHostSlot = std::sync::Arc<parking_lot::Mutex<HostSlot>>;

/// EVAL's global names, written on every run (made once: creating a Lua string hashes and
/// interns it each time). Few on purpose: every handle kept takes a slot of mlua's
/// reference stack, which also bounds how deep a script's reply may nest.
struct RuntimeNames {
    keys: LuaString,
    argv: LuaString,
}

/// One Lua interpreter set up as Redis's. Cloning shares it: every script run takes a
/// handle, so the handles live behind one Arc (cloning each Lua reference costs a slot of
/// mlua's reference stack, and releasing it another call into Lua).
#[derive(Clone)]
pub struct LuaEngine(std::sync::Arc<EngineParts>);

impl std::ops::Deref for LuaEngine {
    type Target = EngineParts;
    fn deref(&self) -> &EngineParts {
        &self.0
    }
}

/// The interpreter and the references into it that Rust keeps.
pub struct EngineParts {
    pub lua: Lua,
    /// The sandbox's private table (`run`, `env`, `raised`).
    pub(crate) runtime: Table,
    /// The read-only globals scripts run with.
    pub env: Table,
    run: Function,
    /// The running script's host callback and the call it is asked to serve.
    pub host_slot: SharedHostSlot,
    names: RuntimeNames,
    /// The busy-script hook is in place (FUNCTION LOAD's timeout and a kill replace it).
    busy_hook: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for LuaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LuaEngine")
    }
}

impl LuaEngine {
    pub fn new() -> Result<Self, EngineError> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default())?;
        let runtime = lua.create_table()?;
        let host_slot = SharedHostSlot::default();
        let prim = lua.create_table()?;
        prim.raw_set("error_table", lua.create_function(|lua, buf: mlua::LuaString| error_table(lua, &buf.as_bytes()))?)?;
        let slot = host_slot.clone();
        prim.raw_set("running_host", lua.create_function(move |_, ()| Ok(running_host(&slot)))?)?;
        // The functions scripts commonly tail-call (`return redis.call(...)`) are Rust (C)
        // functions, as in Redis: a Lua wrapper would be tail-called and take the script's
        // frame, and with it the line that error replies name.
        let (rt, slot) = (runtime.clone(), host_slot.clone());
        prim.raw_set("call", lua.create_function(move |lua, args: Variadic<Value>| redis_call(lua, &rt, &slot, &args, true))?)?;
        let (rt, slot) = (runtime.clone(), host_slot.clone());
        prim.raw_set("pcall", lua.create_function(move |lua, args: Variadic<Value>| redis_call(lua, &rt, &slot, &args, false))?)?;
        let (rt, slot) = (runtime.clone(), host_slot.clone());
        prim.raw_set(
            "acl_check_cmd",
            lua.create_function(move |lua, args: MultiValue| host_request(lua, &rt, &slot, OP_ACL_CHECK, "redis.acl_check_cmd", args, true))?,
        )?;
        let rt = runtime.clone();
        prim.raw_set("sha1hex", lua.create_function(move |lua, args: MultiValue| sha1hex(lua, &rt, args))?)?;
        let (rt, slot) = (runtime.clone(), host_slot.clone());
        prim.raw_set("random", lua.create_function(move |lua, args: MultiValue| math_random(lua, &rt, &slot, args))?)?;
        // Rust (C) functions, so their argument errors name the script's line even when
        // tail-called; they hand the text to Lua's own loadstring.
        let lua_loadstring: Function = lua.globals().raw_get("loadstring")?;
        let (rt, ls) = (runtime.clone(), lua_loadstring.clone());
        prim.raw_set("loadstring", lua.create_function(move |lua, args: MultiValue| sandboxed_loadstring(lua, &rt, &ls, args))?)?;
        let (rt, ls) = (runtime.clone(), lua_loadstring);
        prim.raw_set("load", lua.create_function(move |lua, args: MultiValue| sandboxed_load(lua, &rt, &ls, args))?)?;
        let rt = runtime.clone();
        prim.raw_set("unwrap_error", lua.create_function(move |_, err: Value| Ok(unwrap_raised(&rt, err)))?)?;
        prim.raw_set(
            "log",
            lua.create_function(|_, (level, msg): (i64, mlua::LuaString)| {
                use crate::server::log::{log, Level};
                let level = match level {
                    0 => Level::Debug,
                    1 => Level::Verbose,
                    2 => Level::Notice,
                    _ => Level::Warning,
                };
                log(level, &String::from_utf8_lossy(&msg.as_bytes()));
                Ok(())
            })?,
        )?;
        for (name, op) in [("OP_SETRESP", OP_SETRESP), ("OP_SET_REPL", OP_SET_REPL), ("OP_RANDOMSEED", OP_RANDOMSEED)] {
            prim.raw_set(name, op)?;
        }
        prim.raw_set("version", REDIS_VERSION)?;
        prim.raw_set("version_num", REDIS_VERSION_NUM)?;
        super::libs::register(&lua, &lua.globals(), &runtime)?;
        super::libs::register_cmsgpack(&lua, &lua.globals(), &runtime)?;
        super::libs::register_struct(&lua, &lua.globals(), &runtime)?;
        lua.load(include_str!("sandbox.lua")).set_name(SANDBOX_CHUNK).call::<()>((runtime.clone(), prim))?;
        let rt = runtime.clone();
        runtime.raw_set("handler", lua.create_function(move |lua, err: Value| error_handler(lua, &rt, err))?)?;
        let env: Table = runtime.raw_get("env")?;
        let run: Function = runtime.raw_get("run")?;
        lua.set_globals(env.clone())?;
        let names = RuntimeNames { keys: lua.create_string("KEYS")?, argv: lua.create_string("ARGV")? };
        // What building the sandbox left behind (its compiled chunk, temporaries) is not the
        // scripts' memory: used_memory_lua starts from the live heap, as Redis's does.
        lua.gc_collect()?;
        // Our sandbox keeps more of itself in Lua than Redis's C does (a live heap about
        // twice Redis's): a cycle starts once the heap grew by 30% rather than Lua's 100%,
        // so the heap between collections stays near Redis's ceiling.
        lua.gc_set_mode(mlua::state::GcMode::Incremental(mlua::state::GcIncParams::default().pause(130)));
        Ok(LuaEngine(std::sync::Arc::new(EngineParts { lua, runtime, env, run, host_slot, names, busy_hook: Default::default() })))
    }

    /// Compiles a script body as `@user_script` with the sandboxed globals.
    pub fn compile(&self, body: &[u8]) -> Result<Function, String> {
        self.lua
            .load(body)
            .set_name("@user_script")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| lua_error_text(&e))
    }

    /// FUNCTION LOAD's run of a library body (the code after its `#!lua` line): the
    /// functions it registered, or Redis's error text.
    pub fn load_library(&self, body: &[u8], timeout_ms: Option<i64>) -> Result<Vec<RegisteredFunction>, String> {
        let chunk = self
            .lua
            .load(body)
            .set_name("@user_function")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| format!("Error compiling function: {}", lua_error_text(&e)))?;
        let load: Function = self.runtime.raw_get("load_library").map_err(|e| e.to_string())?;
        if let Some(ms) = timeout_ms {
            super::busy::install_load_timeout(&self.lua, &self.runtime, ms).map_err(|e| e.to_string())?;
        }
        let outcome = load.call::<(bool, Value)>(chunk);
        self.lua.remove_global_hook();
        self.busy_hook.store(false, std::sync::atomic::Ordering::Relaxed);
        let (ok, result) = outcome.map_err(|e| format!("Error registering functions: {}", lua_error_text(&e)))?;
        if !ok {
            let msg = match &result {
                Value::Table(t) => match t.raw_get::<Value>("err") {
                    Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                    _ => String::new(),
                },
                Value::String(s) => format!("ERR {}", String::from_utf8_lossy(&s.as_bytes())),
                Value::Error(e) => format!("ERR {}", lua_error_text(e)),
                _ => String::new(),
            };
            return Err(format!("Error registering functions: {msg}"));
        }
        let Value::Table(list) = result else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for entry in list.sequence_values::<Table>() {
            let entry = entry.map_err(|e| e.to_string())?;
            let flags: Table = entry.raw_get("flags").map_err(|e| e.to_string())?;
            let mut bits = 0;
            for name in flags.sequence_values::<String>().flatten() {
                bits |= super::script_flags::NAMES.iter().find(|(n, _)| *n == name).map_or(0, |(_, b)| *b);
            }
            out.push(RegisteredFunction {
                name: entry.raw_get("name").map_err(|e| e.to_string())?,
                description: entry.raw_get::<Option<mlua::LuaString>>("description").map_err(|e| e.to_string())?.map(|s| s.as_bytes().to_vec()),
                callback: entry.raw_get("callback").map_err(|e| e.to_string())?,
                flags: bits,
            });
        }
        Ok(out)
    }

    /// Installs the per-run callback, runs `f(keys, args)` under the error handler and
    /// removes the callback. Returns the script's value or its error object.
    pub fn run(&self, host: Function, f: &Function, keys: Table, args: Table) -> Result<Result<Value, Value>, mlua::Error> {
        self.runtime.raw_set("raised", Value::Nil)?;
        self.host_slot.lock().host = Some(host);
        let result = self.run.call::<(bool, Value)>((f, keys, args));
        *self.host_slot.lock() = HostSlot::default();
        let (ok, value) = result?;
        Ok(if ok { Ok(value) } else { Err(value) })
    }

    /// EVAL's globals KEYS and ARGV for the next run.
    pub fn set_keys_and_argv(&self, keys: &Table, args: &Table) -> mlua::Result<()> {
        self.env.raw_set(&self.names.keys, keys)?;
        self.env.raw_set(&self.names.argv, args)
    }

    /// Puts the busy-script hook in place unless it is.
    pub fn ensure_busy_hook(&self, watch: &std::sync::Arc<super::busy::ScriptWatch>) -> mlua::Result<()> {
        if !self.busy_hook.swap(true, std::sync::atomic::Ordering::Relaxed) {
            super::busy::install_busy_hook(&self.lua, watch)?;
        }
        Ok(())
    }

    /// The hook was replaced (a kill makes it fire every line): install it again next run.
    pub fn forget_busy_hook(&self) {
        self.busy_hook.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Memory the interpreter holds, in bytes (INFO used_memory_lua).
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }
}

/// A function a library registered while it loaded.
pub struct RegisteredFunction {
    pub name: String,
    pub description: Option<Vec<u8>>,
    pub callback: Function,
    pub flags: u32,
}

/// The message of an mlua error as Lua reported it (syntax errors, runtime errors).
pub fn lua_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        other => other.to_string(),
    }
}

/// Redis's `luaPushErrorBuff` text: "-CODE msg" keeps its code, anything else becomes
/// "ERR msg"; trailing CR/LF are trimmed.
pub fn error_text(buf: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match buf.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&b| b == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", buf),
    };
    let trim = |s: &[u8]| -> Vec<u8> {
        let start = s.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(s.len());
        let end = s.iter().rposition(|b| !matches!(b, b'\r' | b'\n')).map_or(start, |e| e + 1);
        s[start..end.max(start)].to_vec()
    };
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend(trim(msg));
    out
}

/// `{err = <error_text(buf)>}`, the error object of the `redis` library.
pub fn error_table(lua: &Lua, buf: &[u8]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set("err", lua.create_string(error_text(buf))?)?;
    Ok(t)
}

/// Redis's `__redis__err__handler`: turns any error into `{err=...}` and records the source
/// and line of the script frame that raised it (C frames and the sandbox's own are skipped).
fn error_handler(lua: &Lua, runtime: &Table, err: Value) -> mlua::Result<Value> {
    let table = match unwrap_raised(runtime, err) {
        Value::Table(t) => t,
        other => {
            let text = match &other {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Error(e) => lua_error_text(e).into_bytes(),
                v => lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec()).unwrap_or_else(|| describe(v).into_bytes()),
            };
            let t = lua.create_table()?;
            let mut msg = b"ERR ".to_vec();
            msg.extend(text);
            t.raw_set("err", lua.create_string(msg)?)?;
            t
        }
    };
    for level in 1..32 {
        let frame = lua.inspect_stack(level, |d| {
            let src = d.source();
            (src.what, src.source.map(|s| s.into_owned()), d.current_line())
        });
        let Some((what, source, line)) = frame else { break };
        // "tail" is the trace a tail call leaves (the redis.* wrappers end in one).
        if what == "C" || what == "tail" || source.as_deref() == Some(SANDBOX_CHUNK) {
            continue;
        }
        if let Some(source) = source {
            table.raw_set("source", source)?;
        }
        if let Some(line) = line {
            table.raw_set("line", line as i64)?;
        }
        break;
    }
    Ok(Value::Table(table))
}

/// The marker error of a Rust function that raised a Lua value: mlua raises Rust errors as
/// userdata, while scripts (and Redis's replies) expect the tables and strings Redis raises,
/// so the value waits in the runtime table's `raised` field.
#[derive(Debug, thiserror::Error)]
#[error("script error")]
struct Raised;

pub(crate) fn raise<T>(runtime: &Table, value: impl IntoLua) -> mlua::Result<T> {
    runtime.raw_set("raised", value)?;
    Err(mlua::Error::external(Raised))
}

fn is_raised(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::CallbackError { cause, .. } => is_raised(cause),
        mlua::Error::ExternalError(x) => x.downcast_ref::<Raised>().is_some(),
        _ => false,
    }
}

/// The value a Rust function raised (see [`Raised`]); any other value as it is.
fn unwrap_raised(runtime: &Table, err: Value) -> Value {
    match err {
        Value::Error(e) if is_raised(&e) => runtime.raw_get("raised").unwrap_or(Value::Nil),
        other => other,
    }
}

/// Redis's `luaL_where(L, 1)`: "user_script:LINE: " for the calling frame.
pub(crate) fn where_prefix(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| {
        let short = d.source().short_src.map(|s| s.into_owned()).unwrap_or_default();
        match d.current_line() {
            Some(line) if line > 0 => format!("{short}:{line}: "),
            _ => String::new(),
        }
    })
    .unwrap_or_default()
}

/// Operations of the per-run host callback (`rt.host`), shared with `Run::host`.
pub const OP_CALL: i64 = 1;
pub const OP_SETRESP: i64 = 2;
pub const OP_SET_REPL: i64 = 3;
pub const OP_RANDOM: i64 = 4;
pub const OP_RANDOMSEED: i64 = 5;
pub const OP_ACL_CHECK: i64 = 6;

fn running_host(slot: &SharedHostSlot) -> Option<Function> {
    slot.lock().host.clone()
}

/// `redis.call` (raising errors) and `redis.pcall`: the arguments become a command line
/// here, and the running script's host serves it (OP_CALL), answering (value) or
/// (error table, true).
fn redis_call(lua: &Lua, runtime: &Table, slot: &SharedHostSlot, args: &[Value], raise_errors: bool) -> mlua::Result<Value> {
    let Some(host) = running_host(slot) else {
        return raise(runtime, error_table(lua, b"redis.call/pcall can only be called inside a script invocation")?);
    };
    let (reply, failed): (Value, bool) = match command_line(lua, args)? {
        Ok(argv) => {
            slot.lock().pending_call = Some(argv);
            host.call(OP_CALL)?
        }
        Err(e) => (Value::Table(e), true),
    };
    if failed && raise_errors {
        return raise(runtime, reply);
    }
    Ok(reply)
}

/// The arguments of a `redis.*` call as a command line, or the error table.
pub fn command_line(lua: &Lua, args: &[Value]) -> mlua::Result<Result<Vec<bytes::Bytes>, Table>> {
    use bytes::Bytes;
    if args.is_empty() {
        return Ok(Err(error_table(lua, b"Please specify at least one argument for this redis lib call")?));
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            // Lua's own number format loses precision: Redis uses %.17g.
            Value::Integer(i) => argv.push(Bytes::from(crate::resp::format_g(*i as f64, 17))),
            Value::Number(n) => argv.push(Bytes::from(crate::resp::format_g(*n, 17))),
            _ => return Ok(Err(error_table(lua, b"Lua redis lib command arguments must be strings or integers")?)),
        }
    }
    Ok(Ok(argv))
}

/// `redis.acl_check_cmd`: a request to the running script's host, whose answer is (value)
/// or (error table, true).
fn host_request(lua: &Lua, runtime: &Table, slot: &SharedHostSlot, op: i64, what: &str, mut args: MultiValue, raise_errors: bool) -> mlua::Result<Value> {
    let Some(host) = running_host(slot) else {
        return raise(runtime, error_table(lua, format!("{what} can only be called inside a script invocation").as_bytes())?);
    };
    args.push_front(Value::Integer(op));
    let (reply, failed): (Value, bool) = host.call(args)?;
    if failed && raise_errors {
        return raise(runtime, reply);
    }
    Ok(reply)
}

fn sha1hex(lua: &Lua, runtime: &Table, args: MultiValue) -> mlua::Result<String> {
    if args.len() != 1 {
        return raise(runtime, error_table(lua, b"wrong number of arguments")?);
    }
    let data = match lua.coerce_string(args[0].clone())? {
        Some(s) => s.as_bytes().to_vec(),
        None => Vec::new(),
    };
    use sha1::{Digest, Sha1};
    Ok(hex::encode(Sha1::digest(&data)))
}

/// `luaL_argerror`'s text for argument `n` of `fname`, with the caller's position.
fn bad_argument(lua: &Lua, runtime: &Table, args: &MultiValue, n: usize, fname: &str, expected: &str) -> mlua::Error {
    let got = args.get(n - 1).map_or("no value", lua_type_name);
    match raise::<()>(runtime, format!("{}bad argument #{n} to '{fname}' ({expected} expected, got {got})", where_prefix(lua))) {
        Err(e) => e,
        Ok(()) => unreachable!("raise always fails"),
    }
}

/// A string or number argument (Lua's `lua_isstring`) as bytes.
fn text_arg(v: Option<&Value>) -> Option<Vec<u8>> {
    match v? {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(i.to_string().into_bytes()),
        Value::Number(n) => Some(crate::resp::format_g(*n, 14).into_bytes()),
        _ => None,
    }
}

/// The optional chunk name (argument 2) of `loadstring` / `load`.
fn chunk_name(lua: &Lua, runtime: &Table, args: &MultiValue, fname: &str) -> mlua::Result<Option<Vec<u8>>> {
    match args.get(1) {
        None | Some(Value::Nil) => Ok(None),
        v => text_arg(v).map(Some).ok_or_else(|| bad_argument(lua, runtime, args, 2, fname, "string")),
    }
}

/// Compiles `code` with Lua's loadstring. Redis's Lua refuses precompiled chunks: its
/// parser reads them as text and stops at their first byte (ESC); a leading space gets the
/// same error from the stock parser, the chunk keeping the name it would have had.
fn compile_text(lua: &Lua, lua_loadstring: &Function, mut code: Vec<u8>, name: Vec<u8>) -> mlua::Result<MultiValue> {
    if code.first() == Some(&27) {
        code.insert(0, b' ');
    }
    lua_loadstring.call((lua.create_string(&code)?, lua.create_string(&name)?))
}

/// `loadstring(s [, name])` of the sandbox.
fn sandboxed_loadstring(lua: &Lua, runtime: &Table, lua_loadstring: &Function, args: MultiValue) -> mlua::Result<MultiValue> {
    let code = text_arg(args.front()).ok_or_else(|| bad_argument(lua, runtime, &args, 1, "loadstring", "string"))?;
    let name = chunk_name(lua, runtime, &args, "loadstring")?.unwrap_or_else(|| code.clone());
    compile_text(lua, lua_loadstring, code, name)
}

/// `load(reader [, name])` of the sandbox: the pieces the reader returns, compiled as one.
fn sandboxed_load(lua: &Lua, runtime: &Table, lua_loadstring: &Function, args: MultiValue) -> mlua::Result<MultiValue> {
    let Some(Value::Function(reader)) = args.front() else {
        return Err(bad_argument(lua, runtime, &args, 1, "load", "function"));
    };
    let name = chunk_name(lua, runtime, &args, "load")?.unwrap_or_else(|| b"=(load)".to_vec());
    let mut code = Vec::new();
    loop {
        let piece: Value = reader.call(())?;
        match piece {
            Value::Nil => break,
            Value::String(ref s) if s.as_bytes().is_empty() => break,
            v => match text_arg(Some(&v)) {
                Some(bytes) => code.extend_from_slice(&bytes),
                None => return (Value::Nil, "reader function must return a string").into_lua_multi(lua),
            },
        }
    }
    compile_text(lua, lua_loadstring, code, name)
}

/// Lua's type names, as `luaL_typerror` prints them.
pub(crate) fn lua_type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// `math.random` as Redis's (script_lua.c `redis_math_random`), on the server's rand48.
fn math_random(lua: &Lua, runtime: &Table, slot: &SharedHostSlot, args: MultiValue) -> mlua::Result<f64> {
    let Some(host) = running_host(slot) else {
        return raise(runtime, format!("{}math.random can only be called inside a script invocation", where_prefix(lua)));
    };
    let r: f64 = host.call(OP_RANDOM)?;
    let arg_error = |n: usize, msg: &str| format!("{}bad argument #{n} to 'random' ({msg})", where_prefix(lua));
    let check_int = |n: usize| -> Result<i64, String> {
        let v = &args[n - 1];
        match lua.coerce_number(v.clone()) {
            Ok(Some(x)) => Ok(x as i32 as i64),
            _ => Err(arg_error(n, &format!("number expected, got {}", lua_type_name(v)))),
        }
    };
    let result = match args.len() {
        0 => Ok(r),
        1 => check_int(1).and_then(|u| if u < 1 { Err(arg_error(1, "interval is empty")) } else { Ok((r * u as f64).floor() + 1.0) }),
        2 => check_int(1).and_then(|l| {
            let u = check_int(2)?;
            if l > u {
                return Err(arg_error(2, "interval is empty"));
            }
            Ok((r * (u - l + 1) as f64).floor() + l as f64)
        }),
        _ => Err(format!("{}wrong number of arguments", where_prefix(lua))),
    };
    result.or_else(|msg| raise(runtime, msg))
}

/// `tostring` of values that have no string form.
fn describe(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        other => format!("{}: {:p}", other.type_name(), other.to_pointer()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_keeps_codes_and_defaults_to_err() {
        assert_eq!(error_text(b"-WRONGTYPE Operation"), b"WRONGTYPE Operation");
        assert_eq!(error_text(b"-NOCODE"), b"ERR NOCODE");
        assert_eq!(error_text(b"plain message\r\n"), b"ERR plain message");
        assert_eq!(error_text(b"-My Error"), b"My Error");
    }

    #[test]
    fn sandbox_refuses_new_globals_and_library_writes() {
        let engine = LuaEngine::new().expect("engine");
        let f = engine.compile(b"a = 1").expect("compiles");
        let err = f.call::<()>(()).expect_err("must fail");
        assert!(lua_error_text(&err).contains("user_script:1: Attempt to modify a readonly table"), "{err}");
        let f = engine.compile(b"return nosuch").expect("compiles");
        let err = f.call::<()>(()).expect_err("must fail");
        assert!(lua_error_text(&err).contains("Script attempted to access nonexistent global variable 'nosuch'"), "{err}");
        let f = engine.compile(b"string.foo = 1").expect("compiles");
        assert!(f.call::<()>(()).is_err());
        let f = engine.compile(b"return type(os) ").expect("compiles");
        assert!(f.call::<()>(()).is_err(), "os must not exist");
        let f = engine.compile(b"return ('x'):upper() .. string.rep('a', 2)").expect("compiles");
        assert_eq!(f.call::<String>(()).expect("runs"), "Xaa");
    }

    #[test]
    fn syntax_errors_name_the_user_script() {
        let engine = LuaEngine::new().expect("engine");
        let e = engine.compile(b"return 1+").expect_err("syntax error");
        assert_eq!(e, "user_script:1: unexpected symbol near '<eof>'");
    }
}
