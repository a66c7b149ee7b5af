//! Keyspace notifications (`notify-keyspace-events`).

use bytes::Bytes;

use super::client::ClientState;
use super::state::ServerState;

pub const KEYSPACE: u32 = 1 << 0; // K
pub const KEYEVENT: u32 = 1 << 1; // E
pub const GENERIC: u32 = 1 << 2; // g
pub const STRING: u32 = 1 << 3; // $
pub const LIST: u32 = 1 << 4; // l
pub const SET: u32 = 1 << 5; // s
pub const HASH: u32 = 1 << 6; // h
pub const ZSET: u32 = 1 << 7; // z
pub const EXPIRED: u32 = 1 << 8; // x
pub const EVICTED: u32 = 1 << 9; // e
pub const STREAM: u32 = 1 << 10; // t
pub const KEY_MISS: u32 = 1 << 11; // m
pub const NEW: u32 = 1 << 12; // n
/// Module events: never emitted by us, but part of `A` as in Redis.
pub const MODULE: u32 = 1 << 13; // d
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The canonical form Redis shows for the flags (`keyspaceEventsFlagsToString`): `A` or the
/// class letters in a fixed order, then `K`, `E`, `m`. `n` is not part of `A` and Redis 7.0
/// does not print it next to `A`.
pub fn flags_to_string(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                out.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            out.push(c);
        }
    }
    out
}

pub fn parse_flags(s: &str) -> u32 {
    let mut f = 0;
    for c in s.chars() {
        f |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => 0,
        };
    }
    f
}

pub fn notify(srv: &mut ServerState, class: u32, event: &str, key: &[u8], db: usize) {
    notify_with_current(srv, None, class, event, key, db)
}

/// Publishes `__keyspace@<db>__:<key>` and/or `__keyevent@<db>__:<event>`.
pub fn notify_with_current(srv: &mut ServerState, current: Option<&mut ClientState>, class: u32, event: &str, key: &[u8], db: usize) {
    let flags = srv.limits.notify_flags;
    if flags & class == 0 || flags & (KEYSPACE | KEYEVENT) == 0 {
        return;
    }
    let mut current = current;
    if flags & KEYSPACE != 0 {
        let mut ch = format!("__keyspace@{db}__:").into_bytes();
        ch.extend_from_slice(key);
        super::pubsub::publish(srv, current.as_deref_mut(), &Bytes::from(ch), &Bytes::copy_from_slice(event.as_bytes()));
    }
    if flags & KEYEVENT != 0 {
        let ch = format!("__keyevent@{db}__:{event}");
        super::pubsub::publish(srv, current.as_deref_mut(), &Bytes::from(ch), &Bytes::copy_from_slice(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_in_redis_canonical_order() {
        // Pairs observed on Redis 7.0.15 (CONFIG SET then CONFIG GET).
        for (given, shown) in [("KEA", "AKE"), ("nmdtexzhsl$g", "Am"), ("An", "A"), ("nd", "dn"), ("ngK", "gnK"), ("mE", "Em"), ("g$lshzxet", "g$lshzxet"), ("", "")] {
            assert_eq!(flags_to_string(parse_flags(given)), shown, "{given}");
        }
    }
}
