"""Accounts in the admin: email addresses, and the outbox of account emails.

The user page itself gathers every app's rows (balance, ledger, orders, jobs) and the staff
actions, so the back office registers it (``backoffice/user_admin.py``).
"""

from allauth.account import signals as account_signals
from allauth.account.admin import EmailAddressAdmin as AllauthEmailAddressAdmin
from allauth.account.models import EmailAddress
from django.contrib import admin

from . import outbox_admin  # noqa: F401  (the outbox's read-only admin)

admin.site.unregister(EmailAddress)


@admin.register(EmailAddress)
class EmailAddressAdmin(AllauthEmailAddressAdmin):
    """Staff ticking "verified" counts as a verification, as allauth's bulk action already does."""

    def save_model(self, request, obj, form, change):
        newly_verified = obj.verified and (not change or "verified" in form.changed_data)
        super().save_model(request, obj, form, change)
        if newly_verified:
            account_signals.email_confirmed.send(
                sender=EmailAddress, request=request, email_address=obj
            )
