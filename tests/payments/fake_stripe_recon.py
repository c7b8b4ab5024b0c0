"""The fake Stripe of the buying tests, plus the list endpoints reconciliation reads.

``GET /v1/checkout/sessions``, ``/v1/refunds`` and ``/v1/disputes`` as Stripe serves them:
newest first, ``created[gte]`` and ``payment_intent`` filters, ``limit`` and
``starting_after`` pagination with ``has_more``; ``GET /v1/disputes/{id}``. Objects get a
``created`` time when made; ``backdate`` moves it into the past. ``gather`` holds requests
to a path until a number of them are waiting (two readers seeing the same moment).
"""

import secrets
import threading
import time

import pytest
import stripe

from tests.payments.fake_stripe import FakeStripe

LISTS = {"/v1/checkout/sessions": "sessions", "/v1/refunds": "refunds", "/v1/disputes": "disputes"}


class ReconFakeStripe(FakeStripe):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.disputes: dict[str, dict] = {}
        self.page_size = 100  # Stripe's largest page; tests lower it to make the client page
        self._gates: dict[str, threading.Barrier] = {}

    def gather(self, path: str, parties: int, *, timeout: float = 20) -> None:
        """Hold the next GETs of ``path`` until ``parties`` of them are waiting, then answer
        them all (once: later requests are answered at once)."""
        self._gates[path] = threading.Barrier(parties, timeout=timeout)

    def close_dispute(self, dispute_id: str, status: str) -> dict:
        """The bank decides (or the dispute moves on): its status changes at Stripe."""
        with self.lock:
            self.disputes[dispute_id]["status"] = status
            return dict(self.disputes[dispute_id])

    def _handle(self, request, method):
        gate = self._gates.get(request.path.split("?")[0]) if method == "GET" else None
        if gate is not None:
            try:
                gate.wait()
            except threading.BrokenBarrierError:
                pass
            self._gates.pop(request.path.split("?")[0], None)
        super()._handle(request, method)

    def open_dispute(self, payment_intent: str, *, status: str = "needs_response") -> dict:
        """A dispute the bank opened (its webhook may never reach us)."""
        with self.lock:
            dispute = self.dispute(payment_intent, status=status)
            dispute["created"] = int(time.time())
            self.disputes[dispute["id"]] = dispute
            return dict(dispute)

    def backdate(self, object_id: str, seconds: int) -> None:
        with self.lock:
            for store in (self.sessions, self.refunds, self.disputes):
                if object_id in store:
                    store[object_id]["created"] -= seconds

    def _route(self, method, path, params):
        if method == "GET" and path in LISTS:
            return self._list(getattr(self, LISTS[path]), params, path)
        if method == "GET" and path.startswith("/v1/disputes/"):
            dispute = self.disputes.get(path.rsplit("/", 1)[1])
            if dispute is None:
                return self._error(404, "No such dispute", "resource_missing")
            return 200, self.public(dispute)
        return super()._route(method, path, params)

    def _create_session(self, params):
        return self._stamped(self.sessions, *super()._create_session(params))

    def _create_refund(self, params):
        return self._stamped(self.refunds, *super()._create_refund(params))

    def _stamped(self, store: dict, status: int, body: dict):
        if status == 200 and body.get("id") in store:
            store[body["id"]].setdefault("created", int(time.time()))
            body["created"] = store[body["id"]]["created"]
        return status, body

    def _list(self, store: dict, params: dict, path: str):
        items = sorted(
            (self.public(o) for o in store.values()), key=lambda o: (-o.get("created", 0), o["id"])
        )
        gte = (
            (params.get("created") or {}).get("gte")
            if isinstance(params.get("created"), dict)
            else None
        )
        if gte is not None:
            items = [o for o in items if o.get("created", 0) >= int(gte)]
        if params.get("payment_intent"):
            items = [o for o in items if o.get("payment_intent") == params["payment_intent"]]
        if params.get("starting_after"):
            ids = [o["id"] for o in items]
            items = (
                items[ids.index(params["starting_after"]) + 1 :]
                if params["starting_after"] in ids
                else []
            )
        limit = min(int(params.get("limit") or 10), self.page_size)
        return 200, {
            "object": "list",
            "data": items[:limit],
            "has_more": len(items) > limit,
            "url": path,
        }


@pytest.fixture
def recon_stripe(settings, monkeypatch):
    """Stripe configured and pointed at the listing fake (a small page size to exercise paging)."""
    fake = ReconFakeStripe(webhook_secret="whsec_" + secrets.token_hex(8)).start()
    stripe.enable_telemetry = False
    values = {
        "STRIPE_SECRET_KEY": "sk_test_fake",
        "STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
        "STRIPE_API_BASE": fake.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    for name, value in values.items():
        setattr(settings, name, value)
        monkeypatch.setenv(name, value)
    try:
        yield fake
    finally:
        fake.stop()
