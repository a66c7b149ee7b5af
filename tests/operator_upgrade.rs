//! Operator-driven rolling upgrade and SENTINEL RESET, against real server/sentinel
//! processes on loopback. The in-memory API has no StatefulSet controller, so the test
//! plays it: a deleted pod is recreated with the new template hash.

mod common_operator;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common_operator::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use redis_failover::operator::crd::RedisFailoverCluster;
use redis_failover::operator::reconcile::Context;
use redis_failover::operator::status;
use redis_failover::operator::tracking::Tracker;
use serde_json::json;

async fn put_pod(client: &kube::Client, name: &str, hash: &str, role: Option<&str>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let component = if name.contains("-sentinel-") { "sentinel" } else { "server" };
    let mut labels = json!({
        "app.kubernetes.io/name": "redis-failover", "app.kubernetes.io/instance": NAME,
        "app.kubernetes.io/component": component, "app.kubernetes.io/managed-by": "rf-operator",
    });
    if let Some(r) = role {
        labels["redisfailover.io/role"] = json!(r);
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels,
                     "annotations": {"redisfailover.io/config-hash": hash}},
        "spec": {"containers": [{"name": "server", "image": "x"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap();
    match pods.get_opt(name).await.unwrap() {
        Some(_) => {
            pods.patch(name, &PatchParams::default(), &Patch::Merge(&serde_json::to_value(&pod).unwrap())).await.unwrap();
        }
        None => {
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
    }
}

async fn add_password_secret(client: &kube::Client) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rf-auth", "namespace": NS},
        "stringData": {"password": PASSWORD}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), NS).create(&PostParams::default(), &secret).await.unwrap();
}

async fn reconcile_once(bed: &Bed, ctx: &Arc<Context>) -> String {
    reconcile_as_controller(bed, ctx).await;
    let st = bed.cluster().await.status.unwrap();
    status::find(&st.conditions, status::PROGRESSING).map(|c| c.message.clone()).unwrap_or_default()
}

/// A test bed with the password Secret, a tracker and the operator's context.
async fn start_operator() -> (Bed, Tracker, Arc<Context>) {
    let bed = Bed::start().await;
    add_password_secret(&bed.client).await;
    let tracker = bed.tracker().await;
    let ctx = Arc::new(Context::new(bed.client.clone(), bed.metrics.clone(), Some(tracker.clone())));
    (bed, tracker, ctx)
}

/// The three server pods, ready, with template `hash`; ordinal 0 labelled master.
async fn put_server_pods(client: &kube::Client, hash: &str) {
    for i in 0..3 {
        put_pod(client, &pod_name(i), hash, Some(if i == 0 { "master" } else { "replica" })).await;
    }
}

async fn wait_tracker_healthy(tracker: &Tracker) {
    wait_for("tracker healthy", Duration::from_secs(15), || async {
        (tracker.state(&Bed::key())?.health == status::Health::Healthy).then_some(())
    })
    .await;
}

async fn server_hash(client: &kube::Client) -> String {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS).get("rf-server").await.unwrap();
    sts.spec.unwrap().template.metadata.unwrap().annotations.unwrap()["redisfailover.io/config-hash"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_restarts_replicas_then_fails_over_then_old_master() {
    let (bed, tracker, ctx) = start_operator().await;
    // Pods run an older template; all ready.
    put_server_pods(&bed.client, "old-hash").await;
    wait_tracker_healthy(&tracker).await;

    let started = Instant::now();
    let mut deleted: Vec<String> = vec![];
    let mut messages: Vec<String> = vec![];
    let mut master_when_deleted: Vec<Vec<String>> = vec![];
    for _round in 0..80 {
        let msg = reconcile_once(&bed, &ctx).await;
        if messages.last() != Some(&msg) {
            messages.push(msg.clone());
        }
        let want = server_hash(&bed.client).await;
        let pods: Api<Pod> = Api::namespaced(bed.client.clone(), NS);
        for i in 0..3 {
            if pods.get_opt(&pod_name(i)).await.unwrap().is_none() {
                deleted.push(pod_name(i));
                master_when_deleted.push(masters(&bed.labels().await));
                // The "StatefulSet controller" brings the pod back on the new template.
                put_pod(&bed.client, &pod_name(i), &want, None).await;
            }
        }
        let all_new = pods.list(&Default::default()).await.unwrap().items.iter().all(|p| {
            p.metadata.annotations.as_ref().and_then(|a| a.get("redisfailover.io/config-hash")) == Some(&want)
        });
        if all_new && !msg.contains("rolling upgrade") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "upgrade not done in 60 s: {messages:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("upgrade steps: {messages:#?}\ndeleted in order: {deleted:?}");
    assert_eq!(deleted.len(), 3, "{deleted:?} / {messages:#?}");
    assert_eq!(&deleted[..2], &["rf-server-1".to_string(), "rf-server-2".to_string()], "replicas first, lowest ordinal first");
    assert_eq!(deleted[2], "rf-server-0", "old master last");
    // When the old master was restarted, it no longer was the master.
    assert!(!master_when_deleted[2].contains(&"rf-server-0".to_string()), "{master_when_deleted:?}");
    assert!(messages.iter().any(|m| m.contains("failover away from old master rf-server-0 requested")), "{messages:#?}");
    let st = bed.cluster().await.status.unwrap();
    assert_eq!(st.failover_count, 1);
    assert_ne!(st.master.unwrap().pod, "rf-server-0");
    println!("MEASURED: rolling upgrade of 3 servers took {} ms", started.elapsed().as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_change_resets_sentinels_once() {
    let (bed, _tracker, ctx) = start_operator().await;
    let want_hash = {
        reconcile_once(&bed, &ctx).await;
        server_hash(&bed.client).await
    };
    let sts: Api<StatefulSet> = Api::namespaced(bed.client.clone(), NS);
    let sentinel_hash = sts.get("rf-sentinel").await.unwrap().spec.unwrap().template.metadata.unwrap().annotations.unwrap()
        ["redisfailover.io/config-hash"].clone();
    for i in 0..3 {
        put_pod(&bed.client, &pod_name(i), &want_hash, Some(if i == 0 { "master" } else { "replica" })).await;
        put_pod(&bed.client, &format!("{NAME}-sentinel-{i}"), &sentinel_hash, None).await;
    }
    let members = |s: StatefulSet| s.metadata.annotations.unwrap()["redisfailover.io/server-members"].clone();
    assert_eq!(members(sts.get("rf-sentinel").await.unwrap()), "servers=3,sentinels=3");

    // Spec says 2 servers; while 3 pods remain, no reset yet.
    let api: Api<RedisFailoverCluster> = Api::namespaced(bed.client.clone(), NS);
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"redis": {"replicas": 2}}}))).await.unwrap();
    let msg = reconcile_once(&bed, &ctx).await;
    assert!(msg.contains("waiting for 2 server and 3 sentinel pods before SENTINEL RESET (3 and 3 now)"), "{msg}");
    assert_eq!(members(sts.get("rf-sentinel").await.unwrap()), "servers=3,sentinels=3");

    // The pod goes away (its process too): now every sentinel is reset, one at a time.
    Api::<Pod>::namespaced(bed.client.clone(), NS).delete("rf-server-2", &Default::default()).await.unwrap();
    let mut bed = bed;
    bed.servers[2].kill();
    let t0 = Instant::now();
    reconcile_once(&bed, &ctx).await;
    println!("MEASURED: rolling SENTINEL RESET of 3 sentinels took {} ms", t0.elapsed().as_millis());
    assert_eq!(members(sts.get("rf-sentinel").await.unwrap()), "servers=2,sentinels=3");
    for s in &bed.sentinels {
        let m: Vec<String> = query(s.port, None, &["SENTINEL", "MASTER", "mymaster"]).await.unwrap();
        let field = |k: &str| m.chunks(2).find(|c| c[0] == k).map(|c| c[1].clone()).unwrap();
        assert_eq!(field("num-slaves"), "1", "the removed replica is forgotten");
        assert_eq!(field("num-other-sentinels"), "2");
    }
    // Reset happened on every sentinel, never two at once (their logs, when they write them).
    let mut resets = vec![];
    for i in 0..3 {
        let log = std::fs::read_to_string(bed.dir.path().join(format!("sentinel-{i}.log"))).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("+reset-master")) {
            resets.push(line.to_string());
        }
    }
    if std::env::var("RF_TEST_SENTINEL_BIN").is_err() {
        assert_eq!(resets.len(), 3, "{resets:?}");
    }
    // A second reconcile does not reset again.
    reconcile_once(&bed, &ctx).await;
    let again: usize = (0..3)
        .map(|i| std::fs::read_to_string(bed.dir.path().join(format!("sentinel-{i}.log"))).unwrap_or_default().matches("+reset-master").count())
        .sum();
    assert_eq!(again, resets.len(), "no reset without a member change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_moves_the_master_before_removing_its_pod() {
    let (bed, _tracker, ctx) = start_operator().await;
    reconcile_once(&bed, &ctx).await;
    let hash = server_hash(&bed.client).await;
    put_server_pods(&bed.client, &hash).await;
    // Move the master away from ordinal 0 first (a plain failover).
    let s0 = bed.sentinels[0].port;
    let _: String = query(s0, None, &["SENTINEL", "FAILOVER", "mymaster"]).await.unwrap();
    let master = wait_for("labels follow the manual failover", Duration::from_secs(20), || async {
        let m = masters(&bed.labels().await);
        (m.len() == 1 && m[0] != "rf-server-0").then(|| m[0].clone())
    })
    .await;
    let master_ordinal: i32 = master.rsplit('-').next().unwrap().parse().unwrap();
    wait_for("no failover running", Duration::from_secs(20), || async {
        for s in &bed.sentinels {
            let m: Vec<String> = query(s.port, None, &["SENTINEL", "MASTER", "mymaster"]).await?;
            let flags = m.chunks(2).find(|c| c[0] == "flags")?[1].clone();
            if flags.contains("failover_in_progress") {
                return None;
            }
        }
        Some(())
    })
    .await;

    // Shrink so that the master's ordinal goes away.
    let desired = master_ordinal;
    let api: Api<RedisFailoverCluster> = Api::namespaced(bed.client.clone(), NS);
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"redis": {"replicas": desired}}}))).await.unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(bed.client.clone(), NS);
    let started = Instant::now();
    let mut messages = vec![];
    loop {
        let msg = reconcile_once(&bed, &ctx).await;
        if messages.last() != Some(&msg) {
            messages.push(msg.clone());
        }
        let replicas = sts.get("rf-server").await.unwrap().spec.unwrap().replicas.unwrap();
        let m = masters(&bed.labels().await);
        if replicas == desired {
            // The StatefulSet only shrinks once the master sits on a kept ordinal.
            let now: i32 = m[0].rsplit('-').next().unwrap().parse().unwrap();
            assert!(now < desired, "shrunk to {desired} while the master is {m:?}");
            break;
        }
        // Until the master moved, the StatefulSet keeps every ordinal up to the master's
        // (replicas beyond it, never promotable now, may already go).
        assert_eq!(replicas, master_ordinal + 1, "kept up to the master's ordinal until it moved");
        assert!(started.elapsed() < Duration::from_secs(40), "scale-down stuck: {messages:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("scale-down steps: {messages:#?}");
    assert!(ctx.deprioritized(&Bed::key()).is_empty(), "pods held at priority 0 are forgotten once they go: {:?}", ctx.deprioritized(&Bed::key()));
    assert!(messages.iter().any(|m| m.contains(&format!("failover away from old master {master} requested"))), "{messages:#?}");
}

/// A TCP relay between a replica and its master whose master -> replica direction can be
/// held back: the replica's link stays up while it falls behind by offset.
struct StallableRelay {
    port: u16,
    stalled: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallableRelay {
    async fn start(master_port: u16) -> StallableRelay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let gate = stalled.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", master_port)).await else { continue };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                conns.spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut uw).await;
                });
                let gate = gate.clone();
                conns.spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        // While stalled, do not read: the master's stream waits in buffers.
                        while gate.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        let n = match ur.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        StallableRelay { port, stalled, task }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for StallableRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn info_value(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':').map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_waits_for_a_replica_that_is_linked_but_behind_by_offset() {
    let (bed, tracker, ctx) = start_operator().await;
    put_server_pods(&bed.client, "old-hash").await;
    wait_tracker_healthy(&tracker).await;
    // rf-server-1 follows the master through the relay.
    let relay = StallableRelay::start(bed.servers[0].port).await;
    let r1 = bed.servers[1].port;
    let _: String = query(r1, Some(PASSWORD), &["REPLICAOF", "127.0.0.1", &relay.port.to_string()]).await.unwrap();
    wait_for("rf-server-1 linked through the relay", Duration::from_secs(10), || async {
        let info: String = query(r1, Some(PASSWORD), &["INFO", "replication"]).await?;
        let port = relay.port.to_string();
        (info_value(&info, "master_port")? == port && info_value(&info, "master_link_status")? == "up"
            && info_value(&info, "master_sync_in_progress")? == "0")
            .then_some(())
    })
    .await;
    // Hold the stream back and write ~1 MB: the replica's link stays up, its offset does not move.
    relay.stall(true);
    let value = "x".repeat(100 * 1024);
    for i in 0..10 {
        let _: String = query(bed.servers[0].port, Some(PASSWORD), &["SET", &format!("big{i}"), &value]).await.unwrap();
    }
    let info: String = query(r1, Some(PASSWORD), &["INFO", "replication"]).await.unwrap();
    assert_eq!(info_value(&info, "master_link_status").as_deref(), Some("up"), "the link-state check alone would pass: {info}");

    let msg = reconcile_once(&bed, &ctx).await;
    assert!(msg.contains("rolling upgrade: waiting for replica rf-server-1 to catch up:") && msg.contains("bytes behind the master"), "{msg}");
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), NS);
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 3, "nothing restarted while a replica lags");
    // A second look: still waiting (no timeout-based give-up).
    let msg = reconcile_once(&bed, &ctx).await;
    assert!(msg.contains("to catch up"), "{msg}");

    // Release the stream: the replica catches up and the upgrade goes on.
    relay.stall(false);
    let started = Instant::now();
    let msg = wait_for("upgrade resumes once caught up", Duration::from_secs(3), || async {
        let msg = reconcile_once(&bed, &ctx).await;
        msg.contains("rolling upgrade: restarted replica rf-server-1").then_some(msg)
    })
    .await;
    println!("MEASURED: replica caught up and was restarted {} ms after the stream resumed ({msg})", started.elapsed().as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_priority_is_restored_when_a_scale_down_is_called_off() {
    let (bed, _tracker, ctx) = start_operator().await;
    reconcile_once(&bed, &ctx).await;
    let hash = server_hash(&bed.client).await;
    put_server_pods(&bed.client, &hash).await;
    // As a scale-down to 1 server leaves them: rf-server-1 (kept again once the spec says
    // 3) and rf-server-2 held at priority 0.
    for i in [1, 2] {
        let _: String = query(bed.servers[i].port, Some(PASSWORD), &["CONFIG", "SET", "replica-priority", "0"]).await.unwrap();
        ctx.note_deprioritized(&Bed::key(), &pod_name(i));
    }
    // The spec now keeps 2 servers: rf-server-1 gets its priority back, rf-server-2
    // (going away) is only forgotten.
    let api: Api<RedisFailoverCluster> = Api::namespaced(bed.client.clone(), NS);
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"redis": {"replicas": 2}}}))).await.unwrap();
    reconcile_once(&bed, &ctx).await;
    let priority = |port: u16| async move {
        let info: String = query(port, Some(PASSWORD), &["CONFIG", "GET", "replica-priority"]).await.map(|v: Vec<String>| v[1].clone()).unwrap();
        info
    };
    assert_eq!(priority(bed.servers[1].port).await, "100", "kept pod: priority restored");
    assert_eq!(priority(bed.servers[2].port).await, "0", "removed pod: left alone");
    assert!(ctx.deprioritized(&Bed::key()).is_empty(), "{:?}", ctx.deprioritized(&Bed::key()));
}
