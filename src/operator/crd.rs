//! The `RedisFailoverCluster` custom resource: the Rust type is the source of truth for the
//! CRD in `crds/` (`rf-operator crd` prints it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodSecurityContext, ResourceRequirements, SecurityContext, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Crate version, used for the default image tags.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn default_server_replicas() -> i32 {
    3
}
fn default_sentinel_replicas() -> i32 {
    3
}
fn default_down_after() -> i64 {
    5000
}
fn default_failover_timeout() -> i64 {
    10000
}
fn default_parallel_syncs() -> i32 {
    1
}
fn default_server_image() -> String {
    format!("redis-failover/rf-server:{VERSION}")
}
fn default_sentinel_image() -> String {
    format!("redis-failover/rf-sentinel:{VERSION}")
}
fn default_exporter_image() -> String {
    format!("redis-failover/rf-operator:{VERSION}")
}
fn default_pull_policy() -> PullPolicy {
    PullPolicy::IfNotPresent
}
fn default_size() -> String {
    "1Gi".to_string()
}
fn default_true() -> bool {
    true
}
fn default_service_type() -> ServiceType {
    ServiceType::ClusterIP
}

/// Desired state of a Redis master/replica group and its sentinels.
// The repeated `type_ =` keys of the printcolumns look like duplicated attributes to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "redisfailover.io",
    version = "v1alpha1",
    kind = "RedisFailoverCluster",
    plural = "redisfailoverclusters",
    shortname = "rfc",
    namespaced,
    derive = "Default",
    derive = "PartialEq",
    status = "RedisFailoverClusterStatus",
    printcolumn(name = "Master", type_ = "string", json_path = ".status.master.pod"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.readyServers"),
    printcolumn(name = "Sentinels", type_ = "integer", json_path = ".status.readySentinels"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RedisFailoverClusterSpec {
    #[serde(default)]
    pub redis: RedisSpec,
    #[serde(default)]
    pub sentinel: SentinelSpec,
    #[serde(default)]
    pub persistence: PersistenceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub service: ServiceSpec,
    /// Overrides the default security context (non-root, read-only root filesystem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContextSpec>,
    #[serde(default)]
    pub network_policy: ToggleSpec,
    #[serde(default)]
    pub metrics: MetricsSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Scheduling knobs shared by servers and sentinels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    /// When absent, pods of one group are spread across nodes (preferred anti-affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Number of server pods: one master plus `replicas - 1` replicas.
    #[serde(default = "default_server_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,
    #[serde(default = "default_server_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: PullPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra redis.conf directives (directive -> value). Directives the operator manages
    /// (replicaof, port, dir, ...) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Fencing of a master cut off from its replicas while clients still reach it: it accepts
    /// writes only while `minReplicasToWrite` replicas acknowledged within
    /// `maxLagMilliseconds`. Writes it accepts in that window are lost when the other side
    /// fails over: with the defaults about 0.3 s of writes (Redis's own rule
    /// counts the lag in whole seconds, 10 by default). Writes confirmed with WAIT 1 are never
    /// lost.
    #[serde(default)]
    pub fencing: FencingSpec,
    #[serde(default, flatten)]
    pub scheduling: Scheduling,
}

impl Default for RedisSpec {
    fn default() -> Self {
        RedisSpec {
            replicas: default_server_replicas(),
            image: default_server_image(),
            image_pull_policy: default_pull_policy(),
            resources: None,
            config: BTreeMap::new(),
            fencing: FencingSpec::default(),
            scheduling: Scheduling::default(),
        }
    }
}

/// 3 ACK periods: a replica may miss two ACKs before the master fences; a partitioned
/// master loses at most ~0.3 s of writes (~3% in a 10 s partition, scripts/bench-partition.sh).
fn default_max_lag_ms() -> i64 {
    300
}
fn default_ack_period_ms() -> i64 {
    100
}

/// Fencing of a partitioned master, rendered into every server's redis.conf. A master keeps
/// accepting writes only while `minReplicasToWrite` replicas acknowledged the stream within
/// `maxLagMilliseconds`; replicas acknowledge every `ackPeriodMilliseconds`. Writes a master
/// cut off from its replicas accepts during that lag are lost when the other side fails over:
/// with the defaults, about 0.3 s of writes (Redis's own rule counts the lag
/// in whole seconds from ACKs sent once a second, 10 s by default).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.ackPeriodMilliseconds * 2 <= self.maxLagMilliseconds").message("fencing.ackPeriodMilliseconds must be at most half of fencing.maxLagMilliseconds"))]
pub struct FencingSpec {
    /// `min-replicas-to-write`. Unset: 1 when the cluster has at least 3 servers (writes go on
    /// with one replica down or restarting), 0 with fewer (a lone replica's restart would
    /// stop all writes). 0 turns fencing off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replicas_to_write: Option<i32>,
    /// `min-replicas-max-lag-ms` (rf-server's own directive): a replica counts while its last
    /// acknowledgement is at most this old.
    #[serde(default = "default_max_lag_ms")]
    #[schemars(range(min = 50))]
    pub max_lag_milliseconds: i64,
    /// `repl-ack-period-ms` (rf-server's own directive): how often replicas acknowledge.
    #[serde(default = "default_ack_period_ms")]
    #[schemars(range(min = 10))]
    pub ack_period_milliseconds: i64,
}

impl Default for FencingSpec {
    fn default() -> Self {
        FencingSpec {
            min_replicas_to_write: None,
            max_lag_milliseconds: default_max_lag_ms(),
            ack_period_milliseconds: default_ack_period_ms(),
        }
    }
}

impl RedisSpec {
    /// The `min-replicas-to-write` the servers run with (see [`FencingSpec`]).
    pub fn effective_min_replicas_to_write(&self) -> i32 {
        self.fencing.min_replicas_to_write.unwrap_or(if self.replicas >= 3 { 1 } else { 0 })
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.quorum) || self.quorum <= self.replicas").message("sentinel.quorum must be <= sentinel.replicas"))]
pub struct SentinelSpec {
    #[serde(default = "default_sentinel_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// Sentinels that must agree a master is down; defaults to a majority of `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub quorum: Option<i32>,
    #[serde(default = "default_down_after")]
    #[schemars(range(min = 100))]
    pub down_after_milliseconds: i64,
    #[serde(default = "default_failover_timeout")]
    #[schemars(range(min = 1000))]
    pub failover_timeout: i64,
    #[serde(default = "default_parallel_syncs")]
    #[schemars(range(min = 1))]
    pub parallel_syncs: i32,
    #[serde(default = "default_sentinel_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: PullPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, flatten)]
    pub scheduling: Scheduling,
}

impl SentinelSpec {
    /// The configured quorum, or a majority of the sentinels.
    pub fn effective_quorum(&self) -> i32 {
        self.quorum.unwrap_or(self.replicas / 2 + 1)
    }
}

impl Default for SentinelSpec {
    fn default() -> Self {
        SentinelSpec {
            replicas: default_sentinel_replicas(),
            quorum: None,
            down_after_milliseconds: default_down_after(),
            failover_timeout: default_failover_timeout(),
            parallel_syncs: default_parallel_syncs(),
            image: default_sentinel_image(),
            image_pull_policy: default_pull_policy(),
            resources: None,
            scheduling: Scheduling::default(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
pub enum PersistenceMode {
    #[default]
    None,
    #[serde(rename = "RDB")]
    Rdb,
    #[serde(rename = "AOF")]
    Aof,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    #[serde(default)]
    pub mode: PersistenceMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// PVC size (a Kubernetes quantity such as `1Gi`).
    #[serde(default = "default_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,
    /// Keep the PVCs when the cluster is deleted.
    #[serde(default = "default_true")]
    pub keep_on_delete: bool,
}

impl Default for PersistenceSpec {
    fn default() -> Self {
        PersistenceSpec {
            mode: PersistenceMode::None,
            storage_class_name: None,
            size: default_size(),
            keep_on_delete: true,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1))]
    pub key: String,
}

fn default_password_key() -> String {
    "password".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default = "default_service_type", rename = "type")]
    pub type_: ServiceType,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec { type_: ServiceType::ClusterIP, annotations: BTreeMap::new() }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContextSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<SecurityContext>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
pub struct ToggleSpec {
    #[serde(default)]
    pub enabled: bool,
}

/// The metrics sidecar of every server pod: `rf-operator exporter` (our own image, the
/// operator's), serving Prometheus metrics on port 9121 with redis_exporter's names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Image providing `rf-operator exporter` (the operator image).
    #[serde(default = "default_exporter_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: PullPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec { enabled: false, image: default_exporter_image(), image_pull_policy: default_pull_policy(), resources: None }
    }
}

/// Observed state, kstatus style.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisFailoverClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<MasterStatus>,
    #[serde(default)]
    pub ready_servers: i32,
    #[serde(default)]
    pub ready_sentinels: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover_time: Option<String>,
    #[serde(default)]
    pub failover_count: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MasterStatus {
    pub pod: String,
    pub host: String,
    pub port: i32,
}

/// The CRD as YAML (what `rf-operator crd` prints and `crds/` holds).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&RedisFailoverCluster::crd()).expect("CRD serializes to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_spec_gives_seed_topology() {
        let spec: RedisFailoverClusterSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.redis.replicas, 3);
        assert_eq!(spec.sentinel.replicas, 3);
        assert_eq!(spec.sentinel.effective_quorum(), 2);
        assert_eq!(spec.sentinel.down_after_milliseconds, 5000);
        assert_eq!(spec.sentinel.failover_timeout, 10000);
        assert_eq!(spec.sentinel.parallel_syncs, 1);
        assert_eq!(spec.redis.image, "redis-failover/rf-server:0.1.0");
        assert_eq!(spec.sentinel.image, "redis-failover/rf-sentinel:0.1.0");
        assert_eq!(spec.persistence.mode, PersistenceMode::None);
        assert!(spec.persistence.keep_on_delete);
        assert_eq!(spec.service.type_, ServiceType::ClusterIP);
        assert!(!spec.metrics.enabled);
        assert_eq!(spec.metrics.image, "redis-failover/rf-operator:0.1.0", "the exporter is ours: the operator image");
    }

    #[test]
    fn crd_has_names_columns_and_validations() {
        let yaml = crd_yaml();
        for needle in [
            "name: redisfailoverclusters.redisfailover.io",
            "- rfc",
            "kind: RedisFailoverCluster",
            "name: Master",
            "name: Ready",
            "name: Replicas",
            "name: Sentinels",
            "name: Age",
            "status: {}",
            "self.quorum <= self.replicas",
            "minimum: 1",
            "- RDB",
            "- AOF",
        ] {
            assert!(yaml.contains(needle), "CRD YAML lacks {needle:?}");
        }
    }

    #[test]
    fn persistence_modes_parse() {
        let p: PersistenceSpec = serde_json::from_str(r#"{"mode":"AOF"}"#).unwrap();
        assert_eq!(p.mode, PersistenceMode::Aof);
        assert!(serde_json::from_str::<PersistenceSpec>(r#"{"mode":"aof"}"#).is_err());
    }
}
