"""Personal API keys, the POSTs they made (for Idempotency-Key replays), and their daily spend.

A key is ``ck_<prefix>_<secret>``: the prefix (public, unique) finds the row, the secret
(256 random bits) is shown once and only its SHA-256 is stored. A key works while it is not
revoked, not expired, and its owner's plan includes API access.
"""

from django.conf import settings
from django.db import models

from generations.models import GenerationJob


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "Read (balance, ledger, jobs)"
        GENERATE = "generate", "Generate (create and cancel jobs, redeem codes)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    #: Credits this key may spend per (local) day; None: only the account's own caps.
    daily_credit_cap = models.PositiveIntegerField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: The key a rotation made to take this one's place (this one works until ``expires_at``).
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("revoke_apikey", "Can revoke API keys")]
        indexes = [
            models.Index(fields=["user", "created_at"], name="api_key_user_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (ck_{self.prefix}_…)"

    @property
    def display(self) -> str:
        return f"ck_{self.prefix}_…"


class ApiKeyDailySpend(models.Model):
    """Credits the jobs created with one key were charged on one day (for its daily cap)."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    credits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "day"], name="api_key_spend_one_per_day"),
        ]


class ApiRequest(models.Model):
    """One POST made with an Idempotency-Key: claimed first, then its response kept for replay.

    ``status`` NULL: still in progress (held until ``locked_until``, then a retry takes over).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    path = models.CharField(max_length=255)
    body_hash = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    locked_until = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="api_request_one_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.path} {self.key}"


class ApiJob(models.Model):
    """A generation job created through the API: by which key, under which request."""

    job = models.OneToOneField(GenerationJob, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, related_name="+")
    request = models.OneToOneField(
        ApiRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="job"
    )
    credits = models.PositiveIntegerField(default=0)
