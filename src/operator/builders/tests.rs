use super::*;
use crate::operator::crd::{AuthSpec, RedisFailoverClusterSpec};

fn cluster(spec_json: &str) -> RedisFailoverCluster {
    let spec: RedisFailoverClusterSpec = serde_json::from_str(spec_json).unwrap();
    let mut c = RedisFailoverCluster::new("rf", spec);
    c.metadata.namespace = Some("ns".into());
    c.metadata.uid = Some("uid-1".into());
    c
}

fn inputs(c: &RedisFailoverCluster) -> Inputs<'_> {
    Inputs::new(c, MasterRef { ordinal: 0 }).unwrap()
}

fn v<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

#[test]
fn inputs_need_uid_and_namespace() {
    let mut c = cluster("{}");
    c.metadata.uid = None;
    assert!(matches!(Inputs::new(&c, MasterRef { ordinal: 0 }), Err(BuildError::MissingMeta("uid"))));
    let mut c = cluster("{}");
    c.metadata.namespace = None;
    assert!(matches!(Inputs::new(&c, MasterRef { ordinal: 0 }), Err(BuildError::MissingMeta("namespace"))));
}

#[test]
fn every_object_is_owned_and_labelled() {
    let c = cluster(r#"{"networkPolicy":{"enabled":true}}"#);
    let i = inputs(&c);
    let mut metas = vec![
        v(&server_config_map(&i).unwrap())["metadata"].clone(),
        v(&sentinel_config_map(&i).unwrap())["metadata"].clone(),
        v(&server_statefulset(&i).unwrap())["metadata"].clone(),
        v(&sentinel_statefulset(&i).unwrap())["metadata"].clone(),
        v(&generated_secret(&i, "pw").unwrap())["metadata"].clone(),
        v(&network_policy(&i).unwrap())["metadata"].clone(),
    ];
    metas.extend(services(&i).unwrap().iter().map(|s| v(s)["metadata"].clone()));
    metas.extend(pdbs(&i).unwrap().iter().map(|s| v(s)["metadata"].clone()));
    assert_eq!(metas.len(), 13);
    for m in metas {
        assert_eq!(m["namespace"], "ns");
        assert_eq!(m["ownerReferences"][0]["uid"], "uid-1");
        assert_eq!(m["ownerReferences"][0]["kind"], "RedisFailoverCluster");
        assert_eq!(m["ownerReferences"][0]["controller"], true);
        assert_eq!(m["labels"]["app.kubernetes.io/managed-by"], "rf-operator");
        assert_eq!(m["labels"]["app.kubernetes.io/instance"], "rf");
    }
}

#[test]
fn config_maps_have_one_file_per_pod() {
    let c = cluster(r#"{"redis":{"replicas":2},"sentinel":{"replicas":5}}"#);
    let i = inputs(&c);
    let cm = server_config_map(&i).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("rf-server-config"));
    let data = cm.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["rf-server-0.conf", "rf-server-1.conf"]);
    assert!(data["rf-server-1.conf"].contains("replicaof rf-server-0.rf-server-headless.ns.svc.cluster.local 6379"));
    let s = sentinel_config_map(&i).unwrap().data.unwrap();
    assert_eq!(s.len(), 5);
    assert!(s["rf-sentinel-4.conf"].contains("sentinel monitor mymaster rf-server-0.rf-server-headless.ns.svc.cluster.local 6379 3"));
}

#[test]
fn server_statefulset_shape() {
    let c = cluster("{}");
    let sts = v(&server_statefulset(&inputs(&c)).unwrap());
    let spec = &sts["spec"];
    assert_eq!(sts["metadata"]["name"], "rf-server");
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["serviceName"], "rf-server-headless");
    assert_eq!(spec["updateStrategy"]["type"], "OnDelete");
    assert_eq!(spec["selector"]["matchLabels"]["app.kubernetes.io/component"], "server");
    assert!(spec.get("volumeClaimTemplates").is_none());
    let pod = &spec["template"]["spec"];
    let ctr = &pod["containers"][0];
    assert_eq!(ctr["image"], "redis-failover/rf-server:0.1.0");
    assert_eq!(
        ctr["args"],
        json!(["/data/redis.conf", "--config-template", "/etc/redis-failover/$(POD_NAME).conf",
               "--requirepass", "$(REDIS_PASSWORD)", "--masterauth", "$(REDIS_PASSWORD)"])
    );
    assert_eq!(ctr["env"][1]["valueFrom"]["secretKeyRef"], json!({"name": "rf-auth", "key": "password"}));
    assert_eq!(ctr["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(ctr["readinessProbe"]["tcpSocket"]["port"], 6379);
    assert!(ctr["livenessProbe"].is_object());
    assert_eq!(pod["volumes"][1], json!({"name": "data", "emptyDir": {}}));
    let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
    // The role label is the operator's to move; it is never in the template.
    assert!(spec["template"]["metadata"]["labels"].get("redisfailover.io/role").is_none());
    assert_eq!(
        spec["template"]["metadata"]["annotations"]["redisfailover.io/config-hash"].as_str().unwrap().len(),
        16
    );
}

#[test]
fn persistence_adds_pvc_templates_and_retention() {
    let c = cluster(r#"{"persistence":{"mode":"RDB","size":"5Gi","storageClassName":"fast","keepOnDelete":false}}"#);
    let sts = v(&server_statefulset(&inputs(&c)).unwrap());
    let pvc = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(pvc["metadata"]["name"], "data");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(pvc["spec"]["storageClassName"], "fast");
    assert_eq!(sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"], "Delete");
    assert_eq!(sts["spec"]["template"]["spec"]["volumes"].as_array().unwrap().len(), 1);
    // Sentinels never get PVCs.
    let s = v(&sentinel_statefulset(&inputs(&c)).unwrap());
    assert!(s["spec"].get("volumeClaimTemplates").is_none());
}

#[test]
fn sentinel_statefulset_passes_auth_pass() {
    let mut c = cluster("{}");
    c.spec.auth = Some(AuthSpec { secret_ref: Some(SecretKeyRef { name: "mine".into(), key: "pw".into() }) });
    let sts = v(&sentinel_statefulset(&inputs(&c)).unwrap());
    let ctr = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        ctr["args"],
        json!(["/data/sentinel.conf", "--config-template", "/etc/redis-failover/$(POD_NAME).conf",
               "--sentinel", "auth-pass", "mymaster", "$(REDIS_PASSWORD)"])
    );
    assert_eq!(ctr["env"][1]["valueFrom"]["secretKeyRef"], json!({"name": "mine", "key": "pw"}));
    assert_eq!(ctr["ports"][0]["containerPort"], 26379);
}

#[test]
fn user_scheduling_and_overrides_are_used() {
    let c = cluster(r#"{
        "redis": {"nodeSelector": {"disk": "ssd"}, "priorityClassName": "high",
                  "tolerations": [{"key": "k", "operator": "Exists"}],
                  "affinity": {"nodeAffinity": {}}},
        "podLabels": {"team": "a", "app.kubernetes.io/instance": "hijack"},
        "podAnnotations": {"note": "x"},
        "securityContext": {"container": {"readOnlyRootFilesystem": false}}
    }"#);
    let sts = v(&server_statefulset(&inputs(&c)).unwrap());
    let t = &sts["spec"]["template"];
    assert_eq!(t["spec"]["nodeSelector"]["disk"], "ssd");
    assert_eq!(t["spec"]["priorityClassName"], "high");
    assert_eq!(t["spec"]["tolerations"][0]["key"], "k");
    assert!(t["spec"]["affinity"].get("podAntiAffinity").is_none());
    assert_eq!(t["metadata"]["labels"]["team"], "a");
    assert_eq!(t["metadata"]["labels"]["app.kubernetes.io/instance"], "rf", "selector labels cannot be overridden");
    assert_eq!(t["metadata"]["annotations"]["note"], "x");
    assert_eq!(t["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"], false);
}

#[test]
fn restart_hash_tracks_image_and_config_not_master() {
    let c = cluster("{}");
    let h0 = restart_hash(&inputs(&c), Component::Server);
    let moved = Inputs::new(&c, MasterRef { ordinal: 2 }).unwrap();
    assert_eq!(restart_hash(&moved, Component::Server), h0);
    let mut c2 = c.clone();
    c2.spec.redis.image = "other:1".into();
    assert_ne!(restart_hash(&inputs(&c2), Component::Server), h0);
    let mut c3 = c.clone();
    c3.spec.redis.config.insert("maxmemory".into(), "1mb".into());
    assert_ne!(restart_hash(&inputs(&c3), Component::Server), h0);
    assert_eq!(restart_hash(&inputs(&c3), Component::Sentinel), restart_hash(&inputs(&c), Component::Sentinel));
    // Pod-template-only changes reach running pods too (OnDelete needs the hash to move).
    for changed in [
        r#"{"metrics":{"enabled":true}}"#,
        r#"{"podAnnotations":{"team":"cache"}}"#,
        r#"{"redis":{"nodeSelector":{"disk":"ssd"}}}"#,
    ] {
        let c4 = cluster(changed);
        assert_ne!(restart_hash(&inputs(&c4), Component::Server), h0, "{changed}");
        // The annotation on the template is that same hash.
        let sts = v(&server_statefulset(&inputs(&c4)).unwrap());
        assert_eq!(sts["spec"]["template"]["metadata"]["annotations"]["redisfailover.io/config-hash"], restart_hash(&inputs(&c4), Component::Server));
    }
}

#[test]
fn services_select_by_role() {
    let c = cluster(r#"{"service":{"type":"LoadBalancer","annotations":{"a":"b"}}}"#);
    let svcs: Vec<Value> = services(&inputs(&c)).unwrap().iter().map(v).collect();
    let by_name = |n: &str| svcs.iter().find(|s| s["metadata"]["name"] == n).unwrap().clone();
    let master = by_name("rf-master");
    assert_eq!(master["spec"]["selector"]["redisfailover.io/role"], "master");
    assert_eq!(master["spec"]["selector"]["app.kubernetes.io/component"], "server");
    assert_eq!(master["spec"]["type"], "LoadBalancer");
    assert_eq!(master["metadata"]["annotations"]["a"], "b");
    assert_eq!(by_name("rf-replicas")["spec"]["selector"]["redisfailover.io/role"], "replica");
    let sent = by_name("rf-sentinel");
    assert_eq!(sent["spec"]["ports"][0]["port"], 26379);
    assert!(sent["spec"]["selector"].get("redisfailover.io/role").is_none());
    for h in ["rf-server-headless", "rf-sentinel-headless"] {
        let s = by_name(h);
        assert_eq!(s["spec"]["clusterIP"], "None");
        assert_eq!(s["spec"]["publishNotReadyAddresses"], true);
        assert!(s["metadata"].get("annotations").is_none());
    }
}

#[test]
fn pdbs_secret_and_network_policy() {
    let c = cluster(r#"{"metrics":{"enabled":true}}"#);
    let i = inputs(&c);
    let p: Vec<Value> = pdbs(&i).unwrap().iter().map(v).collect();
    assert_eq!(p[0]["metadata"]["name"], "rf-server");
    assert_eq!(p[1]["metadata"]["name"], "rf-sentinel");
    assert_eq!(p[0]["spec"]["maxUnavailable"], 1);
    let s = v(&generated_secret(&i, "s3cret").unwrap());
    assert_eq!(s["metadata"]["name"], "rf-auth");
    assert_eq!(s["stringData"]["password"], "s3cret");
    let np = v(&network_policy(&i).unwrap());
    assert_eq!(np["spec"]["ingress"][0]["ports"].as_array().unwrap().len(), 3);
    let sts = v(&server_statefulset(&i).unwrap());
    let exporter = &sts["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(exporter["name"], "metrics");
}

#[test]
fn metrics_sidecar_is_our_exporter() {
    let c = cluster(r#"{"metrics":{"enabled":true}}"#);
    let sts = v(&server_statefulset(&inputs(&c)).unwrap());
    let m = &sts["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(m["image"], "redis-failover/rf-operator:0.1.0");
    assert!(!m.to_string().contains("oliver006"), "{m}");
    assert_eq!(m["args"], json!(["exporter", "--redis-addr", "127.0.0.1:6379", "--listen", ":9121"]));
    assert_eq!(m["env"][0]["name"], "REDIS_PASSWORD");
    assert_eq!(m["env"][0]["valueFrom"]["secretKeyRef"]["name"], "rf-auth");
    assert_eq!(m["ports"][0]["containerPort"], 9121);
    assert_eq!(m["securityContext"]["readOnlyRootFilesystem"], true);
    // A custom image and pull policy are honoured.
    let c = cluster(r#"{"metrics":{"enabled":true,"image":"my.reg/rf-operator:1.2","imagePullPolicy":"Always"}}"#);
    let sts = v(&server_statefulset(&inputs(&c)).unwrap());
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][1]["image"], "my.reg/rf-operator:1.2");
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"], "Always");
    // Off: one container only.
    let sts = v(&server_statefulset(&inputs(&cluster("{}"))).unwrap());
    assert_eq!(sts["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 1);
}

#[test]
fn scale_down_keeps_the_master_pod_until_it_moved() {
    let c = cluster(r#"{"redis":{"replicas":2}}"#);
    // Master on ordinal 2: the StatefulSet keeps 3 pods and configs for all 3.
    let i = Inputs::new(&c, MasterRef { ordinal: 2 }).unwrap();
    assert_eq!(i.server_replicas, 3);
    assert_eq!(v(&server_statefulset(&i).unwrap())["spec"]["replicas"], 3);
    assert_eq!(server_config_map(&i).unwrap().data.unwrap().len(), 3);
    // Master on ordinal 0: shrink to 2.
    let i = Inputs::new(&c, MasterRef { ordinal: 0 }).unwrap();
    assert_eq!(v(&server_statefulset(&i).unwrap())["spec"]["replicas"], 2);
}

#[test]
fn desired_objects_cover_every_kind_and_only_our_images() {
    let c = cluster(r#"{"metrics":{"enabled":true},"networkPolicy":{"enabled":true}}"#);
    let objs = desired_objects(&inputs(&c)).unwrap();
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    for k in ["Secret", "ConfigMap", "Service", "PodDisruptionBudget", "NetworkPolicy", "StatefulSet"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let images: Vec<String> = objs
        .iter()
        .filter(|o| o["kind"] == "StatefulSet")
        .flat_map(|o| o["spec"]["template"]["spec"]["containers"].as_array().unwrap().clone())
        .map(|c| c["image"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(images.len(), 3, "server, exporter, sentinel: {images:?}");
    assert!(images.iter().all(|i| i.starts_with("redis-failover/")), "{images:?}");
    // A user Secret is referenced, not generated.
    let c = cluster(r#"{"auth":{"secretRef":{"name":"mine"}}}"#);
    let objs = desired_objects(&inputs(&c)).unwrap();
    assert!(!objs.iter().any(|o| o["kind"] == "Secret"));
}
