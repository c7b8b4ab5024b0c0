"""The notices part of a user's data export and account deletion."""

from accounts.lifecycle import register_account_data

from .models import NoticePreferences


def export_preferences(user):
    off = NoticePreferences.objects.filter(user_id=user.pk).values_list("off", flat=True).first()
    yield {"emails_turned_off": list(off or [])}


def erase_preferences(*, user, actor=None, reason: str = "") -> None:
    NoticePreferences.objects.filter(user_id=user.pk).delete()


def register() -> None:
    register_account_data("email_preferences", export=export_preferences, erase=erase_preferences)
