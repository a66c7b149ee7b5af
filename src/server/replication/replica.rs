//! The replica side: connect to the master, handshake as Redis does (PING, AUTH,
//! REPLCONF listening-port / ip-address / capa eof psync2, PSYNC), receive the RDB (disk
//! `$<len>` or diskless `$EOF:<mark>` form) or continue from the backlog, then apply the
//! command stream, forward it to sub-replicas, and acknowledge it every second.

use crate::server::persistence::{notice, warning};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::persistence::host::{ApplySource, DataHost};
use super::state::{LinkState, Replication};
use super::stream::{MasterStream, StreamStep};
use crate::resp::encode_command;

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("I/O error with master: {0}")]
    Io(#[from] std::io::Error),
    // The timeouts read as Redis's log lines (tests and operators grep for them).
    #[error("Timeout connecting to the MASTER...")]
    ConnectTimeout,
    #[error("Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.")]
    TransferTimeout,
    #[error("MASTER timeout: no data nor PING received...")]
    StreamTimeout,
    #[error("master closed the connection")]
    Closed,
    #[error("unexpected reply from master to {step}: {reply}")]
    Unexpected { step: &'static str, reply: String },
    #[error("error loading the RDB from the MASTER: {0}")]
    Load(String),
    #[error("protocol error in the replication stream: {0}")]
    Protocol(String),
    #[error("replication link reconfigured")]
    Stopped,
}

/// Runs the link to our master until REPLICAOF changes (its `generation` becomes stale),
/// reconnecting after errors once per second as Redis does.
pub async fn run_master_link(repl: Arc<Replication>, host: Arc<dyn DataHost>, generation: u64) {
    loop {
        let Some((mhost, mport)) = repl.master_addr() else { return };
        if repl.link_generation() != Some(generation) {
            return;
        }
        let epoch = repl.kill_epoch();
        notice!("Connecting to MASTER {}:{}", mhost, mport);
        let result = link_once(&repl, &host, generation, epoch, &mhost, mport).await;
        repl.forget_link_socket(epoch);
        let still_current = repl.update_link(generation, |m| {
            if m.state == LinkState::Connected || m.down_since.is_none() {
                m.down_since = Some(Instant::now());
            }
            m.state = LinkState::Connect;
        });
        if !still_current {
            return;
        }
        match result {
            Ok(()) | Err(LinkError::Stopped) => {}
            Err(e @ (LinkError::ConnectTimeout | LinkError::TransferTimeout | LinkError::StreamTimeout)) => warning!("{}", e),
            Err(e) => warning!("Replication link with {}:{}: {}", mhost, mport, e),
        }
        if repl.kill_epoch() == epoch {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    timeout: Duration,
    /// Receiving the RDB payload (which timeout message applies).
    transferring: bool,
}

impl Conn {
    async fn fill(&mut self) -> Result<usize, LinkError> {
        let timed_out = if self.transferring { LinkError::TransferTimeout } else { LinkError::ConnectTimeout };
        let n = tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.buf)).await.map_err(|_| timed_out)??;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        Ok(n)
    }

    /// Reads one CRLF- (or LF-) terminated line; empty lines (keep-alive newlines) included.
    async fn line(&mut self) -> Result<String, LinkError> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let raw = self.buf.split_to(p + 1);
                let text = String::from_utf8_lossy(&raw[..p]).trim_end_matches('\r').to_string();
                return Ok(text);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(LinkError::Protocol("line too long".into()));
            }
            self.fill().await?;
        }
    }

    async fn command(&mut self, args: &[&[u8]]) -> Result<String, LinkError> {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out).await?;
        loop {
            let l = self.line().await?;
            if !l.is_empty() {
                return Ok(l);
            }
        }
    }
}

async fn link_once(
    repl: &Arc<Replication>,
    host: &Arc<dyn DataHost>,
    generation: u64,
    epoch: u64,
    mhost: &str,
    mport: u16,
) -> Result<(), LinkError> {
    let cfg = repl.config();
    let check = |state: LinkState| -> Result<(), LinkError> {
        if repl.kill_epoch() != epoch || !repl.update_link(generation, |m| m.state = state) {
            return Err(LinkError::Stopped);
        }
        Ok(())
    };
    check(LinkState::Connecting)?;
    let stream = tokio::time::timeout(cfg.timeout, TcpStream::connect((mhost, mport))).await.map_err(|_| LinkError::ConnectTimeout)??;
    stream.set_nodelay(true)?;
    let std_stream = stream.into_std()?;
    repl.register_link_socket(epoch, std_stream.try_clone()?);
    let stream = TcpStream::from_std(std_stream)?;
    if repl.kill_epoch() != epoch {
        return Err(LinkError::Stopped);
    }
    notice!("MASTER <-> REPLICA sync started");
    let mut conn = Conn { stream, buf: BytesMut::with_capacity(64 * 1024), timeout: cfg.timeout, transferring: false };
    check(LinkState::Handshake)?;

    // PING: any reply but a non-auth error is fine (Redis accepts -NOAUTH here).
    let pong = conn.command(&[b"PING"]).await?;
    if pong.starts_with('-') && !(pong.starts_with("-NOAUTH") || pong.starts_with("-NOPERM") || pong.starts_with("-ERR operation not permitted")) {
        return Err(LinkError::Unexpected { step: "PING", reply: pong });
    }
    notice!("Master replied to PING, replication can continue...");
    if let Some(pass) = &cfg.masterauth {
        let reply = match &cfg.masteruser {
            Some(user) => conn.command(&[b"AUTH", user.as_bytes(), pass.as_bytes()]).await?,
            None => conn.command(&[b"AUTH", pass.as_bytes()]).await?,
        };
        if reply.starts_with('-') {
            warning!("Unable to AUTH to MASTER: {}", reply);
            return Err(LinkError::Unexpected { step: "AUTH", reply });
        }
    }
    let port = cfg.announce_port.unwrap_or(cfg.listening_port).to_string();
    let reply = conn.command(&[b"REPLCONF", b"listening-port", port.as_bytes()]).await?;
    if reply.starts_with('-') {
        notice!("(Non critical) Master does not understand REPLCONF listening-port: {}", reply);
    }
    if let Some(ip) = &cfg.announce_ip {
        let reply = conn.command(&[b"REPLCONF", b"ip-address", ip.as_bytes()]).await?;
        if reply.starts_with('-') {
            notice!("(Non critical) Master does not understand REPLCONF ip-address: {}", reply);
        }
    }
    let reply = conn.command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]).await?;
    if reply.starts_with('-') {
        notice!("(Non critical) Master does not understand REPLCONF capa: {}", reply);
    }
    until_script_idle(host).await;
    host.wait_until_idle();
    let (replid, offset) = repl.psync_request();
    let offset_s = offset.to_string();
    if replid != "?" {
        notice!("Trying a partial resynchronization (request {}:{}).", replid, offset);
    }
    let failover = repl.failover_psync.swap(false, std::sync::atomic::Ordering::AcqRel);
    let reply = if failover {
        let reply = conn.command(&[b"PSYNC", replid.as_bytes(), offset_s.as_bytes(), b"FAILOVER"]).await?;
        *repl.failover_outcome.lock() = Some(reply.starts_with("+CONTINUE") || reply.starts_with("+FULLRESYNC"));
        reply
    } else {
        conn.command(&[b"PSYNC", replid.as_bytes(), offset_s.as_bytes()]).await?
    };
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut parts = rest.split_whitespace();
        let (Some(id), Some(off)) = (parts.next(), parts.next().and_then(|o| o.parse::<i64>().ok())) else {
            return Err(LinkError::Unexpected { step: "PSYNC", reply });
        };
        notice!("Full resync from master: {}:{}", id, off);
        check(LinkState::Transfer)?;
        conn.transferring = true;
        let rdb = receive_rdb(&mut conn, repl, generation).await?;
        let host2 = host.clone();
        let mode = cfg.diskless_load;
        let loaded = tokio::task::spawn_blocking(move || host2.replace_dataset(&rdb, mode))
            .await
            .map_err(|e| LinkError::Load(e.to_string()))?
            .map_err(|e| LinkError::Load(e.to_string()))?;
        // A master's stream starts with a SELECT after a full sync, a replica's (chained
        // replication) continues in the database its payload names.
        let stream_db = loaded.aux_value("repl-stream-db").and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        repl.adopt_master_history(id, off, stream_db);
        notice!("MASTER <-> REPLICA sync: Finished with success");
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        if !new_id.is_empty() {
            repl.continue_with_id(new_id);
        } else {
            repl.continue_with_id(&replid);
        }
        notice!("Successful partial resynchronization with master.");
    } else {
        // -NOMASTERLINK / -LOADING: try again later.
        return Err(LinkError::Unexpected { step: "PSYNC", reply });
    }
    // The first ACK goes out before the link counts as up (Redis sends it right after the
    // sync): a master that waits for it to put us online (diskless sync) has it by the time
    // anyone sees master_link_status:up here.
    send_ack(&mut conn.stream, host, repl.master_repl_offset()).await?;
    check(LinkState::Connected)?;
    repl.update_link(generation, |m| {
        m.last_io = Some(Instant::now());
        m.down_since = None;
    });
    notice!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization or finished a full one; streaming.");
    let addr = format!("{mhost}:{mport}");
    until_script_idle(host).await;
    host.on_master_link(true, &addr);
    let result = stream_commands(conn, repl, host, generation, epoch).await;
    until_script_idle(host).await;
    host.on_master_link(false, &addr);
    result
}

async fn receive_rdb(conn: &mut Conn, repl: &Replication, generation: u64) -> Result<Vec<u8>, LinkError> {
    // The master sends newlines while it prepares the payload.
    let header = loop {
        let l = conn.line().await?;
        repl.update_link(generation, |m| m.last_io = Some(Instant::now()));
        if !l.is_empty() {
            break l;
        }
    };
    if header.starts_with('-') {
        return Err(LinkError::Unexpected { step: "SYNC payload", reply: header });
    }
    let Some(spec) = header.strip_prefix('$') else {
        return Err(LinkError::Unexpected { step: "SYNC payload", reply: header });
    };
    if let Some(mark) = spec.strip_prefix("EOF:") {
        let mark = mark.as_bytes().to_vec();
        if mark.len() != 40 {
            return Err(LinkError::Protocol("bad $EOF mark length".into()));
        }
        repl.update_link(generation, |m| m.sync_total_bytes = -1);
        // The mark may arrive with the start of the command stream behind it in the same
        // read, so look for it anywhere in what is new (not only at the end of the buffer),
        // and leave whatever follows it in the buffer for the streaming phase.
        let mut searched = 0usize;
        loop {
            let start = searched.saturating_sub(mark.len() - 1);
            if let Some(pos) = conn.buf[start..].windows(mark.len()).position(|w| w == &mark[..]) {
                let data = conn.buf.split_to(start + pos).to_vec();
                let _ = conn.buf.split_to(mark.len());
                return Ok(data);
            }
            searched = conn.buf.len();
            conn.fill().await?;
            let n = conn.buf.len() as i64;
            repl.update_link(generation, |m| {
                m.sync_read_bytes = n;
                m.last_io = Some(Instant::now());
            });
        }
    }
    let len: usize = spec.parse().map_err(|_| LinkError::Protocol(format!("bad bulk length '{spec}'")))?;
    repl.update_link(generation, |m| m.sync_total_bytes = len as i64);
    while conn.buf.len() < len {
        if conn.buf.capacity() - conn.buf.len() < 64 * 1024 {
            conn.buf.reserve((len - conn.buf.len()).min(16 << 20));
        }
        conn.fill().await?;
        let n = conn.buf.len().min(len) as i64;
        repl.update_link(generation, |m| {
            m.sync_read_bytes = n;
            m.last_io = Some(Instant::now());
        });
    }
    Ok(conn.buf.split_to(len).to_vec())
}

async fn stream_commands(
    mut conn: Conn,
    repl: &Arc<Replication>,
    host: &Arc<dyn DataHost>,
    generation: u64,
    epoch: u64,
) -> Result<(), LinkError> {
    let mut reader = MasterStream::new(&conn.buf);
    // The database of the stream where it resumes: a partial resync sends no SELECT.
    let mut db = repl.master_stream_db();
    let mut ack_tick = tokio::time::interval(repl.config().ack_period);
    // After a pause the missed ticks do not fire in a burst (see the failed-ACK case below).
    ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ack_failed: Option<LinkError> = None;
    let timeout = conn.timeout;
    let mut last_io = Instant::now();
    // The bytes of processed commands are fed (offset, backlog, sub-replicas) in the same
    // critical section that applies their commands, so a snapshot taken for a sub-replica's
    // full sync never has an offset that disagrees with its data.
    loop {
        // Apply everything complete in the buffer, in batches.
        let mut batch: Vec<Vec<Bytes>> = Vec::new();
        while let Some(step) = reader.next(&mut conn.buf).map_err(|e| LinkError::Protocol(e.to_string()))? {
            match step {
                StreamStep::Apply(mut commands) => batch.append(&mut commands),
                StreamStep::GetAck => {
                    // Apply what precedes, answer with the offset before this command.
                    apply_and_feed(host, repl, &mut db, std::mem::take(&mut batch), reader.take_processed()).await;
                    send_ack(&mut conn.stream, host, repl.master_repl_offset()).await?;
                }
            }
            if batch.len() >= 1024 {
                apply_and_feed(host, repl, &mut db, std::mem::take(&mut batch), reader.take_processed()).await;
            }
        }
        apply_and_feed(host, repl, &mut db, batch, reader.take_processed()).await;
        // Register for the kill notification before checking, so none is missed.
        let killed = repl.kill_notify.notified();
        tokio::pin!(killed);
        killed.as_mut().enable();
        if repl.kill_epoch() != epoch {
            return Err(LinkError::Stopped);
        }
        tokio::select! {
            _ = killed => return Err(LinkError::Stopped),
            r = conn.stream.read_buf(&mut conn.buf) => {
                let n = r?;
                if n == 0 {
                    return Err(LinkError::Closed);
                }
                reader.received(&conn.buf[conn.buf.len() - n..]);
                last_io = Instant::now();
                repl.update_link(generation, |m| m.last_io = Some(last_io));
            }
            _ = ack_tick.tick() => {
                if repl.kill_epoch() != epoch || repl.link_generation() != Some(generation) {
                    return Err(LinkError::Stopped);
                }
                if last_io.elapsed() > timeout {
                    return Err(LinkError::StreamTimeout);
                }
                // A failed ACK (the master closed the link) does not end the link before
                // what the master sent is read: Redis's event loop reads before it writes,
                // and after a pause (SIGSTOP) both are due. Dropping those last writes would
                // make a FAILOVER's target miss them and refuse the old master's PSYNC. The
                // read then ends at EOF; the next tick gives up if it did not.
                if let Some(e) = ack_failed.take() {
                    return Err(e);
                }
                if let Err(e) = send_ack(&mut conn.stream, host, repl.master_repl_offset()).await {
                    ack_failed = Some(e);
                }
            }
        }
    }
}

/// Waits while a script is busy here: Redis leaves the master's stream unread meanwhile, and
/// the host's calls would block the runtime worker on the state the script holds.
async fn until_script_idle(host: &Arc<dyn DataHost>) {
    if let Some(watch) = host.script_watch() {
        watch.until_idle().await;
    }
}

/// Applies `batch` and accounts `raw` (the bytes that carried it) in one critical section.
async fn apply_and_feed(host: &Arc<dyn DataHost>, repl: &Replication, db: &mut u32, batch: Vec<Vec<Bytes>>, raw: BytesMut) {
    if batch.is_empty() {
        if !raw.is_empty() {
            repl.feed_from_master_stream(raw.freeze(), *db);
        }
        return;
    }
    let mut raw = Some(raw);
    until_script_idle(host).await;
    // Keyspace work is CPU-bound and short; run it inline on the link task.
    host.apply_then(db, batch, ApplySource::Master, &mut |db_after| {
        if let Some(bytes) = raw.take() {
            repl.feed_from_master_stream(bytes.freeze(), db_after);
        }
    });
}

/// REPLCONF ACK: the acknowledged writes are in our AOF first (WAIT counts on them).
async fn send_ack(stream: &mut TcpStream, host: &Arc<dyn DataHost>, offset: i64) -> Result<(), LinkError> {
    if let Some(sync) = host.aof_before_reply() {
        sync.wait().await;
    }
    let mut out = BytesMut::new();
    let off = offset.to_string();
    encode_command(&[b"REPLCONF", b"ACK", off.as_bytes()], &mut out);
    stream.write_all(&out).await?;
    Ok(())
}
