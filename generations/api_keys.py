"""Users' own API keys: stored encrypted (Fernet), readable only by the code that uses them.

The encryption keys come from ``FIELD_ENCRYPTION_KEY`` (comma-separated: the first encrypts,
every one decrypts, so keys can be rotated) or, when that is empty, are derived from
``SECRET_KEY``. A key that is not already a Fernet key is stretched with HKDF-SHA256.
"""

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction

from .app_settings import app_settings
from .exceptions import ApiKeyUnavailable, InvalidRequest
from .models import ApiCredential

_HKDF_INFO = b"generations.api-credentials"
MIN_KEY_LENGTH = 8
MAX_KEY_LENGTH = 512


def _fernet_key(secret: str) -> bytes:
    try:
        if len(base64.urlsafe_b64decode(secret.encode("ascii"))) == 32:
            return secret.encode("ascii")
    except (binascii.Error, UnicodeEncodeError, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    return base64.urlsafe_b64encode(derived)


def _cipher() -> MultiFernet:
    secrets = [
        part.strip() for part in app_settings.FIELD_ENCRYPTION_KEY.split(",") if part.strip()
    ]
    if not secrets:
        secrets = [settings.SECRET_KEY]
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in secrets])


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise ApiKeyUnavailable(
            "Your stored API key can no longer be read. Please store it again."
        ) from exc


def api_key_store(*, user, api_key: str) -> ApiCredential:
    """Check ``user``'s own API key against the endpoint, then store it (or replace the old
    one), encrypted. Raises InvalidRequest (field ``api_key``), saying why, when the key is
    malformed, refused by the endpoint, or cannot be checked; then nothing is stored."""
    api_key = (api_key or "").strip()
    if not (MIN_KEY_LENGTH <= len(api_key) <= MAX_KEY_LENGTH) or any(
        ch.isspace() for ch in api_key
    ):
        raise InvalidRequest(
            f"An API key is {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters without spaces.",
            field="api_key",
        )
    if not api_key.isascii() or not api_key.isprintable():
        raise InvalidRequest(
            "An API key contains only plain printable characters.", field="api_key"
        )
    _check_with_endpoint(api_key)
    with transaction.atomic():
        credential, _ = ApiCredential.objects.update_or_create(
            user=user,
            defaults={
                "provider": "openai",
                "encrypted_key": encrypt(api_key),
                "key_hint": api_key[-4:],
            },
        )
    return credential


def api_key_remove(*, user) -> bool:
    """Forget ``user``'s API key. Returns whether there was one."""
    deleted, _ = ApiCredential.objects.filter(user=user).delete()
    return bool(deleted)


def api_key_for(*, user_id: int) -> str:
    """The plaintext key of ``user_id``, for the backend call. Raises ApiKeyUnavailable."""
    credential = ApiCredential.objects.filter(user_id=user_id).first()
    if credential is None:
        raise ApiKeyUnavailable("Your API key was removed before this job ran.")
    return decrypt(credential.encrypted_key)


def has_api_key(*, user) -> bool:
    return user.is_authenticated and ApiCredential.objects.filter(user=user).exists()


def _check_with_endpoint(api_key: str) -> None:
    """A cheap authenticated call to the endpoint (before any transaction)."""
    from .backends import PermanentBackendError, RetryableBackendError
    from .backends.openai import OpenAICompatibleBackend

    try:
        OpenAICompatibleBackend().check_key(api_key)
    except PermanentBackendError as exc:
        raise InvalidRequest(
            f"{exc.message} Check that you copied the whole key and that it is still active. "
            "It was not saved.",
            field="api_key",
        ) from exc
    except RetryableBackendError as exc:
        raise InvalidRequest(
            f"The key could not be checked: {exc.message[0].lower()}{exc.message[1:]} "
            "It was not saved; try again in a few minutes.",
            field="api_key",
        ) from exc
