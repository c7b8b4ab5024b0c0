# Shared by scripts/run.sh and scripts/test.sh: find Python 3.11+, install uv, sync the venv.
# shellcheck shell=bash

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

find_python() {
    for candidate in "${PYTHON:-}" python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    die "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"
}

# uv lives in its own small venv under var/, so syncing the project venv never removes it.
ensure_uv() {
    if [ -x var/tools/bin/uv ]; then UV=var/tools/bin/uv; return; fi
    local python
    python=$(find_python)
    say "Installing uv (the package manager) into var/tools"
    mkdir -p var
    "$python" -m venv var/tools || die "could not create a virtualenv: install python3-venv"
    var/tools/bin/pip install --quiet --disable-pip-version-check "uv>=0.5,<1" || die "could not install uv from PyPI"
    UV=var/tools/bin/uv
}

# sync_env [--dev]: install exactly what uv.lock says into .venv.
sync_env() {
    ensure_uv
    local python
    python=$(find_python)
    say "Installing the project's packages (uv sync $*)"
    UV_PYTHON="$python" "$UV" sync --frozen "$@" || die "uv sync failed"
}
