"""Reads of the notice preferences."""

from .kinds import KINDS, kind_get
from .models import NoticePreferences


def notice_wanted(*, user, kind: str) -> bool:
    """Whether ``user`` gets emails of ``kind`` (transactional kinds: always)."""
    if not kind_get(kind).optional:
        return True
    off = NoticePreferences.objects.filter(user=user).values_list("off", flat=True).first()
    return kind not in (off or [])


def notice_kinds_state(*, user) -> list[tuple[object, bool]]:
    """Each optional kind with whether ``user`` gets it, for the preferences page."""
    off = NoticePreferences.objects.filter(user=user).values_list("off", flat=True).first() or []
    return [(kind, kind.name not in off) for kind in KINDS.values() if kind.optional]
