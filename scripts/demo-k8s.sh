#!/usr/bin/env bash
# The main job on Kubernetes: brings up the local cluster (upstream control plane built from
# source + our node agent: scripts/k8s/cluster.sh; the first build takes 10-15 min on
# 2 cores), installs the operator with the Helm chart, creates the seed cluster
# (deploy/examples/cluster.yaml: 3 servers, 3 sentinels, quorum 2) and runs a failover
# drill: a writer (SET + WAIT 1) through the seed-master Service while the master pod is
# deleted; prints the write gap, the Service switch time and acknowledged writes lost.
# Then it holds the cluster until Ctrl-C, which tears everything down.
# Usage: scripts/demo-k8s.sh [--exit-after-drill]      (root; Go; Rust)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/k8s/kube-tools.sh
source scripts/k8s/kube-tools.sh
ensure_kube_tools
python3 -c 'import redis, yaml' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check redis pyyaml
exec python3 tests/e2e/suite.py --demo "$@"
