#!/bin/bash
# kesu — the embedded local Postgres cluster (no system service).
#
#   deploy/local/pg.sh init|start|stop|status [...]     e.g. pg.sh init start
#
# init   initdb into $KESU_PGDATA (default var/pg): UTF-8, C.UTF-8 locale,
#        trust auth on the unix socket only, no TCP (listen_addresses = '')
# start  pg_ctl start on port $KESU_PGPORT (5433 + KESU_PORT_OFFSET), socket
#        in $KESU_PGSOCK (var/run), log var/log/pg.log; creates database kesu
# stop   fast shutdown;  status  pg_ctl status
#
# As root the cluster runs as user postgres (created if missing); otherwise
# as the current user. See deploy/local/env.sh for every path.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

PGBIN=$KESU_PGBIN
LOGDIR="$KESU_HOME/var/log"
if [ "$KESU_PORT_OFFSET" = 0 ]; then sfx=; else sfx="-$KESU_PORT_OFFSET"; fi
# The server writes its log as the cluster's user: beside the cluster when
# the repository is not reachable for that user (env.sh).
PGLOG="${KESU_PG_OUTSIDE_REPO:-$LOGDIR}/pg$sfx.log"
INITLOG="$LOGDIR/initdb$sfx.log"

die() { echo "pg.sh: $*" >&2; exit 1; }
say() { echo "pg.sh: $*"; }

[ -x "$PGBIN/pg_ctl" ] || die "no PostgreSQL 15 at $PGBIN (install postgresql-15: make deps)"

if [ "$(id -u)" = 0 ]; then
  PGUSER_OS=postgres
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
  PGUSER_OS=$(id -un)
  as_pg() { "$@"; }
fi

ensure_user() {
  [ "$(id -u)" = 0 ] || return 0
  if ! id postgres >/dev/null 2>&1; then
    say "creating system user postgres"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash --user-group postgres
  fi
}

# Directories owned by the cluster's OS user.
ensure_dirs() {
  mkdir -p "$KESU_PGDATA" "$KESU_PGSOCK" "$LOGDIR" "$(dirname "$PGLOG")"
  [ -e "$PGLOG" ] || : >"$PGLOG"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$KESU_PGSOCK" "$PGLOG"
    [ -e "$KESU_PGDATA/PG_VERSION" ] || chown postgres: "$KESU_PGDATA"
  fi
  chmod 700 "$KESU_PGDATA"
  if [ ${#KESU_PGSOCK} -gt 90 ]; then
    die "socket directory path too long for a unix socket (${#KESU_PGSOCK} > 90 chars): $KESU_PGSOCK; set KESU_PGSOCK"
  fi
}

running() { as_pg "$PGBIN/pg_ctl" status -D "$KESU_PGDATA" >/dev/null 2>&1; }

psql_admin() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$KESU_PGSOCK" -p "$KESU_PGPORT" -U postgres "$@"; }

do_init() {
  ensure_user
  if [ -n "${KESU_PG_OUTSIDE_REPO:-}" ]; then
    say "note: $KESU_HOME is not traversable by user postgres; the cluster lives in $KESU_PG_OUTSIDE_REPO"
  fi
  if [ -e "$KESU_PGDATA/PG_VERSION" ]; then
    say "cluster already initialised in $KESU_PGDATA"
    return 0
  fi
  ensure_dirs
  locale=C
  if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale=C.UTF-8; fi
  say "initdb $KESU_PGDATA (UTF8, locale $locale, superuser postgres, run by $PGUSER_OS)"
  as_pg "$PGBIN/initdb" -D "$KESU_PGDATA" -U postgres -E UTF8 --locale="$locale" \
    --auth-local=trust --auth-host=reject >"$INITLOG" 2>&1 ||
    { cat "$INITLOG" >&2; die "initdb failed (log above, also in $INITLOG)"; }
  # Unix socket only, trust on it; durable commits (fsync, synchronous_commit on).
  as_pg tee "$KESU_PGDATA/pg_hba.conf" >/dev/null <<'HBA'
# kesu: local unix-socket connections only (no TCP listener).
local   all   all   trust
HBA
  as_pg tee -a "$KESU_PGDATA/postgresql.conf" >/dev/null <<'CONF'

# --- kesu (deploy/local/pg.sh) ---
listen_addresses = ''
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
timezone = 'UTC'
log_timezone = 'UTC'
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
CONF
  say "initialised"
}

do_start() {
  [ -e "$KESU_PGDATA/PG_VERSION" ] || die "no cluster in $KESU_PGDATA: run pg.sh init first"
  ensure_dirs
  if running; then
    say "already running ($KESU_PGDATA, port $KESU_PGPORT)"
  else
    say "starting on port $KESU_PGPORT, socket $KESU_PGSOCK, log $PGLOG"
    as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$KESU_PGDATA" -l "$PGLOG" \
      -o "-p $KESU_PGPORT -k $KESU_PGSOCK" >/dev/null ||
      { tail -n 20 "$PGLOG" >&2; die "postgres did not start (see $PGLOG)"; }
  fi
  if [ "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'kesu'")" != 1 ]; then
    psql_admin -d postgres -c "CREATE DATABASE kesu" >/dev/null
    say "database kesu created"
  fi
}

do_stop() {
  if [ ! -e "$KESU_PGDATA/PG_VERSION" ]; then say "no cluster in $KESU_PGDATA"; return 0; fi
  if running; then
    as_pg "$PGBIN/pg_ctl" stop -w -t 60 -m fast -D "$KESU_PGDATA" >/dev/null
    say "stopped"
  else
    say "not running"
  fi
}

do_status() {
  if [ ! -e "$KESU_PGDATA/PG_VERSION" ]; then say "no cluster in $KESU_PGDATA"; return 3; fi
  if running; then
    say "running: data $KESU_PGDATA, port $KESU_PGPORT, socket $KESU_PGSOCK"
    say "KESU_PG_ADMIN=\"$KESU_PG_ADMIN\""
  else
    say "stopped: data $KESU_PGDATA"
    return 3
  fi
}

[ $# -gt 0 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
for cmd in "$@"; do
  case "$cmd" in
    init) do_init ;;
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) echo "pg.sh: unknown command '$cmd' (init|start|stop|status)" >&2; exit 2 ;;
  esac
done
