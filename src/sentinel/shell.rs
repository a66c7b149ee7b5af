//! The tokio shell around the state machine: the timer, the links to instances, the
//! client port (SENTINEL and friends), event publishing, config rewrites and scripts.

use crate::server::types::glob::string_match;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::commands;
use super::config::{self, SentinelConfig};
use super::links::{self, LinkEvent};
use super::scripts::{ScriptQueue, StartJob};
use super::machine::{Action, Addr, Outgoing, Role, Sentinel};
use crate::resp::{Frame, ProtocolVersion, RequestParser};

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("Could not create server TCP listening socket {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("Configured to not listen anywhere, exiting.")]
    NotListening,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A message pushed to a subscribed client.
pub struct PushMsg {
    pub channel: String,
    pub pattern: Option<String>,
    pub message: String,
}

pub struct Subscriber {
    pub channels: BTreeSet<String>,
    pub patterns: BTreeSet<String>,
    pub tx: mpsc::UnboundedSender<PushMsg>,
}

/// What `CLIENT LIST` shows of a connection, and the handle `CLIENT KILL` closes it with.
pub struct ClientEntry {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub name: String,
    pub user: String,
    pub created: std::time::Instant,
    pub last_interaction: std::time::Instant,
    pub sub: usize,
    pub psub: usize,
    pub resp: u8,
    pub last_cmd: String,
    pub kill: Option<tokio::sync::oneshot::Sender<()>>,
}

/// One ACL LOG entry: a denied command or a failed login.
pub struct AclLogEntry {
    pub count: u64,
    pub reason: String,
    pub object: String,
    pub username: String,
    pub created: std::time::Instant,
    pub client_info: String,
}

struct LinkHandles {
    cmd: mpsc::UnboundedSender<Outgoing>,
    cmd_task: tokio::task::JoinHandle<()>,
    pubsub_task: Option<tokio::task::JoinHandle<()>>,
    /// The credentials the pub/sub link logs in with (user, password).
    pubsub_auth: (Option<String>, Option<String>),
}

/// Everything behind the one lock: the machine and the shell's bookkeeping.
pub struct Core {
    pub machine: Sentinel,
    pub base_config: SentinelConfig,
    pub config_path: PathBuf,
    pub port: u16,
    pub started: std::time::Instant,
    pub run_id: String,
    pub subscribers: HashMap<u64, Subscriber>,
    /// Every connected client, by id (CLIENT LIST / KILL / INFO).
    pub clients: std::collections::BTreeMap<u64, ClientEntry>,
    pub clients_connected: u64,
    /// CLIENT PAUSE: until when, and whether only writes (PUBLISH) wait.
    pub pause: Option<(std::time::Instant, bool)>,
    /// ACL LOG, newest first.
    pub acl_log: Vec<AclLogEntry>,
    pub total_connections: u64,
    pub total_commands: u64,
    /// Notification / client-reconfig scripts, queued and retried as Redis does.
    pub scripts: ScriptQueue,
    script_kills: HashMap<u64, tokio::sync::oneshot::Sender<()>>,
    myself: std::sync::Weak<Mutex<Core>>,
    pub shutdown: Option<tokio::sync::watch::Sender<bool>>,
    links: HashMap<Addr, LinkHandles>,
    rewrite_tx: std::sync::mpsc::Sender<config::SentinelConfig>,
    sink: Option<links::EventSink>,
}

pub type Shared = Arc<Mutex<Core>>;

impl Core {
    /// How long a command named `cmd` must still wait for CLIENT PAUSE (None: run it).
    pub fn pause_left(&mut self, cmd: &[u8]) -> Option<std::time::Duration> {
        let (until, writes_only) = self.pause?;
        let left = until.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero());
        if left.is_none() {
            self.pause = None;
            return None;
        }
        // Redis Sentinel's only write-like command is PUBLISH (a hello)
        if writes_only && !cmd.eq_ignore_ascii_case(b"publish") {
            return None;
        }
        left
    }

    /// Runs the actions the machine produced.
    pub fn pump(&mut self) {
        let actions = self.machine.take_actions();
        for a in actions {
            match a {
                Action::Send(out) => self.send(out),
                Action::Event { kind, message, .. } => self.publish(&kind, &message),
                Action::RewriteConfig => self.rewrite_config(),
                Action::RunScript { path, args } => self.run_script(path, args),
                Action::Forget(addr) => {
                    if let Some(h) = self.links.remove(&addr) {
                        h.cmd_task.abort();
                        if let Some(p) = h.pubsub_task {
                            p.abort();
                        }
                    }
                }
            }
        }
        if self.machine.crashed {
            tracing::warn!("simulated failure: exiting");
            std::process::exit(99);
        }
    }

    fn send(&mut self, out: Outgoing) {
        let sink = self.sink.clone().expect("sink set at start");
        let short = self.machine.myid[..8].to_string();
        let h = self.links.entry(out.addr.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let cmd_task = tokio::spawn(links::command_link(out.addr.clone(), rx, sink.clone(), format!("sentinel-{short}-cmd")));
            LinkHandles { cmd: tx, cmd_task, pubsub_task: None, pubsub_auth: (None, None) }
        });
        // masters and replicas get a pub/sub link too, (re)made when the credentials
        // change (SENTINEL SET auth-pass), as Redis drops the links then
        let auth = (out.auth_user.clone(), out.auth_pass.clone());
        if out.role != Role::Sentinel && (h.pubsub_task.is_none() || h.pubsub_auth != auth) {
            if let Some(old) = h.pubsub_task.take() {
                old.abort();
            }
            let link = links::pubsub_link(out.addr.clone(), auth.0.clone(), auth.1.clone(), sink, format!("sentinel-{short}-pubsub"));
            h.pubsub_task = Some(tokio::spawn(link));
            h.pubsub_auth = auth;
        }
        let token = out.token;
        if self.links[&out.addr].cmd.send(out).is_err() {
            self.machine.on_reply(now_ms(), token, Err(()));
        }
    }

    pub fn publish(&mut self, channel: &str, message: &str) {
        for sub in self.subscribers.values() {
            if sub.channels.contains(channel) {
                let _ = sub.tx.send(PushMsg { channel: channel.to_string(), pattern: None, message: message.to_string() });
            }
            for p in &sub.patterns {
                if string_match(p.as_bytes(), channel.as_bytes(), false) {
                    let _ = sub.tx.send(PushMsg { channel: channel.to_string(), pattern: Some(p.clone()), message: message.to_string() });
                }
            }
        }
    }

    pub fn rewrite_config(&mut self) {
        let _ = self.rewrite_tx.send(self.machine.to_config(&self.base_config));
    }

    /// Writes the config now (SENTINEL FLUSHCONFIG, SHUTDOWN); Err text for the client.
    pub fn flush_config_now(&mut self) -> Result<(), String> {
        let cfg = self.machine.to_config(&self.base_config);
        config::rewrite_file(&self.config_path, &cfg).map_err(|e| e.to_string())?;
        self.machine.config_written();
        Ok(())
    }

    fn run_script(&mut self, path: String, args: Vec<String>) {
        if let Some(dropped) = self.scripts.schedule(path, args) {
            tracing::warn!("script queue full: dropped {}", dropped.argv.join(" "));
        }
        self.service_scripts(now_ms());
    }

    /// Starts the scripts that are due and kills those past `script-max-runtime`
    /// (Redis's sentinelRunPendingScripts / sentinelKillTimedoutScripts).
    pub fn service_scripts(&mut self, now: u64) {
        for kill in self.scripts.timed_out(now, self.machine.timing.script_max_runtime) {
            tracing::warn!("-script-timeout {}", kill.message);
            self.publish("-script-timeout", &kill.message);
            if let Some(tx) = self.script_kills.remove(&kill.id) {
                let _ = tx.send(());
            }
        }
        for job in self.scripts.due(now) {
            self.spawn_script(job, now);
        }
    }

    fn spawn_script(&mut self, job: StartJob, now: u64) {
        let spawned = tokio::process::Command::new(&job.argv[0])
            .args(&job.argv[1..])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                // Redis's child exits with 2 when execve fails: not retried
                tracing::debug!("can't run {}: {e}", job.argv[0]);
                self.script_ended(job.id, 2, 0, now);
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        tracing::trace!("+script-child {pid}");
        self.scripts.started(job.id, pid);
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        self.script_kills.insert(job.id, kill_tx);
        let core = self.myself.clone();
        tokio::spawn(async move {
            use std::os::unix::process::ExitStatusExt;
            let status = tokio::select! {
                st = child.wait() => st,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let (code, signal) = match status {
                Ok(st) => (st.code().unwrap_or(0), st.signal().unwrap_or(0)),
                Err(_) => (0, 9),
            };
            tracing::trace!("-script-child {pid} {code} {signal}");
            if let Some(core) = core.upgrade() {
                core.lock().script_ended(job.id, code, signal, now_ms());
            }
        });
    }

    fn script_ended(&mut self, id: u64, code: i32, signal: i32, now: u64) {
        self.script_kills.remove(&id);
        if let Some(msg) = self.scripts.finished(id, code, signal, now, self.machine.timing.script_retry_delay) {
            tracing::warn!("-script-error {msg}");
            self.publish("-script-error", &msg);
        }
        // a slot is free: start what waits
        self.service_scripts(now);
    }
}

/// Starts the sentinel on the current tokio runtime; returns when SHUTDOWN is called.
pub async fn run(cfg: SentinelConfig, config_path: PathBuf) -> Result<(), ShellError> {
    let now = now_ms();
    let machine = Sentinel::new(&cfg, cfg.port, rand::random(), now);
    let (rewrite_tx, rewrite_rx) = std::sync::mpsc::channel::<config::SentinelConfig>();
    let path = config_path.clone();
    std::thread::Builder::new()
        .name("sentinel-rewrite".into())
        .spawn(move || {
            // coalesce: only the latest content matters
            while let Ok(mut cfg) = rewrite_rx.recv() {
                while let Ok(newer) = rewrite_rx.try_recv() {
                    cfg = newer;
                }
                if let Err(e) = config::rewrite_file(&path, &cfg) {
                    tracing::warn!("{e}");
                }
            }
        })
        .expect("spawn rewrite thread");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let core = Arc::new(Mutex::new(Core {
        machine,
        base_config: cfg.clone(),
        config_path,
        port: cfg.port,
        started: std::time::Instant::now(),
        run_id: config::random_run_id(),
        subscribers: HashMap::new(),
        clients: std::collections::BTreeMap::new(),
        clients_connected: 0,
        pause: None,
        acl_log: Vec::new(),
        total_connections: 0,
        total_commands: 0,
        scripts: ScriptQueue::new(),
        script_kills: HashMap::new(),
        myself: std::sync::Weak::new(),
        shutdown: Some(stop_tx),
        links: HashMap::new(),
        rewrite_tx,
        sink: None,
    }));
    core.lock().myself = Arc::downgrade(&core);
    let weak = Arc::downgrade(&core);
    let sink: links::EventSink = Arc::new(move |ev: LinkEvent| {
        let Some(core) = weak.upgrade() else { return };
        let mut c = core.lock();
        let now = now_ms();
        match ev {
            LinkEvent::Reply { token, reply } => c.machine.on_reply(now, token, reply),
            LinkEvent::Down { addr } => c.machine.on_link_down(now, &addr),
            LinkEvent::Hello { payload } => c.machine.on_hello(now, &payload),
        }
        // act on the new information at once rather than at the next timer tick
        c.machine.tick(now);
        c.pump();
    });
    {
        let mut c = core.lock();
        c.sink = Some(sink);
        // the first rewrite persists a freshly generated myid, as Redis does at start
        c.rewrite_config();
    }
    // `bind ""` is a bind of no address: Redis then listens nowhere and exits.
    if cfg.bind.len() == 1 && cfg.bind[0].is_empty() {
        return Err(ShellError::NotListening);
    }
    let binds: Vec<String> = if cfg.bind.is_empty() { vec!["0.0.0.0".into()] } else { cfg.bind.clone() };
    let mut listeners = Vec::new();
    for b in &binds {
        let host = b.trim_start_matches('-');
        let host = if host == "*" { "0.0.0.0" } else { host };
        let host = if host == "::*" { "::" } else { host };
        match TcpListener::bind((host, cfg.port)).await {
            Ok(l) => listeners.push(l),
            Err(e) if b.starts_with('-') => tracing::warn!("skipping optional bind {b}: {e}"),
            Err(source) => return Err(ShellError::Bind { addr: format!("{host}:{}", cfg.port), source }),
        }
    }
    tracing::info!("Running mode=sentinel, port={}.", cfg.port);
    {
        // Redis's sentinelIsRunning: the id, then a +monitor event per configured master
        let c = core.lock();
        tracing::warn!("Sentinel ID is {}", c.machine.myid);
        for m in &c.machine.masters {
            tracing::warn!("+monitor master {} {} {} quorum {}", m.cfg.name, m.inst.addr.host, m.inst.addr.port, m.cfg.quorum);
        }
    }
    let next_client = Arc::new(AtomicU64::new(1));
    for l in listeners {
        let core = core.clone();
        let next_client = next_client.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, peer)) = l.accept().await else { continue };
                let _ = sock.set_nodelay(true);
                let id = next_client.fetch_add(1, Ordering::Relaxed);
                let core = core.clone();
                tokio::spawn(async move {
                    serve_client(core, sock, id, peer.to_string()).await;
                });
            }
        });
    }
    // the timer: Redis runs it at hz 10; we run it every 10 ms, all work inside is time-gated
    let timer_core = core.clone();
    let timer = tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_millis(10));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            iv.tick().await;
            let mut c = timer_core.lock();
            let now = now_ms();
            c.machine.tick(now);
            c.pump();
            c.service_scripts(now);
        }
    });
    // SHUTDOWN, SIGTERM or SIGINT: save the config and leave, as Redis does
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = stop_rx.changed() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {
            tracing::warn!("Received SIGTERM scheduling shutdown...");
        }
        _ = tokio::signal::ctrl_c() => tracing::warn!("Received SIGINT scheduling shutdown..."),
    }
    timer.abort();
    let mut c = core.lock();
    let _ = c.flush_config_now();
    Ok(())
}

async fn serve_client(core: Shared, mut sock: TcpStream, id: u64, peer: String) {
    use std::os::fd::AsRawFd;
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<PushMsg>();
    let (kill_tx, mut kill_rx) = tokio::sync::oneshot::channel::<()>();
    let laddr = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    // Redis logs connections at `verbose`
    tracing::debug!("Accepted {peer}");
    let authenticated = {
        let mut c = core.lock();
        c.clients_connected += 1;
        c.total_connections += 1;
        let now = std::time::Instant::now();
        c.clients.insert(
            id,
            ClientEntry {
                id,
                addr: peer.clone(),
                laddr: laddr.clone(),
                fd: sock.as_raw_fd(),
                name: String::new(),
                user: "default".into(),
                created: now,
                last_interaction: now,
                sub: 0,
                psub: 0,
                resp: 2,
                last_cmd: "NULL".into(),
                kill: Some(kill_tx),
            },
        );
        // like Redis: a default user without password is logged in from the start
        c.base_config.acl.get("default").is_some_and(|u| u.enabled && u.nopass)
    };
    let mut state = commands::ClientState::new(id, peer, push_tx);
    state.authenticated = authenticated;
    let mut parser = RequestParser::new();
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    'conn: loop {
        tokio::select! {
            // a CLIENT KILL wins over anything the client sent after it
            biased;
            _ = &mut kill_rx => break,
            n = sock.read_buf(&mut rbuf) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                loop {
                    match parser.parse(&mut rbuf) {
                        Ok(Some(args)) => {
                            if args.is_empty() {
                                continue;
                            }
                            // CLIENT PAUSE holds this connection's commands (all, or only
                            // PUBLISH in WRITE mode) until the pause ends or is lifted
                            loop {
                                let wait = core.lock().pause_left(&args[0]);
                                match wait {
                                    Some(left) => tokio::time::sleep(left.min(std::time::Duration::from_millis(10))).await,
                                    None => break,
                                }
                            }
                            for f in commands::dispatch(&core, &mut state, &args) {
                                f.encode(state.proto, &mut out);
                            }
                            if state.close_after_reply {
                                let _ = sock.write_all(&out).await;
                                break 'conn;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            Frame::error(format!("ERR {e}")).encode(state.proto, &mut out);
                            let _ = sock.write_all(&out).await;
                            break 'conn;
                        }
                    }
                }
                if !out.is_empty() {
                    if sock.write_all(&out).await.is_err() {
                        break;
                    }
                    out.clear();
                }
            }
            Some(msg) = push_rx.recv() => {
                let frame = commands::push_frame(&msg, state.proto);
                frame.encode(state.proto, &mut out);
                while let Ok(m) = push_rx.try_recv() {
                    commands::push_frame(&m, state.proto).encode(state.proto, &mut out);
                }
                if sock.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
        }
    }
    let mut c = core.lock();
    c.clients_connected = c.clients_connected.saturating_sub(1);
    c.subscribers.remove(&id);
    c.clients.remove(&id);
    tracing::debug!("Client closed connection id={id}");
}

pub fn request_shutdown(core: &mut Core) {
    if let Some(tx) = core.shutdown.take() {
        let _ = tx.send(true);
    }
}

pub fn proto_from(n: i64) -> Option<ProtocolVersion> {
    match n {
        2 => Some(ProtocolVersion::Resp2),
        3 => Some(ProtocolVersion::Resp3),
        _ => None,
    }
}
