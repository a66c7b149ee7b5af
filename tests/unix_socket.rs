//! The `unixsocket` directive: the server listens on it too (Redis's test harness runs
//! redis-benchmark through it), lists its clients as `addr=<path>:0`, and removes the file
//! at shutdown. Checked for our server and Debian's redis-server (when installed).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn cli_unix(sock: &Path, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-s").arg(sock).args(args).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn clients_connect_through_the_unix_socket() {
    for bin in common::ours_and_reference() {
        let sockdir = tempfile::tempdir().expect("tempdir");
        let sock = sockdir.path().join("redis.sock");
        // A stale file from an earlier run does not stop the start.
        std::fs::write(&sock, b"stale").unwrap();
        let sock_str = sock.to_str().unwrap().to_string();
        let mut server = common::spawn_server(Path::new(bin), &["--save", "", "--unixsocket", &sock_str, "--unixsocketperm", "700"]);
        let ready = common::wait_for(Duration::from_secs(10), || cli_unix(&sock, &["PING"]) == "PONG");
        assert!(ready, "{bin}: no PONG through {sock_str}:\n{}", server.log_text());
        assert_eq!(cli_unix(&sock, &["SET", "k", "v"]), "OK");
        assert_eq!(common::redis_cli(server.port, &["GET", "k"]).trim(), "v", "{bin}: not the same server");
        let list = cli_unix(&sock, &["CLIENT", "LIST"]);
        assert!(list.contains(&format!("addr={sock_str}:0")), "{bin}: {list}");
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{bin}: unixsocketperm not applied");
        }
        let _ = cli_unix(&sock, &["SHUTDOWN", "NOSAVE"]);
        assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "{bin}: did not exit");
        assert!(!sock.exists(), "{bin}: the socket file was left behind");
    }
}
