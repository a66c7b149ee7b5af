//! Hostile and heavy clients (issue 14 §5): client-output-buffer-limit (pubsub hard and
//! soft, normal), client-query-buffer-limit, proto-max-bulk-len, maxclients, timeout,
//! tcp-keepalive, 10,000 idle connections and a million-command pipeline nobody reads.
//! Every scenario runs against rf-server and Debian's redis-server 7.0 with the same
//! arguments and must end the same way: the offender treated as Redis treats it, others
//! served, memory bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Runs `scenario` against our server and Redis, each started with `args`.
fn on_both(args: &[&str], scenario: impl Fn(&ServerGuard, &str)) {
    let ours = spawn_rf(args);
    scenario(&ours, "rf-server");
    drop(ours);
    let theirs = spawn_redis(args);
    scenario(&theirs, "redis-server");
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    s.set_write_timeout(Some(Duration::from_secs(30))).expect("write timeout");
    s
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads exactly `n` bytes (or fails the test).
fn read_exact(s: &mut TcpStream, n: usize, who: &str) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap_or_else(|e| panic!("{who}: reading {n} bytes: {e}"));
    buf
}

/// One request, its reply read up to the end of its first line (simple replies only).
fn simple(s: &mut TcpStream, args: &[&[u8]]) -> String {
    s.write_all(&command(args)).expect("write");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(1) => line.push(b[0]),
            other => panic!("reading a reply: {other:?} after {:?}", String::from_utf8_lossy(&line)),
        }
    }
    String::from_utf8_lossy(&line[..line.len() - 2]).into_owned()
}

/// One request whose reply is a bulk string.
fn bulk(s: &mut TcpStream, args: &[&[u8]]) -> String {
    let header = simple(s, args);
    let len: usize = header.strip_prefix('$').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a bulk: {header}"));
    let body = read_exact(s, len + 2, "bulk reply");
    String::from_utf8_lossy(&body[..len]).into_owned()
}

/// True once the peer has closed (EOF or reset), reading and discarding what arrives.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    s.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
    let mut buf = vec![0u8; 1 << 20];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A field of INFO (all sections).
fn info_field(port: u16, field: &str) -> String {
    let info = redis_cli(port, &["INFO", "everything"]);
    info.lines()
        .find_map(|l| l.trim_end().strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("INFO has no {field}"))
}

/// Resident set size and its peak (VmRSS, VmHWM) of a process, in bytes.
fn rss_and_peak(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// PING on a fresh connection answers within `within` (the server still serves others).
fn serves_others(port: u16, within: Duration, who: &str) {
    let started = Instant::now();
    let mut s = connect(port);
    s.set_read_timeout(Some(within)).expect("timeout");
    assert_eq!(simple(&mut s, &[b"PING"]), "+PONG", "{who}");
    assert!(started.elapsed() <= within, "{who}: PING took {:?}", started.elapsed());
}

#[test]
fn a_one_gigabyte_bulk_header_is_refused_with_redis_error() {
    on_both(&[], |srv, who| {
        let (out, closed) = raw_exchange_closed(srv.port, b"*1\r\n$1000000000\r\n", Duration::from_secs(3));
        assert_eq!(String::from_utf8_lossy(&out), "-ERR Protocol error: invalid bulk length\r\n", "{who}");
        assert!(closed, "{who}: connection left open");
        serves_others(srv.port, Duration::from_secs(2), who);
    });
    // proto-max-bulk-len is the boundary: its value is accepted, one more byte is not.
    on_both(&["--proto-max-bulk-len", "1mb"], |srv, who| {
        let (out, closed) = raw_exchange_closed(srv.port, b"*2\r\n$4\r\nECHO\r\n$1048577\r\n", Duration::from_secs(3));
        assert_eq!(String::from_utf8_lossy(&out), "-ERR Protocol error: invalid bulk length\r\n", "{who}");
        assert!(closed, "{who}");
        let mut s = connect(srv.port);
        s.write_all(&command(&[b"ECHO", &vec![b'x'; 1 << 20]])).expect("write");
        assert_eq!(read_exact(&mut s, 11, who), b"$1048576\r\nx", "{who}");
    });
}

#[test]
fn a_query_buffer_past_its_limit_closes_the_client_and_is_logged() {
    on_both(&["--client-query-buffer-limit", "1mb"], |srv, who| {
        let mut s = connect(srv.port);
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n").expect("write header");
        // The server closes while the bulk is still arriving: writes may fail from then on.
        for _ in 0..30 {
            if s.write_all(&[b'a'; 64 * 1024]).is_err() {
                break;
            }
        }
        assert!(closed_within(&mut s, Duration::from_secs(5)), "{who}: not closed");
        assert_eq!(redis_cli(srv.port, &["EXISTS", "k"]), "0", "{who}");
        serves_others(srv.port, Duration::from_secs(2), who);
        let log = srv.log_text();
        let line = log.lines().find(|l| l.contains("Closing client that reached max query buffer length: id="));
        let line = line.unwrap_or_else(|| panic!("{who}: no log line in\n{log}"));
        assert!(line.contains("(qbuf initial bytes: \"aaaa"), "{who}: {line}");
    });
}

#[test]
fn maxclients_refuses_the_next_client_with_redis_error() {
    on_both(&["--maxclients", "3"], |srv, who| {
        let mut held: Vec<TcpStream> = (0..3).map(|_| connect(srv.port)).collect();
        for s in held.iter_mut() {
            assert_eq!(simple(s, &[b"PING"]), "+PONG", "{who}");
        }
        let (out, closed) = raw_exchange_closed(srv.port, b"PING\r\n", Duration::from_secs(3));
        assert_eq!(String::from_utf8_lossy(&out), "-ERR max number of clients reached\r\n", "{who}");
        assert!(closed, "{who}");
        let stats = bulk(&mut held[0], &[b"INFO", b"stats"]);
        assert!(stats.lines().any(|l| l.trim_end() == "rejected_connections:1"), "{who}: {stats}");
        held.pop();
        assert!(wait_for(Duration::from_secs(5), || redis_cli(srv.port, &["PING"]) == "PONG"), "{who}: slot not freed");
    });
}

#[test]
fn idle_clients_past_timeout_are_closed_but_subscribers_are_not() {
    on_both(&["--timeout", "1"], |srv, who| {
        let mut idle = connect(srv.port);
        assert_eq!(simple(&mut idle, &[b"PING"]), "+PONG");
        let mut subscriber = connect(srv.port);
        subscriber.write_all(&command(&[b"SUBSCRIBE", b"ch"])).expect("subscribe");
        read_exact(&mut subscriber, b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n".len(), who);
        let started = Instant::now();
        assert!(closed_within(&mut idle, Duration::from_secs(6)), "{who}: idle client still open");
        // Redis counts whole seconds: more than 1 s idle.
        assert!(started.elapsed() >= Duration::from_millis(900), "{who}: closed after {:?}", started.elapsed());
        subscriber.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        assert_eq!(redis_cli(srv.port, &["PUBLISH", "ch", "hello"]), "1", "{who}: subscriber dropped");
        assert_eq!(read_exact(&mut subscriber, b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n".len(), who)[..12], b"*3\r\n$7\r\nmess"[..], "{who}");
    });
}

/// The keep-alive timer `ss -o` shows on the server's side of its connections, in seconds.
fn keepalive_timer(port: u16) -> Option<f64> {
    let out = Command::new("ss").args(["-tnoH", "state", "established", &format!("( sport = :{port} )")]).output().expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let timer = text.split("timer:(keepalive,").nth(1)?;
    let secs = timer.split(',').next()?;
    // e.g. "6.9sec", "1min59sec"; some iproute2 versions print seconds as "6.672ms".
    let (mins, rest) = match secs.split_once("min") {
        Some((m, r)) => (m.parse::<f64>().ok()?, r),
        None => (0.0, secs),
    };
    let s = rest.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    Some(mins * 60.0 + if s.is_empty() { 0.0 } else { s.parse::<f64>().ok()? })
}

#[test]
fn tcp_keepalive_sets_the_probe_time_on_client_sockets() {
    on_both(&["--tcp-keepalive", "7"], |srv, who| {
        let mut s = connect(srv.port);
        assert_eq!(simple(&mut s, &[b"PING"]), "+PONG");
        let timer = keepalive_timer(srv.port).unwrap_or_else(|| panic!("{who}: no keepalive timer on the server's socket"));
        assert!(timer > 0.0 && timer <= 7.0, "{who}: keepalive timer {timer}s, expected at most 7");
    });
    on_both(&["--tcp-keepalive", "0"], |srv, who| {
        let mut s = connect(srv.port);
        assert_eq!(simple(&mut s, &[b"PING"]), "+PONG");
        assert_eq!(keepalive_timer(srv.port), None, "{who}: keepalive set although disabled");
    });
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_at_the_hard_limit() {
    // Redis's defaults: pubsub 32mb hard, 8mb soft for 60 s.
    on_both(&[], |srv, who| {
        let (rss_before, _) = rss_and_peak(srv.pid());
        let mut subscriber = connect(srv.port);
        subscriber.write_all(&command(&[b"SUBSCRIBE", b"flood"])).expect("subscribe");
        read_exact(&mut subscriber, b"*3\r\n$9\r\nsubscribe\r\n$5\r\nflood\r\n:1\r\n".len(), who);
        let mut publisher = connect(srv.port);
        let message = vec![b'm'; 1 << 20];
        let started = Instant::now();
        let mut sent = 0;
        // 200 MB published in 1 MB messages: far past any socket buffers and the limit.
        for i in 0..200 {
            let reply = simple(&mut publisher, &[b"PUBLISH", b"flood", &message]);
            sent += 1;
            if i % 20 == 0 {
                serves_others(srv.port, Duration::from_secs(2), who);
            }
            if reply == ":0" {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{who}: flood took {:?}", started.elapsed());
        assert!(
            wait_for(Duration::from_secs(5), || redis_cli(srv.port, &["PUBLISH", "flood", "x"]) == "0"),
            "{who}: subscriber still subscribed after {sent} MB"
        );
        assert!(closed_within(&mut subscriber, Duration::from_secs(10)), "{who}: subscriber socket still open");
        let (_, peak) = rss_and_peak(srv.pid());
        let grown = peak.saturating_sub(rss_before);
        assert!(grown < 160 << 20, "{who}: peak RSS grew by {} MB during the flood", grown >> 20);
        let log = srv.log_text();
        assert!(
            log.lines().any(|l| l.contains("Client id=") && l.contains("scheduled to be closed ASAP for overcoming of output buffer limits.")),
            "{who}: no disconnection log line in\n{log}"
        );
        serves_others(srv.port, Duration::from_secs(2), who);
        eprintln!("{who}: subscriber dropped after {sent} messages of 1 MB; peak RSS +{} MB", grown >> 20);
    });
}

#[test]
fn a_subscriber_above_the_soft_limit_is_disconnected_only_after_its_seconds() {
    on_both(&["--client-output-buffer-limit", "pubsub 0 2mb 2"], |srv, who| {
        let mut subscriber = connect(srv.port);
        subscriber.write_all(&command(&[b"SUBSCRIBE", b"slow"])).expect("subscribe");
        read_exact(&mut subscriber, b"*3\r\n$9\r\nsubscribe\r\n$4\r\nslow\r\n:1\r\n".len(), who);
        let mut publisher = connect(srv.port);
        let message = vec![b'm'; 1 << 20];
        // 40 MB: well past the socket buffers, so the output buffer is above 2 MB...
        let started = Instant::now();
        for _ in 0..40 {
            assert_eq!(simple(&mut publisher, &[b"PUBLISH", b"slow", &message]), ":1", "{who}");
        }
        let flood = started.elapsed();
        // ...yet the client stays while under its 2 seconds (no hard limit).
        assert!(flood < Duration::from_millis(1500), "{who}: the flood took {flood:?}, too slow for this check");
        let omem: u64 = redis_cli(srv.port, &["CLIENT", "LIST"])
            .lines()
            .find(|l| l.contains("flags=P"))
            .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("omem=")).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("{who}: subscriber missing from CLIENT LIST"));
        assert!(omem >= 2 << 20, "{who}: omem={omem}, expected above the soft limit");
        // Sampled by the servers' cron (Redis's clientsCron): wait for the sample, bounded.
        let recent = || info_field(srv.port, "client_recent_max_output_buffer").parse::<u64>().expect("number");
        assert!(wait_for(Duration::from_secs(2), || recent() >= 2 << 20), "{who}: client_recent_max_output_buffer={}", recent());
        std::thread::sleep(Duration::from_millis(3200));
        // The next message finds it above the soft limit for longer than 2 s.
        let _ = simple(&mut publisher, &[b"PUBLISH", b"slow", b"last"]);
        assert!(
            wait_for(Duration::from_secs(5), || redis_cli(srv.port, &["PUBLISH", "slow", "x"]) == "0"),
            "{who}: subscriber kept past its soft-limit seconds"
        );
        assert!(closed_within(&mut subscriber, Duration::from_secs(10)), "{who}: socket still open");
    });
}

#[test]
fn a_reply_past_the_normal_hard_limit_closes_the_client() {
    on_both(&["--client-output-buffer-limit", "normal 1mb 0 0"], |srv, who| {
        let mut c = connect(srv.port);
        assert_eq!(simple(&mut c, &[b"SET", b"big", &vec![b'v'; 2 << 20]]), "+OK", "{who}");
        assert_eq!(simple(&mut c, &[b"SET", b"small", b"v"]), "+OK", "{who}");
        c.write_all(&command(&[b"GET", b"big"])).expect("write");
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert!(got.is_empty(), "{who}: {} bytes of the reply were sent", got.len());
        let log = srv.log_text();
        assert!(log.contains("scheduled to be closed ASAP for overcoming of output buffer limits."), "{who}: {log}");
        let mut other = connect(srv.port);
        assert_eq!(simple(&mut other, &[b"GET", b"small"]), "$1", "{who}");
    });
}

#[test]
fn a_million_command_pipeline_that_is_not_read_keeps_the_server_serving_others() {
    on_both(&[], |srv, who| {
        const COMMANDS: usize = 1_000_000;
        redis_cli(srv.port, &["SET", "k", "twenty-bytes-value!!"]);
        let reply: &[u8] = b"$20\r\ntwenty-bytes-value!!\r\n";
        let (rss_before, _) = rss_and_peak(srv.pid());
        let writer = connect(srv.port);
        let mut reader = writer.try_clone().expect("clone");
        let mut writer_half = writer;
        let writing = std::thread::spawn(move || {
            let batch = b"GET k\r\n".repeat(1000);
            for _ in 0..COMMANDS / 1000 {
                writer_half.write_all(&batch)?;
            }
            Ok::<(), std::io::Error>(())
        });
        // Nobody reads for 3 s: replies pile up in the server (Redis) or the server stops
        // reading the pipeline (rf-server); both keep serving the others.
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(500));
            serves_others(srv.port, Duration::from_secs(2), who);
        }
        let omem: u64 = redis_cli(srv.port, &["CLIENT", "LIST"])
            .lines()
            .find(|l| l.contains("cmd=get"))
            .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("omem=")).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("{who}: pipelining client missing from CLIENT LIST"));
        assert!(omem > 0, "{who}: omem=0 while replies wait");
        let (_, peak) = rss_and_peak(srv.pid());
        assert!(peak.saturating_sub(rss_before) < 200 << 20, "{who}: peak RSS grew by {} MB", (peak - rss_before) >> 20);
        // Then every reply arrives, in order.
        reader.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut replies = 0usize;
        let started = Instant::now();
        while replies < COMMANDS {
            let n = reader.read(&mut buf).unwrap_or_else(|e| panic!("{who}: after {replies} replies: {e}"));
            assert!(n > 0, "{who}: closed after {replies} replies");
            pending.extend_from_slice(&buf[..n]);
            let whole = pending.len() / reply.len();
            assert!(pending[..whole * reply.len()].chunks(reply.len()).all(|r| r == reply), "{who}: a reply differs");
            pending.drain(..whole * reply.len());
            replies += whole;
            assert!(started.elapsed() < Duration::from_secs(120), "{who}: only {replies} replies in 120 s");
        }
        writing.join().expect("writer thread").unwrap_or_else(|e| panic!("{who}: writing the pipeline: {e}"));
        assert!(pending.is_empty(), "{who}: extra bytes after the replies");
    });
}

/// Raises this process's open-file limit (inherited by the servers it starts) to `n`.
fn ensure_open_files(n: u64) {
    let current = || {
        let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    if current() >= n {
        return;
    }
    let pid = std::process::id().to_string();
    let status = Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={n}:{n}")]).status();
    assert!(
        current() >= n,
        "this test needs {n} open files (raising it with prlimit: {status:?}); run as root or raise `ulimit -n`"
    );
}

#[test]
fn ten_thousand_idle_connections_are_held_and_others_served() {
    const IDLE: usize = 10_000;
    // Each process (this one, the server) holds one end of every connection.
    ensure_open_files(IDLE as u64 + 200);
    on_both(&["--maxclients", "10100"], |srv, who| {
        let (rss_before, _) = rss_and_peak(srv.pid());
        let started = Instant::now();
        let idle: Vec<TcpStream> = (0..IDLE)
            .map(|i| TcpStream::connect(("127.0.0.1", srv.port)).unwrap_or_else(|e| panic!("{who}: connection {i}: {e}")))
            .collect();
        assert!(
            wait_for(Duration::from_secs(60), || info_field(srv.port, "connected_clients").parse::<usize>().unwrap_or(0) > IDLE),
            "{who}: connected_clients={}",
            info_field(srv.port, "connected_clients")
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(60), "{who}: {took:?} to accept {IDLE} connections");
        serves_others(srv.port, Duration::from_secs(2), who);
        let (rss, _) = rss_and_peak(srv.pid());
        let per_connection = rss.saturating_sub(rss_before) / IDLE as u64;
        eprintln!("{who}: {IDLE} idle connections in {took:?}, {per_connection} bytes of RSS each");
        assert!(per_connection < 64 * 1024, "{who}: {per_connection} bytes per idle connection");
        drop(idle);
        assert!(
            wait_for(Duration::from_secs(30), || info_field(srv.port, "connected_clients") == "1"),
            "{who}: connections not released: connected_clients={}",
            info_field(srv.port, "connected_clients")
        );
    });
}

/// The accept queue is `tcp-backlog` long, as Redis's listen(): with a short fixed queue,
/// clients connecting faster than one accept round overflowed it, and each dropped SYN cost
/// the client a 1 s retransmission (10,000 connections took 55 s instead of 3).
#[test]
fn the_listen_backlog_is_tcp_backlog() {
    let listen_queue = |port: u16| -> Vec<String> {
        let out = std::process::Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output().expect("run ss (iproute2)");
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split_whitespace().nth(2).unwrap_or("?").to_string()).collect()
    };
    on_both(&["--tcp-backlog", "300", "--bind", "127.0.0.1"], |srv, who| {
        assert_eq!(listen_queue(srv.port), vec!["300"], "{who}: listen queue");
    });
    on_both(&["--bind", "* -::*"], |srv, who| {
        // both families, each with the default 511
        assert_eq!(listen_queue(srv.port), vec!["511", "511"], "{who}: listen queues of * and ::*");
    });
}
