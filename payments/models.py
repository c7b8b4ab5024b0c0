"""Credit packages, orders, invoices, stored provider webhook events, and vouchers."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils import timezone


class CreditPackage(models.Model):
    name = models.CharField(max_length=64)
    credits = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.50"))]
    )
    currency = models.CharField(max_length=3, default="USD")
    active = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "price"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credits__gt=0), name="payments_package_credits_positive"
            ),
            models.CheckConstraint(
                condition=Q(price__gt=0), name="payments_package_price_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.credits} credits, {self.price} {self.currency})"


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed"
        EXPIRED = "EXPIRED", "Expired"
        CANCELLED = (
            "CANCELLED",
            "Cancelled",
        )  # the buyer left the provider's checkout (cancel, back)
        REFUNDED = "REFUNDED", "Refunded"
        PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED", "Partially refunded"
        DISPUTED = "DISPUTED", "Disputed"

    class Provider(models.TextChoices):
        STRIPE = "STRIPE", "Stripe"
        PAYPAL = "PAYPAL", "PayPal"
        SANDBOX = "SANDBOX", "Sandbox"

    class DisputeStatus(models.TextChoices):
        """Where the latest dispute stands, in what it means for the buyer's credits.

        Open (any stage: an inquiry, a chargeback awaiting evidence or review, an appeal):
        spending frozen. Won, prevented or withdrawn: spending restored, credits kept.
        Lost: the order's credits taken back. Each provider's own statuses map onto these
        in its adapter; a status no adapter knows is flagged, never guessed.
        """

        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"
        PREVENTED = "prevented", "Prevented"
        WITHDRAWN = "withdrawn", "Withdrawn (closed without a chargeback)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
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
    #: The provider's id of the latest dispute (chargeback) on this payment, and where it stands.
    dispute_id = models.CharField(max_length=255, blank=True, default="")
    dispute_status = models.CharField(
        max_length=16, choices=DisputeStatus.choices, blank=True, default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("refund_order", "Can refund an order")]
        indexes = [
            models.Index(fields=["user", "created_at"], name="payments_order_user_time"),
            models.Index(fields=["status", "created_at"], name="payments_order_status_time"),
            # Revenue per day (the staff dashboard, the orders export) reads completed orders by time.
            models.Index(
                fields=["completed_at"],
                name="payments_order_completed_at",
                condition=Q(completed_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="payments_order_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(credits__gt=0), name="payments_order_credits_positive"
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0), name="payments_order_refunded_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk} {self.status}"

    @property
    def is_fulfilled(self) -> bool:
        """The credits were granted (the order may have been refunded or disputed since)."""
        return self.completed_at is not None

    @property
    def amount_refundable(self) -> Decimal:
        return self.amount - self.amount_refunded


class Refund(models.Model):
    """A refund at the provider: one we asked for (staff, from the admin), recorded once per
    key, or one the provider told us about when its status changed (no ``created_by``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        REQUIRES_ACTION = "requires_action", "Requires action"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=255)
    idempotency_key = models.CharField(max_length=255, unique=True)
    provider_refund_id = models.CharField(max_length=255, unique=True)
    #: The provider's word, in Stripe's vocabulary (PayPal's COMPLETED reads as succeeded).
    #: Pending and requires-action refunds count as refunded (their credits are taken back);
    #: a failed or canceled one gives them back, once.
    status = models.CharField(max_length=24, choices=Status.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="payments_refund_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Refund {self.amount} {self.currency} of order #{self.order_id}"


class InvoiceSequence(models.Model):
    """The last invoice number used in a year. Incremented under its row lock: no gaps, no repeats."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


class BillingProfile(models.Model):
    """Who the buyer's invoices are made out to (copied onto each invoice when it is issued)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_profile"
    )
    name = models.CharField("Name or company", max_length=200, blank=True, default="")
    address = models.TextField("Billing address", max_length=1000, blank=True, default="")
    country = models.CharField(max_length=100, blank=True, default="")
    tax_id = models.CharField("Tax id (VAT number)", max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Billing profile of user {self.user_id}"


class Invoice(models.Model):
    """One per completed order, numbered sequentially per year (INV-2026-000001).

    What it says is fixed when it is issued: seller, buyer, lines, tax. Later changes (a
    refund, a new billing address, a new tax rate) never rewrite it: a refund issues a
    ``CreditNote`` referring to it. Only ``status`` follows the order's refunds, as a label.
    """

    class Status(models.TextChoices):
        PAID = "PAID", "Paid"
        PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED", "Partially refunded"
        REFUNDED = "REFUNDED", "Refunded"
        VOID = "VOID", "Void"

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="invoice")
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    number = models.CharField(max_length=32, unique=True)
    provider_invoice_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PAID)
    amount_paid = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    paid_at = models.DateTimeField()
    url = models.URLField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # As issued (empty on invoices issued before these were recorded: the page shows the order's).
    description = models.CharField(max_length=255, blank=True, default="")
    seller_name = models.CharField(max_length=200, blank=True, default="")
    seller_address = models.TextField(blank=True, default="")
    seller_tax_id = models.CharField(max_length=64, blank=True, default="")
    buyer_name = models.CharField(max_length=200, blank=True, default="")
    buyer_email = models.CharField(max_length=320, blank=True, default="")
    buyer_address = models.TextField(blank=True, default="")
    buyer_tax_id = models.CharField(max_length=64, blank=True, default="")
    #: The tax included in ``amount_paid``: rate in percent (0: none) and amounts.
    tax_label = models.CharField(max_length=32, blank=True, default="")
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("0"))
    net_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    tax_amount = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["-year", "-sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["year", "sequence"], name="payments_invoice_year_sequence"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteSequence(models.Model):
    """The last credit note number used in a year (a series of its own: CN-2026-000001)."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


class CreditNote(models.Model):
    """A refund (or its reversal) on an issued invoice, numbered in its own yearly series.

    ``amount`` is what it credits, tax included: positive for money refunded; negative for a
    refund that failed after it was credited (that note cancels the earlier one's amount).
    The invoice's notes add up to the order's refunded amount.
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    number = models.CharField(max_length=32, unique=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("0"))
    net_amount = models.DecimalField(max_digits=10, decimal_places=2)
    tax_amount = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    #: The order's refunded amount this note brings the invoice's notes to.
    refunded_total = models.DecimalField(max_digits=10, decimal_places=2)
    reason = models.CharField(max_length=255)
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["-year", "-sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["year", "sequence"], name="payments_creditnote_year_sequence"
            ),
            models.CheckConstraint(
                condition=~Q(amount=0), name="payments_creditnote_amount_not_zero"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class WebhookEvent(models.Model):
    """A provider webhook as received: stored first, processed once, never trusted unverified."""

    class Status(models.TextChoices):
        RECEIVED = "RECEIVED", "Received"
        PROCESSED = "PROCESSED", "Processed"
        IGNORED = "IGNORED", "Ignored"
        FAILED = "FAILED", "Failed"

    provider = models.CharField(max_length=16, choices=Order.Provider.choices)
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=128)
    raw_body = models.TextField()
    headers = models.JSONField(default=dict, blank=True)
    signature_valid = models.BooleanField(default=False)
    #: The provider-neutral reading of the verified body (a NormalizedEvent), so processing
    #: and replays never re-verify a signature whose timestamp has since gone stale.
    normalized = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    #: When a dispatcher (or the sweep) must queue this event, again if it was queued before
    #: and nothing has settled it by then: the moment of ingest or replay (due at once), then
    #: a lease when it is queued and at each attempt, after a failure the backoff plus the
    #: lease. Empty once the event is PROCESSED or IGNORED, or FAILED for good (a permanent
    #: error or no attempts left: staff decide, see the admin). The database, not a worker's
    #: memory or the broker, says what is due.
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["status", "received_at"], name="payments_webhook_status_time"),
            models.Index(fields=["type", "received_at"], name="payments_webhook_type_time"),
            # The dispatcher's and the sweep's read: events still to settle, by when due.
            models.Index(
                fields=["next_attempt_at"],
                name="payments_webhook_due",
                condition=Q(status__in=["RECEIVED", "FAILED"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="payments_webhook_unique_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.type} {self.event_id}"


class ReconciliationRun(models.Model):
    """One comparison of our orders with what the providers say, and what it fixed."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING", "Running"
        CLEAN = "CLEAN", "Clean"
        DISCREPANCIES = "DISCREPANCIES", "Discrepancies found"
        FAILED = "FAILED", "Failed"

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    since = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    counts = models.JSONField(default=dict, blank=True)
    discrepancies = models.JSONField(default=list, blank=True)
    fixed = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Reconciliation {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class SandboxPayment(models.Model):
    """The offline sandbox provider's own record of a checkout (what Stripe keeps on its side).

    The sandbox never touches orders: like a real provider it knows our order only by the
    reference we gave it, and tells us what happened through signed webhooks.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    token = models.CharField(max_length=64, unique=True)
    order_ref = models.CharField(max_length=64)
    description = models.CharField(max_length=255)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    amount_refunded = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    success_url = models.CharField(max_length=1000)
    cancel_url = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sandbox {self.token} {self.status}"

    @property
    def checkout_id(self) -> str:
        return f"sbx_cs_{self.token}"

    @property
    def payment_id(self) -> str:
        return f"sbx_pi_{self.token}"


class SandboxRefund(models.Model):
    """A refund the sandbox made, once per idempotency key (as a real provider keeps them)."""

    payment = models.ForeignKey(SandboxPayment, on_delete=models.CASCADE, related_name="refunds")
    idempotency_key = models.CharField(max_length=255, unique=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def refund_id(self) -> str:
        return f"sbx_re_{self.pk}"


# --- vouchers ------------------------------------------------------------------------------
# Vouchers (promo codes) and their redemptions.
#
# Stripe coupons and promotion codes discount money and cannot grant credits, and PayPal orders
# have no coupons at all, so the application owns its codes. A voucher grants free credits
# (``FIXED_TOKENS``), a percentage of a pack's credits on top of a purchase
# (``PERCENTAGE_BONUS``), or a free trial on a plan (``SUBSCRIPTION_TRIAL``, entered when
# subscribing to its plan, once per user and plan). The database keeps every count honest: ``uses`` never passes
# ``max_uses`` (a CHECK, and the claiming UPDATE is conditional on it) and a user holds at most
# one live redemption of a voucher (a partial UNIQUE index).

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
    """One user's use of one voucher: redeemed (credits granted), or a purchase bonus (or a
    plan trial) reserved by an open checkout and then redeemed at fulfilment (when the
    membership starts) or released when the checkout ends unpaid. A user holds at most one redemption of a voucher that is not released."""

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
        Order,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="voucher_redemptions",
    )
    #: The membership checkout a plan trial goes with.
    subscription = models.ForeignKey(
        "payments.Subscription",
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
            models.UniqueConstraint(
                fields=["subscription"],
                condition=Q(subscription__isnull=False),
                name="payments_redemption_one_per_subscription",
            ),
            models.CheckConstraint(
                condition=~Q(status="REDEEMED") | Q(redeemed_at__isnull=False),
                name="payments_redemption_redeemed_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.voucher} by user {self.user_id} ({self.status})"


class AutoTopUp(models.Model):
    """A user's standing order: when the balance falls below ``threshold``, buy ``package``
    off-session with the saved payment method. Turns itself off after a failed payment."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auto_topup"
    )
    enabled = models.BooleanField(default=False)
    threshold = models.PositiveIntegerField(default=100)
    package = models.ForeignKey(CreditPackage, on_delete=models.PROTECT, related_name="+")
    provider = models.CharField(max_length=16, choices=Order.Provider.choices, blank=True)
    #: The provider's customer and saved payment method (Stripe ``cus_`` and ``pm_`` ids; a
    #: PayPal vault customer and payment token, the ``vault_id`` its orders name).
    customer_id = models.CharField(max_length=255, blank=True, default="")
    payment_method_id = models.CharField(max_length=255, blank=True, default="")
    payment_method_label = models.CharField(max_length=100, blank=True, default="")
    #: The setup that is saving a payment method, until the user returns: "<provider>:<id>"
    #: (a Stripe setup-mode checkout, a PayPal vault setup token).
    setup_session_id = models.CharField(max_length=255, blank=True, default="")
    #: Why auto top-up turned itself off (shown on its page until turned on again).
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Auto top-up of user {self.user_id} ({'on' if self.enabled else 'off'})"


class AutoTopUpAttempt(models.Model):
    """One automatic purchase, made for one crossing below the threshold (``crossing_key``)."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "In flight"
        SUCCEEDED = "SUCCEEDED", "Paid"
        FAILED = "FAILED", "Failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    crossing_key = models.CharField(max_length=200)
    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="auto_topup")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Each crossing buys at most once, however often it is reported.
            models.UniqueConstraint(
                fields=["user", "crossing_key"], name="payments_autotopup_once_per_crossing"
            ),
            # At most one automatic purchase in flight per user.
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status="PENDING"),
                name="payments_autotopup_one_in_flight",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "created_at"], name="payments_autotopup_user_day"),
            models.Index(
                fields=["created_at"],
                condition=Q(status="PENDING"),
                name="payments_autotopup_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return f"Auto top-up {self.pk} of user {self.user_id} ({self.status})"


from .subscription_models import (  # noqa: E402, F401  (the subscription models live apart)
    PlanPrice,
    SandboxInvoice,
    SandboxSubscription,
    Subscription,
    SubscriptionPeriod,
    SubscriptionPlan,
)
