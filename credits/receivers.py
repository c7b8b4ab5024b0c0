"""Every user gets a balance row when the user is created."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import CreditBalance


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="credits.create_balance")
def create_balance(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw:
        CreditBalance.objects.get_or_create(user=instance)
