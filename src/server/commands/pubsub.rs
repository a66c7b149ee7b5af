//! Pub/sub commands. Subscription confirmations are push frames (RESP3 `>`, RESP2 arrays).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, CommandSpec, Ctx};
use crate::server::types::glob::string_match;
use crate::server::pubsub;

pub fn commands() -> Vec<CommandSpec> {
    let p = |s: CommandSpec| s.group("pubsub");
    vec![
        p(cmd("subscribe", -2, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", subscribe).since("2.0.0").summary("Listen for messages published to the given channels")),
        p(cmd("psubscribe", -2, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", psubscribe).since("2.0.0").summary("Listen for messages published to channels matching the given patterns")),
        p(cmd("unsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", unsubscribe).since("2.0.0").summary("Stop listening for messages posted to the given channels")),
        p(cmd("punsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", punsubscribe).since("2.0.0").summary("Stop listening for messages posted to channels matching the given patterns")),
        p(cmd("publish", 3, "pubsub loading stale fast may_replicate", 0, 0, 0, "pubsub fast", publish).since("2.0.0").summary("Post a message to a channel")),
        p(cmd("ssubscribe", -2, "pubsub noscript loading stale", 1, -1, 1, "pubsub slow", ssubscribe).key_flags(&["not_key"]).since("7.0.0").summary("Listen for messages published to the given shard channels")),
        p(cmd("sunsubscribe", -1, "pubsub noscript loading stale", 1, -1, 1, "pubsub slow", sunsubscribe).key_flags(&["not_key"]).since("7.0.0").summary("Stop listening for messages posted to the given shard channels")),
        p(cmd("spublish", 3, "pubsub loading stale fast may_replicate", 1, 1, 1, "pubsub fast", spublish).key_flags(&["not_key"]).since("7.0.0").summary("Post a message to a shard channel")),
        p(cmd("pubsub", -2, "", 0, 0, 0, "slow", crate::server::commands::keys::container_help).since("2.8.0").summary("A container for Pub/Sub commands").subs(vec![
            cmd("channels", -2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_channels).since("2.8.0").summary("List active channels"),
            cmd("numsub", -2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_numsub).since("2.8.0").summary("Get the count of subscribers for channels"),
            cmd("numpat", 2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_numpat).since("2.8.0").summary("Get the count of unique patterns pattern subscriptions"),
            cmd("shardchannels", -2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_shardchannels).since("7.0.0").summary("List active shard channels"),
            cmd("shardnumsub", -2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_shardnumsub).since("7.0.0").summary("Get the count of subscribers for shard channels"),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow", pubsub_help).since("6.2.0").summary("Show helpful text about the different subcommands"),
        ])),
    ]
}

/// Subscription replies go out in order through the client's own queue: several
/// confirmations for one command are separate push frames, as Redis sends them.
fn send_self(ctx: &mut Ctx, frames: Vec<Frame>) -> Frame {
    ctx.client.deferred.extend(frames);
    Frame::Simple(NO_REPLY.to_string())
}

/// The count SUBSCRIBE & co. report: channels and patterns, not shard channels.
fn channel_and_pattern_count(c: &crate::server::client::ClientState) -> i64 {
    (c.channels.len() + c.patterns.len()) as i64
}

/// Marker reply meaning "the replies are in `ClientState::deferred`" (one command, several
/// frames); the connection layer writes those instead.
pub const NO_REPLY: &str = "\u{0}rf-no-reply";

fn subscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut frames = Vec::new();
    for ch in &args[1..] {
        if ctx.client.channels.insert(ch.clone()) {
            ctx.srv.pubsub.channels.entry(ch.clone()).or_default().push(ctx.client.id);
        }
        frames.push(Frame::Push(vec![Frame::bulk("subscribe"), Frame::Bulk(ch.clone()), Frame::Integer(channel_and_pattern_count(ctx.client))]));
    }
    send_self(ctx, frames)
}

fn psubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut frames = Vec::new();
    for p in &args[1..] {
        if ctx.client.patterns.insert(p.clone()) {
            ctx.srv.pubsub.patterns.entry(p.clone()).or_default().push(ctx.client.id);
        }
        frames.push(Frame::Push(vec![Frame::bulk("psubscribe"), Frame::Bulk(p.clone()), Frame::Integer(channel_and_pattern_count(ctx.client))]));
    }
    send_self(ctx, frames)
}

fn unsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let targets: Vec<Bytes> = if args.len() > 1 { args[1..].to_vec() } else { ctx.client.channels.iter().cloned().collect() };
    let mut frames = Vec::new();
    if targets.is_empty() {
        frames.push(Frame::Push(vec![Frame::bulk("unsubscribe"), Frame::Null, Frame::Integer(channel_and_pattern_count(ctx.client))]));
    }
    for ch in targets {
        if ctx.client.channels.remove(&ch) {
            if let Some(ids) = ctx.srv.pubsub.channels.get_mut(&ch) {
                ids.retain(|&i| i != ctx.client.id);
                if ids.is_empty() {
                    ctx.srv.pubsub.channels.remove(&ch);
                }
            }
        }
        frames.push(Frame::Push(vec![Frame::bulk("unsubscribe"), Frame::Bulk(ch), Frame::Integer(channel_and_pattern_count(ctx.client))]));
    }
    send_self(ctx, frames)
}

fn punsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let targets: Vec<Bytes> = if args.len() > 1 { args[1..].to_vec() } else { ctx.client.patterns.iter().cloned().collect() };
    let mut frames = Vec::new();
    if targets.is_empty() {
        frames.push(Frame::Push(vec![Frame::bulk("punsubscribe"), Frame::Null, Frame::Integer(channel_and_pattern_count(ctx.client))]));
    }
    for p in targets {
        if ctx.client.patterns.remove(&p) {
            if let Some(ids) = ctx.srv.pubsub.patterns.get_mut(&p) {
                ids.retain(|&i| i != ctx.client.id);
                if ids.is_empty() {
                    ctx.srv.pubsub.patterns.remove(&p);
                }
            }
        }
        frames.push(Frame::Push(vec![Frame::bulk("punsubscribe"), Frame::Bulk(p), Frame::Integer(channel_and_pattern_count(ctx.client))]));
    }
    send_self(ctx, frames)
}

fn ssubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if ctx.in_exec {
        // Unlike SUBSCRIBE (kept for backward compatibility), Redis 7.0 refuses this in MULTI.
        return Frame::error("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client");
    }
    let mut frames = Vec::new();
    for ch in &args[1..] {
        if ctx.client.shard_channels.insert(ch.clone()) {
            ctx.srv.pubsub.shard_channels.entry(ch.clone()).or_default().push(ctx.client.id);
        }
        frames.push(Frame::Push(vec![Frame::bulk("ssubscribe"), Frame::Bulk(ch.clone()), Frame::Integer(ctx.client.shard_channels.len() as i64)]));
    }
    send_self(ctx, frames)
}

fn sunsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let targets: Vec<Bytes> = if args.len() > 1 { args[1..].to_vec() } else { ctx.client.shard_channels.iter().cloned().collect() };
    let mut frames = Vec::new();
    if targets.is_empty() {
        frames.push(Frame::Push(vec![Frame::bulk("sunsubscribe"), Frame::Null, Frame::Integer(ctx.client.shard_channels.len() as i64)]));
    }
    for ch in targets {
        if ctx.client.shard_channels.remove(&ch) {
            if let Some(ids) = ctx.srv.pubsub.shard_channels.get_mut(&ch) {
                ids.retain(|&i| i != ctx.client.id);
                if ids.is_empty() {
                    ctx.srv.pubsub.shard_channels.remove(&ch);
                }
            }
        }
        frames.push(Frame::Push(vec![Frame::bulk("sunsubscribe"), Frame::Bulk(ch), Frame::Integer(ctx.client.shard_channels.len() as i64)]));
    }
    send_self(ctx, frames)
}

fn spublish(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let n = pubsub::spublish(ctx.srv, Some(ctx.client), &args[1], &args[2]);
    propagate_to_replicas(ctx, args);
    Frame::Integer(n)
}

/// Redis's reply when a PUBSUB subcommand gets too many arguments.
fn pubsub_arity_error(args: &[Bytes]) -> Frame {
    let shown: String = String::from_utf8_lossy(&args[1]).chars().take(128).collect();
    Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{shown}'. Try PUBSUB HELP."))
}

fn matching_channels(map: &std::collections::HashMap<Bytes, Vec<u64>>, pattern: Option<&Bytes>) -> Frame {
    let mut out: Vec<&Bytes> = map.keys().filter(|c| pattern.is_none_or(|p| string_match(p, c, false))).collect();
    out.sort();
    Frame::Array(out.into_iter().map(|c| Frame::Bulk(c.clone())).collect())
}

fn pubsub_shardchannels(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return pubsub_arity_error(args);
    }
    matching_channels(&ctx.srv.pubsub.shard_channels, args.get(2))
}

fn pubsub_shardnumsub(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut out = Vec::new();
    for ch in &args[2..] {
        out.push(Frame::Bulk(ch.clone()));
        out.push(Frame::Integer(ctx.srv.pubsub.shard_channels.get(ch).map(|v| v.len()).unwrap_or(0) as i64));
    }
    Frame::Array(out)
}

fn publish(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let n = pubsub::publish(ctx.srv, Some(ctx.client), &args[1], &args[2]);
    propagate_to_replicas(ctx, args);
    Frame::Integer(n)
}

/// As Redis's forceCommandPropagation(c, PROPAGATE_REPL) for (S)PUBLISH without cluster:
/// replicas see it, the AOF does not (inside a script or EXEC, with their other writes).
fn propagate_to_replicas(ctx: &mut Ctx, args: &[Bytes]) {
    let db = ctx.client.db;
    let to_replicas = crate::server::scripting::repl_targets::REPLICA;
    match ctx.srv.script_effects.as_mut() {
        Some(effects) => effects.push_to(to_replicas, db, args),
        None => crate::server::scripting::feed(ctx.srv, to_replicas, db, args),
    }
}

fn pubsub_channels(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return pubsub_arity_error(args);
    }
    matching_channels(&ctx.srv.pubsub.channels, args.get(2))
}

fn pubsub_numsub(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut out = Vec::new();
    for ch in &args[2..] {
        out.push(Frame::Bulk(ch.clone()));
        out.push(Frame::Integer(ctx.srv.pubsub.channels.get(ch).map(|v| v.len()).unwrap_or(0) as i64));
    }
    Frame::Array(out)
}

fn pubsub_numpat(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Integer(ctx.srv.pubsub.patterns.len() as i64)
}

fn pubsub_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let lines = [
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ];
    Frame::Array(lines.iter().map(|l| Frame::Simple(l.to_string())).collect())
}
