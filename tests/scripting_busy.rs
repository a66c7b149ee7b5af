//! Long scripts as Redis 7.0 handles them: past `busy-reply-threshold` other clients get
//! -BUSY, SCRIPT KILL / FUNCTION KILL stop a script that has not written, SHUTDOWN NOSAVE
//! stops the server, and replication goes on after. Every check runs against our server and
//! Debian's redis-server 7.0 with the same assertions.

mod common;

use std::thread::JoinHandle;
use std::time::Duration;

use common::{raw_exchange, spawn_redis, spawn_rf, wait_for, ServerGuard};

const BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const SPIN: &str = "while true do end";
const WRITE_THEN_SPIN: &str = "redis.call('set', 'written', '1') while true do end";
const LIBRARY: &str = "#!lua name=spinlib\nredis.register_function('spin', function() while true do end end)";

/// Our server and Debian's, each with a 100 ms busy threshold.
fn both(extra: &[&str]) -> Vec<(&'static str, ServerGuard)> {
    let mut args = vec!["--save", "", "--busy-reply-threshold", "100"];
    args.extend_from_slice(extra);
    vec![("rf-server", spawn_rf(&args)), ("redis-server", spawn_redis(&args))]
}

fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let c = client.get_connection_with_timeout(Duration::from_secs(5)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    c
}

/// One command on a new connection: its reply, or the error text ("CODE message").
fn ask(port: u16, args: &[&str]) -> String {
    let mut c = connect(port);
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(&mut c) {
        Ok(v) => value_text(&v),
        Err(e) => error_text(&e),
    }
}

fn value_text(v: &redis::Value) -> String {
    match v {
        redis::Value::Okay => "OK".into(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

/// Starts `args` on its own connection in a thread; returns the reply text when it ends.
fn run_in_thread(port: u16, args: &[&str]) -> JoinHandle<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ask(port, &refs)
    })
}

/// Waits (bounded) until PING on a new connection gets `expected`.
fn wait_busy(name: &str, port: u16, expected: &str) {
    assert!(wait_for(Duration::from_secs(10), || ask(port, &["PING"]) == expected), "{name}: never answered {expected:?}");
}

#[test]
fn busy_eval_is_answered_and_killed() {
    for (name, server) in both(&[]) {
        let port = server.port;
        let script = run_in_thread(port, &["EVAL", SPIN, "0"]);
        wait_busy(name, port, BUSY_EVAL);
        assert_eq!(ask(port, &["GET", "x"]), BUSY_EVAL, "{name}");
        assert_eq!(ask(port, &["FUNCTION", "STATS"]), BUSY_EVAL, "{name}");
        // The checks before the busy one still apply.
        assert_eq!(ask(port, &["NOSUCH"]), "ERR unknown command 'NOSUCH', with args beginning with: ", "{name}");
        assert_eq!(ask(port, &["GET"]), "ERR wrong number of arguments for 'get' command", "{name}");
        assert_eq!(ask(port, &["SHUTDOWN"]), BUSY_EVAL, "{name}");
        assert_eq!(ask(port, &["SHUTDOWN", "SAVE"]), BUSY_EVAL, "{name}");
        // FUNCTION KILL does not stop an EVAL.
        assert_eq!(ask(port, &["FUNCTION", "KILL"]), BUSY_EVAL, "{name}");
        // Several requests in one write on a fresh connection, answered in order.
        let raw = raw_exchange(port, b"PING\r\nECHO a\r\n", Duration::from_millis(500)).expect("raw");
        assert_eq!(String::from_utf8_lossy(&raw), format!("-{BUSY_EVAL}\r\n-{BUSY_EVAL}\r\n"), "{name}");
        assert_eq!(ask(port, &["SCRIPT", "KILL"]), "OK", "{name}");
        let reply = script.join().expect("script thread");
        assert_eq!(
            reply, "ERR Script killed by user with SCRIPT KILL... script: 694a5fe1ddb97a4c6a1bf299d9537c7d3d0f84e7, on @user_script:1.",
            "{name}"
        );
        assert_eq!(ask(port, &["PING"]), "PONG", "{name}");
        assert_eq!(ask(port, &["SCRIPT", "KILL"]), NOTBUSY, "{name}");
    }
}

#[test]
fn busy_function_is_killed_with_function_kill() {
    for (name, server) in both(&[]) {
        let port = server.port;
        assert_eq!(ask(port, &["FUNCTION", "LOAD", LIBRARY]), "spinlib", "{name}");
        let call = run_in_thread(port, &["FCALL", "spin", "0"]);
        wait_busy(name, port, BUSY_FUNCTION);
        assert_eq!(ask(port, &["SET", "k", "v"]), BUSY_FUNCTION, "{name}");
        // SCRIPT KILL does not stop a function.
        assert_eq!(ask(port, &["SCRIPT", "KILL"]), BUSY_FUNCTION, "{name}");
        assert_eq!(ask(port, &["FUNCTION", "KILL"]), "OK", "{name}");
        let reply = call.join().expect("fcall thread");
        assert_eq!(reply, "ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.", "{name}");
        assert_eq!(ask(port, &["FUNCTION", "KILL"]), NOTBUSY, "{name}");
        assert_eq!(ask(port, &["SET", "k", "v"]), "OK", "{name}");
    }
}

#[test]
fn a_script_that_wrote_is_unkillable_and_shutdown_nosave_stops_the_server() {
    for (name, mut server) in both(&[]) {
        let port = server.port;
        let script = run_in_thread(port, &["EVAL", WRITE_THEN_SPIN, "0"]);
        wait_busy(name, port, BUSY_EVAL);
        assert_eq!(ask(port, &["SCRIPT", "KILL"]), UNKILLABLE, "{name}");
        assert_eq!(ask(port, &["FUNCTION", "KILL"]), UNKILLABLE, "{name}");
        assert_eq!(ask(port, &["SHUTDOWN"]), BUSY_EVAL, "{name}");
        // SHUTDOWN NOSAVE gets no reply: the server exits.
        let (out, closed) = common::raw_exchange_closed(port, b"SHUTDOWN NOSAVE\r\n", Duration::from_secs(10));
        assert!(closed && out.is_empty(), "{name}: {:?} closed={closed}", String::from_utf8_lossy(&out));
        assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0), "{name}: {}", server.log_text());
        let reply = script.join().expect("script thread");
        assert!(!reply.contains("UNKILLABLE") && !reply.starts_with("ERR"), "{name}: the script's client got {reply:?}");
    }
}

/// A script that writes, then runs `ms` milliseconds (`no_writes`: only spins, for EVAL_RO).
fn timed_script(ms: u64, write: bool) -> String {
    format!(
        "{} local function now() local t = redis.call('time') return t[1] * 1000 + math.floor(t[2] / 1000) end \
         local start = now() while now() - start < {ms} do for i = 1, 100000 do end end return 'done'",
        if write { "redis.call('set', 'during', 'busy')" } else { "" }
    )
}

fn dbsize(port: u16) -> i64 {
    ask(port, &["DBSIZE"]).parse().unwrap_or(-1)
}

#[test]
fn replicas_attached_during_a_busy_script_end_up_consistent() {
    for (name, master) in both(&[]) {
        let port = master.port;
        let mut c = connect(port);
        for i in 0..200 {
            redis::cmd("SET").arg(format!("k{i}")).arg(i).query::<()>(&mut c).expect("set");
        }
        let script = run_in_thread(port, &["EVAL", &timed_script(1500, true), "0"]);
        wait_busy(name, port, BUSY_EVAL);
        let master_port = port.to_string();
        let replica_args = ["--save", "", "--busy-reply-threshold", "100", "--replicaof", "127.0.0.1", &master_port];
        let replicas = [("rf-server", spawn_rf(&replica_args)), ("redis-server", spawn_redis(&replica_args))];
        assert_eq!(script.join().expect("script thread"), "done", "{name}");
        for (kind, replica) in &replicas {
            let synced = wait_for(Duration::from_secs(20), || ask(replica.port, &["GET", "during"]) == "busy" && dbsize(replica.port) == 201);
            assert!(synced, "{name} -> {kind}: replica never caught up: {}", replica.log_text());
        }
        // A busy read-only script on each replica while the master writes: the stream is
        // applied after it, in order.
        let spins: Vec<_> = replicas.iter().map(|(_, r)| run_in_thread(r.port, &["EVAL_RO", &timed_script(800, false), "0"])).collect();
        for (kind, replica) in &replicas {
            wait_busy(&format!("{name} -> {kind}"), replica.port, BUSY_EVAL);
        }
        for i in 0..50 {
            redis::cmd("INCR").arg("after").query::<i64>(&mut c).expect("incr");
            redis::cmd("DEL").arg(format!("k{i}")).query::<i64>(&mut c).expect("del");
        }
        for spin in spins {
            assert_eq!(spin.join().expect("spin thread"), "done", "{name}");
        }
        for (kind, replica) in &replicas {
            let synced = wait_for(Duration::from_secs(20), || ask(replica.port, &["GET", "after"]) == "50" && dbsize(replica.port) == 152);
            assert!(synced, "{name} -> {kind}: replica never applied the writes made during its busy script: {}", replica.log_text());
            assert_eq!(ask(replica.port, &["GET", "k49"]), "(nil)", "{name} -> {kind}");
            assert_eq!(ask(replica.port, &["GET", "k50"]), "50", "{name} -> {kind}");
        }
    }
}

#[test]
fn a_transaction_with_a_command_refused_while_busy_aborts() {
    for (name, server) in both(&[]) {
        let port = server.port;
        let mut tx = connect(port);
        assert_eq!(value_text(&redis::cmd("MULTI").query::<redis::Value>(&mut tx).expect("multi")), "OK", "{name}");
        assert_eq!(value_text(&redis::cmd("SET").arg("a").arg("1").query::<redis::Value>(&mut tx).expect("queued")), "QUEUED", "{name}");
        let script = run_in_thread(port, &["EVAL", &timed_script(1500, false), "0"]);
        wait_busy(name, port, BUSY_EVAL);
        let refused = redis::cmd("SET").arg("b").arg("2").query::<redis::Value>(&mut tx).map_err(|e| error_text(&e));
        assert_eq!(refused, Err(BUSY_EVAL.to_string()), "{name}");
        let exec = redis::cmd("EXEC").query::<redis::Value>(&mut tx).map_err(|e| error_text(&e));
        assert_eq!(exec, Err(format!("EXECABORT Transaction discarded because of: {BUSY_EVAL}")), "{name}");
        assert_eq!(script.join().expect("script thread"), "done", "{name}");
        // The transaction is gone.
        let again = redis::cmd("EXEC").query::<redis::Value>(&mut tx).map_err(|e| error_text(&e));
        assert_eq!(again, Err("ERR EXEC without MULTI".to_string()), "{name}");
        assert_eq!(ask(port, &["GET", "a"]), "(nil)", "{name}");
        assert_eq!(ask(port, &["EXISTS", "b"]), "0", "{name}");
    }
}
