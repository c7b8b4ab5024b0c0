"""Every user gets a balance row when created; the trial comes when an address is verified.

Not at sign-up: a throwaway address that is never verified earns nothing. The verification
may be the confirmation link (``email_confirmed``, which allauth's admin action sends too),
a social login whose provider vouches for the address (``user_logged_in`` with a social
login), or staff ticking "verified" in the admin (``accounts.admin`` sends
``email_confirmed``). ``trial_grant_for_address`` gives at most one trial per account and
per canonical address.
"""

from allauth.account.signals import email_confirmed, user_logged_in
from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import CreditBalance
from .trials import trial_grant_for_address


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="credits.create_balance")
def create_balance(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw:
        CreditBalance.objects.bulk_create([CreditBalance(user=instance)], ignore_conflicts=True)


@receiver(email_confirmed, dispatch_uid="credits.trial_on_email_confirmed")
def grant_trial_on_email_confirmed(sender, request, email_address, **kwargs) -> None:
    trial_grant_for_address(user=email_address.user, email=email_address.email)


@receiver(user_logged_in, dispatch_uid="credits.trial_on_social_login")
def grant_trial_on_social_login(sender, request, user, sociallogin=None, **kwargs) -> None:
    """A social sign-up or log-in: the provider's verified addresses count as verified."""
    if sociallogin is None:
        return
    verified = sorted(
        (address for address in sociallogin.email_addresses if address.verified),
        key=lambda address: not address.primary,
    )
    for address in verified:
        if trial_grant_for_address(user=user, email=address.email) is not None:
            return
