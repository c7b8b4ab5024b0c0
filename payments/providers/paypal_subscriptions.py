"""PayPal Subscriptions: billing plans, subscription checkouts, subscriptions and their
payments read back, cancellation (through ``paypal-server-sdk``'s subscriptions controller).

Facts this relies on: a PayPal subscription (``I-...``) carries our subscription's id in
``custom_id`` and its plan in ``plan_id``; ``billing_info.next_billing_time`` is the current
period's end; each period's payment is a sale, announced by ``PAYMENT.SALE.COMPLETED`` with
the subscription in ``billing_agreement_id``, and listed by
``/v1/billing/subscriptions/{id}/transactions``. A sale is named here
``<subscription id>/<sale id>``, so it can be read back with its subscription. PayPal has no
cancel-at-period-end and no prorated plan change without the buyer approving a revision:
cancelling ends the subscription at once (the period's credits stay until their lot ends),
and plan changes are refused. The catalog products API is not in the SDK: it is called over
HTTP with the SDK's OAuth token.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ..exceptions import ProviderError
from .base import CheckoutSession, ProviderInvoice, ProviderSubscription, RefundResult
from .paypal_client import paypal_call, paypal_request, response_json

PROVIDER = "PAYPAL"
STATUSES = {
    "APPROVAL_PENDING": "incomplete",
    "APPROVED": "incomplete",
    "ACTIVE": "active",
    "SUSPENDED": "past_due",
    "CANCELLED": "canceled",
    "EXPIRED": "canceled",
}


def _time(value) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _plan_code(plan_id: str) -> str:
    from ..models import PlanPrice

    found = PlanPrice.objects.filter(paypal_plan_id=plan_id).select_related("plan").first()
    return found.plan.code if found else ""


class PayPalSubscriptions:
    """The adapter's subscription methods (mixed into ``PayPalProvider``)."""

    def create_subscription_checkout(
        self, *, subscription, success_url: str, cancel_url: str, trial_days: int = 0
    ) -> CheckoutSession:
        if trial_days:
            raise ProviderError("PayPal trials need a plan of their own.", provider=PROVIDER)
        price = subscription.plan.prices.filter(currency=subscription.currency).first()
        if price is None or not price.paypal_plan_id:
            raise ProviderError(
                f"The {subscription.plan.name} plan has no PayPal billing plan yet: run "
                "`manage.py subscription_plans_sync`.",
                provider=PROVIDER,
            )
        body = {
            "plan_id": price.paypal_plan_id,
            "custom_id": str(subscription.pk),
            "application_context": {
                "brand_name": self.conf.brand_name[:127],
                "shipping_preference": "NO_SHIPPING",
                "user_action": "SUBSCRIBE_NOW",
                "return_url": success_url,
                "cancel_url": cancel_url,
            },
        }
        data = response_json(
            paypal_call(
                self.conf,
                "create subscription",
                lambda client: client.subscriptions.create_subscription(
                    {
                        "body": body,
                        "paypal_request_id": f"subscription-{subscription.pk}-create",
                        "prefer": "return=representation",
                    }
                ),
            )
        )
        approve = next(
            (link.get("href") for link in data.get("links") or [] if link.get("rel") == "approve"),
            "",
        )
        if not data.get("id") or not approve:
            raise ProviderError(
                "PayPal made a subscription without an approval link.", provider=PROVIDER
            )
        return CheckoutSession(provider_order_id=data["id"], redirect_url=approve)

    def _subscription(self, subscription_id: str) -> dict:
        return response_json(
            paypal_call(
                self.conf,
                "get subscription",
                lambda client: client.subscriptions.get_subscription({"id": subscription_id}),
            )
        )

    def fetch_subscription(self, *, subscription_id: str) -> ProviderSubscription:
        data = self._subscription(subscription_id)
        billing = data.get("billing_info") or {}
        last = (billing.get("last_payment") or {}).get("time")
        return ProviderSubscription(
            id=data["id"],
            status=STATUSES.get(str(data.get("status") or ""), str(data.get("status") or "")),
            plan_code=_plan_code(str(data.get("plan_id") or "")),
            subscription_ref=str(data.get("custom_id") or ""),
            period_start=_time(last) or _time(data.get("start_time")),
            period_end=_time(billing.get("next_billing_time")),
        )

    def _transactions(self, subscription_id: str, data: dict) -> list[dict]:
        start = (_time(data.get("create_time")) or datetime.now(UTC)) - timedelta(days=1)
        end = datetime.now(UTC) + timedelta(days=1)
        page = response_json(
            paypal_call(
                self.conf,
                "list subscription transactions",
                lambda client: client.subscriptions.list_subscription_transactions(
                    {
                        "id": subscription_id,
                        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                ),
            )
        )
        return sorted(page.get("transactions") or [], key=lambda t: t.get("time") or "")

    def _invoices(self, subscription_id: str) -> list[ProviderInvoice]:
        data = self._subscription(subscription_id)
        plan_code = _plan_code(str(data.get("plan_id") or ""))
        next_billing = _time((data.get("billing_info") or {}).get("next_billing_time"))
        done = [t for t in self._transactions(subscription_id, data) if t.get("status")]
        invoices = []
        for i, sale in enumerate(done):
            money = (sale.get("amount_with_breakdown") or {}).get("gross_amount") or {}
            start = _time(sale.get("time"))
            later = [_time(t.get("time")) for t in done[i + 1 :]]
            end = later[0] if later else next_billing or start + timedelta(days=30)
            invoices.append(
                ProviderInvoice(
                    id=f"{subscription_id}/{sale['id']}",
                    subscription_id=subscription_id,
                    status="paid" if sale.get("status") == "COMPLETED" else "failed",
                    billing_reason="subscription_create" if i == 0 else "subscription_cycle",
                    plan_code=plan_code,
                    amount=Decimal(str(money.get("value") or "0")),
                    currency=str(money.get("currency_code") or "").upper(),
                    period_start=start,
                    period_end=end,
                    payment_id=sale["id"],
                )
            )
        return invoices

    def fetch_invoice(self, *, invoice_id: str) -> ProviderInvoice:
        subscription_id, _, sale_id = invoice_id.partition("/")
        for invoice in self._invoices(subscription_id):
            if invoice.payment_id == sale_id:
                return invoice
        raise ProviderError(
            f"PayPal lists no payment {sale_id} of {subscription_id} (yet).",
            retryable=True,
            provider=PROVIDER,
        )

    def subscription_invoices(self, *, subscription_id: str) -> list[ProviderInvoice]:
        return self._invoices(subscription_id)

    def set_cancel_at_period_end(self, *, subscription_id: str, cancel: bool) -> None:
        if not cancel:
            raise ProviderError(
                "A PayPal subscription cannot be resumed once cancelled: subscribe again.",
                provider=PROVIDER,
            )
        self.cancel_now(subscription_id=subscription_id)

    def change_plan(self, **kwargs) -> None:
        raise ProviderError(
            "Plan changes are not available for PayPal memberships yet: cancel and subscribe "
            "to the other plan.",
            provider=PROVIDER,
        )

    def cancel_now(self, *, subscription_id: str) -> None:
        paypal_call(
            self.conf,
            "cancel subscription",
            lambda client: client.subscriptions.cancel_subscription(
                {"id": subscription_id, "body": {"reason": "Cancelled by the member"}}
            ),
        )

    def refund_invoice(
        self, *, invoice_id: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        raise ProviderError(
            "Refunds of PayPal membership payments are made in PayPal's dashboard for now; "
            "the PAYMENT.SALE.REFUNDED event then takes the period's credits back.",
            provider=PROVIDER,
        )

    # --- the product and billing plans a plan is sold with (the sync command) -------------

    def plan_sync(self, *, plan) -> list[str]:
        """Make (or find again) the plan's catalog product and one monthly billing plan per
        price. Idempotent: the product's id is ``PLAN-<CODE>`` and each billing plan is made
        with a PayPal-Request-Id of its code, currency and amount (a changed amount makes a
        new billing plan)."""
        done = []
        product_id = f"PLAN-{plan.code.upper()}"
        response = paypal_request(
            self.conf,
            "POST",
            "/v1/catalogs/products",
            action="create product",
            json={"id": product_id, "name": plan.name, "type": "SERVICE"},
            headers={"PayPal-Request-Id": f"product-{product_id}"},
        )
        if response.status_code not in (200, 201, 409, 422):
            raise ProviderError(
                f"PayPal refused the product {product_id}: HTTP {response.status_code}.",
                provider=PROVIDER,
            )
        if plan.paypal_product_id != product_id:
            plan.paypal_product_id = product_id
            plan.save(update_fields=["paypal_product_id", "updated_at"])
            done.append(f"product {product_id}")
        for price in plan.prices.all():
            value = f"{price.amount:.2f}"
            if price.paypal_plan_id and self._plan_price(price.paypal_plan_id) == (
                value,
                price.currency,
            ):
                continue
            body = {
                "product_id": product_id,
                "name": f"{plan.name} ({price.currency})",
                "billing_cycles": [
                    {
                        "frequency": {"interval_unit": "MONTH", "interval_count": 1},
                        "tenure_type": "REGULAR",
                        "sequence": 1,
                        "total_cycles": 0,
                        "pricing_scheme": {
                            "fixed_price": {"value": value, "currency_code": price.currency}
                        },
                    }
                ],
                "payment_preferences": {
                    "auto_bill_outstanding": True,
                    "payment_failure_threshold": 3,
                },
            }
            created = response_json(
                paypal_call(
                    self.conf,
                    "create billing plan",
                    lambda client, body=body, price=price, value=value: (
                        client.subscriptions.create_billing_plan(
                            {
                                "body": body,
                                "paypal_request_id": f"plan-{plan.code}-{price.currency}-{value}",
                                "prefer": "return=representation",
                            }
                        )
                    ),
                )
            )
            price.paypal_plan_id = created["id"]
            price.save(update_fields=["paypal_plan_id"])
            done.append(f"billing plan {created['id']} ({price.currency} {value})")
        return done

    def _plan_price(self, plan_id: str) -> tuple[str, str] | None:
        try:
            data = response_json(
                paypal_call(
                    self.conf,
                    "get billing plan",
                    lambda client: client.subscriptions.get_billing_plan({"id": plan_id}),
                )
            )
        except ProviderError:
            return None
        for cycle in data.get("billing_cycles") or []:
            fixed = (cycle.get("pricing_scheme") or {}).get("fixed_price") or {}
            return str(fixed.get("value") or ""), str(fixed.get("currency_code") or "")
        return None
