//! The tokio shell around the state machine: the timer, the links to instances, the
//! client port (SENTINEL and friends), event publishing, config rewrites and scripts.

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
use super::machine::{glob_match, Action, Addr, Outgoing, Role, Sentinel};
use crate::resp::{Frame, ProtocolVersion, RequestParser};

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("Could not create server TCP listening socket {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
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

struct LinkHandles {
    cmd: mpsc::UnboundedSender<Outgoing>,
    cmd_task: tokio::task::JoinHandle<()>,
    pubsub_task: Option<tokio::task::JoinHandle<()>>,
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
    pub clients_connected: u64,
    pub total_connections: u64,
    pub total_commands: u64,
    pub running_scripts: u64,
    pub shutdown: Option<tokio::sync::watch::Sender<bool>>,
    links: HashMap<Addr, LinkHandles>,
    rewrite_tx: std::sync::mpsc::Sender<String>,
    sink: Option<links::EventSink>,
}

pub type Shared = Arc<Mutex<Core>>;

impl Core {
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
        if !self.links.contains_key(&out.addr) {
            let (tx, rx) = mpsc::unbounded_channel();
            let short = &self.machine.myid[..8];
            let cmd_task = tokio::spawn(links::command_link(out.addr.clone(), rx, sink.clone(), format!("sentinel-{short}-cmd")));
            let pubsub_task = (out.role != Role::Sentinel).then(|| {
                tokio::spawn(links::pubsub_link(out.addr.clone(), out.auth_user.clone(), out.auth_pass.clone(), sink.clone(), format!("sentinel-{short}-pubsub")))
            });
            self.links.insert(out.addr.clone(), LinkHandles { cmd: tx, cmd_task, pubsub_task });
        }
        let h = &self.links[&out.addr];
        if h.pubsub_task.is_none() && out.role != Role::Sentinel {
            let short = &self.machine.myid[..8];
            let t = tokio::spawn(links::pubsub_link(out.addr.clone(), out.auth_user.clone(), out.auth_pass.clone(), sink, format!("sentinel-{short}-pubsub")));
            self.links.get_mut(&out.addr).unwrap().pubsub_task = Some(t);
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
                if glob_match(p.as_bytes(), channel.as_bytes()) {
                    let _ = sub.tx.send(PushMsg { channel: channel.to_string(), pattern: Some(p.clone()), message: message.to_string() });
                }
            }
        }
    }

    pub fn rewrite_config(&mut self) {
        let cfg = self.machine.to_config(&self.base_config);
        let text = config::render(&cfg);
        let _ = self.rewrite_tx.send(text);
    }

    /// Writes the config now (SENTINEL FLUSHCONFIG, SHUTDOWN); Err text for the client.
    pub fn flush_config_now(&mut self) -> Result<(), String> {
        let cfg = self.machine.to_config(&self.base_config);
        config::write_atomically(&self.config_path, &config::render(&cfg)).map_err(|e| e.to_string())
    }

    fn run_script(&mut self, path: String, args: Vec<String>) {
        self.running_scripts += 1;
        tokio::spawn(async move {
            let child = tokio::process::Command::new(&path).args(&args).kill_on_drop(true).spawn();
            match child {
                Ok(mut c) => {
                    if tokio::time::timeout(Duration::from_secs(60), c.wait()).await.is_err() {
                        tracing::warn!("-script-timeout {path}");
                    }
                }
                Err(e) => tracing::warn!("-script-error {path} {e}"),
            }
        });
    }
}

/// Starts the sentinel on the current tokio runtime; returns when SHUTDOWN is called.
pub async fn run(cfg: SentinelConfig, config_path: PathBuf) -> Result<(), ShellError> {
    let now = now_ms();
    let machine = Sentinel::new(&cfg, cfg.port, rand::random(), now);
    let (rewrite_tx, rewrite_rx) = std::sync::mpsc::channel::<String>();
    let path = config_path.clone();
    std::thread::Builder::new()
        .name("sentinel-rewrite".into())
        .spawn(move || {
            // coalesce: only the latest content matters
            while let Ok(mut text) = rewrite_rx.recv() {
                while let Ok(t) = rewrite_rx.try_recv() {
                    text = t;
                }
                if let Err(e) = config::write_atomically(&path, &text) {
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
        clients_connected: 0,
        total_connections: 0,
        total_commands: 0,
        running_scripts: 0,
        shutdown: Some(stop_tx),
        links: HashMap::new(),
        rewrite_tx,
        sink: None,
    }));
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
        let masters: Vec<String> = c.machine.masters.iter().map(|m| format!("master {} {} {} quorum {}", m.cfg.name, m.inst.addr.host, m.inst.addr.port, m.cfg.quorum)).collect();
        for m in masters {
            tracing::info!("+monitor {m}");
        }
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
    tracing::info!("Sentinel ID is {}", core.lock().machine.myid);
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
            c.machine.tick(now_ms());
            c.pump();
        }
    });
    let _ = stop_rx.changed().await;
    timer.abort();
    let mut c = core.lock();
    let _ = c.flush_config_now();
    Ok(())
}

async fn serve_client(core: Shared, mut sock: TcpStream, id: u64, peer: String) {
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<PushMsg>();
    {
        let mut c = core.lock();
        c.clients_connected += 1;
        c.total_connections += 1;
    }
    let mut state = commands::ClientState::new(id, peer, push_tx);
    let mut parser = RequestParser::new();
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    'conn: loop {
        tokio::select! {
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
