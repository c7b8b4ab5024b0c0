"""Vouchers (promo codes) and their redemptions.

Stripe coupons and promotion codes discount money and cannot grant credits, and PayPal orders
have no coupons at all, so the application owns its codes. A voucher grants free credits
(``FIXED_TOKENS``), a percentage of a pack's credits on top of a purchase
(``PERCENTAGE_BONUS``), or a free trial on a plan (``SUBSCRIPTION_TRIAL``, not redeemable
until plans exist). The database keeps every count honest: ``uses`` never passes
``max_uses`` (a CHECK, and the claiming UPDATE is conditional on it) and a user holds at most
one live redemption of a voucher (a partial UNIQUE index).
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper

#: The longest code staff may set (generated codes are shorter).
CODE_MAX_LENGTH = 40


class Voucher(models.Model):
    class Kind(models.TextChoices):
        FIXED_TOKENS = "FIXED_TOKENS", "Free credits"
        PERCENTAGE_BONUS = "PERCENTAGE_BONUS", "Purchase bonus (% of a pack's credits)"
        SUBSCRIPTION_TRIAL = "SUBSCRIPTION_TRIAL", "Plan trial (days)"

    class Status(models.TextChoices):
        """ACTIVE and INACTIVE are set by staff, DEPLETED by the last use (and undone when a
        reserved use is released). EXPIRED is what an ACTIVE voucher past its ``valid_until``
        reads as (``state``): the claim checks the expiry against the database clock itself,
        so nothing waits for a status change to stop a late redemption."""

        ACTIVE = "ACTIVE", "Active"
        INACTIVE = "INACTIVE", "Inactive"
        EXPIRED = "EXPIRED", "Expired"
        DEPLETED = "DEPLETED", "Used up"

    #: Stored in upper case: codes are case-insensitive.
    code = models.CharField(max_length=CODE_MAX_LENGTH, unique=True)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    #: Credits (free credits), percent of the pack's credits (bonus) or days (trial).
    value = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    #: The plan a trial is for, by its code (plans are referred to by code until they exist).
    plan_code = models.CharField(max_length=64, blank=True, default="")
    max_uses = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    #: Uses taken: redeemed, or reserved by a checkout still open.
    uses = models.PositiveIntegerField(default=0)
    #: The code stops working at this moment (the database clock decides).
    valid_until = models.DateTimeField(null=True, blank=True)
    #: How long the credits it grants stay spendable (empty: as CREDITS_LOT_EXPIRY says).
    credits_valid_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    #: Staff's note: what the voucher is for (never shown to customers).
    note = models.CharField(max_length=255, blank=True, default="")
    #: The batch label of codes generated together (their CSV is downloaded by it).
    batch = models.CharField(max_length=64, blank=True, default="", db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("manage_vouchers", "Can create, edit and generate vouchers")]
        constraints = [
            models.CheckConstraint(
                condition=Q(code=Upper("code")), name="payments_voucher_code_upper"
            ),
            models.CheckConstraint(condition=~Q(code=""), name="payments_voucher_code_not_empty"),
            models.CheckConstraint(
                condition=Q(value__gt=0), name="payments_voucher_value_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_uses__gt=0), name="payments_voucher_max_positive"
            ),
            models.CheckConstraint(
                condition=Q(uses__gte=0, uses__lte=F("max_uses")),
                name="payments_voucher_uses_within_max",
            ),
            models.CheckConstraint(
                condition=~Q(kind="PERCENTAGE_BONUS") | Q(value__lte=1000),
                name="payments_voucher_bonus_percent_range",
            ),
            models.CheckConstraint(
                condition=~Q(kind="SUBSCRIPTION_TRIAL") | ~Q(plan_code=""),
                name="payments_voucher_trial_has_plan",
            ),
            models.CheckConstraint(
                condition=~Q(status="DEPLETED") | Q(uses=F("max_uses")),
                name="payments_voucher_depleted_when_full",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def state(self, now) -> str:
        """The status as a reader should see it at ``now``: an active voucher past its expiry
        reads as expired."""
        if self.status == self.Status.ACTIVE and self.valid_until and self.valid_until <= now:
            return self.Status.EXPIRED
        return self.status

    @property
    def uses_left(self) -> int:
        return self.max_uses - self.uses


class VoucherRedemption(models.Model):
    """One user's use of one voucher: redeemed (credits granted), or a purchase bonus reserved
    by an open checkout and then redeemed at fulfilment or released when the checkout ends
    unpaid. A user holds at most one redemption of a voucher that is not released."""

    class Status(models.TextChoices):
        RESERVED = "RESERVED", "Reserved by a checkout"
        REDEEMED = "REDEEMED", "Redeemed"
        RELEASED = "RELEASED", "Released (checkout ended unpaid)"

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="redemptions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="voucher_redemptions"
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    #: The purchase a bonus goes with.
    order = models.ForeignKey(
        "payments.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="voucher_redemptions",
    )
    #: Credits granted (or, while reserved, to be granted with the purchase).
    credits = models.PositiveIntegerField(default=0)
    #: The ledger entry of the grant, once made.
    entry = models.OneToOneField(
        "credits.LedgerEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="voucher_redemption",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["voucher", "created_at"], name="payments_redemption_voucher"),
            models.Index(fields=["user", "created_at"], name="payments_redemption_user"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["voucher", "user"],
                condition=~Q(status="RELEASED"),
                name="payments_redemption_once_per_user",
            ),
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(order__isnull=False),
                name="payments_redemption_one_per_order",
            ),
            models.CheckConstraint(
                condition=~Q(status="REDEEMED") | Q(redeemed_at__isnull=False),
                name="payments_redemption_redeemed_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.voucher} by user {self.user_id} ({self.status})"
