"""The fake PayPal, taught PayPal Subscriptions over HTTP: catalog products, billing plans,
subscriptions (approval, activation, cancellation), each period's sale and its transactions
list, and the events PayPal sends for them (signed like every other fake PayPal event)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.payments.fake_paypal import Call, FakePayPal, _id, _not_found

PERIOD = timedelta(days=30)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakePayPalBilling(FakePayPal):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.products: dict[str, dict] = {}
        self.plans: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.sales: dict[str, list[dict]] = {}  # subscription id -> its transactions

    # --- what a test does to PayPal's side ---------------------------------------------------

    def approve_subscription(self, sub_id: str) -> list[dict]:
        """The buyer approves: the subscription activates and its first period is paid."""
        with self.lock:
            sub = self.subscriptions[sub_id]
            now = datetime.now(UTC)
            sub.update(status="ACTIVE", start_time=_iso(now))
            sale = self._sale(sub, now)
            sub["billing_info"] = {
                "next_billing_time": _iso(now + PERIOD),
                "last_payment": {
                    "amount": sale["amount_with_breakdown"]["gross_amount"],
                    "time": sale["time"],
                },
                "failed_payments_count": 0,
            }
            return [
                self.event(
                    "BILLING.SUBSCRIPTION.ACTIVATED", dict(sub), resource_type="subscription"
                ),
                self._sale_event(sub, sale),
            ]

    def bill(self, sub_id: str, *, fail: bool = False) -> list[dict]:
        """The next billing date comes (now): the period is paid, or the payment fails and the
        subscription is suspended."""
        with self.lock:
            sub = self.subscriptions[sub_id]
            if fail:
                sub["status"] = "SUSPENDED"
                sub["billing_info"]["failed_payments_count"] += 1
                return [
                    self.event(
                        "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
                        dict(sub),
                        resource_type="subscription",
                    ),
                    self.event(
                        "BILLING.SUBSCRIPTION.SUSPENDED", dict(sub), resource_type="subscription"
                    ),
                ]
            now = datetime.now(UTC) + timedelta(seconds=1)
            sale = self._sale(sub, now)
            sub["status"] = "ACTIVE"
            sub["billing_info"].update(
                next_billing_time=_iso(now + PERIOD),
                last_payment={
                    "amount": sale["amount_with_breakdown"]["gross_amount"],
                    "time": sale["time"],
                },
            )
            return [self._sale_event(sub, sale)]

    def refund_sale(self, sale_id: str, value: str) -> dict:
        with self.lock:
            sale = next(s for sales in self.sales.values() for s in sales if s["id"] == sale_id)
            return self.event(
                "PAYMENT.SALE.REFUNDED",
                {
                    "id": _id(),
                    "sale_id": sale_id,
                    "state": "completed",
                    "amount": {
                        "total": value,
                        "currency": sale["amount_with_breakdown"]["gross_amount"]["currency_code"],
                    },
                },
                resource_type="refund",
            )

    def _sale(self, sub: dict, when: datetime) -> dict:
        plan = self.plans[sub["plan_id"]]
        price = plan["billing_cycles"][0]["pricing_scheme"]["fixed_price"]
        sale = {
            "id": _id(),
            "status": "COMPLETED",
            "amount_with_breakdown": {"gross_amount": dict(price)},
            "time": _iso(when),
        }
        self.sales.setdefault(sub["id"], []).append(sale)
        return sale

    def _sale_event(self, sub: dict, sale: dict) -> dict:
        money = sale["amount_with_breakdown"]["gross_amount"]
        return self.event(
            "PAYMENT.SALE.COMPLETED",
            {
                "id": sale["id"],
                "state": "completed",
                "amount": {"total": money["value"], "currency": money["currency_code"]},
                "billing_agreement_id": sub["id"],
                "create_time": sale["time"],
            },
            resource_type="sale",
        )

    # --- the API -------------------------------------------------------------------------------

    def handle(self, method, path, query, headers, raw):
        if not (path.startswith("/v1/catalogs/") or path.startswith("/v1/billing/")):
            return super().handle(method, path, query, headers, raw)
        import json

        body = json.loads(raw) if raw else {}
        with self.lock:
            self.calls.append(Call(method, path, headers, body))
        if not self._authorized(headers):
            return 401, {"error": "invalid_token"}, {}
        request_id = headers.get("paypal-request-id", "")
        with self.lock:
            if method == "POST" and path == "/v1/catalogs/products":
                if body["id"] in self.products:
                    return (
                        422,
                        {
                            "name": "UNPROCESSABLE_ENTITY",
                            "details": [{"issue": "DUPLICATE_RESOURCE_IDENTIFIER"}],
                        },
                        {},
                    )
                self.products[body["id"]] = body
                return 201, body, {}
            if method == "POST" and path == "/v1/billing/plans":
                return self._replayable(("plan", request_id), lambda: self._create_plan(body))
            match = re.fullmatch(r"/v1/billing/plans/([A-Z0-9-]+)", path)
            if match and method == "GET":
                plan = self.plans.get(match.group(1))
                return (200, plan, {}) if plan else _not_found()
            if method == "POST" and path == "/v1/billing/subscriptions":
                return self._replayable(
                    ("subscription", request_id), lambda: self._create_sub(body)
                )
            match = re.fullmatch(
                r"/v1/billing/subscriptions/([A-Z0-9-]+)(/cancel|/transactions)?", path
            )
            if match:
                sub = self.subscriptions.get(match.group(1))
                if sub is None:
                    return _not_found()
                if method == "GET" and not match.group(2):
                    return 200, sub, {}
                if method == "GET" and match.group(2) == "/transactions":
                    return (
                        200,
                        {
                            "transactions": list(self.sales.get(sub["id"], [])),
                            "total_items": len(self.sales.get(sub["id"], [])),
                        },
                        {},
                    )
                if method == "POST" and match.group(2) == "/cancel":
                    if sub["status"] == "CANCELLED":
                        return (
                            422,
                            {
                                "name": "UNPROCESSABLE_ENTITY",
                                "details": [{"issue": "SUBSCRIPTION_STATUS_INVALID"}],
                            },
                            {},
                        )
                    sub["status"] = "CANCELLED"
                    self.outbox.append(
                        self.event(
                            "BILLING.SUBSCRIPTION.CANCELLED",
                            dict(sub),
                            resource_type="subscription",
                        )
                    )
                    return 204, "", {}
        return _not_found()

    @property
    def outbox(self) -> list:
        if not hasattr(self, "_outbox"):
            self._outbox = []
        return self._outbox

    def _create_plan(self, body: dict) -> tuple[int, dict]:
        plan = {"id": f"P-{_id()}", "status": "ACTIVE", **body}
        self.plans[plan["id"]] = plan
        return 201, plan

    def _create_sub(self, body: dict) -> tuple[int, dict]:
        if body.get("plan_id") not in self.plans:
            return 404, {
                "name": "RESOURCE_NOT_FOUND",
                "details": [{"issue": "INVALID_RESOURCE_ID"}],
            }
        sub_id = f"I-{_id()[:12]}"
        sub = {
            "id": sub_id,
            "status": "APPROVAL_PENDING",
            "plan_id": body["plan_id"],
            "custom_id": body.get("custom_id"),
            "create_time": _iso(datetime.now(UTC)),
            "links": [
                {
                    "href": f"{self.url}/webapps/billing/subscriptions?ba_token=BA-{_id()[:10]}",
                    "rel": "approve",
                    "method": "GET",
                },
                {
                    "href": f"{self.url}/v1/billing/subscriptions/{sub_id}",
                    "rel": "self",
                    "method": "GET",
                },
            ],
        }
        self.subscriptions[sub_id] = sub
        return 201, sub


@pytest.fixture
def fake_paypal_billing(settings):
    fake = FakePayPalBilling().start()
    for name, value in fake.settings().items():
        setattr(settings, name, value)
    settings.PAYMENTS_SANDBOX_ENABLED = False
    try:
        yield fake
    finally:
        fake.stop()
