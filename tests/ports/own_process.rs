// Included (`include!`) by the test harnesses that start servers and sentinels, after
// `free_port.rs`.
//
// A probed free port can be bound by another process (a server of a test running in
// parallel) before the process we started binds it: ours then exits, and a readiness probe
// by PING alone would be answered by the other one. A started process counts only once
// its INFO names the pid we expect (`process_id`); a server that requires a password does
// not answer INFO, so then the listening socket must be one of that pid's open files.

/// Who answers on a loopback port.
#[derive(Debug, PartialEq, Eq)]
pub enum PortAnswer {
    /// Nothing accepted, or no complete reply yet.
    Nobody,
    /// INFO's `process_id`.
    Pid(u32),
    /// `-NOAUTH`: up, but it tells nothing about itself.
    AuthRequired,
}

/// Sends `INFO server` on a fresh connection and reads `process_id` from the reply.
pub fn port_answer(port: u16) -> PortAnswer {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), std::time::Duration::from_millis(500)) else {
        return PortAnswer::Nobody;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
    if s.write_all(b"INFO server\r\n").is_err() {
        return PortAnswer::Nobody;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    // a bulk reply "$<len>\r\n<text>\r\n" (or an error line); read until it is complete
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
        if reply.starts_with(b"-") && reply.ends_with(b"\r\n") {
            break;
        }
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, _)) = text.split_once("\r\n") {
            if let Some(len) = head.strip_prefix('$').and_then(|l| l.parse::<usize>().ok()) {
                if reply.len() >= head.len() + 2 + len {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&reply);
    if text.starts_with("-NOAUTH") {
        return PortAnswer::AuthRequired;
    }
    text.lines().find_map(|l| l.trim().strip_prefix("process_id:")?.parse().ok()).map(PortAnswer::Pid).unwrap_or(PortAnswer::Nobody)
}

/// True when `pid` holds a socket listening on `port` (any local address, IPv4 or IPv6;
/// read from Linux's /proc).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    // columns: sl local_address rem_address st ... inode (10th); st 0A = LISTEN
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|t| std::fs::read_to_string(t).unwrap_or_default().lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1].ends_with(&suffix) && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str())))
}

/// Waits until the process we started answers on `port`: true once it does, false as soon
/// as another process answers there or ours has `exited` (try another port then). `pid`
/// gives the pid to expect, None while unknown (a daemon's pid file not written yet).
/// Panics when nothing conclusive happens within `max`.
pub fn wait_own_process(port: u16, mut pid: impl FnMut() -> Option<u32>, mut exited: impl FnMut() -> bool, max: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + max;
    loop {
        if exited() {
            return false;
        }
        if let Some(expected) = pid() {
            match port_answer(port) {
                PortAnswer::Pid(p) => return p == expected,
                PortAnswer::AuthRequired => return listens_on(expected, port),
                PortAnswer::Nobody => {}
            }
        }
        assert!(std::time::Instant::now() < deadline, "nothing answered on port {port} within {max:?}");
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
}

/// Why a started child was not taken.
#[derive(Debug)]
pub enum NotStarted {
    /// It exited at start-up.
    Exited(std::process::ExitStatus),
    /// Another process answered on the port (it got there first), or ours never did.
    NotItself,
}

/// Starts `spawn(port)` on a free port and returns the child and its port once the process
/// answering there is that child (`wait_own_process`). When it is not, the child is killed,
/// `failed` is told why, and another free port is tried, `attempts` times at most. An error
/// of `spawn` itself (no such binary) ends the attempts at once.
pub fn start_own_child(
    attempts: usize,
    max_wait: std::time::Duration,
    mut spawn: impl FnMut(u16) -> std::io::Result<std::process::Child>,
    mut failed: impl FnMut(u16, NotStarted),
) -> Result<(std::process::Child, u16), String> {
    for _ in 0..attempts {
        let port = free_port();
        let mut child = spawn(port).map_err(|e| format!("cannot start: {e}"))?;
        let pid = child.id();
        let mut exit = None;
        let mut exited = || match child.try_wait() {
            Ok(Some(status)) => {
                exit = Some(status);
                true
            }
            _ => false,
        };
        if wait_own_process(port, || Some(pid), &mut exited, max_wait) {
            return Ok((child, port));
        }
        let _ = child.kill();
        let _ = child.wait();
        failed(port, exit.map_or(NotStarted::NotItself, NotStarted::Exited));
    }
    Err(format!("did not start on a free port in {attempts} attempts"))
}
