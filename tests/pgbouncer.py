"""A real PgBouncer for tests and benchmarks: started on a free port with a generated
configuration, in transaction pooling, in front of the PostgreSQL the tests use.

The binary is ``$PGBOUNCER`` when set; else the one scripts/test.sh builds into
var/tools/pgbouncer when the system's is too old to keep prepared statements; else Debian's
package (``/usr/sbin/pgbouncer``; scripts/test.sh installs it when missing).
PgBouncer 1.21 or later keeps protocol-level prepared statements working in transaction
pooling (``max_prepared_statements``); ``prepared_statements`` says whether this one does.
"""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

_BUILT = (
    Path(__file__).resolve().parent.parent / "var" / "tools" / "pgbouncer" / "bin" / "pgbouncer"
)
BINARY = (
    os.environ.get("PGBOUNCER")
    or (str(_BUILT) if _BUILT.exists() else None)
    or shutil.which("pgbouncer")
    or "/usr/sbin/pgbouncer"
)


def available() -> bool:
    return Path(BINARY).exists()


def version() -> tuple[int, int]:
    out = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=10).stdout
    major, minor = re.search(r"PgBouncer (\d+)\.(\d+)", out).groups()
    return int(major), int(minor)


class PgBouncer:
    def __init__(self, *, host: str, port: int, user: str, workdir: Path, pool_size: int = 10):
        self.server_host, self.server_port, self.user = host, port, user
        self.workdir, self.pool_size = workdir, pool_size
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def prepared_statements(self) -> bool:
        return version() >= (1, 21)

    def url(self, database: str, password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgres://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> "PgBouncer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "users.txt").write_text(f'"{self.user}" ""\n')
        command = [BINARY]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root: it drops to the postgres user, which must be
            # able to read its files and write its log.
            command += ["-u", "postgres"]
            for path in (self.workdir, *self.workdir.parents):
                if str(path) in ("/", "/tmp"):
                    break
                path.chmod(path.stat().st_mode | 0o755)
            self.workdir.chmod(0o777)
        lines = [
            "[databases]",
            f"* = host={self.server_host} port={self.server_port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"admin_users = {self.user}",
            f"auth_file = {self.workdir / 'users.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 500",
            "server_reset_query =",
            "ignore_startup_parameters = extra_float_digits,options",
            f"logfile = {self.workdir / 'pgbouncer.log'}",
        ]
        if self.prepared_statements:
            lines.append("max_prepared_statements = 200")
        ini = self.workdir / "pgbouncer.ini"
        ini.write_text("\n".join(lines) + "\n")
        ini.chmod(0o644)
        (self.workdir / "users.txt").chmod(0o644)
        self.process = subprocess.Popen(
            [*command, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        log = self.workdir / "pgbouncer.log"
        raise RuntimeError(f"pgbouncer did not start: {log.read_text() if log.exists() else ''}")

    def stats(self) -> dict[str, dict[str, int]]:
        """``SHOW STATS`` of the admin console: per database, its counters."""
        import psycopg

        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as conn:
            result = conn.pgconn.exec_(b"SHOW STATS")  # the console speaks the simple protocol only
            names = [result.fname(i).decode() for i in range(result.nfields)]
            rows = [
                dict(zip(names, (result.get_value(r, i) for i in range(result.nfields))))
                for r in range(result.ntuples)
            ]
        return {
            row["database"].decode(): {
                k: int(v) for k, v in row.items() if k != "database" and v is not None
            }
            for row in rows
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
