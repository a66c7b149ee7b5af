#!/usr/bin/env bash
# End-to-end suite on kind:
#   1. kind cluster; build the three images (images/*/Dockerfile) and load them
#   2. helm install the operator (2 replicas, leader election) from charts/redis-failover
#   3. apply deploy/examples/cluster.yaml, kubectl wait --for=condition=Ready
#   4. a client pod writes through the <name>-master Service (SET + WAIT 1 per write)
#   5. delete the master pod: measure how long writes fail, check the Service's endpoints
#      moved to the new master, and that every acknowledged write is readable
#   6. scale the servers up (new replica has the data) and back down
#   7. change the image tag (rolling upgrade) under write load, measure and check again;
#      the same change enables the metrics sidecar, scraped through the API server proxy
#   8. delete the cluster and check every owned object is gone
# Without kind, or without a working Docker engine, it prints
# "skipped: kind/docker not found (...)" and exits 0.
# Env: E2E_CLUSTER_NAME (rf-e2e), E2E_KEEP_CLUSTER=1 (do not delete the kind cluster),
#      E2E_CLIENT_IMAGE (redis:7.2-alpine: redis-cli + busybox for the writer pod),
#      E2E_MAX_WINDOW_MS (60000: longest accepted write-failure window), E2E_ARTIFACTS (dir),
#      E2E_REQUIRE=1 (fail instead of skipping; set in the GitHub workflow).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

CLUSTER_NAME="${E2E_CLUSTER_NAME:-rf-e2e}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
UPGRADE_TAG="${VERSION}-e2e-upgrade"
CLIENT_IMAGE="${E2E_CLIENT_IMAGE:-redis:7.2-alpine}"
MAX_WINDOW_MS="${E2E_MAX_WINDOW_MS:-60000}"
OPERATOR_NS="redis-failover"
CLUSTER_FILE="deploy/examples/cluster.yaml"
NAME="$(awk '/^metadata:/{m=1;next} m && /^  name:/{print $2; exit}' "$CLUSTER_FILE")"
NS="$(awk '/^metadata:/{m=1;next} m && /^  namespace:/{print $2; exit}' "$CLUSTER_FILE")"
NS="${NS:-default}"

# writer_pod_manifest POD PREFIX SECRET KEY: the client pod running tests/e2e/writer.sh.
writer_pod_manifest() {
  local pod="$1" prefix="$2" secret="$3" key="$4"
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $pod
  labels: {app.kubernetes.io/name: rf-e2e-writer}
spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: writer
      image: $CLIENT_IMAGE
      imagePullPolicy: IfNotPresent
      command: ["sh", "-c", "sh /scripts/writer.sh; exec sleep 3600"]
      env:
        - {name: REDIS_HOST, value: "$NAME-master"}
        - {name: REDIS_PORT, value: "6379"}
        - {name: KEY_PREFIX, value: "$prefix"}
        - {name: STOP_FILE, value: /tmp/stop}
        - {name: INTERVAL, value: "0.05"}
        - name: REDISCLI_AUTH
          valueFrom: {secretKeyRef: {name: "$secret", key: "$key"}}
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: scripts, mountPath: /scripts}
  volumes:
    - name: scripts
      configMap: {name: rf-e2e-writer}
EOF
}

# E2E_PRINT_WRITER_POD=1: print the writer pod manifest and exit (validated offline by
# scripts/ci-k8s-validate.sh, since the suite itself cannot run there).
if [[ "${E2E_PRINT_WRITER_POD:-0}" == "1" ]]; then
  writer_pod_manifest writer-example example "$NAME-auth" password
  exit 0
fi

# skip MESSAGE: exit 0 with the message, or 1 when E2E_REQUIRE=1 (CI with kind).
skip() {
  echo "skipped: kind/docker not found ($1)"
  if [[ "${E2E_REQUIRE:-0}" == "1" ]]; then
    echo "E2E_REQUIRE=1: failing instead of skipping" >&2
    exit 1
  fi
  exit 0
}

missing=()
command -v kind >/dev/null 2>&1 || missing+=("kind")
command -v docker >/dev/null 2>&1 || missing+=("docker")
if [[ "${#missing[@]}" -gt 0 ]]; then
  skip "missing: ${missing[*]}"
fi
if ! docker info >/dev/null 2>&1; then
  skip "docker is installed but no Docker engine answers"
fi

# shellcheck source=scripts/k8s/kube-tools.sh
source "$REPO_ROOT/scripts/k8s/kube-tools.sh"
if ! command -v helm >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
  ensure_kube_tools
fi

ARTIFACTS="${E2E_ARTIFACTS:-$(mktemp -d)}"
mkdir -p "$ARTIFACTS"
ANALYZE=(python3 "$REPO_ROOT/tests/e2e/e2e_writes.py")
SERVER_SELECTOR="app.kubernetes.io/instance=$NAME,app.kubernetes.io/component=server"
SENTINEL_SELECTOR="app.kubernetes.io/instance=$NAME,app.kubernetes.io/component=sentinel"
declare -a RESULTS=()

log() { echo "[$(date -u +%H:%M:%S)] $*"; }
die() { log "FAILED: $*"; exit 1; }
now_rfc3339() { date -u +%Y-%m-%dT%H:%M:%S.%NZ; }
now_ms() { date +%s%3N; }
k() { kubectl -n "$NS" "$@"; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll every 2 s until COMMAND succeeds.
wait_for() {
  local what="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${seconds}s waiting for: $what"
    fi
    sleep 2
  done
  log "ok: $what"
}

diagnostics() {
  log "diagnostics (also in $ARTIFACTS)"
  {
    kubectl get rfc,statefulsets,services,endpointslices,pods,pdb,configmaps -A -o wide || true
    kubectl -n "$NS" describe rfc "$NAME" || true
    kubectl -n "$NS" get events --sort-by=.lastTimestamp || true
  } >"$ARTIFACTS/cluster-state.txt" 2>&1
  kubectl -n "$OPERATOR_NS" logs -l app.kubernetes.io/component=operator --tail=300 --prefix \
    >"$ARTIFACTS/operator.log" 2>&1 || true
  for pod in $(kubectl -n "$NS" get pods -l "app.kubernetes.io/instance=$NAME" -o name 2>/dev/null); do
    kubectl -n "$NS" logs "$pod" --tail=200 >"$ARTIFACTS/$(basename "$pod").log" 2>&1 || true
  done
  tail -n 60 "$ARTIFACTS/cluster-state.txt" || true
  tail -n 60 "$ARTIFACTS/operator.log" || true
}

cleanup() {
  local rc=$?
  if [[ "$rc" -ne 0 ]]; then
    diagnostics
  fi
  if [[ "${E2E_KEEP_CLUSTER:-0}" != "1" ]]; then
    kind delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------------------ helpers on the cluster

master_pods() { k get pods -l "$SERVER_SELECTOR,redisfailover.io/role=master" -o jsonpath='{.items[*].metadata.name}'; }

# Ready endpoints of a Service, as pod names (EndpointSlices).
service_endpoints() {
  k get endpointslices -l "kubernetes.io/service-name=$1" \
    -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.targetRef.name}{"\n"}{end}' | sort -u
}

rfc_ready() {
  [[ "$(k get rfc "$NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == "True" ]]
}

rfc_field_is() { [[ "$(k get rfc "$NAME" -o jsonpath="$1")" == "$2" ]]; }

master_endpoint_is_not() {
  local endpoints
  endpoints="$(service_endpoints "$NAME-master")"
  [[ -n "$endpoints" && "$(wc -l <<<"$endpoints")" -eq 1 && "$endpoints" != "$1" ]]
}

ack_count() { k logs "$1" 2>/dev/null | grep -c '^ACK ' || true; }
acks_at_least() { [[ "$(ack_count "$1")" -ge "$2" ]]; }
writer_stopped() { k logs "$1" 2>/dev/null | grep -q '^STOPPED '; }

password_secret() {
  local ref
  ref="$(k get rfc "$NAME" -o jsonpath='{.spec.auth.secretRef.name}')"
  if [[ -n "$ref" ]]; then
    echo "$ref $(k get rfc "$NAME" -o jsonpath='{.spec.auth.secretRef.key}')"
  else
    echo "$NAME-auth password"
  fi
}

# start_writer POD PREFIX: a client pod running tests/e2e/writer.sh against <name>-master.
start_writer() {
  local pod="$1" prefix="$2" secret key
  read -r secret key <<<"$(password_secret)"
  writer_pod_manifest "$pod" "$prefix" "$secret" "$key" | k apply -f -
  wait_for "writer pod $pod running" 120 k wait --for=condition=Ready "pod/$pod" --timeout=5s
  wait_for "$pod has 50 acknowledged writes" 120 acks_at_least "$pod" 50
}

# stop_writer POD PREFIX DISRUPTED_AT LABEL: stop, analyze, keep the acked list.
stop_writer() {
  local pod="$1" prefix="$2" disrupted_at="$3" label="$4" summary
  k exec "$pod" -- touch /tmp/stop
  wait_for "$pod stopped" 60 writer_stopped "$pod"
  k logs --timestamps "$pod" >"$ARTIFACTS/$pod.log"
  if ! summary="$("${ANALYZE[@]}" analyze "$ARTIFACTS/$pod.log" --disrupted-at "$disrupted_at" \
      --prefix "$prefix" --acked-out "$ARTIFACTS/$pod.acked" --max-window-ms "$MAX_WINDOW_MS")"; then
    die "$label: writes did not recover within ${MAX_WINDOW_MS} ms: $summary"
  fi
  log "$label: $summary"
  RESULTS+=("$label: $summary")
}

# readback HOST POD ACKED_FILE...: every acknowledged write must be readable from HOST
# (GETs sent by redis-cli in POD). A replica that just became ready may still be syncing,
# so a failed comparison is retried a few times before it counts as data loss.
readback() {
  local host="$1" pod="$2" acked attempt
  shift 2
  for acked in "$@"; do
    for attempt in 1 2 3 4 5; do
      "${ANALYZE[@]}" get-commands "$acked" |
        k exec -i "$pod" -- sh -c "redis-cli --no-auth-warning -h '$host' -p 6379" >"$acked.replies.$host" || true
      if "${ANALYZE[@]}" readback "$acked" "$acked.replies.$host"; then
        break
      fi
      if [[ "$attempt" -eq 5 ]]; then
        die "acknowledged writes lost or wrong on $host ($acked)"
      fi
      sleep 5
    done
  done
  log "ok: every acknowledged write readable on $host"
}

# ------------------------------------------------------------------ 1. cluster + images

log "kind cluster $CLUSTER_NAME"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  kind create cluster --name "$CLUSTER_NAME" --wait 180s
fi
kubectl config use-context "kind-$CLUSTER_NAME" >/dev/null

for component in server sentinel operator; do
  image="redis-failover/rf-$component:$VERSION"
  log "docker build $image"
  DOCKER_BUILDKIT=1 docker build -f "images/$component/Dockerfile" -t "$image" \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" .
  docker tag "$image" "redis-failover/rf-$component:$UPGRADE_TAG"
  kind load docker-image --name "$CLUSTER_NAME" "$image" "redis-failover/rf-$component:$UPGRADE_TAG"
done
docker pull "$CLIENT_IMAGE"
kind load docker-image --name "$CLUSTER_NAME" "$CLIENT_IMAGE"

# ------------------------------------------------------------------ 2. operator

log "helm install the operator"
helm upgrade --install redis-failover charts/redis-failover --namespace "$OPERATOR_NS" --create-namespace \
  --set image.tag="$VERSION" --set image.pullPolicy=Never --wait --timeout 5m
wait_for "operator Deployment has 2 ready replicas" 180 \
  bash -c "[[ \$(kubectl -n $OPERATOR_NS get deploy redis-failover -o jsonpath='{.status.readyReplicas}') == 2 ]]"
wait_for "one operator holds the leader Lease" 120 \
  bash -c "[[ -n \$(kubectl -n $OPERATOR_NS get lease rf-operator-leader -o jsonpath='{.spec.holderIdentity}') ]]"

# ------------------------------------------------------------------ 3. the seed cluster

log "apply $CLUSTER_FILE (cluster $NS/$NAME)"
kubectl apply -f "$CLUSTER_FILE"
started_ms="$(now_ms)"
kubectl -n "$NS" wait --for=condition=Ready "rfc/$NAME" --timeout=300s
RESULTS+=("cluster Ready after $(($(now_ms) - started_ms)) ms")
for object in "statefulset/$NAME-server" "statefulset/$NAME-sentinel" "service/$NAME-master" \
  "service/$NAME-replicas" "service/$NAME-sentinel" "service/$NAME-server-headless" \
  "service/$NAME-sentinel-headless" "configmap/$NAME-server-config" "configmap/$NAME-sentinel-config" \
  "poddisruptionbudget/$NAME-server" "poddisruptionbudget/$NAME-sentinel"; do
  k get "$object" >/dev/null || die "$object was not created"
done
log "ok: all owned objects exist"
[[ "$(wc -w <<<"$(master_pods)")" -eq 1 ]] || die "expected exactly one master pod, got: $(master_pods)"
[[ "$(service_endpoints "$NAME-master")" == "$(master_pods)" ]] ||
  die "$NAME-master endpoints ($(service_endpoints "$NAME-master")) != master pod ($(master_pods))"
[[ "$(service_endpoints "$NAME-replicas" | wc -l)" -eq 2 ]] || die "$NAME-replicas should have 2 endpoints"
log "ok: master $(master_pods) behind $NAME-master, 2 replicas behind $NAME-replicas"

k create configmap rf-e2e-writer --from-file=writer.sh=tests/e2e/writer.sh --dry-run=client -o yaml | k apply -f -

# ------------------------------------------------------------------ 5. master failover

start_writer writer-failover failover
old_master="$(master_pods)"
disrupted_at="$(now_rfc3339)"
deleted_ms="$(now_ms)"
log "deleting master pod $old_master"
k delete pod "$old_master" --wait=false
wait_for "$NAME-master endpoints moved away from $old_master" 180 master_endpoint_is_not "$old_master"
moved_ms="$(now_ms)"
new_master="$(service_endpoints "$NAME-master")"
RESULTS+=("master Service endpoints moved $old_master -> $new_master after $((moved_ms - deleted_ms)) ms")
[[ "$(master_pods)" == "$new_master" ]] || die "role=master label ($(master_pods)) != endpoint ($new_master)"
ack_base="$(ack_count writer-failover)"
wait_for "30 acknowledged writes after the failover" 180 acks_at_least writer-failover $((ack_base + 30))
stop_writer writer-failover failover "$disrupted_at" "master pod deleted"
wait_for "cluster Ready again with 3 servers" 300 \
  bash -c "[[ \$(kubectl -n $NS get rfc $NAME -o jsonpath='{.status.readyServers}') == 3 ]] && \
           [[ \$(kubectl -n $NS get rfc $NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}') == True ]]"
[[ "$(k get pod "$old_master" -o jsonpath='{.metadata.labels.redisfailover\.io/role}')" == "replica" ]] ||
  die "the re-created $old_master is not labelled role=replica"
log "ok: $old_master came back as a replica"
readback "$NAME-master" writer-failover "$ARTIFACTS/writer-failover.acked"

# ------------------------------------------------------------------ 6. scale

log "scale servers 3 -> 5"
k patch rfc "$NAME" --type merge -p '{"spec":{"redis":{"replicas":5}}}'
wait_for "5 ready servers" 300 rfc_field_is '{.status.readyServers}' 5
wait_for "cluster Ready" 300 rfc_ready
wait_for "$NAME-replicas has 4 endpoints" 120 bash -c "[[ \$(kubectl -n $NS get endpointslices \
  -l kubernetes.io/service-name=$NAME-replicas -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.targetRef.name}{\"\\n\"}{end}' | sort -u | wc -l) -eq 4 ]]"
readback "$NAME-server-4.$NAME-server-headless" writer-failover "$ARTIFACTS/writer-failover.acked"
log "scale servers 5 -> 3"
k patch rfc "$NAME" --type merge -p '{"spec":{"redis":{"replicas":3}}}'
wait_for "StatefulSet back to 3 replicas" 300 \
  bash -c "[[ \$(kubectl -n $NS get sts $NAME-server -o jsonpath='{.status.replicas}') == 3 ]]"
wait_for "3 ready servers" 300 rfc_field_is '{.status.readyServers}' 3
wait_for "cluster Ready" 300 rfc_ready
readback "$NAME-master" writer-failover "$ARTIFACTS/writer-failover.acked"
RESULTS+=("scaled 3 -> 5 -> 3 servers, data on the new replica")

# ------------------------------------------------------------------ 7. rolling upgrade

start_writer writer-upgrade upgrade
disrupted_at="$(now_rfc3339)"
upgrade_ms="$(now_ms)"
log "rolling upgrade to tag $UPGRADE_TAG"
# The same change turns the metrics sidecar on (our rf-operator exporter, same image tag).
k patch rfc "$NAME" --type merge -p "{\"spec\":{\"redis\":{\"image\":\"redis-failover/rf-server:$UPGRADE_TAG\"},\"sentinel\":{\"image\":\"redis-failover/rf-sentinel:$UPGRADE_TAG\"},\"metrics\":{\"enabled\":true,\"image\":\"redis-failover/rf-operator:$UPGRADE_TAG\"}}}"
all_upgraded() {
  local images
  images="$(k get pods -l "app.kubernetes.io/instance=$NAME" \
    -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort -u)"
  [[ "$(wc -l <<<"$images")" -eq 2 ]] && ! grep -qv ":$UPGRADE_TAG\$" <<<"$images" &&
    [[ "$(k get pods -l "$SERVER_SELECTOR" --no-headers | wc -l)" -eq 3 ]] &&
    [[ "$(k get pods -l "$SENTINEL_SELECTOR" --no-headers | wc -l)" -eq 3 ]]
}
wait_for "every server and sentinel pod runs $UPGRADE_TAG" 600 all_upgraded
wait_for "cluster Ready after the upgrade" 300 rfc_ready
wait_for "3 ready servers after the upgrade" 300 rfc_field_is '{.status.readyServers}' 3
RESULTS+=("rolling upgrade done after $(($(now_ms) - upgrade_ms)) ms")
# The master's sidecar, through the API server's pod proxy (no client tools needed).
master_metrics_served() {
  local body
  body="$(kubectl get --raw "/api/v1/namespaces/$NS/pods/$(master_pods):9121/proxy/metrics")" || return 1
  grep -q '^redis_up 1$' <<<"$body" && grep -q '^rf_exporter_is_master 1$' <<<"$body" &&
    grep -q '^redis_connected_slaves 2$' <<<"$body"
}
wait_for "the master's metrics sidecar (rf-operator exporter) serves redis_up 1 with 2 replicas" 120 master_metrics_served
RESULTS+=("metrics sidecar: rf-operator exporter serves the master's INFO on :9121")
ack_base="$(ack_count writer-upgrade)"
wait_for "30 acknowledged writes after the upgrade" 120 acks_at_least writer-upgrade $((ack_base + 30))
stop_writer writer-upgrade upgrade "$disrupted_at" "rolling upgrade"
[[ "$(master_pods | wc -w)" -eq 1 && "$(service_endpoints "$NAME-master")" == "$(master_pods)" ]] ||
  die "after the upgrade the master Service does not point at the single master"
readback "$NAME-master" writer-upgrade "$ARTIFACTS/writer-failover.acked" "$ARTIFACTS/writer-upgrade.acked"

# The operator ran the whole scenario with the chart's least-privilege RBAC.
if kubectl -n "$OPERATOR_NS" logs -l app.kubernetes.io/component=operator --tail=-1 | grep -qi 'forbidden'; then
  die "the operator logged 'forbidden' errors: the chart's RBAC misses a permission"
fi
log "ok: no RBAC 'forbidden' error in the operator logs"

# ------------------------------------------------------------------ 8. delete

log "delete the cluster"
k delete pod writer-failover writer-upgrade --wait=false
k delete rfc "$NAME" --timeout=120s
owned_gone() {
  [[ -z "$(k get statefulsets,services,configmaps,poddisruptionbudgets,secrets,pods \
    -l "app.kubernetes.io/instance=$NAME" -o name 2>/dev/null)" ]]
}
wait_for "every object owned by $NAME is gone" 180 owned_gone
RESULTS+=("cluster deleted, owned objects garbage-collected")

echo
echo "e2e results:"
printf '  %s\n' "${RESULTS[@]}"
echo "e2e: passed"
