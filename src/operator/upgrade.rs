//! Operator-driven changes that need the data plane: the rolling upgrade (OnDelete
//! StatefulSets: replicas one at a time, then a controlled `SENTINEL FAILOVER`, then the
//! old master; sentinels last) and `SENTINEL RESET` after the member set changed.
//! Each call does at most ONE disruptive step and returns what it is waiting for; the
//! reconciler requeues, so every wait is bounded by the requeue loop, not by sleeping here.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;
use tracing::info;

use crate::operator::builders::{restart_hash, Inputs};
use crate::operator::crd::RedisFailoverCluster;
use crate::operator::names::{self, Component, MASTER_NAME};
use crate::operator::reconcile::{component_pods, Context, Error};
use crate::operator::tracking::{connect, failover_running, AddressResolver, ClusterKey, Endpoint};

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_hash(p: &Pod) -> Option<&str> {
    p.metadata.annotations.as_ref()?.get(names::ANNOTATION_CONFIG_HASH).map(String::as_str)
}

fn is_master(p: &Pod) -> bool {
    p.labels().get(names::LABEL_ROLE).map(String::as_str) == Some(names::ROLE_MASTER)
}

/// Replication health parsed from `INFO replication` of a replica.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplicaHealth {
    pub link_up: bool,
    pub syncing: bool,
    /// `slave_repl_offset`: how far into the master's stream this replica is.
    pub offset: Option<i64>,
}

fn info_field(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':').map(str::to_string))
}

pub fn parse_replica_info(info: &str) -> ReplicaHealth {
    ReplicaHealth {
        link_up: info_field(info, "master_link_status").as_deref() == Some("up"),
        syncing: info_field(info, "master_sync_in_progress").as_deref() == Some("1"),
        offset: info_field(info, "slave_repl_offset").and_then(|v| v.parse().ok()),
    }
}

/// `master_repl_offset` of a server reporting `role:master`.
pub fn parse_master_offset(info: &str) -> Option<i64> {
    (info_field(info, "role").as_deref() == Some("master")).then_some(())?;
    info_field(info, "master_repl_offset")?.parse().ok()
}

/// A replica is caught up when it is at most this many bytes behind the offset the
/// master reported just before (under writes the two reads are a moment apart).
pub const CAUGHT_UP_MAX_LAG_BYTES: i64 = 64 * 1024;

/// Whether a replica may be counted on before the next disruption: link up, no sync
/// running, and its own offset within `max_lag` of the master's. `Err` says why not.
pub fn catch_up_verdict(master_offset: i64, r: &ReplicaHealth, max_lag: i64) -> Result<(), String> {
    if !r.link_up {
        return Err("master_link_status is not up".into());
    }
    if r.syncing {
        return Err("a sync from the master is in progress".into());
    }
    let Some(offset) = r.offset else { return Err("its INFO has no slave_repl_offset".into()) };
    let lag = master_offset - offset;
    if lag > max_lag {
        return Err(format!("{lag} bytes behind the master (slave_repl_offset {offset}, master_repl_offset {master_offset})"));
    }
    Ok(())
}

async fn read_info(ctx: &Context, ep: &Endpoint, password: &str) -> Option<String> {
    let r = async {
        let mut c = connect(ep, Some(password), ctx.io_timeout).await.ok()?;
        redis::cmd("INFO").arg("replication").query_async::<String>(&mut c).await.ok()
    };
    tokio::time::timeout(ctx.io_timeout * 2, r).await.ok().flatten()
}

fn resolver(ctx: &Context) -> Option<std::sync::Arc<dyn AddressResolver>> {
    ctx.tracker.as_ref().map(|t| t.resolver())
}

/// One step of the rolling upgrade; `Ok(Some(msg))` while an upgrade is in progress.
pub async fn step(ctx: &Context, cr: &RedisFailoverCluster, inputs: &Inputs<'_>, password: &str) -> Result<Option<String>, Error> {
    let key = ClusterKey { namespace: inputs.namespace.clone(), name: inputs.name.clone() };
    let servers = component_pods(ctx, &key, Component::Server).await?;
    let want = restart_hash(inputs, Component::Server);
    let stale: Vec<&Pod> = servers.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && pod_hash(p) != Some(want.as_str())).collect();
    if !stale.is_empty() {
        return upgrade_servers(ctx, cr, &key, &servers, &stale, password).await.map(Some);
    }
    let sentinels = component_pods(ctx, &key, Component::Sentinel).await?;
    let want = restart_hash(inputs, Component::Sentinel);
    let mut stale: Vec<&Pod> = sentinels.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && pod_hash(p) != Some(want.as_str())).collect();
    stale.sort_by_key(|p| names::ordinal_of(&key.name, Component::Sentinel, &p.name_any()).unwrap_or(i32::MAX));
    let Some(victim) = stale.first() else { return Ok(None) };
    if sentinels.len() < cr.spec.sentinel.replicas as usize || !sentinels.iter().all(pod_ready) {
        return Ok(Some("rolling upgrade: waiting for all sentinels to be ready".into()));
    }
    delete_pod(ctx, &key, victim).await?;
    Ok(Some(format!("rolling upgrade: restarted sentinel {}", victim.name_any())))
}

async fn upgrade_servers(ctx: &Context, cr: &RedisFailoverCluster, key: &ClusterKey, all: &[Pod], stale: &[&Pod], password: &str) -> Result<String, Error> {
    if all.len() < cr.spec.redis.replicas as usize || !all.iter().all(pod_ready) {
        return Ok("rolling upgrade: waiting for all servers to be ready".into());
    }
    let Some(resolver) = resolver(ctx) else {
        return Ok("rolling upgrade: no master tracking available".into());
    };
    // Every replica must have caught up with the master (by offset, not only by link
    // state) before the next disruption: the master's offset is read first, so a replica
    // that reaches it holds everything the master had acknowledged at that moment.
    let Some(master_pod) = all.iter().find(|p| is_master(p)) else {
        return Ok("rolling upgrade: waiting for a pod labelled master".into());
    };
    let master_offset = match resolver.server_endpoint(key, &master_pod.name_any()) {
        Some(ep) => read_info(ctx, &ep, password).await.as_deref().and_then(parse_master_offset),
        None => None,
    };
    let Some(master_offset) = master_offset else {
        return Ok(format!("rolling upgrade: waiting for the replication offset of master {}", master_pod.name_any()));
    };
    for p in all.iter().filter(|p| !is_master(p)) {
        let Some(ep) = resolver.server_endpoint(key, &p.name_any()) else { continue };
        let verdict = match read_info(ctx, &ep, password).await {
            Some(info) => catch_up_verdict(master_offset, &parse_replica_info(&info), CAUGHT_UP_MAX_LAG_BYTES),
            None => Err("unreachable".into()),
        };
        if let Err(why) = verdict {
            return Ok(format!("rolling upgrade: waiting for replica {} to catch up: {why}", p.name_any()));
        }
    }
    let mut stale_replicas: Vec<&&Pod> = stale.iter().filter(|p| !is_master(p)).collect();
    stale_replicas.sort_by_key(|p| names::ordinal_of(&key.name, Component::Server, &p.name_any()).unwrap_or(i32::MAX));
    if let Some(p) = stale_replicas.first() {
        delete_pod(ctx, key, p).await?;
        return Ok(format!("rolling upgrade: restarted replica {}", p.name_any()));
    }
    // Only the master is left on the old version: hand over to an upgraded replica.
    if all.len() < 2 {
        let p = stale[0];
        delete_pod(ctx, key, p).await?;
        return Ok(format!("rolling upgrade: restarted the only server {}", p.name_any()));
    }
    let msg = request_failover(ctx, resolver.as_ref(), key, cr.spec.sentinel.replicas, &stale[0].name_any()).await?;
    Ok(format!("rolling upgrade: {msg}"))
}

/// `SENTINEL FAILOVER`, never stacked on a running one; `Ok(msg)` says what happened.
async fn request_failover(ctx: &Context, resolver: &dyn AddressResolver, key: &ClusterKey, sentinels: i32, old_master: &str) -> Result<String, Error> {
    let sentinels = resolver.sentinel_endpoints(key, sentinels);
    // Never stack failovers: wait while any sentinel is still in one.
    for s in &sentinels {
        if failover_running(s, ctx.io_timeout).await {
            return Ok(format!("waiting for the failover away from {old_master} to finish"));
        }
    }
    // Ask ONE sentinel (the first that answers); its error (e.g. -INPROG) is reported as is.
    for s in &sentinels {
        let Ok(mut c) = connect(s, None, ctx.io_timeout).await else { continue };
        let reply = tokio::time::timeout(
            ctx.io_timeout * 2,
            redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME).query_async::<String>(&mut c),
        )
        .await;
        return match reply {
            Ok(Ok(_)) => {
                info!(sentinel = %s, %old_master, "SENTINEL FAILOVER requested");
                Ok(format!("failover away from old master {old_master} requested"))
            }
            Ok(Err(e)) => Ok(format!("SENTINEL FAILOVER refused by {s}: {e}")),
            Err(_) => Ok(format!("SENTINEL FAILOVER to {s} timed out")),
        };
    }
    Err(Error::Redis("no sentinel reachable for SENTINEL FAILOVER".into()))
}

/// Scale-down removing the master's ordinal: the replicas that will be removed get
/// `replica-priority 0` (never promoted), then a controlled failover moves the master to
/// a pod that stays. The StatefulSet keeps the old size until then.
pub async fn move_master_off(ctx: &Context, key: &ClusterKey, cr: &RedisFailoverCluster, master_ordinal: i32) -> Result<String, Error> {
    let Some(resolver) = resolver(ctx) else {
        return Ok("scale-down waits: no master tracking available".into());
    };
    let password = ctx.tracker.as_ref().and_then(|t| t.password(key));
    // Every pod that will go (ordinals >= spec, including those above the master that
    // may still be running) must never be promoted.
    let mut doomed: Vec<i32> = component_pods(ctx, key, Component::Server)
        .await?
        .iter()
        .filter_map(|p| names::ordinal_of(&key.name, Component::Server, &p.name_any()))
        .chain(cr.spec.redis.replicas..master_ordinal)
        .filter(|o| *o >= cr.spec.redis.replicas && *o != master_ordinal)
        .collect();
    doomed.sort_unstable();
    doomed.dedup();
    let mut doomed_pods = Vec::with_capacity(doomed.len());
    for o in doomed {
        let pod = names::pod(&key.name, Component::Server, o);
        let Some(ep) = resolver.server_endpoint(key, &pod) else { continue };
        let r = async {
            let mut c = connect(&ep, password.as_deref(), ctx.io_timeout).await.ok()?;
            redis::cmd("CONFIG").arg("SET").arg("replica-priority").arg(0).query_async::<String>(&mut c).await.ok()?;
            let info: String = redis::cmd("INFO").arg("replication").query_async(&mut c).await.ok()?;
            Some(parse_replica_priority(&info))
        };
        let Some(reported) = tokio::time::timeout(ctx.io_timeout * 2, r).await.ok().flatten() else {
            return Ok(format!("scale-down waits: could not set replica-priority 0 on {pod}"));
        };
        ctx.note_deprioritized(key, &pod);
        match reported {
            // The server must REPORT the new priority before anyone may fail over: the
            // sentinels choose from INFO, and a server may apply CONFIG SET to what INFO
            // shows a little later (rf-server did, up to one cron tick).
            Some(0) | None => {}
            Some(p) => {
                return Ok(format!("scale-down waits: {pod} still reports replica priority {p} after CONFIG SET replica-priority 0"))
            }
        }
        doomed_pods.push(pod);
    }
    // Every sentinel must have read that priority too (Redis Sentinel refreshes a
    // replica's INFO only every 10 s and chooses from what it last read), or the forced
    // failover may promote a pod that is about to be removed.
    for s in resolver.sentinel_endpoints(key, cr.spec.sentinel.replicas) {
        let Some(known) = sentinel_replica_priorities(&s, ctx.io_timeout).await else { continue };
        for (ep, priority) in known {
            let Some(pod) = resolver.pod_for(key, &ep) else { continue };
            if priority != 0 && doomed_pods.contains(&pod) {
                return Ok(format!("scale-down waits: sentinel {s} still sees replica priority {priority} for {pod}"));
            }
        }
    }
    let master_pod = names::pod(&key.name, Component::Server, master_ordinal);
    let msg = request_failover(ctx, resolver.as_ref(), key, cr.spec.sentinel.replicas, &master_pod).await?;
    Ok(format!("scale-down: {msg} (master {master_pod} is beyond spec.redis.replicas)"))
}

/// `slave_priority` (or `replica_priority`) of an `INFO replication` reply; None when
/// absent (a master does not report it).
pub fn parse_replica_priority(info: &str) -> Option<i64> {
    info_field(info, "slave_priority").or_else(|| info_field(info, "replica_priority"))?.parse().ok()
}

/// The replicas a sentinel knows (`SENTINEL REPLICAS`) with the priority it last read.
pub fn parse_sentinel_replicas(entries: &[Vec<String>]) -> Vec<(Endpoint, i64)> {
    entries
        .iter()
        .filter_map(|e| {
            let field = |k: &str| e.chunks(2).find(|c| c.first().map(String::as_str) == Some(k)).and_then(|c| c.get(1).cloned());
            Some((Endpoint::new(field("ip")?, field("port")?.parse().ok()?), field("slave-priority")?.parse().ok()?))
        })
        .collect()
}

async fn sentinel_replica_priorities(s: &Endpoint, timeout: Duration) -> Option<Vec<(Endpoint, i64)>> {
    let r = async {
        let mut c = connect(s, None, timeout).await.ok()?;
        let v: Vec<Vec<String>> = redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME).query_async(&mut c).await.ok()?;
        Some(parse_sentinel_replicas(&v))
    };
    tokio::time::timeout(timeout * 2, r).await.ok().flatten()
}

async fn delete_pod(ctx: &Context, key: &ClusterKey, p: &Pod) -> Result<(), Error> {
    info!(pod = %p.name_any(), "rolling upgrade: deleting pod to pick up the new template");
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    api.delete(&p.name_any(), &DeleteParams::default()).await?;
    Ok(())
}

/// `SENTINEL RESET mymaster` on each sentinel in turn. Before the next one is reset, the
/// previous one must know the master, all `servers - 1` replicas and its `sentinels - 1`
/// peers again (bounded wait), so a majority of informed sentinels always remains.
/// Returns how many sentinels were reset.
pub async fn reset_sentinels(ctx: &Context, key: &ClusterKey, sentinels: i32, servers: i32) -> Result<usize, Error> {
    let Some(resolver) = resolver(ctx) else { return Ok(0) };
    let mut done = 0;
    for s in resolver.sentinel_endpoints(key, sentinels) {
        let mut c = connect(&s, None, ctx.io_timeout).await.map_err(|e| Error::Redis(e.to_string()))?;
        redis::cmd("SENTINEL")
            .arg("RESET")
            .arg(MASTER_NAME)
            .query_async::<i64>(&mut c)
            .await
            .map_err(|e| Error::Redis(format!("SENTINEL RESET on {s}: {e}")))?;
        done += 1;
        info!(sentinel = %s, "SENTINEL RESET done; waiting until it knows the group again");
        let deadline = tokio::time::Instant::now() + RESET_RECOVERY;
        loop {
            if let Some(k) = sentinel_knowledge(&s, ctx.io_timeout).await {
                if k.num_slaves >= (servers - 1).max(0) as i64 && k.num_other_sentinels >= (sentinels - 1).max(0) as i64 {
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Redis(format!(
                    "sentinel {s} did not rediscover {} replicas and {} peers within {RESET_RECOVERY:?} after SENTINEL RESET",
                    servers - 1,
                    sentinels - 1
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(done)
}

/// Bound on the wait for one sentinel to rediscover the group after a reset (peers are
/// announced every 2 s through the master's hello channel).
pub const RESET_RECOVERY: Duration = Duration::from_secs(20);

#[derive(Debug, PartialEq, Eq)]
pub struct SentinelKnowledge {
    pub num_slaves: i64,
    pub num_other_sentinels: i64,
}

/// Parses the flat field/value list of `SENTINEL MASTER`.
pub fn parse_sentinel_master(v: &[String]) -> Option<SentinelKnowledge> {
    let field = |k: &str| v.chunks(2).find(|c| c.first().map(String::as_str) == Some(k)).and_then(|c| c.get(1)?.parse().ok());
    Some(SentinelKnowledge { num_slaves: field("num-slaves")?, num_other_sentinels: field("num-other-sentinels")? })
}

async fn sentinel_knowledge(s: &Endpoint, timeout: Duration) -> Option<SentinelKnowledge> {
    let r = async {
        let mut c = connect(s, None, timeout).await.ok()?;
        let v: Vec<String> = redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME).query_async(&mut c).await.ok()?;
        parse_sentinel_master(&v)
    };
    tokio::time::timeout(timeout * 2, r).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_master_parsing() {
        let v: Vec<String> = ["name", "mymaster", "num-slaves", "2", "num-other-sentinels", "1"].map(String::from).to_vec();
        assert_eq!(parse_sentinel_master(&v), Some(SentinelKnowledge { num_slaves: 2, num_other_sentinels: 1 }));
        assert_eq!(parse_sentinel_master(&v[..2]), None);
    }

    #[test]
    fn replica_priority_parsing() {
        assert_eq!(parse_replica_priority("role:slave\r\nslave_priority:0\r\n"), Some(0));
        assert_eq!(parse_replica_priority("replica_priority:100\n"), Some(100));
        assert_eq!(parse_replica_priority("role:master\r\n"), None);
    }

    #[test]
    fn sentinel_replicas_parsing() {
        let entry = |ip: &str, port: &str, prio: &str| -> Vec<String> {
            ["name", "x", "ip", ip, "port", port, "flags", "slave", "slave-priority", prio].map(String::from).to_vec()
        };
        let v = vec![entry("10.0.0.1", "6379", "0"), entry("10.0.0.2", "6380", "100"), vec!["ip".into(), "10.0.0.3".into()]];
        assert_eq!(
            parse_sentinel_replicas(&v),
            vec![(Endpoint::new("10.0.0.1", 6379), 0), (Endpoint::new("10.0.0.2", 6380), 100)],
            "an entry without port or priority is skipped"
        );
    }

    #[test]
    fn replica_info_parsing() {
        let up = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:4242\r\n";
        assert_eq!(parse_replica_info(up), ReplicaHealth { link_up: true, syncing: false, offset: Some(4242) });
        let down = "role:slave\nmaster_link_status:down\nmaster_sync_in_progress:1\n";
        assert_eq!(parse_replica_info(down), ReplicaHealth { link_up: false, syncing: true, offset: None });
        assert_eq!(parse_replica_info("role:master\n"), ReplicaHealth { link_up: false, syncing: false, offset: None });
        // A field whose name is a prefix of another is not confused with it.
        assert_eq!(parse_replica_info("slave_repl_offset_x:1\r\n").offset, None);
    }

    #[test]
    fn master_offset_only_from_a_master() {
        assert_eq!(parse_master_offset("# Replication\r\nrole:master\r\nmaster_repl_offset:1000\r\n"), Some(1000));
        assert_eq!(parse_master_offset("role:slave\r\nmaster_repl_offset:1000\r\n"), None, "a demoted master is no reference");
        assert_eq!(parse_master_offset("role:master\r\n"), None);
    }

    #[test]
    fn caught_up_is_offset_based() {
        let r = |link_up, syncing, offset| ReplicaHealth { link_up, syncing, offset };
        assert_eq!(catch_up_verdict(1000, &r(true, false, Some(1000)), 0), Ok(()));
        assert_eq!(catch_up_verdict(1000, &r(true, false, Some(1200)), 0), Ok(()), "ahead of the earlier master read");
        assert_eq!(catch_up_verdict(1000, &r(true, false, Some(900)), 100), Ok(()), "within the bound");
        // Link up and no sync running, but far behind: NOT caught up (the old check said yes).
        let behind = catch_up_verdict(10_000_000, &r(true, false, Some(1000)), CAUGHT_UP_MAX_LAG_BYTES).unwrap_err();
        assert!(behind.contains("9999000 bytes behind"), "{behind}");
        assert!(catch_up_verdict(1000, &r(false, false, Some(1000)), 0).unwrap_err().contains("not up"));
        assert!(catch_up_verdict(1000, &r(true, true, Some(1000)), 0).unwrap_err().contains("sync"));
        assert!(catch_up_verdict(1000, &r(true, false, None), 0).unwrap_err().contains("slave_repl_offset"));
    }
}
