#!/usr/bin/env bash
# Install everything, check lint and format, and run the whole test suite against real
# PostgreSQL and Redis.
# Uses PostgreSQL on 127.0.0.1:5432 when it answers, else starts the project's own (the one
# scripts/run.sh uses, data under var/postgres) and stops it at the end. Starts Redis when it is
# not running (installing Debian's package when it can), installs Debian's chromium for the
# browser tests, and fails when no test ran.
#   bash scripts/test.sh                   # the whole suite
#   bash scripts/test.sh tests/credits -x  # any pytest arguments
# DATABASE_URL, REDIS_URL and CELERY_BROKER_URL point it at other servers.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
started=$(date +%s)

DB_NAME=${TEST_DB_NAME:-credits}
CHOSEN_DATABASE_URL=${DATABASE_URL:-}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB_NAME}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/15}
export CELERY_BROKER_URL=${CELERY_BROKER_URL:-$REDIS_URL}
export DJANGO_SETTINGS_MODULE=config.settings.test
export DJANGO_ALLOW_ASYNC_UNSAFE=true

sync_env
PY=.venv/bin/python

# db_probe URL: 0 = logged in, 1 = nothing listening, 2 = listening but the login failed.
db_probe() {
    "$PY" - "$1" <<'PYCODE'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
except psycopg.OperationalError as exc:
    text = str(exc)
    sys.exit(1 if ("Connection refused" in text or "timeout expired" in text or "No such file" in text) else 2)
PYCODE
}

LOCAL_POSTGRES_STARTED=
stop_local_postgres() {
    [ -n "$LOCAL_POSTGRES_STARTED" ] || return 0
    say "Stopping PostgreSQL"
    "$PY" -m config.local_postgres stop >/dev/null || true
}

# Nothing answers where the tests would look by default: the project's own server, as
# scripts/run.sh runs it (left running when something else had started it).
use_local_postgres() {
    say "Nothing answers on 127.0.0.1:5432: starting the project's own PostgreSQL (data in ${LOCAL_POSTGRES_DIR:-var/postgres})"
    local out
    out=$("$PY" -m config.local_postgres start) || die "could not start PostgreSQL (see ${LOCAL_POSTGRES_DIR:-var/postgres}/log)"
    if [ "$(printf '%s\n' "$out" | tail -1)" = started ]; then
        LOCAL_POSTGRES_STARTED=1
        trap stop_local_postgres EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM HUP
    fi
    local url
    url=$(printf '%s\n' "$out" | head -1)
    export DATABASE_URL="${url%/*}/$DB_NAME"
}

ADMIN_URL="${DATABASE_URL%/*}/postgres"
ensure_postgres() {
    local status=0
    db_probe "$ADMIN_URL" || status=$?
    [ "$status" = 0 ] && return 0
    if [ "$status" = 1 ]; then
        [ -z "$CHOSEN_DATABASE_URL" ] || die "nothing answers at DATABASE_URL=$DATABASE_URL"
        use_local_postgres
        return 0
    fi
    # Listening, but the login failed: a fresh Debian cluster wants a password over TCP.
    case "$DATABASE_URL" in
        postgres://postgres@127.0.0.1:*|postgres://postgres@localhost:*) ;;
        *) die "cannot log in to PostgreSQL with DATABASE_URL=$DATABASE_URL" ;;
    esac
    command -v su >/dev/null 2>&1 && can_apt ||
        die "cannot log in to PostgreSQL as postgres on 127.0.0.1 (set DATABASE_URL to a role that can create databases)"
    say "Setting a password for the postgres role (local test server)"
    as_root su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null ||
        die "could not set the postgres role's password"
    export DATABASE_URL="postgres://postgres:postgres@${DATABASE_URL#postgres://postgres@}"
    ADMIN_URL="${DATABASE_URL%/*}/postgres"
    db_probe "$ADMIN_URL" || die "cannot log in to PostgreSQL as postgres"
}

redis_up() { "$PY" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()" "$REDIS_URL" 2>/dev/null; }
ensure_redis() {
    redis_up && return 0
    case "$REDIS_URL" in
        redis://127.0.0.1:6379*|redis://localhost:6379*) ;;
        *) die "Redis is not reachable at $REDIS_URL" ;;
    esac
    if ! command -v redis-server >/dev/null 2>&1; then
        can_apt || die "Redis is not running on 127.0.0.1:6379 and cannot be installed here: install redis-server or set REDIS_URL"
        say "Installing Redis (Debian package redis-server)"
        apt_install redis-server || die "apt-get install redis-server failed"
    fi
    say "Starting Redis"
    mkdir -p var/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$PWD/var/redis" --logfile "$PWD/var/redis/redis.log" || die "could not start redis-server"
    for _ in $(seq 20); do redis_up && break; sleep 0.5; done
    redis_up || die "Redis did not come up at $REDIS_URL"
}

ensure_chromium() {
    [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] && return 0
    can_apt || die "Chromium is missing at ${CHROMIUM_PATH:-/usr/bin/chromium}: install Debian's chromium package (the browser tests drive it)"
    say "Installing Chromium (Debian package chromium) for the browser tests"
    apt_install chromium || die "apt-get install chromium failed"
}

# PgBouncer 1.21 or later keeps the ledger's protocol-level prepared statements working in
# transaction pooling. Where the system's is older (Debian 12 ships 1.18), the tests use one
# built once from Debian's own source of a newer release into var/tools/pgbouncer
# (tests/pgbouncer.py prefers it); if that cannot be done they run with the older one, and
# with the prepared statements off through it.
PGBOUNCER_SOURCE_VERSION=1.24.1
PGBOUNCER_SOURCE_SHA256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
PGBOUNCER_SOURCE_URL=${PGBOUNCER_SOURCE_URL:-http://deb.debian.org/debian/pool/main/p/pgbouncer/pgbouncer_${PGBOUNCER_SOURCE_VERSION}.orig.tar.gz}

pgbouncer_has_prepared_statements() {
    "$1" --version 2>/dev/null | awk '/^PgBouncer/ { split($2, v, "."); exit !(v[1] > 1 || (v[1] == 1 && v[2] >= 21)) }'
}

build_pgbouncer() {
    local dest=var/tools/pgbouncer work py
    py=$(pwd)/$PY
    say "Building PgBouncer $PGBOUNCER_SOURCE_VERSION from Debian's source into $dest (the system's keeps no prepared statements in transaction pooling)"
    if can_apt; then apt_install gcc make pkg-config libevent-dev libssl-dev || return 1; fi
    work=$(mktemp -d)
    (
        # (set -e does not hold in a subshell whose status is tested: every step is chained)
        cd "$work" &&
            "$py" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "src.tar.gz")' "$PGBOUNCER_SOURCE_URL" &&
            echo "$PGBOUNCER_SOURCE_SHA256  src.tar.gz" | sha256sum -c --quiet &&
            tar xzf src.tar.gz &&
            cd "pgbouncer-$PGBOUNCER_SOURCE_VERSION" &&
            ./configure --prefix="$work/install" --without-cares --without-systemd --without-pam --without-ldap >build.log 2>&1 &&
            make -j2 >>build.log 2>&1 &&
            make install >>build.log 2>&1
    ) || { rm -rf "$work"; return 1; }
    mkdir -p "$dest/bin"
    cp "$work/install/bin/pgbouncer" "$dest/bin/pgbouncer"
    rm -rf "$work"
    pgbouncer_has_prepared_statements "$dest/bin/pgbouncer"
}

ensure_pgbouncer() {
    # The PgBouncer tests and benchmarks start their own instance (tests/pgbouncer.py).
    local system
    if [ -x var/tools/pgbouncer/bin/pgbouncer ] && pgbouncer_has_prepared_statements var/tools/pgbouncer/bin/pgbouncer; then
        return 0
    fi
    system=$(command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true)
    if [ -z "$system" ]; then
        can_apt || die "PgBouncer is missing: install Debian's pgbouncer package (the pooling tests run it)"
        say "Installing PgBouncer (Debian package pgbouncer) for the connection pooling tests"
        apt_install pgbouncer || die "apt-get install pgbouncer failed"
        system=$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)
    fi
    pgbouncer_has_prepared_statements "$system" && return 0
    build_pgbouncer || say "Could not build PgBouncer $PGBOUNCER_SOURCE_VERSION: the pooling tests run $("$system" --version | head -1), with the ledger's prepared statements off through it"
}

ensure_postgres
ensure_redis
ensure_chromium
ensure_pgbouncer

say "Checking lint and format (ruff)"
lint=0
.venv/bin/ruff check . || lint=1
.venv/bin/ruff format --check . || lint=1

say "Running the test suite"
set +e
"$PY" -m pytest --create-db "$@"
status=$?
set -e
say "Finished in $(( $(date +%s) - started ))s (pytest exit status $status)"
if [ "$status" = 5 ]; then
    die "pytest collected no tests: that is a failure, not a pass"
fi
if [ "$status" = 0 ] && [ "$lint" != 0 ]; then
    die "the tests passed but ruff found problems (above): run .venv/bin/ruff check --fix . && .venv/bin/ruff format ."
fi
exit "$status"
