"""Record the IP address and time of every login, whichever way the user logged in."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from .net import client_ip


@receiver(user_logged_in, dispatch_uid="accounts.record_login")
def record_login(sender, request, user, **kwargs) -> None:
    now = timezone.now()
    ip = client_ip(request)
    type(user).objects.filter(pk=user.pk).update(last_login_ip=ip, last_login_at=now)
    user.last_login_ip, user.last_login_at = ip, now
