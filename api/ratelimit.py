"""Fixed-window request limits per key and per user, counted in the shared cache (Redis).

One ``INCR`` per limit per request; the first request of a window creates its counter with
the window's lifetime. Past the limit the request is refused with 429 ``rate_limited`` and
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


def _hit(name: str, *, limit: int, window: int, now: float) -> int | None:
    """Count one request against ``name``; the seconds to wait when over ``limit``, else None."""
    start = int(now) // window * window
    counter = f"api:rl:{name}:{start}"
    cache.add(counter, 0, timeout=window + 1)
    try:
        count = cache.incr(counter)
    except ValueError:  # expired between add and incr
        cache.add(counter, 1, timeout=window + 1)
        count = 1
    if count > limit:
        return max(1, start + window - int(now))
    return None


def rate_limit_check(*, key_id: int, user_id: int) -> None:
    """Count this request for the key and for its owner; raise RateLimited over either."""
    window = app_settings.RATE_WINDOW_SECONDS
    now = time.time()
    for scope, name, limit in (
        ("key", f"k{key_id}", app_settings.RATE_PER_KEY),
        ("user", f"u{user_id}", app_settings.RATE_PER_USER),
    ):
        wait = _hit(name, limit=limit, window=window, now=now)
        if wait is not None:
            raise RateLimited(scope=scope, limit=limit, window=window, retry_after=wait)
