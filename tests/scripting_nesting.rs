//! Script replies thousands of levels deep, compared byte for byte with Debian's
//! redis-server: Redis converts a reply on its Lua stack, so past ~8000 array levels (~2700
//! map levels) the innermost values become "reached lua stack limit", and a table that
//! contains itself ends the same way. (The differential harness parses replies recursively,
//! hence raw bytes here.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{spawn_redis, spawn_rf};

/// The raw reply bytes of one EVAL (after HELLO 3's reply when `resp3`), read until `end`
/// arrives at the end of the buffer or 10 s pass.
fn raw_eval(port: u16, script: &str, resp3: bool, end: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut request = Vec::new();
    if resp3 {
        request.extend_from_slice(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n");
        request.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    }
    request.extend_from_slice(format!("*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n", script.len()).as_bytes());
    s.write_all(&request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !out.ends_with(end) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    if resp3 {
        // Drop HELLO's map (server-specific fields) up to PING's reply.
        let pong = out.windows(7).position(|w| w == b"+PONG\r\n").expect("PONG after HELLO") + 7;
        out.drain(..pong);
    }
    out
}

/// How many aggregate headers (arrays, maps, sets) open the reply before its innermost
/// value, skipping the bulk-string keys of maps.
fn nesting_depth(reply: &[u8]) -> usize {
    let mut depth = 0;
    let mut rest = reply;
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else { break };
        let line = &rest[..eol];
        rest = &rest[eol + 2..];
        match line.first() {
            Some(b'*' | b'%' | b'~') => depth += 1,
            Some(b'$') => {
                let len: usize = std::str::from_utf8(&line[1..]).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
                rest = &rest[(len + 2).min(rest.len())..];
            }
            _ => break,
        }
    }
    depth
}

#[test]
fn deep_replies_stop_where_redis_stops() {
    let rf = spawn_rf(&["--save", ""]);
    let redis = spawn_redis(&[]);
    let limit = b"-ERR reached lua stack limit\r\n";
    // (script, RESP3 connection, how the reply ends, compared byte for byte)
    let cases: &[(&str, bool, &[u8], bool)] = &[
        ("local t = {} local cur = t for i = 1, 7000 do cur[1] = {} cur = cur[1] end return t", false, b"*0\r\n", true),
        ("redis.setresp(3) local t = {map={}} local cur = t for i = 1, 2000 do local n = {map={}} cur.map.a = n cur = n end return t", true, b"%0\r\n", true),
        ("return {cmsgpack.unpack_one(string.rep('\\145', 3999) .. '\\192', 0)}", false, b"*0\r\n", true),
        // Known gap: mlua keeps the open levels of the conversion in a reference stack that
        // Lua 5.1 also caps at 8000 slots (one per array level, three per map level), so
        // ours ends a few levels (at most 16) before Redis's ~7995 array / ~2665 map levels.
        ("redis.setresp(3) local t = {map={}} local cur = t for i = 1, 3000 do local n = {map={}} cur.map.a = n cur = n end return t", true, limit, false),
        ("redis.setresp(3) local t = {map={}} local cur = t for i = 1, 3000 do local n = {map={}} cur.map.a = n cur = n end return t", false, limit, false),
        ("redis.setresp(3) local t = {set={}} local cur = t for i = 1, 3000 do local n = {set={}} cur.set[n] = true cur = n end return t", true, limit, false),
        ("local t = {} local cur = t for i = 1, 9000 do cur[1] = {} cur = cur[1] end return t", false, limit, false),
        ("local t = {} local cur = t for i = 1, 9000 do cur[1] = {} cur = cur[1] end return {1, {2, t}}", false, limit, false),
        ("local t = {} t[1] = t return t", true, limit, false),
    ];
    for (script, resp3, end, exact) in cases {
        let ours = raw_eval(rf.port, script, *resp3, end);
        let reference = raw_eval(redis.port, script, *resp3, end);
        let tail = |r: &[u8]| String::from_utf8_lossy(&r[r.len().saturating_sub(80)..]).into_owned();
        assert!(reference.ends_with(end), "redis-server did not answer {script:?}: ...{:?}", tail(&reference));
        let what = format!("{script:?} (resp3 {resp3}): {} bytes from rf-server ending {:?}, {} from redis-server ending {:?}", ours.len(), tail(&ours), reference.len(), tail(&reference));
        if *exact {
            assert!(ours == reference, "{what}");
        } else {
            assert!(ours.ends_with(end), "{what}");
            let (depth, reference_depth) = (nesting_depth(&ours), nesting_depth(&reference));
            assert!(depth <= reference_depth && depth + 16 >= reference_depth, "{what}: depth {depth} against {reference_depth}");
        }
    }
}
