# Shared by scripts/run.sh and scripts/test.sh: find Python 3.11/3.12, install uv, sync the venv.
# shellcheck shell=bash

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }
# Run as root: directly when we are root, through passwordless sudo when that works.
as_root() {
    if is_root; then "$@"; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi
}
can_apt() { command -v apt-get >/dev/null 2>&1 && { is_root || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; }; }
APT_UPDATED=
apt_install() {
    if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq >/dev/null || true; APT_UPDATED=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The project supports Python 3.11 and 3.12 (pyproject.toml: requires-python).
find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    die "Python 3.11 or 3.12 is needed (set PYTHON=/path/to/python3.11)"
}

# uv lives in its own small venv under var/tools, so syncing the project venv never removes it.
ensure_uv() {
    if [ -x var/tools/bin/uv ]; then UV=var/tools/bin/uv; return; fi
    local python
    python=$(find_python)
    say "Installing uv (the package manager) into var/tools"
    mkdir -p var
    if ! "$python" -m venv var/tools >/dev/null 2>&1; then
        rm -rf var/tools
        # Debian splits venv/ensurepip into python3.X-venv.
        local venv_pkg
        venv_pkg="python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
        can_apt || die "$python cannot create virtualenvs: install the $venv_pkg package"
        say "Installing Debian's $venv_pkg"
        apt_install "$venv_pkg" || apt_install python3-venv || die "apt-get install $venv_pkg failed"
        "$python" -m venv var/tools || die "could not create a virtualenv with $python"
    fi
    var/tools/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1" ||
        die "could not install uv from PyPI (is the network reachable?)"
    UV=var/tools/bin/uv
}

# sync_env [uv sync options]: install what uv.lock says into .venv.
sync_env() {
    ensure_uv
    local python
    python=$(find_python)
    say "Installing the project's packages (uv sync --frozen $*)"
    UV_PYTHON="$python" "$UV" sync --frozen "$@" || die "uv sync failed"
}
