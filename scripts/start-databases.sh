#!/usr/bin/env bash
# Starts a throw-away PostgreSQL and a throw-away MariaDB server for the SQL tests
# (tests/sql_postgres.rs, tests/sql_mysql.rs) and the todos_sql example.
#
#   scripts/start-databases.sh              # both servers
#   scripts/start-databases.sh postgres     # only PostgreSQL (or: mysql)
#   scripts/stop-databases.sh               # stops them by PID and deletes their data
#
# Each server gets a fresh data directory under ${TMPDIR:-/tmp}, a free port on 127.0.0.1 (and
# nothing else), a database `hypertrace_test` and a user `hypertrace` with a random password. The
# connection details are written to .databases/env (shell syntax, `HT_TEST_PG_*`, `HT_TEST_MYSQL_*`),
# which the tests read (or the file named by $HT_TEST_DATABASES_ENV).
#
# What it needs: PostgreSQL's initdb/pg_ctl (PATH, or /usr/lib/postgresql/*/bin) and MariaDB's
# mariadbd/mariadb-install-db. When one is missing and this runs as root on Debian, it is installed
# with apt-get (postgresql, mariadb-server); otherwise the script says what to install and fails.
# PostgreSQL refuses to run as root: as root, the server runs as the system user `htdb` (created if
# missing). MariaDB runs as the calling user (`--user=root` when that is root).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

want="${1:-all}"
case "$want" in all | postgres | mysql) ;; *)
  echo "usage: $0 [all|postgres|mysql]" >&2
  exit 2
  ;;
esac

state="$repo/.databases"
envfile="$state/env"
mkdir -p "$state"
if [ -f "$state/pids" ]; then
  echo "start-databases: servers from an earlier start are still recorded; stopping them first" >&2
  scripts/stop-databases.sh
  mkdir -p "$state"
fi

log() { echo "start-databases: $*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
random_password() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "$1 is missing: install it (Debian: apt-get install $2), then run this again"
    exit 1
  fi
  log "installing $2 with apt-get"
  # Debian's maintainer scripts would start the packaged service; ours runs on its own port instead.
  # (policy-rc.d is honoured by invoke-rc.d; in containers it usually exists already.)
  export DEBIAN_FRONTEND=noninteractive
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >"$state/apt.log" 2>&1; then
    apt-get update -qq >>"$state/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >>"$state/apt.log" 2>&1 ||
      { cat "$state/apt.log" >&2; log "apt-get install $2 failed"; exit 1; }
  fi
}

pg_bindir() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    # The real directory (a symlink in PATH may stand alone, without psql beside it).
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

# The top directory holding both data directories; removed by stop-databases.sh.
top="$(mktemp -d "${TMPDIR:-/tmp}/hypertrace-databases.XXXXXX")"
chmod 755 "$top"
echo "$top" >"$state/dir"
: >"$state/pids"
: >"$envfile.tmp"

start_postgres() {
  local bindir
  bindir="$(pg_bindir || true)"
  if [ -z "$bindir" ]; then
    apt_install "PostgreSQL (initdb, pg_ctl)" postgresql
    bindir="$(pg_bindir || true)"
    [ -n "$bindir" ] || { log "initdb/pg_ctl not found after installing postgresql"; exit 1; }
  fi
  local run_as=() owner
  if [ "$(id -u)" = 0 ]; then
    if ! id htdb >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin htdb
    fi
    run_as=(runuser -u htdb --)
    owner=htdb
  else
    owner="$(id -un)"
  fi
  local dir="$top/postgres" port password
  port="$(free_port)"
  password="$(random_password)"
  mkdir -p "$dir/data" "$dir/socket"
  printf '%s\n' "$password" >"$dir/pwfile"
  chown -R "$owner" "$dir"
  chmod 700 "$dir"
  "${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U hypertrace --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; log "initdb failed"; exit 1; }
  rm -f "$dir/pwfile"
  # Loopback TCP only; the Unix socket lives in the throw-away directory, not /var/run.
  "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir/socket -c fsync=off -c max_connections=200" start >/dev/null ||
    { cat "$dir/server.log" >&2; log "PostgreSQL did not start"; exit 1; }
  local pid
  pid="$(head -n1 "$dir/data/postmaster.pid")"
  echo "postgres $pid" >>"$state/pids"
  "${run_as[@]}" "$bindir/psql" -h "$dir/socket" -p "$port" -U hypertrace -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE DATABASE hypertrace_test" >/dev/null
  cat >>"$envfile.tmp" <<EOF
HT_TEST_PG_HOST=127.0.0.1
HT_TEST_PG_PORT=$port
HT_TEST_PG_USER=hypertrace
HT_TEST_PG_PASSWORD=$password
HT_TEST_PG_DATABASE=hypertrace_test
EOF
  log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (pid $pid, data $dir)"
}

start_mysql() {
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    apt_install "MariaDB (mariadbd)" mariadb-server
  fi
  local mariadbd
  mariadbd="$(command -v mariadbd || echo /usr/sbin/mariadbd)"
  local dir="$top/mysql" port password user
  port="$(free_port)"
  password="$(random_password)"
  user="$(id -un)"
  mkdir -p "$dir/data"
  mariadb-install-db --no-defaults --datadir="$dir/data" --user="$user" --auth-root-authentication-method=socket \
    --skip-test-db >"$dir/install.log" 2>&1 ||
    { cat "$dir/install.log" >&2; log "mariadb-install-db failed"; exit 1; }
  "$mariadbd" --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$dir/mysql.sock" --pid-file="$dir/mysql.pid" --user="$user" --skip-name-resolve \
    --log-error="$dir/server.log" --innodb-flush-log-at-trx-commit=0 --max-connections=300 >/dev/null 2>&1 &
  local pid=$!
  echo "mysql $pid" >>"$state/pids"
  local i
  for i in $(seq 1 120); do
    if mariadb --no-defaults --socket="$dir/mysql.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
      break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; log "mariadbd exited"; exit 1; }
    sleep 0.25
  done
  mariadb --no-defaults --socket="$dir/mysql.sock" -uroot <<EOF
CREATE DATABASE hypertrace_test;
CREATE USER 'hypertrace'@'%' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON hypertrace_test.* TO 'hypertrace'@'%';
EOF
  cat >>"$envfile.tmp" <<EOF
HT_TEST_MYSQL_HOST=127.0.0.1
HT_TEST_MYSQL_PORT=$port
HT_TEST_MYSQL_USER=hypertrace
HT_TEST_MYSQL_PASSWORD=$password
HT_TEST_MYSQL_DATABASE=hypertrace_test
EOF
  log "MariaDB $("$mariadbd" --version | awk '{print $3}') on 127.0.0.1:$port (pid $pid, data $dir)"
}

case "$want" in
all) start_postgres; start_mysql ;;
postgres) start_postgres ;;
mysql) start_mysql ;;
esac
chmod 600 "$envfile.tmp"
mv "$envfile.tmp" "$envfile"
log "connection details in $envfile; stop with scripts/stop-databases.sh"
