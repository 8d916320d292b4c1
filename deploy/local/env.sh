# kesu — environment for the embedded local Postgres and the services.
# Source it (bash or sh):   . deploy/local/env.sh
# Sets KESU_HOME (repo root), the cluster's data dir/port/socket and the
# libpq conninfos every tool and service uses. Values already set in the
# environment win, so `KESU_PORT_OFFSET=100 . deploy/local/env.sh` gives a
# second, independent cluster on port 5533.

if [ -z "${KESU_HOME:-}" ]; then
  if [ -n "${BASH_SOURCE:-}" ]; then
    KESU_HOME=$(cd "$(dirname "$BASH_SOURCE")/../.." && pwd)
  elif [ -f ./deploy/local/env.sh ]; then # plain sh cannot tell the sourced file's path
    KESU_HOME=$(pwd)
  else
    echo "env.sh: source it from the repository root, or set KESU_HOME" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
export KESU_HOME
export KESU_PORT_OFFSET="${KESU_PORT_OFFSET:-0}"
export KESU_PGPORT="${KESU_PGPORT:-$((5433 + KESU_PORT_OFFSET))}"
export KESU_PGBIN="${KESU_PGBIN:-/usr/lib/postgresql/15/bin}"

# The cluster runs as user postgres when we are root. Its data dir and socket
# must then be reachable by that user: every directory above var/ needs
# o+x. If the repo is somewhere postgres cannot traverse (e.g. under /root,
# mode 700), the cluster lives in /var/tmp/kesu-<hash of the repo path>/.
_kesu_traversable() { # dir
  _d=$1
  while [ "$_d" != "/" ] && [ -n "$_d" ]; do
    if [ -e "$_d" ]; then
      # others need x; group would do too if postgres were in the group — keep it simple
      case "$(stat -c %A "$_d" 2>/dev/null)" in
        ?????????x | ?????????t) ;;
        *) return 1 ;;
      esac
    fi
    _d=$(dirname "$_d")
  done
  return 0
}
if [ -z "${KESU_PGDATA:-}" ] || [ -z "${KESU_PGSOCK:-}" ]; then
  _kesu_var="$KESU_HOME/var"
  if [ "$(id -u)" = 0 ] && ! _kesu_traversable "$KESU_HOME"; then
    _kesu_var="/var/tmp/kesu-$(printf %s "$KESU_HOME" | sha256sum | cut -c1-12)"
    export KESU_PG_OUTSIDE_REPO="$_kesu_var" # pg.sh says so
  fi
  if [ "$KESU_PORT_OFFSET" = 0 ]; then _kesu_sfx=; else _kesu_sfx="-$KESU_PORT_OFFSET"; fi
  export KESU_PGDATA="${KESU_PGDATA:-$_kesu_var/pg$_kesu_sfx}"
  export KESU_PGSOCK="${KESU_PGSOCK:-$_kesu_var/run$_kesu_sfx}"
  unset _kesu_var _kesu_sfx
fi
unset -f _kesu_traversable 2>/dev/null || true
export KESU_PG="${KESU_PG:-host=$KESU_PGSOCK port=$KESU_PGPORT dbname=kesu}"
export KESU_PG_ADMIN="${KESU_PG_ADMIN:-host=$KESU_PGSOCK port=$KESU_PGPORT dbname=kesu user=postgres}"
