#!/usr/bin/env bash
# Runs every test: Rust unit + integration tests (real rf-server / rf-sentinel / Debian
# redis-server processes on 127.0.0.1), the Kubernetes manifest validation, then the main job
# and the e2e suite on a local Kubernetes built from upstream source (needs root and Go).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

# The interop and differential tests compare against Debian's Redis 7.0 and skip without
# it: a run missing it would pass without comparing anything, so it stops here instead.
missing=""
for bin in /usr/bin/redis-server /usr/bin/redis-sentinel /usr/bin/redis-cli /usr/bin/redis-benchmark; do
  [ -x "$bin" ] || missing="$missing $bin"
done
if [ -n "$missing" ] && [ "${RF_ALLOW_SKIPS:-0}" != 1 ]; then
  echo "missing:$missing (apt-get install redis-server redis-sentinel redis-tools, as .ci/run does;" >&2
  echo "RF_ALLOW_SKIPS=1 runs anyway, skipping the comparisons with Redis)" >&2
  exit 1
fi

echo "== cargo test"
cargo test --all-targets --no-fail-fast 2>&1 | tee /tmp/rf-cargo-test.log || status=1

echo "== Python client tests (redis-py Sentinel against rf-sentinel)"
cargo build -q --bin rf-server --bin rf-sentinel
python3 -m pytest -q tests/py || status=1

echo "== README main job: the seed demo with its failover drill (our binaries, other ports)"
timeout 300 bash scripts/demo.sh --drill --exit-after-drill --down-after 1000 \
  --server-port 27379 --sentinel-port 37379 || status=1

if [ -x scripts/ci-k8s-validate.sh ] || [ -f scripts/ci-k8s-validate.sh ]; then
  echo "== Kubernetes manifests, chart and CRD validation"
  bash scripts/ci-k8s-validate.sh || status=1
fi

# Kubernetes for real: the upstream control plane built from source (cached by version)
# with our node agent running the pods. First the README's main job, then the e2e suite.
# Our binaries are the debug builds the tests above already made.
echo "== Kubernetes: a clean local cluster (scripts/k8s/cluster.sh)"
bash scripts/k8s/cluster.sh down || true
echo "== README main job on Kubernetes: scripts/demo-k8s.sh --exit-after-drill"
k8s_started=$(date +%s)
RF_K8S_PROFILE=debug timeout 3000 bash scripts/demo-k8s.sh --exit-after-drill || status=1
echo "== e2e suite on the local cluster (tests/e2e/run.sh)"
RF_K8S_PROFILE=debug E2E_PROVIDER=local timeout 2400 bash tests/e2e/run.sh || status=1
echo "== Kubernetes steps took $(( $(date +%s) - k8s_started ))s (a cold build of the cluster binaries included, if there was one)"

exit $status
