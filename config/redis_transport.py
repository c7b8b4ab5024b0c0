"""kombu's Redis transport, with the fault that ends a worker when Redis goes away mid-task fixed.

The fault (kombu 5.7.0, the newest release at the time): Redis goes away while a prefork
worker runs a task. Celery collects the broken connection: closing the consuming channel
first reads its pending BRPOP from the dead socket, fails, and leaves the channel open; kombu
then detaches the transport (``transport.client = None``). Celery closes the connection once
more, which closes that channel for real: it restores the task's unacknowledged message
through a new connection pool built from ``transport.client`` and raises AttributeError
("'NoneType' object has no attribute 'hostname'"). That is not a connection error, so it
escapes Celery's reconnect loop: "Unrecoverable error", and the worker exits. An idle
worker has nothing to restore and survives.

Here a channel of a detached transport says what the situation is, a connection error, which
Celery ignores like any other failure to reach Redis while it closes, and reconnects. The
message stays in Redis's unacknowledged set (restored after the visibility timeout); the
work it carried is due in the database too (webhook events, generation jobs, emails), so the
sweeps queue it again long before that.

Each channel also keeps one Redis client for the commands it sends (publishing a task, an
acknowledgement) instead of building a new client object around the same connection pool for
every command, as kombu does: that cost more than the LPUSH itself on the webhook path.

Used for ``redis://`` broker URLs (``CELERY_BROKER_TRANSPORT`` in config/settings/base.py).
"""

from contextlib import contextmanager

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise RedisConnectionError("The broker connection is closed (Redis went away).")
        return super()._connparams(asynchronous=asynchronous)

    _kept_client = None
    _kept_for_pool = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool
        if self._kept_client is None or self._kept_for_pool is not pool:
            self._kept_client, self._kept_for_pool = self._create_client(), pool
        yield self._kept_client


class Transport(kombu_redis.Transport):
    Channel = Channel
