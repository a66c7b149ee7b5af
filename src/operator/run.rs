//! `rf-operator run`: leader election, the kube-runtime Controller, the pod watch for
//! terminating masters, master tracking and the HTTP endpoints.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use tracing::{error, info, warn};

use crate::operator::crd::RedisFailoverCluster;
use crate::operator::http::{self, HttpState};
use crate::operator::metrics::Metrics;
use crate::operator::names::{self, Component};
use crate::operator::reconcile::{error_policy, reconcile, Context};
use crate::operator::tracking::{DnsResolver, Tracker, TrackerConfig};

#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Watch one namespace; all when None.
    pub namespace: Option<String>,
    pub metrics_addr: SocketAddr,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    pub check_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("leadership lost; exiting so that a single replica acts")]
    LeadershipLost,
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}

fn api<K>(client: &kube::Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

pub async fn run(cfg: RunConfig) -> Result<(), RunError> {
    let client = kube::Client::try_default().await?;
    let metrics = Metrics::default();
    let state = HttpState::new(&metrics);
    let http_task = tokio::spawn(http::serve(cfg.metrics_addr, state.clone()));

    // Leader election: only the Lease holder reconciles and tracks masters.
    let mut leadership = None;
    if cfg.leader_election {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("rf-operator-{}", std::process::id()));
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &cfg.lease_name)
            .with_namespace(&cfg.lease_namespace)
            .with_identity(identity.clone())
            .with_field_manager(names::FIELD_MANAGER)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await?;
        // A standby that reached the API and takes part in the election is healthy and
        // ready: readiness must not depend on holding the Lease, or a 2-replica Deployment
        // never becomes Ready and rolling updates stall.
        state.ready.store(true, Ordering::Relaxed);
        let (mut channel, task) = manager.watch().await;
        info!(lease = %cfg.lease_name, namespace = %cfg.lease_namespace, %identity, "waiting for leadership");
        while !*channel.borrow_and_update() {
            if channel.changed().await.is_err() {
                return Err(RunError::LeadershipLost);
            }
        }
        info!("leading");
        leadership = Some((channel, task));
    }

    // The tracker patches the cluster status itself; that status change is a watch event
    // on the cluster, which re-runs the reconciler (conditions, ready counts).
    let tracker = Tracker::new(
        client.clone(),
        Arc::new(DnsResolver),
        metrics.clone(),
        TrackerConfig { check_interval: cfg.check_interval, ..Default::default() },
    );
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), Some(tracker.clone())));

    let server_pods = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        names::LABEL_NAME, names::APP_NAME, names::LABEL_COMPONENT, Component::Server.as_str()
    ));
    let all_pods = watcher::Config::default().labels(&format!("{}={}", names::LABEL_MANAGED_BY, names::FIELD_MANAGER));
    // Owned objects carry managed-by=rf-operator: watch only those, not every ConfigMap.
    let owned = || watcher::Config::default().labels(&format!("{}={}", names::LABEL_MANAGED_BY, names::FIELD_MANAGER));
    let controller = Controller::new(api::<RedisFailoverCluster>(&client, &cfg.namespace), watcher::Config::default())
        .owns(api::<StatefulSet>(&client, &cfg.namespace), owned())
        .owns(api::<ConfigMap>(&client, &cfg.namespace), owned())
        .owns(api::<Service>(&client, &cfg.namespace), owned())
        .watches(api::<Pod>(&client, &cfg.namespace), all_pods, |pod: Pod| {
            let ns = pod.metadata.namespace.clone()?;
            let instance = pod.metadata.labels.as_ref()?.get(names::LABEL_INSTANCE)?.clone();
            Some(ObjectRef::new(&instance).within(&ns))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        });

    // A terminating master loses its label immediately, not at the next reconcile.
    let pod_tracker = tracker.clone();
    let pod_watch = watcher(api::<Pod>(&client, &cfg.namespace), server_pods)
        .default_backoff()
        .applied_objects()
        .for_each(move |res| {
            let t = pod_tracker.clone();
            async move {
                match res {
                    Ok(pod) => {
                        if let Err(e) = t.handle_pod(&pod).await {
                            warn!(error = %e, "could not remove the label of a terminating master");
                        }
                    }
                    Err(e) => warn!(error = %e, "pod watch error"),
                }
            }
        });

    state.ready.store(true, Ordering::Relaxed);
    let lost = async {
        match leadership.as_mut() {
            Some((channel, _)) => loop {
                if channel.changed().await.is_err() || !*channel.borrow_and_update() {
                    break;
                }
            },
            None => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = controller => { info!("controller stopped"); Ok(()) }
        _ = pod_watch => { error!("pod watch ended"); Ok(()) }
        _ = lost => { error!("leadership lost"); Err(RunError::LeadershipLost) }
        r = http_task => match r {
            Ok(Err(e)) => Err(RunError::Http(e)),
            _ => Ok(()),
        },
    }
}
