#!/usr/bin/env bash
# A real Kubernetes cluster on this machine, from upstream source (tests/k8s/cluster):
# etcd, kube-apiserver (Node,RBAC authorization, ServiceAccount admission and tokens),
# kube-controller-manager (every controller under its own service account),
# kube-scheduler, kube-proxy (iptables) and CoreDNS, on 127.0.0.1 and one bridge; three
# Nodes served by our node agent (tests/k8s/cluster/kubernetes/node-agent), which runs the
# pods bound to them as processes, each in its own network namespace.
#
# Usage: scripts/k8s/cluster.sh up|down|status|kubeconfig|env|build
#   up          build the binaries if needed (a cold build takes 10-15 min on 2 cores),
#               build our three programs (cargo, release), start everything, wait until
#               the nodes are Ready and cluster DNS answers. Idempotent.
#   down        stop every process started by `up`, remove the bridge, the namespaces,
#               the iptables rules; keeps the state dir's PKI (RF_K8S_WIPE=1 removes all).
#   status      what runs, and `kubectl get nodes`.
#   kubeconfig  prints the admin kubeconfig path (export KUBECONFIG=$(... kubeconfig)).
#   env         prints `export PATH=...; export KUBECONFIG=...` for eval.
#   build       only builds the binaries (prints their directory).
# Env: RF_K8S_STATE (state dir, default /tmp/rf-k8s), RF_K8S_CACHE (binary cache),
#      RF_K8S_PROFILE (cargo profile of our binaries: release (default) or debug),
#      RF_K8S_NODE_AGENT=0 (the control plane alone: API-level tests, no pod runs).
#
# Addresses: everything listens on 127.0.0.1 except the API server (0.0.0.0:16443, so pods
# reach it through the bridge) and CoreDNS (the bridge address). Pods get 10.244.N.x/24 on
# the bridge rfk8s0 (10.244.0.1), Services 10.96.0.0/16 (DNS 10.96.0.10). These ranges exist
# only on this machine: packets from pods may not leave through any other interface
# (iptables guard); the Service range is routed to the bridge, the rest of 10.96.0.0/12 is
# an unreachable route.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${RF_K8S_STATE:-/tmp/rf-k8s}"
PKI="$STATE/pki"
KCFG="$STATE/kubeconfig"
LOGS="$STATE/logs"
RUN="$STATE/run"

ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800
API_PORT=16443
CM_PORT=10257
SCHED_PORT=10259
PROXY_METRICS_PORT=10249
PROXY_HEALTH_PORT=10256
KUBELET_PORT_BASE=10250
BRIDGE=rfk8s0
GATEWAY=10.244.0.1
POD_RANGE=10.244.0.0/16
SERVICE_RANGE=10.96.0.0/16
SERVICE_COVER=10.96.0.0/12
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
DOMAIN=cluster.local
NODES=(rf-node-1 rf-node-2 rf-node-3)
NODE_CIDRS=(10.244.1.0/24 10.244.2.0/24 10.244.3.0/24)
GUARD_CHAIN=RF-K8S-GUARD

log() { echo "[cluster $(date +%H:%M:%S)] $*" >&2; }
die() { echo "[cluster] error: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, a bridge, iptables)"
}

ensure_host_tools() {
  local missing=()
  command -v ip >/dev/null || missing+=(iproute2)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      die "could not install ${missing[*]}"
    fi
  fi
}

bins_dir() {
  "$REPO/scripts/k8s/build-cluster-bins.sh"
}

# --- PKI ----------------------------------------------------------------------------------
# cert NAME CN [O] [SANS]: a key and a certificate signed by the cluster CA.
cert() {
  local name="$1" org="${3:-}" sans="${4:-}" subj="/CN=$2"
  [ -f "$PKI/$name.crt" ] && return 0
  [ -n "$org" ] && subj="/O=$org$subj"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

make_pki() {
  mkdir -p "$PKI" "$KCFG"
  if [ ! -f "$PKI/ca.crt" ]; then
    log "generating the cluster PKI in $PKI"
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=rf-k8s-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt" 2>/dev/null
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:$GATEWAY,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$DOMAIN"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert kubelet-serving rf-node-agent "" "IP:$GATEWAY,IP:127.0.0.1,DNS:localhost"
  cert admin kubernetes-admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy
  cert coredns rf:coredns
  cert provisioner rf:local-provisioner
  local n
  for n in "${NODES[@]}"; do cert "node-$n" "system:node:$n" system:nodes; done
  chmod 600 "$PKI"/*.key

  kubeconfig admin admin "https://127.0.0.1:$API_PORT"
  kubeconfig controller-manager controller-manager "https://127.0.0.1:$API_PORT"
  kubeconfig scheduler scheduler "https://127.0.0.1:$API_PORT"
  kubeconfig kube-proxy kube-proxy "https://127.0.0.1:$API_PORT"
  kubeconfig coredns coredns "https://127.0.0.1:$API_PORT"
  kubeconfig provisioner provisioner "https://127.0.0.1:$API_PORT"
  for n in "${NODES[@]}"; do kubeconfig "$n" "node-$n" "https://127.0.0.1:$API_PORT"; done
}

# kubeconfig FILE CERT SERVER
kubeconfig() {
  cat >"$KCFG/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rf-k8s
  cluster:
    server: $3
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: rf-k8s
  context: {cluster: rf-k8s, user: $2}
current-context: rf-k8s
EOF
}

# --- network ------------------------------------------------------------------------------
net_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY/16" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "bridge netfilter unavailable: Service traffic between pods on the bridge may not be translated back"
  # Service IPs are routed to the bridge, so that a connection from this host passes the
  # first route lookup and reaches kube-proxy's translation; one without a rule dies on
  # the bridge. The rest of the usual Service range is unreachable.
  ip route replace "$SERVICE_RANGE" dev "$BRIDGE"
  ip route replace unreachable "$SERVICE_COVER"
  # Packets from the pod range may go to the bridge and to this host, nowhere else.
  iptables -N "$GUARD_CHAIN" 2>/dev/null || iptables -F "$GUARD_CHAIN"
  iptables -A "$GUARD_CHAIN" -s "$POD_RANGE" -o "$BRIDGE" -j RETURN
  iptables -A "$GUARD_CHAIN" -s "$POD_RANGE" -j DROP
  iptables -A "$GUARD_CHAIN" -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
  iptables -C FORWARD -j "$GUARD_CHAIN" 2>/dev/null || iptables -I FORWARD 1 -j "$GUARD_CHAIN"
  iptables -t mangle -C POSTROUTING -s "$POD_RANGE" ! -o "$BRIDGE" ! -d "$POD_RANGE" -j DROP 2>/dev/null \
    || iptables -t mangle -A POSTROUTING -s "$POD_RANGE" ! -o "$BRIDGE" ! -d "$POD_RANGE" -j DROP
}

net_down() {
  iptables -D FORWARD -j "$GUARD_CHAIN" 2>/dev/null || true
  iptables -F "$GUARD_CHAIN" 2>/dev/null || true
  iptables -X "$GUARD_CHAIN" 2>/dev/null || true
  iptables -t mangle -D POSTROUTING -s "$POD_RANGE" ! -o "$BRIDGE" ! -d "$POD_RANGE" -j DROP 2>/dev/null || true
  # kube-proxy's chains: its own cleanup mode removes them.
  if [ -x "${BINS:-/nonexistent}/kube-proxy" ]; then
    "$BINS/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  ip route del "$SERVICE_RANGE" dev "$BRIDGE" 2>/dev/null || true
  ip route del unreachable "$SERVICE_COVER" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
}

# --- processes ----------------------------------------------------------------------------
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
  local pid
  [ -f "$RUN/$1.pid" ] && pid="$(cat "$RUN/$1.pid")" && kill -0 "$pid" 2>/dev/null
}

# start NAME PORT CMD...: starts CMD in the background (its own session, log in LOGS) unless
# NAME already runs; a port in use by someone else stops everything with a clear message.
start() {
  local name="$1" port="$2"; shift 2
  if running "$name"; then return 0; fi
  if [ "$port" != - ] && ! port_free "$port"; then
    die "port $port (for $name) is taken by another process: $(ss -ltnp "sport = :$port" 2>/dev/null | tail -n +2 | head -1)"
  fi
  mkdir -p "$RUN" "$LOGS"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
  log "started $name (pid $!, log $LOGS/$name.log)"
}

# wait_for WHAT SECONDS CMD...
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${secs}s waiting for $what; last lines of the logs:"
      tail -n 15 "$LOGS"/*.log >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

stop() {
  local name="$1" pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid="$(cat "$RUN/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

kctl() { "$BINS/kubectl" --kubeconfig "$KCFG/admin.kubeconfig" "$@"; }

images_json() {
  # The pod images the node agent can run: our three, their entrypoint/cmd/user read from
  # images/*/Dockerfile so that pods see what a container runtime would start.
  python3 - "$REPO" "$OUR_BINS" <<'EOF' | write_if_changed "$STATE/images.json"
import json, re, sys, pathlib
repo, bins = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
images = {}
for name, binary in (("server", "rf-server"), ("sentinel", "rf-sentinel"), ("operator", "rf-operator")):
    text = (repo / "images" / name / "Dockerfile").read_text()
    text = text[text.rfind("\nFROM "):]  # the final stage is the image
    def directive(key):
        m = re.findall(rf"^{key}\s+(.+)$", text, re.M)
        return m[-1].strip() if m else None
    entry = json.loads(directive("ENTRYPOINT") or "[]")
    cmd = json.loads(directive("CMD") or "[]")
    images[f"redis-failover/{binary}"] = {
        "binary": str(bins / binary), "entrypoint": entry, "cmd": cmd,
        "user": directive("USER") or "0:0", "workdir": directive("WORKDIR") or "/",
    }
print(json.dumps(images, indent=2))
EOF
}

cluster_addons() {
  # RBAC of the two helpers that are not Kubernetes components: CoreDNS and the local volume
  # provisioner of the node agent (what their Deployments' service accounts would get).
  kctl apply --server-side --field-manager=rf-cluster -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "rf:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "rf:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "rf:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "rf:coredns"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "rf:local-provisioner"}
rules:
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, delete, update, patch]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, update, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch, create]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "rf:local-provisioner"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "rf:local-provisioner"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "rf:local-provisioner"}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_SERVICE_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: rf-cluster.sh
addressType: IPv4
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
endpoints:
- addresses: ["$GATEWAY"]
  conditions: {ready: true}
EOF
}

# write_if_changed FILE: stdin to FILE unless it already holds exactly that (kube-proxy
# exits when its config file changes under it, and `up` runs again on a running cluster).
write_if_changed() {
  local tmp; tmp="$(mktemp "$1.XXXX")"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

corefile() {
  # Only the cluster's own zones: anything else gets REFUSED, nothing is forwarded upstream.
  write_if_changed "$STATE/Corefile" <<EOF
$DOMAIN:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $GATEWAY
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes $DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $KCFG/coredns.kubeconfig rf-k8s
        pods insecure
        ttl 5
    }
    cache 5
    loadbalance
}
EOF
}

proxy_config() {
  write_if_changed "$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $KCFG/kube-proxy.kubeconfig
hostnameOverride: ${NODES[0]}
mode: iptables
clusterCIDR: $POD_RANGE
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
healthzBindAddress: 127.0.0.1:$PROXY_HEALTH_PORT
conntrack:
  # Leave the machine's conntrack table size alone (a VM may refuse the sysctl).
  maxPerCore: 0
  min: 0
iptables:
  syncPeriod: 10s
  minSyncPeriod: 0s
EOF
}

cmd_up() {
  need_root
  ensure_host_tools
  local t0; t0=$(date +%s)
  BINS="$(bins_dir)" || die "building the cluster binaries failed"
  local with_nodes="${RF_K8S_NODE_AGENT:-1}"
  [ "$with_nodes" = 0 ] || [ -x "$BINS/node-agent.current" ] || die "the node agent was not built"
  local profile="${RF_K8S_PROFILE:-release}" flag=(--release)
  [ "$profile" = debug ] && flag=()
  log "building rf-server, rf-sentinel, rf-operator ($profile)"
  (cd "$REPO" && cargo build -q "${flag[@]}" --bin rf-server --bin rf-sentinel --bin rf-operator) \
    || die "cargo build failed"
  OUR_BINS="$REPO/target/$profile"
  mkdir -p "$STATE" "$LOGS" "$RUN"
  make_pki
  images_json
  net_up

  start etcd "$ETCD_CLIENT_PORT" "$BINS/etcd" --name default --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync=true \
    --listen-metrics-urls "http://127.0.0.1:$((ETCD_CLIENT_PORT + 1))" --log-level warn
  wait_for etcd 60 curl -sf "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

  start kube-apiserver "$API_PORT" "$BINS/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$GATEWAY" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-cluster-ip-range "$SERVICE_RANGE" \
    --service-account-issuer "https://kubernetes.default.svc.$DOMAIN" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --api-audiences "https://kubernetes.default.svc.$DOMAIN" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --v=1
  wait_for kube-apiserver 120 kctl get --raw /readyz

  start kube-controller-manager "$CM_PORT" "$BINS/kube-controller-manager" \
    --kubeconfig "$KCFG/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$KCFG/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$KCFG/controller-manager.kubeconfig" \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --controllers '*' --leader-elect=false \
    --service-cluster-ip-range "$SERVICE_RANGE" \
    --bind-address 127.0.0.1 --secure-port "$CM_PORT" \
    --authorization-always-allow-paths /healthz,/readyz,/livez,/metrics --v=1
  start kube-scheduler "$SCHED_PORT" "$BINS/kube-scheduler" \
    --kubeconfig "$KCFG/scheduler.kubeconfig" \
    --authentication-kubeconfig "$KCFG/scheduler.kubeconfig" --authorization-kubeconfig "$KCFG/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --v=1
  cluster_addons
  proxy_config
  start kube-proxy "$PROXY_HEALTH_PORT" "$BINS/kube-proxy" --config "$STATE/kube-proxy.yaml" --v=1
  corefile
  start coredns - "$BINS/coredns" -conf "$STATE/Corefile"

  if [ "$with_nodes" = 0 ]; then
    wait_for "cluster DNS" 60 dns_answers
    log "control plane up without nodes (RF_K8S_NODE_AGENT=0) in $(( $(date +%s) - t0 ))s"
    return 0
  fi
  local cidrs; cidrs="$(IFS=,; echo "${NODE_CIDRS[*]}")"
  start node-agent - "$BINS/node-agent.current" \
    --state-dir "$STATE/nodes" --kubeconfig-dir "$KCFG" \
    --provisioner-kubeconfig "$KCFG/provisioner.kubeconfig" \
    --nodes "$(IFS=,; echo "${NODES[*]}")" --pod-cidrs "$cidrs" \
    --bridge "$BRIDGE" --gateway "$GATEWAY" \
    --cluster-dns "$DNS_SERVICE_IP" --cluster-domain "$DOMAIN" --service-cidr "$SERVICE_RANGE" \
    --images "$STATE/images.json" --kubelet-port-base "$KUBELET_PORT_BASE" \
    --tls-cert-file "$PKI/kubelet-serving.crt" --tls-key-file "$PKI/kubelet-serving.key" \
    --client-ca-file "$PKI/ca.crt"

  wait_for "the nodes to be Ready" 120 kctl wait --for=condition=Ready node --all --timeout=2s
  wait_for "the default service account" 60 kctl -n default get serviceaccount default
  wait_for "cluster DNS" 60 dns_answers
  log "cluster up in $(( $(date +%s) - t0 ))s: export KUBECONFIG=$KCFG/admin.kubeconfig PATH=$BINS:\$PATH"
}

dns_answers() {
  # kubernetes.default through the DNS Service's ClusterIP (kube-proxy's translation).
  python3 - "$DNS_SERVICE_IP" "kubernetes.default.svc.$DOMAIN" <<'EOF'
import socket, struct, sys, random
server, name = sys.argv[1], sys.argv[2]
qid = random.randrange(65536)
q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(q, (server, 53)); r = s.recv(512)
rid, flags, _, an = struct.unpack(">HHHH", r[:8])
sys.exit(0 if rid == qid and flags & 0xF == 0 and an > 0 else 1)
EOF
}

cmd_down() {
  need_root
  local built=("${RF_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/redis-failover/k8s}"/upstream-*)
  BINS="${built[0]}"
  # The node agent first: it stops the pods and removes their namespaces.
  for name in node-agent coredns kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if running "$name"; then log "stopping $name"; fi
    stop "$name"
  done
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^rfpod-/{print $1}'); do ip netns del "$ns" 2>/dev/null || true; done
  net_down
  if [ "${RF_K8S_WIPE:-0}" = 1 ]; then
    rm -rf "$STATE"
  else
    rm -rf "$STATE/etcd" "$STATE/nodes"
  fi
  log "down"
}

cmd_status() {
  local name any=0
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy coredns node-agent; do
    if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; any=1
    else echo "$name: stopped"; fi
  done
  if [ $any = 1 ]; then
    BINS="$(bins_dir 2>/dev/null)"
    kctl get nodes -o wide || true
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubeconfig) echo "$KCFG/admin.kubeconfig" ;;
  env) BINS="$(bins_dir)"; echo "export PATH=\"$BINS:\$PATH\" KUBECONFIG=\"$KCFG/admin.kubeconfig\"" ;;
  build) bins_dir ;;
  *) sed -n '2,22p' "$0"; exit 2 ;;
esac
