"""Production: refuses to start without its secrets, and passes `manage.py check --deploy`.

Every warning of `check --deploy` is dealt with by a setting below; none is silenced.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import STORAGES
from .env import email_backend, env_bool, env_int, env_list, env_str, missing

_missing = missing("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS")
# The cache is shared by every web and worker process (rate limits, the PayPal token and
# certificate caches, the beat lock): a per-process cache would let each process count and
# fetch on its own, so production refuses to start without it.
if not env_str("REDIS_URL"):
    _missing.append("REDIS_URL (the shared cache)")
if _missing:
    raise ImproperlyConfigured(
        "Production settings (config.settings.prod) need these environment variables: "
        + ", ".join(_missing)
        + ". See .env.example."
    )

DEBUG = False
SECRET_KEY = env_str("SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for production: use 50+ random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")

# HTTPS: TLS ends at the proxy in front of gunicorn, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Hashed file names, so browsers may cache static files for ever (collectstatic at build).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

EMAIL_BACKEND = email_backend(env_str("EMAIL_BACKEND", "smtp"))

# One JSON object a log line, carrying request, webhook event, order and job ids (core/logs.py).
LOG_FORMAT = env_str("LOG_FORMAT", "json")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405 - from base
