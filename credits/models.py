"""The credit ledger: one balance row per user and append-only entries that explain it."""

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Now

from core.audit import AuditAction

from .references import SOURCE_TYPE_MAX_LENGTH, Source, SourceLink, customer_link


class LedgerKind(models.TextChoices):
    TRIAL_GRANT = "TRIAL_GRANT", "Trial grant"
    PURCHASE = "PURCHASE", "Purchase"
    SUBSCRIPTION_GRANT = "SUBSCRIPTION_GRANT", "Subscription grant"
    REGENERATION = "REGENERATION", "Free-tier regeneration"
    VOUCHER = "VOUCHER", "Voucher"
    BONUS = "BONUS", "Bonus"
    SPEND = "SPEND", "Spend"
    REFUND = "REFUND", "Refund"
    ADJUSTMENT = "ADJUSTMENT", "Adjustment"
    CLAWBACK = "CLAWBACK", "Clawback"
    EXPIRY = "EXPIRY", "Expiry"
    #: The whole remaining balance, given up when the account is deleted.
    FORFEIT = "FORFEIT", "Forfeited balance"
    #: What was left of a bonus lot granted with a purchase, voided with that purchase.
    VOID = "VOID", "Voided"


#: Kinds that add credits (amount > 0), take them (amount < 0), or may go either way.
CREDIT_KINDS = frozenset(
    {
        LedgerKind.TRIAL_GRANT,
        LedgerKind.PURCHASE,
        LedgerKind.SUBSCRIPTION_GRANT,
        LedgerKind.REGENERATION,
        LedgerKind.VOUCHER,
        LedgerKind.BONUS,
        LedgerKind.REFUND,
    }
)
DEBIT_KINDS = frozenset({LedgerKind.SPEND, LedgerKind.EXPIRY, LedgerKind.FORFEIT, LedgerKind.VOID})
#: Kinds a caller may pass to ``credits_grant``. Refunds go through ``credits_refund`` and
#: regeneration is written only by the regeneration itself (it must respect the cap).
GRANT_KINDS = CREDIT_KINDS - {LedgerKind.REFUND, LedgerKind.REGENERATION}
#: Kinds counted on the spent side of the lifetime totals; every other kind is earned.
SPENT_SIDE_KINDS = frozenset({LedgerKind.SPEND, LedgerKind.REFUND})


class CreditBalance(models.Model):
    """The current balance of one user. Changed only by the services, under its row lock."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="credit_balance",
    )
    balance = models.BigIntegerField(default=0)
    #: Everything ever added (shown as "received"), and everything spent net of refunds.
    lifetime_earned = models.BigIntegerField("lifetime received", default=0)
    lifetime_spent = models.BigIntegerField("lifetime spent", default=0)
    #: Open reasons to refuse spending (for example payment disputes); spending needs 0.
    spend_holds = models.IntegerField(default=0)
    #: Free-tier regeneration has been accounted for up to this moment.
    regen_checked_at = models.DateTimeField(null=True, blank=True)
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    # Spending controls, read and kept by the movement statement itself (see
    # ``credits.ledger_sql``), so no concurrent spend can pass a cap or miss a crossing.
    #: Caps on the credits spent per day and per calendar month (None: no cap), in the
    #: windows of ``CREDITS_CAP_TIMEZONE``.
    daily_cap = models.PositiveBigIntegerField(null=True, blank=True)
    monthly_cap = models.PositiveBigIntegerField(null=True, blank=True)
    #: Credits spent (net of refunds of those spends) in the day and month these name; a
    #: window other than the current one counts as nothing spent yet.
    spent_day = models.DateField(null=True, blank=True)
    spent_in_day = models.BigIntegerField(default=0, db_default=0)
    spent_month = models.DateField(null=True, blank=True)
    spent_in_month = models.BigIntegerField(default=0, db_default=0)
    #: Tell the user when the balance falls below this (None: never). ``low_balance_armed``:
    #: the next fall below it is a crossing (cleared by the crossing, set again when the
    #: balance is back at or above the threshold).
    low_balance_threshold = models.PositiveBigIntegerField(null=True, blank=True)
    low_balance_armed = models.BooleanField(default=True, db_default=True)
    #: The same for automatic top-up (set by the payments app when it is turned on).
    top_up_threshold = models.PositiveBigIntegerField(null=True, blank=True)
    top_up_armed = models.BooleanField(default=True, db_default=True)

    class Meta:
        permissions = [
            ("adjust_credits", "Can adjust a user's credits"),
            ("approve_adjustment", "Can approve a large credit adjustment"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0), name="credits_balance_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(lifetime_earned__gte=0), name="credits_earned_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(lifetime_spent__gte=0), name="credits_spent_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(spend_holds__gte=0), name="credits_holds_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(spent_in_day__gte=0, spent_in_month__gte=0),
                name="credits_spent_in_window_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.balance}"

    @property
    def spending_frozen(self) -> bool:
        return self.spend_holds > 0


#: What a customer reads for a staff adjustment that has no customer-facing description.
STAFF_ADJUSTMENT_ADDED = "Credits added by our support team"
STAFF_ADJUSTMENT_REMOVED = "Credits removed by our support team"


def staff_adjustment_description(amount: int) -> str:
    return STAFF_ADJUSTMENT_ADDED if amount > 0 else STAFF_ADJUSTMENT_REMOVED


def customer_description():
    """The description a customer may read, as a query expression.

    Adjustments written before internal notes were kept apart (``internal_note`` NULL)
    hold the staff reason in ``description``: the customer reads a neutral line instead.
    """
    legacy = Q(kind=LedgerKind.ADJUSTMENT, internal_note__isnull=True)
    return Case(
        When(legacy & Q(amount__gt=0), then=Value(STAFF_ADJUSTMENT_ADDED)),
        When(legacy, then=Value(STAFF_ADJUSTMENT_REMOVED)),
        default=F("description"),
        output_field=models.CharField(),
    )


class AppendOnlyQuerySet(models.QuerySet):
    def caused_by(self, source: Source) -> "AppendOnlyQuerySet":
        """The entries whose source is ``source`` (an order's, a job's, ...)."""
        return self.filter(source_type=source.type, source_id=source.id)

    def update(self, **kwargs):
        raise TypeError("Ledger entries are append-only: write a correcting entry instead.")

    def delete(self):
        raise TypeError("Ledger entries are append-only: write a correcting entry instead.")


class LedgerEntry(models.Model):
    """One movement of credits. Never updated, never deleted: corrections are new entries."""

    # Lookups by user use the (user, created_at, id) index; the nullable links and the source
    # are indexed only where set (partial indexes), so a spend maintains as few indexes as possible.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        db_index=False,
    )
    amount = models.BigIntegerField()
    kind = models.CharField(max_length=24, choices=LedgerKind.choices)
    balance_before = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    #: What the customer sees (history page, CSV export, emails).
    description = models.CharField(max_length=255, blank=True, default="")
    #: Staff only (admin, audit log): why staff made the movement. NULL on entries written
    #: before notes were kept apart, whose staff adjustments carry the staff reason in
    #: ``description``; customers see ``customer_description`` instead of it.
    internal_note = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    #: What caused the movement (an order, a job, ...), as a stable type name and that
    #: object's id; both NULL or both set. No foreign key: ``credits`` depends on no app above
    #: it (see ``credits.references``). Never changes once written.
    source_type = models.CharField(max_length=SOURCE_TYPE_MAX_LENGTH, null=True, blank=True)
    source_id = models.BigIntegerField(null=True, blank=True)
    reverses = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversals",
        db_index=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "created_at", "id"], name="credits_ledger_user_time"),
            models.Index(fields=["kind", "created_at"], name="credits_ledger_kind_time"),
            # The entries of one order or job (source_id first: it is the selective part, and
            # the admin's search by a bare id uses the same index).
            models.Index(
                fields=["source_id", "source_type"],
                name="credits_ledger_source",
                condition=Q(source_id__isnull=False),
            ),
            models.Index(
                fields=["reverses"],
                name="credits_ledger_reverses",
                condition=Q(reverses__isnull=False),
            ),
            models.Index(
                fields=["created_by"],
                name="credits_ledger_created_by",
                condition=Q(created_by__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(balance_after=F("balance_before") + F("amount")),
                name="credits_entry_chain",
            ),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="credits_entry_after_non_negative"
            ),
            models.CheckConstraint(
                condition=(
                    (Q(kind__in=sorted(CREDIT_KINDS)) & Q(amount__gt=0))
                    | (Q(kind__in=sorted(DEBIT_KINDS)) & Q(amount__lt=0))
                    | (Q(kind=LedgerKind.CLAWBACK) & Q(amount__lte=0))
                    | (Q(kind=LedgerKind.ADJUSTMENT) & ~Q(amount=0))
                ),
                name="credits_entry_sign_by_kind",
            ),
            models.CheckConstraint(
                condition=Q(source_type__isnull=True, source_id__isnull=True)
                | Q(source_type__isnull=False, source_id__isnull=False),
                name="credits_entry_source_pair",
            ),
            # A spend is refunded at most once.
            models.UniqueConstraint(
                fields=["reverses"],
                condition=Q(kind=LedgerKind.REFUND),
                name="credits_one_refund_per_spend",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} ({self.user_id})"

    @property
    def source(self) -> Source | None:
        return None if self.source_type is None else Source(self.source_type, self.source_id)

    @property
    def source_link(self) -> SourceLink | None:
        """The source as the customer's history shows it ("job #12", linked), or None."""
        return customer_link(self.source_type, self.source_id)

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Ledger entries are append-only: write a correcting entry instead.")
        raise TypeError("Ledger entries are written only by credits.services.")

    def delete(self, *args, **kwargs):
        raise TypeError("Ledger entries are append-only: write a correcting entry instead.")


class LotCategory(models.TextChoices):
    """Paid credits were bought (deferred revenue until used); promotional ones were given."""

    PAID = "paid", "Paid"
    PROMOTIONAL = "promotional", "Promotional"


class LotSource(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    SUBSCRIPTION = "subscription", "Subscription period"
    ROLLOVER = "rollover", "Rollover"
    TRIAL = "trial", "Trial"
    BONUS = "bonus", "Bonus"
    VOUCHER = "voucher", "Voucher"
    REGENERATION = "regeneration", "Free-tier regeneration"
    ADJUSTMENT = "adjustment", "Staff adjustment"
    OPENING = "opening", "Opening balance"


class CreditLot(models.Model):
    """Credits granted together: where they came from, what they cost, until when they count.

    Every grant entry creates exactly one lot (``grant_entry``). Spends draw from the user's
    live lots in burn order and record what they took as ``LotMovement`` rows; the balance row
    always equals the sum of ``remaining`` over the user's lots. Only ``remaining`` ever
    changes (the database refuses any other UPDATE and every DELETE).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="credit_lots",
        db_index=False,
    )
    category = models.CharField(max_length=16, choices=LotCategory.choices)
    source = models.CharField(max_length=16, choices=LotSource.choices)
    original = models.BigIntegerField()
    remaining = models.BigIntegerField()
    #: ``remaining > 0``, kept by the database. The partial indexes of lots that still hold
    #: credits are conditioned on it rather than on ``remaining``: a spend that leaves credits
    #: in a lot changes no indexed column, so PostgreSQL can update the row in place (HOT),
    #: without a new entry in every index. Under a hot user's queue of waiting spends (whose
    #: snapshots keep every recent version alive) that is what keeps a spend's cost flat.
    has_remaining = models.GeneratedField(
        expression=Q(remaining__gt=0), output_field=models.BooleanField(), db_persist=True
    )
    #: Lower burns first (``CREDITS_LOT_PRIORITY`` per source, at grant time).
    priority = models.SmallIntegerField()
    #: The database clock when the lot was granted; it is spendable from then on.
    effective_at = models.DateTimeField(db_default=Now())
    #: When what is left stops counting (NULL: never).
    expires_at = models.DateTimeField(null=True, blank=True)
    #: Money per credit paid for this lot (0 for promotional credits), in ``currency``.
    cost_basis = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    currency = models.CharField(max_length=3, blank=True, default="")
    #: What created the lot, as on ``LedgerEntry`` (see ``credits.references``).
    source_type = models.CharField(max_length=SOURCE_TYPE_MAX_LENGTH, null=True, blank=True)
    source_id = models.BigIntegerField(null=True, blank=True)
    grant_entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="lot")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]
        indexes = [
            # The burn order of one user's lots that still hold credits (promotional, which
            # sorts after paid, first: category descending).
            models.Index(
                "user",
                "priority",
                "expires_at",
                models.OrderBy(F("category"), descending=True),
                "effective_at",
                "id",
                name="credits_lot_burn_order",
                condition=Q(has_remaining=True),
            ),
            # One user's lots in the order they were granted, spent or not (staff pages).
            models.Index(fields=["user", "id"], name="credits_lot_user"),
            # check_ledger reads each grant's lot from here, in ledger order, without visiting
            # the lots: none of these columns ever changes, so spends still update lots in place.
            models.Index(
                fields=["grant_entry"],
                include=["user", "original", "source", "category"],
                name="credits_lot_grant_check",
            ),
            models.Index(
                fields=["source_type", "source_id"],
                name="credits_lot_source",
                condition=Q(source_id__isnull=False),
            ),
            models.Index(
                fields=["expires_at"],
                name="credits_lot_expiring",
                condition=Q(has_remaining=True, expires_at__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(original__gt=0), name="credits_lot_original_positive"
            ),
            models.CheckConstraint(
                condition=Q(remaining__gte=0, remaining__lte=F("original")),
                name="credits_lot_remaining_range",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=F("effective_at")),
                name="credits_lot_expires_after_effective",
            ),
            models.CheckConstraint(
                condition=Q(cost_basis__gte=0)
                & (~Q(category=LotCategory.PROMOTIONAL) | Q(cost_basis=0, currency="")),
                name="credits_lot_cost_basis",
            ),
            models.CheckConstraint(
                condition=Q(source_type__isnull=True, source_id__isnull=True)
                | Q(source_type__isnull=False, source_id__isnull=False),
                name="credits_lot_source_pair",
            ),
        ]

    def __str__(self) -> str:
        return f"lot {self.pk} ({self.category} {self.source}): {self.remaining}/{self.original}"

    def save(self, *args, **kwargs):
        raise TypeError("Credit lots are written only by credits.services.")

    def delete(self, *args, **kwargs):
        raise TypeError("Credit lots are never deleted: write a correcting entry instead.")


class LotMovement(models.Model):
    """Credits one ledger entry took from a lot (``credits`` < 0) or gave back to it (> 0).

    Draws are written by SPEND, negative ADJUSTMENT, EXPIRY, CLAWBACK, VOID and FORFEIT
    entries; returns (REFUND, a settle below its reservation) name the draw they give back
    in ``returns``. Append-only.
    """

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="lot_movements")
    lot = models.ForeignKey(CreditLot, on_delete=models.PROTECT, related_name="movements")
    credits = models.BigIntegerField()
    returns = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="returned_by",
        db_index=False,
    )
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["returns"],
                name="credits_lotmove_returns",
                condition=Q(returns__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(credits=0), name="credits_lotmove_nonzero"),
            models.CheckConstraint(
                condition=Q(returns__isnull=True) | Q(credits__gt=0),
                name="credits_lotmove_return_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.credits:+d} lot {self.lot_id} (entry {self.entry_id})"

    def save(self, *args, **kwargs):
        raise TypeError("Lot movements are written only by credits.services.")

    def delete(self, *args, **kwargs):
        raise TypeError("Lot movements are append-only: write a correcting entry instead.")


class AuditLog(models.Model):
    """Who did what to whose money, and whether it worked. Written in the same transaction."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_logs",
        db_index=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    action = models.CharField(max_length=64, choices=AuditAction.choices)
    success = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="credits_audit_user_time"),
            models.Index(fields=["action", "created_at"], name="credits_audit_action_time"),
            models.Index(
                fields=["actor"], name="credits_audit_actor", condition=Q(actor__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {'ok' if self.success else 'failed'}"


class IdempotencyRecord(models.Model):
    """The stored result of an operation keyed by its idempotency key, kept until it expires.

    Written and read through ``credits.idempotency``. ``expires_at`` NULL means kept for good
    (for keys whose replay must never apply twice, such as spending holds); a periodic task
    deletes the expired ones, and an expired record counts as absent.
    """

    key = models.CharField(max_length=255, unique=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return self.key


class TrialClaim(models.Model):
    """One free trial per address: the canonical form of the verified address it was granted for.

    Kept as a SHA-256 digest of ``accounts.addresses.canonical_email`` (not the address
    itself), so it outlives the account's deletion without keeping the address readable.
    ``user`` is unique too: one claim, and one trial, per account.
    """

    address_digest = models.CharField(max_length=64, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="trial_claim"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"trial claim {self.address_digest[:12]}… ({self.user_id})"


class BalanceCrossing(models.Model):
    """A balance that fell below one of its user's thresholds: work that is due.

    Written by the movement statement that lowered the balance, in the same transaction, at
    most once per fall (the threshold re-arms when the balance is back at or above it). What
    a crossing leads to (an email, an automatic top-up) is done by the handler an upper app
    registers for its kind (``credits.crossings``), which marks it handled in the same
    transaction as its own work; a lost task only delays it (a periodic sweep finds it).
    """

    class Kind(models.TextChoices):
        LOW_BALANCE = "low_balance", "Low balance"
        TOP_UP = "top_up", "Automatic top-up"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    threshold = models.BigIntegerField()
    balance_before = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    #: The movement whose entry took the balance below (the last one the statement wrote).
    entry = models.ForeignKey(
        LedgerEntry, null=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(db_default=Now())
    handled_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "id"], name="credits_crossing_user"),
            models.Index(
                fields=["created_at"],
                name="credits_crossing_due",
                condition=Q(handled_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of user {self.user_id} below {self.threshold}"
