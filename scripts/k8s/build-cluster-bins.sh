#!/usr/bin/env bash
# Builds the local cluster's binaries from upstream Go modules into a cache keyed by the
# pinned versions and the build modules' go.sum (tests/k8s/cluster): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kube-proxy, kubectl, coredns, and our node agent.
# Go's module cache and build cache are reused, so a second build is seconds; a cold one on
# a fresh 2-core machine takes about 10-15 minutes (kube-apiserver alone about 4).
# Prints the cache's bin directory on stdout (progress on stderr).
#   RF_K8S_CACHE   where the binaries go (default ~/.cache/redis-failover/k8s)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
mods="$repo/tests/k8s/cluster"
# shellcheck disable=SC1091  # the pinned versions, a plain KEY=value file
. "$mods/versions.env"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath" CGO_ENABLED=0

command -v go >/dev/null || { echo "go is missing: the local cluster is built from upstream Go modules (Go >= 1.26)" >&2; exit 1; }
need_go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$mods/kubernetes/go.mod")"
have_go="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -n1)" != "$need_go" ]; then
  echo "go $have_go is older than the go $need_go that Kubernetes ${KUBERNETES_VERSION} needs" >&2; exit 1
fi

cache="${RF_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/redis-failover/k8s}"
upstream_key="$(cat "$mods/versions.env" "$mods"/*/go.sum | sha256sum | cut -c1-12)"
agent_key="$( (cat "$mods/kubernetes/go.sum"; cat "$mods"/kubernetes/node-agent/*.go 2>/dev/null || true) | sha256sum | cut -c1-12)"
bin="$cache/upstream-${KUBERNETES_VERSION}-${upstream_key}"
agent_bin="$cache/node-agent-${agent_key}"
mkdir -p "$bin" "$agent_bin"

start=$(date +%s)
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) \
-X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION} \
-X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"

# build OUT_DIR NAME MODULE_DIR PACKAGE [go build flags...]
build() {
  local out="$1" name="$2" dir="$3" pkg="$4"; shift 4
  if [ -x "$out/$name" ]; then return 0; fi
  echo "[k8s build $(( $(date +%s) - start ))s] building $name ($pkg)..." >&2
  local t0; t0=$(date +%s)
  if ! (cd "$dir" && go build "$@" -o "$out/$name.tmp" "$pkg"); then
    echo "[k8s build] $name failed (errors above; a module that cannot be fetched needs the Go module proxy: go env GOPROXY)" >&2
    return 1
  fi
  mv "$out/$name.tmp" "$out/$name"
  echo "[k8s build $(( $(date +%s) - start ))s] $name done in $(( $(date +%s) - t0 ))s" >&2
}

if [ ! -x "$bin/kube-apiserver" ]; then
  echo "[k8s build] cold build of Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, CoreDNS ${COREDNS_VERSION} into $bin:" >&2
  echo "[k8s build] expect about 10-15 minutes on 2 cores the first time; cached afterwards" >&2
  (cd "$mods/kubernetes" && go mod download) || { echo "[k8s build] module download failed (Go module proxy unreachable?)" >&2; exit 1; }
fi
tags=(-tags "selinux,notest")
build "$bin" etcd "$mods/etcd" go.etcd.io/etcd/server/v3 -ldflags "-s -w"
for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl; do
  build "$bin" "$b" "$mods/kubernetes" "k8s.io/kubernetes/cmd/$b" "${tags[@]}" -ldflags "$k8s_ldflags"
done
build "$bin" coredns "$mods/coredns" github.com/coredns/coredns -ldflags "-s -w"
if [ "${RF_K8S_NODE_AGENT:-1}" != 0 ]; then
  build "$agent_bin" node-agent "$mods/kubernetes" ./node-agent -ldflags "-s -w"
  ln -sf "$agent_bin/node-agent" "$bin/node-agent.current" 2>/dev/null || true
fi
echo "[k8s build] binaries ready after $(( $(date +%s) - start ))s" >&2
echo "$bin"
