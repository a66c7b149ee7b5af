//! Pub/sub delivery: channel and pattern subscribers get messages through their
//! connection's outbound queue, encoded for their protocol (RESP3 push or RESP2 array).

use bytes::Bytes;

use super::client::ClientState;
use super::types::glob::string_match;
use super::state::ServerState;
use crate::resp::Frame;

fn deliver(srv: &mut ServerState, current: &mut Option<&mut ClientState>, id: u64, frame: &Frame) -> bool {
    if let Some(cur) = current.as_deref_mut() {
        if cur.id == id {
            // The running client gets its own message in place, before the reply of the
            // command that published it (as Redis writes both to the same output buffer).
            cur.deferred.push(frame.clone());
            return true;
        }
    }
    let now = super::now_ms();
    match srv.clients.get_mut(&id) {
        Some(c) => c.send_raw(frame.to_bytes(c.proto)) && c.check_output_limit(&srv.limits, now),
        None => false,
    }
}

/// PUBLISH: returns the number of clients that received the message.
pub fn publish(srv: &mut ServerState, mut current: Option<&mut ClientState>, channel: &Bytes, message: &Bytes) -> i64 {
    let mut receivers = 0;
    if let Some(ids) = srv.pubsub.channels.get(channel).cloned() {
        let frame = Frame::Push(vec![Frame::bulk("message"), Frame::Bulk(channel.clone()), Frame::Bulk(message.clone())]);
        for id in ids {
            deliver(srv, &mut current, id, &frame);
            receivers += 1;
        }
    }
    if !srv.pubsub.patterns.is_empty() {
        let matching: Vec<(Bytes, Vec<u64>)> = srv
            .pubsub
            .patterns
            .iter()
            .filter(|(p, _)| string_match(p, channel, false))
            .map(|(p, ids)| (p.clone(), ids.clone()))
            .collect();
        for (pattern, ids) in matching {
            let frame = Frame::Push(vec![
                Frame::bulk("pmessage"),
                Frame::Bulk(pattern.clone()),
                Frame::Bulk(channel.clone()),
                Frame::Bulk(message.clone()),
            ]);
            for id in ids {
                deliver(srv, &mut current, id, &frame);
                receivers += 1;
            }
        }
    }
    srv.stats.pubsub_messages += 1;
    receivers
}

/// SPUBLISH: shard channel subscribers only (patterns never match shard channels).
pub fn spublish(srv: &mut ServerState, mut current: Option<&mut ClientState>, channel: &Bytes, message: &Bytes) -> i64 {
    let Some(ids) = srv.pubsub.shard_channels.get(channel).cloned() else {
        return 0;
    };
    let frame = Frame::Push(vec![Frame::bulk("smessage"), Frame::Bulk(channel.clone()), Frame::Bulk(message.clone())]);
    for &id in &ids {
        deliver(srv, &mut current, id, &frame);
    }
    ids.len() as i64
}

/// Removes every subscription of a client (disconnect, RESET).
pub fn unsubscribe_all(srv: &mut ServerState, client: &mut ClientState) {
    for ch in client.shard_channels.drain() {
        if let Some(ids) = srv.pubsub.shard_channels.get_mut(&ch) {
            ids.retain(|&i| i != client.id);
            if ids.is_empty() {
                srv.pubsub.shard_channels.remove(&ch);
            }
        }
    }
    for ch in client.channels.drain() {
        if let Some(ids) = srv.pubsub.channels.get_mut(&ch) {
            ids.retain(|&i| i != client.id);
            if ids.is_empty() {
                srv.pubsub.channels.remove(&ch);
            }
        }
    }
    for p in client.patterns.drain() {
        if let Some(ids) = srv.pubsub.patterns.get_mut(&p) {
            ids.retain(|&i| i != client.id);
            if ids.is_empty() {
                srv.pubsub.patterns.remove(&p);
            }
        }
    }
}
