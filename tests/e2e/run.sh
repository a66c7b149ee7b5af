#!/usr/bin/env bash
# The end-to-end suite (tests/e2e/suite.py) on a real Kubernetes:
#   E2E_PROVIDER=local  the upstream control plane built from source + our node agent on
#                       this machine (scripts/k8s/cluster.sh; needs root and Go); default
#   E2E_PROVIDER=kind   kind + Docker (the GitHub workflow); without kind or a Docker engine
#                       it prints "skipped: kind/docker not found (...)" and exits 0, or 1
#                       with E2E_REQUIRE=1
# Both run the same scenario (suite.py). Env: E2E_ARTIFACTS, E2E_KEEP_CLUSTER=1, E2E_ONLY,
# E2E_MAX_WINDOW_MS; E2E_PRINT_WRITER_POD=1 prints the kind writer pod manifest and exits.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

if [[ "${E2E_PRINT_WRITER_POD:-0}" == "1" ]]; then
  # shellcheck source=scripts/k8s/kube-tools.sh
source "$REPO_ROOT/scripts/k8s/kube-tools.sh"
ensure_kube_tools  # helm (the local cluster puts its own kubectl first on PATH)
exec python3 tests/e2e/suite.py --print-writer-pod
fi

provider="${E2E_PROVIDER:-local}"
if [[ "$provider" == "kind" ]]; then
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
  docker info >/dev/null 2>&1 || skip "docker is installed but no Docker engine answers"
fi
# shellcheck source=scripts/k8s/kube-tools.sh
source "$REPO_ROOT/scripts/k8s/kube-tools.sh"
ensure_kube_tools  # helm (the local cluster puts its own kubectl first on PATH)
exec python3 tests/e2e/suite.py --provider "$provider" "$@"
