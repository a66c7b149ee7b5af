# shellcheck shell=bash
# Helpers for scripts/bench-server.sh (sourced).

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A TCP port on 127.0.0.1 nobody listens on (probed by connecting; bounded tries), below the
# kernel's ephemeral range so outgoing connections do not hold it.
free_port() {
    local port _
    for _ in $(seq 1 200); do
        port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# wait_ready PORT PID LOG: until the server answers PING (10 s at most).
wait_ready() {
    local port="$1" pid="$2" logfile="$3" _
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "server exited; log:"
            tail -20 "$logfile" >&2
            return 1
        fi
        if [ "$(redis-cli -p "$port" PING 2>/dev/null)" = "PONG" ]; then
            return 0
        fi
        sleep 0.1
    done
    log "server did not answer PING on port $port within 10 s; log:"
    tail -20 "$logfile" >&2
    return 1
}

# Resident set size of a process in kB.
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# gen_load N: RESP for N commands `SET key:NNNNNNN <16 bytes>` (for redis-cli --pipe).
gen_load() {
    awk -v n="$1" 'BEGIN {
        for (i = 0; i < n; i++) {
            k = sprintf("key:%07d", i)
            v = sprintf("val:%012d", i)
            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n", length(k), k, v
        }
    }'
}
