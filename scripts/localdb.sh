#!/usr/bin/env bash
# A project-local PostgreSQL cluster for the demo and the tests: data in .pgdata/,
# Unix socket only (in .pgdata/), a non-default port. Works as an ordinary user
# and as root (PostgreSQL refuses root, so the server then runs as `postgres`).
#   scripts/localdb.sh start | stop | dsn [dbname]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/.pgdata
port=${PGFEED_PORT:-55432}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

as_server() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# As root, the `postgres` user must be able to reach the work tree: it serves
# .pgdata/ and imports the project's .venv. Grant traversal only, only to it.
grant_traversal() {
  [ "$(id -u)" -eq 0 ] || return 0
  local dir=$root
  while [ "$dir" != / ]; do
    if ! runuser -u postgres -- test -x "$dir"; then
      command -v setfacl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq acl >/dev/null
      echo "granting the postgres user traversal of $dir"
      setfacl -m u:postgres:x "$dir"
    fi
    dir=$(dirname "$dir")
  done
}

case ${1:-} in
  start)
    grant_traversal
    if [ ! -f "$data/PG_VERSION" ]; then
      mkdir -p "$data"
      [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
      as_server "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
      # a quarter of the memory, as for any server: HNSW searches jump between
      # pages, so an index that does not fit in shared buffers is read through
      # the kernel's cache, page by page (bench/README.md)
      quarter_mb=$(awk '/MemTotal/ {print int($2 / 1024 / 4)}' /proc/meminfo)
      shared_mb=$(( quarter_mb < 128 ? 128 : quarter_mb > 8192 ? 8192 : quarter_mb ))
      cat >>"$data/postgresql.conf" <<CONF
# pgfeed local cluster
listen_addresses = ''
port = $port
unix_socket_directories = '$data'
max_connections = 50
shared_buffers = ${shared_mb}MB
maintenance_work_mem = 512MB
fsync = off            # a throwaway development cluster
synchronous_commit = off
full_page_writes = off
CONF
    fi
    if ! as_server "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_server "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w start >/dev/null
    fi
    ;;
  stop)
    if [ -f "$data/PG_VERSION" ] && as_server "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_server "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    ;;
  dsn)
    echo "host=$data port=$port user=postgres dbname=${2:-pgfeed}"
    ;;
  *)
    echo "usage: $0 start|stop|dsn [dbname]" >&2; exit 2 ;;
esac
