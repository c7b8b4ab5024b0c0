#!/usr/bin/env bash
# Install everything and run the whole test suite against real PostgreSQL and Redis.
# Starts PostgreSQL and Redis when they are not running (installing Debian's packages when
# it can), installs Debian's chromium for the browser tests, and fails when no test ran.
#   scripts/test.sh                  # the whole suite
#   scripts/test.sh tests/credits -x # any pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

DB_NAME=${TEST_DB_NAME:-credits}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB_NAME}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/15}
export CELERY_BROKER_URL=${CELERY_BROKER_URL:-$REDIS_URL}
export DJANGO_SETTINGS_MODULE=config.settings.test
export DJANGO_ALLOW_ASYNC_UNSAFE=true

is_root() { [ "$(id -u)" = 0 ]; }
can_apt() { is_root && command -v apt-get >/dev/null 2>&1; }
APT_UPDATED=
apt_install() {
    if [ -z "$APT_UPDATED" ]; then apt-get update -qq >/dev/null || true; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
ensure_postgres() {
    pg_up && return 0
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        can_apt || die "PostgreSQL is not running on 127.0.0.1:5432 and cannot be installed here (install PostgreSQL 15+ or set DATABASE_URL)"
        say "Installing PostgreSQL (Debian package postgresql)"
        apt_install postgresql || die "apt-get install postgresql failed"
    fi
    say "Starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
        pg_ctlcluster "$version" main start || die "could not start PostgreSQL $version"
    for _ in $(seq 30); do pg_up && break; sleep 1; done
    pg_up || die "PostgreSQL did not come up on 127.0.0.1:5432"
}

# A freshly installed Debian PostgreSQL asks for a password over TCP: give the postgres role one.
ensure_db_login() {
    "$PSQL" "$ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1 && return 0
    is_root && command -v su >/dev/null 2>&1 ||
        die "cannot log in to PostgreSQL as postgres on 127.0.0.1 (set DATABASE_URL to a role that can create databases)"
    say "Setting a password for the postgres role (local test server)"
    su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null ||
        die "could not set the postgres role's password"
    export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/$DB_NAME"
    ADMIN_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
    "$PSQL" "$ADMIN_URL" -Atqc 'select 1' >/dev/null || die "cannot log in to PostgreSQL"
}

redis_up() { "$VENV_PY" -c "import redis,sys; redis.Redis.from_url('$REDIS_URL', socket_connect_timeout=1).ping()" 2>/dev/null; }
ensure_redis() {
    redis_up && return 0
    if ! command -v redis-server >/dev/null 2>&1; then
        can_apt || die "Redis is not running on 127.0.0.1:6379 and cannot be installed here (install redis-server or set REDIS_URL)"
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
    can_apt || die "Chromium is missing at /usr/bin/chromium (install Debian's chromium package) for the browser tests"
    say "Installing Chromium (Debian package chromium) for the browser tests"
    apt_install chromium || die "apt-get install chromium failed"
}

sync_env
VENV_PY=.venv/bin/python
ensure_postgres
command -v psql >/dev/null 2>&1 || { can_apt && apt_install postgresql-client; }
PSQL=psql
ADMIN_URL="${DATABASE_URL%/*}/postgres"
ensure_db_login
ensure_redis
ensure_chromium

say "Running the test suite"
set +e
"$VENV_PY" -m pytest --create-db "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    die "pytest collected no tests: that is a failure, not a pass"
fi
exit "$status"
