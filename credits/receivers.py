"""Every user gets a balance row when created; the trial grant comes with email verification."""

from allauth.account.signals import email_confirmed
from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import CreditBalance
from .services import credits_grant_trial


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="credits.create_balance")
def create_balance(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw:
        CreditBalance.objects.bulk_create([CreditBalance(user=instance)], ignore_conflicts=True)


@receiver(email_confirmed, dispatch_uid="credits.trial_on_email_confirmed")
def grant_trial_on_email_confirmed(sender, request, email_address, **kwargs) -> None:
    """Not at sign-up: a throwaway address that is never verified earns nothing.

    The grant's key is ``trial:<user id>``, so verifying a second address grants nothing more.
    """
    credits_grant_trial(user=email_address.user)
