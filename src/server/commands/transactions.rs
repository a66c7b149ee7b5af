//! MULTI / EXEC / DISCARD / WATCH / UNWATCH with Redis's abort rules.

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, CommandSpec, Ctx};
use crate::server::dispatch;
use crate::server::scripting;

pub fn commands() -> Vec<CommandSpec> {
    let t = |s: CommandSpec| s.group("transactions");
    vec![
        t(cmd("multi", 1, "noscript loading stale fast allow_busy", 0, 0, 0, "fast transaction", multi).since("1.2.0").summary("Mark the start of a transaction block")),
        t(cmd("exec", 1, "noscript loading stale skip_slowlog", 0, 0, 0, "slow transaction", exec).since("1.2.0").summary("Execute all commands issued after MULTI")),
        t(cmd("discard", 1, "noscript loading stale fast allow_busy", 0, 0, 0, "fast transaction", discard).since("2.0.0").summary("Discard all commands issued after MULTI")),
        t(cmd("watch", -2, "noscript loading stale fast allow_busy", 1, -1, 1, "fast transaction", watch).since("2.2.0").summary("Watch the given keys to determine execution of the MULTI/EXEC block")),
        t(cmd("unwatch", 1, "noscript loading stale fast allow_busy", 0, 0, 0, "fast transaction", unwatch).since("2.2.0").summary("Forget about all watched keys")),
    ]
}

fn multi(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    if ctx.client.multi.is_some() {
        return Frame::error("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    Frame::ok()
}

fn discard(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    if ctx.client.multi.is_none() {
        return Frame::error("ERR DISCARD without MULTI");
    }
    dispatch::discard_transaction(ctx.srv, ctx.client);
    Frame::ok()
}

fn watch(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if ctx.client.multi.is_some() {
        return Frame::error("ERR WATCH inside MULTI is not allowed");
    }
    let db = ctx.db_index();
    for key in &args[1..] {
        let k = (db, key.clone());
        if ctx.client.watched.contains(&k) {
            continue;
        }
        ctx.srv.watched.entry(k.clone()).or_default().push(ctx.client.id);
        let now = ctx.now_ms;
        let d = &ctx.srv.dbs[db];
        if d.find(key).and_then(|p| d.expiry_of(p)).is_some_and(|w| w <= now) {
            ctx.client.watched_stale.push(k.clone());
        }
        ctx.client.watched.push(k);
    }
    Frame::ok()
}

fn unwatch(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    dispatch::unwatch_all(ctx.srv, ctx.client);
    Frame::ok()
}

/// A watched key that expired since WATCH also aborts EXEC (as Redis 7); one that was
/// already expired when watched does not (isWatchedKeyExpired).
fn watched_key_expired(ctx: &mut Ctx) -> bool {
    let now = ctx.now_ms;
    let stale = &ctx.client.watched_stale;
    ctx.client.watched.iter().filter(|k| !stale.contains(k)).any(|(db, key)| {
        let d = &ctx.srv.dbs[*db];
        d.find(key).and_then(|p| d.expiry_of(p)).is_some_and(|w| w <= now)
    })
}

fn exec(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let Some(queue) = ctx.client.multi.take() else {
        return Frame::error("ERR EXEC without MULTI");
    };
    if ctx.client.multi_error {
        dispatch::discard_transaction(ctx.srv, ctx.client);
        return Frame::error("EXECABORT Transaction discarded because of previous errors.");
    }
    if ctx.client.dirty_cas || watched_key_expired(ctx) {
        dispatch::discard_transaction(ctx.srv, ctx.client);
        return Frame::NullArray;
    }
    dispatch::unwatch_all(ctx.srv, ctx.client);
    let table = ctx.srv.commands.clone();
    let mut replies = Vec::with_capacity(queue.len());
    ctx.srv.multi_propagated = false;
    ctx.srv.exec_effects = Some(Vec::new());
    let mut trailing = Vec::new();
    let now = ctx.now_ms;
    for q in queue {
        let Some(top) = table.lookup(&q.args[0]) else {
            replies.push(dispatch::unknown_command_error(&q.args));
            continue;
        };
        let spec = match dispatch::resolve(top, &q.args) {
            Ok(s) => s.clone(),
            Err(e) => {
                replies.push(e);
                continue;
            }
        };
        // Rights are checked again: ACL rules may have changed since the command queued.
        if let Err((d, idx)) = crate::server::acl::check_client(ctx.srv, ctx.client, &spec, &q.args) {
            crate::server::acl::log_command_denial(ctx.srv, ctx.client, &spec, &q.args, d, idx, "multi", now);
            let reason = match d {
                crate::common::acl::Denied::Command => "no permission to execute the command or subcommand",
                crate::common::acl::Denied::Key => "no permission to touch the specified keys",
                crate::common::acl::Denied::Channel => "no permission to access one of the channels used as arguments",
            };
            replies.push(Frame::error(format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}")));
            continue;
        }
        let (reply, _) = dispatch::call(ctx.srv, ctx.client, &spec, &q.args, now, true);
        let reply = dispatch::after_own_messages(ctx.client, reply);
        if dispatch::is_no_reply_marker(&reply) {
            // SUBSCRIBE & co. (or a command that published to this very client) answer with
            // several frames: Redis writes them all in place, so the first takes the
            // command's slot in the EXEC array and the others follow it, which gives the
            // same bytes as long as no later command adds a reply.
            let mut own = std::mem::take(&mut ctx.client.deferred).into_iter();
            replies.push(own.next().unwrap_or(Frame::NullArray));
            trailing.extend(own);
        } else {
            replies.push(reply);
        }
    }

    // The transaction's writes: one alone, several wrapped in MULTI ... EXEC (EXEC itself is
    // never propagated).
    ctx.prevent_propagation = true;
    let effects = ctx.srv.exec_effects.take().unwrap_or_default();
    ctx.srv.multi_propagated = false;
    let wrap = effects.len() > 1;
    if let (true, Some((_, first_db, _)), Some((_, last_db, _))) = (wrap, effects.first(), effects.last()) {
        let (first_db, last_db) = (*first_db, *last_db);
        scripting::feed(ctx.srv, scripting::repl_targets::ALL, first_db, &[Bytes::from_static(b"MULTI")]);
        for (targets, db, argv) in &effects {
            scripting::feed(ctx.srv, *targets, *db, argv);
        }
        scripting::feed(ctx.srv, scripting::repl_targets::ALL, last_db, &[Bytes::from_static(b"EXEC")]);
    } else {
        for (targets, db, argv) in &effects {
            scripting::feed(ctx.srv, *targets, *db, argv);
        }
    }
    ctx.client.multi_error = false;
    if trailing.is_empty() {
        return Frame::Array(replies);
    }
    // The array, then the extra frames of its commands.
    ctx.client.deferred.push(Frame::Array(replies));
    ctx.client.deferred.extend(trailing);
    Frame::Simple(crate::server::commands::pubsub::NO_REPLY.to_string())
}
