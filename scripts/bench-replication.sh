#!/usr/bin/env bash
# Persistence/replication benchmark: rf-server vs Debian redis-server, same settings, same run.
# Prints, for each: full sync time of N keys, replication lag under redis-benchmark -P 16
# (bytes, and milliseconds of the master's write stream),
# p99 GET/SET latency during BGSAVE and BGREWRITEAOF, the longest GET of clients running
# when a BGSAVE starts, RDB load time; then rf/redis ratios
# (for every figure lower is better: target ratio <= 1.0).
#
# Usage: scripts/bench-replication.sh [keys=1000000]
# Not a timed test. Needs redis-server, redis-cli, redis-benchmark in PATH.
set -euo pipefail

KEYS=${1:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --bin rf-server --manifest-path "$ROOT/Cargo.toml" >&2
RF="$ROOT/target/release/rf-server"
WORK=$(mktemp -d)
PIDFILE="$WORK/pids"
: >"$PIDFILE"
cleanup() {
    while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$PIDFILE"
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# start <binary> <dir> <port> [args...] ; echo pid
start() {
    local bin=$1 dir=$2 port=$3; shift 3
    mkdir -p "$dir"
    "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no "$@" >"$dir/log" 2>&1 &
    local pid=$!
    echo "$pid" >>"$PIDFILE"
    for _ in $(seq 1 600); do
        if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then echo "$pid"; return; fi
        sleep 0.1
    done
    echo "server $bin did not start" >&2; exit 1
}

stop() {
    kill -9 "$1" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
}

# until_true <max seconds> <command...>: bounded polling
# POLL (seconds between checks, default 0.05; 0 = back to back)
until_true() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for: $*" >&2; exit 1; }
        sleep "${POLL:-0.05}"
    done
}
field_is() { [ "$(info "$1" "$2" "$3")" = "$4" ]; }
in_sync() { [ "$(info "$1" replication master_repl_offset)" = "$(info "$2" replication slave_repl_offset)" ]; }

info() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v f="$3" '$1==f{print $2}'; }

load_keys() {
    # N distinct key:NNNNNNN -> 16-byte values through the protocol.
    awk -v n="$KEYS" 'BEGIN{for(i=0;i<n;i++){k=sprintf("key:%07d",i); printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\nvalue-%010d\r\n", length(k), k, i}}' \
        | redis-cli -p "$1" --pipe >/dev/null
}

p99_during() {  # <port> <command that starts the background job>
    local port=$1; shift
    redis-cli -p "$port" "$@" >/dev/null
    redis-benchmark -p "$port" -t set,get -n 200000 -c 50 -r "$KEYS" --csv 2>/dev/null \
        | awk -F'","' '/"SET"|"GET"/{gsub(/"/,"",$7); if ($7>m) m=$7} END{print m}'
}

# max latency (ms) of clients already running when <command> starts a background job:
# shows any stop of the server at the start of the job (Redis: fork; ours: the capture).
max_at_start() {  # <port> <command>
    local port=$1; shift
    local out="$WORK/bench-$port.csv"
    redis-benchmark -p "$port" -t get -n 300000 -c 50 -r "$KEYS" --csv >"$out" 2>/dev/null &
    local bpid=$!
    sleep 0.5
    redis-cli -p "$port" "$@" >/dev/null
    wait "$bpid"
    awk -F'","' '/"GET"/{gsub(/"/,"",$8); print $8}' "$out"
}

declare -A R
for kind in redis rf; do
    bin=redis-server; [ "$kind" = rf ] && bin=$RF
    mport=$(free_port); rport=$(free_port)
    mdir="$WORK/$kind-master"; rdir="$WORK/$kind-replica"
    mpid=$(start "$bin" "$mdir" "$mport" --repl-diskless-sync no --repl-backlog-size 64mb)
    load_keys "$mport"
    [ "$(redis-cli -p "$mport" dbsize)" = "$KEYS" ] || { echo "$kind: load failed" >&2; exit 1; }

    # 1. full sync time
    t0=$(now_ms)
    rpid=$(start "$bin" "$rdir" "$rport" --replicaof 127.0.0.1 "$mport")
    until_true 600 field_is "$rport" replication master_link_status up
    R[$kind.fullsync_ms]=$(( $(now_ms) - t0 ))

    # 2. replication lag (bytes) under load, sampled every 100 ms, from ONE reply of the master
    #    (its offset and the replica's last acknowledged offset: two separate INFO calls
    #    under load skew each other); catch-up time after load
    off0=$(info "$mport" replication master_repl_offset); tl0=$(now_ms)
    redis-benchmark -p "$mport" -t set -n 1000000 -r "$KEYS" -P 16 -c 50 -q >/dev/null 2>&1 &
    bpid=$!
    maxlag=0
    while kill -0 "$bpid" 2>/dev/null; do
        lag=$(redis-cli -p "$mport" INFO replication | tr -d '\r' | awk -F'[:,=]' '
            /^master_repl_offset:/ { mo = $2 }
            /^slave0:/ { for (i = 2; i < NF; i++) if ($i == "offset") so = $(i + 1) }
            END { if (mo != "" && so != "") print mo - so; else print 0 }')
        [ "$lag" -gt "$maxlag" ] && maxlag=$lag
        sleep 0.1
    done
    t0=$(now_ms)
    # the same lag in milliseconds of the master's write stream: a faster master makes
    # more bytes per second, so bytes alone favour the slower server
    R[$kind.maxlag_ms]=$(awk -v lag="$maxlag" -v b=$(( $(info "$mport" replication master_repl_offset) - off0 )) -v ms=$(( t0 - tl0 )) \
        'BEGIN{ if (b <= 0) print 0; else printf "%.0f", lag / (b / ms) }')
    # polled back to back (each check is two redis-cli runs, ~5 ms): catch-up is tens of ms
    POLL=0 until_true 600 in_sync "$mport" "$rport"
    R[$kind.maxlag_bytes]=$maxlag
    R[$kind.catchup_ms]=$(( $(now_ms) - t0 ))
    stop "$rpid"

    # 3. p99 during BGSAVE / BGREWRITEAOF (and a baseline)
    R[$kind.p99_idle_ms]=$(p99_during "$mport" ping)
    R[$kind.p99_bgsave_ms]=$(p99_during "$mport" bgsave)
    until_true 600 field_is "$mport" persistence rdb_bgsave_in_progress 0
    R[$kind.max_at_bgsave_start_ms]=$(max_at_start "$mport" bgsave)
    until_true 600 field_is "$mport" persistence rdb_bgsave_in_progress 0
    redis-cli -p "$mport" config set appendonly yes >/dev/null
    until_true 600 field_is "$mport" persistence aof_rewrite_in_progress 0
    R[$kind.p99_bgrewriteaof_ms]=$(p99_during "$mport" bgrewriteaof)
    until_true 600 field_is "$mport" persistence aof_rewrite_in_progress 0
    redis-cli -p "$mport" config set appendonly no >/dev/null
    redis-cli -p "$mport" save >/dev/null
    stop "$mpid"

    # 4. RDB load time (start to first PONG)
    mport=$(free_port)
    t0=$(now_ms)
    mpid=$(start "$bin" "$mdir" "$mport")
    until_true 600 field_is "$mport" persistence loading 0
    R[$kind.rdb_load_ms]=$(( $(now_ms) - t0 ))
    [ "$(redis-cli -p "$mport" dbsize)" = "$KEYS" ] || echo "$kind: reload has $(redis-cli -p "$mport" dbsize) keys" >&2
    stop "$mpid"
done

printf '%-22s %12s %12s %8s\n' metric redis rf-server rf/redis
for m in fullsync_ms maxlag_bytes maxlag_ms catchup_ms p99_idle_ms p99_bgsave_ms max_at_bgsave_start_ms p99_bgrewriteaof_ms rdb_load_ms; do
    a=${R[redis.$m]}; b=${R[rf.$m]}
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{ if (a+0==0) print (b+0==0 ? "1.00" : "inf"); else printf "%.2f", b/a }')
    printf '%-22s %12s %12s %8s\n' "$m" "$a" "$b" "$ratio"
done
