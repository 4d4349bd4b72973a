#!/usr/bin/env bash
# The real services the tests (and a local gateway) talk to, all on 127.0.0.1:
#   MariaDB and Oracle MySQL (the same tests run on both), the Kafka-API broker
#   nisshi, the MongoDB-wire server secantusd, and the project's own dev key service
#   (auth-jwt).
#
#   scripts/services.sh up [SVC..] install what is missing, start what is stopped, wait
#                                until each answers, write the env file; idempotent.
#                                SVC: mariadb mysql mongo kafka keys (default: all)
#   scripts/services.sh down     stop what `up` started (by PID), nothing else
#   scripts/services.sh status   where each listens, and whether it answers
#   scripts/services.sh env      print the env file path
#
# Settings (environment):
#   CL_CACHE_DIR   tool installs, kept across clones  (~/.cache/central-library)
#   CL_STATE_DIR   PIDs, logs, env file of this clone  (<repo>/.services)
#   CL_MONGO_IMPL  py (default, PyPI secantusdb) or rs (the faster Rust build, for
#                  benchmarks; installed on first use, ~4 minutes)
#   CL_MYSQL_PORT CL_ORACLE_MYSQL_PORT CL_KAFKA_PORT CL_MONGO_PORT CL_KEYS_PORT
#                  (3306 3307 9092 27017 8081; CL_MYSQL_PORT is MariaDB's)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CL_STATE_DIR:-$ROOT/.services}
CACHE=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/central-library}

# Pinned tool versions.
NISSHI_VERSION=0.8.1
SECANTUS_PY_VERSION=0.7.0b3
SECANTUS_RS_VERSION=0.5.3-beta.196
# Oracle MySQL: no mysqld is packaged for this Debian release; Debian's unstable suite
# has mysql-server 9.x, run here from a debootstrapped root. This version is asked for
# first; if the suite has moved on, its current 9.x is installed and the log says so.
ORACLE_MYSQL_VERSION=9.7.4-2

HOST=127.0.0.1
MYSQL_PORT=${CL_MYSQL_PORT:-3306}
ORACLE_MYSQL_PORT=${CL_ORACLE_MYSQL_PORT:-3307}
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

mariadb_up() {
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
  app_user_sql | mysql_root
}

# The legacy deployment's database and user, the same on both servers; tests make
# databases named cl_test_*. `cl_signin` is for sign-in tests: they reset its password
# (ALTER USER, hence CREATE USER), which empties MySQL's caching_sha2_password cache
# for it, so its next sign-in takes the full exchange.
app_user_sql() {
  cat <<SQL
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DB\`;
CREATE USER IF NOT EXISTS '$MYSQL_APP_USER'@'localhost' IDENTIFIED BY '$MYSQL_APP_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_APP_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_APP_PASSWORD';
GRANT ALL PRIVILEGES ON \`$MYSQL_DB\`.* TO '$MYSQL_APP_USER'@'localhost', '$MYSQL_APP_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`$MYSQL_DB-bench\`.* TO '$MYSQL_APP_USER'@'localhost', '$MYSQL_APP_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`cl\\_test\\_%\`.* TO '$MYSQL_APP_USER'@'localhost', '$MYSQL_APP_USER'@'127.0.0.1';
GRANT CREATE USER ON *.* TO '$MYSQL_APP_USER'@'localhost', '$MYSQL_APP_USER'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'cl_signin'@'localhost' IDENTIFIED BY 'cl-signin-pw';
CREATE USER IF NOT EXISTS 'cl_signin'@'127.0.0.1' IDENTIFIED BY 'cl-signin-pw';
GRANT ALL PRIVILEGES ON \`cl\\_test\\_%\`.* TO 'cl_signin'@'localhost', 'cl_signin'@'127.0.0.1';
SQL
}

# ---------------------------------------------------------------- Oracle MySQL
# A Debian unstable root under the cache holds mysql-server; mysqld runs through
# chroot with its data, socket and TLS files inside that root. The socket lives in
# /run/cl-mysql (not MariaDB's /run/mysqld), so a client that prefers the socket
# can never reach MariaDB by mistake.
oracle_root() { echo "$CACHE/oracle-mysql-root"; }
oracle_ping() { mariadb-admin --protocol=tcp -h "$HOST" -P "$ORACLE_MYSQL_PORT" -uroot ping; }
oracle_root_sql() { mariadb --protocol=tcp -h "$HOST" -P "$ORACLE_MYSQL_PORT" -uroot "$@"; }

# The machine's own Debian mirror (from its apt sources), for debootstrap.
debian_mirror() {
  local uri
  uri=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+' | head -1)
  echo "${uri:-http://deb.debian.org/debian}"
}

oracle_install() {
  local root; root=$(oracle_root)
  command -v debootstrap >/dev/null || apt_install debootstrap
  log "installing Oracle MySQL (Debian unstable's mysql-server) into $root (about 3 minutes, once)"
  rm -rf "$root.tmp"
  debootstrap --variant=minbase sid "$root.tmp" "$(debian_mirror)" >"$CACHE/oracle-mysql-install.log" 2>&1 \
    || die "debootstrap failed, see $CACHE/oracle-mysql-install.log"
  # No service starts inside the root during the install.
  printf '#!/bin/sh\nexit 101\n' >"$root.tmp/usr/sbin/policy-rc.d"
  chmod +x "$root.tmp/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root.tmp/etc/resolv.conf"
  # The mirror's unstable index is past its Valid-Until date.
  chroot "$root.tmp" /bin/sh -c "apt-get -o Acquire::Check-Valid-Until=false update -qq \
    && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           mysql-server=$ORACLE_MYSQL_VERSION mysql-server-core=$ORACLE_MYSQL_VERSION \
         || { echo 'mysql-server $ORACLE_MYSQL_VERSION is gone from unstable: installing its current version'; \
              DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mysql-server; }; } \
    && apt-get clean" >>"$CACHE/oracle-mysql-install.log" 2>&1 \
    || die "mysql-server install failed, see $CACHE/oracle-mysql-install.log"
  mv "$root.tmp" "$root"
  log "Oracle MySQL $(chroot "$root" dpkg-query -W -f '${Version}' mysql-server-core) installed"
}

# A CA and a server certificate for 127.0.0.1 only (the TLS tests trust this CA, and
# reach the server as `localhost` to see a name the certificate does not hold
# refused), and a second CA that signed nothing (a client trusting only it refuses).
oracle_tls() {
  local dir=$1
  [[ -f $dir/server-cert.pem && -f $dir/other-ca.pem ]] && return
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=central-library test CA" \
      -keyout ca-key.pem -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile ext.cnf -out server-cert.pem
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=unrelated CA" \
      -keyout other-ca-key.pem -out other-ca.pem
  ) >/dev/null 2>&1 || die "cannot make the test TLS certificates in $dir"
}

oracle_mysql_up() {
  command -v mariadb-admin >/dev/null || apt_install mariadb-client
  command -v openssl >/dev/null || apt_install openssl
  local root; root=$(oracle_root)
  [[ -x $root/usr/sbin/mysqld ]] || oracle_install
  if oracle_ping >/dev/null 2>&1; then
    log "oracle mysql answers on $HOST:$ORACLE_MYSQL_PORT"
  else
    oracle_tls "$root/etc/cl-mysql-tls"
    chroot "$root" /bin/sh -c 'mkdir -p /run/cl-mysql /var/lib/cl-mysql \
      && chown mysql:mysql /run/cl-mysql /var/lib/cl-mysql && chmod -R a+r /etc/cl-mysql-tls'
    if [[ ! -d $root/var/lib/cl-mysql/mysql ]]; then
      chroot "$root" mysqld --no-defaults --initialize-insecure --user=mysql \
        --datadir=/var/lib/cl-mysql >"$STATE/oracle-mysql-init.log" 2>&1 \
        || die "mysqld --initialize failed, see $STATE/oracle-mysql-init.log"
    fi
    start_bg oracle-mysql / chroot "$root" mysqld --no-defaults --user=mysql \
      --datadir=/var/lib/cl-mysql --bind-address="$HOST" --port="$ORACLE_MYSQL_PORT" \
      --socket=/run/cl-mysql/mysqld.sock --pid-file=/run/cl-mysql/mysqld.pid --mysqlx=OFF \
      --ssl-ca=/etc/cl-mysql-tls/ca.pem --ssl-cert=/etc/cl-mysql-tls/server-cert.pem \
      --ssl-key=/etc/cl-mysql-tls/server-key.pem
    wait_until 90 "oracle mysql" oracle_ping
  fi
  app_user_sql | oracle_root_sql
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
  (cd "$ROOT" && cargo build -q -p auth-jwt --features dev --bin dev-key-service)
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
MARIADB_PORT=$MYSQL_PORT
ORACLE_MYSQL_PORT=$ORACLE_MYSQL_PORT
ORACLE_MYSQL_TLS_CA=$(oracle_root)/etc/cl-mysql-tls/ca.pem
ORACLE_MYSQL_TLS_OTHER_CA=$(oracle_root)/etc/cl-mysql-tls/other-ca.pem
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
  for pair in "mariadb $MYSQL_PORT" "oracle-mysql $ORACLE_MYSQL_PORT" "nisshi $KAFKA_PORT" "mongo $MONGO_PORT" "keys $KEYS_PORT"; do
    read -r name port <<<"$pair"
    local state=down owner=external
    port_open "$port" && state=up
    pid_alive "$name" && owner="pid $(cat "$STATE/$name.pid")"
    printf '%-13s %s:%-6s %-5s (%s)\n' "$name" "$HOST" "$port" "$state" "$owner"
  done
  [[ -f $STATE/env ]] && echo "env file: $STATE/env"
}

down() {
  local name
  for name in keys mongo nisshi oracle-mysql mariadb; do
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
      ((${#wanted[@]})) || wanted=(mariadb mysql mongo kafka keys)
      for svc in "${wanted[@]}"; do
        case $svc in
          mariadb | mongo | kafka | keys) "${svc}_up" ;;
          mysql) oracle_mysql_up ;;
          *) die "unknown service $svc (mariadb mysql mongo kafka keys)" ;;
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
