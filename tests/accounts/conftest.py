"""Helpers for the account tests: a clean slate of rate limits, links read from the outbox."""

import re

import pytest
from django.conf import settings
from django.core import mail

LINK = re.compile(r"https?://[^\s]+")


@pytest.fixture(autouse=True)
def reset_rate_limits():
    """Forget allauth's rate-limit counters so each test starts from zero attempts."""
    import redis

    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    for key in client.scan_iter(match=f"{prefix}:*:allauth:rl:*"):
        client.delete(key)
    yield


def links_in(message) -> list[str]:
    return LINK.findall(message.body)


def confirmation_link(email: str) -> str:
    """The confirmation link in the last email sent to ``email``."""
    sent = [m for m in mail.outbox if email in m.to]
    assert sent, f"no email was sent to {email}; outbox: {[m.to for m in mail.outbox]}"
    links = [link for link in links_in(sent[-1]) if "/confirm-email/" in link]
    assert links, f"no confirmation link in:\n{sent[-1].body}"
    return links[0]
