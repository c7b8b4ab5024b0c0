"""One beat scheduler at a time, guaranteed by a lock in Redis rather than by documentation.

``LockedDatabaseScheduler`` is django-celery-beat's DatabaseScheduler that first takes the
beat lock (``SET NX`` with an expiry, a random token of its own) and keeps it on every tick.
A second beat started by mistake, or a standby one, waits for the lock and starts sending
only when the first has stopped or died (its lock then runs out within ``BEAT_LOCK_SECONDS``).
A beat that finds it has lost the lock (Redis was flushed, a pause longer than the expiry)
stops at once rather than send the schedule twice; its restart waits for the lock again.

The periodic tasks are idempotent sweeps, so a lost tick delays work and a second sender for
a moment would repeat a sweep, never a payment; the lock keeps even that from happening.
"""

import logging
import os
import socket
import time
import uuid

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

LOCK_KEY = "celery-beat-lock"
#: Keep the lock only while its holder renews it: compare the token, then extend.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class BeatLock:
    """The lock itself: ``acquire`` (non-blocking), ``renew``, ``release``."""

    def __init__(self, client, *, key: str = LOCK_KEY, seconds: float = 60):
        self.client, self.key, self.ms = client, key, int(seconds * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ms))

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ms))

    def release(self) -> bool:
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))

    def holder(self) -> str:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else (value or "")


def lock_client():
    """Redis for the lock: the cache's server (REDIS_URL), else the broker's."""
    import redis

    url = settings.REDIS_URL or settings.CELERY_BROKER_URL
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


class LockedDatabaseScheduler(DatabaseScheduler):
    """DatabaseScheduler that runs only while it holds the beat lock."""

    lock_seconds = float(os.environ.get("BEAT_LOCK_SECONDS", 60))
    wait_seconds = float(os.environ.get("BEAT_LOCK_WAIT_SECONDS", 5))

    def setup_schedule(self):
        key = getattr(settings, "CELERY_BEAT_LOCK_KEY", "") or (
            settings.CELERY_QUEUE_PREFIX + LOCK_KEY
        )
        self.beat_lock = BeatLock(lock_client(), key=key, seconds=self.lock_seconds)
        announced = False
        while not self.beat_lock.acquire():
            if not announced:
                logger.warning(
                    "beat: another scheduler holds the beat lock (%s); waiting for it",
                    self.beat_lock.holder(),
                )
                announced = True
            time.sleep(self.wait_seconds)
        logger.info("beat: lock taken (%s); sending the schedule", self.beat_lock.token)
        super().setup_schedule()

    def tick(self, *args, **kwargs):
        if not self.beat_lock.renew():
            logger.error("beat: the beat lock was lost; stopping so that one beat runs at a time")
            raise SystemExit(3)
        interval = super().tick(*args, **kwargs)
        # Wake up well before the lock could run out.
        return min(interval, self.lock_seconds / 3)

    def close(self):
        try:
            super().close()
        finally:
            lock = getattr(self, "beat_lock", None)
            if lock is not None:
                try:
                    lock.release()
                except Exception:  # noqa: BLE001 - it runs out by itself
                    logger.warning("beat: could not release the lock", exc_info=True)
