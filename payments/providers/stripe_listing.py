"""What Stripe says about recent payments, read for reconciliation (reads only, no writes).

Listed with the Stripe adapter's own ``StripeClient``: Checkout Sessions, refunds and
disputes created since a moment (all pages), then the sessions of our recent orders the
listing did not include (a PENDING order opened before the window), the disputes we hold
open that the listing did not include (opened before the window, maybe closed since) and,
for every payment with a refund in the window or a refund we counted while Stripe had not
completed it, all its refunds, so the refunded amount is cumulative like the one
``charge.refunded`` reports and a refund that failed later is seen. Any Stripe error
aborts the whole read.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import stripe

from .exceptions import ProviderError
from .providers import STRIPE, get_provider
from .providers.stripe_provider import from_minor
from .refunds import COUNTED

#: At most this many objects of one kind are read per run (a runaway listing is an error).
MAX_OBJECTS = 10_000


@dataclass
class StripeListing:
    sessions: list[dict] = field(default_factory=list)  # created since the window opened
    extra_sessions: list[dict] = field(default_factory=list)  # our orders' sessions outside it
    refunds: list[dict] = field(default_factory=list)
    disputes: list[dict] = field(default_factory=list)
    extra_disputes: list[dict] = field(default_factory=list)  # disputes we hold open, opened before the window
    #: Cumulative per payment, counting refunds that succeeded or are on their way (pending,
    #: requires_action), as the order's refunded amount does.
    refunded_by_intent: dict[str, Decimal] = field(default_factory=dict)
    refunds_by_intent: dict[str, list[dict]] = field(default_factory=dict)  # every refund, any status
    orders: list = field(default_factory=list)  # the recent orders of ours that were compared

    @property
    def known_sessions(self) -> set[str]:
        return {s["id"] for s in self.all_sessions()}

    def all_sessions(self) -> list[dict]:
        return self.sessions + self.extra_sessions

    def all_disputes(self) -> list[dict]:
        return self.disputes + self.extra_disputes

    @classmethod
    def fetch(cls, *, since: datetime, orders, open_disputes=(), refunds_in_flight=()) -> "StripeListing":
        client = get_provider(STRIPE).client
        created = {"gte": int(since.timestamp())}
        listing = cls(orders=list(orders))
        try:
            listing.sessions = _all(client.v1.checkout.sessions.list({"created": created, "limit": 100}))
            listing.refunds = _all(client.v1.refunds.list({"created": created, "limit": 100}))
            listing.disputes = _all(client.v1.disputes.list({"created": created, "limit": 100}))
            listed = {s["id"] for s in listing.sessions}
            for order in listing.orders:
                if order.provider_order_id and order.provider_order_id not in listed:
                    try:
                        session = client.v1.checkout.sessions.retrieve(order.provider_order_id)
                    except stripe.InvalidRequestError as exc:
                        if getattr(exc, "http_status", None) == 404:
                            continue  # Stripe does not know it: compared as unknown
                        raise
                    listing.extra_sessions.append(_plain(session))
            listed_disputes = {d["id"] for d in listing.disputes}
            for dispute_id in open_disputes:
                if dispute_id not in listed_disputes:
                    try:
                        listing.extra_disputes.append(_plain(client.v1.disputes.retrieve(dispute_id)))
                    except stripe.InvalidRequestError as exc:
                        if getattr(exc, "http_status", None) != 404:
                            raise
            intents = sorted(({_id(r.get("payment_intent")) for r in listing.refunds} | set(refunds_in_flight)) - {""})
            for intent in intents:
                totals: dict[str, Decimal] = defaultdict(Decimal)
                refunds = _all(client.v1.refunds.list({"payment_intent": intent, "limit": 100}))
                listing.refunds_by_intent[intent] = refunds
                for refund in refunds:
                    if refund.get("status") in COUNTED:
                        currency = (refund.get("currency") or "").upper()
                        totals[currency] += from_minor(refund.get("amount"), currency) or Decimal("0")
                if totals:
                    listing.refunded_by_intent[intent] = max(totals.values())
        except stripe.StripeError as exc:
            status = getattr(exc, "http_status", None) or 0
            retryable = isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or status >= 500
            raise ProviderError(f"Stripe listing failed: HTTP {status or '-'} {type(exc).__name__}: "
                                f"{getattr(exc, 'user_message', None) or exc}", retryable=retryable,
                                provider=STRIPE, code=getattr(exc, "code", "") or str(status)) from exc
        for dispute in listing.all_disputes():
            dispute["payment_intent"] = _id(dispute.get("payment_intent"))
        for session in listing.all_sessions():
            session["payment_intent"] = _id(session.get("payment_intent"))
        return listing


def _all(page) -> list[dict]:
    items = []
    for item in page.auto_paging_iter():
        items.append(_plain(item))
        if len(items) >= MAX_OBJECTS:
            raise ProviderError(f"Stripe listed more than {MAX_OBJECTS} objects; narrow the window.",
                                provider=STRIPE, code="TOO_MANY")
    return items


def _plain(obj) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _id(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.get("id", "") or ""
