//! The reconciler: desired objects via server-side apply (one field manager, owner
//! references), status with kstatus conditions, scaling, operator-driven rolling upgrades.
//! A bad spec only sets `Degraded`: nothing is applied or deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::operator::builders::{self, BuildError, Inputs, MasterRef};
use crate::operator::crd::{MasterStatus, RedisFailoverCluster, RedisFailoverClusterStatus};
use crate::operator::metrics::{ErrorLabels, Metrics};
use crate::operator::names::{self, Component, FIELD_MANAGER};
use crate::operator::status::{self, Health, DEGRADED, PROGRESSING, READY};
use crate::operator::tracking::{ClusterKey, ClusterParams, Tracker};

/// Annotation on the sentinel StatefulSet: the member counts (`servers=N,sentinels=M`) the
/// sentinels were last reset for.
pub const ANNOTATION_SERVER_MEMBERS: &str = "redisfailover.io/server-members";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("building desired objects: {0}")]
    Build(#[from] BuildError),
    #[error("serializing {0}: {1}")]
    Serialize(&'static str, serde_json::Error),
    #[error("redis: {0}")]
    Redis(String),
}

impl Error {
    /// Short, bounded label for the `reconcile_errors` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "kube_api",
            Error::Kube(_) => "kube_client",
            Error::Build(_) => "build",
            Error::Serialize(..) => "serialize",
            Error::Redis(_) => "redis",
        }
    }
}

/// Shared state of the controller.
pub struct Context {
    pub client: kube::Client,
    pub metrics: Metrics,
    /// Master tracking; None only in tests of the reconciler alone.
    pub tracker: Option<Tracker>,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<RedisFailoverCluster>, u32>>,
    /// Server pods given `replica-priority 0` for a scale-down (never promoted while they
    /// are about to go). If the scale-down is called off, their priority is restored.
    deprioritized: Mutex<HashMap<ClusterKey, std::collections::BTreeSet<String>>>,
    /// Timeout for redis commands issued during upgrades and resets.
    pub io_timeout: Duration,
}

impl Context {
    pub fn new(client: kube::Client, metrics: Metrics, tracker: Option<Tracker>) -> Self {
        Context {
            client,
            metrics,
            tracker,
            failures: Mutex::new(HashMap::new()),
            deprioritized: Mutex::new(HashMap::new()),
            io_timeout: Duration::from_secs(2),
        }
    }

    /// Records that `pod` was given `replica-priority 0` by a scale-down.
    pub fn note_deprioritized(&self, key: &ClusterKey, pod: &str) {
        self.deprioritized.lock().entry(key.clone()).or_default().insert(pod.to_string());
    }

    /// Pods of a cluster currently held at `replica-priority 0` by a scale-down.
    pub fn deprioritized(&self, key: &ClusterKey) -> Vec<String> {
        self.deprioritized.lock().get(key).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    fn forget_deprioritized(&self, key: &ClusterKey, pod: &str) {
        if let Some(set) = self.deprioritized.lock().get_mut(key) {
            set.remove(pod);
        }
    }
}

fn pp() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply<K>(client: &kube::Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api.patch(&name, &pp(), &Patch::Apply(obj)).await?)
}

/// Backoff: 1s, 2s, 4s ... capped at 5 minutes.
pub fn backoff_for(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(8).saturating_sub(1)).min(Duration::from_secs(300))
}

pub fn error_policy(cr: Arc<RedisFailoverCluster>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.get_or_create(&ErrorLabels { error: err.metric_label().into() }).inc();
    let n = {
        let mut f = ctx.failures.lock();
        let n = f.entry(ObjectRef::from_obj(&*cr)).or_default();
        *n += 1;
        *n
    };
    let wait = backoff_for(n);
    warn!(name = %cr.name_any(), error = %err, failures = n, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// Outcome of a reconcile that the status writer turns into conditions.
#[derive(Debug, Default)]
struct Progress {
    ready_servers: i32,
    ready_sentinels: i32,
    /// Human-readable reasons why the cluster is not Ready yet.
    waiting: Vec<String>,
    /// Spec parts that cannot be applied (e.g. immutable StatefulSet fields); the rest was.
    degraded: Vec<String>,
}

#[instrument(skip_all, fields(name = %cr.name_any(), namespace = cr.namespace().unwrap_or_default()))]
pub async fn reconcile(cr: Arc<RedisFailoverCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&cr, &ctx).await;
    if result.is_ok() {
        ctx.failures.lock().remove(&ObjectRef::from_obj(&*cr));
    }
    result
}

async fn reconcile_inner(cr: &RedisFailoverCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cr.name_any();
    let Some(ns) = cr.namespace() else {
        return Err(Error::Build(BuildError::MissingMeta("namespace")));
    };
    let key = ClusterKey { namespace: ns.clone(), name: name.clone() };
    if cr.meta().deletion_timestamp.is_some() {
        // Owned objects go with the owner (garbage collection); PVCs follow the
        // StatefulSet retention policy (spec.persistence.keepOnDelete).
        if let Some(t) = &ctx.tracker {
            t.forget(&key);
        }
        return Ok(Action::await_change());
    }
    let generation = cr.metadata.generation;

    // 1. Spec checks the schema cannot do. Bad spec: condition only, nothing touched.
    let spec_errors = builders::validate_spec(&cr.spec);
    if !spec_errors.is_empty() {
        let msg = builders::config::spec_errors_message(&spec_errors);
        warn!(%msg, "invalid spec: not applying anything");
        // The running group still needs its labels moved on failover (e.g. after an
        // operator restart with a bad spec): keep tracking if the password is readable.
        if let (Some(t), Ok(inputs)) = (&ctx.tracker, Inputs::new(cr, MasterRef { ordinal: 0 })) {
            if let Some(pw) = read_password(ctx, &inputs).await? {
                t.ensure(&key, ClusterParams { sentinels: cr.spec.sentinel.replicas.max(1), password: Some(pw) }, cr.status.as_ref());
            }
        }
        write_invalid(ctx, cr, status::REASON_INVALID_SPEC, &msg).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    // 2. The password Secret.
    let master = current_master(cr, ctx, &key);
    let inputs = Inputs::new(cr, master.clone())?;
    let password = match ensure_password(ctx, &inputs).await? {
        Ok(pw) => pw,
        Err(msg) => {
            warn!(%msg, "auth secret problem: not applying anything");
            write_invalid(ctx, cr, "AuthSecretUnavailable", &msg).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };

    // 3. Desired objects, server-side applied.
    let client = &ctx.client;
    apply(client, &ns, &builders::server_config_map(&inputs)?).await?;
    apply(client, &ns, &builders::sentinel_config_map(&inputs)?).await?;
    for svc in builders::services(&inputs)? {
        apply(client, &ns, &svc).await?;
    }
    for pdb in builders::pdbs(&inputs)? {
        apply(client, &ns, &pdb).await?;
    }
    let np_api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    if cr.spec.network_policy.enabled {
        apply(client, &ns, &builders::network_policy(&inputs)?).await?;
    } else if let Some(existing) = np_api.get_opt(&names::network_policy(&name)).await? {
        if is_owned_by(&existing.metadata.owner_references, cr) {
            np_api.delete(&names::network_policy(&name), &DeleteParams::default()).await?;
        }
    }
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let previous_members = sts_api
        .get_opt(&names::statefulset(&name, Component::Sentinel))
        .await?
        .and_then(|s| s.metadata.annotations.and_then(|a| a.get(ANNOTATION_SERVER_MEMBERS).cloned()));
    // Volume claim templates cannot change on a live StatefulSet: keep the live ones,
    // manage the rest, say so in Degraded (instead of a 422 on every reconcile).
    let mut degraded: Vec<String> = vec![];
    let server_sts_name = names::statefulset(&name, Component::Server);
    let live_server_sts = sts_api.get_opt(&server_sts_name).await?;
    let mut desired_server_sts = builders::server_statefulset(&inputs)?;
    if let Some(live) = &live_server_sts {
        if let Some(change) = builders::immutable::storage_change(live, &desired_server_sts) {
            let msg = builders::immutable::storage_change_message(&server_sts_name, &change);
            warn!(%msg, "forbidden StatefulSet change: keeping the live volume claims");
            degraded.push(msg);
            builders::immutable::keep_live_storage(&mut desired_server_sts, live);
        }
    }
    let server_sts = match apply(client, &ns, &desired_server_sts).await {
        Ok(s) => s,
        // Any other field the API refuses (422 Invalid): same treatment, never an error loop.
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 422 => {
            let msg = format!(
                "the API refused StatefulSet {server_sts_name}: {} (revert the spec change that caused it; the rest is still managed)",
                status.message
            );
            warn!(%msg, "StatefulSet apply refused");
            degraded.push(msg);
            live_server_sts.clone().unwrap_or(desired_server_sts)
        }
        Err(e) => return Err(e),
    };
    if let Some(t) = &ctx.tracker {
        t.ensure(&key, ClusterParams { sentinels: cr.spec.sentinel.replicas, password: Some(password.clone()) }, cr.status.as_ref());
    }
    let mut waiting = vec![];

    // Scale-down that would remove the master: move the master first.
    if master.ordinal >= cr.spec.redis.replicas {
        let msg = crate::operator::upgrade::move_master_off(ctx, &key, cr, master.ordinal).await?;
        waiting.push(msg);
    } else if let Some(msg) = restore_priorities(ctx, &key, cr, &password).await {
        waiting.push(msg);
    }

    // 4. Member set changed (servers or sentinels): SENTINEL RESET, one sentinel at a
    //    time, once the pods match the spec, so removed members are forgotten. The
    //    annotation only moves on after a successful reset, so a failed reset is retried.
    let (want_servers, want_sentinels) = (cr.spec.redis.replicas, cr.spec.sentinel.replicas);
    let desired_members = format!("servers={want_servers},sentinels={want_sentinels}");
    let mut members = previous_members.clone().unwrap_or_else(|| desired_members.clone());
    if previous_members.as_deref().is_some_and(|p| p != desired_members) {
        let live = |pods: Vec<Pod>| pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).count();
        let servers = live(component_pods(ctx, &key, Component::Server).await?);
        let sentinels = live(component_pods(ctx, &key, Component::Sentinel).await?);
        if servers == want_servers as usize && sentinels == want_sentinels as usize {
            info!(from = ?previous_members, to = %desired_members, "member set changed: resetting sentinels one at a time");
            match crate::operator::upgrade::reset_sentinels(ctx, &key, want_sentinels, want_servers).await {
                Ok(n) => {
                    info!(sentinels = n, "sentinels reset");
                    members = desired_members.clone();
                }
                Err(e) => waiting.push(format!("sentinel reset incomplete: {e}")),
            }
        } else {
            waiting.push(format!(
                "waiting for {want_servers} server and {want_sentinels} sentinel pods before SENTINEL RESET ({servers} and {sentinels} now)"
            ));
        }
    }
    let mut sentinel_sts = builders::sentinel_statefulset(&inputs)?;
    sentinel_sts.metadata.annotations.get_or_insert_with(Default::default).insert(ANNOTATION_SERVER_MEMBERS.into(), members);
    let sentinel_sts = apply(client, &ns, &sentinel_sts).await?;

    let mut progress = Progress {
        ready_servers: server_sts.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
        ready_sentinels: sentinel_sts.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
        waiting,
        degraded,
    };

    // 5. Operator-driven rolling upgrade (OnDelete StatefulSets).
    let rollout = crate::operator::upgrade::step(ctx, cr, &inputs, &password).await?;
    if let Some(msg) = rollout {
        progress.waiting.push(msg);
    }

    write_status(ctx, cr, &key, generation, progress).await
}

/// After a scale-down moved the master (or was called off): pods still in the spec that
/// were held at `replica-priority 0` get their configured priority back; pods beyond the
/// spec are going away with their priority. `Some(msg)` while a restore failed.
async fn restore_priorities(ctx: &Context, key: &ClusterKey, cr: &RedisFailoverCluster, password: &str) -> Option<String> {
    let held = ctx.deprioritized(key);
    if held.is_empty() {
        return None;
    }
    let resolver = ctx.tracker.as_ref()?.resolver();
    let priority = builders::configured_replica_priority(&cr.spec);
    for pod in held {
        let kept = names::ordinal_of(&key.name, Component::Server, &pod).is_some_and(|o| o < cr.spec.redis.replicas);
        if !kept {
            ctx.forget_deprioritized(key, &pod);
            continue;
        }
        let Some(ep) = resolver.server_endpoint(key, &pod) else { continue };
        let set = async {
            let mut c = crate::operator::tracking::connect(&ep, Some(password), ctx.io_timeout).await.ok()?;
            redis::cmd("CONFIG").arg("SET").arg("replica-priority").arg(priority).query_async::<String>(&mut c).await.ok()
        };
        if tokio::time::timeout(ctx.io_timeout * 2, set).await.ok().flatten().is_some() {
            info!(%pod, priority, "scale-down over: replica priority restored");
            ctx.forget_deprioritized(key, &pod);
        } else {
            return Some(format!("could not restore replica-priority {priority} on {pod} (set to 0 for a scale-down)"));
        }
    }
    None
}

fn is_owned_by(refs: &Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>, cr: &RedisFailoverCluster) -> bool {
    let uid = cr.uid();
    refs.iter().flatten().any(|r| Some(&r.uid) == uid.as_ref())
}

/// The master the configs should name: the tracker's (freshest), else status, else ordinal 0.
/// It may be beyond `spec.redis.replicas` during a scale-down (see [`Inputs::server_replicas`]).
fn current_master(cr: &RedisFailoverCluster, ctx: &Context, key: &ClusterKey) -> MasterRef {
    let from_tracker = ctx.tracker.as_ref().and_then(|t| t.state(key)).and_then(|s| s.master);
    let from_status = cr.status.as_ref().and_then(|s| s.master.clone());
    from_tracker
        .or(from_status)
        .and_then(|m: MasterStatus| names::ordinal_of(&key.name, Component::Server, &m.pod))
        .map(|ordinal| MasterRef { ordinal })
        .unwrap_or(MasterRef { ordinal: 0 })
}

/// The password if its Secret and key exist (never creates anything).
async fn read_password(ctx: &Context, i: &Inputs<'_>) -> Result<Option<String>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &i.namespace);
    let Some(secret) = api.get_opt(&i.password.name).await? else { return Ok(None) };
    Ok(secret_value(&secret, &i.password.key))
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let from_data = secret.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string = secret.string_data.as_ref().and_then(|d| d.get(key)).cloned();
    from_data.or(from_string).filter(|p| !p.is_empty())
}

/// Returns the password, creating the generated Secret if needed. `Ok(Err(msg))` is a
/// user error (missing Secret or key) that becomes a Degraded condition.
async fn ensure_password(ctx: &Context, i: &Inputs<'_>) -> Result<Result<String, String>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &i.namespace);
    let user_ref = i.cluster.spec.auth.as_ref().and_then(|a| a.secret_ref.as_ref());
    let existing = api.get_opt(&i.password.name).await?;
    let Some(secret) = existing else {
        if user_ref.is_some() {
            return Ok(Err(format!("spec.auth.secretRef: Secret {:?} not found in namespace {:?}", i.password.name, i.namespace)));
        }
        let pw: String = rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(32).map(char::from).collect();
        apply(&ctx.client, &i.namespace, &builders::generated_secret(i, &pw)?).await?;
        info!(secret = %i.password.name, "generated the auth Secret");
        return Ok(Ok(pw));
    };
    match secret_value(&secret, &i.password.key) {
        Some(pw) => Ok(Ok(pw)),
        None => Ok(Err(format!("auth Secret {:?} has no non-empty key {:?}", i.password.name, i.password.key))),
    }
}

/// Status for a spec or Secret the operator refuses.
async fn write_invalid(ctx: &Context, cr: &RedisFailoverCluster, reason: &str, msg: &str) -> Result<(), Error> {
    let g = cr.metadata.generation;
    let mut conds = cr.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    status::set_condition(&mut conds, DEGRADED, true, reason, msg, g);
    status::set_condition(&mut conds, READY, false, reason, msg, g);
    status::set_condition(&mut conds, PROGRESSING, false, reason, "waiting for a valid spec", g);
    patch_status(ctx, cr, json!({"observedGeneration": g, "conditions": conds})).await
}

async fn patch_status(ctx: &Context, cr: &RedisFailoverCluster, status: serde_json::Value) -> Result<(), Error> {
    let api: Api<RedisFailoverCluster> = Api::namespaced(ctx.client.clone(), &cr.namespace().unwrap_or_default());
    let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    api.patch_status(&cr.name_any(), &pp, &Patch::Merge(&json!({ "status": status }))).await?;
    Ok(())
}

async fn write_status(ctx: &Context, cr: &RedisFailoverCluster, key: &ClusterKey, generation: Option<i64>, mut p: Progress) -> Result<Action, Error> {
    let tracked = ctx.tracker.as_ref().and_then(|t| t.state(key));
    let old: RedisFailoverClusterStatus = cr.status.clone().unwrap_or_default();
    let master = tracked.as_ref().and_then(|t| t.master.clone()).or(old.master.clone());
    let health = tracked.as_ref().map(|t| t.health.clone()).unwrap_or(Health::Unknown);
    let (servers, sentinels) = (cr.spec.redis.replicas, cr.spec.sentinel.replicas);
    if p.ready_servers < servers {
        p.waiting.insert(0, format!("{}/{servers} servers ready", p.ready_servers));
    }
    if p.ready_sentinels < sentinels {
        p.waiting.insert(0, format!("{}/{sentinels} sentinels ready", p.ready_sentinels));
    }
    if master.is_none() {
        p.waiting.push("master not yet confirmed by the sentinels".into());
    }
    if let Some(gap) = tracked.as_ref().and_then(|t| t.discovering.clone()) {
        p.waiting.push(gap);
    }
    let mut conds = old.conditions.clone();
    match &health {
        Health::NoMajority(_) => status::apply_tracking_health(&mut conds, &health, generation),
        _ if !p.degraded.is_empty() => {
            status::set_condition(&mut conds, DEGRADED, true, status::REASON_IMMUTABLE_FIELD, &p.degraded.join("; "), generation)
        }
        _ => status::set_condition(&mut conds, DEGRADED, false, "AsExpected", "spec valid and sentinels agree", generation),
    }
    let ready = p.waiting.is_empty() && p.degraded.is_empty() && !matches!(health, Health::NoMajority(_));
    if !p.degraded.is_empty() && !matches!(health, Health::NoMajority(_)) {
        // The group runs, but not as the spec says: not Ready, and not progressing either
        // (waiting for the user), so `kubectl wait` and GitOps tools report it.
        let msg = p.degraded.join("; ");
        status::set_condition(&mut conds, READY, false, status::REASON_IMMUTABLE_FIELD, &msg, generation);
        let progressing = if p.waiting.is_empty() { "waiting for the spec to be corrected".to_string() } else { p.waiting.join("; ") };
        status::set_condition(&mut conds, PROGRESSING, !p.waiting.is_empty(), status::REASON_IMMUTABLE_FIELD, &progressing, generation);
    } else if ready {
        let m = master.as_ref().map(|m| m.pod.clone()).unwrap_or_default();
        let msg = format!("master {m}, {servers} servers and {sentinels} sentinels ready");
        status::set_condition(&mut conds, READY, true, "AllReady", &msg, generation);
        status::set_condition(&mut conds, PROGRESSING, false, "Stable", "nothing to do", generation);
    } else if let Health::NoMajority(msg) = &health {
        status::set_condition(&mut conds, PROGRESSING, false, status::REASON_NO_MAJORITY, msg, generation);
    } else {
        let msg = p.waiting.join("; ");
        status::set_condition(&mut conds, READY, false, "NotReady", &msg, generation);
        status::set_condition(&mut conds, PROGRESSING, true, "Reconciling", &msg, generation);
    }
    let mut s = json!({
        "observedGeneration": generation,
        "readyServers": p.ready_servers,
        "readySentinels": p.ready_sentinels,
        "conditions": conds,
    });
    if let Some(m) = master {
        s["master"] = json!(m);
    }
    if let Some(t) = &tracked {
        s["failoverCount"] = json!(t.failover_count);
        if t.last_failover_time.is_some() {
            s["lastFailoverTime"] = json!(t.last_failover_time);
        }
    }
    patch_status(ctx, cr, s).await?;
    Ok(if ready { Action::requeue(Duration::from_secs(60)) } else { Action::requeue(Duration::from_secs(10)) })
}

/// Pods of one component of a cluster.
pub async fn component_pods(ctx: &Context, key: &ClusterKey, c: Component) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let selector = names::selector_labels(&key.name, c).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_for(1), Duration::from_secs(1));
        assert_eq!(backoff_for(2), Duration::from_secs(2));
        assert_eq!(backoff_for(4), Duration::from_secs(8));
        assert_eq!(backoff_for(50), Duration::from_secs(128));
        assert!(backoff_for(9) <= Duration::from_secs(300));
    }

    #[test]
    fn metric_labels_are_bounded() {
        assert_eq!(Error::Redis("x".into()).metric_label(), "redis");
        assert_eq!(Error::Build(BuildError::MissingMeta("uid")).metric_label(), "build");
    }
}
