"""Account services: the user's status, the data export and account deletion.

Deletion anonymises rather than removes the user row: orders, invoices and ledger entries
are financial records and keep pointing at it. What identifies the person (address, name,
login addresses and times, allauth email addresses and social accounts, the password, the
outbox's emails to the account's addresses) is erased here; each app above erases what it
holds through ``accounts.lifecycle``.
"""

import json
from collections.abc import Iterator

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from core.db import prepared_cursor

from .exceptions import AccountNotDeletable
from .lifecycle import account_data_sections
from .models import User
from .outbox import outbound_emails_erase

EXPORT_FORMAT = "account-data/1"
DELETED_DOMAIN = "deleted.invalid"


_MARK_PAYING = "UPDATE accounts_user SET status = %s, updated_at = %s WHERE id = %s AND status = %s"


def user_mark_paying(*, user: User) -> bool:
    """A completed payment makes a TRIAL user ACTIVE (never lowers SUBSCRIBED or SUSPENDED).

    Joins the caller's transaction (the order's fulfilment). Returns whether it changed.
    Nothing ever makes a user TRIAL again, so a copy already past it needs no statement.
    """
    if user.status != User.Status.TRIAL:
        return False
    # Prepared: it runs in every fulfilment; the ORM would compile it again every time.
    with prepared_cursor() as cursor:
        cursor.execute(
            _MARK_PAYING, [User.Status.ACTIVE, timezone.now(), user.pk, User.Status.TRIAL]
        )
        changed = cursor.rowcount
    if changed:
        user.status = User.Status.ACTIVE
    return bool(changed)


def user_membership_follow(*, user: User, subscribed: bool, tier: str | None, expires_at) -> None:
    """A live subscription makes the user SUBSCRIBED with its plan's tier until the paid
    period's end; its end brings them back to ACTIVE on the free tier. A SUSPENDED user
    stays suspended (only the tier follows). Joins the caller's transaction."""
    fields = {
        "membership_tier": tier if subscribed and tier else User.Tier.FREE,
        "membership_expires_at": expires_at if subscribed else None,
        "updated_at": timezone.now(),
    }
    users = User.objects.filter(pk=user.pk)
    users.update(**fields)
    if subscribed:
        users.exclude(status=User.Status.SUSPENDED).update(status=User.Status.SUBSCRIBED)
    else:
        users.filter(status=User.Status.SUBSCRIBED).update(status=User.Status.ACTIVE)
    user.refresh_from_db(fields=["status", "membership_tier", "membership_expires_at"])


# --- export --------------------------------------------------------------------------------


def _profile(user: User) -> dict:
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "status": user.status,
        "membership_tier": user.membership_tier,
        "membership_expires_at": user.membership_expires_at,
        "created_at": user.created_at,
        "last_login_at": user.last_login_at,
        "last_login_ip": user.last_login_ip,
        "email_addresses": [
            {"email": a.email, "verified": a.verified, "primary": a.primary}
            for a in EmailAddress.objects.filter(user=user).order_by("-primary", "email")
        ],
        "social_accounts": [
            {
                "provider": a.provider,
                "uid": a.uid,
                "date_joined": a.date_joined,
                "last_login": a.last_login,
            }
            for a in SocialAccount.objects.filter(user=user).order_by("pk")
        ],
    }


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def account_export_chunks(*, user: User) -> Iterator[str]:
    """The user's data as one JSON document, produced piece by piece (for a streamed download).

    ``{"format", "exported_at", "profile", <section>: [rows...], ...}``, the sections in the
    order the apps registered them (balance, ledger, orders, jobs, ...).
    """
    yield "{" + f'"format": {_dumps(EXPORT_FORMAT)}, "exported_at": {_dumps(timezone.now())}'
    yield f', "profile": {_dumps(_profile(user))}'
    for section in account_data_sections():
        if section.export is None:
            continue
        yield f", {_dumps(section.name)}: ["
        for index, row in enumerate(section.export(user)):
            yield ("," if index else "") + _dumps(row)
        yield "]"
    yield "}\n"


# --- deletion ------------------------------------------------------------------------------


def account_deletion_blockers(*, user: User) -> list[str]:
    """Why ``user`` cannot be deleted right now (empty: it can)."""
    if user.deleted_at is not None:
        return ["This account has already been deleted."]
    reasons = []
    if user.is_staff or user.is_superuser:
        reasons.append("Staff accounts are not deleted: remove the staff status first.")
    for section in account_data_sections():
        if section.blockers is not None:
            reasons.extend(section.blockers(user))
    return reasons


def anonymised_email(user_id: int) -> str:
    return f"deleted-{user_id}@{DELETED_DOMAIN}"


def account_delete(*, user: User, actor: User | None = None, reason: str = "") -> User:
    """Erase ``user``'s personal data and close the account, in one transaction.

    Refused (AccountNotDeletable, nothing changed) while a payment or a job is under way,
    for staff accounts, and for an account already deleted. The user row stays, anonymised
    and inactive, with orders, invoices and ledger entries still linked to it. ``actor`` is
    who asked (the user themselves, or a staff member); each app's erase hook runs inside
    the transaction and may record the deletion.
    """
    with transaction.atomic(durable=True):
        user = User.objects.select_for_update().get(pk=user.pk)
        reasons = account_deletion_blockers(user=user)
        if reasons:
            raise AccountNotDeletable(reasons)
        for section in account_data_sections():
            if section.erase is not None:
                section.erase(user=user, actor=actor, reason=reason)
        # Emails to any of its addresses: the unsent ones are cancelled, all are erased.
        outbound_emails_erase(
            addresses=[
                user.email,
                *EmailAddress.objects.filter(user=user).values_list("email", flat=True),
            ],
            replacement=anonymised_email(user.pk),
        )
        SocialAccount.objects.filter(user=user).delete()  # their tokens go with them
        EmailAddress.objects.filter(user=user).delete()
        user.email = anonymised_email(user.pk)
        user.name = ""
        user.last_login = None
        user.last_login_at = None
        user.last_login_ip = None
        user.stripe_customer_id = ""
        user.is_active = False
        user.deleted_at = timezone.now()
        # A new password hash ends every session: Django checks it on each request.
        user.set_unusable_password()
        user.save()
        user.groups.clear()
        user.user_permissions.clear()
    return user
