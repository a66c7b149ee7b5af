//! `rf-operator`: the `RedisFailoverCluster` controller.
//!
//! - [`crd`]: the custom resource type (source of truth for `crds/`).
//! - [`builders`]: pure functions turning a cluster into desired Kubernetes objects.
//! - [`reconcile`]: the kube-runtime reconciler (server-side apply, status, conditions).
//! - [`tracking`]: event-driven master tracking through the sentinels (labels, split brain).
//! - [`metrics`], [`http`], [`run`]: the running controller.
//! - [`exporter`]: `rf-operator exporter`, the Prometheus sidecar of every server pod.

pub mod builders;
pub mod crd;
pub mod exporter;
pub mod http;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod run;
pub mod status;
pub mod tracking;
pub mod upgrade;
