#!/usr/bin/env bash
# The gateway's benchmarks (DEVELOPERS.md targets), on this machine's real services:
#   throughput, p99 latency, CPU per request and peak RSS for
#   checkouts(next:50){id patron{firstName} book{title}} (USER token) and {books{title}};
#   start-to-ready; idle SIGTERM-to-exit.
# Usage: bench/run.sh [DURATION_SECONDS=20] [CONNECTIONS=32] [CHECKOUTS=421]
# MongoDB: the Rust build of the wire server (secantusd-rs) on port 27018, so the
# database is not the bottleneck; installed into the tool cache on first use.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DURATION=${1:-20}
CONNECTIONS=${2:-32}
CHECKOUTS=${3:-421}
PORT=4100
MONGO_PORT=27018
CACHE=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/central-library}
SECANTUS_RS_VERSION=0.5.3-beta.196
RS="$CACHE/secantus-mdb-$SECANTUS_RS_VERSION/bin/secantusd-rs"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
scripts/services.sh up mysql kafka keys >/dev/null
set -a; . .services/env; set +a
if [[ ! -x $RS ]]; then
  command -v cmake >/dev/null || apt-get install -y -qq cmake >/dev/null
  echo "installing secantus-mdb $SECANTUS_RS_VERSION (about 4 minutes, once)"
  CARGO_TARGET_DIR="$CACHE/build/secantus-mdb" cargo install secantus-mdb --version "$SECANTUS_RS_VERSION" \
    --locked --ignore-rust-version --root "$CACHE/secantus-mdb-$SECANTUS_RS_VERSION" >"$CACHE/secantus-install.log" 2>&1
fi
(cd "$WORK" && exec "$RS" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path :memory: >"$WORK/mongo.log" 2>&1) &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$MONGO_PORT) 2>/dev/null && break; sleep 0.1; done

export MONGO_URL="mongodb://127.0.0.1:$MONGO_PORT" MYSQL_DATABASE=central-library-bench MONGO_DATABASE=central-library-bench
cargo build -q --release -p gateway --bins --example ceiling
./target/release/seed --reset --checkouts "$CHECKOUTS" >/dev/null

TOKEN=$(curl -fsS -XPOST "$DEV_KEY_SERVICE_URL/login" -H 'content-type: application/json' \
  -d '{"username":"user3","password":"password3"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"])')
export TOKEN

start_ns=$(date +%s%N)
GRAPHQL_SERVER_PORT=$PORT RUST_LOG=warn ./target/release/gateway >"$WORK/gateway.log" 2>&1 &
GW=$!
PIDS+=($GW)
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/health/ready"; do sleep 0.005; done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

cpu_ticks() { awk '{print $14 + $15}' "/proc/$GW/stat"; }
hz=$(getconf CLK_TCK)

run() { # name query
  local name=$1 query=$2
  export QUERY=$query
  # Check the answer once before measuring.
  curl -fsS -XPOST "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
    -H "authorization: Bearer $TOKEN" -d "{\"query\":\"$query\"}" | grep -q '"errors"' \
    && { echo "$name: the query returns errors"; exit 1; }
  wrk -t2 -c"$CONNECTIONS" -d2s -s bench/graphql.lua "http://127.0.0.1:$PORT/graphql" >/dev/null
  local before; before=$(cpu_ticks)
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/graphql.lua \
    "http://127.0.0.1:$PORT/graphql" >"$WORK/$name.txt"
  local after; after=$(cpu_ticks)
  local requests rps p99 errors
  requests=$(awk '/requests in/ {print $1}' "$WORK/$name.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$name.txt")
  errors=$(awk '/Non-2xx/ {print $5}' "$WORK/$name.txt"); errors=${errors:-0}
  local cpu_ms; cpu_ms=$(python3 -c "print(round(($after-$before)*1000/$hz/$requests, 3))")
  printf '%-10s %10s req/s  p99 %8s  cpu/req %6s ms  non-2xx %s\n' "$name" "$rps" "$p99" "$cpu_ms" "$errors"
}

echo "checkouts=$CHECKOUTS connections=$CONNECTIONS duration=${DURATION}s cores=$(nproc)"
# The ceiling: the page's three round trips alone, same connectors, no HTTP or GraphQL.
./target/release/examples/ceiling "$DURATION" "$CONNECTIONS"
run checkouts '{ checkouts(next: 50) { id patron { firstName } book { title } } }'
run books '{ books { title } }'
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$GW/status")
echo "peak RSS: $((rss_kb / 1024)) MB"
echo "start-to-ready: ${ready_ms} ms"
stop_ns=$(date +%s%N)
kill -TERM "$GW"
while kill -0 "$GW" 2>/dev/null; do sleep 0.002; done
echo "idle SIGTERM-to-exit: $(( ($(date +%s%N) - stop_ns) / 1000000 )) ms"

# Under load: SIGTERM while wrk runs; in-flight requests must still complete.
GRAPHQL_SERVER_PORT=$PORT RUST_LOG=warn ./target/release/gateway >"$WORK/gateway2.log" 2>&1 &
GW=$!
PIDS+=($GW)
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/health/ready"; do sleep 0.005; done
export QUERY='{ checkouts(next: 50) { id patron { firstName } book { title } } }'
wrk -t2 -c"$CONNECTIONS" -d6s -s bench/graphql.lua "http://127.0.0.1:$PORT/graphql" >"$WORK/stop.txt" 2>&1 &
WRK=$!
sleep 2
stop_ns=$(date +%s%N)
kill -TERM "$GW"
while kill -0 "$GW" 2>/dev/null; do sleep 0.002; done
echo "SIGTERM-to-exit under load: $(( ($(date +%s%N) - stop_ns) / 1000000 )) ms (exit after in-flight requests)"
wait "$WRK" || true
awk '/Non-2xx/ {print "  non-2xx during the stop: " $5}' "$WORK/stop.txt"
