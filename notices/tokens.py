"""Signed unsubscribe tokens: a user id and an email kind, unforgeable, no login needed."""

from django.core import signing

SALT = "notices.unsubscribe"


def unsubscribe_token(*, user_id: int, kind: str) -> str:
    return signing.dumps({"u": user_id, "k": kind}, salt=SALT, compress=False)


def unsubscribe_token_read(token: str) -> tuple[int, str] | None:
    """``(user id, kind)`` of a genuine token, None for anything else."""
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    return data["u"], str(data.get("k", ""))
