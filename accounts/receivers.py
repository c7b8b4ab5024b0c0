"""Record the IP address and time of every login, whichever way the user logged in."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


@receiver(user_logged_in, dispatch_uid="accounts.record_login")
def record_login(sender, request, user, **kwargs) -> None:
    type(user).objects.filter(pk=user.pk).update(
        last_login_ip=client_ip(request), last_login_at=timezone.now()
    )
