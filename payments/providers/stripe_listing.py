"""Stripe's listings for reconciliation, as plain dicts (reads only, no writes).

Listed with the Stripe adapter's own ``StripeClient``: Checkout Sessions, refunds and
disputes created since a moment (all pages), then the sessions of our recent orders the
listing did not include (a PENDING order opened before the window), the disputes we hold
open that the listing did not include (opened before the window, maybe closed since) and,
for every payment with a refund in the window or a refund we counted while Stripe had not
completed it, all its refunds, so the refunded amount is cumulative like the one
``charge.refunded`` reports and a refund that failed later is seen. Any Stripe error is a
``ProviderError`` that aborts the whole read.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import stripe

from ..exceptions import ProviderError

NAME = "STRIPE"
#: At most this many objects of one kind are read per run (a runaway listing is an error).
MAX_OBJECTS = 10_000


def list_sessions(
    client: stripe.StripeClient, *, since: datetime, orders: Sequence
) -> tuple[list[dict], int]:
    """The sessions created since ``since`` and those of ``orders`` the listing left out (one
    Stripe does not know is left out), and how many the window held."""
    with _listing_errors():
        sessions = _all(
            client.v1.checkout.sessions.list({"created": _created(since), "limit": 100})
        )
        listed = {s["id"] for s in sessions}
        extra = [
            _retrieve(client.v1.checkout.sessions, order.provider_order_id)
            for order in orders
            if order.provider_order_id and order.provider_order_id not in listed
        ]
    return sessions + [s for s in extra if s is not None], len(sessions)


def list_refunds(
    client: stripe.StripeClient, *, since: datetime, payment_ids: Sequence[str]
) -> tuple[list[tuple[str, dict]], int]:
    """(payment intent, refund) for every refund of each payment refunded since ``since`` and
    of each of ``payment_ids``, and how many refunds the window held."""
    with _listing_errors():
        recent = _all(client.v1.refunds.list({"created": _created(since), "limit": 100}))
        intents = sorted(({_id(r.get("payment_intent")) for r in recent} | set(payment_ids)) - {""})
        refunds = [
            (intent, refund)
            for intent in intents
            for refund in _all(client.v1.refunds.list({"payment_intent": intent, "limit": 100}))
        ]
    return refunds, len(recent)


def payment_refunds(client: stripe.StripeClient, *, payment_intent: str) -> list[dict]:
    """Every refund of one payment as Stripe has it now."""
    with _listing_errors():
        return _all(client.v1.refunds.list({"payment_intent": payment_intent, "limit": 100}))


def list_disputes(
    client: stripe.StripeClient, *, since: datetime, open_ids: Sequence[str]
) -> tuple[list[dict], int]:
    """The disputes created since ``since`` and those of ``open_ids`` the listing left out
    (one Stripe does not know is left out), and how many the window held."""
    with _listing_errors():
        disputes = _all(client.v1.disputes.list({"created": _created(since), "limit": 100}))
        listed = {d["id"] for d in disputes}
        extra = [
            _retrieve(client.v1.disputes, dispute_id)
            for dispute_id in open_ids
            if dispute_id not in listed
        ]
    return disputes + [d for d in extra if d is not None], len(disputes)


@contextmanager
def _listing_errors() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None) or 0
        retryable = (
            isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or status >= 500
        )
        raise ProviderError(
            f"Stripe listing failed: HTTP {status or '-'} {type(exc).__name__}: "
            f"{getattr(exc, 'user_message', None) or exc}",
            retryable=retryable,
            provider=NAME,
            code=getattr(exc, "code", "") or str(status),
        ) from exc


def _retrieve(service, object_id: str) -> dict | None:
    """The object, or None when Stripe answers 404."""
    try:
        return _plain(service.retrieve(object_id))
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) == 404:
            return None
        raise


def _created(since: datetime) -> dict:
    return {"gte": int(since.timestamp())}


def _all(page) -> list[dict]:
    items = []
    for item in page.auto_paging_iter():
        items.append(_plain(item))
        if len(items) >= MAX_OBJECTS:
            raise ProviderError(
                f"Stripe listed more than {MAX_OBJECTS} objects; narrow the window.",
                provider=NAME,
                code="TOO_MANY",
            )
    return items


def _plain(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _id(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.get("id", "") or ""
