//! kstatus-style conditions (`Ready`, `Progressing`, `Degraded`), shared by the reconciler
//! and the master tracker so both write the same thing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Reasons set by the tracker (the reconciler leaves a Degraded with these reasons alone
/// unless the tracker says it is healthy again).
pub const REASON_NO_MAJORITY: &str = "NoSentinelMajority";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// A spec change Kubernetes forbids on a live object (StatefulSet volume claims).
pub const REASON_IMMUTABLE_FIELD: &str = "ImmutableFieldChanged";

/// Upserts a condition; `lastTransitionTime` only changes when the status flips.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status_str = if status { "True" } else { "False" };
    let new = |ltt: Time| Condition {
        type_: type_.to_string(),
        status: status_str.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: ltt,
    };
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status_str => {
            let ltt = c.last_transition_time.clone();
            *c = new(ltt);
        }
        Some(c) => *c = new(Time(k8s_openapi::jiff::Timestamp::now())),
        None => conds.push(new(Time(k8s_openapi::jiff::Timestamp::now()))),
    }
}

pub fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conds: &[Condition], type_: &str) -> bool {
    find(conds, type_).is_some_and(|c| c.status == "True")
}

/// What the master tracker knows about sentinel agreement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Health {
    #[default]
    Unknown,
    Healthy,
    NoMajority(String),
}

/// Applies the tracker's view: no majority -> Degraded + not Ready; healthy -> clears a
/// Degraded the tracker itself set (other reasons belong to the reconciler).
pub fn apply_tracking_health(conds: &mut Vec<Condition>, health: &Health, generation: Option<i64>) {
    match health {
        Health::NoMajority(msg) => {
            set_condition(conds, DEGRADED, true, REASON_NO_MAJORITY, msg, generation);
            set_condition(conds, READY, false, REASON_NO_MAJORITY, msg, generation);
        }
        Health::Healthy => {
            if find(conds, DEGRADED).is_some_and(|c| c.reason == REASON_NO_MAJORITY && c.status == "True") {
                set_condition(conds, DEGRADED, false, "SentinelsAgree", "a sentinel majority agrees on the master", generation);
            }
        }
        Health::Unknown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let mut c = vec![];
        set_condition(&mut c, READY, false, "A", "a", Some(1));
        let t0 = c[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        set_condition(&mut c, READY, false, "B", "b", Some(2));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, t0);
        assert_eq!(c[0].reason, "B");
        assert_eq!(c[0].observed_generation, Some(2));
        set_condition(&mut c, READY, true, "C", "c", Some(2));
        assert_ne!(c[0].last_transition_time, t0);
        assert!(is_true(&c, READY));
    }

    #[test]
    fn tracking_health_only_clears_its_own_degraded() {
        let mut c = vec![];
        apply_tracking_health(&mut c, &Health::NoMajority("no".into()), Some(1));
        assert!(is_true(&c, DEGRADED));
        assert!(!is_true(&c, READY));
        apply_tracking_health(&mut c, &Health::Healthy, Some(1));
        assert!(!is_true(&c, DEGRADED));
        set_condition(&mut c, DEGRADED, true, REASON_INVALID_SPEC, "bad", Some(1));
        apply_tracking_health(&mut c, &Health::Healthy, Some(1));
        assert!(is_true(&c, DEGRADED), "spec problems are not the tracker's to clear");
    }
}
