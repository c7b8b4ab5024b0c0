"""Generation jobs: what a user asked for, what it was estimated and charged, and the result."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Operation(models.TextChoices):
    IMAGE = "image", "Picture"
    ENHANCE = "enhance", "Picture enhancement"
    TEXT = "text", "Text"


class PriceRule(models.Model):
    """What one kind of request costs, in credits. Staff edit these; jobs keep the rule they used.

    The most specific active rule wins: an exact model beats "any model", an exact tier beats
    "any tier". ``own_key`` rules price jobs run on the user's own API key (the platform fee).
    Picture and enhancement rules cost their base credits; text rules add credits per 1,000
    input and output tokens.
    """

    name = models.CharField(max_length=100)
    operation = models.CharField(max_length=32, choices=Operation.choices)
    model = models.CharField(max_length=64, blank=True, default="", help_text="Empty: any model.")
    tier = models.CharField(max_length=16, blank=True, default="", help_text="Empty: any tier.")
    membership_tier = models.CharField(
        max_length=16,
        blank=True,
        default="",
        help_text="The member's plan tier (FREE, BASIC, PRO) this price is for. Empty: anyone.",
    )
    own_key = models.BooleanField(
        default=False, help_text="The platform fee for jobs run on the user's own API key."
    )
    base_credits = models.PositiveIntegerField(default=0)
    credits_per_1k_input = models.DecimalField(max_digits=9, decimal_places=3, default=0)
    credits_per_1k_output = models.DecimalField(max_digits=9, decimal_places=3, default=0)
    edit_multiplier = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=1,
        help_text="Edits of an earlier result cost this share.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["operation", "own_key", "model", "tier"]
        constraints = [
            models.UniqueConstraint(
                fields=["operation", "model", "tier", "membership_tier", "own_key"],
                condition=Q(active=True),
                name="generations_one_active_rule_per_key",
            ),
            models.CheckConstraint(
                condition=Q(credits_per_1k_input__gte=0) & Q(credits_per_1k_output__gte=0),
                name="generations_rule_rates_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(edit_multiplier__gt=0) & Q(edit_multiplier__lte=1),
                name="generations_rule_edit_multiplier_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.operation != Operation.TEXT and (
            self.credits_per_1k_input or self.credits_per_1k_output
        ):
            raise ValidationError(
                "Only text is priced by tokens: pictures cost their base credits."
            )
        if self.operation == Operation.ENHANCE and not self.tier:
            raise ValidationError({"tier": "An enhancement rule names its tier (1K, 2K or 4K)."})


class GenerationJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        PROCESSING = "PROCESSING", "Processing"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed"
        REFUNDED = "REFUNDED", "Refunded"
        CANCELLED = "CANCELLED", "Cancelled"

    ACTIVE_STATUSES = (Status.PENDING, Status.PROCESSING)
    TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.REFUNDED, Status.CANCELLED)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generation_jobs"
    )
    operation = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    tier = models.CharField(max_length=16, blank=True, default="")
    prompt = models.TextField()
    parameters = models.JSONField(default=dict, blank=True)
    is_edit = models.BooleanField(default=False)
    #: The earlier job this one edits or enhances.
    source = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived_jobs"
    )
    #: The FAILED job that its owner or staff ran again as this one (each failed job at most once).
    retry_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retried_as"
    )
    #: Run on the user's own API key: charged the platform fee only.
    uses_own_key = models.BooleanField(default=False)
    price_rule = models.ForeignKey(
        PriceRule, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    estimated_credits = models.PositiveIntegerField()
    credits_charged = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    result_file = models.FileField(upload_to="generations/%Y/%m/", blank=True)
    #: Shown to the user.
    error_message = models.TextField(blank=True, default="")
    #: For staff only: the technical detail behind ``error_message``.
    error_detail = models.TextField(blank=True, default="")
    retry_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=3)
    usage = models.JSONField(default=dict, blank=True)
    #: The current run's claim; a runner may finish the job only while it still holds it.
    claim_token = models.UUIDField(null=True, blank=True)
    #: When a PENDING job's task is due (the reaper sends it again if it never ran).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: When the sweep sends a still-PENDING job's task again (its message never started:
    #: the broker was down when it was sent, or lost it). Each resend waits longer.
    resend_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("manage_jobs", "Can retry or refund a generation job")]
        indexes = [
            models.Index(fields=["user", "created_at"], name="generations_job_user_time"),
            models.Index(fields=["status", "started_at"], name="generations_job_status_start"),
            models.Index(fields=["status", "next_attempt_at"], name="generations_job_status_due"),
            models.Index(fields=["status", "resend_at"], name="generations_job_status_resend"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(estimated_credits__gt=0), name="generations_estimate_positive"
            ),
            models.CheckConstraint(
                condition=Q(credits_charged__lte=models.F("estimated_credits")),
                name="generations_charge_within_estimate",
            ),
            models.CheckConstraint(
                condition=~Q(status="PROCESSING")
                | (Q(claim_token__isnull=False) & Q(started_at__isnull=False)),
                name="generations_processing_is_claimed",
            ),
        ]

    def __str__(self) -> str:
        return f"Job #{self.pk} {self.operation} {self.status}"

    @property
    def operation_label(self) -> str:
        return (
            Operation(self.operation).label
            if self.operation in Operation.values
            else self.operation
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def result_kind(self) -> str:
        """ "svg", "png", "jpg", "webp" or "text" by the stored result's file type; "" without
        a result."""
        name = self.result_file.name if self.result_file else ""
        if name.endswith(".svg"):
            return "svg"
        for picture in ("png", "jpg", "webp"):
            if name.endswith(f".{picture}"):
                return picture
        if name.endswith(".txt"):
            return "text"
        return ""

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("generations:detail", args=[self.pk])


class ApiCredential(models.Model):
    """A user's own API key for the OpenAI-compatible backend, encrypted at rest."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_credential"
    )
    provider = models.CharField(max_length=32, default="openai")
    encrypted_key = models.TextField()
    #: The last characters of the key, so its owner can recognise it.
    key_hint = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider} key …{self.key_hint} ({self.user_id})"
