"""Credit packages, orders, invoices and stored provider webhook events."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class CreditPackage(models.Model):
    name = models.CharField(max_length=64)
    credits = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.50"))])
    currency = models.CharField(max_length=3, default="USD")
    active = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "price"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="payments_package_credits_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="payments_package_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.credits} credits, {self.price} {self.currency})"


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed"
        EXPIRED = "EXPIRED", "Expired"
        REFUNDED = "REFUNDED", "Refunded"
        PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED", "Partially refunded"
        DISPUTED = "DISPUTED", "Disputed"

    class Provider(models.TextChoices):
        STRIPE = "STRIPE", "Stripe"
        PAYPAL = "PAYPAL", "PayPal"
        SANDBOX = "SANDBOX", "Sandbox"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    package = models.ForeignKey(CreditPackage, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    credits = models.PositiveIntegerField()
    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_order_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    provider_payment_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    amount_refunded = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    credits_clawed_back = models.PositiveIntegerField(default=0)
    #: Credits a refund or lost dispute should have taken back but the balance no longer held.
    credits_unrecovered = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="payments_order_user_time"),
            models.Index(fields=["status", "created_at"], name="payments_order_status_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_order_amount_positive"),
            models.CheckConstraint(condition=Q(credits__gt=0), name="payments_order_credits_positive"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0), name="payments_order_refunded_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk} {self.status}"
