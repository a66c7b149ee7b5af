//! Pure functions: a cluster (plus the master currently known) -> desired objects.
//! No I/O here; the reconciler applies what these return.

pub mod config;
pub mod immutable;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

pub use config::{configured_replica_priority, render_redis_conf, render_sentinel_conf, validate_spec, MasterRef, SpecError};

use crate::operator::crd::{PersistenceMode, RedisFailoverCluster, SecretKeyRef};
use crate::operator::names::{self, Component, FIELD_MANAGER, SENTINEL_PORT, SERVER_PORT};

/// Failure to build an object (a bug or a value Kubernetes types cannot hold).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cluster has no {0}")]
    MissingMeta(&'static str),
    #[error("building {kind}: {source}")]
    Serde { kind: &'static str, source: serde_json::Error },
}

/// Everything the builders need, resolved once per reconcile.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub cluster: &'a RedisFailoverCluster,
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    /// The master the configs point at: the one in status, ordinal 0 initially.
    pub master: MasterRef,
    /// Secret and key holding the password.
    pub password: SecretKeyRef,
    /// Server pods to run: `spec.redis.replicas`, except during a scale-down that would
    /// remove the master, which waits (more pods) until the master has moved.
    pub server_replicas: i32,
}

impl<'a> Inputs<'a> {
    pub fn new(cluster: &'a RedisFailoverCluster, master: MasterRef) -> Result<Self, BuildError> {
        let name = cluster.metadata.name.clone().ok_or(BuildError::MissingMeta("name"))?;
        let namespace = cluster.namespace().ok_or(BuildError::MissingMeta("namespace"))?;
        let owner = cluster.controller_owner_ref(&()).ok_or(BuildError::MissingMeta("uid"))?;
        let password = cluster
            .spec
            .auth
            .as_ref()
            .and_then(|a| a.secret_ref.clone())
            .unwrap_or_else(|| SecretKeyRef { name: names::generated_secret(&name), key: "password".into() });
        let server_replicas = cluster.spec.redis.replicas.max(master.ordinal + 1);
        Ok(Inputs { cluster, name, namespace, owner, master, password, server_replicas })
    }

    fn meta(&self, name: String, component: Option<Component>) -> Value {
        json!({
            "name": name,
            "namespace": self.namespace,
            "labels": names::common_labels(&self.name, component),
            "ownerReferences": [self.owner],
        })
    }
}

fn typed<T: DeserializeOwned>(kind: &'static str, v: Value) -> Result<T, BuildError> {
    serde_json::from_value(v).map_err(|source| BuildError::Serde { kind, source })
}

/// ConfigMap `<name>-server-config`: one rendered file per server pod, `<pod>.conf`.
pub fn server_config_map(i: &Inputs) -> Result<ConfigMap, BuildError> {
    let spec = &i.cluster.spec;
    let data: BTreeMap<String, String> = (0..i.server_replicas.max(0))
        .map(|o| {
            (
                format!("{}.conf", names::pod(&i.name, Component::Server, o)),
                render_redis_conf(spec, &i.name, &i.namespace, o, &i.master),
            )
        })
        .collect();
    typed("ConfigMap", json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": i.meta(names::config_map(&i.name, Component::Server), Some(Component::Server)),
        "data": data,
    }))
}

/// ConfigMap `<name>-sentinel-config`: one rendered file per sentinel pod.
pub fn sentinel_config_map(i: &Inputs) -> Result<ConfigMap, BuildError> {
    let spec = &i.cluster.spec;
    let data: BTreeMap<String, String> = (0..spec.sentinel.replicas.max(0))
        .map(|o| {
            (
                format!("{}.conf", names::pod(&i.name, Component::Sentinel, o)),
                render_sentinel_conf(spec, &i.name, &i.namespace, o, &i.master),
            )
        })
        .collect();
    typed("ConfigMap", json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": i.meta(names::config_map(&i.name, Component::Sentinel), Some(Component::Sentinel)),
        "data": data,
    }))
}

/// Hash of everything whose change needs a pod restart: the rendered pod template
/// (image, resources, sidecars, scheduling, security, pod labels/annotations, ...) plus
/// what reaches the pods only through their ConfigMap (user config, persistence mode,
/// sentinel settings). The StatefulSets are OnDelete, so a change the hash missed would
/// never reach running pods. The master position is deliberately NOT part of it: a
/// failover must not trigger a rolling upgrade.
pub fn restart_hash(i: &Inputs, c: Component) -> String {
    let spec = &i.cluster.spec;
    let through_config = match c {
        Component::Server => json!([spec.redis.config, spec.persistence.mode]),
        Component::Sentinel => json!([
            spec.sentinel.quorum, spec.sentinel.down_after_milliseconds, spec.sentinel.failover_timeout, spec.sentinel.parallel_syncs
        ]),
    };
    let relevant = json!([through_config, pod_template(i, c)]);
    hex::encode(&Sha1::digest(relevant.to_string().as_bytes())[..8])
}

fn default_anti_affinity(i: &Inputs, c: Component) -> Value {
    json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": names::selector_labels(&i.name, c)},
        }
    }]}})
}

fn security_contexts(i: &Inputs) -> (Value, Value) {
    let sc = i.cluster.spec.security_context.as_ref();
    let pod = sc.and_then(|s| s.pod.as_ref()).map(|p| json!(p)).unwrap_or_else(|| json!({
        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }));
    let container = sc.and_then(|s| s.container.as_ref()).map(|c| json!(c)).unwrap_or_else(|| json!({
        "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
        "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]},
    }));
    (pod, container)
}

/// The pod template (without the restart-hash annotation).
fn pod_template(i: &Inputs, c: Component) -> Value {
    let spec = &i.cluster.spec;
    let (image, pull, resources, sched, port, port_name) = match c {
        Component::Server => (&spec.redis.image, &spec.redis.image_pull_policy,
            &spec.redis.resources, &spec.redis.scheduling, SERVER_PORT, "redis"),
        Component::Sentinel => (&spec.sentinel.image, &spec.sentinel.image_pull_policy,
            &spec.sentinel.resources, &spec.sentinel.scheduling, SENTINEL_PORT, "sentinel"),
    };
    let conf_file = match c {
        Component::Server => "redis.conf",
        Component::Sentinel => "sentinel.conf",
    };
    // $(VAR) is expanded by the kubelet: each pod picks its own rendered file, and the
    // password comes from the Secret through an env var (never written to a ConfigMap).
    let mut args = vec![
        format!("{}/{conf_file}", names::DATA_DIR),
        "--config-template".to_string(),
        format!("{}/$({}).conf", names::CONFIG_MOUNT, names::POD_NAME_ENV),
    ];
    let pw = format!("$({})", names::PASSWORD_ENV);
    match c {
        Component::Server => args.extend(["--requirepass".into(), pw.clone(), "--masterauth".into(), pw]),
        Component::Sentinel => args.extend([
            "--sentinel".into(), "auth-pass".into(), names::MASTER_NAME.into(), pw,
        ]),
    }
    let mut labels = names::common_labels(&i.name, Some(c));
    labels.extend(spec.pod_labels.clone());
    // Our own labels win over user pod labels.
    labels.extend(names::common_labels(&i.name, Some(c)));
    let annotations = spec.pod_annotations.clone();
    let (pod_sc, container_sc) = security_contexts(i);
    let persistent = c == Component::Server && spec.persistence.mode != PersistenceMode::None;

    let probe = json!({"tcpSocket": {"port": port}, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3});
    let mut containers = vec![json!({
        "name": c.as_str(),
        "image": image,
        "imagePullPolicy": pull.as_str(),
        "args": args,
        "env": [
            {"name": names::POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": names::PASSWORD_ENV, "valueFrom": {"secretKeyRef": {"name": i.password.name, "key": i.password.key}}},
        ],
        "ports": [{"name": port_name, "containerPort": port}],
        "resources": resources.clone().unwrap_or_default(),
        "securityContext": container_sc,
        "readinessProbe": probe,
        "livenessProbe": {"tcpSocket": {"port": port}, "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "config", "mountPath": names::CONFIG_MOUNT, "readOnly": true},
            {"name": "data", "mountPath": names::DATA_DIR},
        ],
    })];
    if spec.metrics.enabled && c == Component::Server {
        // Our own exporter (`rf-operator exporter`, from the operator image) reads the
        // server's INFO over loopback; the password comes from the same Secret.
        let m = &spec.metrics;
        containers.push(json!({
            "name": "metrics",
            "image": m.image,
            "imagePullPolicy": m.image_pull_policy.as_str(),
            "args": ["exporter", "--redis-addr", format!("127.0.0.1:{SERVER_PORT}"), "--listen", format!(":{}", names::EXPORTER_PORT)],
            "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": i.password.name, "key": i.password.key}}}],
            "ports": [{"name": "metrics", "containerPort": names::EXPORTER_PORT}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10},
            "resources": m.resources.clone().unwrap_or_else(|| serde_json::from_value(json!({
                "requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}
            })).unwrap_or_default()),
            "securityContext": container_sc,
        }));
    }
    let mut volumes = vec![json!({"name": "config", "configMap": {"name": names::config_map(&i.name, c)}})];
    if !persistent {
        volumes.push(json!({"name": "data", "emptyDir": {}}));
    }
    let mut pod_spec = json!({
        "securityContext": pod_sc,
        "affinity": sched.affinity.as_ref().map(|a| json!(a)).unwrap_or_else(|| default_anti_affinity(i, c)),
        "containers": containers,
        "volumes": volumes,
        "terminationGracePeriodSeconds": 30,
    });
    if !sched.tolerations.is_empty() {
        pod_spec["tolerations"] = json!(sched.tolerations);
    }
    if !sched.node_selector.is_empty() {
        pod_spec["nodeSelector"] = json!(sched.node_selector);
    }
    if !sched.topology_spread_constraints.is_empty() {
        pod_spec["topologySpreadConstraints"] = json!(sched.topology_spread_constraints);
    }
    if let Some(pc) = &sched.priority_class_name {
        pod_spec["priorityClassName"] = json!(pc);
    }
    json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec})
}

fn statefulset(i: &Inputs, c: Component) -> Result<StatefulSet, BuildError> {
    let spec = &i.cluster.spec;
    let replicas = match c {
        Component::Server => i.server_replicas,
        Component::Sentinel => spec.sentinel.replicas,
    };
    let persistent = c == Component::Server && spec.persistence.mode != PersistenceMode::None;
    let mut template = pod_template(i, c);
    template["metadata"]["annotations"][names::ANNOTATION_CONFIG_HASH] = json!(restart_hash(i, c));
    let mut sts_spec = json!({
        "replicas": replicas,
        "serviceName": names::headless_service(&i.name, c),
        "podManagementPolicy": "Parallel",
        // The operator restarts pods itself, in a safe order (replicas, failover, old master).
        "updateStrategy": {"type": "OnDelete"},
        "selector": {"matchLabels": names::selector_labels(&i.name, c)},
        "template": template,
    });
    if persistent {
        let mut pvc_spec = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.persistence.size}},
        });
        if let Some(sc) = spec.persistence.storage_class_name.as_deref().filter(|s| !s.is_empty()) {
            pvc_spec["storageClassName"] = json!(sc);
        }
        sts_spec["volumeClaimTemplates"] = json!([{
            "metadata": {"name": "data", "labels": names::selector_labels(&i.name, c)},
            "spec": pvc_spec,
        }]);
        let when_deleted = if spec.persistence.keep_on_delete { "Retain" } else { "Delete" };
        sts_spec["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": when_deleted, "whenScaled": "Retain"});
    }
    typed("StatefulSet", json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": i.meta(names::statefulset(&i.name, c), Some(c)),
        "spec": sts_spec,
    }))
}

pub fn server_statefulset(i: &Inputs) -> Result<StatefulSet, BuildError> {
    statefulset(i, Component::Server)
}
pub fn sentinel_statefulset(i: &Inputs) -> Result<StatefulSet, BuildError> {
    statefulset(i, Component::Sentinel)
}

fn service(i: &Inputs, name: String, c: Component, extra_selector: Option<&str>, headless: bool) -> Result<Service, BuildError> {
    let spec = &i.cluster.spec;
    let mut selector = names::selector_labels(&i.name, c);
    if let Some(role) = extra_selector {
        selector.insert(names::LABEL_ROLE.into(), role.into());
    }
    let (port, port_name) = match c {
        Component::Server => (SERVER_PORT, "redis"),
        Component::Sentinel => (SENTINEL_PORT, "sentinel"),
    };
    let mut metadata = i.meta(name, Some(c));
    let mut svc_spec = json!({
        "selector": selector,
        "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
    });
    if headless {
        svc_spec["clusterIP"] = json!("None");
        // DNS names must exist before pods are ready: replicas resolve their master at boot.
        svc_spec["publishNotReadyAddresses"] = json!(true);
    } else {
        svc_spec["type"] = json!(spec.service.type_.as_str());
        if !spec.service.annotations.is_empty() {
            metadata["annotations"] = json!(spec.service.annotations);
        }
    }
    typed("Service", json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": svc_spec}))
}

/// All Services: master (role=master), replicas (role=replica), sentinel, two headless.
pub fn services(i: &Inputs) -> Result<Vec<Service>, BuildError> {
    Ok(vec![
        service(i, names::master_service(&i.name), Component::Server, Some(names::ROLE_MASTER), false)?,
        service(i, names::replicas_service(&i.name), Component::Server, Some(names::ROLE_REPLICA), false)?,
        service(i, names::sentinel_service(&i.name), Component::Sentinel, None, false)?,
        service(i, names::headless_service(&i.name, Component::Server), Component::Server, None, true)?,
        service(i, names::headless_service(&i.name, Component::Sentinel), Component::Sentinel, None, true)?,
    ])
}

/// PDBs: at most one server and one sentinel voluntarily down at a time (keeps a
/// sentinel majority and at least one replica to fail over to).
pub fn pdbs(i: &Inputs) -> Result<Vec<PodDisruptionBudget>, BuildError> {
    [Component::Server, Component::Sentinel]
        .into_iter()
        .map(|c| {
            typed("PodDisruptionBudget", json!({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": i.meta(names::pdb(&i.name, c), Some(c)),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": names::selector_labels(&i.name, c)}},
            }))
        })
        .collect()
}

/// The generated password Secret `<name>-auth` (only when no secretRef is given).
pub fn generated_secret(i: &Inputs, password: &str) -> Result<Secret, BuildError> {
    typed("Secret", json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": i.meta(names::generated_secret(&i.name), None),
        "type": "Opaque",
        "stringData": {"password": password},
    }))
}

/// Optional NetworkPolicy: servers and sentinels accept traffic on their ports from pods
/// of the same namespace and from the operator (any namespace, by its name label).
pub fn network_policy(i: &Inputs) -> Result<NetworkPolicy, BuildError> {
    let mut ports = vec![json!({"port": SERVER_PORT, "protocol": "TCP"}), json!({"port": SENTINEL_PORT, "protocol": "TCP"})];
    if i.cluster.spec.metrics.enabled {
        ports.push(json!({"port": names::EXPORTER_PORT, "protocol": "TCP"}));
    }
    typed("NetworkPolicy", json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": i.meta(names::network_policy(&i.name), None),
        "spec": {
            "podSelector": {"matchLabels": {names::LABEL_NAME: names::APP_NAME, names::LABEL_INSTANCE: i.name}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    {"podSelector": {}},
                    {"namespaceSelector": {}, "podSelector": {"matchLabels": {names::LABEL_NAME: FIELD_MANAGER}}},
                ],
                "ports": ports,
            }],
        },
    }))
}

/// Every object the operator applies for a cluster with the master on ordinal 0, as
/// JSON, in apply order (what `rf-operator render` prints for offline validation). The
/// generated Secret is included only when no `auth.secretRef` is given, with a
/// placeholder password.
pub fn desired_objects(i: &Inputs) -> Result<Vec<Value>, BuildError> {
    let ser = |kind: &'static str, v: Result<Value, serde_json::Error>| v.map_err(|source| BuildError::Serde { kind, source });
    let mut out = vec![];
    if i.cluster.spec.auth.as_ref().and_then(|a| a.secret_ref.as_ref()).is_none() {
        out.push(ser("Secret", serde_json::to_value(generated_secret(i, "generated-at-runtime")?))?);
    }
    out.push(ser("ConfigMap", serde_json::to_value(server_config_map(i)?))?);
    out.push(ser("ConfigMap", serde_json::to_value(sentinel_config_map(i)?))?);
    for svc in services(i)? {
        out.push(ser("Service", serde_json::to_value(svc))?);
    }
    for pdb in pdbs(i)? {
        out.push(ser("PodDisruptionBudget", serde_json::to_value(pdb))?);
    }
    if i.cluster.spec.network_policy.enabled {
        out.push(ser("NetworkPolicy", serde_json::to_value(network_policy(i)?))?);
    }
    out.push(ser("StatefulSet", serde_json::to_value(server_statefulset(i)?))?);
    out.push(ser("StatefulSet", serde_json::to_value(sentinel_statefulset(i)?))?);
    Ok(out)
}

#[cfg(test)]
mod tests;
