"""Generation jobs: what a user asked for, what it was estimated and charged, and the result."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class GenerationJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        PROCESSING = "PROCESSING", "Processing"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed"
        REFUNDED = "REFUNDED", "Refunded"
        CANCELLED = "CANCELLED", "Cancelled"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generation_jobs")
    operation = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    tier = models.CharField(max_length=16, blank=True, default="")
    prompt = models.TextField()
    parameters = models.JSONField(default=dict, blank=True)
    is_edit = models.BooleanField(default=False)
    estimated_credits = models.PositiveIntegerField()
    credits_charged = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    result_file = models.FileField(upload_to="generations/%Y/%m/", blank=True)
    error_message = models.TextField(blank=True, default="")
    retry_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=3)
    usage = models.JSONField(default=dict, blank=True)
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
        ]
        constraints = [
            models.CheckConstraint(condition=Q(estimated_credits__gt=0), name="generations_estimate_positive"),
            models.CheckConstraint(
                condition=Q(credits_charged__lte=models.F("estimated_credits")),
                name="generations_charge_within_estimate",
            ),
        ]

    def __str__(self) -> str:
        return f"Job #{self.pk} {self.operation} {self.status}"
