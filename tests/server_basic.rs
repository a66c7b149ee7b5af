//! rf-server integration tests over TCP: commands, protocol, transactions, pub/sub,
//! security, CONFIG. Each test starts its own server on a free port.

mod common;

use std::time::Duration;

use common::*;
use redis::Commands;

#[test]
fn strings_and_keys_roundtrip() {
    let srv = spawn_rf(&[]);
    let mut c = srv.client();
    let _: () = c.set("k", "v").unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "v");
    assert_eq!(c.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(c.append::<_, _, i64>("k", "xyz").unwrap(), 4);
    assert_eq!(c.get::<_, String>("k").unwrap(), "vxyz");
    assert_eq!(c.strlen::<_, i64>("k").unwrap(), 4);
    let err = redis::cmd("INCR").arg("k").query::<i64>(&mut c).unwrap_err();
    assert!(err.to_string().contains("value is not an integer or out of range"), "{err}");
    let _: () = redis::cmd("SET").arg("big").arg(i64::MAX.to_string()).query(&mut c).unwrap();
    let err = redis::cmd("INCR").arg("big").query::<i64>(&mut c).unwrap_err();
    assert!(err.to_string().contains("increment or decrement would overflow"), "{err}");
    let v: String = redis::cmd("INCRBYFLOAT").arg("f").arg("10.5").query(&mut c).unwrap();
    assert_eq!(v, "10.5");
    let v: String = redis::cmd("INCRBYFLOAT").arg("f").arg("0.1").query(&mut c).unwrap();
    assert_eq!(v, "10.6");
    assert_eq!(c.del::<_, i64>(&["k", "n", "missing"]).unwrap(), 2);
    assert_eq!(c.exists::<_, i64>("k").unwrap(), 0);
    let t: String = redis::cmd("TYPE").arg("f").query(&mut c).unwrap();
    assert_eq!(t, "string");
    let r: String = redis::cmd("GETRANGE").arg("f").arg(0).arg(1).query(&mut c).unwrap();
    assert_eq!(r, "10");
    let n: i64 = redis::cmd("SETRANGE").arg("sr").arg(3).arg("ab").query(&mut c).unwrap();
    assert_eq!(n, 5);
    let v: Vec<u8> = c.get("sr").unwrap();
    assert_eq!(v, b"\0\0\0ab");
    let lcs: String = redis::cmd("MSET").arg("a").arg("ohmytext").arg("b").arg("mynewtext").query(&mut c).unwrap();
    assert_eq!(lcs, "OK");
    let lcs: String = redis::cmd("LCS").arg("a").arg("b").query(&mut c).unwrap();
    assert_eq!(lcs, "mytext");
    let len: i64 = redis::cmd("LCS").arg("a").arg("b").arg("LEN").query(&mut c).unwrap();
    assert_eq!(len, 6);
}

#[test]
fn set_options_and_expiry() {
    let srv = spawn_rf(&[]);
    let mut c = srv.client();
    let r: Option<String> = redis::cmd("SET").arg("k").arg("1").arg("NX").query(&mut c).unwrap();
    assert_eq!(r.as_deref(), Some("OK"));
    let r: Option<String> = redis::cmd("SET").arg("k").arg("2").arg("NX").query(&mut c).unwrap();
    assert_eq!(r, None);
    let r: Option<String> = redis::cmd("SET").arg("k").arg("3").arg("XX").arg("GET").query(&mut c).unwrap();
    assert_eq!(r.as_deref(), Some("1"));
    let _: () = redis::cmd("SET").arg("k").arg("4").arg("PX").arg(150).query(&mut c).unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut c).unwrap();
    assert!(pttl > 0 && pttl <= 150, "{pttl}");
    let err = redis::cmd("SET").arg("k").arg("v").arg("EX").arg(0).query::<()>(&mut c).unwrap_err();
    assert!(err.to_string().contains("invalid expire time in 'set' command"), "{err}");
    let err = redis::cmd("SET").arg("k").arg("v").arg("NX").arg("XX").query::<()>(&mut c).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    std::thread::sleep(Duration::from_millis(250));
    // Lazily expired on access.
    assert_eq!(c.get::<_, Option<String>>("k").unwrap(), None);
    let _: () = c.set("p", "v").unwrap();
    assert_eq!(redis::cmd("TTL").arg("p").query::<i64>(&mut c).unwrap(), -1);
    assert_eq!(redis::cmd("TTL").arg("nokey").query::<i64>(&mut c).unwrap(), -2);
    assert_eq!(redis::cmd("EXPIRE").arg("p").arg(100).arg("XX").query::<i64>(&mut c).unwrap(), 0);
    assert_eq!(redis::cmd("EXPIRE").arg("p").arg(100).arg("NX").query::<i64>(&mut c).unwrap(), 1);
    assert_eq!(redis::cmd("EXPIRE").arg("p").arg(50).arg("GT").query::<i64>(&mut c).unwrap(), 0);
    assert_eq!(redis::cmd("EXPIRE").arg("p").arg(50).arg("LT").query::<i64>(&mut c).unwrap(), 1);
    let ttl: i64 = redis::cmd("TTL").arg("p").query(&mut c).unwrap();
    assert!((49..=50).contains(&ttl), "{ttl}");
    assert_eq!(redis::cmd("PERSIST").arg("p").query::<i64>(&mut c).unwrap(), 1);
    // Active expiry removes keys nobody touches.
    let _: () = redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(1).query(&mut c).unwrap();
    for i in 0..50 {
        let _: () = redis::cmd("SET").arg(format!("e{i}")).arg("v").arg("PX").arg(50).query(&mut c).unwrap();
    }
    let mut size = 51;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        size = redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap();
        if size == 1 {
            break;
        }
    }
    assert_eq!(size, 1, "active expiry should leave only 'p'");
}

#[test]
fn scan_returns_every_key() {
    let srv = spawn_rf(&[]);
    let mut c = srv.client();
    for i in 0..500 {
        let _: () = c.set(format!("key:{i}"), i).unwrap();
    }
    let _: () = redis::cmd("LPUSH").arg("x").arg("y").query(&mut c).unwrap_or(());
    let mut cursor = 0u64;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg("key:*").arg("COUNT").arg(37).query(&mut c).unwrap();
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(cursor, 0);
    assert_eq!(seen.len(), 500);
    let keys: Vec<String> = c.keys("key:1?").unwrap();
    assert_eq!(keys.len(), 10);
}

#[test]
fn unknown_and_arity_errors_match_redis_text() {
    let srv = spawn_rf(&[]);
    let out = raw_exchange(srv.port, b"FOO a b\r\nGET\r\nCONFIG NOPE\r\n", Duration::from_millis(300)).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text,
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n-ERR wrong number of arguments for 'get' command\r\n-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n"
    );
}

#[test]
fn protocol_errors_reply_and_close() {
    let srv = spawn_rf(&[]);
    let (out, closed) = raw_exchange_closed(srv.port, b"*abc\r\n", Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&out), "-ERR Protocol error: invalid multibulk length\r\n");
    assert!(closed);
    let (out, closed) = raw_exchange_closed(srv.port, b"PING\r\n*1\r\nx\r\n", Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&out), "+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n");
    assert!(closed);
    let (out, _) = raw_exchange_closed(srv.port, b"SET k \"unbalanced\r\n", Duration::from_secs(2));
    assert_eq!(String::from_utf8_lossy(&out), "-ERR Protocol error: unbalanced quotes in request\r\n");
    // The server is still fine for others.
    assert_eq!(redis_cli(srv.port, &["PING"]), "PONG");
}

#[test]
fn pipelining_many_requests_in_one_write() {
    let srv = spawn_rf(&[]);
    let mut req = Vec::new();
    for i in 0..2000 {
        req.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$5\r\nk{i:04}\r\n$1\r\nv\r\n").as_bytes());
    }
    req.extend_from_slice(b"*1\r\n$6\r\nDBSIZE\r\n");
    let out = raw_exchange(srv.port, &req, Duration::from_millis(500)).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("+OK\r\n").count(), 2000);
    assert!(text.ends_with(":2000\r\n"), "{}", &text[text.len().saturating_sub(20)..]);
}

#[test]
fn resp3_hello_and_types() {
    let srv = spawn_rf(&[]);
    let out = raw_exchange(srv.port, b"HELLO 3\r\nCONFIG GET port\r\nGET nokey\r\nHELLO 4\r\n", Duration::from_millis(300)).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"), "{text}");
    assert!(text.contains(&format!("%1\r\n$4\r\nport\r\n${}\r\n{}\r\n", srv.port.to_string().len(), srv.port)), "{text}");
    assert!(text.contains("_\r\n"), "{text}");
    assert!(text.ends_with("-NOPROTO unsupported protocol version\r\n"), "{text}");
}

#[test]
fn transactions_and_watch() {
    let srv = spawn_rf(&[]);
    let mut c = srv.client();
    let mut other = srv.client();
    let (a, b): (i64, i64) = redis::pipe().atomic().incr("x", 1).incr("x", 1).query(&mut c).unwrap();
    assert_eq!((a, b), (1, 2));
    // WATCH invalidated by another client's write -> EXEC returns null.
    let _: () = redis::cmd("WATCH").arg("x").query(&mut c).unwrap();
    let _: () = other.set("x", 100).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
    let q: String = redis::cmd("INCR").arg("x").query(&mut c).unwrap();
    assert_eq!(q, "QUEUED");
    let r: Option<Vec<i64>> = redis::cmd("EXEC").query(&mut c).unwrap();
    assert_eq!(r, None);
    // Errors while queueing abort the transaction.
    let raw = raw_exchange(srv.port, b"MULTI\r\nSET a\r\nINCR x\r\nEXEC\r\nEXEC\r\nMULTI\r\nMULTI\r\nDISCARD\r\nDISCARD\r\n", Duration::from_millis(300)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&raw),
        "+OK\r\n-ERR wrong number of arguments for 'set' command\r\n+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n-ERR EXEC without MULTI\r\n+OK\r\n-ERR MULTI calls can not be nested\r\n+OK\r\n-ERR DISCARD without MULTI\r\n"
    );
    // Runtime errors inside EXEC do not abort the others.
    let raw = raw_exchange(srv.port, b"MULTI\r\nSET s str\r\nINCR s\r\nGET s\r\nEXEC\r\n", Duration::from_millis(300)).unwrap();
    assert!(String::from_utf8_lossy(&raw).ends_with("*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$3\r\nstr\r\n"), "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn pubsub_delivery_and_resp2_restriction() {
    let srv = spawn_rf(&[]);
    let mut sub = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    use std::io::{Read, Write};
    sub.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sub.write_all(b"SUBSCRIBE ch1 ch2\r\nPSUBSCRIBE c*\r\n").unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("psubscribe") {
        let n = sub.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    let mut c = srv.client();
    let n: i64 = redis::cmd("PUBLISH").arg("ch1").arg("hello").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB").arg("NUMSUB").arg("ch1").arg("zz").query(&mut c).unwrap();
    assert_eq!(numsub.len(), 4);
    sub.write_all(b"GET x\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("pong") {
        let n = sub.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("*3\r\n$7\r\nmessage\r\n$3\r\nch1\r\n$5\r\nhello\r\n"), "{text}");
    assert!(text.contains("*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$3\r\nch1\r\n$5\r\nhello\r\n"), "{text}");
    assert!(text.contains("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"), "{text}");
    assert!(text.contains("*2\r\n$4\r\npong\r\n$0\r\n\r\n"), "{text}");
}

#[test]
fn requirepass_and_rename_command() {
    let srv = spawn_rf(&["--requirepass", "s3cret", "--rename-command", "FLUSHALL", "", "--rename-command", "DBSIZE", "KEYCOUNT"]);
    let out = raw_exchange(srv.port, b"GET a\r\nAUTH nope\r\nAUTH s3cret\r\nFLUSHALL\r\nDBSIZE\r\nKEYCOUNT\r\n", Duration::from_millis(300)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n-ERR unknown command 'FLUSHALL', with args beginning with: \r\n-ERR unknown command 'DBSIZE', with args beginning with: \r\n:0\r\n"
    );
}

#[test]
fn config_get_set_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("redis.conf");
    std::fs::write(&conf, "# my comment\nmaxmemory 10mb\nsave 900 1\nappendonly no\n").unwrap();
    let srv = spawn_server(&rf_server_bin(), &[conf.to_str().unwrap()]);
    let mut c = srv.client();
    let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory").query(&mut c).unwrap();
    assert_eq!(v, vec!["maxmemory".to_string(), (10 * 1024 * 1024).to_string()]);
    let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-p*").arg("port").query(&mut c).unwrap();
    assert_eq!(v.len(), 4);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-lru").arg("hz").arg("20").query(&mut c).unwrap();
    // Atomic: one bad value leaves everything unchanged.
    let err = redis::cmd("CONFIG").arg("SET").arg("hz").arg("30").arg("maxmemory-policy").arg("bogus").query::<()>(&mut c).unwrap_err();
    assert!(err.to_string().contains("argument(s) must be one of the following"), "{err}");
    let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("hz").query(&mut c).unwrap();
    assert_eq!(v[1], "20");
    let _: () = redis::cmd("CONFIG").arg("REWRITE").query(&mut c).unwrap();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.starts_with("# my comment\nmaxmemory 10485760\n"), "{text}");
    assert!(text.contains("maxmemory-policy allkeys-lru"), "{text}");
    assert!(text.contains("hz 20"), "{text}");
    assert!(text.contains("save 900 1"), "{text}");
}

#[test]
fn maxmemory_noeviction_refuses_writes_with_oom() {
    let srv = spawn_rf(&["--maxmemory", "2mb"]);
    let mut c = srv.client();
    let big = "x".repeat(10_000);
    let mut oom = None;
    for i in 0..1000 {
        if let Err(e) = c.set::<_, _, ()>(format!("k{i}"), &big) {
            oom = Some(e.to_string());
            break;
        }
    }
    let oom = oom.expect("writes must be refused under noeviction");
    assert!(oom.contains("command not allowed when used memory > 'maxmemory'"), "{oom}");
    // Reads still work; with an eviction policy writes succeed again.
    let _: Option<String> = c.get("k0").unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-random").query(&mut c).unwrap();
    for i in 0..300 {
        let _: () = c.set(format!("n{i}"), &big).unwrap();
    }
    let evicted: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    assert!(!evicted.contains("evicted_keys:0\r\n"), "some keys must have been evicted");
}

#[test]
fn info_has_redis_fields() {
    let srv = spawn_rf(&[]);
    let mut c = srv.client();
    let _: () = c.set("a", 1).unwrap();
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    for field in ["redis_version:7.0.15", "rf_version:0.1.0", &format!("tcp_port:{}", srv.port), "role:master", "connected_slaves:0", "master_repl_offset:", "db0:keys=1,expires=0", "used_memory:", "rdb_changes_since_last_save:"] {
        assert!(info.contains(field), "missing {field}");
    }
    let only: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
    assert!(only.starts_with("# Replication\r\nrole:master\r\n"), "{only}");
}

#[test]
fn client_commands() {
    let srv = spawn_rf(&[]);
    let mut c = srv.client();
    let _: () = redis::cmd("CLIENT").arg("SETNAME").arg("me").query(&mut c).unwrap();
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name, "me");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    assert!(list.contains(" name=me ") && list.contains("cmd=client|list"), "{list}");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
    let mut victim = srv.client();
    let vid: i64 = redis::cmd("CLIENT").arg("ID").query(&mut victim).unwrap();
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(vid).query(&mut c).unwrap();
    assert_eq!(killed, 1);
    assert!(redis::cmd("PING").query::<String>(&mut victim).is_err());
    assert_ne!(id, vid);
}

#[test]
fn command_table_introspection() {
    let srv = spawn_rf(&[]);
    let mut c = srv.client();
    let n: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(n > 60, "{n}");
    let keys: Vec<String> = redis::cmd("COMMAND").arg("GETKEYS").arg("MSET").arg("a").arg("1").arg("b").arg("2").query(&mut c).unwrap();
    assert_eq!(keys, vec!["a", "b"]);
    // Name, arity, flags, key positions and ACL categories equal Redis 7.0's for every
    // command of the table that Redis has.
    let reference = spawn_redis(&[]);
    let mut r = reference.client();
    let names: Vec<String> = redis::cmd("COMMAND").arg("LIST").query(&mut c).unwrap();
    let mut compared = 0;
    for name in names.iter().filter(|n| !n.contains('|')) {
        let ours: Vec<redis::Value> = redis::cmd("COMMAND").arg("INFO").arg(name).query(&mut c).unwrap();
        let theirs: Vec<redis::Value> = redis::cmd("COMMAND").arg("INFO").arg(name).query(&mut r).unwrap();
        let (redis::Value::Array(o), redis::Value::Array(t)) = (&ours[0], &theirs[0]) else {
            continue; // a command Redis 7.0 does not have
        };
        assert_eq!(o[..7], t[..7], "COMMAND INFO {name}");
        compared += 1;
    }
    assert!(compared > 60, "{compared}");
    let ours = redis_cli(srv.port, &["COMMAND", "INFO", "get"]);
    let theirs = redis_cli(reference.port, &["COMMAND", "INFO", "get"]);
    assert_eq!(ours, theirs);
}

#[test]
fn debug_digest_matches_real_redis() {
    let ours = spawn_rf(&[]);
    let theirs = spawn_redis(&["--enable-debug-command", "yes"]);
    for port in [ours.port, theirs.port] {
        assert_eq!(redis_cli(port, &["DEBUG", "DIGEST"]), "0000000000000000000000000000000000000000");
        redis_cli(port, &["MSET", "a", "1", "b", "hello", "c", "a longer string value that is not inline"]);
        redis_cli(port, &["SET", "t", "v", "EX", "1000"]);
        redis_cli(port, &["-n", "3", "SET", "other", "db"]);
    }
    let d1 = redis_cli(ours.port, &["DEBUG", "DIGEST"]);
    let d2 = redis_cli(theirs.port, &["DEBUG", "DIGEST"]);
    assert_eq!(d1.len(), 40);
    assert_eq!(d1, d2);
    assert_eq!(redis_cli(ours.port, &["DEBUG", "DIGEST-VALUE", "a", "t", "nokey"]), redis_cli(theirs.port, &["DEBUG", "DIGEST-VALUE", "a", "t", "nokey"]));
}

#[test]
fn keyspace_events_monitor_and_slowlog() {
    use std::io::{Read, Write};
    let srv = spawn_rf(&["--notify-keyspace-events", "KEA", "--slowlog-log-slower-than", "0"]);
    let read_until = |s: &mut std::net::TcpStream, needle: &str| -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !String::from_utf8_lossy(&got).contains(needle) && std::time::Instant::now() < deadline {
            if let Ok(n) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    let mut sub = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    sub.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    sub.write_all(b"PSUBSCRIBE __key*__:*\r\n").unwrap();
    read_until(&mut sub, "psubscribe");
    let mut mon = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    mon.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    mon.write_all(b"MONITOR\r\n").unwrap();
    read_until(&mut mon, "+OK");
    let mut c = srv.client();
    let _: () = c.set("watched", "1").unwrap();
    let events = read_until(&mut sub, "__keyevent@0__:set");
    assert!(events.contains("__keyspace@0__:watched") && events.contains("__keyevent@0__:set"), "{events}");
    let monitored = read_until(&mut mon, "\"watched\"");
    assert!(monitored.contains("\"SET\" \"watched\" \"1\"") || monitored.contains("\"set\" \"watched\" \"1\""), "{monitored}");
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(100).query(&mut c).unwrap();
    assert!(!entries.is_empty());
    let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut c).unwrap();
    assert!(len >= 1);
}
