#!/usr/bin/env bash
# Hostile requests beside normal traffic (issue: hostile requests buy bounded work):
# normal traffic (the checkouts page, USER token) alone for BASE seconds, then for
# DURATION seconds beside a second client cycling through bench/hostile.lua (huge
# date formats, the largest answer the caps allow, repeated sorts, fresh snapshots,
# unpaged checkouts, deep nesting, forged tokens, 2 MiB bodies). Prints the normal
# traffic's throughput and p99 in both phases, the hostile client's status mix, and
# the gateway's peak RSS (target: under 100 MB).
# Usage: bench/hostile.sh [DURATION_SECONDS=60] [BASE_SECONDS=15] [CONNECTIONS=16]
# Real services from the test harness (MariaDB, its MongoDB-wire server, Kafka, keys).
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DURATION=${1:-60}
BASE=${2:-15}
CONNECTIONS=${3:-16}
PORT=4101
bench_services mariadb mongo kafka keys
export MYSQL_DATABASE=central-library-bench MONGO_DATABASE=central-library-hostile
cargo build -q --release -p gateway --bins
./target/release/seed --reset --checkouts 421 >/dev/null

TOKEN=$(login user3 password3)
export TOKEN
start_gateway $PORT gateway.log

export QUERY='{ checkouts(next: 50) { id patron { firstName } book { title } } }'
normal() { # seconds output
  wrk -t1 -c"$CONNECTIONS" -d"$1s" --latency -s bench/graphql.lua "http://127.0.0.1:$PORT/graphql" >"$2"
}
report() { # label file
  printf '%-28s %8s req/s  p99 %8s  non-2xx %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' "$2")" "$(awk '$1=="99%" {print $2}' "$2")" \
    "$(awk '/Non-2xx/ {print $5}' "$2" | grep . || echo 0)"
}

normal "$BASE" "$WORK/base.txt"
report "normal traffic alone" "$WORK/base.txt"
base_rss=$(awk '/VmHWM/ {print $2}' "/proc/$GW/status")

wrk -t1 -c4 -d"${DURATION}s" -s bench/hostile.lua "http://127.0.0.1:$PORT/graphql" >"$WORK/hostile.txt" 2>&1 &
HOSTILE=$!
normal "$DURATION" "$WORK/beside.txt"
wait "$HOSTILE" || true
report "normal beside hostile" "$WORK/beside.txt"
printf '%-28s %8s req/s (%s requests, non-2xx %s: the 413s, 401s and 400s are the refusals)\n' "hostile client" \
  "$(awk '/Requests\/sec/ {print $2}' "$WORK/hostile.txt")" \
  "$(awk '/requests in/ {print $1}' "$WORK/hostile.txt")" \
  "$(awk '/Non-2xx/ {print $5}' "$WORK/hostile.txt" | grep . || echo 0)"
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$GW/status")
now_kb=$(awk '/VmRSS/ {print $2}' "/proc/$GW/status")
echo "peak RSS: $((base_rss / 1024)) MB after normal traffic alone, $((rss_kb / 1024)) MB in all (now $((now_kb / 1024)) MB); target under 100 MB"
kill -0 "$GW" 2>/dev/null && echo "gateway still up" || { echo "gateway died"; tail -20 "$WORK/gateway.log"; exit 1; }
