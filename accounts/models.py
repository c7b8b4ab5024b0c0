from django.contrib.auth.models import AbstractBaseUser, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from .managers import UserManager


class User(AbstractBaseUser, PermissionsMixin):
    """A customer or a staff member. The email address is the login."""

    class Status(models.TextChoices):
        TRIAL = "TRIAL", "Trial"
        ACTIVE = "ACTIVE", "Active"
        SUBSCRIBED = "SUBSCRIBED", "Subscribed"
        SUSPENDED = "SUSPENDED", "Suspended"

    class Tier(models.TextChoices):
        FREE = "FREE", "Free"
        BASIC = "BASIC", "Basic"
        PRO = "PRO", "Pro"

    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRIAL)
    membership_tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.FREE)
    membership_expires_at = models.DateTimeField(null=True, blank=True)
    last_login_ip = models.GenericIPAddressField(null=True, blank=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="")
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    #: When the account was deleted: its personal data erased, the row kept (anonymised and
    #: inactive) because orders, invoices and ledger entries point at it.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("export_user_data", "Can download a user's data"),
            ("erase_user", "Can delete a user's account and erase their personal data"),
        ]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["created_at"])]
        constraints = [
            # Addresses are stored lower-cased; this keeps "A@x.com" and "a@x.com" one account
            # even if some path forgets to normalise.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="accounts_user_unique_stripe_customer",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email

    @property
    def has_paid_plan(self) -> bool:
        """A paid membership that has not expired (free-tier regeneration stops then)."""
        if self.membership_tier == self.Tier.FREE:
            return False
        return self.membership_expires_at is None or self.membership_expires_at > timezone.now()


class OutboundEmail(models.Model):
    """An account email waiting to be sent, or sent: the outbox (see ``accounts.outbox``).

    Written in the request that asks for the email, sent after commit by a task; the row,
    not the broker, says what is still due (``next_attempt_at`` of a PENDING row).
    """

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Failed (gave up)"
        #: Never to be sent: the user turned this kind of email off before it was queued.
        SKIPPED = "SKIPPED", "Skipped (turned off by the user)"

    #: What the email is, e.g. allauth's template prefix "account/email/email_confirmation".
    kind = models.CharField(max_length=200, blank=True, default="")
    from_email = models.CharField(max_length=320)
    to = models.JSONField(default=list)
    subject = models.TextField()
    #: Emptied once sent: the bodies may carry one-time links.
    body = models.TextField(blank=True, default="")
    html_body = models.TextField(blank=True, default="")
    headers = models.JSONField(default=dict, blank=True)
    #: Files sent with the email: ``[{"filename", "mimetype", "content_b64"}]``; emptied once sent.
    attachments = models.JSONField(default=list, blank=True)
    #: Bodies drawn when the email is sent (``accounts.outbox.LaterBody``): the name of the
    #: function that draws them and what it draws them from; emptied once sent.
    render = models.JSONField(null=True, blank=True)
    #: The event this email tells of (``order:12:receipt``): at most one email per event.
    event_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="accounts_outbox_due",
                condition=models.Q(status="PENDING"),
            ),
            models.Index(fields=["created_at"], name="accounts_outbox_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind or 'email'} to {', '.join(self.to)} ({self.status})"
