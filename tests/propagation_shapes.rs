//! What a replica receives for transactions, PUBLISH, SCAN's lazy expiry and MIGRATE, next
//! to Debian's redis-server: each scenario runs on both servers with a raw SYNC connection
//! attached (as Redis's test suite `attach_to_replication_stream`), and the commands the
//! stream carries (PINGs aside) must be the same. Redis 7.0.15's unit/multi and unit/expire
//! check these streams.

mod persist_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use persist_support::*;

const RF: &str = env!("CARGO_BIN_EXE_rf-server");

/// A replication stream attached with SYNC, its RDB payload skipped.
struct Stream {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Stream {
    fn attach(port: u16) -> Stream {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        sock.write_all(b"SYNC\r\n").unwrap();
        let mut s = Stream { sock, buf: Vec::new() };
        // Newlines (keepalives) until "$<len>\r\n", then <len> bytes of RDB.
        let deadline = Instant::now() + Duration::from_secs(20);
        let len = loop {
            assert!(Instant::now() < deadline, "no RDB payload after SYNC");
            while s.buf.first() == Some(&b'\n') {
                s.buf.remove(0);
            }
            if let Some(end) = s.buf.windows(2).position(|w| w == b"\r\n") {
                assert_eq!(s.buf[0], b'$', "unexpected SYNC reply {:?}", String::from_utf8_lossy(&s.buf));
                let len: usize = std::str::from_utf8(&s.buf[1..end]).unwrap().parse().unwrap();
                s.buf.drain(..end + 2);
                break len;
            }
            s.fill();
        };
        while s.buf.len() < len {
            assert!(Instant::now() < deadline, "RDB payload incomplete");
            s.fill();
        }
        s.buf.drain(..len);
        s
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16384];
        match self.sock.read(&mut chunk) {
            Ok(0) => panic!("stream closed"),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }

    /// One complete RESP array command from the buffer, if there is one.
    fn parse_one(&mut self) -> Option<Vec<String>> {
        let b = &self.buf;
        let line_end = |from: usize| b[from..].windows(2).position(|w| w == b"\r\n").map(|p| from + p);
        let e = line_end(0)?;
        assert_eq!(b[0], b'*', "stream not made of arrays: {:?}", String::from_utf8_lossy(b));
        let n: usize = std::str::from_utf8(&b[1..e]).unwrap().parse().unwrap();
        let mut pos = e + 2;
        let mut argv = Vec::new();
        for _ in 0..n {
            let e = line_end(pos)?;
            let len: usize = std::str::from_utf8(&b[pos + 1..e]).unwrap().parse().unwrap();
            let start = e + 2;
            if b.len() < start + len + 2 {
                return None;
            }
            argv.push(String::from_utf8_lossy(&b[start..start + len]).to_lowercase());
            pos = start + len + 2;
        }
        self.buf.drain(..pos);
        Some(argv)
    }

    /// The commands received until `marker` (a SET of that key, sent last by the scenario).
    fn until_marker(&mut self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "marker {marker} never reached the stream; got {out:?}");
            while let Some(argv) = self.parse_one() {
                if argv[0] == "ping" {
                    continue;
                }
                if argv[0] == "set" && argv.get(1).map(String::as_str) == Some(marker) {
                    return out;
                }
                // Absolute expiry times (SET ... PXAT <ms>) differ from run to run.
                let shown: Vec<String> = argv.iter().enumerate().map(|(j, a)| if j > 0 && matches!(argv[j - 1].as_str(), "pxat" | "exat") { "<time>".to_string() } else { a.clone() }).collect();
                out.push(shown.join(" "));
            }
            self.fill();
        }
    }
}

fn cmd(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut k = redis::cmd(args[0]);
    for a in &args[1..] {
        k.arg(*a);
    }
    k.query(c)
}

/// Runs each scenario on a server and returns what its replication stream carried.
fn streams(program: &str, scenarios: &[(&str, &[&[&str]])]) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(program, dir.path(), &["--enable-debug-command", "yes"]);
    let target_dir = tempfile::tempdir().unwrap();
    let target = start_server(program, target_dir.path(), &[]);
    let mut c = server.conn();
    let mut out = Vec::new();
    for (i, (_, steps)) in scenarios.iter().enumerate() {
        cmd(&mut c, &["FLUSHALL"]).unwrap();
        let mut stream = Stream::attach(server.port);
        let target_port = target.port.to_string();
        for step in steps.iter() {
            let args: Vec<&str> = step.iter().map(|a| if *a == "$target" { target_port.as_str() } else { a }).collect();
            if args[0] == "sleep" {
                std::thread::sleep(Duration::from_millis(args[1].parse().unwrap()));
                continue;
            }
            // Replies are not compared here (the differential cases do): errors are fine.
            let _ = cmd(&mut c, &args);
        }
        let marker = format!("marker-{i}");
        cmd(&mut c, &["SET", &marker, "1"]).unwrap();
        out.push(stream.until_marker(&marker));
    }
    out
}

#[test]
fn replication_stream_of_transactions_publish_scan_and_migrate_as_redis() {
    if !have_redis() {
        eprintln!("skipped: redis-server not installed");
        return;
    }
    let scenarios: &[(&str, &[&[&str]])] = &[
        ("exec with one write", &[&["MULTI"], &["SET", "foo", "bar"], &["EXEC"], &["SET", "foo2", "bar"]]),
        ("exec with no effect", &[&["MULTI"], &["DEL", "foo"], &["EXEC"], &["INCR", "foo"]]),
        ("exec read-only", &[&["MULTI"], &["GET", "foo"], &["EXEC"]]),
        ("exec with writes in several dbs", &[&["MULTI"], &["SET", "a", "1"], &["SELECT", "1"], &["SET", "b", "2"], &["GET", "b"], &["SELECT", "0"], &["EXEC"]]),
        ("publish", &[&["PUBLISH", "ch", "msg"], &["SPUBLISH", "sch", "msg"]]),
        ("publish in exec", &[&["MULTI"], &["PUBLISH", "bla", "bla"], &["EXEC"]]),
        ("publish and write in exec", &[&["MULTI"], &["PUBLISH", "bla", "bla"], &["SET", "x", "1"], &["EXEC"]]),
        ("publish in a script", &[&["EVAL", "redis.call('publish', 'ch', 'm') redis.call('set', 'y', '1')", "0"]]),
        ("empty exec", &[&["MULTI"], &["EXEC"]]),
        (
            "scan deletes expired keys",
            &[&["DEBUG", "SET-ACTIVE-EXPIRE", "0"], &["SET", "foo1", "bar", "PX", "1"], &["SET", "foo2", "bar", "PX", "1"], &["sleep", "20"], &["SCAN", "0"], &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]],
        ),
        ("migrate", &[&["SET", "mk", "v"], &["MIGRATE", "127.0.0.1", "$target", "mk", "0", "5000"], &["SET", "mk2", "v"], &["MIGRATE", "127.0.0.1", "$target", "mk2", "0", "5000", "COPY"]]),
        ("migrate nokey", &[&["MIGRATE", "127.0.0.1", "$target", "nokey", "0", "5000"]]),
    ];
    let ours = streams(RF, scenarios);
    let theirs = streams("redis-server", scenarios);
    // Lazy-expiry DELs follow the hash table's order (SCAN's): compared as a set per run.
    let sorted_dels = |v: &[String]| {
        let mut out: Vec<String> = Vec::new();
        let mut run: Vec<String> = Vec::new();
        for c in v {
            if c.starts_with("del ") {
                run.push(c.clone());
                continue;
            }
            run.sort();
            out.append(&mut run);
            out.push(c.clone());
        }
        run.sort();
        out.append(&mut run);
        out
    };
    for (i, (name, _)) in scenarios.iter().enumerate() {
        let (ours, theirs) = (sorted_dels(&ours[i]), sorted_dels(&theirs[i]));
        assert!(!theirs.is_empty(), "scenario {name}: Debian's stream carried nothing");
        assert_eq!(ours, theirs, "scenario {name}: ours (left) vs Debian's redis-server (right)");
    }
}
