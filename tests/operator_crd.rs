//! The committed CRD in crds/ must be exactly what `rf-operator crd` prints.

#[test]
fn committed_crd_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/redisfailoverclusters.redisfailover.io.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/redisfailoverclusters.redisfailover.io.yaml exists");
    let generated = redis_failover::operator::crd::crd_yaml();
    assert!(
        committed == generated,
        "crds/ is stale: run `cargo run --bin rf-operator -- crd > crds/redisfailoverclusters.redisfailover.io.yaml`"
    );
}

#[test]
fn six_line_manifest_parses_to_seed_topology() {
    use redis_failover::operator::crd::RedisFailoverCluster;
    let manifest = "apiVersion: redisfailover.io/v1alpha1\nkind: RedisFailoverCluster\nmetadata:\n  name: example\nspec: {}\n";
    let rfc: RedisFailoverCluster = serde_yaml::from_str(manifest).unwrap();
    assert_eq!(rfc.spec.redis.replicas, 3);
    assert_eq!(rfc.spec.sentinel.replicas, 3);
    assert_eq!(rfc.spec.sentinel.effective_quorum(), 2);
}
