//! FUNCTION LOAD/LIST/DELETE/FLUSH/STATS/KILL/HELP/DUMP/RESTORE, FCALL and FCALL_RO
//! (functions.c and function_lua.c of Redis 7.0). Libraries run in their own interpreter,
//! as Redis keeps them apart from EVAL's.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::engine::LuaEngine;
use super::eval::{flush_mode_valid, help_reply, numkeys_keys};
use super::{invoke, script_flags, Invocation};
use crate::resp::Frame;
use crate::server::command::{cmd, CommandSpec, Ctx};
use crate::server::commands::keys::container_help;
use crate::server::dispatch;
use crate::server::persistence::rdb::{put_string, OP_FUNCTION, OP_FUNCTION2, RDB_VERSION};
use crate::server::types::glob::string_match;

pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Vec<u8>>,
    pub flags: u32,
    pub callback: mlua::Function,
}

pub struct Library {
    pub name: String,
    /// The code as loaded, `#!lua name=...` line included (FUNCTION LIST WITHCODE, DUMP).
    pub code: Bytes,
    pub functions: Vec<FunctionInfo>,
}

/// The loaded libraries.
pub struct Functions {
    pub engine: LuaEngine,
    pub libraries: BTreeMap<String, Library>,
    /// Function name -> its library.
    by_function: HashMap<String, String>,
}

impl Functions {
    pub fn new() -> Self {
        Functions { engine: LuaEngine::new().expect("the Lua sandbox must build"), libraries: BTreeMap::new(), by_function: HashMap::new() }
    }

    pub fn function(&self, name: &str) -> Option<&FunctionInfo> {
        // Function names are case-insensitive, as Redis's functions dict.
        let lib = self.by_function.get(&name.to_ascii_lowercase())?;
        self.libraries.get(lib)?.functions.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn function_count(&self) -> usize {
        self.by_function.len()
    }

    /// FUNCTION FLUSH: a fresh interpreter and no library.
    pub fn flush(&mut self) {
        *self = Functions::new();
    }

    fn link(&mut self, lib: Library) {
        for f in &lib.functions {
            self.by_function.insert(f.name.to_ascii_lowercase(), lib.name.clone());
        }
        self.libraries.insert(lib.name.clone(), lib);
    }

    fn unlink(&mut self, name: &str) -> Option<Library> {
        let lib = self.libraries.remove(name)?;
        for f in &lib.functions {
            self.by_function.remove(&f.name.to_ascii_lowercase());
        }
        Some(lib)
    }

    /// Redis's `functionsCreateWithLibraryCtx`: loads `code` as a library (replacing the one
    /// of the same name when `replace`); returns its name or Redis's error text.
    /// `timeout` bounds the library's top level to Redis's 500 ms (not for libraries from
    /// our master, an RDB file or a RESTORE, as Redis).
    pub fn load(&mut self, code: &Bytes, replace: bool, timeout: bool) -> Result<String, String> {
        let meta = parse_metadata(code)?;
        if !valid_name(&meta.name) {
            return Err(NAME_RULE.into());
        }
        if !meta.engine.eq_ignore_ascii_case("lua") {
            return Err(format!("Engine '{}' not found", meta.engine));
        }
        if self.libraries.contains_key(&meta.name) && !replace {
            return Err(format!("Library '{}' already exists", meta.name));
        }
        let registered = self.engine.load_library(&code[meta.body_start..], timeout.then_some(LOAD_TIMEOUT_MS))?;
        if registered.is_empty() {
            return Err("No functions registered".into());
        }
        let old = self.unlink(&meta.name);
        if let Some(clash) = registered.iter().find(|f| self.by_function.contains_key(&f.name.to_ascii_lowercase())) {
            let err = format!("Function {} already exists", clash.name);
            if let Some(old) = old {
                self.link(old);
            }
            return Err(err);
        }
        let functions = registered.into_iter().map(|f| FunctionInfo { name: f.name, description: f.description, flags: f.flags, callback: f.callback }).collect();
        self.link(Library { name: meta.name.clone(), code: code.clone(), functions });
        Ok(meta.name)
    }

    /// FUNCTION DUMP's payload: every library as an RDB FUNCTION2 record, the RDB version
    /// and a CRC64, as Redis writes it.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for lib in self.libraries.values() {
            out.push(OP_FUNCTION2);
            // Compressed as Redis does with rdbcompression yes (its default).
            put_string(&mut out, &lib.code, true);
        }
        out.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64::crc64(0, &out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The libraries' code, for RDB files and full syncs.
    pub fn codes(&self) -> Vec<Bytes> {
        self.libraries.values().map(|l| l.code.clone()).collect()
    }
}

impl Default for Functions {
    fn default() -> Self {
        Self::new()
    }
}

/// The libraries of a loaded RDB file or full-sync payload replace the current ones (Redis
/// empties its functions with the data before such a load).
pub fn replace_from_rdb(srv: &mut crate::server::state::ServerState, codes: &[Bytes]) {
    let functions = &mut srv.scripting.functions;
    if codes.is_empty() && functions.libraries.is_empty() {
        return;
    }
    functions.flush();
    for code in codes {
        if let Err(e) = functions.load(code, true, false) {
            crate::server::log::warning(&format!("Failed loading library from RDB: {e}"));
        }
    }
}

/// Redis's LOAD_TIMEOUT_MS.
const LOAD_TIMEOUT_MS: i64 = 500;

const NAME_RULE: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

struct Metadata {
    name: String,
    engine: String,
    /// Where the body starts: at the newline ending the `#!` line, so line numbers stay right.
    body_start: usize,
}

/// Redis's `functionExtractLibMetaData`.
fn parse_metadata(code: &[u8]) -> Result<Metadata, String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = crate::resp::split_args(&code[..end]).unwrap_or_default();
    let Some(first) = parts.first() else {
        return Err("Invalid library metadata".into());
    };
    let engine = String::from_utf8_lossy(&first[2..]).into_owned();
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err("Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            continue;
        }
        return Err(format!("Invalid metadata value given: {}", String::from_utf8_lossy(part)));
    }
    let name = name.ok_or_else(|| "Library name was not given".to_string())?;
    Ok(Metadata { name, engine, body_start: end })
}

/// The library codes of a FUNCTION DUMP payload, or Redis's error text.
fn parse_dump(payload: &[u8]) -> Result<Vec<Bytes>, String> {
    const BAD: &str = "DUMP payload version or checksum are wrong";
    if payload.len() < 10 {
        return Err(BAD.into());
    }
    let n = payload.len();
    let version = u16::from_le_bytes([payload[n - 10], payload[n - 9]]);
    let crc = u64::from_le_bytes(payload[n - 8..].try_into().expect("8 bytes"));
    if version > RDB_VERSION || crc64::crc64(0, &payload[..n - 8]) != crc {
        return Err(BAD.into());
    }
    let body = &payload[..n - 10];
    let mut image = b"REDIS0010".to_vec();
    image.extend_from_slice(body);
    let mut reader = crate::server::persistence::rdb_load::RdbReader::new(&image).map_err(|e| e.to_string())?;
    let mut codes = Vec::new();
    while reader.position() < image.len() {
        let ty = reader.read_type().map_err(|_| "can not read data type".to_string())?;
        match ty {
            OP_FUNCTION2 => codes.push(reader.read_string("function library").map_err(|_| "failed loading the given functions payload".to_string())?),
            OP_FUNCTION => return Err("Pre-GA function format not supported".into()),
            _ => return Err("given type is not a function".into()),
        }
    }
    Ok(codes)
}

pub fn commands() -> Vec<CommandSpec> {
    let s = |c: CommandSpec| c.group("scripting").since("7.0.0");
    vec![
        s(cmd("fcall", -3, "noscript stale skip_monitor no_mandatory_keys may_replicate", 0, 0, 0, "slow scripting", fcall).keys_fn(numkeys_keys).summary("Invoke a function")),
        s(cmd("fcall_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys", 0, 0, 0, "slow scripting", fcall_ro)
            .keys_fn(numkeys_keys)
            .summary("Invoke a read-only function")),
        s(cmd("function", -2, "", 0, 0, 0, "slow", container_help).summary("A container for function commands").subs(vec![
            s(cmd("delete", 3, "write noscript", 0, 0, 0, "write slow scripting", function_delete).summary("Delete a function by name")),
            s(cmd("dump", 2, "noscript", 0, 0, 0, "slow scripting", function_dump).summary("Dump all functions into a serialized binary payload")),
            s(cmd("flush", -2, "write noscript", 0, 0, 0, "write slow scripting", function_flush).summary("Deleting all functions")),
            s(cmd("help", 2, "loading stale", 0, 0, 0, "slow scripting", function_help).summary("Show helpful text about the different subcommands")),
            s(cmd("kill", 2, "noscript allow_busy", 0, 0, 0, "slow scripting", function_kill).summary("Kill the function currently in execution.")),
            s(cmd("list", -2, "noscript", 0, 0, 0, "slow scripting", function_list).summary("List information about all the functions")),
            s(cmd("load", -3, "write denyoom noscript", 0, 0, 0, "write slow scripting", function_load)
                .summary("Create a function with the given arguments (name, code, description)")),
            s(cmd("restore", -3, "write denyoom noscript", 0, 0, 0, "write slow scripting", function_restore).summary("Restore all the functions on the given payload")),
            s(cmd("stats", 2, "noscript allow_busy", 0, 0, 0, "slow scripting", function_stats)
                .summary("Return information about the function currently running (name, description, duration)")),
        ])),
    ]
}

/// The flags FCALL runs under for the dispatcher's checks (Redis's `fcallGetCommandFlags`).
pub fn requested_function_flags(srv: &crate::server::state::ServerState, args: &[Bytes]) -> Option<u32> {
    srv.scripting.functions.function(std::str::from_utf8(args.get(1)?).ok()?).map(|f| f.flags)
}

fn fcall(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    fcall_generic(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    fcall_generic(ctx, args, true)
}

fn fcall_generic(ctx: &mut Ctx, args: &[Bytes], read_only: bool) -> Frame {
    if !ctx.srv.monitors.is_empty() {
        dispatch::feed_monitors(ctx.srv, ctx.client, args, ctx.now_ms);
    }
    let name = String::from_utf8_lossy(&args[1]).into_owned();
    let functions = &ctx.srv.scripting.functions;
    let Some(f) = functions.function(&name) else {
        return Frame::error("ERR Function not found");
    };
    let (callback, flags, engine) = (f.callback.clone(), f.flags, functions.engine.clone());
    let Some(numkeys) = crate::resp::parse_i64(&args[2]) else {
        return Frame::error("ERR Bad number of keys provided");
    };
    if numkeys > (args.len() - 3) as i64 {
        return Frame::error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return Frame::error("ERR Number of keys can't be negative");
    }
    let split = 3 + numkeys as usize;
    // Functions never run in compat mode: their flags (none = may write) always apply.
    invoke(
        ctx,
        Invocation {
            engine,
            function: callback,
            name: &name,
            keys: &args[3..split],
            args: &args[split..],
            flags: flags & !script_flags::EVAL_COMPAT_MODE,
            read_only_command: read_only,
            eval_mode: false,
        },
    )
}

fn function_load(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut replace = false;
    let mut pos = 2;
    while pos < args.len() - 1 {
        let arg = &args[pos];
        pos += 1;
        if arg.eq_ignore_ascii_case(b"replace") {
            replace = true;
            continue;
        }
        return Frame::error(format!("ERR Unknown option given: {}", String::from_utf8_lossy(arg)));
    }
    if pos >= args.len() {
        return Frame::error("ERR Function code is missing");
    }
    let timeout = !ctx.client.is_master_link;
    match ctx.srv.scripting.functions.load(&args[pos], replace, timeout) {
        Ok(name) => {
            ctx.dirty(1);
            Frame::bulk(name)
        }
        Err(e) => Frame::error(super::convert::script_error_text(format!("ERR {e}").as_bytes())),
    }
}

fn function_delete(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    if ctx.srv.scripting.functions.unlink(&name).is_none() {
        return Frame::error("ERR Library not found");
    }
    ctx.dirty(1);
    Frame::ok()
}

fn subcommand_syntax_error(args: &[Bytes]) -> Frame {
    let shown: String = String::from_utf8_lossy(&args[1]).chars().take(128).collect();
    Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{shown}'. Try FUNCTION HELP."))
}

fn function_flush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return subcommand_syntax_error(args);
    }
    if !flush_mode_valid(args) {
        return Frame::error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    ctx.srv.scripting.functions.flush();
    ctx.dirty(1);
    Frame::ok()
}

fn function_kill(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    // As SCRIPT KILL: a running function is answered before the server lock is taken.
    Frame::error("NOTBUSY No scripts in execution right now.")
}

fn function_stats(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let f = &ctx.srv.scripting.functions;
    Frame::Map(vec![
        (Frame::bulk("running_script"), Frame::Null),
        (
            Frame::bulk("engines"),
            Frame::Map(vec![(
                Frame::bulk("LUA"),
                Frame::Map(vec![
                    (Frame::bulk("libraries_count"), Frame::Integer(f.libraries.len() as i64)),
                    (Frame::bulk("functions_count"), Frame::Integer(f.function_count() as i64)),
                ]),
            )]),
        ),
    ])
}

fn function_list(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut with_code = false;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        if !with_code && arg.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if pattern.is_none() && arg.eq_ignore_ascii_case(b"libraryname") {
            if i >= args.len() - 1 {
                return Frame::error("ERR library name argument was not given");
            }
            i += 1;
            pattern = Some(&args[i]);
        } else {
            return Frame::error(format!("ERR Unknown argument {}", String::from_utf8_lossy(arg)));
        }
        i += 1;
    }
    let libs = ctx.srv.scripting.functions.libraries.values();
    let out = libs
        .filter(|lib| pattern.is_none_or(|p| string_match(p, lib.name.as_bytes(), true)))
        .map(|lib| {
            let functions = lib
                .functions
                .iter()
                .map(|f| {
                    let flags = script_flags::NAMES.iter().filter(|(_, b)| f.flags & b != 0).map(|(n, _)| Frame::Simple(n.to_string())).collect();
                    Frame::Map(vec![
                        (Frame::bulk("name"), Frame::bulk(f.name.clone())),
                        (Frame::bulk("description"), f.description.as_ref().map_or(Frame::Null, |d| Frame::bulk(d.clone()))),
                        (Frame::bulk("flags"), Frame::Set(flags)),
                    ])
                })
                .collect();
            let mut m = vec![
                (Frame::bulk("library_name"), Frame::bulk(lib.name.clone())),
                (Frame::bulk("engine"), Frame::bulk("LUA")),
                (Frame::bulk("functions"), Frame::Array(functions)),
            ];
            if with_code {
                m.push((Frame::bulk("library_code"), Frame::Bulk(lib.code.clone())));
            }
            Frame::Map(m)
        })
        .collect();
    Frame::Array(out)
}

fn function_dump(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::bulk(ctx.srv.scripting.functions.dump())
}

/// FUNCTION RESTORE's policies.
#[derive(PartialEq, Eq)]
enum RestorePolicy {
    Append,
    Replace,
    Flush,
}

fn function_restore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 4 {
        return subcommand_syntax_error(args);
    }
    let policy = match args.get(3).map(|a| a.to_ascii_lowercase()) {
        None => RestorePolicy::Append,
        Some(p) if p == b"append" => RestorePolicy::Append,
        Some(p) if p == b"replace" => RestorePolicy::Replace,
        Some(p) if p == b"flush" => RestorePolicy::Flush,
        Some(_) => return Frame::error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."),
    };
    match restore(&mut ctx.srv.scripting.functions, &args[2], policy) {
        Ok(()) => {
            ctx.dirty(1);
            Frame::ok()
        }
        Err(e) => Frame::error(format!("ERR {e}")),
    }
}

/// Loads every library of `payload` into a fresh set, then joins it to `functions` as the
/// policy says (Redis's `libraryJoin`); nothing changes on error.
fn restore(functions: &mut Functions, payload: &[u8], policy: RestorePolicy) -> Result<(), String> {
    let codes = parse_dump(payload)?;
    let mut incoming = Functions { engine: functions.engine.clone(), libraries: BTreeMap::new(), by_function: HashMap::new() };
    for code in &codes {
        incoming.load(code, false, false)?;
    }
    if policy == RestorePolicy::Flush {
        *functions = incoming;
        return Ok(());
    }
    let mut replaced = Vec::new();
    for name in incoming.libraries.keys() {
        if functions.libraries.contains_key(name) {
            if policy != RestorePolicy::Replace {
                for lib in replaced {
                    functions.link(lib);
                }
                return Err(format!("Library {name} already exists"));
            }
            replaced.extend(functions.unlink(name));
        }
    }
    if let Some(clash) = incoming.by_function.keys().find(|f| functions.by_function.contains_key(*f)) {
        let err = format!("Function {clash} already exists");
        for lib in replaced {
            functions.link(lib);
        }
        return Err(err);
    }
    for (_, lib) in std::mem::take(&mut incoming.libraries) {
        functions.link(lib);
    }
    Ok(())
}

fn function_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_reply(
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_rules() {
        assert_eq!(parse_metadata(b"return 1").err().as_deref(), Some("Missing library metadata"));
        assert_eq!(parse_metadata(b"#!lua name=x").err().as_deref(), Some("Invalid library metadata"));
        assert_eq!(parse_metadata(b"#!lua\n").err().as_deref(), Some("Library name was not given"));
        assert_eq!(parse_metadata(b"#!lua name=a name=b\n").err().as_deref(), Some("Invalid metadata value, name argument was given multiple times"));
        let m = parse_metadata(b"#!lua NAME=lib\nbody").expect("valid");
        assert_eq!((m.name.as_str(), m.engine.as_str(), m.body_start), ("lib", "lua", 14));
    }

    #[test]
    fn dump_and_restore_round_trip() {
        let mut f = Functions::new();
        let code = Bytes::from_static(b"#!lua name=lib\nredis.register_function('f1', function() return 1 end)");
        assert_eq!(f.load(&code, false, true).as_deref(), Ok("lib"));
        let payload = f.dump();
        let mut g = Functions::new();
        restore(&mut g, &payload, RestorePolicy::Append).expect("restores");
        assert!(g.function("f1").is_some());
        assert_eq!(restore(&mut g, &payload, RestorePolicy::Append).err().as_deref(), Some("Library lib already exists"));
        restore(&mut g, &payload, RestorePolicy::Replace).expect("replaces");
        let mut bad = payload.clone();
        bad[3] ^= 0x20;
        assert_eq!(restore(&mut g, &bad, RestorePolicy::Flush).err().as_deref(), Some("DUMP payload version or checksum are wrong"));
    }
}
