#!/usr/bin/env bash
# The real services the tests (and a local gateway) talk to, all on 127.0.0.1:
#   MariaDB (MySQL), the Kafka-API broker nisshi, the MongoDB-wire server secantusd,
#   and the project's own dev key service (auth-jwt).
#
#   scripts/services.sh up [SVC..] install what is missing, start what is stopped, wait
#                                until each answers, write the env file; idempotent.
#                                SVC: mysql mongo kafka keys (default: all)
#   scripts/services.sh down     stop what `up` started (by PID), nothing else
#   scripts/services.sh status   where each listens, and whether it answers
#   scripts/services.sh env      print the env file path
#
# Settings (environment):
#   CL_CACHE_DIR   tool installs, kept across clones  (~/.cache/central-library)
#   CL_STATE_DIR   PIDs, logs, env file of this clone  (<repo>/.services)
#   CL_MONGO_IMPL  py (default, PyPI secantusdb) or rs (the faster Rust build, for
#                  benchmarks; installed on first use, ~4 minutes)
#   CL_MYSQL_PORT CL_KAFKA_PORT CL_MONGO_PORT CL_KEYS_PORT   (3306 9092 27017 8081)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CL_STATE_DIR:-$ROOT/.services}
CACHE=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/central-library}

# Pinned tool versions.
NISSHI_VERSION=0.8.1
SECANTUS_PY_VERSION=0.7.0b3
SECANTUS_RS_VERSION=0.5.3-beta.196

HOST=127.0.0.1
MYSQL_PORT=${CL_MYSQL_PORT:-3306}
KAFKA_PORT=${CL_KAFKA_PORT:-9092}
MONGO_PORT=${CL_MONGO_PORT:-27017}
KEYS_PORT=${CL_KEYS_PORT:-8081}
MONGO_IMPL=${CL_MONGO_IMPL:-py}

MYSQL_DB=central-library
MYSQL_APP_USER=graphql
MYSQL_APP_PASSWORD=graphqlpw

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# wait_until SECONDS DESCRIPTION COMMAND...: poll a readiness probe, not a sleep-and-hope.
wait_until() {
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then die "$what did not answer within ${limit}s"; fi
    sleep 0.2
  done
}

# pid_alive NAME: the process `up` started for NAME is still running.
pid_alive() {
  local f="$STATE/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_bg NAME DIR COMMAND...: start in the background from DIR, in its own session
# (so it outlives this script), logging to $STATE/NAME.log, PID in $STATE/NAME.pid.
start_bg() {
  local name=$1 dir=$2; shift 2
  (
    cd "$dir" || exit 1
    # Close inherited descriptors (a caller's pipes) so the service holds none open.
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    exec setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$STATE/$name.pid"
  log "$name started (pid $!, log $STATE/$name.log)"
}

apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  log "installing $* (apt)"
  if [[ ! -f "$STATE/.apt-updated" ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch "$STATE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---------------------------------------------------------------- MariaDB
mysql_root() { mariadb --protocol=tcp -h "$HOST" -P "$MYSQL_PORT" -uroot "$@" 2>/dev/null \
  || mariadb -uroot "$@"; }
mysql_ping() { mariadb-admin --protocol=tcp -h "$HOST" -P "$MYSQL_PORT" -uroot ping; }

mysql_up() {
  if ! command -v mariadbd >/dev/null && [[ ! -x /usr/sbin/mariadbd ]]; then
    apt_install mariadb-server mariadb-client
  fi
  if mysql_ping >/dev/null 2>&1; then
    log "mariadb answers on $HOST:$MYSQL_PORT"
  else
    install -d -o mysql -g mysql /run/mysqld
    if [[ ! -d /var/lib/mysql/mysql ]]; then
      mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    start_bg mariadb / /usr/sbin/mariadbd --user=mysql --bind-address="$HOST" --port="$MYSQL_PORT"
    wait_until 60 mariadb mysql_ping
  fi
  # The legacy deployment's database and user; tests make databases named cl_test_*.
  mysql_root -e "$(cat <<SQL
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DB\`;
CREATE USER IF NOT EXISTS '$MYSQL_APP_USER'@'localhost' IDENTIFIED BY '$MYSQL_APP_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_APP_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_APP_PASSWORD';
GRANT ALL PRIVILEGES ON \`$MYSQL_DB\`.* TO '$MYSQL_APP_USER'@'localhost', '$MYSQL_APP_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`$MYSQL_DB-bench\`.* TO '$MYSQL_APP_USER'@'localhost', '$MYSQL_APP_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`cl\\_test\\_%\`.* TO '$MYSQL_APP_USER'@'localhost', '$MYSQL_APP_USER'@'127.0.0.1';
SQL
)"
}

# ---------------------------------------------------------------- Kafka (nisshi)
nisshi_bin() { echo "$CACHE/nisshi-$NISSHI_VERSION/bin/nisshi"; }

kafka_up() {
  local bin; bin=$(nisshi_bin)
  if [[ ! -x $bin ]]; then
    log "installing nisshi $NISSHI_VERSION into $CACHE (about 10 minutes, once)"
    CARGO_TARGET_DIR="$CACHE/build/nisshi" cargo install nisshi --version "$NISSHI_VERSION" \
      --locked --ignore-rust-version --no-default-features --features dynostore \
      --root "$CACHE/nisshi-$NISSHI_VERSION" >"$CACHE/nisshi-install.log" 2>&1 \
      || die "nisshi install failed, see $CACHE/nisshi-install.log"
  fi
  if port_open "$KAFKA_PORT"; then
    log "kafka answers on $HOST:$KAFKA_PORT"
  else
    # nisshi reads a .env in its working directory: start it from an empty one.
    rm -rf "$STATE/nisshi-run" && mkdir -p "$STATE/nisshi-run"
    start_bg nisshi "$STATE/nisshi-run" "$bin" broker \
      --listener-url "tcp://$HOST:$KAFKA_PORT" \
      --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
      --storage-engine memory://nisshi/ \
      --group-initial-rebalance-delay 0s
    wait_until 60 nisshi "$bin" topic list --broker "tcp://$HOST:$KAFKA_PORT"
  fi
  local topics; topics=$("$bin" topic list --broker "tcp://$HOST:$KAFKA_PORT")
  for topic in checkout checkin; do
    if ! grep -qw "$topic" <<<"$topics"; then
      "$bin" topic create --broker "tcp://$HOST:$KAFKA_PORT" --partitions 3 --silent "$topic" \
        || die "cannot create topic $topic"
    fi
  done
}

# ---------------------------------------------------------------- MongoDB wire
mongo_ping() {
  "$CACHE/secantusdb-$SECANTUS_PY_VERSION/bin/python" - "$MONGO_PORT" <<'PY'
import sys, pymongo
c = pymongo.MongoClient("127.0.0.1", int(sys.argv[1]), serverSelectionTimeoutMS=1000)
c.admin.command("ping")
PY
}

mongo_up() {
  local venv="$CACHE/secantusdb-$SECANTUS_PY_VERSION"
  if [[ ! -x $venv/bin/secantusd-py ]]; then
    log "installing secantusdb $SECANTUS_PY_VERSION into $venv"
    python3 -m venv "$venv" || { apt_install python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q "secantusdb==$SECANTUS_PY_VERSION"
  fi
  local rs="$CACHE/secantus-mdb-$SECANTUS_RS_VERSION/bin/secantusd-rs"
  if [[ $MONGO_IMPL == rs && ! -x $rs ]]; then
    command -v cmake >/dev/null || apt_install cmake
    log "installing secantus-mdb $SECANTUS_RS_VERSION into $CACHE (about 4 minutes, once)"
    CARGO_TARGET_DIR="$CACHE/build/secantus-mdb" cargo install secantus-mdb \
      --version "$SECANTUS_RS_VERSION" --locked --ignore-rust-version \
      --root "$CACHE/secantus-mdb-$SECANTUS_RS_VERSION" >"$CACHE/secantus-install.log" 2>&1 \
      || die "secantus-mdb install failed, see $CACHE/secantus-install.log"
  fi
  if mongo_ping >/dev/null 2>&1; then
    log "mongodb answers on $HOST:$MONGO_PORT"
    return
  fi
  mkdir -p "$STATE/mongo-run"
  if [[ $MONGO_IMPL == rs ]]; then
    start_bg mongo "$STATE/mongo-run" "$rs" --host "$HOST" --port "$MONGO_PORT" --storage-path :memory:
  else
    start_bg mongo "$STATE/mongo-run" "$venv/bin/secantusd-py" --host "$HOST" --port "$MONGO_PORT" \
      --storage-path :memory:
  fi
  wait_until 60 "mongodb ($MONGO_IMPL)" mongo_ping
}

# ---------------------------------------------------------------- dev key service
keys_ping() { curl -fsS "http://$HOST:$KEYS_PORT/publickey" >/dev/null; }

keys_up() {
  if keys_ping 2>/dev/null; then
    log "dev key service answers on $HOST:$KEYS_PORT"
    return
  fi
  command -v curl >/dev/null || apt_install curl
  (cd "$ROOT" && cargo build -q -p auth-jwt --bin dev-key-service)
  local target; target=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  start_bg keys "$STATE" "$target/debug/dev-key-service" \
    --listen "$HOST:$KEYS_PORT" --key-file "$STATE/dev-key.pem"
  wait_until 60 "dev key service" keys_ping
}

# ---------------------------------------------------------------- env file
write_env() {
  cat >"$STATE/env.tmp" <<EOF
# Written by scripts/services.sh up; SPEC section 6 names.
GRAPHQL_SERVER_PORT=4000
MYSQL_HOST=$HOST
MYSQL_PORT=$MYSQL_PORT
MYSQL_USER=$MYSQL_APP_USER
MYSQL_PASSWORD=$MYSQL_APP_PASSWORD
MYSQL_DATABASE=$MYSQL_DB
MONGO_URL=mongodb://$HOST:$MONGO_PORT
MONGO_DATABASE=$MYSQL_DB
KAFKA_BROKERS=$HOST:$KAFKA_PORT
PUBLIC_JWT_KEY_URL=http://$HOST:$KEYS_PORT/publickey
DEV_KEY_SERVICE_URL=http://$HOST:$KEYS_PORT
NISSHI_BIN=$(nisshi_bin)
MONGO_SERVER_BIN=$CACHE/secantusdb-$SECANTUS_PY_VERSION/bin/secantusd-py
EOF
  mv "$STATE/env.tmp" "$STATE/env"
}

status() {
  local name port
  for pair in "mariadb $MYSQL_PORT" "nisshi $KAFKA_PORT" "mongo $MONGO_PORT" "keys $KEYS_PORT"; do
    read -r name port <<<"$pair"
    local state=down owner=external
    port_open "$port" && state=up
    pid_alive "$name" && owner="pid $(cat "$STATE/$name.pid")"
    printf '%-8s %s:%-6s %-5s (%s)\n' "$name" "$HOST" "$port" "$state" "$owner"
  done
  [[ -f $STATE/env ]] && echo "env file: $STATE/env"
}

down() {
  local name
  for name in keys mongo nisshi mariadb; do
    if pid_alive "$name"; then
      local pid; pid=$(cat "$STATE/$name.pid")
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/$name.pid"
  done
}

main() {
  mkdir -p "$STATE" "$CACHE"
  case "${1:-}" in
    up)
      shift
      local wanted=("$@")
      ((${#wanted[@]})) || wanted=(mysql mongo kafka keys)
      for svc in "${wanted[@]}"; do
        case $svc in
          mysql | mongo | kafka | keys) "${svc}_up" ;;
          *) die "unknown service $svc (mysql mongo kafka keys)" ;;
        esac
      done
      write_env
      status
      ;;
    down) down ;;
    status) status ;;
    env) echo "$STATE/env" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
  esac
}

main "$@"
