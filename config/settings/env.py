"""Small helpers that read typed values from the environment, in one place."""

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = os.environ.get(name)
    if value in (None, ""):
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if value in (None, ""):
        raise ImproperlyConfigured(f"{name} must be set in production")
    return value


def database(url: str) -> dict:
    """Django's settings for the PostgreSQL database at ``url`` (postgres://...; a unix socket's
    directory goes in the host part, percent-encoded: postgres://user@%2Fpath%2Fto%2Fdir/name)."""
    settings = dj_database_url.parse(
        url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
    )
    if settings["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL must point at PostgreSQL (postgres://...), got {url.split(':', 1)[0]}://..."
        )
    # Django's PostgreSQL backend, its health check sending nothing (see core/postgresql).
    settings["ENGINE"] = "core.postgresql"
    return settings


def missing(*names: str) -> list[str]:
    """The names among ``names`` that are unset or empty in the environment."""
    return [name for name in names if os.environ.get(name) in (None, "")]


EMAIL_BACKENDS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}


def email_backend(value: str) -> str:
    """A short name (console, file, smtp, locmem, dummy) or a dotted path to a backend class."""
    if value in EMAIL_BACKENDS:
        return EMAIL_BACKENDS[value]
    if "." not in value:
        raise ImproperlyConfigured(
            f"EMAIL_BACKEND must be one of {', '.join(EMAIL_BACKENDS)} or a dotted path, got {value!r}"
        )
    return value


def storage_s3(bucket: str) -> dict:
    """STORAGES["default"] on an S3-compatible bucket (django-storages): private objects
    (no ACL granted), never overwritten, read through signed URLs that lapse after
    ``IMAGES_SIGNED_URL_SECONDS`` (300). ``AWS_S3_ENDPOINT_URL`` points at MinIO or another
    S3-compatible server; credentials come from ``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` (or the machine's role when unset)."""
    expire = env_int("IMAGES_SIGNED_URL_SECONDS", 300)
    options = {
        "bucket_name": bucket,
        "endpoint_url": env_str("AWS_S3_ENDPOINT_URL"),
        "region_name": env_str("AWS_S3_REGION_NAME"),
        "access_key": env_str("AWS_ACCESS_KEY_ID"),
        "secret_key": env_str("AWS_SECRET_ACCESS_KEY"),
        "location": env_str("AWS_LOCATION", ""),
        "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE"),
        "signature_version": "s3v4",
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": expire,
        "file_overwrite": False,
        "object_parameters": {"CacheControl": f"private, max-age={expire}"},
    }
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {key: value for key, value in options.items() if value is not None},
    }
