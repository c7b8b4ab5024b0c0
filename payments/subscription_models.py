"""Membership plans, subscriptions and their paid periods; the sandbox's own subscription records.

Imported by ``payments.models`` (the app's models live there for Django).

A plan is sold per period (a month) at a price per currency. A subscription is one user's
membership of a plan at one provider; a user has at most one live subscription (a partial
UNIQUE constraint). Each invoice the provider says was paid becomes one ``SubscriptionPeriod``
row (the period itself, or the proration of an upgrade), numbered like the packs' invoices,
whose credits are one paid lot expiring at the period's end.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from accounts.models import User


class SubscriptionPlan(models.Model):
    """What a membership gives each period. Staff edit it in the admin; the provider-side
    products and prices are made from it by ``manage.py subscription_plans_sync``."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    credits_per_period = models.PositiveIntegerField(default=0)
    #: How many of a period's unused plan credits move to the next period (0: none).
    rollover_cap = models.PositiveIntegerField(default=0)
    api_access = models.BooleanField(default=False)
    membership_tier = models.CharField(
        max_length=16, choices=User.Tier.choices, default=User.Tier.FREE
    )
    active = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=0)
    stripe_product_id = models.CharField(max_length=255, blank=True, default="")
    paypal_product_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "code"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return not self.prices.exists()


class PlanPrice(models.Model):
    """A plan's price per period in one currency, and the provider's price or plan for it."""

    plan = models.ForeignKey(SubscriptionPlan, on_delete=models.CASCADE, related_name="prices")
    currency = models.CharField(max_length=3, default="USD")
    amount = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.50"))]
    )
    stripe_price_id = models.CharField(max_length=255, blank=True, default="")
    paypal_plan_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["plan__sort_order", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "currency"], name="payments_planprice_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_planprice_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name}: {self.amount} {self.currency} per month"


class Subscription(models.Model):
    class Status(models.TextChoices):
        INCOMPLETE = "INCOMPLETE", "Waiting for the first payment"
        ACTIVE = "ACTIVE", "Active"
        PAST_DUE = "PAST_DUE", "Past due"
        ENDED = "ENDED", "Ended"

    LIVE = (Status.INCOMPLETE, Status.ACTIVE, Status.PAST_DUE)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions"
    )
    plan = models.ForeignKey(SubscriptionPlan, on_delete=models.PROTECT, related_name="+")
    #: A downgrade waiting for the period's end.
    pending_plan = models.ForeignKey(
        SubscriptionPlan, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    provider = models.CharField(max_length=16)
    provider_subscription_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INCOMPLETE)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("cancel_subscription", "Can cancel a subscription")]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["INCOMPLETE", "ACTIVE", "PAST_DUE"]),
                name="payments_one_live_subscription",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="payments_sub_status")]

    def __str__(self) -> str:
        return f"Subscription #{self.pk} {self.plan.name} {self.status}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE


class SubscriptionPeriod(models.Model):
    """One paid invoice of a subscription: a period, or the proration of an upgrade."""

    class Kind(models.TextChoices):
        PERIOD = "PERIOD", "Period"
        PRORATION = "PRORATION", "Upgrade proration"

    class Status(models.TextChoices):
        PAID = "PAID", "Paid"
        PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED", "Partially refunded"
        REFUNDED = "REFUNDED", "Refunded"

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="periods")
    plan = models.ForeignKey(SubscriptionPlan, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERIOD)
    billing_reason = models.CharField(max_length=32, blank=True, default="")
    provider_invoice_id = models.CharField(max_length=255, unique=True)
    provider_payment_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    credits = models.PositiveIntegerField()
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PAID)
    amount_refunded = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    credits_clawed_back = models.PositiveIntegerField(default=0)
    credits_unrecovered = models.PositiveIntegerField(default=0)
    #: The invoice, numbered in the same yearly sequence as the packs' (INV-2026-000042).
    invoice_year = models.PositiveIntegerField()
    invoice_sequence = models.PositiveIntegerField()
    invoice_number = models.CharField(max_length=32, unique=True)
    paid_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "starts_at"],
                condition=Q(kind="PERIOD"),
                name="payments_one_paid_period",
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0), name="payments_period_refunded_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_number} ({self.get_kind_display()} of subscription #{self.subscription_id})"


# --- the sandbox provider's own records (what Stripe keeps on its side) ---------------------


class SandboxSubscription(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Checkout open"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"

    token = models.CharField(max_length=64, unique=True)
    subscription_ref = models.CharField(max_length=64)
    plan_code = models.CharField(max_length=32)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    #: Free days before the first paid period (the first invoice is for 0).
    trial_days = models.PositiveIntegerField(default=0)
    #: A downgrade that takes effect at the next renewal.
    next_plan_code = models.CharField(max_length=32, blank=True, default="")
    next_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    success_url = models.CharField(max_length=1000)
    cancel_url = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"sandbox subscription {self.token} {self.status}"

    @property
    def provider_id(self) -> str:
        return f"sbx_sub_{self.token}"


class SandboxInvoice(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", "Paid"
        FAILED = "failed", "Payment failed"

    subscription = models.ForeignKey(
        SandboxSubscription, on_delete=models.CASCADE, related_name="invoices"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    billing_reason = models.CharField(max_length=32)
    plan_code = models.CharField(max_length=32)
    previous_plan_code = models.CharField(max_length=32, blank=True, default="")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    amount_refunded = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def provider_id(self) -> str:
        return f"sbx_in_{self.pk}"

    @property
    def payment_id(self) -> str:
        return f"sbx_pi_in_{self.pk}"
