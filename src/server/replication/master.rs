//! The master side: REPLCONF on ordinary connections, then PSYNC/SYNC takes the
//! connection over: `+CONTINUE` with the backlog, or `+FULLRESYNC` with an RDB made from a
//! snapshot, then the live stream; REPLCONF ACKs from the replica update its offset.

use crate::server::persistence::{notice, warning};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::server::persistence::host::{snapshot_to_rdb, DataHost};
use super::state::{random_replid, AttachedReplica, AttachedState, PsyncDecision, Replication};
use crate::resp::{Frame, RequestParser};
use crate::server::persistence::rdb::{AuxInfo, RdbSaveOptions};

/// What a connection declared with REPLCONF before PSYNC.
#[derive(Debug, Default, Clone)]
pub struct ReplconfInfo {
    pub listening_port: Option<u16>,
    pub ip_address: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// `REPLCONF rdb-filter-only <filters>`: the payload holds no keys, and the functions
    /// only when the filters name them (`Some(true)`).
    pub rdb_filter: Option<bool>,
}

/// REPLCONF on an ordinary connection. `None` means "send no reply" (ACK / GETACK).
pub fn replconf(info: &mut ReplconfInfo, args: &[Bytes]) -> Option<Frame> {
    // args[0] is "REPLCONF".
    if args.len() % 2 == 0 {
        return Some(Frame::error("ERR syntax error"));
    }
    for pair in args[1..].chunks(2) {
        let opt = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let val = &pair[1];
        match opt.as_str() {
            "listening-port" => match std::str::from_utf8(val).ok().and_then(|v| v.parse::<u16>().ok()) {
                Some(p) => info.listening_port = Some(p),
                None => return Some(Frame::error("ERR value is not an integer or out of range")),
            },
            "ip-address" => info.ip_address = Some(String::from_utf8_lossy(val).to_string()),
            "capa" => {
                if val.eq_ignore_ascii_case(b"eof") {
                    info.capa_eof = true;
                } else if val.eq_ignore_ascii_case(b"psync2") {
                    info.capa_psync2 = true;
                }
            }
            "ack" | "getack" | "fack" => return None,
            "rdb-only" => {}
            // Redis's REPLCONF rdb-filter-only: a list of filters, "functions" the only one
            "rdb-filter-only" => {
                let Some(filters) = crate::resp::split_args(val) else {
                    return Some(Frame::error("ERR Missing rdb-filter-only values"));
                };
                let mut functions = false;
                for f in filters {
                    if f.eq_ignore_ascii_case(b"functions") {
                        functions = true;
                    } else {
                        return Some(Frame::error(format!("ERR Unsupported rdb-filter-only option: {}", String::from_utf8_lossy(&f))));
                    }
                }
                info.rdb_filter = Some(functions);
            }
            _ => return Some(Frame::error(format!("ERR Unrecognized REPLCONF option: {}", String::from_utf8_lossy(&pair[0])))),
        }
    }
    Some(Frame::ok())
}

/// Serves a replica on a connection that just sent `PSYNC replid offset` or `SYNC`.
/// `leftover` holds bytes the server already read after that command.
pub async fn serve_replica(
    repl: Arc<Replication>,
    host: Arc<dyn DataHost>,
    mut stream: TcpStream,
    leftover: BytesMut,
    info: ReplconfInfo,
    argv: Vec<Bytes>,
) {
    let peer_ip = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|_| "?".into());
    let ip = info.ip_address.clone().unwrap_or(peer_ip);
    let port = info.listening_port.unwrap_or(0);
    let is_psync = argv.first().is_some_and(|a| a.eq_ignore_ascii_case(b"psync"));
    if repl.is_replica() && !repl.master_link_up() {
        let _ = stream.write_all(b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n").await;
        return;
    }
    let decision = if is_psync && argv.len() == 3 {
        let replid = String::from_utf8_lossy(&argv[1]).to_string();
        let offset = std::str::from_utf8(&argv[2]).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(-1);
        let d = repl.psync_decision(&replid, offset);
        if let PsyncDecision::Full { reason } = &d {
            if replid != "?" {
                repl.count_partial_err();
                notice!("Partial resynchronization not accepted: {}", reason);
            }
            notice!("Replica {}:{} asks for synchronization", ip, port);
        }
        d
    } else {
        PsyncDecision::Full { reason: "SYNC".into() }
    };

    let (replica, rx) = match decision {
        PsyncDecision::Continue { from } => {
            let Some((replica, rx, backlog, replid)) = repl.attach_partial(ip.clone(), port, from) else {
                let _ = stream.write_all(b"-ERR backlog moved, retry\r\n").await;
                return;
            };
            let head = if info.capa_psync2 { format!("+CONTINUE {replid}\r\n") } else { "+CONTINUE\r\n".to_string() };
            notice!(
                "Partial resynchronization request from {}:{} accepted. Sending {} bytes of backlog starting from offset {}.",
                ip,
                port,
                backlog.len(),
                from
            );
            if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&backlog).await.is_err() {
                repl.detach(replica.id);
                return;
            }
            (replica, rx)
        }
        PsyncDecision::Full { .. } => match full_sync(&repl, &host, &mut stream, &info, ip.clone(), port, is_psync).await {
            Some(r) => r,
            None => return,
        },
    };
    stream_to_replica(&repl, replica.clone(), rx, stream, leftover).await;
    repl.detach(replica.id);
    notice!("Connection with replica {}:{} lost.", ip, port);
}

async fn full_sync(
    repl: &Arc<Replication>,
    host: &Arc<dyn DataHost>,
    stream: &mut TcpStream,
    info: &ReplconfInfo,
    ip: String,
    port: u16,
    is_psync: bool,
) -> Option<(Arc<AttachedReplica>, mpsc::UnboundedReceiver<Bytes>)> {
    let cfg = repl.config();
    let mut attached = None;
    let mut snapshot = host.snapshot(&mut || attached = Some(repl.attach_full(ip.clone(), port)));
    if let Some(functions) = info.rdb_filter {
        snapshot = Box::new(crate::server::persistence::host::WithoutData(snapshot, functions));
    }
    let (replica, rx, replid, offset, stream_db) = attached.expect("the host must call the snapshot barrier");
    if is_psync {
        let line = format!("+FULLRESYNC {replid} {offset}\r\n");
        if stream.write_all(line.as_bytes()).await.is_err() {
            repl.detach(replica.id);
            return None;
        }
    }
    notice!("Starting BGSAVE for SYNC with target: {}", if cfg.diskless_sync && info.capa_eof { "replicas sockets" } else { "disk" });
    let aux = AuxInfo {
        ctime_secs: chrono::Utc::now().timestamp(),
        used_mem: host.used_memory(),
        replication: Some((i64::from(stream_db), replid.clone(), offset)),
        aof_base: false,
    };
    let opts = RdbSaveOptions { compression: cfg.rdb_compression, ..Default::default() };
    let mut job = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        snapshot_to_rdb(snapshot.as_ref(), &aux, &opts, &mut out).map(|_| out)
    });
    // Keep the replica's read timeout from firing while the payload is produced.
    let mut keepalive = tokio::time::interval(Duration::from_secs(1));
    keepalive.tick().await;
    let rdb = loop {
        tokio::select! {
            r = &mut job => break r,
            _ = keepalive.tick() => {
                if stream.write_all(b"\n").await.is_err() || replica.is_closed() {
                    job.abort();
                    repl.detach(replica.id);
                    return None;
                }
            }
        }
    };
    let rdb = match rdb {
        Ok(Ok(v)) => v,
        other => {
            warning!("Background RDB for replica sync failed: {:?}", other.err());
            repl.detach(replica.id);
            return None;
        }
    };
    *replica.state.lock() = AttachedState::SendBulk;
    let diskless = cfg.diskless_sync && info.capa_eof;
    let sent = if diskless {
        let mark = random_replid();
        let head = format!("$EOF:{mark}\r\n");
        async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&rdb).await?;
            stream.write_all(mark.as_bytes()).await
        }
        .await
    } else {
        let head = format!("${}\r\n", rdb.len());
        async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&rdb).await
        }
        .await
    };
    if sent.is_err() {
        repl.detach(replica.id);
        return None;
    }
    notice!("Synchronization with replica {}:{} succeeded", ip, port);
    *replica.ack_time.lock() = Instant::now();
    *replica.state.lock() = AttachedState::Online;
    Some((replica, rx))
}

async fn stream_to_replica(
    repl: &Arc<Replication>,
    replica: Arc<AttachedReplica>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    stream: TcpStream,
    mut inbuf: BytesMut,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut parser = RequestParser::new();
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        // ACKs from the replica.
        loop {
            match parser.parse(&mut inbuf) {
                Ok(Some(argv)) => {
                    if argv.len() >= 3 && argv[0].eq_ignore_ascii_case(b"replconf") && argv[1].eq_ignore_ascii_case(b"ack") {
                        if let Some(off) = std::str::from_utf8(&argv[2]).ok().and_then(|s| s.parse::<i64>().ok()) {
                            repl.record_ack(&replica, off);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if replica.is_closed() {
            return;
        }
        tokio::select! {
            data = rx.recv() => {
                let Some(first) = data else { return };
                out.clear();
                out.extend_from_slice(&first);
                while out.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                let n = out.len() as u64;
                let write = wr.write_all(&out);
                tokio::select! {
                    r = write => if r.is_err() { return },
                    _ = replica.close_notify.notified() => return,
                }
                replica.pending_bytes.fetch_sub(n.min(replica.pending_bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
            }
            r = rd.read_buf(&mut inbuf) => {
                match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            _ = replica.close_notify.notified() => return,
        }
    }
}
