//! A deterministic simulated world for the sentinel state machine: simulated Redis
//! instances (with instant replication), sentinels, a clock and a lossy, delaying,
//! partitionable network. One seed = one reproducible run.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::cmp::Reverse;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis_failover::sentinel::config::{self, SentinelConfig};
use redis_failover::sentinel::machine::{Action, Addr, Request, Sentinel};
use redis_failover::resp::Frame;

#[derive(Debug, Clone, PartialEq)]
pub enum SimRole {
    Master,
    Replica(Addr),
}

#[derive(Debug, Clone)]
pub struct SimRedis {
    pub addr: Addr,
    pub alive: bool,
    pub role: SimRole,
    pub offset: u64,
    pub run_id: String,
    pub priority: u32,
    pub link_up: bool,
    pub link_down_since: u64,
    /// until then PING gets -LOADING (a restart loading its dataset); INFO still answers
    pub loading_until: u64,
}

pub struct SimSentinel {
    pub addr: Addr,
    pub machine: Option<Sentinel>,
    pub clock_offset: i64,
    pub saved_config: SentinelConfig,
    pub events: Vec<(u64, String, String)>,
}

enum Msg {
    /// A request arriving at its target.
    Deliver { from: usize, token: u64, target: Addr, request: Request },
    /// A reply arriving back at the sentinel `to`.
    Reply { to: usize, token: u64, reply: Result<Frame, ()>, link_down: Option<Addr> },
    Hello { to: usize, payload: String },
    LinkDown { to: usize, addr: Addr },
}

pub struct Promotion {
    pub epoch: u64,
    pub by: usize,
    pub target: Addr,
    pub at: u64,
    pub target_offset: u64,
    pub best_offset: u64,
}

pub struct World {
    pub now: u64,
    pub rng: StdRng,
    pub redis: Vec<SimRedis>,
    pub sentinels: Vec<SimSentinel>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    msgs: HashMap<u64, Msg>,
    seq: u64,
    pub loss: f64,
    pub max_latency: u64,
    /// blocked pairs of addresses (both directions)
    pub partitions: BTreeSet<(Addr, Addr)>,
    pub promotions: Vec<Promotion>,
    pub elected: Vec<(u64, usize)>,
}

pub const MASTER_NAME: &str = "mymaster";

impl World {
    /// 1 master + `replicas` replicas + `sentinels` sentinels, quorum, down-after.
    pub fn new(seed: u64, replicas: usize, sentinels: usize, quorum: u32, down_after: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut redis = Vec::new();
        let master = Addr::new("10.0.0.1", 6379);
        for i in 0..=replicas {
            let addr = Addr::new(format!("10.0.0.{}", i + 1), 6379);
            redis.push(SimRedis {
                addr: addr.clone(),
                alive: true,
                role: if i == 0 { SimRole::Master } else { SimRole::Replica(master.clone()) },
                offset: 0,
                run_id: hex40(&mut rng),
                priority: 100,
                link_up: i != 0,
                link_down_since: 0,
                loading_until: 0,
            });
        }
        let now = 1_700_000_000_000u64;
        let mut sims = Vec::new();
        for i in 0..sentinels {
            let mut cfg = config::parse(&format!(
                "port 26379\nsentinel monitor {MASTER_NAME} 10.0.0.1 6379 {quorum}\nsentinel down-after-milliseconds {MASTER_NAME} {down_after}\nsentinel failover-timeout {MASTER_NAME} 10000\n"
            ))
            .unwrap();
            cfg.myid = Some(hex40(&mut rng));
            let addr = Addr::new(format!("10.0.1.{}", i + 1), 26379);
            cfg.announce_ip = Some(addr.host.clone());
            let machine = Sentinel::new(&cfg, 26379, rng.gen(), now);
            sims.push(SimSentinel { addr, machine: Some(machine), clock_offset: 0, saved_config: cfg, events: Vec::new() });
        }
        World {
            now,
            rng,
            redis,
            sentinels: sims,
            queue: BinaryHeap::new(),
            msgs: HashMap::new(),
            seq: 0,
            loss: 0.0,
            max_latency: 2,
            partitions: BTreeSet::new(),
            promotions: Vec::new(),
            elected: Vec::new(),
        }
    }

    fn push(&mut self, at: u64, msg: Msg) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.msgs.insert(self.seq, msg);
    }

    fn latency(&mut self) -> u64 {
        self.rng.gen_range(0..=self.max_latency)
    }

    fn blocked(&self, a: &Addr, b: &Addr) -> bool {
        self.partitions.contains(&(a.clone(), b.clone())) || self.partitions.contains(&(b.clone(), a.clone()))
    }

    pub fn partition(&mut self, a: &Addr, b: &Addr) {
        self.partitions.insert((a.clone(), b.clone()));
    }

    pub fn heal(&mut self) {
        self.partitions.clear();
    }

    fn sentinel_now(&self, i: usize) -> u64 {
        (self.now as i64 + self.sentinels[i].clock_offset) as u64
    }

    pub fn redis_idx(&self, a: &Addr) -> Option<usize> {
        self.redis.iter().position(|r| r.addr == *a)
    }

    /// SIGKILL: the process dies and every sentinel's TCP link to it is closed.
    pub fn kill_redis(&mut self, i: usize) {
        self.redis[i].alive = false;
        let addr = self.redis[i].addr.clone();
        for s in 0..self.sentinels.len() {
            let at = self.now + self.latency();
            self.push(at, Msg::LinkDown { to: s, addr: addr.clone() });
        }
    }

    /// Restarts an instance with a new run id and its configured role (like a restart
    /// from its own config file: a master comes back as master).
    pub fn restart_redis(&mut self, i: usize) {
        let id = hex40(&mut self.rng);
        let r = &mut self.redis[i];
        r.alive = true;
        r.run_id = id;
        r.offset = 0;
    }

    /// `restart_redis`, the instance then loading its dataset for `loading_ms`.
    pub fn restart_redis_loading(&mut self, i: usize, loading_ms: u64) {
        self.restart_redis(i);
        self.redis[i].loading_until = self.now + loading_ms;
    }

    pub fn crash_sentinel(&mut self, i: usize) {
        if let Some(m) = self.sentinels[i].machine.take() {
            // what it had persisted: the last config it rewrote
            let _ = m;
        }
    }

    pub fn restart_sentinel(&mut self, i: usize) {
        let now = self.sentinel_now(i);
        let cfg = self.sentinels[i].saved_config.clone();
        let seed = self.rng.gen();
        self.sentinels[i].machine = Some(Sentinel::new(&cfg, 26379, seed, now));
    }

    pub fn masters(&self) -> Vec<Addr> {
        self.redis.iter().filter(|r| r.alive && r.role == SimRole::Master).map(|r| r.addr.clone()).collect()
    }

    /// Runs the world for `ms` milliseconds in 10 ms steps.
    pub fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until `cond` holds or `max_ms` passed; returns whether it held.
    pub fn run_until(&mut self, max_ms: u64, mut cond: impl FnMut(&World) -> bool) -> bool {
        let end = self.now + max_ms;
        while self.now < end {
            if cond(self) {
                return true;
            }
            self.step();
        }
        cond(self)
    }

    fn step(&mut self) {
        self.now += 10;
        // replication + writes
        for i in 0..self.redis.len() {
            if !self.redis[i].alive {
                continue;
            }
            match self.redis[i].role.clone() {
                SimRole::Master => self.redis[i].offset += 10,
                SimRole::Replica(m) => {
                    let up = self.redis_idx(&m).map(|mi| self.redis[mi].alive && self.redis[mi].role == SimRole::Master && !self.blocked(&m, &self.redis[i].addr)).unwrap_or(false);
                    if up {
                        let mi = self.redis_idx(&m).unwrap();
                        self.redis[i].offset = self.redis[mi].offset;
                        self.redis[i].link_up = true;
                    } else if self.redis[i].link_up {
                        self.redis[i].link_up = false;
                        self.redis[i].link_down_since = self.now;
                    }
                }
            }
        }
        for i in 0..self.sentinels.len() {
            let now = self.sentinel_now(i);
            if let Some(m) = self.sentinels[i].machine.as_mut() {
                m.tick(now);
            }
            self.drain(i);
        }
        // deliver due messages
        while let Some(Reverse((at, seq))) = self.queue.peek().cloned() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            let msg = self.msgs.remove(&seq).unwrap();
            self.deliver(msg);
        }
    }

    fn drain(&mut self, i: usize) {
        let Some(m) = self.sentinels[i].machine.as_mut() else { return };
        let actions = m.take_actions();
        let crashed = m.crashed;
        for a in actions {
            match a {
                Action::Send(out) => {
                    if let Request::SlaveOf(None) = out.request {
                        let m = self.sentinels[i].machine.as_ref().unwrap();
                        let epoch = m.masters[0].failover_epoch;
                        let best = self
                            .redis
                            .iter()
                            .filter(|r| r.alive && matches!(r.role, SimRole::Replica(_)))
                            .map(|r| r.offset)
                            .max()
                            .unwrap_or(0);
                        let target_offset = self.redis_idx(&out.addr).map(|x| self.redis[x].offset).unwrap_or(0);
                        self.promotions.push(Promotion { epoch, by: i, target: out.addr.clone(), at: self.now, target_offset, best_offset: best });
                    }
                    if self.rng.gen_bool(self.loss) {
                        // lost: the sender sees a timeout and a link drop
                        let at = self.now + out.timeout_ms;
                        self.push(at, Msg::Reply { to: i, token: out.token, reply: Err(()), link_down: Some(out.addr.clone()) });
                        continue;
                    }
                    let at = self.now + self.latency();
                    self.push(at, Msg::Deliver { from: i, token: out.token, target: out.addr, request: out.request });
                }
                Action::Event { kind, message, .. } => {
                    if kind == "+elected-leader" {
                        let epoch = self.sentinels[i].machine.as_ref().unwrap().masters[0].failover_epoch;
                        self.elected.push((epoch, i));
                    }
                    self.sentinels[i].events.push((self.now, kind, message));
                }
                Action::RewriteConfig => {
                    let m = self.sentinels[i].machine.as_ref().unwrap();
                    let base = self.sentinels[i].saved_config.clone();
                    self.sentinels[i].saved_config = m.to_config(&base);
                }
                Action::RunScript { .. } | Action::Forget(_) => {}
            }
        }
        if crashed {
            self.sentinels[i].machine = None;
        }
    }

    fn sentinel_by_addr(&self, a: &Addr) -> Option<usize> {
        self.sentinels.iter().position(|s| s.addr == *a)
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Reply { to, token, reply, link_down } => {
                let now = self.sentinel_now(to);
                if let Some(m) = self.sentinels[to].machine.as_mut() {
                    if let Some(a) = link_down {
                        m.on_link_down(now, &a);
                    }
                    m.on_reply(now, token, reply);
                }
                self.drain(to);
            }
            Msg::LinkDown { to, addr } => {
                let now = self.sentinel_now(to);
                if let Some(m) = self.sentinels[to].machine.as_mut() {
                    m.on_link_down(now, &addr);
                }
                self.drain(to);
            }
            Msg::Hello { to, payload } => {
                let now = self.sentinel_now(to);
                if let Some(m) = self.sentinels[to].machine.as_mut() {
                    m.on_hello(now, &payload);
                }
                self.drain(to);
            }
            Msg::Deliver { from, token, target, request } => {
                let from_addr = self.sentinels[from].addr.clone();
                let back = self.now + self.latency();
                if self.blocked(&from_addr, &target) {
                    // a partition looks like a hung link: timeout then drop
                    self.push(self.now + 1000, Msg::Reply { to: from, token, reply: Err(()), link_down: Some(target) });
                    return;
                }
                if let Some(si) = self.sentinel_by_addr(&target) {
                    let now = self.sentinel_now(si);
                    let reply = self.sentinels[si].machine.as_mut().map(|m| match request {
                            Request::Ping => Frame::Simple("PONG".into()),
                            Request::Info => Frame::Error("ERR unsupported".into()),
                            Request::Hello { announce_ip, announce_port, rest } => {
                                let payload = format!("{},{},{}", announce_ip.unwrap_or_else(|| from_addr.host.clone()), announce_port, rest);
                                m.on_hello(now, &payload);
                                Frame::Integer(1)
                            }
                            Request::IsMasterDown { ip, port, epoch, run_id } => {
                                let (d, l, e) = m.is_master_down_by_addr(now, &ip, port, epoch, &run_id);
                                Frame::Array(vec![Frame::Integer(d as i64), Frame::bulk(l), Frame::Integer(e as i64)])
                            }
                            Request::SlaveOf(_) | Request::PauseWrites(_) | Request::Unpause => Frame::Error("ERR unknown".into()),
                    });
                    self.drain(si);
                    match reply {
                        Some(r) => self.push(back, Msg::Reply { to: from, token, reply: Ok(r), link_down: None }),
                        None => self.push(back, Msg::Reply { to: from, token, reply: Err(()), link_down: Some(target) }),
                    }
                    return;
                }
                let Some(ri) = self.redis_idx(&target) else {
                    self.push(back, Msg::Reply { to: from, token, reply: Err(()), link_down: Some(target) });
                    return;
                };
                if !self.redis[ri].alive {
                    self.push(back, Msg::Reply { to: from, token, reply: Err(()), link_down: Some(target) });
                    return;
                }
                let reply = match request {
                    Request::Ping if self.now < self.redis[ri].loading_until => Frame::Error("LOADING Redis is loading the dataset in memory".into()),
                    Request::Ping => Frame::Simple("PONG".into()),
                    Request::Info => Frame::bulk(self.info_text(ri)),
                    Request::Hello { announce_ip, announce_port, rest } => {
                        let payload = format!("{},{},{}", announce_ip.unwrap_or_else(|| from_addr.host.clone()), announce_port, rest);
                        // every sentinel subscribed to this instance (and not cut from it) receives it
                        for s in 0..self.sentinels.len() {
                            let knows = self.sentinels[s].machine.as_ref().is_some_and(|m| {
                                m.masters.iter().any(|ms| ms.inst.addr == target || ms.replicas.contains_key(&target))
                            });
                            if knows && !self.blocked(&self.sentinels[s].addr, &target) {
                                let at = self.now + self.latency();
                                self.push(at, Msg::Hello { to: s, payload: payload.clone() });
                            }
                        }
                        Frame::Integer(1)
                    }
                    Request::SlaveOf(None) => {
                        self.redis[ri].role = SimRole::Master;
                        Frame::Array(vec![Frame::ok(), Frame::ok(), Frame::ok(), Frame::Integer(0), Frame::Integer(0)])
                    }
                    Request::SlaveOf(Some(a)) => {
                        self.redis[ri].role = SimRole::Replica(a);
                        self.redis[ri].link_up = false;
                        self.redis[ri].link_down_since = self.now;
                        Frame::Array(vec![Frame::ok(), Frame::ok(), Frame::ok(), Frame::Integer(0), Frame::Integer(0)])
                    }
                    Request::IsMasterDown { .. } => Frame::Error("ERR unknown command".into()),
                    Request::PauseWrites(_) | Request::Unpause => Frame::ok(),
                };
                self.push(back, Msg::Reply { to: from, token, reply: Ok(reply), link_down: None });
            }
        }
    }

    fn info_text(&self, ri: usize) -> String {
        let r = &self.redis[ri];
        let mut s = format!("# Server\r\nrun_id:{}\r\n# Replication\r\n", r.run_id);
        match &r.role {
            SimRole::Master => {
                s.push_str("role:master\r\n");
                let mut n = 0;
                for o in &self.redis {
                    if o.alive && o.role == SimRole::Replica(r.addr.clone()) && o.link_up {
                        s.push_str(&format!("slave{n}:ip={},port={},state=online,offset={},lag=0\r\n", o.addr.host, o.addr.port, o.offset));
                        n += 1;
                    }
                }
                s.push_str(&format!("connected_slaves:{n}\r\nmaster_repl_offset:{}\r\n", r.offset));
            }
            SimRole::Replica(m) => {
                let down = if r.link_up { 0 } else { (self.now - r.link_down_since) / 1000 };
                s.push_str(&format!(
                    "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nmaster_link_down_since_seconds:{}\r\nslave_repl_offset:{}\r\nslave_priority:{}\r\nreplica_announced:1\r\n",
                    m.host,
                    m.port,
                    if r.link_up { "up" } else { "down" },
                    if r.link_up { -1 } else { down as i64 },
                    r.offset,
                    r.priority
                ));
            }
        }
        s
    }

    /// What every live sentinel says the master is.
    pub fn sentinel_views(&self) -> Vec<Addr> {
        self.sentinels.iter().filter_map(|s| s.machine.as_ref()).map(|m| m.masters[0].current_addr()).collect()
    }

    /// One master alive, every live sentinel agrees on it, every live replica follows it.
    pub fn converged(&self) -> bool {
        let masters = self.masters();
        if masters.len() != 1 {
            return false;
        }
        let m = &masters[0];
        self.sentinel_views().iter().all(|v| v == m)
            && self.sentinels.iter().filter_map(|s| s.machine.as_ref()).all(|s| !s.masters[0].in_failover())
            && self.redis.iter().filter(|r| r.alive && r.addr != *m).all(|r| r.role == SimRole::Replica(m.clone()) && r.link_up)
    }

    /// Safety: per epoch at most one sentinel elected, and at most one replica promoted.
    pub fn assert_safety(&self) {
        let mut leaders: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
        for (e, s) in &self.elected {
            leaders.entry(*e).or_default().insert(*s);
        }
        for (e, set) in &leaders {
            assert!(set.len() <= 1, "epoch {e} has two leaders: {set:?}");
        }
        let mut promoted: BTreeMap<u64, BTreeSet<Addr>> = BTreeMap::new();
        for p in &self.promotions {
            promoted.entry(p.epoch).or_default().insert(p.target.clone());
        }
        for (e, set) in &promoted {
            assert!(set.len() <= 1, "epoch {e} promoted two replicas: {set:?}");
        }
    }

    pub fn all_events(&self, kind: &str) -> Vec<(usize, u64, String)> {
        let mut v = Vec::new();
        for (i, s) in self.sentinels.iter().enumerate() {
            for (t, k, m) in &s.events {
                if k == kind {
                    v.push((i, *t, m.clone()));
                }
            }
        }
        v
    }
}

fn hex40(rng: &mut StdRng) -> String {
    (0..20).map(|_| format!("{:02x}", rng.gen::<u8>())).collect()
}
