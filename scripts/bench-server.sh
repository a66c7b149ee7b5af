#!/usr/bin/env bash
# Benchmark rf-server against Debian's redis-server, same settings, same run.
#
# Prints req/s of `redis-benchmark -c 50 -n 300000 -t set,get,incr,lpush,lrange_100,hset,zadd`
# plus `evalsha` (EVALSHA of a small write script: INCR + EXPIRE) and `fcall` (the same as a
# function)
# at -P 1 and -P 16 for both servers with the ratio rf/redis, then the memory cost of 1M keys
# `key:NNNNNNN` -> 16-byte values (VmRSS delta / keys) for both with the ratio.
# Targets (issue 3): every throughput ratio >= 1.3, memory ratio <= 0.9. This is a benchmark:
# it reports, it never fails on a ratio. On a busy machine the throughput ratios are noisy:
# RF_BENCH_SERVER_BIN=/usr/bin/redis-server (redis against itself) shows how noisy.
#
# Environment:
#   RF_BENCH_SERVER_BIN   server binary to compare with redis (default: cargo build --release,
#                         target/release/rf-server); /usr/bin/redis-server checks the script itself
#   RF_BENCH_REDIS_BIN    reference binary (default /usr/bin/redis-server)
#   RF_BENCH_REQUESTS     -n per test (default 300000)
#   RF_BENCH_KEYS         keys for the memory test (default 1000000)
#   RF_BENCH_TESTS        -t list (default set,get,incr,lpush,lrange_100,hset,zadd,evalsha,fcall;
#                         evalsha and fcall are this script's, not redis-benchmark's)
#   RF_BENCH_ROUNDS       alternating rounds per test, best kept (default 2)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/bench/lib.sh
source "$here/bench/lib.sh"

redis_bin="${RF_BENCH_REDIS_BIN:-/usr/bin/redis-server}"
requests="${RF_BENCH_REQUESTS:-300000}"
keys="${RF_BENCH_KEYS:-1000000}"
tests="${RF_BENCH_TESTS:-set,get,incr,lpush,lrange_100,hset,zadd,evalsha,fcall}"
clients=50

for tool in redis-benchmark redis-cli awk; do
    command -v "$tool" >/dev/null || die "$tool is required (apt-get install redis-tools gawk)"
done
[ -x "$redis_bin" ] || die "reference server $redis_bin not found (apt-get install redis-server)"

if [ -n "${RF_BENCH_SERVER_BIN:-}" ]; then
    rf_bin="$RF_BENCH_SERVER_BIN"
else
    log "building rf-server (release)"
    (cd "$root" && cargo build --release --bin rf-server) >&2
    rf_bin="$root/target/release/rf-server"
fi
[ -x "$rf_bin" ] || die "server binary $rf_bin not found"

work="$(mktemp -d "${TMPDIR:-/tmp}/rf-bench.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# start_server NAME BIN -> sets ${NAME}_port and ${NAME}_pid
start_server() {
    local name="$1" bin="$2" port dir pid _
    dir="$work/$name"
    mkdir -p "$dir"
    # A probed port can still be taken before the bind: a few attempts.
    for _ in 1 2 3; do
        port="$(free_port)"
        # Identical settings for both; no persistence.
        "$bin" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
            --daemonize no --protected-mode yes >"$dir/server.log" 2>&1 &
        pid=$!
        pids+=("$pid")
        if wait_ready "$port" "$pid" "$dir/server.log"; then
            printf -v "${name}_port" '%s' "$port"
            printf -v "${name}_pid" '%s' "$pid"
            log "$name: $bin pid $pid port $port"
            return 0
        fi
        kill "$pid" 2>/dev/null || true
    done
    die "$name ($bin) did not start"
}

redis_port="" redis_pid="" rf_port="" rf_pid="" small_port="" small_pid=""
start_server redis "$redis_bin"
start_server rf "$rf_bin"

# ---------------------------------------------------------------- memory
log "generating $keys SET commands"
payload="$work/load.resp"
gen_load "$keys" >"$payload"

measure_memory() {
    local name="$1" port="$2" pid="$3" before after loaded
    redis-cli -p "$port" FLUSHALL >/dev/null
    sleep 1
    before="$(rss_kb "$pid")"
    log "$name: loading $keys keys"
    redis-cli -p "$port" --pipe <"$payload" >"$work/$name.pipe.log" 2>&1 \
        || { cat "$work/$name.pipe.log" >&2; die "$name: redis-cli --pipe failed"; }
    loaded="$(redis-cli -p "$port" DBSIZE)"
    sleep 1
    after="$(rss_kb "$pid")"
    [ "$loaded" = "$keys" ] || log "WARNING: $name holds $loaded keys, expected $keys"
    awk -v b="$before" -v a="$after" -v k="$keys" 'BEGIN { printf "%.1f", (a - b) * 1024 / k }'
    printf ' %s %s\n' "$before" "$after"
}

read -r redis_bpk redis_before redis_after < <(measure_memory redis "$redis_port" "$redis_pid")
read -r rf_bpk rf_before rf_after < <(measure_memory rf "$rf_port" "$rf_pid")

# Small collections (not a target of the issue, reported so the gap stays visible):
# 200k keys of one element each, per type.
small_keys=200000
gen_small() {  # <HSET|ZADD|SADD|RPUSH>
    awk -v c="$1" -v n="$small_keys" 'BEGIN { for (i = 0; i < n; i++) { k = sprintf("%s:%07d", c, i)
        if (c == "HSET") printf "*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$5\r\nfield\r\n$5\r\nvalue\r\n", length(k), k
        else if (c == "ZADD") printf "*4\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n$1\r\n1\r\n$6\r\nmember\r\n", length(k), k
        else printf "*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$6\r\nmember\r\n", length(c), c, length(k), k } }'
}
declare -A small_bpk
for cmd in HSET ZADD SADD RPUSH; do
    for side in redis rf; do
        # a fresh server each time: memory freed earlier would hide part of the growth
        bin="$redis_bin"; [ "$side" = rf ] && bin="$rf_bin"
        start_server small "$bin"
        before="$(rss_kb "$small_pid")"
        gen_small "$cmd" | redis-cli -p "$small_port" --pipe >/dev/null 2>&1 || log "WARNING: $side: loading $cmd keys failed"
        sleep 0.5
        small_bpk["$side,$cmd"]="$(awk -v b="$before" -v a="$(rss_kb "$small_pid")" -v k="$small_keys" 'BEGIN { printf "%.0f", (a - b) * 1024 / k }')"
        kill "$small_pid" 2>/dev/null || true
        wait "$small_pid" 2>/dev/null || true
    done
done
for port in "$redis_port" "$rf_port"; do redis-cli -p "$port" FLUSHALL >/dev/null; done

# The scripting tests: a small write script (INCR + EXPIRE) by EVALSHA, and as a function.
bench_script="redis.call('incr', KEYS[1]) return redis.call('expire', KEYS[1], ARGV[1])"
bench_library="$(printf '#!lua name=benchlib\nredis.register_function(%s, function(keys, args) %s end)' "'bump'" "redis.call('incr', keys[1]) return redis.call('expire', keys[1], args[1])")"
for port in "$redis_port" "$rf_port"; do
    bench_sha="$(redis-cli -p "$port" SCRIPT LOAD "$bench_script")"
    redis-cli -p "$port" FUNCTION LOAD REPLACE "$bench_library" >/dev/null
done
# redis-benchmark arguments of a test: -t NAME, or the command of a scripting test.
bench_args() {
    case "$1" in
        evalsha) echo "-r 100000 EVALSHA $bench_sha 1 key:__rand_int__ 100" ;;
        fcall) echo "-r 100000 FCALL bump 1 key:__rand_int__ 100" ;;
        *) echo "-t $1" ;;
    esac
}

# ---------------------------------------------------------------- throughput
# The machine is shared: each test runs against redis and rf alternately, RF_BENCH_ROUNDS
# times (order swapped every round), and the best req/s of each side is kept.
rounds="${RF_BENCH_ROUNDS:-2}"
declare -A rps cpu_ns client_busy
# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
run_bench() {
    local name="$1" port="$2" pipeline="$3" test="$4" pid="$5" out="$work/bench.csv" value c0 c1 per_req
    c0="$(cpu_ticks "$pid")"
    local t0 t1 client_ticks busy
    t0="$(date +%s%N)"
    # Bounded: -n is fixed; timeout guards against a server that stops answering. The
    # subshell reports the CPU its finished children used (the client's own load).
    client_ticks="$(
        # shellcheck disable=SC2046 # bench_args is word-split on purpose
        if ! timeout 900 redis-benchmark -p "$port" -c "$clients" -n "$requests" -P "$pipeline" \
            -q --csv $(bench_args "$test") >"$out" 2>"$out.err"; then
            log "WARNING: redis-benchmark -t $test -P $pipeline against $name failed: $(tail -3 "$out.err")"
        fi
        awk '{ print $16 + $17 }' "/proc/$BASHPID/stat"
    )"
    t1="$(date +%s%N)"
    c1="$(cpu_ticks "$pid")"
    # How busy the single-threaded client was (% of one core): near 100 it, not the
    # server, sets the req/s of both servers.
    busy="$(awk -v t="$client_ticks" -v w=$(( t1 - t0 )) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t / hz * 1e11 / w }')"
    local bkey="$name,$pipeline"
    client_busy["$bkey"]="$(awk -v a="${client_busy["$bkey"]:-0}" -v b="$busy" 'BEGIN { print (b + 0 > a + 0) ? b : a }')"
    # Server CPU per request: far less sensitive than req/s to what else the machine runs.
    per_req="$(awk -v a="$c0" -v b="$c1" -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (b - a) * 1e9 / hz / n }')"
    local ckey="$name,$pipeline,$test" cold="${cpu_ns["$name,$pipeline,$test"]:-}"
    cpu_ns["$ckey"]="$(awk -v a="$cold" -v b="$per_req" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }')"
    while IFS=, read -r name_of_test value; do
        local key="$name,$pipeline,$name_of_test" old="${rps["$name,$pipeline,$name_of_test"]:-0}"
        rps["$key"]="$(awk -v a="$old" -v b="$value" 'BEGIN { print (b + 0 > a + 0) ? b : a }')"
        case " ${names[*]:-} " in *" $name_of_test "*) ;; *) names+=("$name_of_test") ;; esac
    done < <(awk -F'","' 'NR > 1 { gsub(/"/, "", $1); gsub(/"/, "", $2); gsub(/ /, "_", $1); print $1 "," $2 }' "$out")
    redis-cli -p "$port" FLUSHALL >/dev/null || true
}

names=()
IFS=, read -r -a test_list <<<"$tests"
for pipeline in 1 16; do
    for test in "${test_list[@]}"; do
        log "-t $test -P $pipeline: $rounds rounds each (-c $clients -n $requests)"
        for round in $(seq 1 "$rounds"); do
            if [ $((round % 2)) -eq 1 ]; then
                run_bench redis "$redis_port" "$pipeline" "$test" "$redis_pid"
                run_bench rf "$rf_port" "$pipeline" "$test" "$rf_pid"
            else
                run_bench rf "$rf_port" "$pipeline" "$test" "$rf_pid"
                run_bench redis "$redis_port" "$pipeline" "$test" "$redis_pid"
            fi
        done
    done
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo
echo "rf-server benchmark: $rf_bin vs $redis_bin (redis-benchmark -c $clients -n $requests, best of $rounds alternating rounds)"
printf '%-40s %4s %14s %14s %8s\n' test P "redis req/s" "rf req/s" "rf/redis"
for pipeline in 1 16; do
    for test in "${names[@]}"; do
        r="${rps["redis,$pipeline,$test"]:-}"
        f="${rps["rf,$pipeline,$test"]:-}"
        printf '%-40s %4s %14s %14s %8s\n' "${test//_/ }" "$pipeline" "${r:-n/a}" "${f:-n/a}" "$(ratio "$f" "$r")"
    done
done
echo
for pipeline in 1 16; do
    for test in "${names[@]}"; do
        case "$test" in LPUSH_\(needed*) continue ;; esac
        short="$(printf '%s' "$test" | awk -F_ '{ print tolower($1 ($2 ~ /^[0-9]+$/ ? "_" $2 : "")) }')"
        echo "ratio throughput $short P$pipeline: $(ratio "${rps["rf,$pipeline,$test"]:-}" "${rps["redis,$pipeline,$test"]:-}") (target >= 1.3)"
    done
done
echo
echo "the client: redis-benchmark's busiest run, % of one core (it is single-threaded; near 100 it"
echo "caps the req/s of either server, and the ratios above say little about the servers)"
for pipeline in 1 16; do
    echo "  -P $pipeline: against redis ${client_busy["redis,$pipeline"]:-n/a}%, against rf ${client_busy["rf,$pipeline"]:-n/a}%"
done
echo
echo "server CPU per request (user+sys ns, lowest of $rounds rounds; redis/rf > 1 means rf uses less CPU)"
printf '%-14s %4s %10s %10s %9s\n' test P redis rf redis/rf
for pipeline in 1 16; do
    for test in "${test_list[@]}"; do
        r="${cpu_ns["redis,$pipeline,$test"]:-}"
        f="${cpu_ns["rf,$pipeline,$test"]:-}"
        printf '%-14s %4s %10s %10s %9s\n' "$test" "$pipeline" "${r:-n/a}" "${f:-n/a}" "$(ratio "$r" "$f")"
    done
done
echo
echo "memory: $keys keys key:NNNNNNN -> 16-byte values (VmRSS delta)"
printf '  redis: %s bytes/key (RSS %s kB -> %s kB)\n' "$redis_bpk" "$redis_before" "$redis_after"
printf '  rf:    %s bytes/key (RSS %s kB -> %s kB)\n' "$rf_bpk" "$rf_before" "$rf_after"
echo "ratio memory bytes/key: $(ratio "$rf_bpk" "$redis_bpk") (target <= 0.9)"
echo "small collections, $small_keys keys of one element (bytes/key, VmRSS delta; no target):"
for cmd in HSET ZADD SADD RPUSH; do
    printf '  %-6s redis %5s  rf %5s  rf/redis %s\n' "$cmd" "${small_bpk["redis,$cmd"]}" "${small_bpk["rf,$cmd"]}" "$(ratio "${small_bpk["rf,$cmd"]}" "${small_bpk["redis,$cmd"]}")"
done
