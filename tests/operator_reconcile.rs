//! Reconciler tests against kube-fake-client's in-memory API (server-side apply is
//! handled there as a JSON merge patch plus managedFields bookkeeping, which is enough to
//! check what we apply, with which field manager, and that nothing is deleted).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use kube_fake_client::ClientBuilder;
use redis_failover::operator::crd::{MasterStatus, RedisFailoverCluster, RedisFailoverClusterSpec, RedisFailoverClusterStatus};
use redis_failover::operator::metrics::Metrics;
use redis_failover::operator::reconcile::{reconcile, Context, Error};
use redis_failover::operator::status;
use serde_json::json;

const NS: &str = "prod";

fn cluster(name: &str, spec: serde_json::Value) -> RedisFailoverCluster {
    let spec: RedisFailoverClusterSpec = serde_json::from_value(spec).unwrap();
    let mut c = RedisFailoverCluster::new(name, spec);
    c.metadata.namespace = Some(NS.into());
    c
}

async fn client_with(objs: Vec<RedisFailoverCluster>) -> kube::Client {
    ClientBuilder::new()
        .with_resource::<RedisFailoverCluster>()
        .with_status_subresource::<RedisFailoverCluster>()
        .with_status_subresource::<StatefulSet>()
        .with_objects(objs)
        .build()
        .await
        .unwrap()
}

async fn run_once(client: &kube::Client, name: &str) -> Result<kube::runtime::controller::Action, Error> {
    let api: Api<RedisFailoverCluster> = Api::namespaced(client.clone(), NS);
    let cr = api.get(name).await.unwrap();
    let ctx = Arc::new(Context::new(client.clone(), Metrics::default(), None));
    reconcile(Arc::new(cr), ctx).await
}

async fn get_cr(client: &kube::Client, name: &str) -> RedisFailoverCluster {
    Api::<RedisFailoverCluster>::namespaced(client.clone(), NS).get(name).await.unwrap()
}

fn cond<'a>(s: &'a RedisFailoverClusterStatus, t: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status::find(&s.conditions, t).unwrap_or_else(|| panic!("no {t} condition in {s:?}"))
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.string_data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| s.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned()))
}

#[tokio::test]
async fn creates_all_objects_owned_with_one_field_manager() {
    let client = client_with(vec![cluster("rf", json!({}))]).await;
    run_once(&client, "rf").await.unwrap();
    let cr = get_cr(&client, "rf").await;
    let uid = cr.uid().unwrap();

    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let mut metas = vec![];
    for n in ["rf-server", "rf-sentinel"] {
        metas.push(sts.get(n).await.unwrap().metadata);
        metas.push(pdbs.get(n).await.unwrap().metadata);
    }
    for n in ["rf-server-config", "rf-sentinel-config"] {
        metas.push(cms.get(n).await.unwrap().metadata);
    }
    for n in ["rf-master", "rf-replicas", "rf-sentinel", "rf-server-headless", "rf-sentinel-headless"] {
        metas.push(svcs.get(n).await.unwrap().metadata);
    }
    metas.push(secrets.get("rf-auth").await.unwrap().metadata);
    assert_eq!(metas.len(), 12);
    for m in &metas {
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, uid, "{:?} owned by the cluster", m.name);
        assert_eq!(owner.controller, Some(true));
    }
    // No NetworkPolicy unless enabled.
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    assert!(nps.get_opt("rf").await.unwrap().is_none());

    let st = cr.status.unwrap();
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(cond(&st, "Ready").status, "False");
    assert_eq!(cond(&st, "Progressing").status, "True");
    assert_eq!(cond(&st, "Degraded").status, "False");
    assert!(cond(&st, "Ready").message.contains("0/3 servers ready"), "{}", cond(&st, "Ready").message);
}

#[tokio::test]
async fn applies_use_the_single_field_manager() {
    // Record every write's field manager with an interceptor.
    use kube_fake_client::interceptor;
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let client = ClientBuilder::new()
        .with_resource::<RedisFailoverCluster>()
        .with_status_subresource::<RedisFailoverCluster>()
        .with_object(cluster("rf", json!({})))
        .with_interceptor_funcs(interceptor::Funcs::new().patch(move |ctx| {
            s2.lock().push(format!("{:?}", ctx.params.field_manager));
            Ok(None)
        }))
        .build()
        .await
        .unwrap();
    run_once(&client, "rf").await.unwrap();
    let seen = seen.lock().clone();
    assert!(seen.len() >= 12, "{seen:?}");
    assert!(seen.iter().all(|m| m == "Some(\"rf-operator\")"), "{seen:?}");
}

#[tokio::test]
async fn generated_password_is_stable_across_reconciles() {
    let client = client_with(vec![cluster("rf", json!({}))]).await;
    run_once(&client, "rf").await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let pw1 = secret_value(&secrets.get("rf-auth").await.unwrap(), "password").unwrap();
    assert_eq!(pw1.len(), 32);
    run_once(&client, "rf").await.unwrap();
    run_once(&client, "rf").await.unwrap();
    let pw2 = secret_value(&secrets.get("rf-auth").await.unwrap(), "password").unwrap();
    assert_eq!(pw1, pw2);
}

#[tokio::test]
async fn bad_spec_sets_degraded_and_touches_nothing() {
    let client = client_with(vec![cluster("rf", json!({}))]).await;
    run_once(&client, "rf").await.unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let before = sts.get("rf-server").await.unwrap();

    // An invalid edit: a managed directive plus an image change. Neither must be applied.
    let api: Api<RedisFailoverCluster> = Api::namespaced(client.clone(), NS);
    let patch = json!({"spec": {"redis": {"replicas": 1, "image": "evil:1", "config": {"port": "7000"}}}});
    api.patch("rf", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let action = run_once(&client, "rf").await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(300)));

    let cr = get_cr(&client, "rf").await;
    let st = cr.status.unwrap();
    let degraded = cond(&st, "Degraded");
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, "InvalidSpec");
    assert_eq!(
        degraded.message,
        "spec.redis.config: directive \"port\" is managed by the operator and cannot be set (the server port is fixed at 6379)"
    );
    assert_eq!(cond(&st, "Ready").status, "False");
    assert_eq!(st.observed_generation, cr.metadata.generation);

    let after = sts.get("rf-server").await.unwrap();
    assert_eq!(before.spec, after.spec, "StatefulSet must not change on a bad spec");
    assert!(sts.get_opt("rf-sentinel").await.unwrap().is_some());
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    assert_eq!(svcs.list(&Default::default()).await.unwrap().items.len(), 5);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    assert_eq!(cms.get("rf-server-config").await.unwrap().data.unwrap().len(), 3);

    // Fixing the spec clears Degraded and applies the change.
    let fix = json!({"spec": {"redis": {"config": null}}});
    api.patch("rf", &PatchParams::default(), &Patch::Merge(&fix)).await.unwrap();
    run_once(&client, "rf").await.unwrap();
    let st = get_cr(&client, "rf").await.status.unwrap();
    assert_eq!(cond(&st, "Degraded").status, "False");
    let s = sts.get("rf-server").await.unwrap();
    assert_eq!(s.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(s.spec.unwrap().template.spec.unwrap().containers[0].image.as_deref(), Some("evil:1"));
}

#[tokio::test]
async fn missing_user_secret_is_reported_not_created() {
    let client = client_with(vec![cluster("rf", json!({"auth": {"secretRef": {"name": "mine", "key": "pw"}}}))]).await;
    run_once(&client, "rf").await.unwrap();
    let st = get_cr(&client, "rf").await.status.unwrap();
    let d = cond(&st, "Degraded");
    assert_eq!(d.status, "True");
    assert_eq!(d.reason, "AuthSecretUnavailable");
    assert_eq!(d.message, "spec.auth.secretRef: Secret \"mine\" not found in namespace \"prod\"");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    assert!(secrets.get_opt("mine").await.unwrap().is_none());
    assert!(secrets.get_opt("rf-auth").await.unwrap().is_none());
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    assert!(sts.get_opt("rf-server").await.unwrap().is_none(), "nothing applied without a password");

    // Once the Secret exists, the StatefulSets reference it.
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine", "namespace": NS},
        "stringData": {"pw": "hunter2"}
    })).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    run_once(&client, "rf").await.unwrap();
    let s = sts.get("rf-server").await.unwrap();
    let env = s.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
    let sk = env[1].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((sk.name.as_str(), sk.key.as_str()), ("mine", "pw"));
    assert_eq!(cond(&get_cr(&client, "rf").await.status.unwrap(), "Degraded").status, "False");
}

#[tokio::test]
async fn ready_when_everything_is_ready_and_configs_follow_master() {
    let mut cr = cluster("rf", json!({"networkPolicy": {"enabled": true}}));
    cr.status = Some(RedisFailoverClusterStatus {
        master: Some(MasterStatus { pod: "rf-server-2".into(), host: "rf-server-2.rf-server-headless.prod.svc.cluster.local".into(), port: 6379 }),
        failover_count: 4,
        ..Default::default()
    });
    let client = client_with(vec![cr]).await;
    run_once(&client, "rf").await.unwrap();
    // Simulate the StatefulSet controller reporting all pods ready.
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    for n in ["rf-server", "rf-sentinel"] {
        let p = json!({"status": {"replicas": 3, "readyReplicas": 3}});
        sts.patch_status(n, &PatchParams::default(), &Patch::Merge(&p)).await.unwrap();
    }
    let action = run_once(&client, "rf").await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(60)));
    let st = get_cr(&client, "rf").await.status.unwrap();
    assert_eq!(cond(&st, "Ready").status, "True", "{:?}", st.conditions);
    assert_eq!(cond(&st, "Ready").message, "master rf-server-2, 3 servers and 3 sentinels ready");
    assert_eq!(cond(&st, "Progressing").status, "False");
    assert_eq!((st.ready_servers, st.ready_sentinels, st.failover_count), (3, 3, 4));

    // The configs name the master from status: server-2; server-0 starts as its replica.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let data = cms.get("rf-server-config").await.unwrap().data.unwrap();
    assert!(!data["rf-server-2.conf"].contains("replicaof"));
    assert!(data["rf-server-0.conf"].contains("replicaof rf-server-2.rf-server-headless.prod.svc.cluster.local 6379"));
    let sdata = cms.get("rf-sentinel-config").await.unwrap().data.unwrap();
    assert!(sdata["rf-sentinel-0.conf"].contains("sentinel monitor mymaster rf-server-2.rf-server-headless.prod.svc.cluster.local 6379 2"));
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    assert!(nps.get_opt("rf").await.unwrap().is_some());

    // Disabling the NetworkPolicy removes the one we own.
    let api: Api<RedisFailoverCluster> = Api::namespaced(client.clone(), NS);
    api.patch("rf", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"networkPolicy": {"enabled": false}}}))).await.unwrap();
    run_once(&client, "rf").await.unwrap();
    assert!(nps.get_opt("rf").await.unwrap().is_none());
}

#[tokio::test]
async fn rolling_upgrade_waits_for_ready_pods() {
    let client = client_with(vec![cluster("rf", json!({}))]).await;
    run_once(&client, "rf").await.unwrap();
    // Three server pods with an old template hash; one is not ready.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for (i, role) in ["master", "replica", "replica"].iter().enumerate() {
        let labels: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "redis-failover"), ("app.kubernetes.io/instance", "rf"),
            ("app.kubernetes.io/component", "server"), ("redisfailover.io/role", role),
            ("app.kubernetes.io/managed-by", "rf-operator"),
        ].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("rf-server-{i}"), "namespace": NS, "labels": labels,
                          "annotations": {"redisfailover.io/config-hash": "old"}},
            "spec": {"containers": [{"name": "server", "image": "x"}]},
            "status": {"conditions": [{"type": "Ready", "status": if i == 2 { "False" } else { "True" }}]},
        })).unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    run_once(&client, "rf").await.unwrap();
    let st = get_cr(&client, "rf").await.status.unwrap();
    assert!(
        cond(&st, "Progressing").message.contains("rolling upgrade: waiting for all servers to be ready"),
        "{}", cond(&st, "Progressing").message
    );
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 3, "nothing deleted while a pod is unready");
}

async fn put_pod(client: &kube::Client, component: &str, i: usize, hash: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("rf-{component}-{i}"), "namespace": NS,
            "labels": {"app.kubernetes.io/name": "redis-failover", "app.kubernetes.io/instance": "rf",
                       "app.kubernetes.io/component": component, "app.kubernetes.io/managed-by": "rf-operator"},
            "annotations": {"redisfailover.io/config-hash": hash}},
        "spec": {"containers": [{"name": component, "image": "x"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

#[tokio::test]
async fn sentinels_are_upgraded_one_at_a_time_after_servers() {
    let client = client_with(vec![cluster("rf", json!({"sentinel": {"downAfterMilliseconds": 3000}}))]).await;
    run_once(&client, "rf").await.unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let hash = |s: StatefulSet| s.spec.unwrap().template.metadata.unwrap().annotations.unwrap()["redisfailover.io/config-hash"].clone();
    let server_hash = hash(sts.get("rf-server").await.unwrap());
    let sentinel_hash = hash(sts.get("rf-sentinel").await.unwrap());
    for i in 0..3 {
        put_pod(&client, "server", i, &server_hash).await;
        put_pod(&client, "sentinel", i, "old").await;
    }
    run_once(&client, "rf").await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    assert!(pods.get_opt("rf-sentinel-0").await.unwrap().is_none(), "first stale sentinel restarted");
    assert!(pods.get_opt("rf-sentinel-1").await.unwrap().is_some());
    let st = get_cr(&client, "rf").await.status.unwrap();
    assert!(cond(&st, "Progressing").message.contains("rolling upgrade: restarted sentinel rf-sentinel-0"), "{}", cond(&st, "Progressing").message);
    // While it is missing, nothing else is restarted.
    run_once(&client, "rf").await.unwrap();
    assert!(pods.get_opt("rf-sentinel-1").await.unwrap().is_some());
    let st = get_cr(&client, "rf").await.status.unwrap();
    assert!(cond(&st, "Progressing").message.contains("waiting for all sentinels to be ready"), "{}", cond(&st, "Progressing").message);
    // Back on the new template: the next one goes.
    put_pod(&client, "sentinel", 0, &sentinel_hash).await;
    run_once(&client, "rf").await.unwrap();
    assert!(pods.get_opt("rf-sentinel-1").await.unwrap().is_none());
    assert!(pods.get_opt("rf-sentinel-2").await.unwrap().is_some());
    // Server pods were never touched.
    for i in 0..3 {
        assert!(pods.get_opt(&format!("rf-server-{i}")).await.unwrap().is_some());
    }
}

fn claim_of(sts: &StatefulSet) -> (String, Option<String>) {
    let vct = &sts.spec.as_ref().unwrap().volume_claim_templates.as_ref().expect("volume claims")[0];
    let spec = vct.spec.as_ref().unwrap();
    let size = spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0.clone();
    (size, spec.storage_class_name.clone())
}

#[tokio::test]
async fn forbidden_persistence_change_is_degraded_not_an_error_loop() {
    let client = client_with(vec![cluster("rf", json!({"persistence": {"mode": "RDB", "size": "1Gi"}}))]).await;
    run_once(&client, "rf").await.unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    assert_eq!(claim_of(&sts.get("rf-server").await.unwrap()), ("1Gi".to_string(), None));
    let st = get_cr(&client, "rf").await.status.unwrap();
    assert_eq!(cond(&st, status::DEGRADED).status, "False");

    // Size and storage class change (forbidden by Kubernetes), plus an allowed change.
    let api: Api<RedisFailoverCluster> = Api::namespaced(client.clone(), NS);
    let patch = json!({"spec": {
        "persistence": {"mode": "RDB", "size": "2Gi", "storageClassName": "fast"},
        "podAnnotations": {"team": "cache"},
    }});
    api.patch("rf", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    for _ in 0..2 {
        // Twice: no error (so no backoff loop), same answer.
        run_once(&client, "rf").await.expect("a forbidden change is a condition, not a reconcile error");
        let st = get_cr(&client, "rf").await.status.unwrap();
        let d = cond(&st, status::DEGRADED);
        assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", status::REASON_IMMUTABLE_FIELD));
        assert!(d.message.contains("volumeClaimTemplates of StatefulSet rf-server (size 1Gi -> 2Gi, storageClassName (default) -> \"fast\")"), "{}", d.message);
        assert!(d.message.contains("set spec.persistence back to the current value (size 1Gi, storageClassName (default))"), "{}", d.message);
        assert!(d.message.contains("--cascade=orphan"), "{}", d.message);
        assert_eq!(cond(&st, status::READY).status, "False");
        assert_eq!(st.observed_generation, get_cr(&client, "rf").await.metadata.generation);
    }
    // The live volumes were kept; the rest of the spec was applied.
    let server = sts.get("rf-server").await.unwrap();
    assert_eq!(claim_of(&server), ("1Gi".to_string(), None));
    let template_annotations = server.spec.unwrap().template.metadata.unwrap().annotations.unwrap();
    assert_eq!(template_annotations.get("team").map(String::as_str), Some("cache"), "other changes still applied");
    let pods_mount_data = sts.get("rf-server").await.unwrap().spec.unwrap().template.spec.unwrap().volumes.unwrap();
    assert!(!pods_mount_data.iter().any(|v| v.name == "data"), "no emptyDir shadows the claim");

    // Reverting the storage part clears Degraded.
    let patch = json!({"spec": {"persistence": {"mode": "RDB", "size": "1Gi", "storageClassName": null}}});
    api.patch("rf", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    run_once(&client, "rf").await.unwrap();
    let st = get_cr(&client, "rf").await.status.unwrap();
    assert_eq!(cond(&st, status::DEGRADED).status, "False", "{:?}", cond(&st, status::DEGRADED));
}

#[tokio::test]
async fn turning_persistence_on_later_is_degraded_and_keeps_the_emptydir() {
    let client = client_with(vec![cluster("rf", json!({}))]).await;
    run_once(&client, "rf").await.unwrap();
    let api: Api<RedisFailoverCluster> = Api::namespaced(client.clone(), NS);
    api.patch("rf", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"persistence": {"mode": "AOF"}}}))).await.unwrap();
    run_once(&client, "rf").await.unwrap();
    let st = get_cr(&client, "rf").await.status.unwrap();
    let d = cond(&st, status::DEGRADED);
    assert_eq!(d.status, "True");
    assert!(d.message.contains("persistence turned on"), "{}", d.message);
    let server = Api::<StatefulSet>::namespaced(client.clone(), NS).get("rf-server").await.unwrap();
    let spec = server.spec.unwrap();
    assert!(spec.volume_claim_templates.unwrap_or_default().is_empty());
    assert!(spec.template.spec.unwrap().volumes.unwrap().iter().any(|v| v.name == "data" && v.empty_dir.is_some()));
}
