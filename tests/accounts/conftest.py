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


def sent_mail() -> list:
    """The emails sent so far (Django's test outbox), after delivering the outbox table.

    Account emails are sent after the request commits; inside a test's transaction nothing
    commits, so the test delivers what the outbox holds, as the beat sweep would.
    """
    from accounts.tasks import send_due_outbound_emails

    send_due_outbound_emails()
    return mail.outbox


def confirmation_link(email: str) -> str:
    """The confirmation link in the last email sent to ``email``."""
    sent = [m for m in sent_mail() if email in m.to]
    assert sent, f"no email was sent to {email}; outbox: {[m.to for m in mail.outbox]}"
    links = [link for link in links_in(sent[-1]) if "/confirm-email/" in link]
    assert links, f"no confirmation link in:\n{sent[-1].body}"
    return links[0]
