#!/usr/bin/env bash
# Runs every test: Rust unit + integration tests (real rf-server / rf-sentinel / Debian
# redis-server processes on 127.0.0.1), then the Kubernetes manifest validation.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

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

if [ -f tests/e2e/run.sh ]; then
  echo "== kind e2e (skips cleanly without kind/docker)"
  bash tests/e2e/run.sh || status=1
fi

exit $status
