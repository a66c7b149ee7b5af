#!/usr/bin/env bash
# One-command local demo of the seed tutorial's topology on 127.0.0.1:
#   3 rf-servers (master 6379, replicas 6380 and 6381, configured with `slaveof` as in the seed)
#   3 sentinels (16379, 16380, 16381; quorum 2, down-after 5000, parallel-syncs 1,
#   failover-timeout 10000), all with `daemonize yes` + pidfile as the seed's config files.
# Sentinel 16379 is started the seed init script's way (`rf-server sentinel.conf --sentinel`),
# the others as `rf-sentinel sentinel.conf`.
#
# Usage: scripts/demo.sh [--drill] [--drill-rounds N] [--server-port 6379]
#                        [--sentinel-port 16379] [--down-after 5000] [--exit-after-drill]
#   --drill   live failover drill: crash the master with DEBUG SEGFAULT (as the seed does),
#             show the new master, print the write gap, acknowledged writes lost (must be 0)
#             and the rejoin time of the restarted old master, then SENTINEL failover back.
#             --drill-rounds N crashes the current master N times in a row.
# Ctrl-C stops everything and leaves no process behind.
# RF_SERVER_BIN / RF_SENTINEL_BIN run other binaries (e.g. Debian's redis-server/redis-sentinel).
set -euo pipefail
cd "$(dirname "$0")/.."

drill=0
drill_rounds=1
exit_after_drill=0
server_port=6379
sentinel_port=16379
down_after=5000
while [ $# -gt 0 ]; do
  case "$1" in
    --drill) drill=1 ;;
    --exit-after-drill) exit_after_drill=1 ;;
    --drill-rounds) drill_rounds="$2"; shift ;;
    --server-port) server_port="$2"; shift ;;
    --sentinel-port) sentinel_port="$2"; shift ;;
    --down-after) down_after="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

command -v redis-cli >/dev/null || { echo "redis-cli is needed (Debian: apt-get install redis-tools)" >&2; exit 1; }

echo "== building rf-server, rf-sentinel and the drill tool"
cargo build -q --bin rf-server --bin rf-sentinel --example failover_drill
server_bin="${RF_SERVER_BIN:-$PWD/target/debug/rf-server}"
sentinel_bin="${RF_SENTINEL_BIN:-$PWD/target/debug/rf-sentinel}"
drill_bin="$PWD/target/debug/examples/failover_drill"

for port in $server_port $((server_port + 1)) $((server_port + 2)) \
            $sentinel_port $((sentinel_port + 1)) $((sentinel_port + 2)); do
  if redis-cli -p "$port" PING >/dev/null 2>&1; then
    echo "port $port is already in use; pick others with --server-port/--sentinel-port" >&2
    exit 1
  fi
done

work="$(mktemp -d /tmp/rf-demo.XXXXXX)"
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== stopping everything"
  for pidfile in "$work"/*/*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  sleep 0.2
  if [ -n "${RF_DEMO_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

master_port=$server_port
for i in 0 1 2; do
  port=$((server_port + i))
  mkdir -p "$work/$port"
  {
    echo "bind 127.0.0.1"
    echo "port $port"
    echo "daemonize yes"
    echo "pidfile \"$work/$port/redis_$port.pid\""
    echo "logfile \"$work/$port/redis_$port.log\""
    echo "dir \"$work/$port\""
    # Redis 7 refuses DEBUG unless enabled; the seed (Redis 4) crashes the master with it.
    echo "enable-debug-command yes"
    # The restarted old master needs a full sync: no 5 s wait for others to share it.
    echo "repl-diskless-sync-delay 0"
    [ "$i" -gt 0 ] && echo "slaveof 127.0.0.1 $master_port"
  } > "$work/$port/redis.conf"
done
for i in 0 1 2; do
  sport=$((sentinel_port + i))
  mkdir -p "$work/s$sport"
  cat > "$work/s$sport/sentinel.conf" <<EOF
bind 127.0.0.1
port $sport
sentinel monitor redis-cluster 127.0.0.1 $master_port 2
sentinel down-after-milliseconds redis-cluster $down_after
sentinel parallel-syncs redis-cluster 1
sentinel failover-timeout redis-cluster 10000
daemonize yes
pidfile "$work/s$sport/sentinel_$sport.pid"
logfile "$work/s$sport/sentinel_$sport.log"
dir "$work/s$sport"
EOF
done

wait_ping() {
  for _ in $(seq 1 100); do
    redis-cli -p "$1" PING 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  echo "instance on port $1 did not answer PING; its log:" >&2
  cat "$work"/*"$1"/*.log >&2 2>/dev/null || true
  return 1
}

echo "== starting 3 servers and 3 sentinels (files in $work)"
for i in 0 1 2; do
  port=$((server_port + i))
  "$server_bin" "$work/$port/redis.conf"
  wait_ping "$port"
done
"$server_bin" "$work/s$sentinel_port/sentinel.conf" --sentinel
"$sentinel_bin" "$work/s$((sentinel_port + 1))/sentinel.conf"
"$sentinel_bin" "$work/s$((sentinel_port + 2))/sentinel.conf"
for i in 0 1 2; do wait_ping $((sentinel_port + i)); done

echo "== waiting for replicas to sync and sentinels to find each other"
for _ in $(seq 1 150); do
  synced=$(redis-cli -p "$master_port" INFO replication | grep -c 'state=online' || true)
  peers=$(redis-cli -p "$sentinel_port" SENTINEL master redis-cluster 2>/dev/null | grep -A1 '^num-other-sentinels$' | tail -1 || true)
  [ "$synced" = 2 ] && [ "$peers" = 2 ] && break
  sleep 0.2
done

echo
echo "== topology"
for i in 0 1 2; do
  port=$((server_port + i))
  printf '127.0.0.1:%s  %s\n' "$port" "$(redis-cli -p "$port" ROLE | head -1)"
done
echo
echo "== redis-cli -p $sentinel_port SENTINEL masters"
redis-cli -p "$sentinel_port" SENTINEL masters
echo
echo "== redis-cli -p $sentinel_port SENTINEL slaves redis-cluster"
redis-cli -p "$sentinel_port" SENTINEL slaves redis-cluster

status=0
if [ "$drill" = 1 ]; then
  echo
  echo "== failover drill"
  "$drill_bin" \
    --sentinels "127.0.0.1:$sentinel_port,127.0.0.1:$((sentinel_port + 1)),127.0.0.1:$((sentinel_port + 2))" \
    --master-name redis-cluster \
    --restart "\"$server_bin\" \"$work/{port}/redis.conf\"" \
    --rounds "$drill_rounds" --failback --timeout $((60 + 60 * drill_rounds)) || status=$?
  echo
  echo "== redis-cli -p $sentinel_port SENTINEL get-master-addr-by-name redis-cluster"
  redis-cli -p "$sentinel_port" SENTINEL get-master-addr-by-name redis-cluster
  if [ "$exit_after_drill" = 1 ]; then
    exit $status
  fi
fi

echo
echo "Running. Try: redis-cli -p $sentinel_port SENTINEL masters   |   redis-cli -p $master_port DEBUG SEGFAULT"
echo "Ctrl-C stops everything."
while true; do sleep 3600; done
