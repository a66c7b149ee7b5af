#!/usr/bin/env bash
# Smoke test of the node agent on a running local cluster (scripts/k8s/cluster.sh up):
# pods of our rf-server image with the kubelet features the project relies on. Every wait
# is bounded; the first failed check stops the script with a message. Needs root (ip netns,
# nsenter) and redis-cli. Leaves nothing behind (its namespace is deleted at the end).
#   eval "$(scripts/k8s/cluster.sh env)"; tests/k8s/cluster/kubernetes/node-agent/smoke.sh
set -euo pipefail
NS="na-smoke-$$"
STATE="${RF_K8S_STATE:-/tmp/rf-k8s}"
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }
ok() { echo "smoke: ok: $*"; }
k() { kubectl -n "$NS" "$@"; }
# until SECONDS WHAT CMD...: retries CMD every second.
until_ok() {
  local secs="$1" what="$2"; shift 2
  for _ in $(seq 1 "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "timed out after ${secs}s: $what"
}
cleanup() { kubectl delete ns "$NS" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

kubectl create ns "$NS" >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {"srv-0.conf": "port 6379\nprotected-mode no\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {password: smoke-pw}
---
apiVersion: v1
kind: Service
metadata: {name: srv}
spec:
  selector: {app: srv}
  ports: [{name: redis, port: 6379, targetPort: redis}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data-srv-0}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: srv-0, labels: {app: srv}}
spec:
  hostname: srv-0
  subdomain: srv
  terminationGracePeriodSeconds: 10
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  containers:
  - name: server
    image: redis-failover/rf-server:smoke
    args: ["/etc/rf/\$(POD_NAME).conf", "--requirepass", "\$(PW)", "--dir", "/data"]
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: PW, valueFrom: {secretKeyRef: {name: pw, key: password}}}
    ports: [{name: redis, containerPort: 6379}]
    readinessProbe: {tcpSocket: {port: redis}, periodSeconds: 1}
    livenessProbe: {exec: {command: ["/usr/local/bin/rf-server", "--version"]}, periodSeconds: 5, timeoutSeconds: 5}
    lifecycle: {preStop: {exec: {command: ["sh", "-c", "id -u > /data/prestop"]}}}
    volumeMounts:
    - {name: config, mountPath: /etc/rf, readOnly: true}
    - {name: data, mountPath: /data}
  volumes:
  - {name: config, configMap: {name: cfg}}
  - {name: data, persistentVolumeClaim: {claimName: data-srv-0}}
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers: [{name: version, image: redis-failover/rf-server, command: ["/usr/local/bin/rf-server", "--version"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: unknown-image}
spec:
  containers: [{name: web, image: nginx:1.27}]
EOF

until_ok 90 "srv-0 Ready" k wait --for=condition=Ready pod/srv-0 --timeout=1s
ok "srv-0 Ready (configMap, secret env, \$(VAR) args, PVC of local-dir, probes)"
IP="$(k get pod srv-0 -o jsonpath='{.status.podIP}')"
UID_="$(k get pod srv-0 -o jsonpath='{.metadata.uid}')"
NETNS="rfpod-$(echo "$UID_" | tr -d - | cut -c1-10)"
CIP="$(k get svc srv -o jsonpath='{.spec.clusterIP}')"
R() { redis-cli --no-auth-warning -a smoke-pw "$@"; }

[ "$(R -h "$IP" ping)" = PONG ] || fail "pod IP $IP from the host"
until_ok 30 "Service $CIP from the host" sh -c "[ \"\$(redis-cli --no-auth-warning -a smoke-pw -h $CIP ping)\" = PONG ]"
until_ok 30 "Service $CIP from the pod's netns" sh -c "[ \"\$(ip netns exec $NETNS redis-cli --no-auth-warning -a smoke-pw -h $CIP ping)\" = PONG ]"
ok "pod IP and ClusterIP reachable from the host and from the pod (hairpin)"
ip netns exec "$NETNS" getent hosts kubernetes.default.svc.cluster.local >/dev/null || fail "cluster DNS from the pod's netns"
ip netns exec "$NETNS" getent hosts "srv-0.srv.$NS.svc.cluster.local" | grep -q "$IP" || fail "pod FQDN in /etc/hosts"
ok "DNS and /etc/hosts in the pod's netns"

PID="$(awk '{print $1}' "$STATE/nodes/pods/$UID_/server.pid")"
[ "$(nsenter -t "$PID" -u hostname)" = srv-0 ] || fail "hostname"
[ "$(stat -c %u "/proc/$PID")" = 65532 ] || fail "runAsUser"
tr '\0' '\n' <"/proc/$PID/environ" | grep -qx "SRV_SERVICE_HOST=$CIP" || fail "service env vars"
[ "$(k exec srv-0 -- sh -c 'id -u; cat /etc/rf/srv-0.conf | head -1')" = "$(printf '65532\nport 6379')" ] || fail "kubectl exec"
ok "hostname, uid, service env, kubectl exec"

k exec srv-0 -- sh -c 'echo kept > /data/marker'
kill -9 "$PID"
until_ok 30 "restart in place" sh -c "[ \"\$(kubectl -n $NS get pod srv-0 -o jsonpath='{.status.containerStatuses[0].restartCount}')\" = 1 ]"
[ "$(k get pod srv-0 -o jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}')" = 137 ] || fail "exit code 137 after kill -9"
until_ok 30 "srv-0 Ready again" k wait --for=condition=Ready pod/srv-0 --timeout=1s
[ "$(k exec srv-0 -- cat /data/marker)" = kept ] || fail "volume content after the restart"
k logs srv-0 --previous --tail=5 | grep -q "Ready to accept connections" || fail "kubectl logs --previous"
ok "kill -9: restarted in place (restartCount 1, exit 137), volume kept, logs --previous"

kubectl -n "$NS" port-forward pod/srv-0 16399:6379 >/dev/null 2>&1 &
PF=$!
until_ok 15 "port-forward" sh -c "[ \"\$(redis-cli --no-auth-warning -a smoke-pw -p 16399 ping)\" = PONG ]"
kill "$PF"
ok "kubectl port-forward"

until_ok 30 "once Completed" sh -c "[ \"\$(kubectl -n $NS get pod once -o jsonpath='{.status.phase}')\" = Succeeded ]"
until_ok 30 "ImagePullBackOff" sh -c "kubectl -n $NS get pod unknown-image -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -qx ImagePullBackOff"
ok "restartPolicy Never pod Succeeded; unknown image in ImagePullBackOff"

PV="$(k get pvc data-srv-0 -o jsonpath='{.spec.volumeName}')"
k delete pod srv-0 --timeout=30s >/dev/null
[ "$(cat "$STATE/nodes/volumes/$PV/prestop")" = 65532 ] || fail "preStop hook ran as the pod user"
[ "$(cat "$STATE/nodes/volumes/$PV/marker")" = kept ] || fail "PV data kept after the pod's deletion"
ip netns list | grep -q "^$NETNS" && fail "netns $NETNS left after deletion"
k delete pvc data-srv-0 --timeout=30s >/dev/null
until_ok 30 "released PV deleted" sh -c "! kubectl get pv $PV"
[ ! -e "$STATE/nodes/volumes/$PV" ] || fail "PV directory left"
ok "graceful deletion with preStop; netns removed; released PV and its directory deleted"
echo "smoke: passed"
