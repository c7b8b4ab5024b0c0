"""What each user wants to hear about: the optional email kinds they turned off."""

from django.conf import settings
from django.db import models


class NoticePreferences(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notice_preferences"
    )
    #: Names of optional kinds (``notices.kinds``) this user does not want; every other is on.
    off = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notice preferences"

    def __str__(self) -> str:
        return f"Notices of user {self.user_id}: off {', '.join(self.off) or 'none'}"
