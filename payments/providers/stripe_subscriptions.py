"""Stripe Billing: subscription checkouts, subscriptions and invoices read back, changes,
refunds of a period, and the products and prices a plan is sold with.

Facts this relies on (stripe 16.1, API 2025-03-31 and later): a subscription's current
period is on its items (``items.data[].current_period_start`` / ``_end``), not on the
subscription; an invoice names its subscription in
``parent.subscription_details.subscription`` and its payments in ``payments`` (expanded);
a cycle invoice's period is its line's ``period``. Each price carries our plan's code in
its metadata (``plan_code``), made by ``manage.py subscription_plans_sync`` with a lookup key
``plan_<code>_<currency>_month``, so a plan's price is found again rather than duplicated.
"""

from datetime import UTC, datetime
from decimal import Decimal

import stripe

from ..exceptions import ProviderError
from .base import CheckoutSession, ProviderInvoice, ProviderSubscription, RefundResult
from .stripe_provider import StripeProvider, _error, from_minor, to_minor

NAME = "STRIPE"


def price_lookup_key(code: str, currency: str) -> str:
    return f"plan_{code}_{currency.lower()}_month"


def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _plan_code(price) -> str:
    """Our plan's code for a Stripe price: an expanded price carries it in its metadata; a
    bare price id (an invoice line's ``pricing.price_details.price``) is looked up here."""
    if isinstance(price, dict):
        code = (price.get("metadata") or {}).get("plan_code")
        if code:
            return str(code)
        price = price.get("id") or price.get("price")
    if not price:
        return ""
    from ..models import PlanPrice

    found = PlanPrice.objects.filter(stripe_price_id=str(price)).select_related("plan").first()
    return found.plan.code if found else ""


def subscription_reading(data: dict) -> ProviderSubscription:
    items = ((data.get("items") or {}).get("data")) or [{}]
    item = items[0]
    return ProviderSubscription(
        id=data["id"],
        status=str(data.get("status") or ""),
        plan_code=_plan_code(item.get("price")),
        subscription_ref=str((data.get("metadata") or {}).get("subscription_ref") or ""),
        period_start=_ts(item.get("current_period_start") or data.get("current_period_start")),
        period_end=_ts(item.get("current_period_end") or data.get("current_period_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        customer_id=str(data.get("customer") or ""),
    )


def _line_price(line: dict):
    details = (line.get("pricing") or {}).get("price_details") or {}
    return details.get("price") or line.get("price")


def invoice_reading(data: dict) -> ProviderInvoice:
    currency = str(data.get("currency") or "").upper()
    lines = ((data.get("lines") or {}).get("data")) or []
    charged = [line for line in lines if int(line.get("amount") or 0) > 0] or lines or [{}]
    credited = [line for line in lines if int(line.get("amount") or 0) < 0]
    line = charged[0]
    parent = (data.get("parent") or {}).get("subscription_details") or {}
    payments = ((data.get("payments") or {}).get("data")) or []
    payment_id = ""
    for payment in payments:
        inner = payment.get("payment") or {}
        payment_id = str(inner.get("payment_intent") or inner.get("charge") or "") or payment_id
    status = str(data.get("status") or "")
    return ProviderInvoice(
        id=data["id"],
        subscription_id=str(parent.get("subscription") or data.get("subscription") or ""),
        status="paid" if status == "paid" else ("failed" if data.get("attempted") else status),
        billing_reason=str(data.get("billing_reason") or ""),
        plan_code=_plan_code(_line_price(line)),
        previous_plan_code=_plan_code(_line_price(credited[0])) if credited else "",
        amount=from_minor(data.get("amount_paid"), currency) or Decimal("0"),
        currency=currency,
        period_start=_ts((line.get("period") or {}).get("start")),
        period_end=_ts((line.get("period") or {}).get("end")),
        payment_id=payment_id,
    )


class StripeSubscriptions:
    """The adapter's subscription methods (mixed into ``StripeProvider``)."""

    def _call(self, fn, *args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return result.to_dict() if hasattr(result, "to_dict") else result

    def create_subscription_checkout(
        self, *, subscription, success_url: str, cancel_url: str, trial_days: int = 0
    ) -> CheckoutSession:
        price = subscription.plan.prices.filter(currency=subscription.currency).first()
        if price is None or not price.stripe_price_id:
            raise ProviderError(
                f"The {subscription.plan.name} plan has no Stripe price yet: run "
                "`manage.py subscription_plans_sync`.",
                provider=NAME,
            )
        refs = {"subscription_ref": str(subscription.pk), "user_id": str(subscription.user_id)}
        params = {
            "mode": "subscription",
            "line_items": [{"price": price.stripe_price_id, "quantity": 1}],
            "client_reference_id": f"subscription-{subscription.pk}",
            "metadata": refs,
            "subscription_data": {
                "metadata": refs,
                **({"trial_period_days": trial_days} if trial_days else {}),
            },
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        user = subscription.user
        if user.stripe_customer_id:
            params["customer"] = user.stripe_customer_id
        else:
            params["customer_email"] = user.email
        session = self._call(
            self.client.v1.checkout.sessions.create,
            params,
            {"idempotency_key": f"subscription-checkout-{subscription.pk}"},
        )
        if not session.get("url"):
            raise ProviderError("Stripe returned a session without a checkout URL.", provider=NAME)
        return CheckoutSession(provider_order_id=session["id"], redirect_url=session["url"])

    def fetch_subscription(self, *, subscription_id: str) -> ProviderSubscription:
        if subscription_id.startswith("cs_"):
            session = self._call(self.client.v1.checkout.sessions.retrieve, subscription_id)
            if not session.get("subscription"):
                return ProviderSubscription(
                    id=subscription_id,
                    status="canceled" if session.get("status") == "expired" else "incomplete",
                    subscription_ref=str(
                        (session.get("metadata") or {}).get("subscription_ref") or ""
                    ),
                )
            subscription_id = str(session["subscription"])
        data = self._call(self.client.v1.subscriptions.retrieve, subscription_id)
        return subscription_reading(data)

    def fetch_invoice(self, *, invoice_id: str) -> ProviderInvoice:
        data = self._call(self.client.v1.invoices.retrieve, invoice_id, {"expand": ["payments"]})
        return invoice_reading(data)

    def subscription_invoices(self, *, subscription_id: str) -> list[ProviderInvoice]:
        """The subscription's invoices (the newest 100: reconciliation looks at recent ones)."""
        page = self._call(
            self.client.v1.invoices.list,
            {"subscription": subscription_id, "limit": 100, "expand": ["data.payments"]},
        )
        return [invoice_reading(data) for data in page.get("data") or []]

    def set_cancel_at_period_end(self, *, subscription_id: str, cancel: bool) -> None:
        self._call(
            self.client.v1.subscriptions.update,
            subscription_id,
            {"cancel_at_period_end": cancel},
        )

    def change_plan(
        self, *, subscription_id: str, plan_code: str, amount: Decimal, at_period_end: bool
    ) -> None:
        """An upgrade at once with the proration invoiced and charged now
        (``always_invoice``); a downgrade without proration, billed from the next renewal
        (our record keeps the old plan until that period is paid)."""
        data = self._call(self.client.v1.subscriptions.retrieve, subscription_id)
        item = ((data.get("items") or {}).get("data") or [{}])[0]
        currency = str(item.get("price", {}).get("currency") or "usd")
        from ..models import PlanPrice

        price = PlanPrice.objects.filter(plan__code=plan_code, currency=currency.upper()).first()
        if price is None or not price.stripe_price_id:
            raise ProviderError(f"The {plan_code} plan has no Stripe price yet.", provider=NAME)
        self._call(
            self.client.v1.subscriptions.update,
            subscription_id,
            {
                "items": [{"id": item.get("id"), "price": price.stripe_price_id}],
                "proration_behavior": "none" if at_period_end else "always_invoice",
            },
        )

    def portal_url(self, *, customer_id: str, return_url: str) -> str:
        """Stripe's customer portal for cards and invoices."""
        session = self._call(
            self.client.v1.billing_portal.sessions.create,
            {"customer": customer_id, "return_url": return_url},
        )
        return session["url"]

    def cancel_now(self, *, subscription_id: str) -> None:
        self._call(self.client.v1.subscriptions.cancel, subscription_id)

    def refund_invoice(
        self, *, invoice_id: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        invoice = self.fetch_invoice(invoice_id=invoice_id)
        if not invoice.payment_id:
            raise ProviderError(f"Invoice {invoice_id} has no payment to refund.", provider=NAME)
        refund = self._call(
            self.client.v1.refunds.create,
            {
                "payment_intent": invoice.payment_id,
                "amount": to_minor(amount, invoice.currency),
                "metadata": {"invoice": invoice_id},
            },
            {"idempotency_key": idempotency_key},
        )
        return RefundResult(
            provider_refund_id=refund["id"],
            status=str(refund.get("status") or ""),
            amount=from_minor(refund.get("amount"), invoice.currency),
            currency=invoice.currency,
        )

    # --- the products and prices a plan is sold with (the sync command) -------------------

    def plan_sync(self, *, plan) -> list[str]:
        """Make (or find again) the plan's product and its monthly price per currency;
        returns what was done. Idempotent: the product's id is ``plan_<code>``, each price
        is found by its lookup key, and a price whose amount changed is replaced (the key
        moves to the new one)."""
        done = []
        product_id = f"plan_{plan.code}"
        try:
            self.client.v1.products.retrieve(product_id)
        except stripe.InvalidRequestError:
            self._call(
                self.client.v1.products.create,
                {"id": product_id, "name": plan.name, "metadata": {"plan_code": plan.code}},
                {"idempotency_key": f"product-{product_id}"},
            )
            done.append(f"created product {product_id}")
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        if plan.stripe_product_id != product_id:
            plan.stripe_product_id = product_id
            plan.save(update_fields=["stripe_product_id", "updated_at"])
        for price in plan.prices.all():
            key = price_lookup_key(plan.code, price.currency)
            unit = to_minor(price.amount, price.currency)
            found = self._call(self.client.v1.prices.list, {"lookup_keys": [key], "limit": 1})
            existing = (found.get("data") or [None])[0]
            if existing is None or int(existing.get("unit_amount") or 0) != unit:
                existing = self._call(
                    self.client.v1.prices.create,
                    {
                        "product": product_id,
                        "currency": price.currency.lower(),
                        "unit_amount": unit,
                        "recurring": {"interval": "month"},
                        "lookup_key": key,
                        "transfer_lookup_key": True,
                        "metadata": {"plan_code": plan.code},
                    },
                    {"idempotency_key": f"price-{key}-{unit}"},
                )
                done.append(f"created price {existing['id']} ({key})")
            if price.stripe_price_id != existing["id"]:
                price.stripe_price_id = existing["id"]
                price.save(update_fields=["stripe_price_id"])
        return done


class StripeBillingProvider(StripeSubscriptions, StripeProvider):
    """The Stripe adapter with its subscriptions (``PROVIDERS`` names this one)."""
