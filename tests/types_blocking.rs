//! Blocking list and sorted-set commands against the real `rf-server` binary: wake-up by
//! another client's write, timeouts, first-come-first-served order, clients blocked on a
//! key that changes type, BLMOVE/BLMPOP/BZPOPMIN/BZMPOP replies, and MULTI/EXEC.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use redis::Value;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Runs `cmd` on a fresh connection in a thread; the reply arrives on the channel.
fn spawn_blocked(port: u16, args: Vec<&'static str>) -> mpsc::Receiver<(redis::RedisResult<Value>, Duration)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
        let start = Instant::now();
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        let r = c.query::<Value>(&mut con);
        let _ = tx.send((r, start.elapsed()));
    });
    rx
}

/// Waits until the server reports `n` blocked clients (bounded).
fn wait_blocked(con: &mut redis::Connection, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query(con).unwrap();
        let blocked = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if blocked >= n {
            return;
        }
        assert!(Instant::now() < deadline, "expected {n} blocked clients, INFO says {blocked}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn blpop_is_served_by_a_later_push() {
    let srv = common::spawn_rf(&[]);
    let mut con = srv.client();
    let rx = spawn_blocked(srv.port, vec!["BLPOP", "missing", "list", "5"]);
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("RPUSH").arg("list").arg("a").arg("b").query(&mut con).unwrap();
    let (reply, elapsed) = rx.recv_timeout(Duration::from_secs(10)).expect("BLPOP answered");
    assert_eq!(reply.unwrap(), Value::Array(vec![bulk("list"), bulk("a")]));
    assert!(elapsed < Duration::from_secs(4), "served at once, not on timeout ({elapsed:?})");
    let rest: Vec<String> = redis::cmd("LRANGE").arg("list").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(rest, vec!["b"]);
}

#[test]
fn timeouts_return_nil_after_the_delay() {
    let srv = common::spawn_rf(&[]);
    for args in [vec!["BLPOP", "k", "0.3"], vec!["BZPOPMIN", "k", "0.3"], vec!["BLMOVE", "k", "d", "LEFT", "RIGHT", "0.3"], vec!["BLMPOP", "0.3", "1", "k", "LEFT"], vec!["BZMPOP", "0.3", "1", "k", "MIN"]] {
        let name = args[0];
        let rx = spawn_blocked(srv.port, args);
        let (reply, elapsed) = rx.recv_timeout(Duration::from_secs(10)).expect("answered");
        assert_eq!(reply.unwrap(), Value::Nil, "{name}");
        assert!(elapsed >= Duration::from_millis(250), "{name} waited ({elapsed:?})");
        assert!(elapsed < Duration::from_secs(5), "{name} timed out in time ({elapsed:?})");
    }
}

#[test]
fn blocked_clients_are_served_first_come_first_served() {
    let srv = common::spawn_rf(&[]);
    let mut con = srv.client();
    let mut receivers = Vec::new();
    for i in 0..3 {
        receivers.push(spawn_blocked(srv.port, vec!["BRPOP", "q", "10"]));
        wait_blocked(&mut con, i + 1);
    }
    for v in ["first", "second", "third"] {
        let _: i64 = redis::cmd("LPUSH").arg("q").arg(v).query(&mut con).unwrap();
    }
    let got: Vec<Value> = receivers.into_iter().map(|rx| rx.recv_timeout(Duration::from_secs(10)).expect("served").0.unwrap()).collect();
    assert_eq!(
        got,
        vec![
            Value::Array(vec![bulk("q"), bulk("first")]),
            Value::Array(vec![bulk("q"), bulk("second")]),
            Value::Array(vec![bulk("q"), bulk("third")]),
        ]
    );
}

#[test]
fn blmove_and_zset_pops_wake_up() {
    let srv = common::spawn_rf(&[]);
    let mut con = srv.client();
    let rx = spawn_blocked(srv.port, vec!["BLMOVE", "src", "dst", "RIGHT", "LEFT", "5"]);
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("RPUSH").arg("src").arg("x").arg("y").query(&mut con).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().0.unwrap(), bulk("y"));
    let dst: Vec<String> = redis::cmd("LRANGE").arg("dst").arg(0).arg(-1).query(&mut con).unwrap();
    assert_eq!(dst, vec!["y"]);

    let rx = spawn_blocked(srv.port, vec!["BZPOPMIN", "z1", "z2", "5"]);
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("ZADD").arg("z2").arg(2).arg("b").arg(1).arg("a").query(&mut con).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().0.unwrap(), Value::Array(vec![bulk("z2"), bulk("a"), bulk("1")]));

    let rx = spawn_blocked(srv.port, vec!["BZMPOP", "5", "1", "z3", "MAX", "COUNT", "5"]);
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("ZADD").arg("z3").arg(1).arg("a").arg(2).arg("b").query(&mut con).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap().0.unwrap(),
        Value::Array(vec![bulk("z3"), Value::Array(vec![Value::Array(vec![bulk("b"), bulk("2")]), Value::Array(vec![bulk("a"), bulk("1")])])])
    );
    let exists: i64 = redis::cmd("EXISTS").arg("z3").query(&mut con).unwrap();
    assert_eq!(exists, 0, "emptied sorted set deleted");

    let rx = spawn_blocked(srv.port, vec!["BLMPOP", "5", "2", "l1", "l2", "LEFT", "COUNT", "2"]);
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("RPUSH").arg("l2").arg("a").arg("b").arg("c").query(&mut con).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().0.unwrap(), Value::Array(vec![bulk("l2"), Value::Array(vec![bulk("a"), bulk("b")])]));
}

#[test]
fn key_of_another_type_does_not_serve_and_multi_does_not_block() {
    let srv = common::spawn_rf(&[]);
    let mut con = srv.client();
    let rx = spawn_blocked(srv.port, vec!["BLPOP", "k", "5"]);
    wait_blocked(&mut con, 1);
    // A string under the key: the client keeps waiting (Redis only serves lists).
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "still blocked");
    let _: i64 = redis::cmd("DEL").arg("k").query(&mut con).unwrap();
    let _: i64 = redis::cmd("RPUSH").arg("k").arg("z").query(&mut con).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().0.unwrap(), Value::Array(vec![bulk("k"), bulk("z")]));

    // Inside MULTI a blocking pop on an empty key answers nil at once.
    let start = Instant::now();
    let (r,): (Value,) = redis::pipe().atomic().cmd("BLPOP").arg("empty").arg(0).query(&mut con).unwrap();
    assert_eq!(r, Value::Nil);
    assert!(start.elapsed() < Duration::from_secs(2));
    // And a blocking pop on a wrong type answers WRONGTYPE.
    let e = redis::cmd("BLPOP").arg("str").arg("notalist").arg(1).query::<Value>(&mut con);
    let _: () = redis::cmd("SET").arg("str").arg("x").query(&mut con).unwrap();
    let e2 = redis::cmd("BLPOP").arg("str").arg(1).query::<Value>(&mut con).unwrap_err();
    assert!(e.is_ok(), "missing keys just time out");
    assert!(e2.to_string().contains("WRONGTYPE"), "{e2}");
}
