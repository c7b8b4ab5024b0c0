"""Personal API keys: create, rotate, revoke, and the check every API request makes.

A key is ``ck_<prefix>_<secret>``. The prefix (12 characters) is public: it finds the row and
is shown on the keys page and in the admin. The secret is 256 random bits, shown once at
creation; only its SHA-256 is stored (a hash of a high-entropy secret needs no slow KDF, and
a fast one keeps every request's check cheap). Keys work only while their owner's plan
includes API access: the check reads the live subscription on every request, so a plan that
ends stops its keys at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.audit import AuditAction
from core.errors import ApplicationError
from credits.models import AuditLog
from payments.subscription_models import Subscription

from .app_settings import app_settings
from .models import ApiKey

Scope = ApiKey.Scope
PREFIX_LENGTH = 12
#: Statuses in which a subscription's plan counts (an unfinished checkout gives nothing yet).
PLAN_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)
#: ``last_used_at`` is written at most this often per key (one write, not one per request).
LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiKeyError(ApplicationError):
    code = "api_key_error"


class InvalidApiKey(ApiKeyError):
    code = "invalid_api_key"
    status = 401
    default_message = "The API key is missing, malformed, unknown, revoked or expired."


class ApiAccessRequired(ApiKeyError):
    code = "api_access_required"
    status = 403
    default_message = "Your plan does not include API access."


class ScopeMissing(ApiKeyError):
    code = "insufficient_scope"
    status = 403

    def __init__(self, scope: str):
        super().__init__(f"This API key lacks the {scope!r} scope.", extra={"scope": scope})


class KeyNotFound(ApiKeyError):
    code = "not_found"
    status = 404
    default_message = "No such API key."


@dataclass(frozen=True)
class IssuedKey:
    """A key just made: the row, and the full token (shown once, never stored)."""

    key: ApiKey
    token: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _access_plans(user_id):
    return Subscription.objects.filter(
        user_id=user_id, status__in=PLAN_STATUSES, plan__api_access=True
    )


def has_api_access(*, user) -> bool:
    """Whether ``user``'s current plan includes API access."""
    return _access_plans(user.pk).exists()


def _audit(*, action: AuditAction, key: ApiKey, actor, details: dict | None = None) -> None:
    AuditLog.objects.create(
        user_id=key.user_id,
        actor_id=getattr(actor, "pk", None),
        action=action,
        metadata={"key_id": key.pk, "prefix": key.prefix, "name": key.name, **(details or {})},
    )


def _clean_scopes(scopes) -> list[str]:
    chosen = sorted(set(scopes or []))
    if not chosen or any(s not in Scope.values for s in chosen):
        raise ApiKeyError("Choose one or more scopes: read, generate.", code="invalid_scopes")
    return chosen


def _new_key(*, user, name: str, scopes: list[str], expires_at, daily_credit_cap) -> IssuedKey:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = secrets.token_urlsafe(32)  # 256 bits
    key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=scopes,
        expires_at=expires_at,
        daily_credit_cap=daily_credit_cap,
    )
    return IssuedKey(key=key, token=f"ck_{prefix}_{secret}")


def api_key_create(
    *,
    user,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    daily_credit_cap: int | None = None,
) -> IssuedKey:
    """Make a key for ``user`` (whose plan must include API access). Audited."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ApiKeyError("Give the key a name of up to 80 characters.", code="invalid_name")
    scopes = _clean_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("The expiry must be in the future.", code="invalid_expiry")
    if daily_credit_cap is not None and daily_credit_cap < 1:
        raise ApiKeyError("A daily cap is at least 1 credit.", code="invalid_cap")
    if not has_api_access(user=user):
        raise ApiAccessRequired()
    with transaction.atomic(durable=True):
        live = api_keys_live(user=user).select_for_update().count()
        if live >= app_settings.KEYS_PER_USER:
            raise ApiKeyError(
                f"You already have {live} keys; revoke one first.", code="too_many_keys"
            )
        issued = _new_key(
            user=user,
            name=name,
            scopes=scopes,
            expires_at=expires_at,
            daily_credit_cap=daily_credit_cap,
        )
        _audit(action=AuditAction.API_KEY_CREATE, key=issued.key, actor=user)
    return issued


def api_keys_live(*, user):
    now = timezone.now()
    return ApiKey.objects.filter(user_id=user.pk, revoked_at__isnull=True).exclude(
        expires_at__lte=now
    )


def api_key_revoke(*, key_id: int, actor, user=None, reason: str = "") -> ApiKey:
    """Revoke a key at once. ``user``: the owner revoking their own (anyone else's is 404);
    without it, staff revoking any key. Revoking a revoked key changes nothing. Audited."""
    with transaction.atomic(durable=True):
        qs = ApiKey.objects.select_for_update()
        if user is not None:
            qs = qs.filter(user_id=user.pk)
        key = qs.filter(pk=key_id).first()
        if key is None:
            raise KeyNotFound()
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.revoked_by = actor
            key.save(update_fields=["revoked_at", "revoked_by"])
            action = (
                AuditAction.API_KEY_REVOKE if user is not None else AuditAction.STAFF_API_KEY_REVOKE
            )
            _audit(action=action, key=key, actor=actor, details={"reason": reason})
    return key


def api_key_rotate(*, user, key_id: int, overlap: timedelta = timedelta(hours=24)) -> IssuedKey:
    """Make a new key with the same name, scopes, expiry and cap; the old one keeps working
    for ``overlap`` (0 to 30 days) so scripts can switch over, then expires. Audited."""
    if not timedelta(0) <= overlap <= timedelta(days=30):
        raise ApiKeyError("The overlap is between 0 and 30 days.", code="invalid_overlap")
    if not has_api_access(user=user):
        raise ApiAccessRequired()
    now = timezone.now()
    with transaction.atomic(durable=True):
        old = (
            api_keys_live(user=user)
            .select_for_update()
            .filter(pk=key_id, replaced_by__isnull=True)
            .first()
        )
        if old is None:
            raise KeyNotFound()
        issued = _new_key(
            user=user,
            name=old.name,
            scopes=old.scopes,
            expires_at=old.expires_at,
            daily_credit_cap=old.daily_credit_cap,
        )
        ends = now + overlap
        old.expires_at = min(old.expires_at, ends) if old.expires_at else ends
        old.replaced_by = issued.key
        old.save(update_fields=["expires_at", "replaced_by"])
        _audit(
            action=AuditAction.API_KEY_ROTATE,
            key=old,
            actor=user,
            details={"new_key_id": issued.key.pk, "old_expires_at": old.expires_at.isoformat()},
        )
    return issued


def api_key_authenticate(*, token: str) -> ApiKey:
    """The key ``token`` names, with its user, if it works now; else InvalidApiKey (one answer
    for every reason, so a caller learns nothing of other people's keys) or ApiAccessRequired
    (the owner's plan has no API access: the owner is told so)."""
    parts = (token or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "ck" or len(parts[1]) != PREFIX_LENGTH or not parts[2]:
        raise InvalidApiKey()
    key = (
        ApiKey.objects.select_related("user")
        .annotate(plan_access=Exists(_access_plans(OuterRef("user_id"))))
        .filter(prefix=parts[1])
        .first()
    )
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(parts[2])):
        raise InvalidApiKey()
    now = timezone.now()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise InvalidApiKey()
    if not key.user.is_active:
        raise InvalidApiKey()
    if not key.plan_access:
        raise ApiAccessRequired(
            "Your plan does not include API access (any more); your keys work again with a plan "
            "that does."
        )
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def require_scope(key: ApiKey, scope: str) -> None:
    if scope not in key.scopes:
        raise ScopeMissing(scope)
