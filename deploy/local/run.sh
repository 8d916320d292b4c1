#!/bin/bash
# kesu — what `make run` execs after building: the embedded Postgres under
# var/, migrations, reference data, an admin token, and all six services in
# the foreground (logs on stdout prefixed with the service name, and in
# var/log/<service>.log). Ctrl-C stops the services, then Postgres.
# Running it again reuses var/ (cluster, data, token).
#
# Environment: KESU_PORT_OFFSET shifts every port (a second system beside the
# first one, with its own cluster var/pg-<offset>); KESU_SMS_URL (notifier's
# SMS gateway; default empty: deliveries are recorded, not sent); KESU_CLOCK;
# everything else in deploy/local/env.sh and docs/internals.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
cd "$KESU_HOME"

BIN="${KESU_BIN:-$KESU_HOME/build/bin}"
SERVICES=(intake router handler sla notifier analytics)
declare -A HTTP_PORT=([intake]=8080 [handler]=8081 [analytics]=8082 [notifier]=8083 [sla]=8084 [router]=8085)
declare -A WHAT=([intake]="intake API: POST /v1/complaints" [handler]="handler workbench: /v1/queue"
  [analytics]="KPIs /v1/kpi/summary, SSE /v1/stream" [notifier]="SMS deliveries: /v1/deliveries"
  [sla]="SLA timers: /v1/timers/{order_no}" [router]="work orders: /v1/orders/{order_no}")
if [ "$KESU_PORT_OFFSET" = 0 ]; then sfx=; else sfx="-$KESU_PORT_OFFSET"; fi
LOGDIR="$KESU_HOME/var/log"
TOKEN_FILE="$KESU_HOME/var/admin$sfx.token"
declare -A PIDS=()

die() { echo "run.sh: $*" >&2; exit 1; }

# --- everything built? ---------------------------------------------------------
missing=()
for b in kesuctl "${SERVICES[@]/#/kesu-}"; do [ -x "$BIN/$b" ] || missing+=("$BIN/$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  die "missing binaries: ${missing[*]} — build them first (make; \`make run\` builds and then runs this script)"
fi
command -v curl >/dev/null || die "curl is needed to wait for the services (make deps)"

# --- Postgres, schema, data, token ---------------------------------------------
mkdir -p "$LOGDIR"
"$here/pg.sh" init start
"$BIN/kesuctl" migrate
"$BIN/kesuctl" load
token_valid() {
  [ -s "$TOKEN_FILE" ] || return 1
  local h
  h=$(tr -d ' \n\r\t' <"$TOKEN_FILE" | sha256sum | cut -d' ' -f1)
  [ "$("$KESU_PGBIN/psql" -X -tA "$KESU_PG_ADMIN" -c \
      "SELECT 1 FROM auth.tokens WHERE token_hash = '$h' AND revoked_at IS NULL")" = 1 ]
}
if ! token_valid; then
  [ -e "$TOKEN_FILE" ] && echo "run.sh: $TOKEN_FILE is not a valid token of this cluster; creating a new one"
  (umask 077 && "$BIN/kesuctl" token create --name admin --role admin >"$TOKEN_FILE.tmp")
  mv "$TOKEN_FILE.tmp" "$TOKEN_FILE"
  chmod 600 "$TOKEN_FILE"
  echo "run.sh: admin token written to $TOKEN_FILE"
fi

# --- services -------------------------------------------------------------------
stopping=0
stop_all() {
  local status=$?
  [ $stopping = 1 ] && return
  stopping=1
  trap - INT TERM
  if [ ${#PIDS[@]} -gt 0 ]; then
    echo "run.sh: stopping services"
    for svc in "${!PIDS[@]}"; do kill -TERM "${PIDS[$svc]}" 2>/dev/null || true; done
    local deadline=$((SECONDS + 5)) alive
    while :; do
      alive=0
      for svc in "${!PIDS[@]}"; do kill -0 "${PIDS[$svc]}" 2>/dev/null && alive=1; done
      [ $alive = 0 ] || [ $SECONDS -ge $deadline ] && break
      sleep 0.1
    done
    for svc in "${!PIDS[@]}"; do
      if kill -0 "${PIDS[$svc]}" 2>/dev/null; then
        echo "run.sh: kesu-$svc did not stop within 5 s; killing it"
        kill -KILL "${PIDS[$svc]}" 2>/dev/null || true
      fi
    done
    wait 2>/dev/null || true
  fi
  "$here/pg.sh" stop || true
  exit $status
}
trap stop_all EXIT
trap 'exit 0' INT TERM

http_addr() { # svc → host:port, as the service computes it (common/config.c)
  local svc=$1 var
  var="KESU_${svc^^}_HTTP"
  if [ -n "${!var:-}" ]; then
    case "${!var}" in *:*) echo "${!var}" ;; *) echo "127.0.0.1:${!var}" ;; esac
  else
    echo "127.0.0.1:$((HTTP_PORT[$svc] + KESU_PORT_OFFSET))"
  fi
}

for svc in "${SERVICES[@]}"; do
  log="$LOGDIR/$svc$sfx.log"
  echo "run.sh: starting kesu-$svc (log $log)"
  # The service's output: on our stdout prefixed, and appended to its log.
  "$BIN/kesu-$svc" > >(tee -a "$log" | sed -u "s/^/[$svc] /") 2>&1 &
  PIDS[$svc]=$!
done

for svc in "${SERVICES[@]}"; do
  addr=$(http_addr "$svc")
  deadline=$((SECONDS + 20))
  until curl -fsS -o /dev/null --max-time 1 "http://$addr/healthz" 2>/dev/null; do
    if ! kill -0 "${PIDS[$svc]}" 2>/dev/null; then
      set +e; wait "${PIDS[$svc]}"; st=$?; set -e
      unset "PIDS[$svc]"
      die "kesu-$svc exited (status $st) before answering http://$addr/healthz; see $LOGDIR/$svc$sfx.log"
    fi
    [ $SECONDS -lt $deadline ] ||
      die "kesu-$svc did not answer http://$addr/healthz within 20 s; see $LOGDIR/$svc$sfx.log"
    sleep 0.2
  done
done

tok_rel=${TOKEN_FILE#"$KESU_HOME"/}
line() { printf '│ %-72s │\n' "$1"; }
bar=$(printf '─%.0s' $(seq 1 74))
echo
echo "┌$bar┐"
line "kesu is running (port offset $KESU_PORT_OFFSET)"
line ""
for svc in "${SERVICES[@]}"; do
  line "$(printf '%-9s http://%-16s %s' "$svc" "$(http_addr "$svc")" "${WHAT[$svc]}")"
done
line ""
line "admin token: $tok_rel"
line "postgres:    port $KESU_PGPORT, socket ${KESU_PGSOCK#"$KESU_HOME"/}, data ${KESU_PGDATA#"$KESU_HOME"/}"
line "logs:        var/log/<service>$sfx.log     stop: Ctrl-C"
echo "└$bar┘"
if [ "$KESU_PORT_OFFSET" = 0 ]; then ctl=build/bin/kesuctl; else ctl="KESU_PORT_OFFSET=$KESU_PORT_OFFSET build/bin/kesuctl"; fi
cat <<EX
Try it:
  curl -s http://$(http_addr intake)/v1/complaints \\
    -H "Authorization: Bearer \$(cat $tok_rel)" -H 'Content-Type: application/json' \\
    -d '{"channel":"hotline","customer":{"name":"张三","phone":"13800138000","home_region":"310115","address":"上海市浦东新区张杨路100号"},
         "region":"310115","business_type":"mobile","title":"网络信号差","content":"浦东家中手机信号差，经常掉线"}'
  $ctl submit --channel hotline --name 张三 --phone 13800138000 --address 上海浦东 --region 310115 \\
    --business broadband --title 宽带断网 --content 宽带三天无法上网
EX

# --- DEMO=1: synthetic complaints through the system (kesuctl demo) -----------
if [ -n "${DEMO:-}" ] && [ "$DEMO" != 0 ]; then
  echo "run.sh: DEMO=$DEMO — kesuctl demo feeds complaints (rate ${DEMO_RATE:-1}/s);" \
    "dashboard: http://$(http_addr analytics)/"
  "$BIN/kesuctl" demo --rate "${DEMO_RATE:-1}" --token "$(tr -d ' \n\r\t' <"$TOKEN_FILE")" \
    > >(sed -u "s/^/[demo] /") 2>&1 &
  PIDS[demo]=$!
fi

# --- wait; report a service that dies -----------------------------------------
while :; do
  sleep 1 &
  wait $! || true
  for svc in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$svc]}" 2>/dev/null; then
      set +e; wait "${PIDS[$svc]}"; st=$?; set -e
      echo "run.sh: kesu-$svc exited (status $st); see $LOGDIR/$svc$sfx.log — the others keep running" >&2
      unset "PIDS[$svc]"
    fi
  done
done
