//! Object names, labels and DNS names shared by the builders, the reconciler and the tracker.

use std::collections::BTreeMap;

pub const FIELD_MANAGER: &str = "rf-operator";
pub const MASTER_NAME: &str = "mymaster";
pub const SERVER_PORT: i32 = 6379;
pub const SENTINEL_PORT: i32 = 26379;
/// Port of the metrics sidecar (`rf-operator exporter`), as redis_exporter's.
pub const EXPORTER_PORT: i32 = 9121;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_ROLE: &str = "redisfailover.io/role";
pub const ROLE_MASTER: &str = "master";
pub const ROLE_REPLICA: &str = "replica";
/// Pod-template annotation: hash of everything that requires a pod restart.
pub const ANNOTATION_CONFIG_HASH: &str = "redisfailover.io/config-hash";

pub const APP_NAME: &str = "redis-failover";
pub const CONFIG_MOUNT: &str = "/etc/redis-failover";
pub const DATA_DIR: &str = "/data";
pub const PASSWORD_ENV: &str = "REDIS_PASSWORD";
pub const POD_NAME_ENV: &str = "POD_NAME";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Server,
    Sentinel,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Sentinel => "sentinel",
        }
    }
}

pub fn statefulset(cluster: &str, c: Component) -> String {
    format!("{cluster}-{}", c.as_str())
}
pub fn headless_service(cluster: &str, c: Component) -> String {
    format!("{cluster}-{}-headless", c.as_str())
}
pub fn config_map(cluster: &str, c: Component) -> String {
    format!("{cluster}-{}-config", c.as_str())
}
pub fn pdb(cluster: &str, c: Component) -> String {
    statefulset(cluster, c)
}
pub fn master_service(cluster: &str) -> String {
    format!("{cluster}-master")
}
pub fn replicas_service(cluster: &str) -> String {
    format!("{cluster}-replicas")
}
pub fn sentinel_service(cluster: &str) -> String {
    format!("{cluster}-sentinel")
}
pub fn generated_secret(cluster: &str) -> String {
    format!("{cluster}-auth")
}
pub fn network_policy(cluster: &str) -> String {
    cluster.to_string()
}
pub fn pod(cluster: &str, c: Component, ordinal: i32) -> String {
    format!("{}-{ordinal}", statefulset(cluster, c))
}

/// Stable DNS name of a StatefulSet pod behind its headless Service.
pub fn pod_dns(cluster: &str, namespace: &str, c: Component, ordinal: i32) -> String {
    format!(
        "{}.{}.{namespace}.svc.cluster.local",
        pod(cluster, c, ordinal),
        headless_service(cluster, c)
    )
}

/// The ordinal of a pod name `<cluster>-<component>-<n>`, if it is one.
pub fn ordinal_of(cluster: &str, c: Component, pod_name: &str) -> Option<i32> {
    let prefix = format!("{}-", statefulset(cluster, c));
    let rest = pod_name.strip_prefix(&prefix)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Labels that select every pod of one component of a cluster.
pub fn selector_labels(cluster: &str, c: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_COMPONENT.to_string(), c.as_str().to_string()),
    ])
}

/// Labels put on every object the operator owns.
pub fn common_labels(cluster: &str, c: Option<Component>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster.to_string()),
        (LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
    ]);
    if let Some(c) = c {
        l.insert(LABEL_COMPONENT.to_string(), c.as_str().to_string());
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_and_ordinals() {
        assert_eq!(
            pod_dns("rf", "prod", Component::Server, 2),
            "rf-server-2.rf-server-headless.prod.svc.cluster.local"
        );
        assert_eq!(ordinal_of("rf", Component::Server, "rf-server-12"), Some(12));
        assert_eq!(ordinal_of("rf", Component::Server, "rf-sentinel-1"), None);
        assert_eq!(ordinal_of("rf", Component::Server, "rf-server-"), None);
        assert_eq!(ordinal_of("rf", Component::Server, "rf-server-1x"), None);
    }
}
