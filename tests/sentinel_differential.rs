//! The sentinel port's introspection commands, differential: the same commands, RESP2 and
//! RESP3, to Debian's redis-sentinel and to rf-sentinel started with the same config;
//! replies must be equal. Where Redis's order comes from a hash table (the command list,
//! subcommand lists, sets, maps), elements are compared in sorted order.

#[path = "common_sentinel/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use procs::*;
use redis_failover::resp::{encode_command, split_args, Frame, ProtocolVersion, ReplyParser};

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    fn connect(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Conn { stream, buf: BytesMut::new() }
    }

    fn call(&mut self, line: &str) -> Frame {
        let args = split_args(line.as_bytes()).expect("test line parses");
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let mut out = BytesMut::new();
        encode_command(&refs, &mut out);
        self.stream.write_all(&out).unwrap();
        loop {
            if let Some(frame) = ReplyParser::parse(&mut self.buf).expect("a well-formed reply") {
                return frame;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("a reply in time");
            assert!(n > 0, "connection closed while waiting for the reply to {line}");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The frame with every hash-ordered collection sorted: sets and maps always, arrays when
/// `unordered` (top level of COMMAND / COMMAND LIST) or when they are subcommand lists.
fn normalized(f: &Frame, unordered: bool) -> Vec<u8> {
    fn sorted_concat(mut parts: Vec<Vec<u8>>, open: &[u8]) -> Vec<u8> {
        parts.sort();
        let mut out = open.to_vec();
        for p in parts {
            out.extend_from_slice(&p);
            out.push(b',');
        }
        out.push(b']');
        out
    }
    let is_subcommand_entry = |e: &Frame| matches!(e, Frame::Array(fields) if matches!(fields.first(), Some(Frame::Bulk(n)) if n.contains(&b'|')));
    match f {
        Frame::Set(items) => sorted_concat(items.iter().map(|i| normalized(i, false)).collect(), b"set["),
        Frame::Map(pairs) => sorted_concat(
            pairs.iter().map(|(k, v)| [normalized(k, false), b":".to_vec(), if volatile(k) { b"*".to_vec() } else { normalized(v, false) }].concat()).collect(),
            b"map[",
        ),
        Frame::Array(items) if unordered || (!items.is_empty() && items.iter().all(is_subcommand_entry)) => {
            sorted_concat(items.iter().map(|i| normalized(i, false)).collect(), b"array~[")
        }
        // a RESP2 map: a flat array of name, value pairs (COMMAND DOCS)
        Frame::Array(items) if unordered_pairs(items) => sorted_concat(
            items.chunks(2).map(|kv| [normalized(&kv[0], false), b":".to_vec(), normalized(&kv[1], false)].concat()).collect(),
            b"pairs[",
        ),
        Frame::Array(items) => {
            let mut out = b"array[".to_vec();
            for (n, i) in items.iter().enumerate() {
                // a RESP2 map's value after a volatile field name
                let masked = n > 0 && volatile(&items[n - 1]);
                out.extend_from_slice(&if masked { b"*".to_vec() } else { normalized(i, false) });
                out.push(b',');
            }
            out.push(b']');
            out
        }
        other => other.to_bytes(ProtocolVersion::Resp3).to_vec(),
    }
}

/// Fields whose values differ between any two servers (ACL LOG's age and client line).
fn volatile(key: &Frame) -> bool {
    matches!(key, Frame::Bulk(k) if k.as_ref() == b"age-seconds" || k.as_ref() == b"client-info")
}

/// A RESP2 COMMAND DOCS reply: name, docs pairs where each docs is itself a flat array.
fn unordered_pairs(items: &[Frame]) -> bool {
    items.len() >= 2
        && items.len() % 2 == 0
        && items.chunks(2).all(|kv| matches!(&kv[0], Frame::Bulk(_)) && matches!(&kv[1], Frame::Array(d) if d.first().is_some_and(|f| matches!(f, Frame::Bulk(b) if b.as_ref() == b"summary"))))
}

const CASES: &[&str] = &[
    "COMMAND",
    "COMMAND COUNT",
    "COMMAND COUNT extra",
    "COMMAND INFO",
    "COMMAND INFO ping SENTINEL client|list CLIENT|KILL nosuch acl|setuser",
    "COMMAND DOCS",
    "COMMAND DOCS ping sentinel|masters nosuch CLIENT",
    "COMMAND LIST",
    "COMMAND LIST FILTERBY ACLCAT connection",
    "COMMAND LIST FILTERBY ACLCAT nosuch",
    "COMMAND LIST FILTERBY PATTERN sentinel|m*",
    "COMMAND LIST FILTERBY MODULE x",
    "COMMAND LIST FILTERBY BAD x",
    "COMMAND LIST x",
    "COMMAND GETKEYS ping",
    "COMMAND GETKEYS ping a",
    "COMMAND GETKEYS nosuch a b",
    "COMMAND GETKEYS role x y",
    "COMMAND GETKEYSANDFLAGS sentinel masters",
    "COMMAND HELP",
    "COMMAND HELP extra",
    "COMMAND NOSUCH",
    "CLIENT HELP",
    "CLIENT PAUSE 10",
    "CLIENT PAUSE 10 WRITE",
    "CLIENT PAUSE x",
    "CLIENT PAUSE +5",
    "CLIENT PAUSE 10 WRITE extra",
    "CLIENT PAUSE 10 NONE",
    "CLIENT UNBLOCK 999999 ERROR extra",
    "CLIENT UNBLOCK x",
    "CLIENT UNBLOCK 1 NONE",
    "CLIENT UNPAUSE",
    "CLIENT TRACKING off",
    "CLIENT TRACKING on",
    "CLIENT TRACKINGINFO",
    "CLIENT GETREDIR",
    "CLIENT TRACKING off",
    "CLIENT CACHING yes",
    "CLIENT NO-EVICT on",
    "CLIENT REPLY ON",
    "CLIENT SETNAME probe",
    "CLIENT GETNAME",
    "CLIENT UNBLOCK 999999",
    "CLIENT KILL 127.0.0.1:1",
    "CLIENT NOSUCH",
    "ACL HELP",
    "ACL CAT",
    "ACL CAT connection",
    "ACL CAT nosuch",
    "ACL WHOAMI",
    "ACL USERS",
    "ACL LIST",
    "ACL GETUSER default",
    "ACL GETUSER nosuch",
    "ACL DRYRUN default ping",
    "ACL DRYRUN default sentinel masters",
    "ACL DRYRUN nosuch ping",
    "ACL LOG",
    "AUTH nouser wrongpass",
    "AUTH nouser wrongpass",
    "HELLO 2 AUTH other wrongpass",
    "ACL SETUSER limited on nopass -@all +acl|whoami",
    "AUTH limited x",
    "ACL WHOAMI",
    "PING",
    "ACL DRYRUN limited ping",
    "ACL DRYRUN limited acl whoami",
    "AUTH default x",
    "ACL LOG",
    "ACL LOG 1",
    "ACL LOG x",
    "ACL LOG RESET",
    "ACL LOG",
    "ACL NOSUCH",
    "PING",
    "PING hello",
    "ROLE",
    "ECHO x",
];

#[test]
fn command_introspection_matches_redis_sentinel() {
    if !std::path::Path::new(REDIS_SENTINEL).exists() {
        eprintln!("SKIP: redis-sentinel not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // a master that is not running: these commands do not depend on it
    let master = free_port();
    let o = SentinelOpts { quorum: 1, down_after: 5000, failover_timeout: 10000, daemonize: false };
    let (sports, _sentinels) = start_sentinels(&[SentinelKind::Debian, SentinelKind::Rf], dir.path(), master, &o);
    let (dp, rp) = (sports[0], sports[1]);
    let mut mismatches = Vec::new();
    for proto in [2, 3] {
        let (mut d, mut r) = (Conn::connect(dp), Conn::connect(rp));
        if proto == 3 {
            d.call("HELLO 3");
            r.call("HELLO 3");
        }
        for case in CASES {
            let unordered = *case == "COMMAND" || case.starts_with("COMMAND LIST") || *case == "COMMAND INFO" || case.starts_with("ACL CAT ");
            let (want, got) = (d.call(case), r.call(case));
            if normalized(&want, unordered) != normalized(&got, unordered) {
                mismatches.push(format!("RESP{proto} {case}\n  redis-sentinel: {want:?}\n  rf-sentinel:    {got:?}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
