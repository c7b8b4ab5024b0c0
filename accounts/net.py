"""The client's IP address, as far as our own proxies vouch for it."""

import ipaddress

from django.http import HttpRequest

from .app_settings import app_settings


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(request: HttpRequest | None) -> str | None:
    """The address the request came from, or None when it cannot be told.

    With ``TRUSTED_PROXY_COUNT = 0`` (the default) that is ``REMOTE_ADDR``: the
    X-Forwarded-For header is ignored because any client can send one. With N trusted
    proxies in front of the app, each appending the address it saw, the client is the N-th
    entry from the right; entries further left were written by the client and are not
    believed. A header shorter than N (a request that bypassed a proxy) falls back to
    ``REMOTE_ADDR``.
    """
    if request is None:
        return None
    count = app_settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        if len(hops) >= count:
            return _clean(hops[-count])
    return _clean(request.META.get("REMOTE_ADDR"))
