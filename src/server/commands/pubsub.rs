//! Pub/sub commands. Subscription confirmations are push frames (RESP3 `>`, RESP2 arrays).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, CommandSpec, Ctx};
use crate::server::config::glob_match;
use crate::server::pubsub;

pub fn commands() -> Vec<CommandSpec> {
    let p = |s: CommandSpec| s.group("pubsub");
    vec![
        p(cmd("subscribe", -2, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", subscribe).since("2.0.0").summary("Listen for messages published to the given channels")),
        p(cmd("psubscribe", -2, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", psubscribe).since("2.0.0").summary("Listen for messages published to channels matching the given patterns")),
        p(cmd("unsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", unsubscribe).since("2.0.0").summary("Stop listening for messages posted to the given channels")),
        p(cmd("punsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, "pubsub slow", punsubscribe).since("2.0.0").summary("Stop listening for messages posted to channels matching the given patterns")),
        p(cmd("publish", 3, "pubsub loading stale fast", 0, 0, 0, "pubsub fast", publish).since("2.0.0").summary("Post a message to a channel")),
        p(cmd("pubsub", -2, "", 0, 0, 0, "slow", crate::server::commands::keys::container_help).since("2.8.0").summary("A container for Pub/Sub commands").subs(vec![
            cmd("channels", -2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_channels).since("2.8.0").summary("List active channels"),
            cmd("numsub", -2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_numsub).since("2.8.0").summary("Get the count of subscribers for channels"),
            cmd("numpat", 2, "pubsub loading stale", 0, 0, 0, "pubsub slow", pubsub_numpat).since("2.8.0").summary("Get the count of unique patterns pattern subscriptions"),
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

/// Marker reply meaning "the replies are in `ClientState::deferred`" (one command, several
/// frames); the connection layer writes those instead.
pub const NO_REPLY: &str = "\u{0}rf-no-reply";

fn subscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut frames = Vec::new();
    for ch in &args[1..] {
        if ctx.client.channels.insert(ch.clone()) {
            ctx.srv.pubsub.channels.entry(ch.clone()).or_default().push(ctx.client.id);
        }
        frames.push(Frame::Push(vec![Frame::bulk("subscribe"), Frame::Bulk(ch.clone()), Frame::Integer(ctx.client.subscriptions() as i64)]));
    }
    send_self(ctx, frames)
}

fn psubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut frames = Vec::new();
    for p in &args[1..] {
        if ctx.client.patterns.insert(p.clone()) {
            ctx.srv.pubsub.patterns.entry(p.clone()).or_default().push(ctx.client.id);
        }
        frames.push(Frame::Push(vec![Frame::bulk("psubscribe"), Frame::Bulk(p.clone()), Frame::Integer(ctx.client.subscriptions() as i64)]));
    }
    send_self(ctx, frames)
}

fn unsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let targets: Vec<Bytes> = if args.len() > 1 { args[1..].to_vec() } else { ctx.client.channels.iter().cloned().collect() };
    let mut frames = Vec::new();
    if targets.is_empty() {
        frames.push(Frame::Push(vec![Frame::bulk("unsubscribe"), Frame::Null, Frame::Integer(ctx.client.subscriptions() as i64)]));
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
        frames.push(Frame::Push(vec![Frame::bulk("unsubscribe"), Frame::Bulk(ch), Frame::Integer(ctx.client.subscriptions() as i64)]));
    }
    send_self(ctx, frames)
}

fn punsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let targets: Vec<Bytes> = if args.len() > 1 { args[1..].to_vec() } else { ctx.client.patterns.iter().cloned().collect() };
    let mut frames = Vec::new();
    if targets.is_empty() {
        frames.push(Frame::Push(vec![Frame::bulk("punsubscribe"), Frame::Null, Frame::Integer(ctx.client.subscriptions() as i64)]));
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
        frames.push(Frame::Push(vec![Frame::bulk("punsubscribe"), Frame::Bulk(p), Frame::Integer(ctx.client.subscriptions() as i64)]));
    }
    send_self(ctx, frames)
}

fn publish(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let n = pubsub::publish(ctx.srv, Some(ctx.client), &args[1], &args[2]);
    Frame::Integer(n)
}

fn pubsub_channels(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return crate::server::command::wrong_args("pubsub|channels");
    }
    let pattern = args.get(2);
    let mut out: Vec<Frame> = ctx
        .srv
        .pubsub
        .channels
        .keys()
        .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
        .map(|c| Frame::Bulk(c.clone()))
        .collect();
    out.sort_by(|a, b| a.as_bytes().cmp(&b.as_bytes()));
    Frame::Array(out)
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
