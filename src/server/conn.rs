//! One tokio task per connection: read, parse every complete request in the buffer,
//! execute the whole batch under one short lock, then write all replies in one write
//! (pipelining). Messages from other clients (pub/sub, unblocking, kills) arrive through
//! the client's outbound queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;

use super::client::{ClientState, Outbound, ReplyMode};
use super::dispatch::{self, Outcome};
use super::persistence::service::Persistence;
use super::scripting::busy::{self, WhileBusy};
use super::state::{ServerState, Shared};
use crate::resp::{Frame, ProtocolVersion, RequestParser};

/// Most requests executed per lock acquisition (keeps other clients' latency low).
const MAX_BATCH: usize = 512;

/// Input a connection accepted while a script is busy may buffer (Redis's default
/// client-query-buffer-limit; the configured one needs the state).
const MAX_INPUT_WHILE_BUSY: usize = 1024 * 1024 * 1024;

const PROTECTED_MODE_MSG: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";

/// What a connection gets from the server state when it is admitted.
struct Admitted {
    id: u64,
    query_buffer_limit: usize,
    pause: Arc<AtomicI64>,
    pending_out: Arc<AtomicUsize>,
    unwritten: Arc<AtomicUsize>,
    force_close: Arc<AtomicBool>,
    keepalive_secs: u64,
    persist: Arc<Persistence>,
}

/// A client's connection: TCP, or the `unixsocket` (which Redis treats as local).
pub enum ClientStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl ClientStream {
    fn try_write(&self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.try_write(data),
            ClientStream::Unix(s) => s.try_write(data),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A TCP client.
pub async fn handle(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, local: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let loopback = peer.ip().is_loopback() || is_mapped_loopback(&peer);
    handle_stream(shared, ClientStream::Tcp(stream), peer.to_string(), local.to_string(), loopback).await;
}

/// A client of the `unixsocket`: Redis lists it as `addr=<path>:0 laddr=<path>:0` and it
/// passes protected mode as a local one.
pub async fn handle_unix(shared: Arc<Shared>, stream: UnixStream, path: String) {
    let addr = format!("{path}:0");
    handle_stream(shared, ClientStream::Unix(stream), addr.clone(), addr, true).await;
}

async fn handle_stream(shared: Arc<Shared>, mut stream: ClientStream, peer: String, local: String, loopback: bool) {
    let mut parser = RequestParser::new();
    let (carried_input, carried_requests, carried_multi) = if shared.watch.is_busy() && shared.watch.may_answer_new_client(loopback) {
        match serve_before_admission(&shared, &mut stream, &mut parser).await {
            Ok(Some(carried)) => carried,
            _ => return,
        }
    } else {
        (BytesMut::with_capacity(16 * 1024), Vec::new(), CarriedMulti::default())
    };
    let (tx, rx) = mpsc::unbounded_channel::<Outbound>();
    let now = super::now_ms();
    let admitted: Result<Admitted, &'static [u8]> = {
        let mut srv = shared.lock_async().await;
        srv.stats.total_connections += 1;
        let protected = srv.limits.protected_mode && srv.acl.default_user().is_none_or(|u| u.nopass);
        if protected && !loopback {
            Err(b"protected")
        } else if srv.clients.len() >= srv.limits.maxclients {
            srv.stats.rejected_connections += 1;
            Err(b"-ERR max number of clients reached\r\n")
        } else {
            let id = srv.new_client_id();
            let authenticated = srv.acl.default_open();
            let mut c = ClientState::new(id, peer, local, now, authenticated);
            c.tx = Some(tx);
            parser.set_max_bulk_len(srv.limits.proto_max_bulk_len);
            parser.set_authenticated(authenticated);
            let admitted = Admitted {
                id,
                query_buffer_limit: srv.limits.query_buffer_limit,
                pause: srv.client_pause_until_ms.clone(),
                pending_out: c.pending_out.clone(),
                unwritten: c.unwritten.clone(),
                force_close: c.force_close.clone(),
                keepalive_secs: srv.limits.tcp_keepalive_secs,
                persist: srv.persist.svc.clone(),
            };
            srv.clients.insert(id, c);
            Ok(admitted)
        }
    };
    let Admitted { id, query_buffer_limit: qlimit, pause, pending_out, unwritten, force_close, keepalive_secs, persist } = match admitted {
        Ok(v) => v,
        Err(b"protected") => {
            let _ = stream.write_all(format!("-{PROTECTED_MODE_MSG}\r\n").as_bytes()).await;
            return;
        }
        Err(msg) => {
            let _ = stream.write_all(msg).await;
            return;
        }
    };
    if let (true, ClientStream::Tcp(tcp)) = (keepalive_secs > 0, &stream) {
        if let Err(e) = set_keepalive(tcp, keepalive_secs) {
            tracing::debug!("client {id}: setting tcp-keepalive: {e}");
        }
    }
    let unaccounted_input = carried_input.len() as u64;
    let mut conn = Conn {
        shared: shared.clone(),
        persist,
        id,
        rx,
        inbuf: carried_input,
        out: BytesMut::with_capacity(16 * 1024),
        pending: carried_requests,
        pending_sizes: Vec::new(),
        close_after_write: false,
        blocked_deadline: None,
        blocked: false,
        pause,
        unaccounted_input,
        pending_out,
        unwritten,
        force_close,
        proto: ProtocolVersion::Resp2,
        authenticated: parser.authenticated(),
        in_multi: false,
        rejected_in_multi: false,
        discard_transaction: carried_multi.discard,
        opened_multi: carried_multi.opened,
        qsize: QueryBufferSizing::new(),
    };
    conn.rejected_in_multi = carried_multi.rejected;
    let result = conn.run(&mut stream, &mut parser, qlimit).await;
    if let Err(e) = result {
        tracing::debug!("client {id} closed: {e}");
    }
    let mut srv = shared.lock_async().await;
    dispatch::client_gone(&mut srv, id);
}

/// What a connection does after answering requests while a script is busy.
enum AfterBusy {
    /// Everything answered (or the script ended): carry on as usual.
    Continue,
    Close,
    /// The first pending request needs the server state: it runs after the script. SHUTDOWN
    /// NOSAVE stops the script and stays pending: the server exits once the script stopped
    /// (or the command runs as usual if it did not).
    WaitForScript,
}

/// The client as a connection answering without the server state sees it.
struct BusyClient {
    proto: ProtocolVersion,
    authenticated: bool,
    in_multi: bool,
    /// A command was rejected while a transaction was open (flagged at the next batch).
    rejected: bool,
    /// EXEC was rejected: the transaction is discarded at the next batch.
    discard: bool,
    /// MULTI was answered: the transaction is opened at the next batch.
    opened_multi: bool,
}

/// Answers `pending` from the front as Redis answers while a script is busy (see
/// `scripting::busy`), without the server state.
fn answer_while_busy(shared: &Shared, pending: &mut Vec<Vec<Bytes>>, out: &mut BytesMut, client: &mut BusyClient) -> AfterBusy {
    let proto = client.proto;
    let mut answered = 0;
    let next = loop {
        let Some(args) = pending.get(answered) else { break AfterBusy::Continue };
        if !shared.watch.is_busy() {
            break AfterBusy::Continue;
        }
        match busy::answer_while_busy(&shared.watch, &shared.commands, args, client.authenticated, client.in_multi) {
            WhileBusy::Reply(frame) => {
                frame.encode(proto, out);
                answered += 1;
            }
            WhileBusy::Rejected(frame) => {
                frame.encode(proto, out);
                client.rejected |= client.in_multi;
                answered += 1;
            }
            WhileBusy::AbortExec(frame) => {
                frame.encode(proto, out);
                client.discard = true;
                client.in_multi = false;
                answered += 1;
            }
            WhileBusy::OpenMulti => {
                Frame::ok().encode(proto, out);
                client.in_multi = true;
                client.opened_multi = true;
                answered += 1;
            }
            WhileBusy::Quit => {
                Frame::ok().encode(proto, out);
                answered = pending.len();
                break AfterBusy::Close;
            }
            WhileBusy::Shutdown | WhileBusy::WaitForState => break AfterBusy::WaitForScript,
        }
    };
    pending.drain(..answered);
    next
}

/// The transaction state of a connection answered before admission (MULTI answered while
/// the script was busy), applied at its first batch.
#[derive(Debug, Default)]
struct CarriedMulti {
    opened: bool,
    rejected: bool,
    discard: bool,
}

/// A connection accepted while a script is busy is answered as Redis answers it (-BUSY,
/// KILL, SHUTDOWN NOSAVE) before it is registered, which needs the state. Returns the
/// unread input and the requests left once the script ended or a request needs the state;
/// None when the connection is done.
async fn serve_before_admission(shared: &Shared, stream: &mut ClientStream, parser: &mut RequestParser) -> std::io::Result<Option<(BytesMut, Vec<Vec<Bytes>>, CarriedMulti)>> {
    let proto = ProtocolVersion::Resp2;
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::new();
    let mut pending = Vec::new();
    let mut in_multi = false;
    let mut carried = CarriedMulti::default();
    while shared.watch.is_busy() {
        if inbuf.len() > MAX_INPUT_WHILE_BUSY {
            return Ok(None);
        }
        loop {
            match parser.parse(&mut inbuf) {
                Ok(Some(args)) if !args.is_empty() => pending.push(args),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    Frame::error(format!("ERR {e}")).encode(proto, &mut out);
                    stream.write_all(&out).await?;
                    return Ok(None);
                }
            }
        }
        let mut client = BusyClient { proto, authenticated: false, in_multi, rejected: false, discard: false, opened_multi: false };
        let next = answer_while_busy(shared, &mut pending, &mut out, &mut client);
        in_multi = client.in_multi;
        carried.opened |= client.opened_multi;
        carried.rejected |= client.rejected;
        carried.discard |= client.discard;
        let done = matches!(next, AfterBusy::Close);
        let wait = !matches!(next, AfterBusy::Continue);
        stream.write_all(&out).await?;
        out.clear();
        if done {
            return Ok(None);
        }
        if wait {
            shared.watch.until_idle().await;
            break;
        }
        tokio::select! {
            read = stream.read_buf(&mut inbuf) => {
                if read? == 0 {
                    return Ok(None);
                }
            }
            _ = shared.watch.until_idle() => {}
        }
    }
    Ok(Some((inbuf, pending, carried)))
}

/// `tcp-keepalive`, as Redis's anetKeepAlive: probes after `secs` idle, then every third
/// of it, and the peer is dead after 3 unanswered probes.
fn set_keepalive(stream: &TcpStream, secs: u64) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(secs))
        .with_interval(Duration::from_secs((secs / 3).max(1)))
        .with_retries(3);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Writes all of `data`, but gives up once the client is scheduled to close (output buffer
/// limits): a peer that stopped reading must not keep its connection, and what is queued
/// for it, alive.
/// `unwritten` follows what is left to write (CLIENT LIST omem, output buffer limits).
async fn write_unless_dropped(stream: &mut ClientStream, data: &[u8], force_close: &AtomicBool, unwritten: &AtomicUsize) -> std::io::Result<()> {
    // Fast path: the socket takes everything at once.
    let mut written = match stream.try_write(data) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if written == data.len() {
        return Ok(());
    }
    let mut check = tokio::time::interval(Duration::from_millis(100));
    while written < data.len() {
        tokio::select! {
            // TcpStream writes are cancel-safe: a cancelled write wrote nothing.
            r = stream.write(&data[written..]) => {
                let n = r?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                written += n;
                unwritten.store(data.len() - written, Ordering::Relaxed);
            }
            _ = check.tick() => {
                if force_close.load(Ordering::Relaxed) {
                    return Err(std::io::Error::other("client scheduled to be closed (output buffer limits)"));
                }
            }
        }
    }
    Ok(())
}

/// Appends a queued message's bytes to `out`; an unblocking reply is returned for the caller
/// to encode in the client's protocol.
fn take_message(m: Outbound, out: &mut BytesMut, pending_out: &AtomicUsize, close: &mut bool) -> Option<Frame> {
    match m {
        Outbound::Raw(bytes) => {
            pending_out.fetch_sub(bytes.len().min(pending_out.load(Ordering::Relaxed)), Ordering::Relaxed);
            out.extend_from_slice(&bytes);
            None
        }
        Outbound::Unblocked(frame) => Some(frame),
        Outbound::Close => {
            *close = true;
            None
        }
    }
}

/// A read into the query buffer with Redis's 16 KB of room (an emptied buffer has none).
async fn read_with_room(stream: &mut ClientStream, inbuf: &mut BytesMut) -> std::io::Result<usize> {
    if inbuf.capacity() - inbuf.len() < 1024 {
        inbuf.reserve(IOBUF_LEN);
    }
    stream.read_buf(inbuf).await
}

fn is_mapped_loopback(peer: &SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        _ => false,
    }
}

struct Conn {
    shared: Arc<Shared>,
    persist: Arc<Persistence>,
    id: u64,
    /// Messages from other clients (pub/sub, invalidations, unblocking, kills).
    rx: mpsc::UnboundedReceiver<Outbound>,
    inbuf: BytesMut,
    out: BytesMut,
    /// Parsed requests not yet run (the client blocked in the middle of a pipeline).
    pending: Vec<Vec<Bytes>>,
    /// The bytes each of the last parsed requests took in the query buffer (its tail lines
    /// up with `pending`): CLIENT LIST's qbuf counts the running command, as Redis's does.
    pending_sizes: Vec<usize>,
    close_after_write: bool,
    blocked: bool,
    blocked_deadline: Option<i64>,
    pause: Arc<AtomicI64>,
    unaccounted_input: u64,
    pending_out: Arc<AtomicUsize>,
    /// This connection's `ClientState::unwritten`.
    unwritten: Arc<AtomicUsize>,
    force_close: Arc<AtomicBool>,
    /// The client's protocol, authentication and transaction as of its last batch (replies
    /// sent without the state: unblocking, busy scripts).
    proto: ProtocolVersion,
    authenticated: bool,
    in_multi: bool,
    /// A command was rejected during a busy script while a transaction was open.
    rejected_in_multi: bool,
    /// EXEC was rejected during a busy script: the transaction goes at the next batch.
    discard_transaction: bool,
    /// MULTI was answered during a busy script: the transaction opens at the next batch.
    opened_multi: bool,
    /// The query buffer's sizing, as Redis's (see [`QueryBufferSizing`]).
    qsize: QueryBufferSizing,
}

/// Redis's reads leave room for 16 KB more (PROTO_IOBUF_LEN).
const IOBUF_LEN: usize = 16 * 1024;
/// Arguments from this size get a query buffer of their own size (PROTO_MBULK_BIG_ARG).
const BIG_ARG: usize = 32 * 1024;
/// A query buffer past this size shrinks towards its recent peak (PROTO_RESIZE_THRESHOLD).
const RESIZE_THRESHOLD: usize = 32 * 1024;

/// How the query buffer grows and shrinks, as Redis's (`readQueryFromClient`,
/// `clientsCronResizeQueryBuffer`): every read has 16 KB of room; after a big argument the
/// buffer keeps room for another as big; once a second a buffer wasting more than 4 KB is
/// emptied when the client idled more than 2 s, or cut to its recent peak when past 32 KB.
/// CLIENT LIST shows the room as `qbuf-free`, and idle clients hold no buffer at all.
struct QueryBufferSizing {
    /// Largest of (bytes buffered + 16 KB) at a read since the last resize check.
    peak: usize,
    /// The largest big argument of the last batch, to keep room for.
    big_arg: usize,
    last_read: std::time::Instant,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    timer_armed: bool,
}

impl QueryBufferSizing {
    fn new() -> Self {
        QueryBufferSizing { peak: 0, big_arg: 0, last_read: std::time::Instant::now(), timer: Box::pin(tokio::time::sleep(Duration::ZERO)), timer_armed: false }
    }

    /// The next resize check (if none is pending): in a second, as Redis's cron visits each
    /// client, or in 100 ms for a buffer past 32 KB (Redis visits few clients every 100 ms;
    /// many small ones need not wake that often).
    fn arm(&mut self, capacity: usize) {
        if !self.timer_armed {
            let every = if capacity > RESIZE_THRESHOLD { Duration::from_millis(100) } else { Duration::from_secs(1) };
            self.timer.as_mut().reset(tokio::time::Instant::now() + every);
            self.timer_armed = true;
        }
    }

    /// Room for the next read (or the next big argument) after a batch.
    fn make_room(&mut self, inbuf: &mut BytesMut) {
        let want = if self.big_arg >= BIG_ARG { std::mem::take(&mut self.big_arg) + 2 } else { IOBUF_LEN };
        if inbuf.capacity() - inbuf.len() < want {
            inbuf.reserve(want);
        }
        self.arm(inbuf.capacity());
    }

    /// The once-a-second check. True if the buffer changed size.
    fn resize_check(&mut self, inbuf: &mut BytesMut) -> bool {
        self.timer_armed = false;
        let (len, cap) = (inbuf.len(), inbuf.capacity());
        let mut changed = false;
        if cap - len > 4 * 1024 {
            let target = if self.last_read.elapsed() > Duration::from_secs(2) {
                Some(len)
            } else if cap > RESIZE_THRESHOLD && cap / 2 > self.peak {
                Some(len.max(self.peak))
            } else {
                None
            };
            if let Some(target) = target {
                let mut resized = BytesMut::with_capacity(target);
                resized.extend_from_slice(inbuf);
                *inbuf = resized;
                changed = true;
            }
        }
        self.peak = inbuf.len();
        if inbuf.capacity() - inbuf.len() > 4 * 1024 {
            self.arm(inbuf.capacity());
        }
        changed
    }
}

impl Conn {
    async fn run(&mut self, stream: &mut ClientStream, parser: &mut RequestParser, qlimit: usize) -> std::io::Result<()> {
        if !self.pending.is_empty() || !self.inbuf.is_empty() {
            // Requests read while a script was busy, before this client was registered.
            self.process_input(parser, qlimit).await;
            self.flush(stream).await?;
            if self.close_after_write {
                return Ok(());
            }
        }
        loop {
            let sleep_for = match (self.blocked, self.blocked_deadline) {
                (true, Some(deadline)) => Duration::from_millis((deadline - super::now_ms()).max(0) as u64),
                _ => Duration::from_secs(3600),
            };
            tokio::select! {
                // Queued messages first: a message published before this client's next
                // command was run must reach it before that command's reply, as in Redis.
                biased;
                msg = self.rx.recv() => {
                    let mut unblocked = false;
                    match msg {
                        Some(m) => unblocked = self.absorb(m),
                        None => self.close_after_write = true,
                    }
                    // Handle whatever else is queued before writing.
                    while let Ok(m) = self.rx.try_recv() {
                        unblocked |= self.absorb(m);
                    }
                    if unblocked && !self.close_after_write {
                        self.resume(parser, qlimit).await;
                    }
                }
                read = read_with_room(stream, &mut self.inbuf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.qsize.last_read = std::time::Instant::now();
                    self.qsize.peak = self.qsize.peak.max(self.inbuf.len() + IOBUF_LEN - n.min(IOBUF_LEN));
                    self.unaccounted_input += n as u64;
                    if self.blocked {
                        continue;
                    }
                    self.process_input(parser, qlimit).await;
                }
                _ = &mut self.qsize.timer, if self.qsize.timer_armed => {
                    if self.qsize.resize_check(&mut self.inbuf) {
                        let mut srv = self.shared.lock_async().await;
                        if let Some(c) = srv.clients.get_mut(&self.id) {
                            c.qbuf = self.inbuf.len();
                            c.qbuf_free = self.inbuf.capacity() - self.inbuf.len();
                        }
                    }
                }
                _ = tokio::time::sleep(sleep_for), if self.blocked => {
                    let reply = {
                        let mut srv = self.shared.lock_async().await;
                        dispatch::unblock_on_timeout(&mut srv, self.id)
                    };
                    if let Some(frame) = reply {
                        self.blocked = false;
                        self.blocked_deadline = None;
                        self.push_reply_for_self(frame);
                        self.resume(parser, qlimit).await;
                    }
                }
            }
            if self.force_close.load(Ordering::Relaxed) {
                return Ok(());
            }
            self.flush(stream).await?;
            if self.close_after_write {
                return Ok(());
            }
        }
    }

    async fn flush(&mut self, stream: &mut ClientStream) -> std::io::Result<()> {
        if !self.out.is_empty() {
            // As Redis's beforeSleep: the AOF holds every write these replies may depend on
            // (this client's or another's) before they leave; under appendfsync always
            // they are fsynced too.
            if let Some(sync) = self.persist.aof_before_reply() {
                sync.wait().await;
            }
            self.unwritten.store(self.out.len(), Ordering::Relaxed);
            write_unless_dropped(stream, &self.out, &self.force_close, &self.unwritten).await?;
            self.unwritten.store(0, Ordering::Relaxed);
            self.out.clear();
            if self.out.capacity() > 1024 * 1024 {
                self.out = BytesMut::with_capacity(16 * 1024);
            }
        }
        Ok(())
    }

    /// Takes one queued message into the output. True if it unblocked this client.
    fn absorb(&mut self, m: Outbound) -> bool {
        match take_message(m, &mut self.out, &self.pending_out, &mut self.close_after_write) {
            Some(frame) => {
                self.blocked = false;
                self.blocked_deadline = None;
                self.push_reply_for_self(frame);
                true
            }
            None => false,
        }
    }

    fn push_reply_for_self(&mut self, frame: Frame) {
        frame.encode(self.proto, &mut self.out);
    }

    async fn resume(&mut self, parser: &mut RequestParser, qlimit: usize) {
        self.process_input(parser, qlimit).await;
    }

    /// Parses and runs everything buffered.
    async fn process_input(&mut self, parser: &mut RequestParser, qlimit: usize) {
        loop {
            let mut protocol_error = None;
            while self.pending.len() < MAX_BATCH {
                let before = self.inbuf.len();
                match parser.parse(&mut self.inbuf) {
                    Ok(Some(args)) => {
                        if let Some(big) = args.iter().map(|a| a.len()).filter(|&n| n >= BIG_ARG).max() {
                            self.qsize.big_arg = self.qsize.big_arg.max(big);
                        }
                        if !args.is_empty() {
                            self.pending.push(args);
                            self.pending_sizes.push(before.saturating_sub(self.inbuf.len()));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        protocol_error = Some(e);
                        break;
                    }
                }
            }
            if self.inbuf.len() > qlimit {
                let mut srv = self.shared.lock_async().await;
                if let Some(c) = srv.clients.get_mut(&self.id) {
                    c.qbuf = self.inbuf.len();
                    c.killed = true;
                    let head = &self.inbuf[..self.inbuf.len().min(64)];
                    super::log::warning(&format!(
                        "Closing client that reached max query buffer length: {} (qbuf initial bytes: {})",
                        super::commands::connection::client_line(c, super::now_ms(), None),
                        dispatch::repr(head)
                    ));
                }
                self.close_after_write = true;
                self.pending.clear();
                return;
            }
            if self.pending.is_empty() {
                if let Some(e) = protocol_error {
                    Frame::error(format!("ERR {e}")).encode(crate::resp::ProtocolVersion::Resp2, &mut self.out);
                    self.close_after_write = true;
                }
                return;
            }
            self.wait_if_paused().await;
            let shared = self.shared.clone();
            let state = loop {
                if shared.watch.is_busy() {
                    let mut client = BusyClient { proto: self.proto, authenticated: self.authenticated, in_multi: self.in_multi, rejected: false, discard: false, opened_multi: false };
                    let next = answer_while_busy(&shared, &mut self.pending, &mut self.out, &mut client);
                    self.opened_multi |= client.opened_multi;
                    self.rejected_in_multi |= client.rejected;
                    self.discard_transaction |= client.discard;
                    self.in_multi = client.in_multi;
                    match next {
                        AfterBusy::Close => self.close_after_write = true,
                        AfterBusy::WaitForScript => shared.watch.until_idle().await,
                        AfterBusy::Continue => {}
                    }
                }
                if self.pending.is_empty() || self.close_after_write {
                    break None;
                }
                if let Some(srv) = shared.lock_unless_busy().await {
                    break Some(srv);
                }
            };
            let more = match state {
                Some(srv) => self.run_batch(parser, srv),
                None => !self.close_after_write,
            };
            if let Some(e) = protocol_error {
                if !self.blocked {
                    Frame::error(format!("ERR {e}")).encode(crate::resp::ProtocolVersion::Resp2, &mut self.out);
                    self.close_after_write = true;
                }
                return;
            }
            if !more || self.blocked || self.close_after_write {
                return;
            }
        }
    }

    async fn wait_if_paused(&mut self) {
        let mut counted: Option<PausedGuard> = None;
        for _ in 0..100_000 {
            if self.pause.load(Ordering::Relaxed) <= super::now_ms() {
                return;
            }
            let (until, writes_only, has_write) = {
                let srv = self.shared.lock_async().await;
                let until = self.pause.load(Ordering::Relaxed);
                // Redis's is_may_replicate_command: WRITE or MAY_REPLICATE (EVAL, FCALL,
                // PUBLISH...), and EXEC when the transaction queued such a command
                // (a script's declared flags count: a no-writes EVAL is not paused)
                let may_replicate = |args: &[Bytes]| {
                    let Some(top) = srv.commands.lookup(&args[0]) else { return false };
                    let Ok(spec) = dispatch::resolve(top, args) else { return false };
                    let f = crate::server::scripting::effective_command_flags(&srv, spec, args);
                    f & (super::command::flags::WRITE | super::command::flags::MAY_REPLICATE) != 0
                };
                let queued_writes = || {
                    srv.clients.get(&self.id).and_then(|c| c.multi.as_ref()).is_some_and(|q| q.iter().any(|c| !c.args.is_empty() && may_replicate(&c.args)))
                };
                let has_write = self.pending.iter().any(|a| may_replicate(a) || (a[0].eq_ignore_ascii_case(b"exec") && queued_writes()));
                (until, srv.client_pause_writes_only, has_write)
            };
            let now = super::now_ms();
            if until <= now || (writes_only && !has_write) {
                return;
            }
            if counted.is_none() {
                counted = Some(PausedGuard::new());
            }
            tokio::time::sleep(Duration::from_millis(((until - now) as u64).min(50))).await;
        }
    }

    /// Runs the pending requests under the lock. Returns true if input may remain.
    fn run_batch(&mut self, parser: &mut RequestParser, mut srv: parking_lot::MutexGuard<'_, ServerState>) -> bool {
        let requests = std::mem::take(&mut self.pending);
        let Some(mut client) = srv.clients.remove(&self.id) else {
            self.close_after_write = true;
            return false;
        };
        if std::mem::take(&mut self.opened_multi) && client.multi.is_none() {
            client.multi = Some(Vec::new());
            client.multi_error = false;
        }
        if std::mem::take(&mut self.discard_transaction) {
            dispatch::discard_transaction(&mut srv, &mut client);
        }
        if std::mem::take(&mut self.rejected_in_multi) {
            dispatch::flag_multi_error(&mut client);
        }
        // Messages queued before these commands run go out before their replies; taken under
        // the lock, so nothing can slip in between.
        while let Ok(m) = self.rx.try_recv() {
            if let Some(frame) = take_message(m, &mut self.out, &self.pending_out, &mut self.close_after_write) {
                self.blocked = false;
                self.blocked_deadline = None;
                frame.encode(client.proto, &mut self.out);
            }
        }
        let now = super::now_ms();
        let out_before = self.out.len();
        // Requests answered elsewhere (busy script) left the front of `pending`.
        let mut sizes = std::mem::take(&mut self.pending_sizes);
        let stale = sizes.len().saturating_sub(requests.len());
        sizes.drain(..stale);
        let mut sizes = sizes.into_iter();
        let mut remaining: usize = self.inbuf.len() + sizes.as_slice().iter().sum::<usize>();
        let mut iter = requests.into_iter();
        for args in iter.by_ref() {
            // As Redis: the query buffer still holds the running command and what follows.
            client.qbuf = remaining;
            remaining = remaining.saturating_sub(sizes.next().unwrap_or(0));
            if args[0].eq_ignore_ascii_case(b"quit") {
                Frame::ok().encode(client.proto, &mut self.out);
                self.close_after_write = true;
                break;
            }
            let outcome = dispatch::execute(&mut srv, &mut client, args, now);
            match outcome {
                Outcome::Reply(frame) => {
                    let is_marker = matches!(&frame, Frame::Simple(s) if s == super::commands::pubsub::NO_REPLY);
                    let deferred = std::mem::take(&mut client.deferred);
                    match client.reply_mode {
                        ReplyMode::On => {
                            if !is_marker {
                                frame.encode(client.proto, &mut self.out);
                            }
                            for f in deferred {
                                f.encode(client.proto, &mut self.out);
                            }
                        }
                        silenced => {
                            // Pub/sub notifications are pushes: Redis sends them whatever
                            // CLIENT REPLY says (its CLIENT_PUSHING flag).
                            for f in deferred.into_iter().filter(|f| matches!(f, Frame::Push(_))) {
                                f.encode(client.proto, &mut self.out);
                            }
                            client.reply_mode = match silenced {
                                ReplyMode::SkipNext => ReplyMode::Skip,
                                ReplyMode::Skip => ReplyMode::On,
                                other => other,
                            };
                        }
                    }
                }
                Outcome::Blocked => {
                    self.blocked = true;
                    self.blocked_deadline = srv.blocked.get(&self.id).and_then(|b| b.deadline_ms);
                    break;
                }
            }
            if client.killed || srv.shutdown_requested.is_some() {
                self.close_after_write = true;
                break;
            }
        }
        self.pending = iter.collect();
        self.pending_sizes = sizes.collect();
        // The replies wait in `out` until the flush: they count against the output limits.
        self.unwritten.store(self.out.len(), Ordering::Relaxed);
        if !client.check_output_limit(&srv.limits, now) {
            self.close_after_write = true;
        }
        srv.stats.net_output_bytes += (self.out.len() - out_before) as u64;
        srv.stats.net_input_bytes += std::mem::take(&mut self.unaccounted_input);
        parser.set_authenticated(client.authenticated);
        self.proto = client.proto;
        self.authenticated = client.authenticated;
        self.in_multi = client.multi.is_some();
        parser.set_max_bulk_len(srv.limits.proto_max_bulk_len);
        self.qsize.make_room(&mut self.inbuf);
        client.qbuf = self.inbuf.len();
        client.qbuf_free = self.inbuf.capacity() - self.inbuf.len();
        srv.clients.insert(self.id, client);
        if srv.shutdown_requested.is_some() {
            self.shared.shutdown.notify_one();
        }
        !self.blocked
    }
}

/// Clients whose commands wait for a CLIENT PAUSE to end: Redis counts them in
/// `blocked_clients` (its BLOCKED_POSTPONE).
static PAUSED_CLIENTS: AtomicUsize = AtomicUsize::new(0);

pub fn paused_clients() -> usize {
    PAUSED_CLIENTS.load(Ordering::Relaxed)
}

/// Counts one paused client while alive.
struct PausedGuard;

impl PausedGuard {
    fn new() -> PausedGuard {
        PAUSED_CLIENTS.fetch_add(1, Ordering::Relaxed);
        PausedGuard
    }
}

impl Drop for PausedGuard {
    fn drop(&mut self) {
        PAUSED_CLIENTS.fetch_sub(1, Ordering::Relaxed);
    }
}
