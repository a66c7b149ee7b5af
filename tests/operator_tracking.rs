//! Master tracking end to end on loopback: real server and sentinel processes (see
//! tests/common_operator for the binary switch), pods in the in-memory Kubernetes API.

mod common_operator;

use std::time::{Duration, Instant};

use common_operator::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use redis_failover::operator::status::{self, Health};

fn role_of(info: &[redis::Value]) -> String {
    match info.first() {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

async fn role(port: u16) -> Option<String> {
    let v: Vec<redis::Value> = query(port, Some(PASSWORD), &["ROLE"]).await?;
    Some(role_of(&v))
}

async fn wait_tracker_healthy(t: &redis_failover::operator::tracking::Tracker) {
    wait_for("tracker healthy with 3 sentinel subscriptions", Duration::from_secs(15), || async {
        let s = t.state(&Bed::key())?;
        (s.health == Health::Healthy && s.connected_sentinels == 3).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_labels_fast_and_never_two_masters() {
    let mut bed = Bed::start().await;
    let tracker = bed.tracker().await;
    wait_tracker_healthy(&tracker).await;
    let cr = bed.cluster().await;
    assert_eq!(cr.status.as_ref().unwrap().master.as_ref().unwrap().pod, "rf-server-0");
    assert_eq!(cr.status.as_ref().unwrap().failover_count, 0);

    let observer = LabelObserver::start(bed.client.clone());
    let killed_at = Instant::now();
    bed.servers[0].kill();

    let new_master = wait_for("labels moved off rf-server-0", Duration::from_secs(30), || async {
        let l = bed.labels().await;
        let m = masters(&l);
        (m.len() == 1 && m[0] != "rf-server-0").then(|| m[0].clone())
    })
    .await;
    let kill_to_label = killed_at.elapsed();

    // The sentinels agree with the label.
    let agreed = wait_for("sentinel majority on the new master", Duration::from_secs(10), || bed.sentinel_majority()).await;
    assert_eq!(pod_name(agreed), new_master);
    let labels = bed.labels().await;
    assert_eq!(labels["rf-server-0"].as_deref(), Some("replica"), "{labels:?}");
    for (p, r) in &labels {
        if *p != new_master {
            assert_eq!(r.as_deref(), Some("replica"), "{labels:?}");
        }
    }
    assert_eq!(*observer.max_masters.lock(), 1, "two pods were labelled master at once");
    let samples = observer.samples.load(std::sync::atomic::Ordering::Relaxed);
    assert!(samples > 50, "observer took only {samples} samples");

    // Status updated.
    let st = wait_for("status shows the failover", Duration::from_secs(5), || async {
        let st = bed.cluster().await.status?;
        (st.failover_count == 1).then_some(st)
    })
    .await;
    assert_eq!(st.master.as_ref().unwrap().pod, new_master);
    assert!(st.last_failover_time.is_some());
    assert!(!status::is_true(&st.conditions, status::DEGRADED));

    let latency = tracker.state(&Bed::key()).unwrap().last_switch_latency.expect("a +switch-master drove the label move");
    println!(
        "MEASURED: +switch-master -> labels moved in {:.2} ms; master kill -> labels moved in {} ms (down-after-milliseconds 1000); observer samples {samples}",
        latency.as_secs_f64() * 1000.0,
        kill_to_label.as_millis()
    );
    assert!(latency < Duration::from_secs(1), "label move took {latency:?} after the event");
    assert_eq!(bed.metrics.failovers_seen.get(), 1);
    assert!(bed.metrics.label_moves.get() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_brain_is_repaired_towards_the_sentinel_majority() {
    let bed = Bed::start().await;
    let tracker = bed.tracker().await;
    wait_tracker_healthy(&tracker).await;
    let observer = LabelObserver::start(bed.client.clone());

    // A client on rf-server-2, then rf-server-2 wrongly promotes itself.
    let p2 = bed.servers[2].port;
    let mut app = conn(p2, Some(PASSWORD)).await.unwrap();
    let _: String = redis::cmd("PING").query_async(&mut app).await.unwrap();
    let split_at = Instant::now();
    let _: String = query(p2, Some(PASSWORD), &["REPLICAOF", "NO", "ONE"]).await.unwrap();
    assert_eq!(role(p2).await.as_deref(), Some("master"));

    // Sentinels only convert such a server back after ~8 s; the tracker acts on its next check.
    wait_for("rf-server-2 turned back into a replica", Duration::from_secs(6), || async {
        let v: Vec<redis::Value> = query(p2, Some(PASSWORD), &["ROLE"]).await?;
        let port = match v.get(2) {
            Some(redis::Value::Int(p)) => *p as u16,
            _ => return None,
        };
        (role_of(&v) == "slave" && port == bed.servers[0].port).then_some(())
    })
    .await;
    let repaired = split_at.elapsed();
    println!("MEASURED: split brain repaired in {} ms", repaired.as_millis());
    assert!(repaired < Duration::from_secs(4), "repair took {repaired:?}: that was the sentinels, not the tracker");
    // Its clients were disconnected (CLIENT KILL TYPE normal): the old connection fails.
    let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut app).await;
    let r2: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut app).await;
    assert!(r.is_err() || r2.is_err(), "client of the second master was not disconnected");
    let labels = bed.labels().await;
    assert_eq!(masters(&labels), vec!["rf-server-0".to_string()]);
    assert_eq!(*observer.max_masters.lock(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sentinel_majority_nothing_is_done_and_status_is_degraded() {
    let mut bed = Bed::start().await;
    let tracker = bed.tracker().await;
    wait_tracker_healthy(&tracker).await;
    bed.sentinels[1].kill();
    bed.sentinels[2].kill();
    // A split brain the tracker would normally repair.
    let p1 = bed.servers[1].port;
    let _: String = query(p1, Some(PASSWORD), &["REPLICAOF", "NO", "ONE"]).await.unwrap();

    let st = wait_for("Degraded condition", Duration::from_secs(10), || async {
        let st = bed.cluster().await.status?;
        status::is_true(&st.conditions, status::DEGRADED).then_some(st)
    })
    .await;
    let d = status::find(&st.conditions, status::DEGRADED).unwrap();
    assert_eq!(d.reason, "NoSentinelMajority");
    assert!(
        d.message.starts_with("no sentinel majority on the master: 1 of 3 sentinels answered, 2 must agree"),
        "{}", d.message
    );
    assert!(!status::is_true(&st.conditions, status::READY));
    // Several check periods later: no repair, no label change.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(role(p1).await.as_deref(), Some("master"), "tracker acted without a majority");
    let labels = bed.labels().await;
    assert_eq!(masters(&labels), vec!["rf-server-0".to_string()]);
    assert_eq!(labels["rf-server-1"].as_deref(), Some("replica"));

    // Sentinels back: majority again, Degraded cleared, split brain repaired.
    bed.sentinels[1].restart();
    bed.sentinels[2].restart();
    wait_for("Degraded cleared", Duration::from_secs(15), || async {
        let st = bed.cluster().await.status?;
        (!status::is_true(&st.conditions, status::DEGRADED)).then_some(())
    })
    .await;
    wait_for("rf-server-1 repaired", Duration::from_secs(10), || async {
        (role(p1).await? == "slave").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_restart_mid_failover_rebuilds_state() {
    let mut bed = Bed::start().await;
    let first = bed.tracker().await;
    wait_tracker_healthy(&first).await;
    assert_eq!(bed.cluster().await.status.unwrap().master.unwrap().pod, "rf-server-0");

    // Master dies, and the operator dies with it, before the sentinels fail over.
    bed.servers[0].kill();
    drop(first);
    let new_idx = wait_for("sentinels finish the failover", Duration::from_secs(30), || async {
        bed.sentinel_majority().await.filter(|i| *i != 0)
    })
    .await;
    // Nobody moved the labels meanwhile.
    assert_eq!(masters(&bed.labels().await), vec!["rf-server-0".to_string()]);

    // A new operator instance: state comes from the API (status) and the sentinels.
    let second = bed.tracker().await;
    let started = Instant::now();
    wait_for("labels follow the sentinels after restart", Duration::from_secs(10), || async {
        (masters(&bed.labels().await) == vec![pod_name(new_idx)]).then_some(())
    })
    .await;
    println!("MEASURED: restarted tracker fixed labels in {} ms", started.elapsed().as_millis());
    let st = wait_for("status rebuilt", Duration::from_secs(5), || async {
        let st = bed.cluster().await.status?;
        (st.master.as_ref()?.pod == pod_name(new_idx)).then_some(st)
    })
    .await;
    assert_eq!(st.failover_count, 1, "the failover seen across the restart is counted once");
    assert_eq!(second.state(&Bed::key()).unwrap().failover_count, 1);
}

#[tokio::test]
async fn terminating_master_pod_loses_label_at_once() {
    // No processes needed: the pod watch hook and the API. kube-fake-client deletes at
    // once (no graceful deletion), so the pod is seeded already terminating.
    let pod = serde_json::from_value::<Pod>(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "rf-server-0", "namespace": NS, "finalizers": ["test/keep"],
            "deletionTimestamp": "2026-01-01T00:00:00Z", "labels": {
            "app.kubernetes.io/instance": NAME, "app.kubernetes.io/component": "server",
            "redisfailover.io/role": "master"}},
        "spec": {"containers": [{"name": "server", "image": "x"}]},
    }))
    .unwrap();
    let client = kube_fake_client::ClientBuilder::new().with_object(pod).build().await.unwrap();
    let tracker = redis_failover::operator::tracking::Tracker::new(
        client.clone(),
        std::sync::Arc::new(redis_failover::operator::tracking::StaticResolver::default()),
        Default::default(),
        Default::default(),
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let terminating = pods.get("rf-server-0").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    // The same pod, not terminating: keeps its label.
    let mut live = terminating.clone();
    live.metadata.deletion_timestamp = None;
    assert_eq!(tracker.handle_pod(&live).await.unwrap(), None, "a live master keeps its label");
    assert_eq!(pods.get("rf-server-0").await.unwrap().metadata.labels.unwrap().get("redisfailover.io/role").map(String::as_str), Some("master"));
    assert!(tracker.handle_pod(&terminating).await.unwrap().is_some());
    let after = pods.get("rf-server-0").await.unwrap();
    assert_eq!(after.metadata.labels.unwrap().get("redisfailover.io/role"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_spec_is_reported_and_failover_is_still_tracked() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams, PostParams};
    use redis_failover::operator::crd::RedisFailoverCluster;
    use redis_failover::operator::reconcile::Context;
    use redis_failover::operator::tracking::{Tracker, TrackerConfig};
    use std::sync::Arc;

    let mut bed = Bed::start().await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rf-auth", "namespace": NS},
        "stringData": {"password": PASSWORD}
    }))
    .unwrap();
    Api::<Secret>::namespaced(bed.client.clone(), NS).create(&PostParams::default(), &secret).await.unwrap();
    let api: Api<RedisFailoverCluster> = Api::namespaced(bed.client.clone(), NS);
    let bad = serde_json::json!({"spec": {"redis": {"config": {"rename-command": "CONFIG \"\""}}}});
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&bad)).await.unwrap();

    // A freshly started operator: the tracker only starts through the reconciler.
    let tracker = Tracker::new(
        bed.client.clone(),
        bed.resolver.clone(),
        bed.metrics.clone(),
        TrackerConfig { check_interval: Duration::from_millis(500), io_timeout: Duration::from_millis(500) },
    );
    let ctx = Arc::new(Context::new(bed.client.clone(), bed.metrics.clone(), Some(tracker.clone())));
    reconcile_as_controller(&bed, &ctx).await;
    let st = bed.cluster().await.status.unwrap();
    let d = status::find(&st.conditions, status::DEGRADED).unwrap();
    assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "InvalidSpec"));
    assert_eq!(d.message, "spec.redis.config: rename-command of CONFIG is refused: sentinels and the operator need it");
    // Nothing was created or deleted for the bad spec.
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(bed.client.clone(), NS);
    assert!(sts.list(&Default::default()).await.unwrap().items.is_empty());
    assert_eq!(bed.labels().await.len(), 3);

    // The running group is still tracked: a failover moves the labels.
    wait_tracker_healthy(&tracker).await;
    bed.servers[0].kill();
    let m = wait_for("labels moved despite the bad spec", Duration::from_secs(30), || async {
        let m = masters(&bed.labels().await);
        (m.len() == 1 && m[0] != "rf-server-0").then(|| m[0].clone())
    })
    .await;
    let st = wait_for("status master updated", Duration::from_secs(5), || async {
        let st = bed.cluster().await.status?;
        (st.master.as_ref()?.pod == m).then_some(st)
    })
    .await;
    // The spec problem is still reported after the failover.
    assert!(status::find(&st.conditions, status::DEGRADED).is_some_and(|c| c.reason == "InvalidSpec" && c.status == "True"));
}
