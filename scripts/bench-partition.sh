#!/usr/bin/env bash
# Network partitions, Jepsen-style (examples/partition_drill/drill.rs): 3 hosts and a client as
# network namespaces (rfpart-*) on a bridge of their own (rfpartbr0, 10.77.0.0/24), one server
# + one sentinel per host, two writers in the client namespace (plain SET, and SET confirmed
# by WAIT 1). Each case cuts part of the group off for --partition-secs, heals, lets it
# settle and counts acknowledged writes missing from the final master; the same rounds run
# with our rf-server + rf-sentinel and Debian's redis-server + redis-sentinel, printed side
# by side. Cases: master-mrw0, master-mrw1 (the master's host cut from the other hosts,
# min-replicas-to-write 0 / 1), replica, sentinel, client (the client cut from the master).
#
# Usage: scripts/bench-partition.sh [--release] [drill options: --systems rf,debian
#        --cases ... --partition-secs 10 --rate 100 --down-after 1000 --lag-ms 300
#        --ack-period-ms 100 --debian-lag 10 --check]
# Needs root and `ip netns`. Namespaces and bridge are removed on exit (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=()
dir=target/debug
ARGS=()
for a in "$@"; do
  case "$a" in
    --release) PROFILE=(--release); dir=target/release ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) ARGS+=("$a") ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, iptables)" >&2; exit 1; }
ip netns list >/dev/null || { echo "needs ip netns (apt-get install iproute2)" >&2; exit 1; }
for bin in redis-server redis-sentinel iptables setpriv; do
  command -v "$bin" >/dev/null || { echo "$bin not found" >&2; exit 1; }
done
cargo build --quiet "${PROFILE[@]}" --bin rf-server --bin rf-sentinel --example partition_drill
drill="$dir/examples/partition_drill"
trap '"$drill" cleanup || true' EXIT
trap 'exit 130' INT TERM
"$drill" "${ARGS[@]}"
