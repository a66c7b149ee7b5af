//! The API server refusing a StatefulSet update (422 Invalid, e.g. a forbidden field)
//! must become a `Degraded` condition, not a reconcile error retried forever; the other
//! objects are still applied. kube's tower-test mock pattern (as controller-rs does): a
//! scripted API that answers every request the reconciler makes.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use parking_lot::Mutex;
use redis_failover::operator::crd::{RedisFailoverCluster, RedisFailoverClusterSpec};
use redis_failover::operator::metrics::Metrics;
use redis_failover::operator::reconcile::{reconcile, Context};
use serde_json::{json, Value};

const FORBIDDEN: &str = "StatefulSet.apps \"rf-server\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than \
    'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    Response::builder().status(code).body(Body::from(serde_json::to_vec(&body).unwrap())).unwrap()
}

fn ok(v: Value) -> Response<Body> {
    Response::builder().status(StatusCode::OK).body(Body::from(serde_json::to_vec(&v).unwrap())).unwrap()
}

/// What the scripted API saw.
#[derive(Default)]
struct Seen {
    requests: Vec<String>,
    status_patches: Vec<Value>,
}

#[tokio::test]
async fn refused_statefulset_update_is_degraded_and_the_rest_is_applied() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    let api = tokio::spawn(async move {
        // Bounded: a reconcile makes a few dozen requests.
        for _ in 0..200 {
            let Some((req, send)) = handle.next_request().await else { return };
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let body = req.into_body().collect_bytes().await.unwrap();
            log.lock().requests.push(format!("{method} {path}"));
            let response = match method {
                Method::GET if path.ends_with("/pods") => ok(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})),
                Method::GET => status(404, "NotFound", "not found"),
                Method::PATCH if path.ends_with("/statefulsets/rf-server") => status(422, "Invalid", FORBIDDEN),
                Method::PATCH if path.ends_with("/status") => {
                    let patch: Value = serde_json::from_slice(&body).unwrap();
                    log.lock().status_patches.push(patch["status"].clone());
                    ok(json!({"apiVersion": "redisfailover.io/v1alpha1", "kind": "RedisFailoverCluster",
                              "metadata": {"name": "rf", "namespace": "prod"}, "spec": {}, "status": patch["status"]}))
                }
                // Server-side apply: echo the applied object.
                Method::PATCH => ok(serde_json::from_slice(&body).unwrap()),
                _ => status(405, "MethodNotAllowed", "unexpected in this test"),
            };
            send.send_response(response);
        }
    });
    let client = kube::Client::new(service, "prod");
    let spec: RedisFailoverClusterSpec = serde_json::from_value(json!({})).unwrap();
    let mut cr = RedisFailoverCluster::new("rf", spec);
    cr.metadata.namespace = Some("prod".into());
    cr.metadata.uid = Some("5f0c7e2a-0000-4000-8000-000000000001".into());
    cr.metadata.generation = Some(3);
    let ctx = Arc::new(Context::new(client, Metrics::default(), None));

    let action = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(cr), ctx)).await.expect("reconcile finished");
    assert!(action.is_ok(), "a refused StatefulSet is a condition, not a reconcile error: {action:?}");
    api.abort();

    let seen = seen.lock();
    let requests = seen.requests.join("\n");
    assert!(requests.contains("PATCH /apis/apps/v1/namespaces/prod/statefulsets/rf-server"), "{requests}");
    // Everything else was still applied, the sentinel StatefulSet included.
    for object in ["configmaps/rf-server-config", "services/rf-master", "poddisruptionbudgets/rf-server", "statefulsets/rf-sentinel"] {
        assert!(requests.lines().any(|l| l.starts_with("PATCH") && l.ends_with(object)), "{object} not applied:\n{requests}");
    }
    let last = seen.status_patches.last().expect("status written");
    let conds = last["conditions"].as_array().unwrap();
    let degraded = conds.iter().find(|c| c["type"] == "Degraded").unwrap();
    assert_eq!(degraded["status"], "True", "{last:#}");
    assert_eq!(degraded["reason"], "ImmutableFieldChanged");
    let msg = degraded["message"].as_str().unwrap();
    assert!(msg.contains("the API refused StatefulSet rf-server") && msg.contains("Forbidden: updates to statefulset spec"), "{msg}");
    let ready = conds.iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(last["observedGeneration"], 3);
}
