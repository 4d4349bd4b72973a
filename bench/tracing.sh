#!/usr/bin/env bash
# What traces cost (issue 18): the checkouts page (USER token) with traces off, sampled
# at 1 % and at 100 %, exported over OTLP/HTTP to a local sink. The three run side by
# side in each of ROUNDS rounds (this machine's speed drifts between minutes: only
# ratios within a round are stable); prints req/s, p99 and CPU per request for each,
# and the medians of their ratios to "off".
# Usage: bench/tracing.sh [DURATION_SECONDS=10] [CONNECTIONS=32] [ROUNDS=3]
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DURATION=${1:-10}
CONNECTIONS=${2:-32}
ROUNDS=${3:-3}
PORT=4120
SINK=4318
bench_services mariadb kafka keys
fast_mongo 27019
export MYSQL_DATABASE=central-library-bench MONGO_DATABASE=central-library-bench
cargo build -q --release -p gateway --bins
./target/release/seed --reset --checkouts 421 >/dev/null
TOKEN=$(login user3 password3)
export TOKEN QUERY='{ checkouts(next: 50) { id patron { firstName } book { title } } }'
python3 bench/otlp_sink.py $SINK >"$WORK/sink.log" 2>&1 &
SINK_PID=$!
PIDS+=($SINK_PID)
hz=$(getconf CLK_TCK)

measure() { # mode round; appends "mode rps p99 cpu_ms" to $WORK/results
  local mode=$1 round=$2
  (
    unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG
    case $mode in
      1%) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK \
            OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 ;;
      100%) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK ;;
    esac
    start_gateway $PORT "$mode-$round.log"
    wrk -t2 -c"$CONNECTIONS" -d2s -s bench/graphql.lua "http://127.0.0.1:$PORT/graphql" >/dev/null
    local before after requests
    before=$(cpu_ticks "$GW")
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/graphql.lua \
      "http://127.0.0.1:$PORT/graphql" >"$WORK/$mode-$round.txt"
    after=$(cpu_ticks "$GW")
    kill "$GW"; wait "$GW" 2>/dev/null || true
    requests=$(awk '/requests in/ {print $1}' "$WORK/$mode-$round.txt")
    errors=$(awk '/Non-2xx/ {print $5}' "$WORK/$mode-$round.txt"); errors=${errors:-0}
    [[ $errors == 0 ]] || { echo "$mode: $errors non-2xx responses"; exit 1; }
    echo "$mode $(awk '/Requests\/sec/ {print $2}' "$WORK/$mode-$round.txt") \
$(awk '$1=="99%" {print $2}' "$WORK/$mode-$round.txt") \
$(python3 -c "print(round(($after-$before)*1000/$hz/$requests, 3))")" >>"$WORK/results"
  )
  tail -1 "$WORK/results" | awk -v r="$round" '{printf "round %d %-5s %9s req/s  p99 %8s  cpu/req %s ms\n", r, $1, $2, $3, $4}'
}

echo "connections=$CONNECTIONS duration=${DURATION}s rounds=$ROUNDS cores=$(nproc)"
: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  for mode in off 1% 100%; do measure "$mode" "$round"; done
done
kill -TERM $SINK_PID; wait $SINK_PID 2>/dev/null || true
cat "$WORK/sink.log"
python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
by = {}
for mode, rps, p99, cpu in rows:
    by.setdefault(mode, []).append((float(rps), p99, float(cpu)))
off = by["off"]
for mode in ("1%", "100%"):
    runs = by[mode]
    rps = statistics.median(r[0] / o[0] for r, o in zip(runs, off))
    cpu = statistics.median(r[2] / o[2] for r, o in zip(runs, off))
    print(f"{mode:>5} vs off (median of {len(runs)} rounds): throughput x{rps:.2f}, CPU per request x{cpu:.2f}")
print("off: median %.0f req/s, %.3f ms CPU per request" % (
    statistics.median(o[0] for o in off), statistics.median(o[2] for o in off)))
PY
