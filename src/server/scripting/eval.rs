//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (eval.c of Redis 7.0).

use std::borrow::Cow;

use bytes::Bytes;

use super::{invoke, Invocation};
use crate::resp::Frame;
use crate::server::command::{cmd, parse_int, CommandSpec, Ctx};
use crate::server::commands::keys::container_help;
use crate::server::dispatch;

pub fn commands() -> Vec<CommandSpec> {
    let s = |c: CommandSpec| c.group("scripting");
    const EVAL_FLAGS: &str = "noscript stale skip_monitor no_mandatory_keys may_replicate";
    vec![
        s(cmd("eval", -3, EVAL_FLAGS, 0, 0, 0, "slow scripting", eval).keys_fn(numkeys_keys).since("2.6.0").summary("Execute a Lua script server side")),
        s(cmd("evalsha", -3, EVAL_FLAGS, 0, 0, 0, "slow scripting", evalsha).keys_fn(numkeys_keys).since("2.6.0").summary("Execute a Lua script server side")),
        s(cmd("eval_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys", 0, 0, 0, "slow scripting", eval_ro)
            .keys_fn(numkeys_keys)
            .since("7.0.0")
            .summary("Execute a read-only Lua script server side")),
        s(cmd("evalsha_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys", 0, 0, 0, "slow scripting", evalsha_ro)
            .keys_fn(numkeys_keys)
            .since("7.0.0")
            .summary("Execute a read-only Lua script server side")),
        s(cmd("script", -2, "", 0, 0, 0, "slow", container_help).since("2.6.0").summary("A container for Lua scripts management commands").subs(vec![
            cmd("debug", 3, "noscript", 0, 0, 0, "slow scripting", script_debug).since("3.2.0").summary("Set the debug mode for executed scripts."),
            cmd("exists", -3, "noscript", 0, 0, 0, "slow scripting", script_exists)
                .since("2.6.0")
                .summary("Check existence of scripts in the script cache.")
                .tips(&["request_policy:all_shards", "response_policy:agg_logical_and"]),
            cmd("flush", -2, "noscript", 0, 0, 0, "slow scripting", script_flush)
                .since("2.6.0")
                .summary("Remove all the scripts from the script cache.")
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow scripting", script_help).since("5.0.0").summary("Show helpful text about the different subcommands"),
            cmd("kill", 2, "noscript allow_busy", 0, 0, 0, "slow scripting", script_kill)
                .since("2.6.0")
                .summary("Kill the script currently in execution.")
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
            cmd("load", 3, "noscript stale", 0, 0, 0, "slow scripting", script_load)
                .since("2.6.0")
                .summary("Load the specified Lua script into the script cache.")
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
        ])),
    ]
}

/// Key positions of EVAL-like commands: `numkeys` at 2, then that many keys.
pub fn numkeys_keys(args: &[Bytes]) -> Vec<usize> {
    let Some(n) = args.get(2).and_then(|a| crate::resp::parse_i64(a)) else { return Vec::new() };
    if n < 0 || n as usize > args.len().saturating_sub(3) {
        return Vec::new();
    }
    (3..3 + n as usize).collect()
}

fn eval(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    eval_generic(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    eval_generic(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    eval_generic(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    eval_generic(ctx, args, true, true)
}

fn noscript() -> Frame {
    Frame::error("NOSCRIPT No matching script. Please use EVAL.")
}

/// The script flags of an EVAL-family request, for the dispatcher's checks before it runs
/// (Redis's `evalGetCommandFlags`): None when unknown (not cached, or a bad shebang).
pub fn requested_script_flags(srv: &crate::server::state::ServerState, args: &[Bytes]) -> Option<u32> {
    let by_sha = args[0].eq_ignore_ascii_case(b"evalsha") || args[0].eq_ignore_ascii_case(b"evalsha_ro");
    let body = args.get(1)?;
    if by_sha {
        if body.len() != 40 {
            return None;
        }
        return srv.scripting.scripts.get(sha_key(body).as_ref()).map(|s| s.flags);
    }
    match srv.scripting.scripts.get(&super::sha1_hex(body)) {
        Some(s) => Some(s.flags),
        None => super::parse_shebang(body).ok().map(|(flags, _)| flags),
    }
}

/// The script cache's key for a sha1 as a client sent it (the cache compares names
/// case-insensitively): the bytes themselves when already lowercase, as clients send them.
fn sha_key(sha: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(sha) {
        Ok(s) if !s.bytes().any(|b| b.is_ascii_uppercase()) => Cow::Borrowed(s),
        _ => Cow::Owned(String::from_utf8_lossy(sha).to_ascii_lowercase()),
    }
}

fn eval_generic(ctx: &mut Ctx, args: &[Bytes], by_sha: bool, read_only: bool) -> Frame {
    // EVAL is skip_monitor: MONITOR shows it here, before the commands it runs.
    if !ctx.srv.monitors.is_empty() {
        dispatch::feed_monitors(ctx.srv, ctx.client, args, ctx.now_ms);
    }
    if by_sha && args[1].len() != 40 {
        return noscript();
    }
    let numkeys = match parse_int(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if numkeys > (args.len() - 3) as i64 {
        return Frame::error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return Frame::error("ERR Number of keys can't be negative");
    }
    let sha: Cow<str> = if by_sha {
        sha_key(&args[1])
    } else {
        match ctx.srv.scripting.load_script(&args[1]) {
            Ok(sha) => Cow::Owned(sha),
            Err(e) => return e,
        }
    };
    let Some(script) = ctx.srv.scripting.scripts.get(sha.as_ref()) else { return noscript() };
    let (function, flags) = (script.function.clone(), script.flags);
    let engine = ctx.srv.scripting.engine.clone();
    let split = 3 + numkeys as usize;
    invoke(ctx, Invocation { engine, function, name: &sha, keys: &args[3..split], args: &args[split..], flags, read_only_command: read_only, eval_mode: true })
}

fn script_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_reply(
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    )
}

/// Redis's `addReplyHelp`: the usage line, the subcommands, then HELP itself.
pub fn help_reply(name: &str, lines: &[&str]) -> Frame {
    let mut out = vec![Frame::Simple(format!("{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"))];
    out.extend(lines.iter().map(|l| Frame::Simple(l.to_string())));
    out.push(Frame::Simple("HELP".into()));
    out.push(Frame::Simple("    Prints this help.".into()));
    Frame::Array(out)
}

fn script_exists(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    // Redis's script dict compares names case-insensitively.
    let scripts = &ctx.srv.scripting.scripts;
    Frame::Array(args[2..].iter().map(|sha| Frame::Integer(scripts.contains_key(&String::from_utf8_lossy(sha).to_ascii_lowercase()) as i64)).collect())
}

/// The `[ASYNC|SYNC]` argument of SCRIPT FLUSH / FUNCTION FLUSH: Ok when valid.
pub fn flush_mode_valid(args: &[Bytes]) -> bool {
    match args.len() {
        2 => true,
        3 => args[2].eq_ignore_ascii_case(b"sync") || args[2].eq_ignore_ascii_case(b"async"),
        _ => false,
    }
}

fn script_flush(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if !flush_mode_valid(args) {
        return Frame::error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
    }
    ctx.srv.scripting.flush_scripts();
    Frame::ok()
}

fn script_load(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match ctx.srv.scripting.load_script(&args[2]) {
        Ok(sha) => Frame::bulk(sha),
        Err(e) => e,
    }
}

fn script_kill(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    // A script runs to its end under the server lock before this command is read, so
    // none is ever running here (busy scripts are answered before the lock is taken).
    Frame::error("NOTBUSY No scripts in execution right now.")
}

fn script_debug(_ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mode = args[2].to_ascii_lowercase();
    match mode.as_slice() {
        b"no" => Frame::ok(),
        // The Lua debugger (LDB) forks a server per session; rf-server does not offer it.
        b"yes" | b"sync" => Frame::error("ERR The Lua debugger is not available on this server: use SCRIPT DEBUG NO"),
        _ => Frame::error("ERR Use SCRIPT DEBUG YES/SYNC/NO"),
    }
}
