//! The sentinel's decision logic, without any I/O.
//!
//! Inputs: `tick(now)`, replies to the requests it asked for (`on_reply`), hello messages
//! (`on_hello`), link failures (`on_link_down`) and admin commands. Outputs: `Action`s
//! (requests to send, events to publish, config rewrites, scripts to run) drained with
//! `take_actions`. Time is milliseconds of wall clock, given by the caller, as Redis uses
//! `mstime()`; a jump of the clock puts the sentinel in TILT mode.
//!
//! The rules follow Redis Sentinel 7.0 (sentinel.c). Where we are faster, the comment says
//! why it stays safe: quorum for ODOWN, a majority of votes per epoch for leadership and
//! config epochs for propagating the new configuration are all kept.

use crate::server::types::glob::string_match;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{KnownSentinel, MasterConfig, SentinelConfig};
use crate::resp::Frame;

pub const PING_PERIOD: u64 = 1000;
pub const INFO_PERIOD: u64 = 10_000;
pub const FAST_INFO_PERIOD: u64 = 1000;
pub const HELLO_PERIOD: u64 = 2000;
pub const ASK_PERIOD: u64 = 1000;
pub const TILT_TRIGGER: u64 = 2000;
pub const TILT_PERIOD: u64 = 30_000;
pub const ELECTION_TIMEOUT: u64 = 10_000;
pub const SLAVE_RECONF_TIMEOUT: u64 = 10_000;
pub const MIN_LINK_REFRESH: u64 = 1000;
pub const SCRIPT_MAX_RUNTIME: u64 = 60_000;
pub const SCRIPT_RETRY_DELAY: u64 = 30_000;
/// Ours: how often an unreachable or down instance is probed, so a returning one is seen
/// within this delay instead of Redis's 1 s ping / 10 s INFO cycle.
pub const PROBE_PERIOD: u64 = 100;
/// Ours: while our ODOWN opinion waits for the quorum, ask peers this often (Redis: 1 s).
pub const FAST_ASK_PERIOD: u64 = 100;
/// Ours: INFO period on the replica we promoted, while waiting for it to report master.
pub const PROMOTION_INFO_PERIOD: u64 = 50;
/// Ours: after a certain split vote, retry after this random back-off (ms).
pub const SPLIT_BACKOFF_MIN: u64 = 50;
pub const SPLIT_BACKOFF_MAX: u64 = 400;
/// Ours: delay between candidacies of successive sentinels (by run id rank) after ODOWN.
pub const CANDIDATE_STAGGER: u64 = 60;
pub const CANDIDATE_JITTER: u64 = 20;
/// Ours, forced failover: how long the old master's writes are paused, and how long we wait
/// for a replica to reach its offset before choosing anyway.
pub const CATCH_UP_PAUSE: u64 = 5000;
pub const CATCH_UP_WAIT: u64 = 1000;
/// Ours: how long the leader waits for fresh INFO from every replica before selecting one.
pub const SELECT_FRESH_INFO_WAIT: u64 = 300;

/// The timing parameters of Redis's `SENTINEL DEBUG` (milliseconds), as the machine uses
/// them. Defaults are Redis 7.0's, except `min_link_reconnect_period` (see the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub info_period: u64,
    pub ping_period: u64,
    pub ask_period: u64,
    pub publish_period: u64,
    pub default_down_after: u64,
    pub default_failover_timeout: u64,
    pub tilt_trigger: u64,
    pub tilt_period: u64,
    pub slave_reconf_timeout: u64,
    /// The floor of a link's reply timeout (the link is dropped and reconnected after
    /// max(down-after / 2, this)). Redis uses 15 s as the minimum age of a link before it
    /// may be dropped for a late PONG; ours drops hung links sooner, hence 1 s.
    pub min_link_reconnect_period: u64,
    pub election_timeout: u64,
    pub script_max_runtime: u64,
    pub script_retry_delay: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            info_period: INFO_PERIOD,
            ping_period: PING_PERIOD,
            ask_period: ASK_PERIOD,
            publish_period: HELLO_PERIOD,
            default_down_after: super::config::DEFAULT_DOWN_AFTER_MS,
            default_failover_timeout: super::config::DEFAULT_FAILOVER_TIMEOUT_MS,
            tilt_trigger: TILT_TRIGGER,
            tilt_period: TILT_PERIOD,
            slave_reconf_timeout: SLAVE_RECONF_TIMEOUT,
            min_link_reconnect_period: MIN_LINK_REFRESH,
            election_timeout: ELECTION_TIMEOUT,
            script_max_runtime: SCRIPT_MAX_RUNTIME,
            script_retry_delay: SCRIPT_RETRY_DELAY,
        }
    }
}

/// Why `Timing::set` refused a parameter, in Redis's words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    #[error("ERR Unknown option or number of arguments for SENTINEL DEBUG '{0}'")]
    UnknownOption(String),
    #[error("ERR Invalid argument '{value}' for SENTINEL DEBUG '{option}'")]
    InvalidValue { option: String, value: String },
}

impl Timing {
    /// `(NAME, value)` in the order `SENTINEL DEBUG` lists them.
    pub fn list(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("INFO-PERIOD", self.info_period),
            ("PING-PERIOD", self.ping_period),
            ("ASK-PERIOD", self.ask_period),
            ("PUBLISH-PERIOD", self.publish_period),
            ("DEFAULT-DOWN-AFTER", self.default_down_after),
            ("DEFAULT-FAILOVER-TIMEOUT", self.default_failover_timeout),
            ("TILT-TRIGGER", self.tilt_trigger),
            ("TILT-PERIOD", self.tilt_period),
            ("SLAVE-RECONF-TIMEOUT", self.slave_reconf_timeout),
            ("MIN-LINK-RECONNECT-PERIOD", self.min_link_reconnect_period),
            ("ELECTION-TIMEOUT", self.election_timeout),
            ("SCRIPT-MAX-RUNTIME", self.script_max_runtime),
            ("SCRIPT-RETRY-DELAY", self.script_retry_delay),
        ]
    }

    fn slot(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name.to_ascii_lowercase().as_str() {
            "info-period" => &mut self.info_period,
            "ping-period" => &mut self.ping_period,
            "ask-period" => &mut self.ask_period,
            "publish-period" => &mut self.publish_period,
            "default-down-after" => &mut self.default_down_after,
            "default-failover-timeout" => &mut self.default_failover_timeout,
            "tilt-trigger" => &mut self.tilt_trigger,
            "tilt-period" => &mut self.tilt_period,
            "slave-reconf-timeout" => &mut self.slave_reconf_timeout,
            "min-link-reconnect-period" => &mut self.min_link_reconnect_period,
            "election-timeout" => &mut self.election_timeout,
            "script-max-runtime" => &mut self.script_max_runtime,
            "script-retry-delay" => &mut self.script_retry_delay,
            _ => return None,
        })
    }

    /// `SENTINEL DEBUG <param> <ms> [<param> <ms> ...]`: like Redis, parameters before a
    /// bad one stay applied; every value must be a positive integer.
    pub fn set(&mut self, args: &[String]) -> Result<(), TimingError> {
        let mut i = 0;
        while i < args.len() {
            let name = &args[i];
            let Some(value) = args.get(i + 1) else {
                return Err(TimingError::UnknownOption(name.clone()));
            };
            let parsed = value.parse::<i64>().ok().filter(|v| *v > 0);
            let Some(slot) = self.slot(name) else {
                return Err(TimingError::UnknownOption(name.clone()));
            };
            match parsed {
                Some(v) => *slot = v as u64,
                None => return Err(TimingError::InvalidValue { option: name.clone(), value: value.clone() }),
            }
            i += 2;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl Addr {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Addr { host: host.into(), port }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
    Sentinel,
}

/// What the shell must send; the shell maps it to RESP commands (renamed ones included).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Ping,
    Info,
    /// `PUBLISH __sentinel__:hello <ip>,<port>,<rest>`; `ip` None = the local address of the link.
    Hello { announce_ip: Option<String>, announce_port: u16, rest: String },
    /// `SENTINEL is-master-down-by-addr <ip> <port> <epoch> <runid|*>`
    IsMasterDown { ip: String, port: u16, epoch: u64, run_id: String },
    /// `MULTI; SLAVEOF <host port|NO ONE>; CONFIG REWRITE; CLIENT KILL TYPE normal; CLIENT KILL TYPE pubsub; EXEC`
    SlaveOf(Option<Addr>),
    /// Ours, forced failover only: `CLIENT PAUSE <ms> WRITE` on the old master, so the
    /// chosen replica can catch up before promotion and no acknowledged write is lost.
    PauseWrites(u64),
    /// `CLIENT UNPAUSE`, once the paused old master has been pointed at the new one.
    Unpause,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub token: u64,
    pub addr: Addr,
    pub role: Role,
    pub request: Request,
    /// The shell drops the link if the reply takes longer (Redis closes hung links).
    pub timeout_ms: u64,
    pub auth_user: Option<String>,
    pub auth_pass: Option<String>,
    pub renamed: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(Outgoing),
    /// Published on channel `kind`; `warning` events also run the notification script.
    Event { kind: String, message: String, warning: bool, master: String },
    RewriteConfig,
    RunScript { path: String, args: Vec<String> },
    /// The instance is not monitored any more: the shell may close its link.
    Forget(Addr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverState {
    None,
    WaitStart,
    SelectSlave,
    SendSlaveofNoOne,
    WaitPromotion,
    ReconfSlaves,
    UpdateConfig,
}

impl FailoverState {
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverState::None => "none",
            FailoverState::WaitStart => "wait_start",
            FailoverState::SelectSlave => "select_slave",
            FailoverState::SendSlaveofNoOne => "send_slaveof_noone",
            FailoverState::WaitPromotion => "wait_promotion",
            FailoverState::ReconfSlaves => "reconf_slaves",
            FailoverState::UpdateConfig => "update_config",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconf {
    None,
    Sent(u64),
    InProgress,
    Done,
}

/// One monitored instance: a master, one of its replicas, or another sentinel.
#[derive(Debug, Clone)]
pub struct Instance {
    pub role: Role,
    pub addr: Addr,
    /// Replicas: "ip:port"; sentinels: their run id; masters: the master name.
    pub name: String,
    pub run_id: Option<String>,
    pub s_down: bool,
    pub s_down_since: u64,
    pub o_down: bool,
    pub o_down_since: u64,
    pub created: u64,
    // link
    pub act_ping_time: Option<u64>,
    pub disconnected_since: Option<u64>,
    pub last_ping_sent: u64,
    pub last_avail: u64,
    pub last_pong: u64,
    pub ping_pending: u32,
    pub info_pending: bool,
    pub last_hello_sent: u64,
    pub pending_commands: u32,
    // INFO
    pub info_refresh: u64,
    pub info_text: Option<String>,
    pub role_reported: Role,
    pub role_reported_time: u64,
    pub master_host: Option<String>,
    pub master_port: u16,
    pub master_link_up: bool,
    pub master_link_down_ms: u64,
    pub priority: u32,
    pub repl_offset: u64,
    pub replica_announced: bool,
    pub slave_conf_change_time: u64,
    pub s_down_ended: u64,
    // sentinel peers
    pub master_down: bool,
    pub leader: Option<String>,
    pub leader_epoch: u64,
    pub last_hello: u64,
    pub last_master_down_reply: u64,
    pub ask_pending: bool,
    // failover
    pub promoted: bool,
    pub reconf: Reconf,
    /// Ours: this replica entry is the master we switched away from and it has not answered
    /// since; when it comes back claiming master it cannot have been promoted meanwhile
    /// (nobody could reach it), so we convert it at once instead of waiting 8 s.
    pub demoted_old_master: bool,
    pub slaveof_sent: u64,
    /// Redis 7.0's SRI_MASTER_REBOOT: since when a master seen restarting (run id change,
    /// with `master-reboot-down-after-period` set) has not answered PING with PONG; it is
    /// down once that lasts longer than the period (it keeps answering -LOADING).
    pub reboot_since: Option<u64>,
}

impl Instance {
    pub fn new(role: Role, addr: Addr, name: String, now: u64) -> Self {
        Instance {
            role,
            addr,
            name,
            run_id: None,
            s_down: false,
            s_down_since: 0,
            o_down: false,
            o_down_since: 0,
            created: now,
            act_ping_time: None,
            disconnected_since: None,
            last_ping_sent: 0,
            last_avail: now,
            last_pong: now,
            ping_pending: 0,
            info_pending: false,
            last_hello_sent: 0,
            pending_commands: 0,
            info_refresh: 0,
            info_text: None,
            role_reported: role,
            role_reported_time: now,
            master_host: None,
            master_port: 0,
            master_link_up: false,
            master_link_down_ms: 0,
            priority: 100,
            repl_offset: 0,
            replica_announced: true,
            slave_conf_change_time: now,
            s_down_ended: 0,
            master_down: false,
            leader: None,
            leader_epoch: 0,
            last_hello: 0,
            last_master_down_reply: 0,
            ask_pending: false,
            promoted: false,
            reconf: Reconf::None,
            demoted_old_master: false,
            slaveof_sent: 0,
            reboot_since: None,
        }
    }

    pub fn disconnected(&self) -> bool {
        self.disconnected_since.is_some()
    }

    /// Earliest evidence of unavailability: an unanswered ping or a dropped link.
    fn unavailable_since(&self) -> Option<u64> {
        match (self.act_ping_time, self.disconnected_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn flags(&self, failover: Option<(FailoverState, bool)>) -> String {
        let mut f = Vec::new();
        if self.s_down {
            f.push("s_down");
        }
        if self.o_down {
            f.push("o_down");
        }
        f.push(match self.role {
            Role::Master => "master",
            Role::Replica => "slave",
            Role::Sentinel => "sentinel",
        });
        if self.disconnected() {
            f.push("disconnected");
        }
        if self.master_down {
            f.push("master_down");
        }
        if let Some((state, force)) = failover {
            if state != FailoverState::None {
                f.push("failover_in_progress");
            }
            if force && state != FailoverState::None {
                f.push("force_failover");
            }
        }
        if self.promoted {
            f.push("promoted");
        }
        match self.reconf {
            Reconf::Sent(_) => f.push("reconf_sent"),
            Reconf::InProgress => f.push("reconf_inprog"),
            Reconf::Done => f.push("reconf_done"),
            Reconf::None => {}
        }
        f.join(",")
    }
}

#[derive(Debug, Clone)]
pub struct Master {
    pub cfg: MasterConfig,
    pub inst: Instance,
    pub replicas: BTreeMap<Addr, Instance>,
    pub sentinels: Vec<Instance>,
    pub failover_state: FailoverState,
    pub failover_epoch: u64,
    pub failover_start_time: u64,
    pub failover_state_change_time: u64,
    pub force_failover: bool,
    pub promoted: Option<Addr>,
    /// Our vote in `cfg.leader_epoch`.
    pub leader: Option<String>,
    pub select_info_requested: u64,
    /// Ours: when this sentinel may become a candidate for the current ODOWN.
    pub candidate_at: Option<u64>,
    /// Ours, forced failover of a reachable master: writes are paused there; this is
    /// its replication offset after the pause (None until its INFO arrives).
    pub catch_up: Option<Option<u64>>,
}

impl Master {
    fn new(cfg: MasterConfig, now: u64) -> Self {
        let addr = Addr::new(cfg.host.clone(), cfg.port);
        let mut m = Master {
            inst: Instance::new(Role::Master, addr, cfg.name.clone(), now),
            replicas: BTreeMap::new(),
            sentinels: Vec::new(),
            failover_state: FailoverState::None,
            failover_epoch: 0,
            failover_start_time: 0,
            failover_state_change_time: 0,
            force_failover: false,
            promoted: None,
            leader: None,
            select_info_requested: 0,
            candidate_at: None,
            catch_up: None,
            cfg,
        };
        for (h, p) in m.cfg.known_replicas.clone() {
            let a = Addr::new(h, p);
            m.replicas.insert(a.clone(), Instance::new(Role::Replica, a.clone(), a.to_string(), now));
        }
        for s in m.cfg.known_sentinels.clone() {
            let mut i = Instance::new(Role::Sentinel, Addr::new(s.host, s.port), s.run_id.clone(), now);
            i.run_id = Some(s.run_id).filter(|r| !r.is_empty());
            m.sentinels.push(i);
        }
        m
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn in_failover(&self) -> bool {
        self.failover_state != FailoverState::None
    }

    pub fn status(&self) -> &'static str {
        if self.inst.o_down {
            "odown"
        } else if self.inst.s_down {
            "sdown"
        } else {
            "ok"
        }
    }

    /// The address clients should use: the promoted replica once promotion is confirmed.
    pub fn current_addr(&self) -> Addr {
        if matches!(self.failover_state, FailoverState::ReconfSlaves | FailoverState::UpdateConfig) {
            if let Some(p) = &self.promoted {
                return p.clone();
            }
        }
        self.inst.addr.clone()
    }

    fn looks_sane(&self, now: u64, info_period: u64) -> bool {
        self.inst.role_reported == Role::Master
            && !self.inst.s_down
            && !self.inst.o_down
            && self.inst.info_refresh != 0
            && now.saturating_sub(self.inst.info_refresh) < info_period * 2
    }

    fn ping_period(&self, base: u64) -> u64 {
        self.cfg.down_after_ms.min(base)
    }

    fn event_ref(&self) -> String {
        format!("{} {} {}", self.cfg.name, self.inst.addr.host, self.inst.addr.port)
    }
}

/// Who a pending request was for, to route its reply.
#[derive(Debug, Clone)]
struct Pending {
    master: String,
    role: Role,
    key: Addr,
    request: Request,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulateFailure {
    pub crash_after_election: bool,
    pub crash_after_promotion: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AdminError {
    #[error("ERR No such master with that name")]
    NoSuchMaster,
    #[error("INPROG Failover already in progress")]
    InProgress,
    #[error("NOGOODSLAVE No suitable replica to promote")]
    NoGoodSlave,
    #[error("ERR Duplicate master name.")]
    Duplicated,
    #[error("ERR {0}")]
    Other(String),
}

pub struct Sentinel {
    pub myid: String,
    pub current_epoch: u64,
    pub masters: Vec<Master>,
    pub tilt: bool,
    pub tilt_start: u64,
    pub previous_time: u64,
    pub announce_ip: Option<String>,
    pub announce_port: u16,
    pub simulate: SimulateFailure,
    /// `SENTINEL DEBUG` parameters.
    pub timing: Timing,
    /// Candidacy stagger per rank (ms); tests set 0 to force simultaneous candidates.
    pub candidate_stagger: u64,
    pub sentinel_user: Option<String>,
    pub sentinel_pass: Option<String>,
    pub requirepass: Option<String>,
    /// Set when a simulated failure asks the process to exit.
    pub crashed: bool,
    outbox: Vec<Action>,
    pending: HashMap<u64, Pending>,
    next_token: u64,
    rng: StdRng,
}

impl Sentinel {
    /// `cfg.myid` must be set; `own_port` is announced when `announce-port` is 0.
    pub fn new(cfg: &SentinelConfig, own_port: u16, seed: u64, now: u64) -> Self {
        let masters = cfg.masters.iter().map(|m| Master::new(m.clone(), now)).collect();
        Sentinel {
            myid: cfg.myid.clone().unwrap_or_else(super::config::random_run_id),
            current_epoch: cfg.current_epoch,
            masters,
            tilt: false,
            tilt_start: 0,
            previous_time: now,
            announce_ip: cfg.announce_ip.clone(),
            announce_port: if cfg.announce_port != 0 { cfg.announce_port } else { own_port },
            simulate: SimulateFailure::default(),
            timing: Timing::default(),
            candidate_stagger: CANDIDATE_STAGGER,
            sentinel_user: cfg.sentinel_user.clone(),
            sentinel_pass: cfg.sentinel_pass.clone(),
            requirepass: cfg.requirepass.clone(),
            crashed: false,
            outbox: Vec::new(),
            pending: HashMap::new(),
            next_token: 1,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.outbox)
    }

    pub fn master(&self, name: &str) -> Option<&Master> {
        self.masters.iter().find(|m| m.cfg.name == name)
    }

    fn master_idx(&self, name: &str) -> Option<usize> {
        self.masters.iter().position(|m| m.cfg.name == name)
    }

    /// The state as config (for the rewrite), on top of `base` (generic directives).
    pub fn to_config(&self, base: &SentinelConfig) -> SentinelConfig {
        let mut cfg = base.clone();
        cfg.myid = Some(self.myid.clone());
        cfg.current_epoch = self.current_epoch;
        cfg.masters = self
            .masters
            .iter()
            .map(|m| {
                let mut c = m.cfg.clone();
                c.host = m.inst.addr.host.clone();
                c.port = m.inst.addr.port;
                c.known_replicas = m
                    .replicas
                    .keys()
                    .filter(|a| **a != m.inst.addr)
                    .map(|a| (a.host.clone(), a.port))
                    .collect();
                c.known_sentinels = m
                    .sentinels
                    .iter()
                    .map(|s| KnownSentinel { host: s.addr.host.clone(), port: s.addr.port, run_id: s.run_id.clone().unwrap_or_default() })
                    .collect();
                c
            })
            .collect();
        cfg
    }

    // ---------------------------------------------------------------- outputs

    fn event(&mut self, mi: usize, kind: &str, warning: bool, message: String) {
        let master = self.masters[mi].cfg.name.clone();
        if warning {
            if let Some(script) = self.masters[mi].cfg.notification_script.clone() {
                self.outbox.push(Action::RunScript { path: script, args: vec![kind.to_string(), message.clone()] });
            }
        }
        // Redis logs these events as warnings (`#`), the others as notices; only warnings
        // run the notification script
        if warning {
            tracing::warn!(target: "sentinel", "{kind} {message}");
        } else {
            tracing::info!(target: "sentinel", "{kind} {message}");
        }
        self.outbox.push(Action::Event { kind: kind.to_string(), message, warning, master });
    }

    /// `%@` of Redis: "master <name> <ip> <port>" or "<type> <name> <ip> <port> @ <master...>".
    fn ref_master(&self, mi: usize) -> String {
        format!("master {}", self.masters[mi].event_ref())
    }

    fn ref_instance(&self, mi: usize, inst: &Instance) -> String {
        let kind = if inst.role == Role::Sentinel { "sentinel" } else { "slave" };
        format!("{kind} {} {} {} @ {}", inst.name, inst.addr.host, inst.addr.port, self.masters[mi].event_ref())
    }

    fn ref_of(&self, mi: usize, role: Role, key: &Addr) -> String {
        match self.instance(mi, role, key) {
            Some(i) if role != Role::Master => self.ref_instance(mi, i),
            _ => self.ref_master(mi),
        }
    }

    /// The config was just written with the current state: pending rewrites are covered.
    pub fn config_written(&mut self) {
        self.outbox.retain(|a| *a != Action::RewriteConfig);
    }

    fn rewrite(&mut self) {
        if self.outbox.last() != Some(&Action::RewriteConfig) {
            self.outbox.push(Action::RewriteConfig);
        }
    }

    fn send(&mut self, mi: usize, role: Role, key: &Addr, request: Request, timeout_ms: u64) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let m = &self.masters[mi];
        // other sentinels: sentinel-user/sentinel-pass, else our requirepass (as Redis does)
        let (auth_user, auth_pass) = if role == Role::Sentinel {
            match &self.sentinel_pass {
                Some(p) => (self.sentinel_user.clone(), Some(p.clone())),
                None => (None, self.requirepass.clone()),
            }
        } else {
            (m.cfg.auth_user.clone(), m.cfg.auth_pass.clone())
        };
        let out = Outgoing {
            token,
            addr: key.clone(),
            role,
            request: request.clone(),
            timeout_ms: timeout_ms.max(100),
            auth_user,
            auth_pass,
            renamed: if role == Role::Sentinel { Vec::new() } else { m.cfg.renamed_commands.clone() },
        };
        self.pending.insert(token, Pending { master: m.cfg.name.clone(), role, key: key.clone(), request });
        if let Some(i) = self.instance_mut(mi, role, key) {
            i.pending_commands += 1;
        }
        self.outbox.push(Action::Send(out));
        token
    }

    fn instance(&self, mi: usize, role: Role, key: &Addr) -> Option<&Instance> {
        let m = &self.masters[mi];
        match role {
            Role::Master => (m.inst.addr == *key).then_some(&m.inst),
            Role::Replica => m.replicas.get(key),
            Role::Sentinel => m.sentinels.iter().find(|s| s.addr == *key),
        }
    }

    fn instance_mut(&mut self, mi: usize, role: Role, key: &Addr) -> Option<&mut Instance> {
        let m = &mut self.masters[mi];
        match role {
            Role::Master => (m.inst.addr == *key).then_some(&mut m.inst),
            Role::Replica => m.replicas.get_mut(key),
            Role::Sentinel => m.sentinels.iter_mut().find(|s| s.addr == *key),
        }
    }

    fn all_keys(&self, mi: usize) -> Vec<(Role, Addr)> {
        let m = &self.masters[mi];
        let mut v = vec![(Role::Master, m.inst.addr.clone())];
        v.extend(m.replicas.keys().map(|k| (Role::Replica, k.clone())));
        v.extend(m.sentinels.iter().map(|s| (Role::Sentinel, s.addr.clone())));
        v
    }

    // ---------------------------------------------------------------- timer

    /// The periodic work, as Redis's `sentinelTimer`. Call often (every 10-100 ms) and
    /// after inputs; everything inside is gated by time.
    pub fn tick(&mut self, now: u64) {
        self.check_tilt(now);
        for mi in 0..self.masters.len() {
            for (role, key) in self.all_keys(mi) {
                self.periodic_commands(mi, role, &key, now);
            }
            if !self.tilt {
                for (role, key) in self.all_keys(mi) {
                    self.check_subjectively_down(mi, role, &key, now);
                }
                self.check_objectively_down(mi, now);
                if self.start_failover_if_needed(mi, now) {
                    self.ask_other_sentinels(mi, now, true);
                }
                self.failover_state_machine(mi, now);
                self.ask_other_sentinels(mi, now, false);
            }
        }
        // a master in UPDATE_CONFIG switches to the promoted replica (Redis does it after the loop)
        for mi in 0..self.masters.len() {
            if self.masters[mi].failover_state == FailoverState::UpdateConfig {
                self.switch_to_promoted(mi, now);
            }
        }
    }

    fn check_tilt(&mut self, now: u64) {
        let delta = now as i64 - self.previous_time as i64;
        if delta < 0 || delta as u64 > self.timing.tilt_trigger {
            if !self.tilt {
                self.tilt = true;
                self.tilt_start = now;
                for mi in 0..self.masters.len() {
                    self.event(mi, "+tilt", true, "#tilt mode entered".into());
                }
                if self.masters.is_empty() {
                    tracing::warn!("+tilt #tilt mode entered");
                }
            } else {
                self.tilt_start = now;
            }
        }
        self.previous_time = now;
        if self.tilt && now.saturating_sub(self.tilt_start) > self.timing.tilt_period {
            self.tilt = false;
            for mi in 0..self.masters.len() {
                self.event(mi, "-tilt", true, "#tilt mode exited".into());
            }
        }
    }

    fn info_period(&self, mi: usize, role: Role, inst: &Instance) -> u64 {
        let m = &self.masters[mi];
        if m.failover_state == FailoverState::WaitPromotion && m.promoted.as_ref() == Some(&inst.addr) {
            return PROMOTION_INFO_PERIOD;
        }
        // Ours: follow replicas being reconfigured closely, so the failover ends sooner (this
        // comes before the failover's 1 s period, which would otherwise always apply): the
        // sooner it ends, the smaller the window in which losing the promoted replica
        // leaves the leader waiting until failover-timeout
        if matches!(inst.reconf, Reconf::Sent(_) | Reconf::InProgress) {
            return PROBE_PERIOD.min(self.timing.info_period);
        }
        if role == Role::Replica && (m.inst.o_down || m.in_failover() || (inst.master_link_down_ms != 0 && !inst.master_link_up)) {
            return FAST_INFO_PERIOD.min(self.timing.info_period);
        }
        if inst.demoted_old_master || inst.slaveof_sent != 0 {
            return FAST_INFO_PERIOD.min(self.timing.info_period);
        }
        self.timing.info_period
    }

    fn periodic_commands(&mut self, mi: usize, role: Role, key: &Addr, now: u64) {
        let Some(inst) = self.instance(mi, role, key) else { return };
        if inst.pending_commands >= 100 {
            return;
        }
        let down_after = self.masters[mi].cfg.down_after_ms;
        let mut ping_period = self.masters[mi].ping_period(self.timing.ping_period);
        // Ours: probe unreachable instances fast, so a returning one is noticed at once.
        if inst.s_down || inst.disconnected() {
            ping_period = ping_period.min(PROBE_PERIOD);
        }
        let info_period = self.info_period(mi, role, inst);
        let want_info = role != Role::Sentinel
            && !inst.info_pending
            && !inst.disconnected()
            && (inst.info_refresh == 0 || now.saturating_sub(inst.info_refresh) > info_period);
        let want_ping = now.saturating_sub(inst.last_pong) > ping_period
            && now.saturating_sub(inst.last_ping_sent) > ping_period / 2
            && inst.ping_pending < 2;
        let paused_by_us = role == Role::Master && self.masters[mi].force_failover && self.masters[mi].in_failover();
        let want_hello = !paused_by_us
            && !inst.s_down
            && !inst.disconnected()
            && inst.last_avail > 0
            && now.saturating_sub(inst.last_hello_sent) > self.timing.publish_period;
        let link_timeout = (down_after / 2).max(self.timing.min_link_reconnect_period);
        if want_info {
            self.instance_mut(mi, role, key).unwrap().info_pending = true;
            self.send(mi, role, key, Request::Info, link_timeout.max(2000));
        }
        if want_ping {
            let i = self.instance_mut(mi, role, key).unwrap();
            i.last_ping_sent = now;
            i.ping_pending += 1;
            if i.act_ping_time.is_none() {
                i.act_ping_time = Some(now);
            }
            self.send(mi, role, key, Request::Ping, link_timeout);
        }
        if want_hello {
            self.instance_mut(mi, role, key).unwrap().last_hello_sent = now;
            let req = self.hello_request(mi);
            self.send(mi, role, key, req, link_timeout.max(2000));
        }
    }

    fn hello_request(&self, mi: usize) -> Request {
        let m = &self.masters[mi];
        let addr = m.current_addr();
        let rest = format!("{},{},{},{},{},{}", self.myid, self.current_epoch, m.cfg.name, addr.host, addr.port, m.cfg.config_epoch);
        Request::Hello { announce_ip: self.announce_ip.clone(), announce_port: self.announce_port, rest }
    }

    fn check_subjectively_down(&mut self, mi: usize, role: Role, key: &Addr, now: u64) {
        let down_after = self.masters[mi].cfg.down_after_ms;
        let Some(inst) = self.instance(mi, role, key) else { return };
        let elapsed = inst.unavailable_since().map(|t| now.saturating_sub(t)).unwrap_or(0);
        // A master that keeps reporting itself as a replica is down as well (Redis rule).
        let role_mismatch = role == Role::Master
            && inst.role_reported == Role::Replica
            && now.saturating_sub(inst.role_reported_time) > down_after + 2 * self.timing.info_period;
        let reboot_period = self.masters[mi].cfg.master_reboot_down_after_ms;
        let rebooted = role == Role::Master && inst.reboot_since.is_some_and(|t| now.saturating_sub(t) > reboot_period);
        let down = elapsed > down_after || role_mismatch || rebooted;
        if down && !inst.s_down {
            let r = self.ref_of(mi, role, key);
            self.event(mi, "+sdown", true, r);
            let i = self.instance_mut(mi, role, key).unwrap();
            i.s_down = true;
            i.s_down_since = now;
        } else if !down && inst.s_down {
            let r = self.ref_of(mi, role, key);
            self.event(mi, "-sdown", true, r);
            let i = self.instance_mut(mi, role, key).unwrap();
            i.s_down = false;
            i.s_down_ended = now;
        }
    }

    fn check_objectively_down(&mut self, mi: usize, now: u64) {
        let m = &self.masters[mi];
        let mut votes = 0u32;
        let mut odown = false;
        if m.inst.s_down {
            votes = 1 + m.sentinels.iter().filter(|s| s.master_down).count() as u32;
            odown = votes >= m.cfg.quorum;
        }
        if odown && !m.inst.o_down {
            let msg = format!("{} #quorum {}/{}", self.ref_master(mi), votes, m.cfg.quorum);
            self.event(mi, "+odown", true, msg);
            let m = &mut self.masters[mi];
            m.inst.o_down = true;
            m.inst.o_down_since = now;
        } else if !odown && m.inst.o_down {
            let r = self.ref_master(mi);
            self.event(mi, "-odown", true, r);
            self.masters[mi].inst.o_down = false;
        }
    }

    fn ask_other_sentinels(&mut self, mi: usize, now: u64, forced: bool) {
        let m = &self.masters[mi];
        let master_addr = m.inst.addr.clone();
        let s_down = m.inst.s_down;
        let in_failover = m.in_failover();
        let timeout = m.cfg.down_after_ms.max(1000);
        let mut to_ask = Vec::new();
        for s in self.masters[mi].sentinels.iter_mut() {
            if now.saturating_sub(s.last_master_down_reply) > self.timing.ask_period * 5 {
                s.master_down = false;
                s.leader = None;
            }
            if !s_down || s.disconnected() || s.ask_pending {
                continue;
            }
            // Ours: until the peer agrees, ask every 100 ms instead of every second, so
            // ODOWN follows the peers' SDOWN within a tick.
            let period = if s.master_down && !in_failover { self.timing.ask_period } else { FAST_ASK_PERIOD.min(self.timing.ask_period) };
            if !forced && now.saturating_sub(s.last_master_down_reply) < period {
                continue;
            }
            s.ask_pending = true;
            to_ask.push(s.addr.clone());
        }
        let run_id = if in_failover { self.myid.clone() } else { "*".to_string() };
        for addr in to_ask {
            let req = Request::IsMasterDown { ip: master_addr.host.clone(), port: master_addr.port, epoch: self.current_epoch, run_id: run_id.clone() };
            self.send(mi, Role::Sentinel, &addr, req, timeout);
        }
    }

    fn start_failover_if_needed(&mut self, mi: usize, now: u64) -> bool {
        let m = &self.masters[mi];
        if !m.inst.o_down {
            self.masters[mi].candidate_at = None;
            return false;
        }
        if m.in_failover() {
            return false;
        }
        if now < m.failover_start_time + m.cfg.failover_timeout_ms * 2 && m.failover_start_time != 0 {
            return false;
        }
        // Ours: a sentinel that knows no replica at all (its only master INFO came before
        // the replicas connected, and the next is up to 10 s away) does not stand: as
        // leader it would abort with no-good-slave, and the votes it got would block every
        // sentinel for 2 x failover-timeout. It still votes, so a peer that knows the
        // replicas leads. (Known but unpromotable replicas still give Redis's abort.)
        if m.replicas.is_empty() {
            self.masters[mi].candidate_at = None;
            return false;
        }
        // Ours: stagger candidacies by rank of run id among the reachable sentinels, so
        // that sentinels reaching ODOWN in the same millisecond do not split the vote
        // (a split costs Redis election-timeout + 2 x failover-timeout). The lowest id
        // goes at once; a vote request received meanwhile makes us vote and stand down.
        let Some(at) = m.candidate_at else {
            let rank = m.sentinels.iter().filter(|s| !s.s_down && !s.disconnected() && s.run_id.as_deref().is_some_and(|r| r < self.myid.as_str())).count() as u64;
            let jitter = if self.candidate_stagger == 0 { 0 } else { self.rng.gen_range(0..CANDIDATE_JITTER) };
            let at = now + rank * self.candidate_stagger + jitter;
            self.masters[mi].candidate_at = Some(at);
            return self.start_failover_if_needed(mi, now);
        };
        if now < at {
            return false;
        }
        self.masters[mi].candidate_at = None;
        self.start_failover(mi, now, false);
        true
    }

    fn start_failover(&mut self, mi: usize, now: u64, force: bool) {
        self.current_epoch += 1;
        let e = self.current_epoch;
        self.event(mi, "+new-epoch", true, e.to_string());
        let r = self.ref_master(mi);
        self.event(mi, "+try-failover", true, r);
        // Redis adds 0..1000 ms here to desynchronise candidates; we only add 0..100 ms,
        // which is enough (asks are immediate) and only affects when a retry may happen.
        let jitter = self.rng.gen_range(0..100);
        let m = &mut self.masters[mi];
        m.failover_state = FailoverState::WaitStart;
        m.failover_epoch = e;
        m.failover_start_time = now + jitter;
        m.failover_state_change_time = now;
        m.force_failover = force;
        self.rewrite();
    }

    /// Redis's `sentinelVoteLeader`: one vote per epoch, first come first served.
    fn vote_leader(&mut self, mi: usize, req_epoch: u64, req_runid: &str, now: u64) -> (Option<String>, u64) {
        if req_epoch > self.current_epoch {
            self.current_epoch = req_epoch;
            self.rewrite();
            self.event(mi, "+new-epoch", true, req_epoch.to_string());
        }
        let m = &self.masters[mi];
        if m.cfg.leader_epoch < req_epoch && self.current_epoch <= req_epoch {
            let epoch = self.current_epoch;
            let m = &mut self.masters[mi];
            m.leader = Some(req_runid.to_string());
            m.cfg.leader_epoch = epoch;
            self.rewrite();
            self.event(mi, "+vote-for-leader", true, format!("{req_runid} {epoch}"));
            if req_runid != self.myid {
                let jitter = self.rng.gen_range(0..1000);
                self.masters[mi].failover_start_time = now + jitter;
            }
        }
        let m = &self.masters[mi];
        (m.leader.clone(), m.cfg.leader_epoch)
    }

    /// Redis's `sentinelGetLeader`: the winner needs a majority of all known sentinels
    /// (us included) and at least the quorum.
    fn get_leader(&mut self, mi: usize, epoch: u64, now: u64) -> Option<String> {
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for s in &self.masters[mi].sentinels {
            if let Some(l) = &s.leader {
                if s.leader_epoch == epoch {
                    *counts.entry(l.clone()).or_default() += 1;
                }
            }
        }
        let voters = self.masters[mi].sentinels.len() as u32 + 1;
        let best = |counts: &BTreeMap<String, u32>| counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(k, v)| (k.clone(), *v));
        let winner = best(&counts).map(|(k, _)| k);
        let myid = self.myid.clone();
        let (my_vote, my_epoch) = self.vote_leader(mi, epoch, winner.as_deref().unwrap_or(&myid), now);
        if let Some(v) = my_vote {
            if my_epoch == epoch {
                *counts.entry(v).or_default() += 1;
            }
        }
        let (w, votes) = best(&counts)?;
        if votes < voters / 2 + 1 || votes < self.masters[mi].cfg.quorum {
            return None;
        }
        Some(w)
    }

    fn failover_state_machine(&mut self, mi: usize, now: u64) {
        match self.masters[mi].failover_state {
            FailoverState::None | FailoverState::UpdateConfig => {}
            FailoverState::WaitStart => self.failover_wait_start(mi, now),
            FailoverState::SelectSlave => self.failover_select_slave(mi, now),
            FailoverState::SendSlaveofNoOne => self.failover_send_slaveof_noone(mi, now),
            FailoverState::WaitPromotion => {
                let m = &self.masters[mi];
                if now.saturating_sub(m.failover_state_change_time) > m.cfg.failover_timeout_ms {
                    let r = self.ref_master(mi);
                    self.event(mi, "-failover-abort-slave-timeout", true, r);
                    self.abort_failover(mi);
                }
            }
            FailoverState::ReconfSlaves => self.failover_reconf_next_slave(mi, now),
        }
    }

    fn set_state(&mut self, mi: usize, state: FailoverState, now: u64) {
        let m = &mut self.masters[mi];
        m.failover_state = state;
        m.failover_state_change_time = now;
    }

    fn failover_wait_start(&mut self, mi: usize, now: u64) {
        let epoch = self.masters[mi].failover_epoch;
        let leader = self.get_leader(mi, epoch, now);
        let is_leader = leader.as_deref() == Some(self.myid.as_str());
        let m = &self.masters[mi];
        if !is_leader && !m.force_failover {
            let election_timeout = self.timing.election_timeout.min(m.cfg.failover_timeout_ms);
            if now.saturating_sub(m.failover_start_time) > election_timeout {
                let r = self.ref_master(mi);
                self.event(mi, "-failover-abort-not-elected", true, r);
                self.abort_failover(mi);
            } else if self.vote_is_split(mi, epoch) {
                // Ours: every vote of this epoch is known and nobody can reach a majority
                // (candidates voted for themselves at the same moment). Redis waits for the
                // election timeout and then 2 x failover-timeout; we give up this epoch now
                // and may stand again after a short random back-off, in a new epoch.
                let r = self.ref_master(mi);
                self.event(mi, "-failover-abort-not-elected", true, r);
                self.abort_failover(mi);
                let backoff = self.rng.gen_range(SPLIT_BACKOFF_MIN..SPLIT_BACKOFF_MAX);
                let m = &mut self.masters[mi];
                m.failover_start_time = (now + backoff).saturating_sub(m.cfg.failover_timeout_ms * 2);
            }
            return;
        }
        let r = self.ref_master(mi);
        self.event(mi, "+elected-leader", true, r.clone());
        if self.simulate.crash_after_election {
            self.crashed = true;
            return;
        }
        self.set_state(mi, FailoverState::SelectSlave, now);
        self.event(mi, "+failover-state-select-slave", true, r);
        self.request_fresh_replica_info(mi, now);
        self.failover_select_slave(mi, now);
    }

    /// True when the votes known for `epoch` (ours and every peer's) leave no candidate a
    /// chance to reach the majority and the quorum.
    fn vote_is_split(&self, mi: usize, epoch: u64) -> bool {
        let m = &self.masters[mi];
        if m.leader.is_none() || m.cfg.leader_epoch != epoch {
            return false;
        }
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        *counts.entry(m.leader.as_deref().unwrap_or("")).or_default() += 1;
        let mut unknown = 0u32;
        for s in &m.sentinels {
            match &s.leader {
                Some(l) if s.leader_epoch == epoch => *counts.entry(l.as_str()).or_default() += 1,
                _ => unknown += 1,
            }
        }
        let voters = m.sentinels.len() as u32 + 1;
        let needed = (voters / 2 + 1).max(m.cfg.quorum);
        let best = counts.values().copied().max().unwrap_or(0);
        unknown == 0 && best < needed
    }

    /// Ours: before choosing, ask every reachable replica for INFO so the choice uses the
    /// final replication offsets (Redis may use offsets up to 10 s old and pick a replica
    /// that misses acknowledged writes).
    fn request_fresh_replica_info(&mut self, mi: usize, now: u64) {
        self.masters[mi].select_info_requested = now;
        self.masters[mi].catch_up = None;
        let m = &self.masters[mi];
        if m.force_failover && !m.inst.s_down && !m.inst.disconnected() {
            let addr = m.inst.addr.clone();
            // short: a paused master also blocks PUBLISH, so sentinels' links to it stall;
            // under down-after/2 nobody can see it as down because of our pause
            let pause = m.cfg.failover_timeout_ms.min(CATCH_UP_PAUSE).min(m.cfg.down_after_ms / 2).max(100);
            self.masters[mi].catch_up = Some(None);
            self.send(mi, Role::Master, &addr, Request::PauseWrites(pause), 1000);
            self.masters[mi].inst.info_pending = true;
            self.send(mi, Role::Master, &addr, Request::Info, 1000);
        }
        let keys: Vec<Addr> = self.masters[mi].replicas.iter().filter(|(_, r)| !r.s_down && !r.disconnected() && !r.info_pending).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.masters[mi].replicas.get_mut(&k).unwrap().info_pending = true;
            self.send(mi, Role::Replica, &k, Request::Info, 1000);
        }
    }

    pub fn select_slave(&self, mi: usize, now: u64) -> Option<Addr> {
        let m = &self.masters[mi];
        let mut max_master_down = 0;
        if m.inst.s_down {
            max_master_down += now.saturating_sub(m.inst.s_down_since);
        }
        max_master_down += m.cfg.down_after_ms * 10;
        let info_validity = if m.inst.s_down { self.timing.ping_period * 5 } else { self.timing.info_period * 3 };
        let mut cands: Vec<&Instance> = m
            .replicas
            .values()
            .filter(|r| {
                !r.s_down
                    && !r.o_down
                    && !r.disconnected()
                    && now.saturating_sub(r.last_avail) <= self.timing.ping_period * 5
                    && r.priority != 0
                    && r.info_refresh != 0
                    && now.saturating_sub(r.info_refresh) <= info_validity
                    && r.master_link_down_ms <= max_master_down
                    && r.role_reported == Role::Replica
            })
            .collect();
        cands.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(b.repl_offset.cmp(&a.repl_offset))
                .then_with(|| match (&a.run_id, &b.run_id) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
        });
        cands.first().map(|r| r.addr.clone())
    }

    fn failover_select_slave(&mut self, mi: usize, now: u64) {
        let m = &self.masters[mi];
        if let Some(target) = m.catch_up {
            let since = m.select_info_requested;
            let caught_up = target.is_some_and(|t| {
                m.replicas.values().any(|r| r.repl_offset >= t && r.info_refresh >= since && r.priority != 0 && !r.s_down && !r.disconnected())
            });
            let wait = CATCH_UP_WAIT.min(self.masters[mi].cfg.down_after_ms / 2).max(100);
            if !caught_up && now.saturating_sub(since) < wait {
                let keys: Vec<Addr> = m.replicas.iter().filter(|(_, r)| !r.s_down && !r.disconnected() && !r.info_pending).map(|(k, _)| k.clone()).collect();
                for k in keys {
                    self.masters[mi].replicas.get_mut(&k).unwrap().info_pending = true;
                    self.send(mi, Role::Replica, &k, Request::Info, 1000);
                }
                return;
            }
            self.masters[mi].catch_up = None;
        }
        let m = &self.masters[mi];
        let waiting = m.replicas.values().any(|r| r.info_pending && !r.disconnected() && !r.s_down);
        if waiting && now.saturating_sub(m.select_info_requested) < SELECT_FRESH_INFO_WAIT {
            return;
        }
        match self.select_slave(mi, now) {
            None => {
                let r = self.ref_master(mi);
                self.event(mi, "-failover-abort-no-good-slave", true, r);
                self.abort_failover(mi);
            }
            Some(addr) => {
                self.masters[mi].replicas.get_mut(&addr).unwrap().promoted = true;
                self.masters[mi].promoted = Some(addr.clone());
                let r = self.ref_of(mi, Role::Replica, &addr);
                self.event(mi, "+selected-slave", true, r.clone());
                self.set_state(mi, FailoverState::SendSlaveofNoOne, now);
                self.event(mi, "+failover-state-send-slaveof-noone", false, r);
                self.failover_send_slaveof_noone(mi, now);
            }
        }
    }

    fn failover_send_slaveof_noone(&mut self, mi: usize, now: u64) {
        let Some(addr) = self.masters[mi].promoted.clone() else { return };
        let disconnected = self.masters[mi].replicas.get(&addr).map(|r| r.disconnected()).unwrap_or(true);
        if disconnected {
            let m = &self.masters[mi];
            if now.saturating_sub(m.failover_state_change_time) > m.cfg.failover_timeout_ms {
                let r = self.ref_master(mi);
                self.event(mi, "-failover-abort-slave-timeout", true, r);
                self.abort_failover(mi);
            }
            return;
        }
        let timeout = self.masters[mi].cfg.failover_timeout_ms;
        self.send(mi, Role::Replica, &addr, Request::SlaveOf(None), timeout);
        let r = self.ref_of(mi, Role::Replica, &addr);
        self.event(mi, "+failover-state-wait-promotion", false, r);
        self.set_state(mi, FailoverState::WaitPromotion, now);
    }

    fn failover_reconf_next_slave(&mut self, mi: usize, now: u64) {
        let Some(promoted) = self.masters[mi].promoted.clone() else { return };
        let parallel = self.masters[mi].cfg.parallel_syncs.max(1) as usize;
        let mut in_progress = self.masters[mi].replicas.values().filter(|r| matches!(r.reconf, Reconf::Sent(_) | Reconf::InProgress)).count();
        let keys: Vec<Addr> = self.masters[mi].replicas.keys().cloned().collect();
        for k in keys {
            if in_progress >= parallel {
                break;
            }
            let r = &self.masters[mi].replicas[&k];
            if r.promoted || r.reconf == Reconf::Done {
                continue;
            }
            if let Reconf::Sent(t) = r.reconf {
                if now.saturating_sub(t) > self.timing.slave_reconf_timeout {
                    let rr = self.ref_of(mi, Role::Replica, &k);
                    self.event(mi, "-slave-reconf-sent-timeout", false, rr);
                    self.masters[mi].replicas.get_mut(&k).unwrap().reconf = Reconf::Done;
                }
                continue;
            }
            if r.reconf == Reconf::InProgress || r.disconnected() || r.s_down {
                continue;
            }
            let timeout = self.masters[mi].cfg.failover_timeout_ms;
            self.send(mi, Role::Replica, &k, Request::SlaveOf(Some(promoted.clone())), timeout);
            self.masters[mi].replicas.get_mut(&k).unwrap().reconf = Reconf::Sent(now);
            let rr = self.ref_of(mi, Role::Replica, &k);
            self.event(mi, "+slave-reconf-sent", false, rr);
            in_progress += 1;
        }
        self.failover_detect_end(mi, now);
    }

    fn failover_detect_end(&mut self, mi: usize, now: u64) {
        let Some(promoted) = self.masters[mi].promoted.clone() else { return };
        let m = &self.masters[mi];
        let Some(promoted_down) = m.replicas.get(&promoted).map(|p| p.s_down) else { return };
        let timed_out = now.saturating_sub(m.failover_state_change_time) > m.cfg.failover_timeout_ms;
        // Redis waits while the promoted replica is down, even past failover-timeout. If it
        // is gone for good the leader stays in the failover for ever, still monitoring the
        // old master while every other sentinel follows the promoted one (from our hellos);
        // with quorum = all sentinels no later failover can start (Redis 7.0.15 sentinel
        // suite, 00-base "absolute agreement"). Ours: past failover-timeout we end anyway,
        // as on any timeout: the promoted replica did report master and the others already
        // switched to it, so ours joins the configuration they hold.
        if promoted_down && !timed_out {
            return;
        }
        let mut not_reconfigured = m.replicas.values().filter(|r| !r.promoted && r.reconf != Reconf::Done && !r.s_down).count();
        if timed_out {
            not_reconfigured = 0;
            let r = self.ref_master(mi);
            self.event(mi, "+failover-end-for-timeout", true, r);
        }
        if not_reconfigured == 0 {
            let r = self.ref_master(mi);
            self.event(mi, "+failover-end", true, r);
            self.set_state(mi, FailoverState::UpdateConfig, now);
            if timed_out {
                let keys: Vec<Addr> = self.masters[mi].replicas.iter().filter(|(_, r)| !r.promoted && r.reconf == Reconf::None).map(|(k, _)| k.clone()).collect();
                for k in keys {
                    let timeout = self.masters[mi].cfg.failover_timeout_ms;
                    self.send(mi, Role::Replica, &k, Request::SlaveOf(Some(promoted.clone())), timeout);
                    let rr = self.ref_of(mi, Role::Replica, &k);
                    self.event(mi, "+slave-reconf-sent-be", false, rr);
                    self.masters[mi].replicas.get_mut(&k).unwrap().reconf = Reconf::Sent(now);
                }
            }
        }
    }

    fn abort_failover(&mut self, mi: usize) {
        if self.masters[mi].force_failover && !self.masters[mi].inst.s_down {
            let addr = self.masters[mi].inst.addr.clone();
            self.send(mi, Role::Master, &addr, Request::Unpause, 1000);
        }
        let m = &mut self.masters[mi];
        m.failover_state = FailoverState::None;
        m.force_failover = false;
        for r in m.replicas.values_mut() {
            r.reconf = Reconf::None;
            r.promoted = false;
        }
        m.promoted = None;
        m.catch_up = None;
    }

    fn switch_to_promoted(&mut self, mi: usize, now: u64) {
        let Some(new_addr) = self.masters[mi].promoted.clone() else {
            self.abort_failover(mi);
            return;
        };
        let old = self.masters[mi].inst.addr.clone();
        let name = self.masters[mi].cfg.name.clone();
        self.event(mi, "+switch-master", true, format!("{name} {} {} {} {}", old.host, old.port, new_addr.host, new_addr.port));
        self.reset_master_and_change_addr(mi, new_addr, now);
    }

    /// Redis's `sentinelResetMasterAndChangeAddress`: keep sentinels, rebuild the replica
    /// list from the known replicas plus the old master, point the master at `new_addr`.
    fn reset_master_and_change_addr(&mut self, mi: usize, new_addr: Addr, now: u64) {
        let old = self.masters[mi].inst.addr.clone();
        let mut replica_addrs: Vec<Addr> = self.masters[mi].replicas.keys().filter(|a| **a != new_addr).cloned().collect();
        if old != new_addr && !replica_addrs.contains(&old) {
            replica_addrs.push(old.clone());
        }
        let old_master_unreachable = self.masters[mi].inst.s_down || self.masters[mi].inst.disconnected();
        let old_replicas = std::mem::take(&mut self.masters[mi].replicas);
        let m = &mut self.masters[mi];
        let name = m.cfg.name.clone();
        // carry over link state of the new master so it is not considered down meanwhile
        let mut inst = Instance::new(Role::Master, new_addr.clone(), name, now);
        if let Some(prev) = old_replicas.get(&new_addr) {
            inst.run_id = prev.run_id.clone();
            inst.last_avail = prev.last_avail;
            inst.last_pong = prev.last_pong;
        }
        m.inst = inst;
        m.failover_state = FailoverState::None;
        m.failover_state_change_time = 0;
        // A new master may fail over at once: the 2 x failover-timeout hold-off guards
        // against retrying the same failover, not a failover of the master we switched to
        // (Redis's sentinelResetMaster clears it: "We can failover again ASAP").
        m.failover_start_time = 0;
        m.leader = None;
        m.candidate_at = None;
        m.force_failover = false;
        m.promoted = None;
        m.cfg.host = new_addr.host.clone();
        m.cfg.port = new_addr.port;
        for s in m.sentinels.iter_mut() {
            s.master_down = false;
            s.leader = None;
            s.ask_pending = false;
        }
        for a in &replica_addrs {
            let mut r = Instance::new(Role::Replica, a.clone(), a.to_string(), now);
            if let Some(prev) = old_replicas.get(a) {
                r.run_id = prev.run_id.clone();
                r.last_avail = prev.last_avail;
                r.last_pong = prev.last_pong;
                r.disconnected_since = prev.disconnected_since;
            }
            if *a == old {
                // only an old master that was unreachable is converted at once: a reachable
                // one may be promoted again by another sentinel (forced failover, newer epoch)
                // and Redis's 8 s wait lets that sentinel's hello reach us first
                r.demoted_old_master = old_master_unreachable;
                r.disconnected_since = if old_master_unreachable { Some(now) } else { None };
            }
            m.replicas.insert(a.clone(), r);
        }
        for a in replica_addrs {
            let r = self.ref_of(mi, Role::Replica, &a);
            self.event(mi, "+slave", false, r);
        }
        self.rewrite();
    }

    // ---------------------------------------------------------------- inputs

    /// A reply (or `Err` = timeout / link failure) to a request sent with `token`.
    pub fn on_reply(&mut self, now: u64, token: u64, reply: Result<Frame, ()>) {
        let Some(p) = self.pending.remove(&token) else { return };
        let Some(mi) = self.master_idx(&p.master) else { return };
        if let Some(i) = self.instance_mut(mi, p.role, &p.key) {
            i.pending_commands = i.pending_commands.saturating_sub(1);
        } else {
            return;
        }
        match p.request {
            Request::Ping => self.on_ping_reply(mi, p.role, &p.key, now, reply),
            Request::Info => {
                if let Some(i) = self.instance_mut(mi, p.role, &p.key) {
                    i.info_pending = false;
                }
                if let Ok(Frame::Bulk(b) | Frame::Verbatim(_, b)) = reply {
                    let text = String::from_utf8_lossy(&b).into_owned();
                    self.refresh_from_info(mi, p.role, &p.key, &text, now);
                }
            }
            Request::IsMasterDown { .. } => {
                let i = self.instance_mut(mi, p.role, &p.key).unwrap();
                i.ask_pending = false;
                if let Ok(Frame::Array(items)) = reply {
                    if let [Frame::Integer(down), leader, Frame::Integer(epoch)] = items.as_slice() {
                        i.last_master_down_reply = now;
                        i.master_down = *down == 1;
                        if let Some(l) = frame_text(leader) {
                            if l != "*" {
                                i.leader = Some(l);
                                i.leader_epoch = (*epoch).max(0) as u64;
                            }
                        }
                    }
                }
            }
            Request::SlaveOf(_) => {
                // Ours: look at the result at once rather than at the next INFO period.
                if let Some(i) = self.instance_mut(mi, p.role, &p.key) {
                    if reply.is_ok() && !i.info_pending && !i.disconnected() {
                        i.info_pending = true;
                        self.send(mi, p.role, &p.key, Request::Info, 1000);
                    }
                }
            }
            Request::Hello { .. } | Request::PauseWrites(_) | Request::Unpause => {}
        }
    }

    fn on_ping_reply(&mut self, mi: usize, role: Role, key: &Addr, now: u64, reply: Result<Frame, ()>) {
        let Some(i) = self.instance_mut(mi, role, key) else { return };
        i.ping_pending = i.ping_pending.saturating_sub(1);
        let Ok(frame) = reply else { return };
        i.last_pong = now;
        let text = frame_text(&frame).unwrap_or_default();
        let valid = ["PONG", "LOADING", "MASTERDOWN"].iter().any(|p| text.starts_with(p));
        if !valid {
            return;
        }
        let was_unreachable = i.s_down || i.disconnected();
        if text.starts_with("PONG") {
            i.reboot_since = None;
        }
        i.last_avail = now;
        i.act_ping_time = None;
        i.disconnected_since = None;
        // Ours: a returning instance gets INFO at once (Redis waits up to 10 s).
        if was_unreachable && role != Role::Sentinel && !i.info_pending {
            i.info_pending = true;
            self.send(mi, role, key, Request::Info, 2000);
        }
    }

    /// The link to `addr` failed (connection refused, reset or timed out).
    pub fn on_link_down(&mut self, now: u64, addr: &Addr) {
        for mi in 0..self.masters.len() {
            for (role, key) in self.all_keys(mi) {
                if key == *addr {
                    let i = self.instance_mut(mi, role, &key).unwrap();
                    if i.disconnected_since.is_none() {
                        i.disconnected_since = Some(now);
                    }
                }
            }
        }
    }

    fn refresh_from_info(&mut self, mi: usize, role: Role, key: &Addr, text: &str, now: u64) {
        let info = ParsedInfo::parse(text);
        let reboot_period = self.masters[mi].cfg.master_reboot_down_after_ms;
        let Some(inst) = self.instance(mi, role, key) else { return };
        let rebooted = inst.run_id.is_some() && info.run_id.is_some() && inst.run_id != info.run_id;
        let prev_role = inst.role_reported;
        if rebooted {
            let r = self.ref_of(mi, role, key);
            self.event(mi, "+reboot", false, r);
        }
        let new_role = info.role.unwrap_or(prev_role);
        let role_changed = new_role != prev_role;
        {
            let i = self.instance_mut(mi, role, key).unwrap();
            i.info_refresh = now;
            i.info_text = Some(text.to_string());
            if rebooted && role == Role::Master && reboot_period != 0 {
                i.reboot_since = Some(now);
            }
            if info.run_id.is_some() {
                i.run_id = info.run_id.clone();
            }
            if role_changed {
                i.role_reported = new_role;
                i.role_reported_time = now;
            }
            if new_role == Role::Replica {
                if i.master_host != info.master_host || i.master_port != info.master_port {
                    i.slave_conf_change_time = now;
                }
                i.master_host = info.master_host.clone();
                i.master_port = info.master_port;
                i.master_link_up = info.master_link_up;
                i.master_link_down_ms = if info.master_link_up { 0 } else { info.master_link_down_secs.saturating_mul(1000) };
                i.priority = info.priority;
                i.repl_offset = info.repl_offset;
                i.replica_announced = info.replica_announced;
            }
        }
        if role_changed {
            let expected = if role == Role::Master { Role::Master } else { Role::Replica };
            let kind = if new_role == expected { "+role-change" } else { "-role-change" };
            let name = if new_role == Role::Master { "master" } else { "slave" };
            let r = self.ref_of(mi, role, key);
            self.event(mi, kind, false, format!("{r} new reported role is {name}"));
        }
        if role == Role::Master && self.masters[mi].catch_up == Some(None) && self.masters[mi].failover_state == FailoverState::SelectSlave {
            self.masters[mi].catch_up = Some(Some(info.master_repl_offset));
        }
        // replicas discovered from the master's INFO
        if role == Role::Master && new_role == Role::Master {
            let mut added = false;
            for (h, p) in &info.slaves {
                let a = Addr::new(h.clone(), *p);
                if !self.masters[mi].replicas.contains_key(&a) {
                    self.masters[mi].replicas.insert(a.clone(), Instance::new(Role::Replica, a.clone(), a.to_string(), now));
                    let r = self.ref_of(mi, Role::Replica, &a);
                    self.event(mi, "+slave", false, r);
                    added = true;
                }
            }
            if added {
                self.rewrite();
            }
        }
        if self.tilt {
            return;
        }
        if role != Role::Replica {
            return;
        }
        let m = &self.masters[mi];
        let r = &m.replicas[key];
        let master_addr = m.inst.addr.clone();
        // the promoted replica now reports master: the failover goes on
        if new_role == Role::Master {
            if r.promoted && m.failover_state == FailoverState::WaitPromotion {
                let epoch = m.failover_epoch;
                self.masters[mi].cfg.config_epoch = epoch;
                self.set_state(mi, FailoverState::ReconfSlaves, now);
                let rr = self.ref_of(mi, Role::Replica, key);
                self.event(mi, "+promoted-slave", true, rr);
                if self.simulate.crash_after_promotion {
                    self.crashed = true;
                    return;
                }
                let rm = self.ref_master(mi);
                self.event(mi, "+failover-state-reconf-slaves", true, rm);
                self.client_reconfig_script(mi, "leader", &master_addr, key);
                // Ours, forced failover: the old master is alive and write-paused; point it at
                // the new master now (Redis waits for the switch plus 8 s), which also kills
                // its client connections so writers move to the new master at once.
                let m = &self.masters[mi];
                if m.force_failover && !m.inst.s_down && !m.inst.disconnected() {
                    let old = m.inst.addr.clone();
                    let timeout = m.cfg.failover_timeout_ms;
                    self.send(mi, Role::Master, &old, Request::SlaveOf(Some(key.clone())), timeout);
                    self.send(mi, Role::Master, &old, Request::Unpause, timeout);
                }
                self.rewrite();
                self.force_hello(mi);
                self.failover_reconf_next_slave(mi, now);
                return;
            }
            // a replica (e.g. the returning old master) claims to be master: convert it
            let wait = if r.demoted_old_master { 0 } else { self.timing.publish_period * 4 };
            let no_down_for = r.s_down_ended == 0 || now.saturating_sub(r.s_down_ended) > wait;
            if !r.promoted
                && !m.in_failover()
                && m.looks_sane(now, self.timing.info_period)
                && !r.s_down
                && (r.demoted_old_master || no_down_for)
                && now.saturating_sub(r.role_reported_time) >= wait
                && now.saturating_sub(r.slaveof_sent) > 1000
            {
                let rr = self.ref_of(mi, Role::Replica, key);
                self.event(mi, "+convert-to-slave", false, rr);
                let i = self.masters[mi].replicas.get_mut(key).unwrap();
                i.slaveof_sent = now;
                let timeout = self.masters[mi].cfg.failover_timeout_ms;
                self.send(mi, Role::Replica, key, Request::SlaveOf(Some(master_addr)), timeout);
            }
            return;
        }
        // from here the replica reports role slave
        let points_to_master = r.master_host.as_deref() == Some(master_addr.host.as_str()) && r.master_port == master_addr.port;
        if r.demoted_old_master {
            self.masters[mi].replicas.get_mut(key).unwrap().demoted_old_master = false;
        }
        let m = &self.masters[mi];
        let r = &m.replicas[key];
        if !points_to_master && !m.in_failover() {
            let wait = m.cfg.failover_timeout_ms;
            if m.looks_sane(now, self.timing.info_period)
                && !r.s_down
                && (r.s_down_ended == 0 || now.saturating_sub(r.s_down_ended) > wait)
                && now.saturating_sub(r.slave_conf_change_time) > wait
                && now.saturating_sub(r.slaveof_sent) > wait
            {
                let rr = self.ref_of(mi, Role::Replica, key);
                self.event(mi, "+fix-slave-config", false, rr);
                self.masters[mi].replicas.get_mut(key).unwrap().slaveof_sent = now;
                let timeout = self.masters[mi].cfg.failover_timeout_ms;
                self.send(mi, Role::Replica, key, Request::SlaveOf(Some(master_addr)), timeout);
            }
            return;
        }
        if points_to_master {
            self.masters[mi].replicas.get_mut(key).unwrap().slaveof_sent = 0;
        }
        // reconfiguration progress during our failover
        let m = &self.masters[mi];
        if m.failover_state == FailoverState::ReconfSlaves {
            let promoted = m.promoted.clone();
            let r = &m.replicas[key];
            let to_promoted = promoted.as_ref().is_some_and(|p| r.master_host.as_deref() == Some(p.host.as_str()) && r.master_port == p.port);
            if to_promoted {
                if matches!(r.reconf, Reconf::Sent(_)) {
                    self.masters[mi].replicas.get_mut(key).unwrap().reconf = Reconf::InProgress;
                    let rr = self.ref_of(mi, Role::Replica, key);
                    self.event(mi, "+slave-reconf-inprog", false, rr);
                }
                let r = &self.masters[mi].replicas[key];
                if r.reconf == Reconf::InProgress && r.master_link_up {
                    self.masters[mi].replicas.get_mut(key).unwrap().reconf = Reconf::Done;
                    let rr = self.ref_of(mi, Role::Replica, key);
                    self.event(mi, "+slave-reconf-done", false, rr);
                }
            }
            self.failover_reconf_next_slave(mi, now);
        }
    }

    fn client_reconfig_script(&mut self, mi: usize, role: &str, from: &Addr, to: &Addr) {
        if let Some(script) = self.masters[mi].cfg.client_reconfig_script.clone() {
            let name = self.masters[mi].cfg.name.clone();
            self.outbox.push(Action::RunScript {
                path: script,
                args: vec![name, role.into(), "start".into(), from.host.clone(), from.port.to_string(), to.host.clone(), to.port.to_string()],
            });
        }
    }

    /// Send hello to every instance of the master at the next tick (Redis does this after
    /// a promotion so the other sentinels learn the new configuration at once).
    fn force_hello(&mut self, mi: usize) {
        let m = &mut self.masters[mi];
        m.inst.last_hello_sent = 0;
        for r in m.replicas.values_mut() {
            r.last_hello_sent = 0;
        }
        for s in m.sentinels.iter_mut() {
            s.last_hello_sent = 0;
        }
    }

    /// A message from `__sentinel__:hello` (received on any instance link, or a PUBLISH
    /// sent to us directly by another sentinel).
    pub fn on_hello(&mut self, now: u64, payload: &str) {
        let t: Vec<&str> = payload.split(',').collect();
        if t.len() != 8 {
            return;
        }
        let (Ok(port), Ok(cur_epoch), Ok(m_port), Ok(m_epoch)) = (t[1].parse::<u16>(), t[3].parse::<u64>(), t[6].parse::<u16>(), t[7].parse::<u64>()) else {
            return;
        };
        let (ip, runid, name, m_ip) = (t[0], t[2], t[4], t[5]);
        if runid == self.myid {
            return;
        }
        let Some(mi) = self.master_idx(name) else { return };
        let addr = Addr::new(ip, port);
        let known = self.masters[mi].sentinels.iter().position(|s| s.addr == addr && s.run_id.as_deref() == Some(runid));
        let si = match known {
            Some(i) => i,
            None => {
                // drop entries with the same run id or address (restarted / moved sentinel)
                let dups: Vec<Instance> = self.masters[mi].sentinels.iter().filter(|s| s.run_id.as_deref() == Some(runid) || s.addr == addr).cloned().collect();
                for d in &dups {
                    let r = self.ref_instance(mi, d);
                    self.event(mi, "-dup-sentinel", false, format!("{r} #duplicate of {addr} or {runid}"));
                }
                self.masters[mi].sentinels.retain(|s| !(s.run_id.as_deref() == Some(runid) || s.addr == addr));
                let mut inst = Instance::new(Role::Sentinel, addr.clone(), runid.to_string(), now);
                inst.run_id = Some(runid.to_string());
                self.masters[mi].sentinels.push(inst);
                let idx = self.masters[mi].sentinels.len() - 1;
                let r = self.ref_instance(mi, &self.masters[mi].sentinels[idx]);
                self.event(mi, "+sentinel", false, r);
                self.rewrite();
                idx
            }
        };
        if self.current_epoch < cur_epoch {
            self.current_epoch = cur_epoch;
            self.rewrite();
            self.event(mi, "+new-epoch", true, cur_epoch.to_string());
        }
        if self.masters[mi].cfg.config_epoch < m_epoch {
            self.masters[mi].cfg.config_epoch = m_epoch;
            let new_addr = Addr::new(m_ip, m_port);
            let old = self.masters[mi].inst.addr.clone();
            if old != new_addr {
                let r = self.ref_instance(mi, &self.masters[mi].sentinels[si]);
                self.event(mi, "+config-update-from", true, r);
                let n = name.to_string();
                self.event(mi, "+switch-master", true, format!("{n} {} {} {} {}", old.host, old.port, new_addr.host, new_addr.port));
                self.client_reconfig_script(mi, "observer", &old, &new_addr);
                self.reset_master_and_change_addr(mi, new_addr, now);
            }
            self.rewrite();
        }
        self.masters[mi].sentinels[si].last_hello = now;
    }

    // ---------------------------------------------------------------- admin commands

    /// `SENTINEL is-master-down-by-addr <ip> <port> <epoch> <runid>`: (down, leader, epoch).
    pub fn is_master_down_by_addr(&mut self, now: u64, ip: &str, port: u16, epoch: u64, runid: &str) -> (bool, String, u64) {
        let Some(mi) = self.masters.iter().position(|m| m.inst.addr.host == ip && m.inst.addr.port == port) else {
            return (false, "*".into(), 0);
        };
        let down = !self.tilt && self.masters[mi].inst.s_down;
        if runid == "*" {
            return (down, "*".into(), 0);
        }
        let (leader, leader_epoch) = self.vote_leader(mi, epoch, runid, now);
        (down, leader.unwrap_or_else(|| "*".into()), leader_epoch)
    }

    /// `SENTINEL FAILOVER <name>`: a forced failover, no agreement needed.
    pub fn failover(&mut self, now: u64, name: &str) -> Result<(), AdminError> {
        let mi = self.master_idx(name).ok_or(AdminError::NoSuchMaster)?;
        if self.masters[mi].in_failover() {
            return Err(AdminError::InProgress);
        }
        if self.select_slave(mi, now).is_none() {
            return Err(AdminError::NoGoodSlave);
        }
        self.start_failover(mi, now, true);
        Ok(())
    }

    /// `SENTINEL RESET <pattern>`: number of masters reset.
    pub fn reset(&mut self, now: u64, pattern: &str) -> usize {
        let mut n = 0;
        for mi in 0..self.masters.len() {
            if string_match(pattern.as_bytes(), self.masters[mi].cfg.name.as_bytes(), false) {
                let r = self.ref_master(mi);
                self.event(mi, "+reset-master", true, r);
                let addrs: Vec<Addr> = self.all_keys(mi).into_iter().filter(|(r, _)| *r != Role::Master).map(|(_, a)| a).collect();
                for a in addrs {
                    self.outbox.push(Action::Forget(a));
                }
                let mut cfg = self.masters[mi].cfg.clone();
                cfg.known_replicas.clear();
                cfg.known_sentinels.clear();
                cfg.leader_epoch = 0;
                self.masters[mi] = Master::new(cfg, now);
                n += 1;
            }
        }
        if n > 0 {
            self.rewrite();
        }
        n
    }

    pub fn monitor(&mut self, now: u64, cfg: MasterConfig) -> Result<(), AdminError> {
        if self.master_idx(&cfg.name).is_some() {
            return Err(AdminError::Duplicated);
        }
        self.masters.push(Master::new(cfg, now));
        let mi = self.masters.len() - 1;
        let q = self.masters[mi].cfg.quorum;
        let r = self.ref_master(mi);
        self.event(mi, "+monitor", true, format!("{r} quorum {q}"));
        self.rewrite();
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<(), AdminError> {
        let mi = self.master_idx(name).ok_or(AdminError::NoSuchMaster)?;
        let r = self.ref_master(mi);
        self.event(mi, "-monitor", true, r);
        for (_, a) in self.all_keys(mi) {
            self.outbox.push(Action::Forget(a));
        }
        self.masters.remove(mi);
        self.rewrite();
        Ok(())
    }

    /// Applies `SENTINEL SET` after validation by the caller; emits `+set`.
    pub fn set_option(&mut self, name: &str, f: impl FnOnce(&mut MasterConfig), what: &str) -> Result<(), AdminError> {
        let mi = self.master_idx(name).ok_or(AdminError::NoSuchMaster)?;
        f(&mut self.masters[mi].cfg);
        let r = self.ref_master(mi);
        self.event(mi, "+set", true, format!("{r} {what}"));
        self.rewrite();
        Ok(())
    }

    pub fn master_index(&self, name: &str) -> Option<usize> {
        self.master_idx(name)
    }

    /// `SENTINEL CKQUORUM`: Ok(usable sentinels) or the Redis error text.
    pub fn ckquorum(&self, name: &str, now: u64) -> Result<String, String> {
        let mi = self.master_idx(name).ok_or("ERR No such master with that name")?;
        let m = &self.masters[mi];
        let voters = m.sentinels.len() + 1;
        let usable = 1 + m.sentinels.iter().filter(|s| !s.s_down && !s.o_down && now.saturating_sub(s.last_avail) < 5 * self.timing.ping_period).count();
        let mut problems = Vec::new();
        if usable < m.cfg.quorum as usize {
            problems.push(format!("{} usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master", usable));
        }
        if usable < voters / 2 + 1 {
            problems.push(format!("{} usable Sentinels. Not enough available Sentinels to reach the majority and authorize a failover", usable));
        }
        if problems.is_empty() {
            Ok(format!("OK {usable} usable Sentinels. Quorum and failover authorization can be reached"))
        } else {
            Err(format!("NOQUORUM {}", problems.join(". ")))
        }
    }
}

/// A string-ish reply as text (simple, bulk, error, integer).
pub fn frame_text(f: &Frame) -> Option<String> {
    match f {
        Frame::Simple(s) | Frame::Error(s) => Some(s.clone()),
        Frame::Bulk(b) | Frame::Verbatim(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The fields of INFO the sentinel uses.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedInfo {
    pub run_id: Option<String>,
    pub role: Option<Role>,
    pub master_host: Option<String>,
    pub master_port: u16,
    pub master_link_up: bool,
    pub master_link_down_secs: u64,
    pub priority: u32,
    pub repl_offset: u64,
    pub master_repl_offset: u64,
    pub replica_announced: bool,
    pub slaves: Vec<(String, u16)>,
}

impl ParsedInfo {
    pub fn parse(text: &str) -> ParsedInfo {
        let mut p = ParsedInfo { priority: 100, replica_announced: true, ..Default::default() };
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((k, v)) = line.split_once(':') else { continue };
            match k {
                "run_id" if v.len() == 40 => p.run_id = Some(v.to_string()),
                "role" => {
                    p.role = match v {
                        "master" => Some(Role::Master),
                        "slave" => Some(Role::Replica),
                        _ => None,
                    }
                }
                "master_host" => p.master_host = Some(v.to_string()),
                "master_port" => p.master_port = v.parse().unwrap_or(0),
                "master_link_status" => p.master_link_up = v == "up",
                "master_link_down_since_seconds" => p.master_link_down_secs = v.parse::<i64>().unwrap_or(0).max(0) as u64,
                "slave_priority" | "replica_priority" => p.priority = v.parse().unwrap_or(100),
                "slave_repl_offset" => p.repl_offset = v.parse().unwrap_or(0),
                "master_repl_offset" => p.master_repl_offset = v.parse().unwrap_or(0),
                "replica_announced" => p.replica_announced = v != "0",
                k if k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit()) && k.len() > 5 => {
                    // slave0:ip=127.0.0.1,port=6380,state=online,offset=..,lag=0 (old form: ip,port,state)
                    let mut ip = None;
                    let mut port = None;
                    if v.contains('=') {
                        for kv in v.split(',') {
                            if let Some((a, b)) = kv.split_once('=') {
                                match a {
                                    "ip" => ip = Some(b.to_string()),
                                    "port" => port = b.parse::<u16>().ok(),
                                    _ => {}
                                }
                            }
                        }
                    } else {
                        let f: Vec<&str> = v.split(',').collect();
                        if f.len() >= 2 {
                            ip = Some(f[0].to_string());
                            port = f[1].parse().ok();
                        }
                    }
                    if let (Some(ip), Some(port)) = (ip, port) {
                        if port != 0 {
                            p.slaves.push((ip, port));
                        }
                    }
                }
                _ => {}
            }
        }
        p
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=42,lag=0\r\nslave1:ip=127.0.0.1,port=6381,state=online,offset=42,lag=1\r\nrun_id:0123456789012345678901234567890123456789\r\n";
        let p = ParsedInfo::parse(info);
        assert_eq!(p.role, Some(Role::Master));
        assert_eq!(p.slaves, vec![("127.0.0.1".into(), 6380), ("127.0.0.1".into(), 6381)]);
        assert_eq!(p.run_id.as_deref(), Some("0123456789012345678901234567890123456789"));
        let r = ParsedInfo::parse("role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_link_down_since_seconds:3\r\nslave_priority:0\r\nslave_repl_offset:99\r\n");
        assert_eq!((r.role, r.master_port, r.master_link_up, r.master_link_down_secs, r.priority, r.repl_offset), (Some(Role::Replica), 6379, false, 3, 0, 99));
    }

    fn one_master(timing: Timing, now: u64) -> Sentinel {
        let cfg = super::super::config::parse(&format!("sentinel myid {}\nsentinel monitor m 127.0.0.1 6379 2\n", "a".repeat(40))).unwrap();
        let mut s = Sentinel::new(&cfg, 26379, 7, now);
        s.timing = timing;
        s
    }

    fn info_requests(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(o) if o.request == Request::Info => Some(o.token),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn debug_info_period_sets_how_often_info_is_asked() {
        for (info_period, expect_second_info) in [(INFO_PERIOD, false), (500, true)] {
            let t0 = 1_000_000;
            let mut s = one_master(Timing { info_period, ..Timing::default() }, t0);
            s.tick(t0);
            let first = info_requests(&s.take_actions());
            assert_eq!(first.len(), 1);
            s.on_reply(t0, first[0], Ok(Frame::bulk("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n")));
            s.take_actions();
            // ticks below the tilt trigger, 600 ms after the reply
            s.tick(t0 + 300);
            s.tick(t0 + 600);
            let again = info_requests(&s.take_actions());
            assert_eq!(!again.is_empty(), expect_second_info, "info-period {info_period}");
        }
    }

    #[test]
    fn debug_tilt_trigger_and_period_drive_tilt_mode() {
        let t0 = 1_000_000;
        let mut s = one_master(Timing::default(), t0);
        s.tick(t0);
        s.tick(t0 + 5000);
        assert!(s.tilt, "a 5 s jump exceeds the default 2 s trigger");
        let mut s = one_master(Timing { tilt_trigger: 10_000, ..Timing::default() }, t0);
        s.tick(t0);
        s.tick(t0 + 5000);
        assert!(!s.tilt, "a 10 s trigger tolerates it");
        let mut s = one_master(Timing { tilt_period: 1000, ..Timing::default() }, t0);
        s.tick(t0);
        s.tick(t0 + 5000);
        assert!(s.tilt);
        let mut t = t0 + 5000;
        for _ in 0..12 {
            t += 100;
            s.tick(t);
        }
        assert!(!s.tilt, "left after the 1 s tilt period");
        let events: Vec<String> = s.take_actions().into_iter().filter_map(|a| if let Action::Event { kind, .. } = a { Some(kind) } else { None }).collect();
        assert!(events.contains(&"-tilt".to_string()), "{events:?}");
    }

    #[test]
    fn debug_parameters_are_validated_as_redis() {
        let mut t = Timing::default();
        assert_eq!(t.list().len(), 13);
        t.set(&["info-period".into(), "5000".into(), "PING-PERIOD".into(), "900".into()]).unwrap();
        assert_eq!((t.info_period, t.ping_period), (5000, 900));
        assert_eq!(
            t.set(&["info-period".into(), "-1".into()]).unwrap_err().to_string(),
            "ERR Invalid argument '-1' for SENTINEL DEBUG 'info-period'"
        );
        assert_eq!(t.set(&["foo".into(), "1".into()]).unwrap_err().to_string(), "ERR Unknown option or number of arguments for SENTINEL DEBUG 'foo'");
        assert_eq!(t.set(&["info-period".into()]).unwrap_err().to_string(), "ERR Unknown option or number of arguments for SENTINEL DEBUG 'info-period'");
        assert_eq!(t.info_period, 5000, "a failed call keeps what was set");
    }
}
