#!/usr/bin/env bash
# The outbox under load (issue: the outbox over months and under bursts), against
# the test harness's MySQL server and broker; see events-kafka/examples/outbox_bench.rs.
#   drain:     a backlog of DRAIN events written with no relay, then drained while
#              32 writers go on at full speed (events/s, backlog, oldest unsent age).
#   retention: MUTATIONS mutations in phases of a tenth, alternately without
#              purging and with a 20 s retention purged every 2 s (outbox size,
#              checkout p50/p99 per 10 s, then both kinds of phase side by side).
# Usage: bench/outbox.sh [DRAIN=100000] [MUTATIONS=1000000] [mariadb|mysql]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DRAIN=${1:-100000}
MUTATIONS=${2:-1000000}
SERVER=${3:-mariadb}
scripts/services.sh up >/dev/null
cargo build -q --release --locked -p events-kafka --example outbox_bench
./target/release/examples/outbox_bench drain "$DRAIN" "$SERVER"
./target/release/examples/outbox_bench retention "$MUTATIONS" "$SERVER"
