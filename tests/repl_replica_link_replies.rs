//! A replica's link carries only REPLCONF ACKs: Redis 7.0 refuses commands that touch the
//! keyspace from a replica ("Replica can't interact with the keyspace", logged as a
//! CRITICAL error sent to a replica) and disconnects a replica whose command generated a
//! reply ("Replica generated a reply to command '<name>', disconnecting it") instead of
//! writing the reply into the replication stream. Checked for our server and Debian's
//! redis-server (when installed).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads until the peer closes the connection (true) or `limit` passes (false).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 65536];
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn replica_commands_with_replies_disconnect_the_replica() {
    for bin in common::ours_and_reference() {
        for (handshake, command, name, keyspace) in [("SYNC\r\n", "PING\r\n", "ping", false), ("PSYNC replicationid -1\r\n", "GET foo\r\n", "get", true)] {
            let server = common::spawn_for_replication(bin, &["--repl-diskless-sync", "no"]);
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.write_all(handshake.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            s.write_all(command.as_bytes()).unwrap();
            assert!(closed_within(&mut s, Duration::from_secs(10)), "{bin} {handshake:?}: the replica was not disconnected");
            let expected = format!("Replica generated a reply to command '{name}', disconnecting it: ");
            let logged = common::wait_for(Duration::from_secs(5), || server.log_text().contains(&expected));
            assert!(logged, "{bin}: no '{expected}' line:\n{}", server.log_text());
            let log = server.log_text();
            assert_eq!(log.contains("Replica can't interact with the keyspace"), keyspace, "{bin}:\n{log}");
            assert_eq!(log.contains("== CRITICAL == This master is sending an error to its replica: "), keyspace, "{bin}:\n{log}");
            assert_eq!(common::redis_cli(server.port, &["PING"]).trim(), "PONG", "{bin}");
        }
    }
}

/// PSYNC with an offset that is not a number is refused (no full sync) and logged.
#[test]
fn psync_with_a_wrong_offset_is_refused() {
    for bin in common::ours_and_reference() {
        let server = common::spawn_for_replication(bin, &[]);
        // Raw: redis-cli treats PSYNC as a request for its replica mode.
        let reply = common::raw_exchange(server.port, b"PSYNC replicationid offset_str\r\n", Duration::from_millis(300)).unwrap();
        assert_eq!(String::from_utf8_lossy(&reply), "-ERR value is not an integer or out of range\r\n", "{bin}");
        let logged = common::wait_for(Duration::from_secs(5), || server.log_text().contains("asks for synchronization but with a wrong offset"));
        assert!(logged, "{bin}:\n{}", server.log_text());
        assert_eq!(common::redis_cli(server.port, &["INFO", "replication"]).contains("connected_slaves:0"), true, "{bin}");
        assert_eq!(common::redis_cli(server.port, &["PING"]).trim(), "PONG", "{bin}");
    }
}
