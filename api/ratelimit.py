"""Fixed-window request limits per key and per user, counted in the shared cache (Redis).

One pipelined round trip per request (``INCR`` and ``EXPIRE NX`` of both counters); the
first request of a window gives its counter the window's lifetime. Both counters count every
request that reaches the check, refused ones included. Past the limit the request is refused with 429 ``rate_limited`` and
``Retry-After`` (the seconds left in the window). Without Redis (the development default, a
per-process cache) the limits hold per process only.
"""

import time

from django.core.cache import cache

from core.errors import ApplicationError

from .app_settings import app_settings


class RateLimited(ApplicationError):
    code = "rate_limited"
    status = 429
    retryable = True

    def __init__(self, *, scope: str, limit: int, window: int, retry_after: int):
        super().__init__(
            f"Too many requests: at most {limit} per {window} seconds per {scope}.",
            extra={"scope": scope, "limit": limit, "window_seconds": window},
        )
        self.retry_after = retry_after


def _redis():
    """The Redis client behind the shared cache, or None (another cache backend)."""
    inner = getattr(cache, "_cache", None)
    get_client = getattr(inner, "get_client", None)
    return get_client(None, write=True) if get_client is not None else None


def _counts(names: list[str], *, window: int, now: float) -> list[int]:
    """Count one request against each of ``names`` in the current window; their new counts.

    With Redis: one round trip (INCR and EXPIRE NX per counter in a pipeline)."""
    start = int(now) // window * window
    keys = [cache.make_and_validate_key(f"api:rl:{name}:{start}") for name in names]
    client = _redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, window + 1, nx=True)
        return [int(v) for v in pipe.execute()[::2]]
    counts = []
    for name in names:
        counter = f"api:rl:{name}:{start}"
        cache.add(counter, 0, timeout=window + 1)
        counts.append(cache.incr(counter))
    return counts


def rate_limit_check(*, key_id: int, user_id: int) -> None:
    """Count this request for the key and for its owner; raise RateLimited over either."""
    window = app_settings.RATE_WINDOW_SECONDS
    now = time.time()
    limits = (
        ("key", f"k{key_id}", app_settings.RATE_PER_KEY),
        ("user", f"u{user_id}", app_settings.RATE_PER_USER),
    )
    counts = _counts([name for _, name, _ in limits], window=window, now=now)
    for (scope, _, limit), count in zip(limits, counts, strict=True):
        if count > limit:
            wait = max(1, int(now) // window * window + window - int(now))
            raise RateLimited(scope=scope, limit=limit, window=window, retry_after=wait)
