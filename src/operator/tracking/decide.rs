//! Pure decision logic of master tracking: observations in, ordered actions out.
//! Everything here is synchronous and I/O-free so it can be tested exhaustively.

use std::collections::BTreeMap;
use std::fmt;

use crate::operator::names::{ROLE_MASTER, ROLE_REPLICA};

/// A host:port as sentinels and servers report it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint { host: host.into(), port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What `ROLE` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerRole {
    Master,
    Replica { master: Endpoint, link_up: bool },
    /// Unreachable, loading, or a reply we could not read.
    Unknown,
}

/// A server pod as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub role_label: Option<String>,
    /// Has a deletionTimestamp.
    pub terminating: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerView {
    pub pod: String,
    pub endpoint: Endpoint,
    pub role: ServerRole,
}

/// One round of observation of a cluster.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Number of sentinels the cluster is configured with (majority is of this number,
    /// not of those that answered).
    pub sentinels_total: usize,
    /// One entry per sentinel asked: its `GET-MASTER-ADDR-BY-NAME` answer, None if it did
    /// not answer or does not know the master.
    pub sentinel_answers: Vec<Option<Endpoint>>,
    pub servers: Vec<ServerView>,
    pub pods: Vec<PodView>,
    /// Some sentinel reports a failover in progress or the master subjectively/objectively
    /// down: a second master may be the replica being promoted, so it must not be touched.
    pub failover_in_progress: bool,
}

/// What one sentinel has discovered of the group (`SENTINEL MASTER`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentinelView {
    /// `failover_in_progress`, `s_down` or `o_down` among its master flags.
    pub busy: bool,
    /// `num-slaves`
    pub replicas: usize,
    /// `num-other-sentinels`
    pub other_sentinels: usize,
}

/// Why the group could not fail over yet, if so: a failover needs a majority of sentinels
/// that know the replicas (they learn them from the master's INFO, every 10 s) and each
/// other (hellos every 2 s). Right after a group starts, losing its master would otherwise
/// leave nobody to promote.
pub fn discovery_gap(views: &[Option<SentinelView>], sentinels: usize, replicas: usize) -> Option<String> {
    let complete = views
        .iter()
        .flatten()
        .filter(|v| v.replicas >= replicas && v.other_sentinels + 1 >= sentinels)
        .count();
    (complete * 2 <= sentinels).then(|| {
        format!("{complete} of {sentinels} sentinels know all {replicas} replicas and the other sentinels")
    })
}

/// Something to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Set (Some) or remove (None) `redisfailover.io/role` on a server pod.
    SetRole { pod: String, role: Option<&'static str> },
    /// `REPLICAOF host port` on a server wrongly claiming to be master.
    MakeReplica { pod: String, of: Endpoint },
    /// `CLIENT KILL TYPE normal` on a demoted master.
    KillClients { pod: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A sentinel majority names this master.
    Agreed { pod: String, endpoint: Endpoint },
    /// No action taken; the message goes into the `Degraded` condition.
    NoMajority { message: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub actions: Vec<Action>,
}

/// Label changes making `master` the only pod labelled master. Demotions come FIRST so the
/// master Service never selects two pods; terminating pods only ever lose labels.
pub fn label_moves(pods: &[PodView], master: Option<&str>) -> Vec<Action> {
    let mut demotions = Vec::new();
    let mut promotion = Vec::new();
    let mut others = Vec::new();
    for p in pods {
        let is_master_label = p.role_label.as_deref() == Some(ROLE_MASTER);
        let is_new_master = Some(p.name.as_str()) == master;
        if p.terminating {
            if p.role_label.is_some() {
                demotions.push(Action::SetRole { pod: p.name.clone(), role: None });
            }
        } else if is_new_master {
            if !is_master_label {
                promotion.push(Action::SetRole { pod: p.name.clone(), role: Some(ROLE_MASTER) });
            }
        } else if is_master_label {
            demotions.push(Action::SetRole { pod: p.name.clone(), role: Some(ROLE_REPLICA) });
        } else if p.role_label.as_deref() != Some(ROLE_REPLICA) && master.is_some() {
            others.push(Action::SetRole { pod: p.name.clone(), role: Some(ROLE_REPLICA) });
        }
    }
    demotions.into_iter().chain(promotion).chain(others).collect()
}

/// A pod event: a master pod that is terminating loses its label at once.
pub fn on_pod_event(pod: &PodView) -> Option<Action> {
    (pod.terminating && pod.role_label.as_deref() == Some(ROLE_MASTER))
        .then(|| Action::SetRole { pod: pod.name.clone(), role: None })
}

/// The endpoint named by a strict majority of `total` sentinels, if any.
pub fn majority_master(answers: &[Option<Endpoint>], total: usize) -> Result<Endpoint, String> {
    let mut votes: BTreeMap<&Endpoint, usize> = BTreeMap::new();
    for a in answers.iter().flatten() {
        *votes.entry(a).or_default() += 1;
    }
    let needed = total / 2 + 1;
    if let Some((ep, _)) = votes.iter().find(|(_, n)| **n >= needed) {
        return Ok((*ep).clone());
    }
    let answered = answers.iter().filter(|a| a.is_some()).count();
    let tally = votes.iter().map(|(ep, n)| format!("{ep}={n}")).collect::<Vec<_>>().join(", ");
    Err(format!(
        "no sentinel majority on the master: {answered} of {total} sentinels answered, {needed} must agree (votes: {})",
        if tally.is_empty() { "none".to_string() } else { tally }
    ))
}

/// The periodic check: follow the sentinel majority, repair split brain, fix labels.
/// `pod_for` maps an endpoint reported by a sentinel to a server pod name.
pub fn decide(obs: &Observation, pod_for: impl Fn(&Endpoint) -> Option<String>) -> Decision {
    let endpoint = match majority_master(&obs.sentinel_answers, obs.sentinels_total) {
        Ok(ep) => ep,
        Err(message) => return Decision { verdict: Verdict::NoMajority { message }, actions: vec![] },
    };
    let Some(pod) = pod_for(&endpoint) else {
        return Decision {
            verdict: Verdict::NoMajority {
                message: format!("sentinel majority names {endpoint}, which is not a server pod of this cluster"),
            },
            actions: vec![],
        };
    };
    let mut actions = label_moves(&obs.pods, Some(&pod));
    // Split brain: any other server claiming master is turned into a replica of the agreed
    // one, but only when that one is up and a master itself and no failover is running;
    // otherwise the "second master" may be the replica the sentinels are promoting.
    let agreed_is_live_master = obs.servers.iter().any(|s| s.pod == pod && s.role == ServerRole::Master);
    let may_repair = agreed_is_live_master && !obs.failover_in_progress;
    for s in obs.servers.iter().filter(|_| may_repair) {
        if s.pod != pod && s.role == ServerRole::Master {
            actions.push(Action::MakeReplica { pod: s.pod.clone(), of: endpoint.clone() });
            actions.push(Action::KillClients { pod: s.pod.clone() });
        }
    }
    Decision { verdict: Verdict::Agreed { pod, endpoint }, actions }
}

/// `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>`.
pub fn parse_switch_master(payload: &str) -> Option<(String, Endpoint, Endpoint)> {
    let parts: Vec<&str> = payload.split_whitespace().collect();
    if parts.len() != 5 {
        return None;
    }
    let old = Endpoint::new(parts[1], parts[2].parse().ok()?);
    let new = Endpoint::new(parts[3], parts[4].parse().ok()?);
    Some((parts[0].to_string(), old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, role: Option<&str>) -> PodView {
        PodView { name: name.into(), role_label: role.map(String::from), terminating: false }
    }
    fn ep(port: u16) -> Endpoint {
        Endpoint::new("127.0.0.1", port)
    }
    fn resolver(e: &Endpoint) -> Option<String> {
        match e.port {
            7000 => Some("rf-server-0".into()),
            7001 => Some("rf-server-1".into()),
            7002 => Some("rf-server-2".into()),
            _ => None,
        }
    }
    fn role(a: &Action) -> (&str, Option<&str>) {
        match a {
            Action::SetRole { pod, role } => (pod.as_str(), *role),
            other => panic!("not a label action: {other:?}"),
        }
    }

    #[test]
    fn old_master_is_demoted_before_new_one_is_promoted() {
        let pods = [pod("a", Some("master")), pod("b", Some("replica")), pod("c", None)];
        let acts = label_moves(&pods, Some("b"));
        assert_eq!(
            acts.iter().map(role).collect::<Vec<_>>(),
            vec![("a", Some("replica")), ("b", Some("master")), ("c", Some("replica"))]
        );
        // Replaying the label state after each action: never two masters.
        let mut labels: BTreeMap<&str, Option<&str>> =
            pods.iter().map(|p| (p.name.as_str(), p.role_label.as_deref())).collect();
        for a in &acts {
            let (p, r) = role(a);
            labels.insert(p, r);
            assert!(labels.values().filter(|r| **r == Some("master")).count() <= 1);
        }
    }

    #[test]
    fn settled_labels_need_no_action() {
        let pods = [pod("a", Some("master")), pod("b", Some("replica"))];
        assert_eq!(label_moves(&pods, Some("a")), vec![]);
    }

    #[test]
    fn terminating_pods_only_lose_labels() {
        let mut t = pod("a", Some("master"));
        t.terminating = true;
        let pods = [t.clone(), pod("b", Some("replica"))];
        // Even if sentinels still name the terminating pod, it is not labelled master.
        assert_eq!(label_moves(&pods, Some("a")), vec![Action::SetRole { pod: "a".into(), role: None }]);
        assert_eq!(on_pod_event(&t), Some(Action::SetRole { pod: "a".into(), role: None }));
        assert_eq!(on_pod_event(&pod("a", Some("master"))), None);
        let mut tr = pod("b", Some("replica"));
        tr.terminating = true;
        assert_eq!(on_pod_event(&tr), None);
    }

    #[test]
    fn discovery_needs_a_majority_knowing_replicas_and_peers() {
        let full = Some(SentinelView { busy: false, replicas: 2, other_sentinels: 2 });
        let no_replicas = Some(SentinelView { busy: false, replicas: 0, other_sentinels: 2 });
        assert_eq!(discovery_gap(&[full.clone(), full.clone(), None], 3, 2), None);
        assert!(discovery_gap(&[full.clone(), no_replicas.clone(), None], 3, 2).is_some());
        assert!(discovery_gap(&[no_replicas.clone(), no_replicas, no_replicas_peers()], 3, 2).is_some());
        // One server, no replica: nothing to discover but the peers.
        let alone = Some(SentinelView { busy: false, replicas: 0, other_sentinels: 2 });
        assert_eq!(discovery_gap(&[alone.clone(), alone.clone(), alone], 3, 0), None);
    }

    fn no_replicas_peers() -> Option<SentinelView> {
        Some(SentinelView { busy: false, replicas: 2, other_sentinels: 0 })
    }

    #[test]
    fn majority_is_of_configured_sentinels() {
        assert_eq!(majority_master(&[Some(ep(1)), Some(ep(1)), None], 3), Ok(ep(1)));
        let e = majority_master(&[Some(ep(1)), None, None], 3).unwrap_err();
        assert_eq!(e, "no sentinel majority on the master: 1 of 3 sentinels answered, 2 must agree (votes: 127.0.0.1:1=1)");
        // Two answering out of five configured is not a majority even if they agree.
        assert!(majority_master(&[Some(ep(1)), Some(ep(1))], 5).is_err());
        assert!(majority_master(&[Some(ep(1)), Some(ep(2)), Some(ep(3))], 3).is_err());
        assert_eq!(
            majority_master(&[None, None, None], 3).unwrap_err(),
            "no sentinel majority on the master: 0 of 3 sentinels answered, 2 must agree (votes: none)"
        );
    }

    #[test]
    fn no_majority_means_no_action() {
        let obs = Observation {
            sentinels_total: 3,
            sentinel_answers: vec![Some(ep(7001)), Some(ep(7000)), None],
            servers: vec![ServerView { pod: "rf-server-1".into(), endpoint: ep(7001), role: ServerRole::Master }],
            pods: vec![pod("rf-server-0", Some("master")), pod("rf-server-1", None)],
            failover_in_progress: false,
        };
        let d = decide(&obs, resolver);
        assert!(matches!(d.verdict, Verdict::NoMajority { .. }));
        assert!(d.actions.is_empty());
    }

    #[test]
    fn unknown_endpoint_is_not_acted_on() {
        let obs = Observation {
            sentinels_total: 1,
            sentinel_answers: vec![Some(ep(9999))],
            ..Default::default()
        };
        let d = decide(&obs, resolver);
        assert_eq!(
            d.verdict,
            Verdict::NoMajority { message: "sentinel majority names 127.0.0.1:9999, which is not a server pod of this cluster".into() }
        );
    }

    #[test]
    fn split_brain_repaired_towards_majority() {
        let obs = Observation {
            sentinels_total: 3,
            sentinel_answers: vec![Some(ep(7001)), Some(ep(7001)), Some(ep(7000))],
            servers: vec![
                ServerView { pod: "rf-server-0".into(), endpoint: ep(7000), role: ServerRole::Master },
                ServerView { pod: "rf-server-1".into(), endpoint: ep(7001), role: ServerRole::Master },
                ServerView {
                    pod: "rf-server-2".into(),
                    endpoint: ep(7002),
                    role: ServerRole::Replica { master: ep(7001), link_up: true },
                },
            ],
            pods: vec![pod("rf-server-0", Some("master")), pod("rf-server-1", Some("replica")), pod("rf-server-2", Some("replica"))],
            failover_in_progress: false,
        };
        let d = decide(&obs, resolver);
        assert_eq!(d.verdict, Verdict::Agreed { pod: "rf-server-1".into(), endpoint: ep(7001) });
        assert_eq!(
            d.actions,
            vec![
                Action::SetRole { pod: "rf-server-0".into(), role: Some("replica") },
                Action::SetRole { pod: "rf-server-1".into(), role: Some("master") },
                Action::MakeReplica { pod: "rf-server-0".into(), of: ep(7001) },
                Action::KillClients { pod: "rf-server-0".into() },
            ]
        );
    }

    #[test]
    fn no_split_brain_repair_while_a_failover_may_be_running() {
        let servers = |agreed_role: ServerRole| {
            vec![
                ServerView { pod: "rf-server-0".into(), endpoint: ep(7000), role: agreed_role },
                ServerView { pod: "rf-server-1".into(), endpoint: ep(7001), role: ServerRole::Master },
            ]
        };
        let base = Observation {
            sentinels_total: 3,
            sentinel_answers: vec![Some(ep(7000)), Some(ep(7000)), Some(ep(7000))],
            servers: servers(ServerRole::Master),
            pods: vec![pod("rf-server-0", Some("master")), pod("rf-server-1", Some("replica"))],
            failover_in_progress: true,
        };
        // A sentinel reports a failover: rf-server-1 is probably being promoted.
        assert_eq!(decide(&base, resolver).actions, vec![]);
        // The agreed master is dead (sentinels have not switched yet): leave rf-server-1 alone.
        let dead = Observation { servers: servers(ServerRole::Unknown), failover_in_progress: false, ..base.clone() };
        assert_eq!(decide(&dead, resolver).actions, vec![]);
        // Agreed master alive and no failover: repair.
        let live = Observation { failover_in_progress: false, ..base };
        assert!(decide(&live, resolver).actions.contains(&Action::MakeReplica { pod: "rf-server-1".into(), of: ep(7000) }));
    }

    #[test]
    fn switch_master_payload() {
        assert_eq!(
            parse_switch_master("mymaster 10.0.0.1 6379 rf-server-1.h.ns.svc.cluster.local 6379"),
            Some(("mymaster".into(), Endpoint::new("10.0.0.1", 6379), Endpoint::new("rf-server-1.h.ns.svc.cluster.local", 6379)))
        );
        assert_eq!(parse_switch_master("mymaster 1 2 3"), None);
        assert_eq!(parse_switch_master("mymaster a b c notaport"), None);
    }
}
