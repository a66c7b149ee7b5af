//! Spec validation the schema cannot express, and rendering of redis.conf / sentinel.conf.

use std::fmt::Write as _;

use crate::operator::crd::{PersistenceMode, RedisFailoverClusterSpec};
use crate::operator::names::{self, Component, MASTER_NAME, SENTINEL_PORT, SERVER_PORT};

/// A spec the operator refuses; the message goes verbatim into the `Degraded` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.redis.config: directive {directive:?} is managed by the operator and cannot be set ({why})")]
    ManagedDirective { directive: String, why: &'static str },
    #[error("spec.redis.config: {directive:?} is not a valid directive name (expected lowercase letters, digits and '-')")]
    BadDirectiveName { directive: String },
    #[error("spec.redis.config: value of {directive:?} contains a line break or NUL byte")]
    BadDirectiveValue { directive: String },
    #[error("spec.redis.config: rename-command of {command} is refused: sentinels and the operator need it")]
    RenameNeeded { command: String },
    #[error("spec.redis.config: rename-command needs 2 arguments (command and new name), got {got:?}")]
    RenameArity { got: String },
    #[error("spec.sentinel.quorum ({quorum}) must be <= spec.sentinel.replicas ({replicas})")]
    QuorumTooLarge { quorum: i32, replicas: i32 },
    #[error("spec.{field} must be >= {min}, got {got}")]
    TooSmall { field: &'static str, min: i64, got: i64 },
    #[error("spec.redis.fencing.ackPeriodMilliseconds ({period}) must be at most half of maxLagMilliseconds ({lag}): replicas would flap")]
    FencingPeriod { period: i64, lag: i64 },
    #[error("spec.{field} must not be empty")]
    Empty { field: &'static str },
    #[error("spec.persistence.size {0:?} is not a Kubernetes quantity (e.g. 1Gi)")]
    BadSize(String),
}

/// Directives the operator owns, with the reason shown to the user.
const MANAGED: &[(&str, &str)] = &[
    ("replicaof", "replication is driven by the sentinels"),
    ("slaveof", "replication is driven by the sentinels"),
    ("port", "the server port is fixed at 6379"),
    ("bind", "the server must listen on the pod network"),
    ("dir", "the data directory is fixed at /data"),
    ("requirepass", "the password comes from the auth Secret"),
    ("masterauth", "the password comes from the auth Secret"),
    ("masteruser", "the sentinels authenticate with the auth Secret"),
    ("replica-announce-ip", "replicas announce their stable pod DNS name"),
    ("slave-announce-ip", "replicas announce their stable pod DNS name"),
    ("replica-announce-port", "replicas announce port 6379"),
    ("slave-announce-port", "replicas announce port 6379"),
    ("include", "configuration comes only from the spec"),
    ("daemonize", "the server must run in the foreground"),
    ("supervised", "the server runs under the kubelet"),
    ("pidfile", "the root filesystem is read-only"),
    ("logfile", "logs go to stdout"),
    ("unixsocket", "the root filesystem is read-only"),
    ("protected-mode", "sentinels and replicas connect over the pod network"),
    ("appendonly", "set spec.persistence.mode instead"),
    ("aclfile", "users are not managed by this operator"),
    ("tls-port", "TLS is not supported by this operator yet"),
    ("sentinel", "sentinel directives are rendered from spec.sentinel"),
];

/// Commands the sentinels, replicas and the operator send to servers.
const NEEDED_COMMANDS: &[&str] = &[
    "PING", "INFO", "ROLE", "REPLICAOF", "SLAVEOF", "CONFIG", "CLIENT", "SUBSCRIBE",
    "PUBLISH", "SCRIPT", "MULTI", "EXEC", "AUTH", "HELLO", "PSYNC", "SYNC", "REPLCONF",
    "SHUTDOWN",
];

fn valid_directive_name(d: &str) -> bool {
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_quantity(s: &str) -> bool {
    let digits_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    !num.is_empty()
        && num.parse::<f64>().is_ok()
        && ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"].contains(&unit)
}

/// Checks everything the CRD schema cannot (or that an old apiserver did not) enforce.
/// Returns every problem, in spec order, so the condition message lists them all.
pub fn validate_spec(spec: &RedisFailoverClusterSpec) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let fencing = &spec.redis.fencing;
    let mins: [(&'static str, i64, i64); 8] = [
        ("redis.replicas", 1, spec.redis.replicas as i64),
        ("sentinel.replicas", 1, spec.sentinel.replicas as i64),
        ("sentinel.downAfterMilliseconds", 100, spec.sentinel.down_after_milliseconds),
        ("sentinel.failoverTimeout", 1000, spec.sentinel.failover_timeout),
        ("sentinel.parallelSyncs", 1, spec.sentinel.parallel_syncs as i64),
        ("redis.fencing.minReplicasToWrite", 0, fencing.min_replicas_to_write.unwrap_or(0) as i64),
        ("redis.fencing.maxLagMilliseconds", 50, fencing.max_lag_milliseconds),
        ("redis.fencing.ackPeriodMilliseconds", 10, fencing.ack_period_milliseconds),
    ];
    for (field, min, got) in mins {
        if got < min {
            errors.push(SpecError::TooSmall { field, min, got });
        }
    }
    if fencing.ack_period_milliseconds * 2 > fencing.max_lag_milliseconds {
        errors.push(SpecError::FencingPeriod { period: fencing.ack_period_milliseconds, lag: fencing.max_lag_milliseconds });
    }
    if let Some(q) = spec.sentinel.quorum {
        if q < 1 {
            errors.push(SpecError::TooSmall { field: "sentinel.quorum", min: 1, got: q as i64 });
        } else if q > spec.sentinel.replicas {
            errors.push(SpecError::QuorumTooLarge { quorum: q, replicas: spec.sentinel.replicas });
        }
    }
    if spec.redis.image.trim().is_empty() {
        errors.push(SpecError::Empty { field: "redis.image" });
    }
    if spec.sentinel.image.trim().is_empty() {
        errors.push(SpecError::Empty { field: "sentinel.image" });
    }
    if spec.persistence.mode != PersistenceMode::None && !valid_quantity(&spec.persistence.size) {
        errors.push(SpecError::BadSize(spec.persistence.size.clone()));
    }
    for (directive, value) in &spec.redis.config {
        if let Err(e) = check_directive(directive, value) {
            errors.push(e);
        }
    }
    errors
}

fn check_directive(directive: &str, value: &str) -> Result<(), SpecError> {
    if !valid_directive_name(directive) {
        return Err(SpecError::BadDirectiveName { directive: directive.to_string() });
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(SpecError::BadDirectiveValue { directive: directive.to_string() });
    }
    if let Some((_, why)) = MANAGED.iter().find(|(d, _)| *d == directive) {
        return Err(SpecError::ManagedDirective { directive: directive.to_string(), why });
    }
    if directive == "rename-command" {
        let args: Vec<&str> = value.split_whitespace().collect();
        if args.len() != 2 {
            return Err(SpecError::RenameArity { got: value.to_string() });
        }
        let command = args[0].trim_matches('"').to_ascii_uppercase();
        if NEEDED_COMMANDS.contains(&command.as_str()) {
            return Err(SpecError::RenameNeeded { command });
        }
    }
    Ok(())
}

/// Joins spec errors into one condition message.
pub fn spec_errors_message(errors: &[SpecError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

/// Where the master currently is, as servers and sentinels must name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterRef {
    pub ordinal: i32,
}

/// redis.conf for one server pod. Ordinal `master.ordinal` starts as master, every other
/// pod starts as its replica. The password is not rendered here: it reaches the server as
/// `--requirepass`/`--masterauth` arguments expanded by the kubelet from the Secret-backed
/// env var, so it never lands in a ConfigMap.
pub fn render_redis_conf(
    spec: &RedisFailoverClusterSpec,
    cluster: &str,
    namespace: &str,
    ordinal: i32,
    master: &MasterRef,
) -> String {
    let mut out = String::new();
    let pod = names::pod(cluster, Component::Server, ordinal);
    let _ = writeln!(out, "# Rendered by rf-operator for {pod}. Edit spec.redis.config instead.");
    let _ = writeln!(out, "port {SERVER_PORT}");
    let _ = writeln!(out, "bind 0.0.0.0");
    let _ = writeln!(out, "protected-mode no");
    let _ = writeln!(out, "dir {}", names::DATA_DIR);
    let _ = writeln!(out, "replica-announce-ip {}", names::pod_dns(cluster, namespace, Component::Server, ordinal));
    let _ = writeln!(out, "replica-announce-port {SERVER_PORT}");
    // A restarted pod needs a full sync: start it at once instead of Redis's default 5 s
    // wait for other replicas to share the transfer (spec.redis.config, written later, wins).
    let _ = writeln!(out, "repl-diskless-sync-delay 0");
    match spec.persistence.mode {
        PersistenceMode::None => {
            let _ = writeln!(out, "save \"\"");
            let _ = writeln!(out, "appendonly no");
        }
        PersistenceMode::Rdb => {
            if !spec.redis.config.contains_key("save") {
                let _ = writeln!(out, "save 3600 1 300 100 60 10000");
            }
            let _ = writeln!(out, "appendonly no");
        }
        PersistenceMode::Aof => {
            let _ = writeln!(out, "appendonly yes");
        }
    }
    // Before serving, ask the sentinels who the master is: a master restarted before they
    // noticed comes back without its data and must not take the role back (startup_guard).
    let _ = writeln!(
        out,
        "sentinel-startup-check {} {}.{namespace}.svc.cluster.local {SENTINEL_PORT} {}.{namespace}.svc.cluster.local",
        MASTER_NAME,
        names::headless_service(cluster, Component::Sentinel),
        names::headless_service(cluster, Component::Server)
    );
    // Fencing (spec.redis.fencing): a master cut off from its replicas refuses writes once
    // their ACKs are older than the lag, so a failover on the other side loses at most that
    // much. The last two directives are rf-server's own (README, "Fencing").
    let fencing = &spec.redis.fencing;
    let _ = writeln!(out, "min-replicas-to-write {}", spec.redis.effective_min_replicas_to_write());
    let _ = writeln!(out, "min-replicas-max-lag-ms {}", fencing.max_lag_milliseconds);
    let _ = writeln!(out, "repl-ack-period-ms {}", fencing.ack_period_milliseconds);
    if ordinal != master.ordinal {
        let _ = writeln!(
            out,
            "replicaof {} {SERVER_PORT}",
            names::pod_dns(cluster, namespace, Component::Server, master.ordinal)
        );
    }
    for (directive, value) in &spec.redis.config {
        let _ = writeln!(out, "{directive} {value}");
    }
    out
}

/// sentinel.conf for one sentinel pod, monitoring the master currently known.
/// `sentinel auth-pass` is passed as a command-line argument (see [`render_redis_conf`]).
pub fn render_sentinel_conf(
    spec: &RedisFailoverClusterSpec,
    cluster: &str,
    namespace: &str,
    ordinal: i32,
    master: &MasterRef,
) -> String {
    let s = &spec.sentinel;
    let mut out = String::new();
    let pod = names::pod(cluster, Component::Sentinel, ordinal);
    let _ = writeln!(out, "# Rendered by rf-operator for {pod}. Edit spec.sentinel instead.");
    let _ = writeln!(out, "port {SENTINEL_PORT}");
    let _ = writeln!(out, "bind 0.0.0.0");
    let _ = writeln!(out, "protected-mode no");
    let _ = writeln!(out, "dir {}", names::DATA_DIR);
    let _ = writeln!(out, "sentinel resolve-hostnames yes");
    let _ = writeln!(out, "sentinel announce-hostnames yes");
    let _ = writeln!(out, "sentinel announce-ip {}", names::pod_dns(cluster, namespace, Component::Sentinel, ordinal));
    let _ = writeln!(out, "sentinel announce-port {SENTINEL_PORT}");
    let _ = writeln!(
        out,
        "sentinel monitor {MASTER_NAME} {} {SERVER_PORT} {}",
        names::pod_dns(cluster, namespace, Component::Server, master.ordinal),
        s.effective_quorum()
    );
    let _ = writeln!(out, "sentinel down-after-milliseconds {MASTER_NAME} {}", s.down_after_milliseconds);
    let _ = writeln!(out, "sentinel failover-timeout {MASTER_NAME} {}", s.failover_timeout);
    let _ = writeln!(out, "sentinel parallel-syncs {MASTER_NAME} {}", s.parallel_syncs);
    out
}

/// The `replica-priority` the servers run with: the user's (`spec.redis.config`, either
/// spelling), else Redis's default 100.
pub fn configured_replica_priority(spec: &RedisFailoverClusterSpec) -> i64 {
    let c = &spec.redis.config;
    c.get("replica-priority").or_else(|| c.get("slave-priority")).and_then(|v| v.trim().parse().ok()).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RedisFailoverClusterSpec {
        serde_json::from_str("{}").unwrap()
    }

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(validate_spec(&spec()), vec![]);
    }

    #[test]
    fn replica_priority_from_config_or_default() {
        assert_eq!(configured_replica_priority(&spec()), 100);
        let mut s = spec();
        s.redis.config.insert("slave-priority".into(), "7".into());
        assert_eq!(configured_replica_priority(&s), 7);
        s.redis.config.insert("replica-priority".into(), " 42 ".into());
        assert_eq!(configured_replica_priority(&s), 42, "the modern spelling wins");
    }

    #[test]
    fn managed_directives_are_refused_with_reason() {
        for d in ["replicaof", "slaveof", "port", "dir", "requirepass", "include", "appendonly"] {
            let mut s = spec();
            s.redis.config.insert(d.into(), "x".into());
            let errs = validate_spec(&s);
            assert_eq!(errs.len(), 1, "{d}");
            let msg = errs[0].to_string();
            assert!(msg.starts_with(&format!("spec.redis.config: directive \"{d}\" is managed by the operator")), "{msg}");
        }
        let mut s = spec();
        s.redis.config.insert("port".into(), "6380".into());
        assert_eq!(
            spec_errors_message(&validate_spec(&s)),
            "spec.redis.config: directive \"port\" is managed by the operator and cannot be set (the server port is fixed at 6379)"
        );
    }

    #[test]
    fn rename_of_needed_commands_refused_other_allowed() {
        let mut s = spec();
        s.redis.config.insert("rename-command".into(), "config \"\"".into());
        assert_eq!(
            validate_spec(&s),
            vec![SpecError::RenameNeeded { command: "CONFIG".into() }]
        );
        s.redis.config.insert("rename-command".into(), "FLUSHALL \"\"".into());
        assert_eq!(validate_spec(&s), vec![]);
        s.redis.config.insert("rename-command".into(), "FLUSHALL".into());
        assert!(matches!(validate_spec(&s)[0], SpecError::RenameArity { .. }));
    }

    #[test]
    fn injection_and_bad_names_refused() {
        let mut s = spec();
        s.redis.config.insert("maxmemory".into(), "1mb\nreplicaof evil 6379".into());
        s.redis.config.insert("Max Memory".into(), "1".into());
        let errs = validate_spec(&s);
        assert_eq!(errs.len(), 2);
        assert!(errs.contains(&SpecError::BadDirectiveValue { directive: "maxmemory".into() }));
        assert!(errs.contains(&SpecError::BadDirectiveName { directive: "Max Memory".into() }));
    }

    #[test]
    fn numeric_limits_and_quorum() {
        let mut s = spec();
        s.sentinel.quorum = Some(4);
        s.redis.replicas = 0;
        let msg = spec_errors_message(&validate_spec(&s));
        assert_eq!(
            msg,
            "spec.redis.replicas must be >= 1, got 0; spec.sentinel.quorum (4) must be <= spec.sentinel.replicas (3)"
        );
    }

    #[test]
    fn fencing_rendered_with_safe_defaults_and_checked() {
        let m = MasterRef { ordinal: 0 };
        let s = spec();
        assert_eq!(s.redis.replicas, 3);
        let c = render_redis_conf(&s, "rf", "ns", 1, &m);
        for line in ["min-replicas-to-write 1\n", "min-replicas-max-lag-ms 300\n", "repl-ack-period-ms 100\n"] {
            assert!(c.contains(line), "{line:?} missing from\n{c}");
        }
        let mut two = spec();
        two.redis.replicas = 2;
        assert!(render_redis_conf(&two, "rf", "ns", 0, &m).contains("min-replicas-to-write 0\n"), "a lone replica must not stop writes");
        two.redis.fencing.min_replicas_to_write = Some(1);
        assert!(render_redis_conf(&two, "rf", "ns", 0, &m).contains("min-replicas-to-write 1\n"), "an explicit value wins");
        // the user's own directive comes last, so it wins in redis.conf
        let mut own = spec();
        own.redis.config.insert("min-replicas-to-write".into(), "0".into());
        let c = render_redis_conf(&own, "rf", "ns", 0, &m);
        assert!(c.find("min-replicas-to-write 0").unwrap() > c.find("min-replicas-to-write 1").unwrap());
        let mut bad = spec();
        bad.redis.fencing.ack_period_milliseconds = 200;
        assert_eq!(validate_spec(&bad), vec![SpecError::FencingPeriod { period: 200, lag: 300 }]);
    }

    #[test]
    fn size_checked_only_with_persistence() {
        let mut s = spec();
        s.persistence.size = "lots".into();
        assert_eq!(validate_spec(&s), vec![]);
        s.persistence.mode = PersistenceMode::Rdb;
        assert_eq!(validate_spec(&s), vec![SpecError::BadSize("lots".into())]);
        s.persistence.size = "10Gi".into();
        assert_eq!(validate_spec(&s), vec![]);
    }

    #[test]
    fn redis_conf_master_and_replica() {
        let mut s = spec();
        s.redis.config.insert("maxmemory".into(), "100mb".into());
        let m = MasterRef { ordinal: 0 };
        let c0 = render_redis_conf(&s, "rf", "ns", 0, &m);
        assert!(!c0.contains("replicaof"));
        assert!(c0.contains("replica-announce-ip rf-server-0.rf-server-headless.ns.svc.cluster.local\n"));
        assert!(c0.contains("repl-diskless-sync-delay 0\n"));
        assert!(c0.contains("maxmemory 100mb\n"));
        assert!(c0.contains("save \"\"\n"));
        let c2 = render_redis_conf(&s, "rf", "ns", 2, &m);
        assert!(c2.contains("replicaof rf-server-0.rf-server-headless.ns.svc.cluster.local 6379\n"));
        assert!(c2.contains("replica-announce-ip rf-server-2.rf-server-headless.ns.svc.cluster.local\n"));
        // After a failover to ordinal 1, ordinal 0 restarts as a replica of 1.
        let c0b = render_redis_conf(&s, "rf", "ns", 0, &MasterRef { ordinal: 1 });
        assert!(c0b.contains("replicaof rf-server-1.rf-server-headless.ns.svc.cluster.local 6379\n"));
        s.persistence.mode = PersistenceMode::Aof;
        assert!(render_redis_conf(&s, "rf", "ns", 0, &m).contains("appendonly yes\n"));
    }

    #[test]
    fn sentinel_conf_monitors_known_master_by_dns() {
        let s = spec();
        let c = render_sentinel_conf(&s, "rf", "ns", 1, &MasterRef { ordinal: 2 });
        let lines: Vec<&str> = c.lines().collect();
        let resolve = lines.iter().position(|l| *l == "sentinel resolve-hostnames yes").unwrap();
        let monitor = lines
            .iter()
            .position(|l| *l == "sentinel monitor mymaster rf-server-2.rf-server-headless.ns.svc.cluster.local 6379 2")
            .unwrap();
        assert!(resolve < monitor, "resolve-hostnames must precede monitor");
        assert!(lines.contains(&"sentinel announce-hostnames yes"));
        assert!(lines.contains(&"sentinel announce-ip rf-sentinel-1.rf-sentinel-headless.ns.svc.cluster.local"));
        assert!(lines.contains(&"sentinel down-after-milliseconds mymaster 5000"));
        assert!(lines.contains(&"sentinel failover-timeout mymaster 10000"));
        assert!(lines.contains(&"sentinel parallel-syncs mymaster 1"));
    }
}
