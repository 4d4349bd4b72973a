#!/usr/bin/env bash
# The gateway's benchmarks (DEVELOPERS.md targets), on this machine's real services:
#   throughput, p99 latency, CPU per request and peak RSS for
#   checkouts(next:50){id patron{firstName} book{title}} (USER token) and {books{title}};
#   start-to-ready; idle SIGTERM-to-exit.
# Usage: bench/run.sh [DURATION_SECONDS=10] [CONNECTIONS=32] [CHECKOUTS=421] [ROUNDS=3]
# MongoDB: the Rust build of the wire server (secantusd-rs) on port 27018, so the
# database is not the bottleneck; installed into the tool cache on first use.
# This machine's speed drifts by up to 40 % from one minute to the next (every
# process's CPU per request moves together), so the checkouts query is measured in
# ROUNDS rounds, each right after the ceiling (the page's three round trips alone,
# same connectors, no HTTP or GraphQL), and each round reports its share of that
# ceiling; the summary line gives the medians.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DURATION=${1:-10}
CONNECTIONS=${2:-32}
CHECKOUTS=${3:-421}
ROUNDS=${4:-3}
PORT=4100
bench_services mariadb kafka keys
fast_mongo 27018
export MYSQL_DATABASE=central-library-bench MONGO_DATABASE=central-library-bench
cargo build -q --release -p gateway --bins --example ceiling
./target/release/seed --reset --checkouts "$CHECKOUTS" >/dev/null

TOKEN=$(login user3 password3)
export TOKEN

# Sends SIGTERM to GW and prints the milliseconds until it has exited.
sigterm_ms() {
  local stop_ns; stop_ns=$(date +%s%N)
  kill -TERM "$GW"
  while kill -0 "$GW" 2>/dev/null; do sleep 0.002; done
  echo $(( ($(date +%s%N) - stop_ns) / 1000000 ))
}

start_ns=$(date +%s%N)
start_gateway $PORT gateway.log
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

hz=$(getconf CLK_TCK)

run() { # name query; sets RPS, P99, CPU_MS
  local name=$1 query=$2
  export QUERY=$query
  # Check the answer once before measuring.
  curl -fsS -XPOST "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
    -H "authorization: Bearer $TOKEN" -d "{\"query\":\"$query\"}" | grep -q '"errors"' \
    && { echo "$name: the query returns errors"; exit 1; }
  wrk -t2 -c"$CONNECTIONS" -d2s -s bench/graphql.lua "http://127.0.0.1:$PORT/graphql" >/dev/null
  local before; before=$(cpu_ticks "$GW")
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/graphql.lua \
    "http://127.0.0.1:$PORT/graphql" >"$WORK/$name.txt"
  local after; after=$(cpu_ticks "$GW")
  local requests errors
  requests=$(awk '/requests in/ {print $1}' "$WORK/$name.txt")
  RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.txt")
  P99=$(awk '$1=="99%" {print $2}' "$WORK/$name.txt")
  errors=$(awk '/Non-2xx/ {print $5}' "$WORK/$name.txt"); errors=${errors:-0}
  CPU_MS=$(python3 -c "print(round(($after-$before)*1000/$hz/$requests, 3))")
  printf '%-10s %10s req/s  p99 %8s  cpu/req %6s ms  non-2xx %s\n' "$name" "$RPS" "$P99" "$CPU_MS" "$errors"
}

echo "checkouts=$CHECKOUTS connections=$CONNECTIONS duration=${DURATION}s rounds=$ROUNDS cores=$(nproc)"
: >"$WORK/rounds"
for round in $(seq 1 "$ROUNDS"); do
  ceiling=$(./target/release/examples/ceiling "$DURATION" "$CONNECTIONS")
  echo "$ceiling"
  run checkouts '{ checkouts(next: 50) { id patron { firstName } book { title } } }'
  # ceiling sets/s, ceiling CPU per set, gateway req/s, p99, gateway CPU per request
  echo "$(awk '{print $2, $5}' <<<"$ceiling") $RPS $P99 $CPU_MS" >>"$WORK/rounds"
  awk '{printf "  round %d: %.0f %% of the ceiling; the gateway adds %.3f ms of CPU to the drivers\n", '"$round"', 100*$3/$1, $5-$2}' \
    <(tail -1 "$WORK/rounds")
done
python3 - "$WORK/rounds" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def ms(wrk_time):  # wrk prints 850.00us, 72.90ms or 1.02s
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if wrk_time.endswith(unit):
            return float(wrk_time[: -len(unit)]) * scale
    raise ValueError(wrk_time)
med = statistics.median
print("median of %d rounds: ceiling %.0f sets/s, checkouts %.0f req/s = %.0f %% of the ceiling, "
      "p99 %.1f ms, CPU %.3f ms/request (ceiling client %.3f ms/set)" % (
    len(rows), med(float(r[0]) for r in rows), med(float(r[2]) for r in rows),
    med(100 * float(r[2]) / float(r[0]) for r in rows), med(ms(r[3]) for r in rows),
    med(float(r[4]) for r in rows), med(float(r[1]) for r in rows)))
PY
run books '{ books { title } }'
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$GW/status")
echo "peak RSS: $((rss_kb / 1024)) MB"
echo "start-to-ready: ${ready_ms} ms"
# Idle: once wrk's connections are closed on the gateway's side too. wrk stops with
# requests in flight; a connection still busy when the stop begins holds it until
# that request ends, rounded up to actix-server's one-second shutdown poll.
while ss -Htn state established state close-wait "( sport = :$PORT )" | grep -q .; do sleep 0.01; done
echo "idle SIGTERM-to-exit: $(sigterm_ms) ms"

# Idle, but a client keeps a kept-alive connection open (as connection pools do).
start_gateway $PORT gateway1.log
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /health/live HTTP/1.1\r\nHost: bench\r\n\r\n' >&3
read -r status_line <&3
echo "idle SIGTERM-to-exit, one kept-alive connection open: $(sigterm_ms) ms (${status_line%$'\r'})"
exec 3<&-

# Under load: SIGTERM while wrk runs; in-flight requests must still complete.
start_gateway $PORT gateway2.log
export QUERY='{ checkouts(next: 50) { id patron { firstName } book { title } } }'
wrk -t2 -c"$CONNECTIONS" -d6s -s bench/graphql.lua "http://127.0.0.1:$PORT/graphql" >"$WORK/stop.txt" 2>&1 &
WRK=$!
sleep 2
echo "SIGTERM-to-exit under load: $(sigterm_ms) ms (exit after in-flight requests)"
wait "$WRK" || true
awk '/Non-2xx/ {print "  non-2xx during the stop: " $5}' "$WORK/stop.txt"
