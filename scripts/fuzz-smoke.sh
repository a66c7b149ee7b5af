#!/usr/bin/env bash
# A short libFuzzer run of every fuzz target (fuzz/fuzz_targets), from the committed seeds.
# Usage: scripts/fuzz-smoke.sh [seconds per target, default 30] [target...]
# Installs cargo-fuzz if missing. libFuzzer needs nightly-only compiler flags: with a nightly
# toolchain (rustup) it is used; without one, the stable compiler is told to accept them
# (RUSTC_BOOTSTRAP=1). No sanitizer: the code is safe Rust (unsafe_code = forbid), and the
# build is faster and works on stable. A crash fails the run; its input is left in
# fuzz/artifacts/<target>/ (turn it into a regression test in the normal suite).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(resp_request resp_reply redis_conf sentinel_conf rdb_load dump_restore aof_load repl_stream)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

toolchain=()
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "no nightly toolchain: building the fuzz targets with RUSTC_BOOTSTRAP=1 on $(rustc --version)"
  export RUSTC_BOOTSTRAP=1
fi

fuzz=(cargo "${toolchain[@]}" fuzz)
started=$(date +%s)
"${fuzz[@]}" build -s none
built=$(date +%s)
echo "== fuzz targets built in $((built - started))s"

status=0
for t in "${targets[@]}"; do
  # A scratch corpus per run: the seeds are read-only inputs, the run's finds are not kept.
  scratch=$(mktemp -d)
  echo "== fuzzing $t for ${seconds}s"
  if ! "${fuzz[@]}" run -s none "$t" "$scratch" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>"$scratch.log"; then
    tail -40 "$scratch.log"
    echo "!! $t: crash or timeout (input in fuzz/artifacts/$t/)" >&2
    status=1
  else
    grep -E '^(stat::number_of_executed_units|Done)' "$scratch.log" | tr '\n' ' '
    echo
  fi
  rm -rf "$scratch" "$scratch.log"
done
echo "== fuzz smoke: $(( $(date +%s) - started ))s in all"
exit $status
