//! Spec changes Kubernetes forbids on a live StatefulSet: its `volumeClaimTemplates`
//! (persistence size, storageClassName, turning persistence on or off). Applying them
//! would fail with a 422 on every reconcile; instead the desired StatefulSet keeps the
//! volumes it has, the rest is still managed, and the cluster is marked `Degraded` with
//! a message saying what cannot change and what to do. Pure functions, no I/O.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Volume};

/// What a volume claim template asks for, in comparable form.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimView {
    pub name: String,
    /// The requested size as written (for messages) and in bytes (to compare `1Gi` with `1024Mi`).
    pub size: Option<String>,
    pub size_bytes: Option<f64>,
    pub storage_class: Option<String>,
    pub access_modes: Vec<String>,
}

/// One forbidden difference between the live and the desired StatefulSet.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageChange {
    /// Human-readable differences, e.g. `size 1Gi -> 2Gi`.
    pub differences: Vec<String>,
    /// The claims the live StatefulSet has (what the spec should be reverted to).
    pub current: Vec<ClaimView>,
}

/// A Kubernetes quantity in bytes (`1Gi`, `512Mi`, `1G`, `1e3`, `100`); None if unreadable.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let num: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(num * factor)
}

fn claim_view(pvc: &PersistentVolumeClaim) -> ClaimView {
    let spec = pvc.spec.clone().unwrap_or_default();
    let size = spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).map(|q| q.0.clone());
    ClaimView {
        name: pvc.metadata.name.clone().unwrap_or_default(),
        size_bytes: size.as_deref().and_then(quantity_bytes),
        size,
        storage_class: spec.storage_class_name.filter(|s| !s.is_empty()),
        access_modes: spec.access_modes.unwrap_or_default(),
    }
}

fn claims(sts: &StatefulSet) -> Vec<ClaimView> {
    sts.spec.as_ref().and_then(|s| s.volume_claim_templates.as_ref()).map(|v| v.iter().map(claim_view).collect()).unwrap_or_default()
}

fn show(v: &Option<String>) -> String {
    v.as_ref().map(|s| format!("{s:?}")).unwrap_or_else(|| "(default)".into())
}

/// The forbidden storage differences between `live` and `desired`, if any.
pub fn storage_change(live: &StatefulSet, desired: &StatefulSet) -> Option<StorageChange> {
    let (now, want) = (claims(live), claims(desired));
    let mut differences = vec![];
    match (now.is_empty(), want.is_empty()) {
        (true, true) => return None,
        (true, false) => differences.push("persistence turned on (the StatefulSet has no volume claims)".to_string()),
        (false, true) => differences.push("persistence turned off (the StatefulSet has volume claims)".to_string()),
        (false, false) => {
            for w in &want {
                let Some(n) = now.iter().find(|n| n.name == w.name) else {
                    differences.push(format!("new volume claim {:?}", w.name));
                    continue;
                };
                let same_size = match (n.size_bytes, w.size_bytes) {
                    (Some(a), Some(b)) => (a - b).abs() < 0.5,
                    _ => n.size == w.size,
                };
                if !same_size {
                    differences.push(format!("size {} -> {}", n.size.as_deref().unwrap_or("?"), w.size.as_deref().unwrap_or("?")));
                }
                if n.storage_class != w.storage_class {
                    differences.push(format!("storageClassName {} -> {}", show(&n.storage_class), show(&w.storage_class)));
                }
                if !n.access_modes.is_empty() && !w.access_modes.is_empty() && n.access_modes != w.access_modes {
                    differences.push(format!("accessModes {:?} -> {:?}", n.access_modes, w.access_modes));
                }
            }
            for n in &now {
                if !want.iter().any(|w| w.name == n.name) {
                    differences.push(format!("volume claim {:?} removed", n.name));
                }
            }
        }
    }
    (!differences.is_empty()).then_some(StorageChange { differences, current: now })
}

/// Makes `desired` keep the live StatefulSet's volume claims, and the pod's `data`
/// volume consistent with them (an emptyDir only when there is no claim named `data`).
pub fn keep_live_storage(desired: &mut StatefulSet, live: &StatefulSet) {
    let live_claims = live.spec.as_ref().and_then(|s| s.volume_claim_templates.clone());
    let live_retention = live.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.clone());
    let Some(spec) = desired.spec.as_mut() else { return };
    let has_data_claim = live_claims.iter().flatten().any(|c| c.metadata.name.as_deref() == Some("data"));
    spec.volume_claim_templates = live_claims;
    spec.persistent_volume_claim_retention_policy = live_retention;
    if let Some(pod) = spec.template.spec.as_mut() {
        let volumes = pod.volumes.get_or_insert_with(Vec::new);
        volumes.retain(|v| v.name != "data");
        if !has_data_claim {
            volumes.push(Volume { name: "data".into(), empty_dir: Some(Default::default()), ..Default::default() });
        }
    }
}

/// The `Degraded` message: what cannot change, that nothing else stopped, what to do.
pub fn storage_change_message(statefulset: &str, change: &StorageChange) -> String {
    let current = if change.current.is_empty() {
        "mode None".to_string()
    } else {
        change
            .current
            .iter()
            .map(|c| format!("size {}, storageClassName {}", c.size.as_deref().unwrap_or("?"), show(&c.storage_class)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "spec.persistence cannot change on a running cluster: Kubernetes forbids updates to the volumeClaimTemplates \
         of StatefulSet {statefulset} ({}). Its current volumes are kept and everything else is still managed. \
         Either set spec.persistence back to the current value ({current}), or migrate: resize each PVC \
         data-{statefulset}-<ordinal> yourself (if its StorageClass allows volume expansion), then run \
         `kubectl delete statefulset {statefulset} --cascade=orphan` so the operator recreates it from the new spec \
         without restarting pods or touching data",
        change.differences.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(claims: serde_json::Value, volumes: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "rf-server"},
            "spec": {
                "selector": {}, "serviceName": "x",
                "template": {"spec": {"containers": [{"name": "server"}], "volumes": volumes}},
                "volumeClaimTemplates": claims,
            }
        }))
        .unwrap()
    }

    fn claim(size: &str, class: Option<&str>) -> serde_json::Value {
        let mut c = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        c
    }

    fn config_volume() -> serde_json::Value {
        json!({"name": "config", "configMap": {"name": "c"}})
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(quantity_bytes("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity_bytes("1024Mi"), quantity_bytes("1Gi"));
        assert_eq!(quantity_bytes("1G"), Some(1e9));
        assert_eq!(quantity_bytes("1e3"), Some(1000.0));
        assert_eq!(quantity_bytes("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_bytes("1Qi"), None);
    }

    #[test]
    fn same_storage_written_differently_is_no_change() {
        let live = sts(json!([claim("1024Mi", Some("standard"))]), json!([config_volume()]));
        let desired = sts(json!([claim("1Gi", Some("standard"))]), json!([config_volume()]));
        assert_eq!(storage_change(&live, &desired), None);
        let none = sts(json!([]), json!([config_volume(), {"name": "data", "emptyDir": {}}]));
        assert_eq!(storage_change(&none, &none), None);
    }

    #[test]
    fn size_and_class_changes_are_named() {
        let live = sts(json!([claim("1Gi", Some("standard"))]), json!([config_volume()]));
        let desired = sts(json!([claim("2Gi", Some("fast"))]), json!([config_volume()]));
        let c = storage_change(&live, &desired).unwrap();
        assert_eq!(c.differences, vec!["size 1Gi -> 2Gi".to_string(), "storageClassName \"standard\" -> \"fast\"".to_string()]);
        let msg = storage_change_message("rf-server", &c);
        assert!(msg.contains("forbids updates to the volumeClaimTemplates of StatefulSet rf-server (size 1Gi -> 2Gi"), "{msg}");
        assert!(msg.contains("set spec.persistence back to the current value (size 1Gi, storageClassName \"standard\")"), "{msg}");
        assert!(msg.contains("kubectl delete statefulset rf-server --cascade=orphan"), "{msg}");
    }

    #[test]
    fn turning_persistence_on_or_off_is_a_change() {
        let off = sts(json!([]), json!([config_volume(), {"name": "data", "emptyDir": {}}]));
        let on = sts(json!([claim("1Gi", None)]), json!([config_volume()]));
        assert!(storage_change(&off, &on).unwrap().differences[0].contains("turned on"));
        assert!(storage_change(&on, &off).unwrap().differences[0].contains("turned off"));
    }

    #[test]
    fn keeping_live_storage_keeps_the_data_volume_consistent() {
        // Persistence turned on: keep no claims and an emptyDir `data`.
        let off = sts(json!([]), json!([config_volume(), {"name": "data", "emptyDir": {}}]));
        let mut on = sts(json!([claim("1Gi", None)]), json!([config_volume()]));
        keep_live_storage(&mut on, &off);
        assert_eq!(storage_change(&off, &on), None);
        let vols = on.spec.as_ref().unwrap().template.spec.as_ref().unwrap().volumes.clone().unwrap();
        assert!(vols.iter().any(|v| v.name == "data" && v.empty_dir.is_some()));
        // Persistence turned off: keep the claim and no emptyDir `data` shadowing it.
        let live = sts(json!([claim("1Gi", None)]), json!([config_volume()]));
        let mut off = sts(json!([]), json!([config_volume(), {"name": "data", "emptyDir": {}}]));
        keep_live_storage(&mut off, &live);
        assert_eq!(storage_change(&live, &off), None);
        let vols = off.spec.as_ref().unwrap().template.spec.as_ref().unwrap().volumes.clone().unwrap();
        assert!(!vols.iter().any(|v| v.name == "data"), "{vols:?}");
        assert!(vols.iter().any(|v| v.name == "config"));
    }
}
