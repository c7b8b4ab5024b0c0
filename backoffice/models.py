"""Back-office records: large credit adjustments waiting for a second staff member."""

from django.conf import settings
from django.db import models
from django.db.models import Q

FINANCE_CODENAME = "view_finance"
#: Who may see revenue (the dashboard and the exports), as a has_perm() string.
FINANCE_PERMISSION = f"backoffice.{FINANCE_CODENAME}"


class AdjustmentRequest(models.Model):
    """An adjustment above the approval threshold, applied only once a different staff member approves."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending approval"
        APPLIED = "APPLIED", "Approved and applied"
        REJECTED = "REJECTED", "Rejected"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="adjustment_requests"
    )
    amount = models.BigIntegerField()
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    #: The idempotency key of the request that created this one, so a double submit makes one request.
    request_key = models.CharField(max_length=255, unique=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_note = models.TextField(blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    ledger_entry = models.OneToOneField(
        "credits.LedgerEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="adjustment_request",
    )
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        # The back office's own permissions live on its one model (Django keys them by app label):
        # view_finance gates revenue, i.e. the dashboard and the CSV exports (not given by is_staff).
        permissions = [
            (FINANCE_CODENAME, "Can see revenue: the staff dashboard and the CSV exports")
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="backoffice_adjreq_status_time")
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount=0), name="backoffice_adjreq_amount_not_zero"
            ),
            models.CheckConstraint(
                condition=~Q(status="APPLIED") | ~Q(decided_by=models.F("requested_by")),
                name="backoffice_adjreq_four_eyes",
            ),
            models.CheckConstraint(
                condition=~Q(status="APPLIED") | Q(ledger_entry__isnull=False),
                name="backoffice_adjreq_applied_has_entry",
            ),
        ]

    def __str__(self) -> str:
        return f"Adjustment request #{self.pk}: {self.amount:+d} for user {self.user_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"adjustment-request:{self.pk}"
