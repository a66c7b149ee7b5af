//! Master tracking, the heart of the operator: one pub/sub connection per sentinel per
//! cluster; on `+switch-master` the role labels move at once (old master demoted first);
//! a periodic check (and every sentinel reconnect) follows the sentinel majority, repairs
//! split brain and label drift. Decisions are pure ([`decide`]); this module does the I/O.

pub mod decide;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, warn, Instrument};

pub use decide::{Action, Decision, Endpoint, Observation, PodView, SentinelView, ServerRole, ServerView, Verdict};

use crate::operator::crd::{MasterStatus, RedisFailoverCluster, RedisFailoverClusterStatus};
use crate::operator::metrics::Metrics;
use crate::operator::names::{self, Component, FIELD_MANAGER, MASTER_NAME, SENTINEL_PORT, SERVER_PORT};
use crate::operator::status::{self, Health};

/// Sentinel channels the tracker subscribes to.
pub const CHANNELS: &[&str] = &[
    "+switch-master", "+sdown", "-sdown", "+odown", "-odown", "+try-failover",
    "+failover-end", "+failover-state-reconf-slaves", "-failover-abort-no-good-slave",
];

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("redis {endpoint}: {source}")]
    Redis { endpoint: Endpoint, source: redis::RedisError },
    #[error("redis {0}: timed out")]
    Timeout(Endpoint),
}

/// A cluster, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey {
    pub namespace: String,
    pub name: String,
}

/// Maps cluster members to addresses and back. In a cluster these are stable pod DNS
/// names; tests on loopback map `127.0.0.1:<port>` to pods.
pub trait AddressResolver: Send + Sync + 'static {
    fn sentinel_endpoints(&self, key: &ClusterKey, replicas: i32) -> Vec<Endpoint>;
    fn server_endpoint(&self, key: &ClusterKey, pod: &str) -> Option<Endpoint>;
    /// Which server pod an address reported by a sentinel belongs to.
    fn pod_for(&self, key: &ClusterKey, endpoint: &Endpoint) -> Option<String>;
}

/// In-cluster resolver: `<pod>.<name>-<component>-headless.<ns>.svc.cluster.local`.
pub struct DnsResolver;

impl AddressResolver for DnsResolver {
    fn sentinel_endpoints(&self, key: &ClusterKey, replicas: i32) -> Vec<Endpoint> {
        (0..replicas)
            .map(|o| Endpoint::new(names::pod_dns(&key.name, &key.namespace, Component::Sentinel, o), SENTINEL_PORT as u16))
            .collect()
    }
    fn server_endpoint(&self, key: &ClusterKey, pod: &str) -> Option<Endpoint> {
        let o = names::ordinal_of(&key.name, Component::Server, pod)?;
        Some(Endpoint::new(names::pod_dns(&key.name, &key.namespace, Component::Server, o), SERVER_PORT as u16))
    }
    fn pod_for(&self, key: &ClusterKey, endpoint: &Endpoint) -> Option<String> {
        let first = endpoint.host.split('.').next()?;
        names::ordinal_of(&key.name, Component::Server, first)?;
        // Only our own headless domain (or a bare pod name) counts.
        let rest = &endpoint.host[first.len()..];
        let ok = rest.is_empty()
            || rest.trim_end_matches('.').starts_with(&format!(".{}.{}", names::headless_service(&key.name, Component::Server), key.namespace));
        ok.then(|| first.to_string())
    }
}

/// Fixed map (loopback tests, or out-of-cluster setups with port-forwards).
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    pub sentinels: Vec<Endpoint>,
    pub servers: BTreeMap<String, Endpoint>,
}

impl AddressResolver for StaticResolver {
    fn sentinel_endpoints(&self, _key: &ClusterKey, _replicas: i32) -> Vec<Endpoint> {
        self.sentinels.clone()
    }
    fn server_endpoint(&self, _key: &ClusterKey, pod: &str) -> Option<Endpoint> {
        self.servers.get(pod).cloned()
    }
    fn pod_for(&self, _key: &ClusterKey, endpoint: &Endpoint) -> Option<String> {
        self.servers.iter().find(|(_, e)| *e == endpoint).map(|(p, _)| p.clone())
    }
}

/// What the tracker knows about one cluster; read by the reconciler for status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrackState {
    pub master: Option<MasterStatus>,
    pub health: Health,
    pub failover_count: i64,
    pub last_failover_time: Option<String>,
    /// Latency of the last label move triggered by `+switch-master`.
    pub last_switch_latency: Option<Duration>,
    /// Number of sentinel connections currently subscribed.
    pub connected_sentinels: usize,
    /// Set while no sentinel majority knows every replica and every other sentinel: the
    /// group could not fail over yet, so it is not Ready.
    pub discovering: Option<String>,
}

/// Per-cluster parameters; a change restarts the cluster's tracking task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterParams {
    pub sentinels: i32,
    pub password: Option<String>,
}

#[derive(Clone, Debug)]
pub struct TrackerConfig {
    pub check_interval: Duration,
    pub io_timeout: Duration,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig { check_interval: Duration::from_secs(10), io_timeout: Duration::from_secs(2) }
    }
}

struct ClusterHandle {
    params: ClusterParams,
    state: Arc<Mutex<TrackState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the per-cluster workers share (no back-reference to the cluster map, so dropping
/// the last [`Tracker`] really stops every worker).
struct Inner {
    client: kube::Client,
    resolver: Arc<dyn AddressResolver>,
    metrics: Metrics,
    cfg: TrackerConfig,
}

/// Handle to all cluster trackers; cheap to clone. Dropping the last clone stops them.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
    clusters: Arc<Mutex<HashMap<ClusterKey, ClusterHandle>>>,
}

impl Tracker {
    pub fn new(client: kube::Client, resolver: Arc<dyn AddressResolver>, metrics: Metrics, cfg: TrackerConfig) -> Self {
        let inner = Arc::new(Inner { client, resolver, metrics, cfg });
        Tracker { inner, clusters: Default::default() }
    }

    /// Starts tracking a cluster (or restarts it when its parameters changed). State is
    /// seeded from the status in the API, so an operator restart continues counting.
    pub fn ensure(&self, key: &ClusterKey, params: ClusterParams, status: Option<&RedisFailoverClusterStatus>) {
        let mut clusters = self.clusters.lock();
        if let Some(h) = clusters.get(key) {
            if h.params == params && !h.task.is_finished() {
                return;
            }
        }
        let seeded = TrackState {
            master: status.and_then(|s| s.master.clone()),
            failover_count: status.map(|s| s.failover_count).unwrap_or(0),
            last_failover_time: status.and_then(|s| s.last_failover_time.clone()),
            ..Default::default()
        };
        // Keep the live state when only restarting (e.g. password change).
        let state = clusters.get(key).map(|h| h.state.clone()).unwrap_or_else(|| Arc::new(Mutex::new(seeded)));
        let worker = Worker { key: key.clone(), params: params.clone(), state: state.clone(), inner: self.inner.clone() };
        let span = info_span!("track", cluster = %key.name, namespace = %key.namespace);
        let task = tokio::spawn(worker.run().instrument(span));
        clusters.insert(key.clone(), ClusterHandle { params, state, task });
    }

    /// Stops tracking a deleted cluster.
    pub fn forget(&self, key: &ClusterKey) {
        self.clusters.lock().remove(key);
    }

    pub fn state(&self, key: &ClusterKey) -> Option<TrackState> {
        self.clusters.lock().get(key).map(|h| h.state.lock().clone())
    }

    /// The password the tracker uses for a cluster's servers.
    pub fn password(&self, key: &ClusterKey) -> Option<String> {
        self.clusters.lock().get(key).and_then(|h| h.params.password.clone())
    }

    pub fn resolver(&self) -> Arc<dyn AddressResolver> {
        self.inner.resolver.clone()
    }

    pub fn tracked(&self) -> Vec<ClusterKey> {
        self.clusters.lock().keys().cloned().collect()
    }

    /// Pod watch hook: a master pod that is terminating loses its role label at once.
    pub async fn handle_pod(&self, pod: &Pod) -> Result<Option<Action>, TrackError> {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if labels.get(names::LABEL_COMPONENT).map(String::as_str) != Some(Component::Server.as_str()) {
            return Ok(None);
        }
        let view = pod_view(pod);
        let Some(action) = decide::on_pod_event(&view) else { return Ok(None) };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        info!(pod = %view.name, "master pod is terminating: removing its role label");
        apply_label(&self.inner, &ns, &action).await?;
        Ok(Some(action))
    }
}

fn pod_view(p: &Pod) -> PodView {
    PodView {
        name: p.metadata.name.clone().unwrap_or_default(),
        role_label: p.metadata.labels.as_ref().and_then(|l| l.get(names::LABEL_ROLE).cloned()),
        terminating: p.metadata.deletion_timestamp.is_some(),
    }
}

async fn apply_label(inner: &Inner, namespace: &str, action: &Action) -> Result<(), TrackError> {
    let Action::SetRole { pod, role } = action else { return Ok(()) };
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), namespace);
    let patch = json!({"metadata": {"labels": {names::LABEL_ROLE: role}}});
    let pp = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..Default::default() };
    api.patch(pod, &pp, &Patch::Merge(&patch)).await?;
    inner.metrics.label_moves.inc();
    debug!(%pod, ?role, "role label set");
    Ok(())
}

/// Events from the sentinel subscriber tasks to the cluster worker.
#[derive(Debug)]
enum Event {
    Connected(usize),
    Disconnected(usize),
    Message { sentinel: usize, channel: String, payload: String, received: Instant },
}

struct Worker {
    key: ClusterKey,
    params: ClusterParams,
    state: Arc<Mutex<TrackState>>,
    inner: Arc<Inner>,
}

impl Worker {
    async fn run(self) {
        let sentinels = self.inner.resolver.sentinel_endpoints(&self.key, self.params.sentinels);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut subscribers = tokio::task::JoinSet::new();
        for (idx, ep) in sentinels.iter().cloned().enumerate() {
            let tx = tx.clone();
            let timeout = self.inner.cfg.io_timeout;
            subscribers.spawn(subscribe_loop(idx, ep, timeout, tx).in_current_span());
        }
        drop(tx);
        let mut tick = tokio::time::interval(self.inner.cfg.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut connected = vec![false; sentinels.len()];
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { break };
                    match ev {
                        Event::Connected(i) => {
                            connected[i] = true;
                            self.state.lock().connected_sentinels = connected.iter().filter(|c| **c).count();
                            info!(sentinel = %sentinels[i], "subscribed to sentinel events");
                            self.check_logged(&sentinels).await;
                        }
                        Event::Disconnected(i) => {
                            connected[i] = false;
                            self.state.lock().connected_sentinels = connected.iter().filter(|c| **c).count();
                            warn!(sentinel = %sentinels[i], "sentinel connection lost");
                        }
                        Event::Message { sentinel, channel, payload, received } => {
                            self.on_message(&sentinels, sentinel, &channel, &payload, received).await;
                        }
                    }
                }
                _ = tick.tick() => self.check_logged(&sentinels).await,
            }
        }
    }

    async fn on_message(&self, sentinels: &[Endpoint], from: usize, channel: &str, payload: &str, received: Instant) {
        info!(sentinel = %sentinels[from], %channel, %payload, "sentinel event");
        if channel != "+switch-master" {
            return;
        }
        let Some((name, old, new)) = decide::parse_switch_master(payload) else {
            warn!(%payload, "unparsable +switch-master");
            return;
        };
        if name != MASTER_NAME {
            return;
        }
        match self.inner.resolver.pod_for(&self.key, &new) {
            Some(pod) => {
                if let Err(e) = self.switch_to(&pod, &new, Some(&old), Some(received)).await {
                    warn!(error = %e, "moving labels after +switch-master failed; the periodic check will retry");
                }
            }
            None => {
                warn!(%new, "+switch-master names an address that is no server pod; checking all sentinels");
                self.check_logged(sentinels).await;
            }
        }
    }

    /// Moves labels to `pod`, records the failover, disconnects clients of the old master.
    async fn switch_to(&self, pod: &str, endpoint: &Endpoint, old: Option<&Endpoint>, received: Option<Instant>) -> Result<(), TrackError> {
        let pods = self.server_pods().await?;
        let views: Vec<PodView> = pods.iter().map(pod_view).collect();
        let moves = decide::label_moves(&views, Some(pod));
        for a in &moves {
            apply_label(&self.inner, &self.key.namespace, a).await?;
        }
        if let (Some(t0), false) = (received, moves.is_empty()) {
            let latency = t0.elapsed();
            self.inner.metrics.switch_to_label_seconds.observe(latency.as_secs_f64());
            self.state.lock().last_switch_latency = Some(latency);
            info!(%pod, latency_ms = latency.as_secs_f64() * 1000.0, "role labels moved after +switch-master");
        }
        let changed = self.record_master(pod, endpoint);
        if changed {
            self.write_status().await?;
        }
        if let Some(old) = old {
            if old != endpoint {
                self.kill_clients(old).await;
            }
        }
        Ok(())
    }

    /// Updates the known master; returns true when it changed (a failover if there was one before).
    fn record_master(&self, pod: &str, endpoint: &Endpoint) -> bool {
        let mut st = self.state.lock();
        let new = MasterStatus { pod: pod.to_string(), host: endpoint.host.clone(), port: endpoint.port as i32 };
        if st.master.as_ref() == Some(&new) {
            return false;
        }
        if st.master.as_ref().is_some_and(|m| m.pod != new.pod) {
            st.failover_count += 1;
            st.last_failover_time = Some(k8s_openapi::jiff::Timestamp::now().to_string());
            self.inner.metrics.failovers_seen.inc();
            info!(from = ?st.master.as_ref().map(|m| &m.pod), to = %pod, "failover recorded");
        }
        st.master = Some(new);
        true
    }

    async fn kill_clients(&self, ep: &Endpoint) {
        let r = async {
            let mut c = connect(ep, self.params.password.as_deref(), self.inner.cfg.io_timeout).await?;
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").query_async::<redis::Value>(&mut c).await
                .map_err(|source| TrackError::Redis { endpoint: ep.clone(), source })
        };
        match tokio::time::timeout(self.inner.cfg.io_timeout, r).await {
            Ok(Ok(v)) => info!(old_master = %ep, reply = ?v, "disconnected clients of the demoted master"),
            Ok(Err(e)) => debug!(old_master = %ep, error = %e, "CLIENT KILL on demoted master failed (likely down)"),
            Err(_) => debug!(old_master = %ep, "CLIENT KILL on demoted master timed out"),
        }
    }

    async fn server_pods(&self) -> Result<Vec<Pod>, TrackError> {
        let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &self.key.namespace);
        let selector = format!(
            "{}={},{}={},{}={}",
            names::LABEL_NAME, names::APP_NAME, names::LABEL_INSTANCE, self.key.name,
            names::LABEL_COMPONENT, Component::Server.as_str()
        );
        Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
    }

    async fn check_logged(&self, sentinels: &[Endpoint]) {
        if let Err(e) = self.check(sentinels).await {
            warn!(error = %e, "master check failed");
        }
    }

    /// The periodic check: all sentinels, all servers, act only on a majority.
    async fn check(&self, sentinels: &[Endpoint]) -> Result<Decision, TrackError> {
        let timeout = self.inner.cfg.io_timeout;
        let answers = futures::future::join_all(sentinels.iter().map(|s| ask_master(s, timeout))).await;
        let views = futures::future::join_all(sentinels.iter().map(|s| sentinel_master_view(s, timeout))).await;
        let busy: Vec<bool> = views.iter().map(|v| v.as_ref().is_some_and(|v| v.busy)).collect();
        let pods = self.server_pods().await?;
        let pw = self.params.password.as_deref();
        let servers = futures::future::join_all(pods.iter().filter_map(|p| {
            let name = p.metadata.name.clone()?;
            let ep = self.inner.resolver.server_endpoint(&self.key, &name)?;
            Some(async move {
                let role = ask_role(&ep, pw, timeout).await;
                ServerView { pod: name, endpoint: ep, role }
            })
        }))
        .await;
        let obs = Observation {
            sentinels_total: sentinels.len(),
            sentinel_answers: answers,
            servers,
            pods: pods.iter().map(pod_view).collect(),
            failover_in_progress: busy.into_iter().any(|b| b),
        };
        let decision = decide::decide(&obs, |ep| self.inner.resolver.pod_for(&self.key, ep));
        let live_servers = obs.pods.iter().filter(|p| !p.terminating).count();
        let discovering = decide::discovery_gap(&views, sentinels.len(), live_servers.saturating_sub(1));
        debug!(?decision, "check");
        let (health, master) = match &decision.verdict {
            Verdict::Agreed { pod, endpoint } => (Health::Healthy, Some((pod.clone(), endpoint.clone()))),
            Verdict::NoMajority { message } => {
                warn!(%message, "no action: sentinels do not agree");
                (Health::NoMajority(message.clone()), None)
            }
        };
        for a in &decision.actions {
            match a {
                Action::SetRole { .. } => apply_label(&self.inner, &self.key.namespace, a).await?,
                Action::MakeReplica { pod, of } => {
                    let Some(ep) = self.inner.resolver.server_endpoint(&self.key, pod) else { continue };
                    warn!(%pod, master = %of, "split brain: turning a second master into a replica");
                    if let Err(e) = make_replica(&ep, of, pw, timeout).await {
                        warn!(%pod, error = %e, "REPLICAOF failed");
                    }
                }
                Action::KillClients { pod } => {
                    if let Some(ep) = self.inner.resolver.server_endpoint(&self.key, pod) {
                        self.kill_clients(&ep).await;
                    }
                }
            }
        }
        let mut changed = false;
        {
            let mut st = self.state.lock();
            if st.health != health {
                st.health = health;
                changed = true;
            }
            st.discovering = discovering;
        }
        if let Some((pod, ep)) = master {
            changed |= self.record_master(&pod, &ep);
        }
        if changed {
            self.write_status().await?;
        }
        Ok(decision)
    }

    /// Writes the tracker-owned status fields (merge patch: reconciler fields untouched).
    async fn write_status(&self) -> Result<(), TrackError> {
        let api: Api<RedisFailoverCluster> = Api::namespaced(self.inner.client.clone(), &self.key.namespace);
        let Some(current) = api.get_opt(&self.key.name).await? else { return Ok(()) };
        let st = self.state.lock().clone();
        let mut conds = current.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        status::apply_tracking_health(&mut conds, &st.health, current.metadata.generation);
        let patch = json!({"status": {
            "master": st.master,
            "failoverCount": st.failover_count,
            "lastFailoverTime": st.last_failover_time,
            "conditions": conds,
        }});
        let pp = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..Default::default() };
        // This status change is itself a watch event on the cluster: the controller
        // re-runs the reconciler, which recomputes Ready/Progressing.
        api.patch_status(&self.key.name, &pp, &Patch::Merge(&patch)).await?;
        Ok(())
    }
}

/// One sentinel: connect, subscribe, forward events; reconnect with bounded backoff.
async fn subscribe_loop(idx: usize, ep: Endpoint, timeout: Duration, tx: mpsc::UnboundedSender<Event>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let sub = async {
            let client = redis::Client::open(redis_url(&ep)).map_err(|source| TrackError::Redis { endpoint: ep.clone(), source })?;
            let mut ps = tokio::time::timeout(timeout, client.get_async_pubsub())
                .await
                .map_err(|_| TrackError::Timeout(ep.clone()))?
                .map_err(|source| TrackError::Redis { endpoint: ep.clone(), source })?;
            tokio::time::timeout(timeout, ps.subscribe(CHANNELS))
                .await
                .map_err(|_| TrackError::Timeout(ep.clone()))?
                .map_err(|source| TrackError::Redis { endpoint: ep.clone(), source })?;
            Ok::<_, TrackError>(ps)
        };
        match sub.await {
            Ok(ps) => {
                backoff = Duration::from_millis(100);
                if tx.send(Event::Connected(idx)).is_err() {
                    return;
                }
                let mut stream = ps.into_on_message();
                while let Some(msg) = stream.next().await {
                    let received = Instant::now();
                    let channel = msg.get_channel_name().to_string();
                    let payload: String = msg.get_payload().unwrap_or_default();
                    if tx.send(Event::Message { sentinel: idx, channel, payload, received }).is_err() {
                        return;
                    }
                }
                if tx.send(Event::Disconnected(idx)).is_err() {
                    return;
                }
            }
            Err(e) => debug!(sentinel = %ep, error = %e, "sentinel subscribe failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn redis_url(ep: &Endpoint) -> String {
    if ep.host.contains(':') {
        format!("redis://[{}]:{}/", ep.host, ep.port)
    } else {
        format!("redis://{}:{}/", ep.host, ep.port)
    }
}

pub(crate) async fn connect(ep: &Endpoint, password: Option<&str>, timeout: Duration) -> Result<redis::aio::MultiplexedConnection, TrackError> {
    use redis::IntoConnectionInfo;
    let err = |source| TrackError::Redis { endpoint: ep.clone(), source };
    let mut info = redis_url(ep).into_connection_info().map_err(err)?;
    if let Some(pw) = password {
        let settings = info.redis_settings().clone().set_password(pw);
        info = info.set_redis_settings(settings);
    }
    let client = redis::Client::open(info).map_err(err)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    tokio::time::timeout(timeout * 2, client.get_multiplexed_async_connection_with_config(&cfg))
        .await
        .map_err(|_| TrackError::Timeout(ep.clone()))?
        .map_err(err)
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME mymaster`; None when unreachable or unknown.
pub(crate) async fn ask_master(sentinel: &Endpoint, timeout: Duration) -> Option<Endpoint> {
    let r = async {
        let mut c = connect(sentinel, None, timeout).await.ok()?;
        let v: Option<Vec<String>> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query_async(&mut c)
            .await
            .ok()?;
        let v = v?;
        Some(Endpoint::new(v.first()?.clone(), v.get(1)?.parse().ok()?))
    };
    tokio::time::timeout(timeout * 2, r).await.ok().flatten()
}

/// Whether a sentinel reports a failover in progress or the master down (`SENTINEL MASTER` flags).
pub(crate) async fn failover_running(sentinel: &Endpoint, timeout: Duration) -> bool {
    sentinel_master_view(sentinel, timeout).await.is_some_and(|v| v.busy)
}

/// One sentinel's `SENTINEL MASTER mymaster`: busy flags and what it has discovered.
pub(crate) async fn sentinel_master_view(sentinel: &Endpoint, timeout: Duration) -> Option<SentinelView> {
    let r = async {
        let mut c = connect(sentinel, None, timeout).await.ok()?;
        let v: Vec<String> = redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME).query_async(&mut c).await.ok()?;
        let field = |name: &str| v.iter().position(|k| k == name).and_then(|i| v.get(i + 1));
        Some(SentinelView {
            busy: flags_say_busy(field("flags")?),
            replicas: field("num-slaves").and_then(|n| n.parse().ok()).unwrap_or(0),
            other_sentinels: field("num-other-sentinels").and_then(|n| n.parse().ok()).unwrap_or(0),
        })
    };
    tokio::time::timeout(timeout * 2, r).await.ok().flatten()
}

/// `failover_in_progress`, `s_down`, `o_down` in a sentinel's master flags.
pub fn flags_say_busy(flags: &str) -> bool {
    flags.split(',').any(|f| matches!(f, "failover_in_progress" | "s_down" | "o_down"))
}

/// `ROLE` of one server.
async fn ask_role(ep: &Endpoint, password: Option<&str>, timeout: Duration) -> ServerRole {
    let r = async {
        let mut c = connect(ep, password, timeout).await.ok()?;
        let v: redis::Value = redis::cmd("ROLE").query_async(&mut c).await.ok()?;
        Some(parse_role(&v))
    };
    tokio::time::timeout(timeout * 2, r).await.ok().flatten().unwrap_or(ServerRole::Unknown)
}

fn value_str(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Parses a `ROLE` reply (`master ...` or `slave host port state offset`).
pub fn parse_role(v: &redis::Value) -> ServerRole {
    let redis::Value::Array(items) = v else { return ServerRole::Unknown };
    match items.first().and_then(value_str).as_deref() {
        Some("master") => ServerRole::Master,
        Some("slave") | Some("replica") => {
            let host = items.get(1).and_then(value_str);
            let port = items.get(2).and_then(value_str).and_then(|p| p.parse().ok());
            let state = items.get(3).and_then(value_str);
            match (host, port) {
                (Some(h), Some(p)) => ServerRole::Replica { master: Endpoint::new(h, p), link_up: state.as_deref() == Some("connected") },
                _ => ServerRole::Unknown,
            }
        }
        _ => ServerRole::Unknown,
    }
}

async fn make_replica(ep: &Endpoint, of: &Endpoint, password: Option<&str>, timeout: Duration) -> Result<(), TrackError> {
    let mut c = connect(ep, password, timeout).await?;
    redis::cmd("REPLICAOF")
        .arg(&of.host)
        .arg(of.port)
        .query_async::<redis::Value>(&mut c)
        .await
        .map_err(|source| TrackError::Redis { endpoint: ep.clone(), source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_resolver_maps_only_own_pods() {
        let k = ClusterKey { namespace: "ns".into(), name: "rf".into() };
        let r = DnsResolver;
        assert_eq!(
            r.pod_for(&k, &Endpoint::new("rf-server-1.rf-server-headless.ns.svc.cluster.local", 6379)),
            Some("rf-server-1".into())
        );
        assert_eq!(r.pod_for(&k, &Endpoint::new("rf-server-1", 6379)), Some("rf-server-1".into()));
        assert_eq!(r.pod_for(&k, &Endpoint::new("rf-server-1.rf-server-headless.other.svc.cluster.local", 6379)), None);
        assert_eq!(r.pod_for(&k, &Endpoint::new("rf-sentinel-1.rf-sentinel-headless.ns.svc.cluster.local", 6379)), None);
        assert_eq!(r.sentinel_endpoints(&k, 2)[1], Endpoint::new("rf-sentinel-1.rf-sentinel-headless.ns.svc.cluster.local", 26379));
        assert_eq!(r.server_endpoint(&k, "rf-server-0").unwrap().port, 6379);
        assert_eq!(r.server_endpoint(&k, "nope"), None);
    }

    #[test]
    fn sentinel_flags() {
        assert!(!flags_say_busy("master"));
        assert!(flags_say_busy("master,failover_in_progress"));
        assert!(flags_say_busy("s_down,master"));
        assert!(flags_say_busy("master,s_down,o_down"));
    }

    #[test]
    fn role_replies_parse() {
        use redis::Value::*;
        let m = Array(vec![BulkString(b"master".to_vec()), Int(10), Array(vec![])]);
        assert_eq!(parse_role(&m), ServerRole::Master);
        let r = Array(vec![
            BulkString(b"slave".to_vec()), BulkString(b"10.0.0.1".to_vec()), Int(6379),
            BulkString(b"connected".to_vec()), Int(5),
        ]);
        assert_eq!(parse_role(&r), ServerRole::Replica { master: Endpoint::new("10.0.0.1", 6379), link_up: true });
        assert_eq!(parse_role(&Nil), ServerRole::Unknown);
    }
}
