#!/usr/bin/env bash
# Install everything and run the app with demo data at http://127.0.0.1:8000.
# Needs only Python 3.11 (or 3.12) and network access to PyPI. No environment needed: the
# database is a SQLite file under var/, tasks run in-process, emails print on this console.
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
    s.bind((sys.argv[1], int(sys.argv[2])))
PYCODE

say "Preparing the database"
"$PY" manage.py migrate --noinput
say "Loading demo data"
"$PY" manage.py seed_demo
say "Serving http://$HOST:$PORT/ (Ctrl-C stops it; sign-up emails appear below)"
args=("$HOST:$PORT")
[ "${RELOAD:-0}" = 1 ] || args+=(--noreload)
exec "$PY" manage.py runserver "${args[@]}"
