# Set-up shared by the benchmark scripts (sourced, not run): the repository root as
# the working directory, a scratch directory and the processes started (both
# removed on exit), the harness's services and their variables, and helpers.
# Pinned: the MongoDB-wire server's Rust build used where MongoDB must not be the
# bottleneck.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/central-library}
SECANTUS_RS_VERSION=0.5.3-beta.196
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# Starts SERVICES (names for scripts/services.sh, default all) and exports their
# variables.
bench_services() {
  command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
  scripts/services.sh up "$@" >/dev/null
  set -a; . .services/env; set +a
}

# Runs the Rust MongoDB-wire server in memory on PORT (installed on first use) and
# points MONGO_URL at it.
fast_mongo() {
  local port=$1 rs="$CACHE/secantus-mdb-$SECANTUS_RS_VERSION/bin/secantusd-rs"
  if [[ ! -x $rs ]]; then
    command -v cmake >/dev/null || apt-get install -y -qq cmake >/dev/null
    echo "installing secantus-mdb $SECANTUS_RS_VERSION (about 4 minutes, once)"
    CARGO_TARGET_DIR="$CACHE/build/secantus-mdb" cargo install secantus-mdb --version "$SECANTUS_RS_VERSION" \
      --locked --ignore-rust-version --root "$CACHE/secantus-mdb-$SECANTUS_RS_VERSION" >"$CACHE/secantus-install.log" 2>&1
  fi
  (cd "$WORK" && exec "$rs" --host 127.0.0.1 --port "$port" --storage-path :memory: >"$WORK/mongo.log" 2>&1) &
  PIDS+=($!)
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  export MONGO_URL="mongodb://127.0.0.1:$port"
}

# A token from the dev key service: login USER PASSWORD.
login() {
  curl -fsS -XPOST "$DEV_KEY_SERVICE_URL/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$2\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"])'
}

# Starts the release gateway on PORT (log: $WORK/LOG; more variables may be
# exported before) into GW, and waits until it is ready.
start_gateway() {
  GRAPHQL_SERVER_PORT=$1 RUST_LOG=${RUST_LOG:-warn} ./target/release/gateway >"$WORK/$2" 2>&1 &
  GW=$!
  PIDS+=("$GW")
  until curl -fs -o /dev/null "http://127.0.0.1:$1/health/ready"; do sleep 0.005; done
}

# The CPU ticks process PID has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
