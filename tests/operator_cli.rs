//! The `rf-operator` command line: `crd`, `render` and argument errors.

use std::process::Command;

fn rf_operator(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rf-operator")).args(args).env_remove("RUST_BACKTRACE").output().unwrap()
}

#[test]
fn crd_prints_the_committed_crd() {
    let out = rf_operator(&["crd"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/redisfailoverclusters.redisfailover.io.yaml")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn render_prints_what_the_operator_applies() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/cluster-metrics.yaml");
    let out = rf_operator(&["render", example]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "StatefulSet").count(), 2, "{kinds:?}");
    assert!(kinds.contains(&"ConfigMap") && kinds.contains(&"Service") && kinds.contains(&"PodDisruptionBudget"), "{kinds:?}");
    assert!(text.contains("- exporter\n"), "the metrics sidecar runs rf-operator exporter");
    assert!(!text.contains("oliver006"));
}

#[test]
fn render_refuses_a_bad_cluster_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: redisfailover.io/v1alpha1\nkind: RedisFailoverCluster\nmetadata:\n  name: x\nspec:\n  sentinel:\n    replicas: 3\n    quorum: 4\n").unwrap();
    let out = rf_operator(&["render", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.sentinel.quorum (4) must be <= spec.sentinel.replicas (3)"), "{err}");

    std::fs::write(&bad, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n").unwrap();
    let out = rf_operator(&["render", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no RedisFailoverCluster in it"));
}

#[test]
fn run_rejects_malformed_arguments_before_contacting_kubernetes() {
    let out = rf_operator(&["run", "--metrics-addr", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-addr"));
    let out = rf_operator(&["run", "--leader-election", "maybe"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rf_operator(&["run", "--check-interval-secs", "-1"]);
    assert_eq!(out.status.code(), Some(2));
}
