"""Django's PostgreSQL backend, with a health check of a reused connection that sends nothing.

With ``CONN_HEALTH_CHECKS`` (on in every environment: ``config.settings.env.database``)
Django checks a connection kept from an earlier request or task before its first use, so a
connection the server closed in between (a restart, a failover, an administrator ending it,
PgBouncer restarting) is replaced instead of failing the request. Django's check sends
``SELECT 1``: a round trip on every request. Here the check asks the socket instead.

An idle connection receives nothing: the server speaks only when asked, except to say
goodbye (a server shutting down or ending the session sends its reason and closes the
connection; a process that dies has its socket closed by the system). So when the socket has
anything to read, or the driver already found the connection broken, the connection is
closed and the next statement opens a new one; otherwise it is used as it is, with nothing
sent. Like ``SELECT 1`` it cannot see a peer that vanished without a word (no FIN nor RST
yet); there ``SELECT 1`` would wait just as long as the statement it guards.

A connection that saw an error keeps Django's own check (``is_usable``, ``SELECT 1``) at the
end of the request: that one tests what the error may have left behind.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if (
            self.connection is None
            or not self.health_check_enabled
            or self.health_check_done
            or self.pool
        ):
            return super().close_if_health_check_failed()
        if not still_open(self.connection):
            self.close()
        self.health_check_done = True


def still_open(raw) -> bool:
    """Whether the idle psycopg connection ``raw`` is still open at the server's end, as far
    as can be seen without sending anything."""
    if raw.closed or raw.broken:
        return False
    pgconn = raw.pgconn
    if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    poller = select.poll()
    poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
    return not poller.poll(0)  # anything to read on an idle connection: the server left
