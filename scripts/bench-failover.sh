#!/usr/bin/env bash
# Failover drill: Debian redis-server + redis-sentinel versus Debian redis-server +
# rf-sentinel, same machine, same run, at down-after 1000 and 5000 ms. Per system and
# down-after, one group goes through several failovers in a row (--rounds, default 3):
# each round SIGKILLs the current master soon after the previous switch and restarts it
# once the sentinels have switched, so a sentinel that holds a second failover back shows.
# Prints per system: switch time (SIGKILL -> all sentinels report the new master), write
# gap (last acked write before -> first acked write after, writer uses SET + WAIT 1),
# acked writes lost, rejoin time (old master restarted -> replica of the new master, link
# up), and the Debian/rf ratios.
#
# Also the writer's acknowledged writes per second outside the write gap (a round of a
# faster system is shorter, so acked writes per round are not comparable; per second are).
#
# Usage: scripts/bench-failover.sh [--rounds N] [--down-after 1000,5000] [--release]
#        RF_TEST_SERVER_BIN=target/debug/rf-server scripts/bench-failover.sh   # our server
#        scripts/bench-failover.sh --wait-latency [N]   # only SET + WAIT 1 latency, Debian
#                                       # redis-server pair vs rf-server pair (no sentinels)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
WAIT_LATENCY=
DOWN_AFTER=1000,5000
PROFILE=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --down-after) DOWN_AFTER=$2; shift 2 ;;
    --release) PROFILE=(--release); shift ;;
    --wait-latency)
      WAIT_LATENCY=3000
      if [[ ${2:-} =~ ^[0-9]+$ ]]; then WAIT_LATENCY=$2; shift; fi
      shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for bin in redis-server redis-sentinel; do
  command -v "$bin" >/dev/null || { echo "$bin not found (apt-get install redis-server redis-sentinel)" >&2; exit 1; }
done
if [ -n "$WAIT_LATENCY" ]; then
  cargo build --quiet --bin rf-server "${PROFILE[@]}"
  dir=target/debug; [ ${#PROFILE[@]} -gt 0 ] && dir=target/release
  python3 - "$WAIT_LATENCY" "$dir/rf-server" <<'PY'
import socket, statistics, subprocess, sys, tempfile, time
import redis
n, rf_bin = int(sys.argv[1]), sys.argv[2]
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
def start(binary, port, d, master=None):
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d,
            "--repl-diskless-sync-delay", "0", "--logfile", f"{d}/{port}.log"]
    if master: args += ["--replicaof", "127.0.0.1", str(master)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def measure(binary):
    d = tempfile.mkdtemp(); mp, rp = free_port(), free_port()
    procs = [start(binary, mp, d)]
    try:
        time.sleep(0.3); procs.append(start(binary, rp, d, mp))
        m, r = redis.Redis(port=mp), redis.Redis(port=rp)
        for _ in range(200):
            try:
                if r.info("replication").get("master_link_status") == "up": break
            except redis.RedisError: pass
            time.sleep(0.05)
        lat, acked, t0 = [], 0, time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            p = m.pipeline(transaction=False); p.set(f"k{i}", i); p.execute_command("WAIT", 1, 200)
            acked += p.execute()[1] >= 1
            lat.append((time.perf_counter() - t) * 1000)
        elapsed = time.perf_counter() - t0
        lat.sort()
        return n / elapsed, acked, lat[n // 2], lat[int(n * 0.99)], lat[-1]
    finally:
        for p in procs: p.kill(); p.wait()
print(f"SET + WAIT 1 200, one client, {n} round trips")
print(f"{'server':8} {'pairs/s':>9} {'acked':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
for name, b in (("debian", "/usr/bin/redis-server"), ("rf", rf_bin)):
    rate, acked, p50, p99, mx = measure(b)
    print(f"{name:8} {rate:9.0f} {acked:7d} {p50:8.3f} {p99:8.3f} {mx:8.3f}")
PY
  exit 0
fi
# the data servers: Debian's unless RF_TEST_SERVER_BIN names ours (the tests' default is ours)
export RF_TEST_SERVER_BIN=${RF_TEST_SERVER_BIN:-/usr/bin/redis-server}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "building and running the drill (rounds=$ROUNDS down-after=$DOWN_AFTER server=$RF_TEST_SERVER_BIN)..." >&2
BENCH_ROUNDS=$ROUNDS BENCH_DOWN_AFTER=$DOWN_AFTER BENCH_SYSTEMS=debian,rf \
  cargo test "${PROFILE[@]}" --quiet --test sentinel_bench -- --ignored --nocapture --test-threads 1 2>/dev/null \
  | grep --line-buffered -o 'RESULT .*' | tee "$out" >&2
awk '
function kv(s,   a) { split(s, a, "="); return a[2] }
{
  sys = kv($2); d = kv($3); key = sys "@" d
  n[key]++; sw[key] += kv($5); gap[key] += kv($6); lost[key] += kv($7)
  r = kv($9); if (r == "timeout") { rt[key]++ } else { rej[key] += r; rn[key]++ }
  rate[key] += kv($11)
  ds[d] = 1
}
END {
  printf "\n%-8s %-11s %6s %12s %12s %10s %12s %14s\n", "system", "down-after", "rounds", "switch ms", "write gap ms", "acked lost", "rejoin ms", "acked writes/s"
  for (d in ds) for (s = 0; s < 2; s++) {
    sys = (s == 0) ? "debian" : "rf"; key = sys "@" d
    if (!n[key]) continue
    m_sw[key] = sw[key] / n[key]; m_gap[key] = gap[key] / n[key]
    m_rej[key] = rn[key] ? rej[key] / rn[key] : -1
    printf "%-8s %-11s %6d %12.0f %12.0f %10d %12s %14.0f\n", sys, d, n[key], m_sw[key], m_gap[key], lost[key], (rn[key] ? sprintf("%.0f", m_rej[key]) : "timeout") (rt[key] ? " (" rt[key] " timeouts)" : ""), rate[key] / n[key]
  }
  printf "\nratios debian/rf (higher = rf faster)\n"
  for (d in ds) {
    a = "debian@" d; b = "rf@" d
    if (!n[a] || !n[b]) continue
    printf "down-after %-6s switch x%.2f   write gap x%.2f   rejoin x%s   gap over down-after: debian +%.0f ms, rf +%.0f ms\n", d, m_sw[a] / m_sw[b], m_gap[a] / m_gap[b], (m_rej[b] > 0 && m_rej[a] > 0) ? sprintf("%.1f", m_rej[a] / m_rej[b]) : "n/a", m_gap[a] - d, m_gap[b] - d
  }
}' "$out"
