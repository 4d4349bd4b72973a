#!/usr/bin/env bash
# Subscription delivery (issue 19): N graphql-transport-ws subscribers on gateway A,
# M checkouts sent to A (same instance) and to B (cross instance: A holds the relay
# lease, so B's commits reach it through the outbox poll); then memory per idle
# subscriber with IDLE subscribers on a fresh A.
# Usage: bench/subscribers.sh [N=1000] [M=20] [IDLE=10000]
# Prints delivered/expected, p50/p99/max mutation-to-delivery and gateway A's CPU
# per event for each case, and the KiB of RSS per idle subscriber. Real services
# from scripts/services.sh.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
N=${1:-1000}
M=${2:-20}
IDLE=${3:-10000}
PORT_A=4110
PORT_B=4111
bench_services
export MYSQL_DATABASE=central-library-bench MONGO_DATABASE=central-library-bench
cargo build -q --release -p gateway --bins --example subscribers
./target/release/seed --reset >/dev/null

export USER_TOKEN LIBRARIAN_TOKEN UPC=9000000020
USER_TOKEN=$(login user3 password3)
LIBRARIAN_TOKEN=$(login user2 password2)
# One user opens every socket here.
export WS_MAX_SOCKETS_PER_USER=100000 WS_MAX_SOCKETS=100000

lease_held() { curl -fsS "http://127.0.0.1:$1/metrics" | grep -q '^outbox_relay_lease_held 1'; }

start_gateway $PORT_A a.log; A=$GW
until lease_held $PORT_A; do sleep 0.05; done
start_gateway $PORT_B b.log

# One case: subscribers on A, mutations to PORT; also A's CPU per event (its
# fan-out to N subscribers, plus the subscribers' set-up, which is small).
delivery() {
  local before after
  before=$(cpu_ticks "$A")
  ./target/release/examples/subscribers "ws://127.0.0.1:$PORT_A/graphql" "http://127.0.0.1:$1/graphql" "$N" "$M"
  after=$(cpu_ticks "$A")
  echo "  gateway A CPU: $(( (after - before) * 1000 / $(getconf CLK_TCK) / M )) ms per event"
}
echo "subscribers=$N mutations=$M cores=$(nproc)"
printf 'same instance:  '
delivery $PORT_A
printf 'cross instance: '
delivery $PORT_B

# Memory: a fresh instance per stage (connected, initialised, subscribed), IDLE
# subscribers that stay open; the RSS they add, per subscriber.
rss() { awk '/VmRSS/ {print $2}' "/proc/$A/status"; }
kill "$A"; wait "$A" 2>/dev/null || true
for stage in connect init subscribe; do
  start_gateway $PORT_A "idle-$stage.log"; A=$GW
  before=$(rss)
  rm -f "$WORK/hold" "$WORK/idle.txt"; mkfifo "$WORK/hold"
  IDLE_STAGE=$stage ./target/release/examples/subscribers "ws://127.0.0.1:$PORT_A/graphql" \
    "http://127.0.0.1:$PORT_A/graphql" "$IDLE" 0 <"$WORK/hold" >"$WORK/idle.txt" &
  CLIENT=$!
  PIDS+=("$CLIENT")
  exec 4>"$WORK/hold"
  until grep -q '^open' "$WORK/idle.txt" 2>/dev/null; do sleep 0.1; done
  sleep 1 # let the last subscriptions settle (a measurement, not a synchronisation)
  after=$(rss)
  echo "idle $stage: $(cat "$WORK/idle.txt"); RSS $((before / 1024)) MB -> $((after / 1024)) MB: $(( (after - before) / IDLE )) KiB each"
  exec 4>&-
  wait "$CLIENT" 2>/dev/null || true
  kill "$A"; wait "$A" 2>/dev/null || true
done
