#!/bin/sh
# Write loop used by the e2e suite (in a client pod on kind, or locally by
# e2e_writes.py simulate). Each iteration opens one connection, runs
#   SET <prefix>:<i> <i>   and   WAIT 1 <wait-ms>
# on it, and prints "ACK <i>" only when the SET succeeded AND at least one replica
# acknowledged it; otherwise "FAIL <i> <replies>". Stops when $STOP_FILE exists or after
# $MAX_WRITES writes. POSIX sh + redis-cli + timeout only (busybox is enough).
# Env: REDIS_HOST, REDIS_PORT (6379), REDISCLI_AUTH (password, optional), KEY_PREFIX (e2e),
#      STOP_FILE (/tmp/stop), MAX_WRITES (100000), INTERVAL (0.05 s), WAIT_MS (2000).
REDIS_PORT="${REDIS_PORT:-6379}"
KEY_PREFIX="${KEY_PREFIX:-e2e}"
STOP_FILE="${STOP_FILE:-/tmp/stop}"
MAX_WRITES="${MAX_WRITES:-100000}"
INTERVAL="${INTERVAL:-0.05}"
WAIT_MS="${WAIT_MS:-2000}"
: "${REDIS_HOST:?REDIS_HOST must be set}"

i=0
echo "START host=$REDIS_HOST port=$REDIS_PORT prefix=$KEY_PREFIX"
while [ ! -e "$STOP_FILE" ] && [ "$i" -lt "$MAX_WRITES" ]; do
  i=$((i + 1))
  replies=$(printf 'SET %s:%d %d\nWAIT 1 %d\n' "$KEY_PREFIX" "$i" "$i" "$WAIT_MS" |
    timeout 5 redis-cli --no-auth-warning -h "$REDIS_HOST" -p "$REDIS_PORT" 2>&1 | tr '\n' ' ')
  # shellcheck disable=SC2086 # split the replies into words on purpose
  set -- $replies
  if [ "${1:-}" = "OK" ] && [ "${2:-0}" -ge 1 ] 2>/dev/null; then
    echo "ACK $i"
  else
    echo "FAIL $i $replies"
  fi
  sleep "$INTERVAL"
done
echo "STOPPED $i"
