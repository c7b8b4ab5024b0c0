"""The fake Stripe, taught Stripe Billing over HTTP: products, prices (with lookup keys),
Checkout in subscription mode, subscriptions, invoices with their payments, updates with
proration, cancellation, and test clocks whose advance renews (or fails to renew) every
subscription of the clock's customers, as Stripe's test clocks do.

Stripe sends webhooks on its own; the fake queues the events it would send in ``outbox``
(JSON bodies, signed by the test when delivered), in the order Stripe emits them.
"""

import json
import secrets
import time

from tests.payments.fake_stripe import FakeStripe

MONTH = 30 * 24 * 3600


class FakeStripeBilling(FakeStripe):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.clocks: dict[str, dict] = {}
        self.outbox: list[str] = []
        self.fail_renewals = False
        fake = self
        self.server.RequestHandlerClass.do_DELETE = lambda handler: fake._handle(handler, "DELETE")

    # --- test controls ----------------------------------------------------------------------

    def take_events(self) -> list[str]:
        with self.lock:
            events, self.outbox = self.outbox, []
            return events

    def subscribe(self, session_id: str, *, clock: str | None = None) -> dict:
        """The buyer completes a subscription checkout (on the clock ``clock``, if given)."""
        with self.lock:
            session = self.sessions[session_id]
            customer = self._customer(session, clock)
            now = self._now(customer)
            price = self.prices[session["_price"]]
            sub_id = f"sub_{secrets.token_hex(8)}"
            sub = {
                "id": sub_id,
                "object": "subscription",
                "customer": customer["id"],
                "status": "active",
                "cancel_at_period_end": False,
                "metadata": session["_subscription_metadata"],
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": f"si_{secrets.token_hex(6)}",
                            "price": self.public(price),
                            "quantity": 1,
                            "current_period_start": now,
                            "current_period_end": now + MONTH,
                        }
                    ],
                },
            }
            self.subscriptions[sub_id] = sub
            session.update(status="complete", payment_status="paid", subscription=sub_id)
            session["customer"] = customer["id"]
            invoice = self._invoice(sub, "subscription_create", price, now, now + MONTH, paid=True)
            self._emit("checkout.session.completed", session)
            self._emit("customer.subscription.created", sub)
            self._emit("invoice.paid", invoice)
            return self.public(sub)

    # --- the HTTP side ----------------------------------------------------------------------

    def _route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if (
            method == "POST"
            and path == "/v1/checkout/sessions"
            and params.get("mode") == "subscription"
        ):
            return self._create_subscription_session(params)
        if parts[:2] == ["v1", "products"]:
            if method == "POST" and len(parts) == 2:
                product = {"object": "product", "active": True, **params}
                self.products[product["id"]] = product
                return 200, product
            if method == "GET" and len(parts) == 3:
                if parts[2] not in self.products:
                    return self._error(404, f"No such product: '{parts[2]}'", "resource_missing")
                return 200, self.products[parts[2]]
        if parts[:2] == ["v1", "prices"]:
            if method == "POST" and len(parts) == 2:
                return self._create_price(params)
            if method == "GET" and len(parts) == 2:
                keys = params.get("lookup_keys") or []
                keys = keys if isinstance(keys, list) else [keys]
                found = [
                    self.public(p) for p in self.prices.values() if p.get("lookup_key") in keys
                ]
                return 200, {
                    "object": "list",
                    "data": found,
                    "has_more": False,
                    "url": "/v1/prices",
                }
        if parts[:2] == ["v1", "subscriptions"] and len(parts) == 3:
            sub = self.subscriptions.get(parts[2])
            if sub is None:
                return self._error(404, f"No such subscription: '{parts[2]}'", "resource_missing")
            if method == "GET":
                return 200, sub
            if method == "DELETE":
                return self._end(sub)
            if method == "POST":
                return self._update(sub, params)
        if parts[:2] == ["v1", "invoices"] and len(parts) == 2 and method == "GET":
            found = [
                self.public(i)
                for i in reversed(list(self.invoices.values()))
                if i["parent"]["subscription_details"]["subscription"] == params.get("subscription")
            ]
            return 200, {"object": "list", "data": found, "has_more": False, "url": "/v1/invoices"}
        if parts[:2] == ["v1", "invoices"] and len(parts) == 3 and method == "GET":
            invoice = self.invoices.get(parts[2])
            if invoice is None:
                return self._error(404, f"No such invoice: '{parts[2]}'", "resource_missing")
            return 200, self.public(invoice)
        if method == "POST" and path == "/v1/billing_portal/sessions":
            if params.get("customer") not in self.customers:
                return self._error(404, f"No such customer: '{params.get('customer')}'")
            session_id = f"bps_{secrets.token_hex(8)}"
            return 200, {
                "id": session_id,
                "object": "billing_portal.session",
                "customer": params["customer"],
                "return_url": params.get("return_url"),
                "url": f"{self.url}/portal/{session_id}",
            }
        if parts[:3] == ["v1", "test_helpers", "test_clocks"]:
            if method == "POST" and len(parts) == 3:
                clock = {
                    "id": f"clock_{secrets.token_hex(6)}",
                    "object": "test_helpers.test_clock",
                    "frozen_time": int(params.get("frozen_time") or time.time()),
                    "status": "ready",
                }
                self.clocks[clock["id"]] = clock
                return 200, clock
            if method == "POST" and len(parts) == 5 and parts[4] == "advance":
                return self._advance(parts[3], int(params["frozen_time"]))
        return super()._route(method, path, params)

    def _create_subscription_session(self, params: dict) -> tuple[int, dict]:
        item = params["line_items"][0]
        price = self.prices.get(item.get("price", ""))
        if price is None:
            return self._error(400, f"No such price: '{item.get('price')}'", "resource_missing")
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "url": f"{self.url}/pay/{session_id}",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": price["unit_amount"],
            "currency": price["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "subscription": None,
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "_price": price["id"],
            "_subscription_metadata": (params.get("subscription_data") or {}).get("metadata", {}),
        }
        self.sessions[session_id] = session
        return 200, self.public(session)

    def _create_price(self, params: dict) -> tuple[int, dict]:
        key = params.get("lookup_key")
        if key and params.get("transfer_lookup_key") not in ("true", True):
            if any(p.get("lookup_key") == key for p in self.prices.values()):
                return self._error(400, f"A price with lookup key {key} already exists.")
        for other in self.prices.values():
            if key and other.get("lookup_key") == key:
                other["lookup_key"] = None
        price = {
            "id": f"price_{secrets.token_hex(8)}",
            "object": "price",
            "product": params["product"],
            "currency": params["currency"],
            "unit_amount": int(params["unit_amount"]),
            "recurring": params.get("recurring"),
            "lookup_key": key,
            "metadata": params.get("metadata", {}),
            "active": True,
        }
        self.prices[price["id"]] = price
        return 200, price

    def _customer(self, session: dict, clock: str | None) -> dict:
        cid = session.get("customer")
        if cid and cid in self.customers:
            return self.customers[cid]
        customer = {
            "id": cid or f"cus_{secrets.token_hex(6)}",
            "object": "customer",
            "email": session.get("customer_email"),
            "test_clock": clock,
        }
        self.customers[customer["id"]] = customer
        return customer

    def _now(self, customer: dict) -> int:
        clock = self.clocks.get(customer.get("test_clock") or "")
        return clock["frozen_time"] if clock else int(time.time())

    def _invoice(self, sub, reason, price, start, end, *, paid: bool, lines=None, amount=None):
        amount = price["unit_amount"] if amount is None else amount
        invoice_id = f"in_{secrets.token_hex(8)}"
        payments = []
        if paid and amount > 0:
            pi_id, charge_id = f"pi_{secrets.token_hex(8)}", f"ch_{secrets.token_hex(8)}"
            self.payment_intents[pi_id] = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": amount,
                "currency": price["currency"],
                "status": "succeeded",
                "metadata": {},
                "latest_charge": charge_id,
            }
            self.charges[charge_id] = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_refunded": 0,
                "currency": price["currency"],
                "payment_intent": pi_id,
                "metadata": {},
                "refunded": False,
                "paid": True,
                "status": "succeeded",
            }
            payments.append(
                {
                    "object": "invoice_payment",
                    "status": "paid",
                    "payment": {"type": "payment_intent", "payment_intent": pi_id},
                }
            )
        lines = lines or [
            {
                "object": "line_item",
                "amount": price["unit_amount"],
                "period": {"start": start, "end": end},
                "pricing": {"type": "price_details", "price_details": {"price": price["id"]}},
            }
        ]
        invoice = {
            "id": invoice_id,
            "object": "invoice",
            "status": "paid" if paid else "open",
            "attempted": True,
            "billing_reason": reason,
            "currency": price["currency"],
            "amount_paid": amount if paid else 0,
            "amount_due": amount,
            "customer": sub["customer"],
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub["id"], "metadata": sub["metadata"]},
            },
            "lines": {"object": "list", "data": lines},
            "payments": {"object": "list", "data": payments},
        }
        self.invoices[invoice_id] = invoice
        return invoice

    def _emit(self, event_type: str, obj: dict) -> None:
        self.outbox.append(self.event(event_type, json.loads(json.dumps(self.public(obj)))))

    def _update(self, sub: dict, params: dict) -> tuple[int, dict]:
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = params["cancel_at_period_end"] in ("true", True)
        items = params.get("items")
        if items:
            item = sub["items"]["data"][0]
            old, new = item["price"], self.prices[items[0]["price"]]
            item["price"] = self.public(new)
            if params.get("proration_behavior") == "always_invoice":
                now = self._now(self.customers[sub["customer"]])
                start, end = item["current_period_start"], item["current_period_end"]
                share = (end - now) / (end - start)
                credit = -round(old["unit_amount"] * share)
                charge = round(new["unit_amount"] * share)
                lines = [
                    {
                        "object": "line_item",
                        "amount": credit,
                        "period": {"start": now, "end": end},
                        "pricing": {"type": "price_details", "price_details": {"price": old["id"]}},
                    },
                    {
                        "object": "line_item",
                        "amount": charge,
                        "period": {"start": now, "end": end},
                        "pricing": {"type": "price_details", "price_details": {"price": new["id"]}},
                    },
                ]
                invoice = self._invoice(
                    sub, "subscription_update", new, now, end, paid=True, lines=lines,
                    amount=max(0, credit + charge),
                )  # fmt: skip
                self._emit("customer.subscription.updated", sub)
                self._emit("invoice.paid", invoice)
                return 200, sub
        self._emit("customer.subscription.updated", sub)
        return 200, sub

    def _end(self, sub: dict) -> tuple[int, dict]:
        sub["status"] = "canceled"
        self._emit("customer.subscription.deleted", sub)
        return 200, sub

    def _advance(self, clock_id: str, to: int) -> tuple[int, dict]:
        clock = self.clocks[clock_id]
        clock["frozen_time"] = to
        for sub in list(self.subscriptions.values()):
            customer = self.customers[sub["customer"]]
            if customer.get("test_clock") != clock_id or sub["status"] == "canceled":
                continue
            item = sub["items"]["data"][0]
            while sub["status"] != "canceled" and item["current_period_end"] <= to:
                end = item["current_period_end"]
                if sub["cancel_at_period_end"]:
                    self._end(sub)
                    break
                price = self.prices[item["price"]["id"]]
                if self.fail_renewals:
                    invoice = self._invoice(
                        sub, "subscription_cycle", price, end, end + MONTH, paid=False
                    )
                    sub["status"] = "past_due"
                    self._emit("invoice.payment_failed", invoice)
                    self._emit("customer.subscription.updated", sub)
                    break
                item["current_period_start"], item["current_period_end"] = end, end + MONTH
                sub["status"] = "active"
                invoice = self._invoice(
                    sub, "subscription_cycle", price, end, end + MONTH, paid=True
                )
                self._emit("customer.subscription.updated", sub)
                self._emit("invoice.paid", invoice)
        return 200, clock
