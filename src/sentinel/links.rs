//! Outgoing links to monitored instances: a command link (pipelined requests, replies in
//! order) and, for masters and replicas, a pub/sub link subscribed to `__sentinel__:hello`,
//! as Redis Sentinel keeps them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::machine::{Addr, Outgoing, Request};
use crate::resp::{encode_command, Frame, ReplyParser};

pub const HELLO_CHANNEL: &str = "__sentinel__:hello";

/// What links report back to the core.
pub enum LinkEvent {
    Reply { token: u64, reply: Result<Frame, ()> },
    Down { addr: Addr },
    Hello { payload: String },
}

pub type EventSink = Arc<dyn Fn(LinkEvent) + Send + Sync>;

fn map_cmd(renamed: &[(String, String)], name: &str) -> String {
    renamed.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)).map(|(_, r)| r.clone()).unwrap_or_else(|| name.to_string())
}

/// Encodes a request; returns how many replies it produces (the last one is delivered).
fn encode_request(out: &Outgoing, local_ip: &str, buf: &mut BytesMut) -> usize {
    let r = &out.renamed;
    let cmd = |args: Vec<String>, buf: &mut BytesMut| {
        let v: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        encode_command(&v, buf);
    };
    match &out.request {
        Request::Ping => {
            cmd(vec![map_cmd(r, "PING")], buf);
            1
        }
        Request::Info => {
            cmd(vec![map_cmd(r, "INFO")], buf);
            1
        }
        Request::Hello { announce_ip, announce_port, rest } => {
            let ip = announce_ip.clone().unwrap_or_else(|| local_ip.to_string());
            cmd(vec![map_cmd(r, "PUBLISH"), HELLO_CHANNEL.into(), format!("{ip},{announce_port},{rest}")], buf);
            1
        }
        Request::IsMasterDown { ip, port, epoch, run_id } => {
            cmd(vec!["SENTINEL".into(), "is-master-down-by-addr".into(), ip.clone(), port.to_string(), epoch.to_string(), run_id.clone()], buf);
            1
        }
        Request::PauseWrites(ms) => {
            cmd(vec![map_cmd(r, "CLIENT"), "PAUSE".into(), ms.to_string(), "WRITE".into()], buf);
            1
        }
        Request::Unpause => {
            cmd(vec![map_cmd(r, "CLIENT"), "UNPAUSE".into()], buf);
            1
        }
        Request::SlaveOf(target) => {
            // exactly what Redis sends: a transaction so the instance is never half-configured
            cmd(vec![map_cmd(r, "MULTI")], buf);
            match target {
                None => cmd(vec![map_cmd(r, "SLAVEOF"), "NO".into(), "ONE".into()], buf),
                Some(a) => cmd(vec![map_cmd(r, "SLAVEOF"), a.host.clone(), a.port.to_string()], buf),
            }
            cmd(vec![map_cmd(r, "CONFIG"), "REWRITE".into()], buf);
            cmd(vec![map_cmd(r, "CLIENT"), "KILL".into(), "TYPE".into(), "normal".into()], buf);
            cmd(vec![map_cmd(r, "CLIENT"), "KILL".into(), "TYPE".into(), "pubsub".into()], buf);
            cmd(vec![map_cmd(r, "EXEC")], buf);
            6
        }
    }
}

async fn connect(addr: &Addr) -> std::io::Result<TcpStream> {
    let s = tokio::time::timeout(Duration::from_millis(1000), TcpStream::connect((addr.host.as_str(), addr.port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

fn auth_args(user: &Option<String>, pass: &Option<String>) -> Option<Vec<String>> {
    let pass = pass.clone()?;
    Some(match user {
        Some(u) => vec!["AUTH".into(), u.clone(), pass],
        None => vec!["AUTH".into(), pass],
    })
}

struct InFlight {
    token: u64,
    replies_left: usize,
    deadline: Instant,
}

/// The command link task for one address. Ends when the sender side is dropped.
pub async fn command_link(addr: Addr, mut rx: mpsc::UnboundedReceiver<Outgoing>, sink: EventSink, client_name: String) {
    // requests that arrived with other credentials than the open connection's: they are
    // sent on the next connection, which logs in with theirs
    let mut carried: VecDeque<Outgoing> = VecDeque::new();
    loop {
        // wait for work before (re)connecting, so idle dead links cost nothing
        let first = match carried.pop_front() {
            Some(o) => o,
            None => match rx.recv().await {
                Some(o) => o,
                None => return,
            },
        };
        let mut stream = match connect(&addr).await {
            Ok(s) => s,
            Err(_) => {
                sink(LinkEvent::Down { addr: addr.clone() });
                sink(LinkEvent::Reply { token: first.token, reply: Err(()) });
                for o in carried.drain(..) {
                    sink(LinkEvent::Reply { token: o.token, reply: Err(()) });
                }
                while let Ok(o) = rx.try_recv() {
                    sink(LinkEvent::Reply { token: o.token, reply: Err(()) });
                }
                continue;
            }
        };
        let local_ip = stream.local_addr().map(|a| a.ip().to_string()).unwrap_or_else(|_| "127.0.0.1".into());
        let mut inflight: VecDeque<InFlight> = VecDeque::new();
        let mut wbuf = BytesMut::new();
        // handshake replies are discarded (token 0)
        if let Some(a) = auth_args(&first.auth_user, &first.auth_pass) {
            let v: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
            encode_command(&v, &mut wbuf);
            inflight.push_back(InFlight { token: 0, replies_left: 1, deadline: Instant::now() + Duration::from_secs(5) });
        }
        let setname = ["CLIENT".to_string(), "SETNAME".into(), client_name.clone()];
        let v: Vec<&[u8]> = setname.iter().map(|s| s.as_bytes()).collect();
        encode_command(&v, &mut wbuf);
        inflight.push_back(InFlight { token: 0, replies_left: 1, deadline: Instant::now() + Duration::from_secs(5) });
        let logged_in_as = (first.auth_user.clone(), first.auth_pass.clone());
        let mut queue: VecDeque<Outgoing> = std::iter::once(first).chain(carried.drain(..)).collect();
        let (mut rd, mut wr) = stream.split();
        let mut rbuf = BytesMut::with_capacity(16 * 1024);
        let mut check = tokio::time::interval(Duration::from_millis(50));
        let failed = loop {
            while let Some(o) = queue.pop_front() {
                // new credentials (SENTINEL SET auth-pass / auth-user): Redis drops the
                // instance's links and logs in again; a link kept open with the old ones
                // would keep getting NOAUTH for every PING
                if (&o.auth_user, &o.auth_pass) != (&logged_in_as.0, &logged_in_as.1) {
                    queue.push_front(o);
                    break;
                }
                let n = encode_request(&o, &local_ip, &mut wbuf);
                inflight.push_back(InFlight { token: o.token, replies_left: n, deadline: Instant::now() + Duration::from_millis(o.timeout_ms) });
            }
            if !queue.is_empty() {
                // reconnect for the rest; what this connection had pending fails below
                break false;
            }
            if !wbuf.is_empty() {
                if wr.write_all(&wbuf).await.is_err() {
                    break true;
                }
                wbuf.clear();
            }
            tokio::select! {
                o = rx.recv() => match o {
                    Some(o) => queue.push_back(o),
                    None => return,
                },
                n = rd.read_buf(&mut rbuf) => {
                    match n {
                        Ok(0) | Err(_) => break true,
                        Ok(_) => {}
                    }
                    let mut proto_err = false;
                    loop {
                        match ReplyParser::parse(&mut rbuf) {
                            Ok(Some(frame)) => {
                                let Some(front) = inflight.front_mut() else { break };
                                front.replies_left -= 1;
                                if front.replies_left == 0 {
                                    let f = inflight.pop_front().unwrap();
                                    if f.token != 0 {
                                        sink(LinkEvent::Reply { token: f.token, reply: Ok(frame) });
                                    }
                                }
                            }
                            Ok(None) => break,
                            Err(_) => {
                                proto_err = true;
                                break;
                            }
                        }
                    }
                    if proto_err {
                        break true;
                    }
                }
                _ = check.tick() => {
                    if inflight.front().is_some_and(|f| f.deadline < Instant::now()) {
                        break true;
                    }
                }
            }
        };
        if failed {
            sink(LinkEvent::Down { addr: addr.clone() });
            for o in queue.drain(..) {
                sink(LinkEvent::Reply { token: o.token, reply: Err(()) });
            }
        }
        // replies that will not come on this connection any more
        for f in inflight.drain(..) {
            if f.token != 0 {
                sink(LinkEvent::Reply { token: f.token, reply: Err(()) });
            }
        }
        carried.extend(queue.drain(..));
    }
}

/// The pub/sub link: subscribes to the hello channel and forwards every message.
/// Reconnects every 100 ms while the instance is unreachable.
pub async fn pubsub_link(addr: Addr, auth_user: Option<String>, auth_pass: Option<String>, sink: EventSink, client_name: String) {
    loop {
        if let Ok(mut stream) = connect(&addr).await {
            let mut wbuf = BytesMut::new();
            if let Some(a) = auth_args(&auth_user, &auth_pass) {
                let v: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
                encode_command(&v, &mut wbuf);
            }
            encode_command(&[b"CLIENT", b"SETNAME", client_name.as_bytes()], &mut wbuf);
            encode_command(&[b"SUBSCRIBE", HELLO_CHANNEL.as_bytes()], &mut wbuf);
            // the replies to AUTH and CLIENT SETNAME come first; an error in place of the
            // SUBSCRIBE reply (NOAUTH: wrong or missing password) drops the link, which
            // shows as `disconnected`, as hiredis does for Redis's sentinel
            let mut replies_before_subscribe = usize::from(auth_pass.is_some()) + 1;
            if stream.write_all(&wbuf).await.is_ok() {
                let mut rbuf = BytesMut::with_capacity(4096);
                'read: loop {
                    match stream.read_buf(&mut rbuf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    loop {
                        match ReplyParser::parse(&mut rbuf) {
                            Ok(Some(Frame::Array(items) | Frame::Push(items))) => {
                                if let [kind, _chan, Frame::Bulk(msg)] = items.as_slice() {
                                    if kind.as_bytes() == Some(b"message") {
                                        sink(LinkEvent::Hello { payload: String::from_utf8_lossy(msg).into_owned() });
                                    }
                                }
                            }
                            Ok(Some(Frame::Error(_))) if replies_before_subscribe == 0 => {
                                sink(LinkEvent::Down { addr: addr.clone() });
                                break 'read;
                            }
                            Ok(Some(_)) => replies_before_subscribe = replies_before_subscribe.saturating_sub(1),
                            Ok(None) => break,
                            Err(_) => break 'read,
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
