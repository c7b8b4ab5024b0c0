"""Settings shared by every environment. Everything that varies comes from the environment."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from accounts.app_settings import EMAIL_SWEEP_INTERVAL_DEFAULT
from config.queues import task_routes

from .env import database, email_backend, env_bool, env_int, env_list, env_str, storage_s3
from .schedule import beat_schedule, every

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-key-change-me")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# How many reverse proxies we run in front of the app. 0: the client is REMOTE_ADDR and
# X-Forwarded-For is ignored (it can be forged). N: the client is the N-th address from the
# right of X-Forwarded-For. Used for the recorded login IP and allauth's per-IP rate limits.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "django_celery_beat",
    "django_prometheus",
    "core",
    "accounts",
    "notices",
    "credits",
    "payments",
    "generations",
    "images",
    "ninja",
    "api",
    "backoffice",
]

MIDDLEWARE = [
    # First: /healthz, /readyz and /metrics answered before host checks and HTTPS redirects.
    "config.probes.ProbeMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Each request's id, carried by its log lines and the tasks it sends (core/logs.py).
    "core.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads the database: refuses NUL and other characters PostgreSQL cannot store.
    "config.middleware.RefuseUnstorableInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last: answers an application error a view lets through with its status and message.
    "core.middleware.ApplicationErrorMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "credits.context_processors.balance",
                "payments.context_processors.payment_methods",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# PostgreSQL only (15 or later: checked by core/checks.py), at DATABASE_URL. Without it,
# development settings use the project's own server under var/postgres (config/local_postgres.py,
# started by scripts/run.sh); test and production settings refuse to start.
DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {"default": database(DATABASE_URL)} if DATABASE_URL else {}
# Behind PgBouncer in transaction pooling (compose): a server-side cursor cannot outlive its
# transaction there. The ledger's prepared statements need PgBouncer 1.21 or later
# (max_prepared_statements); with an older one set CREDITS_PREPARED_STATEMENTS=false.
if DATABASES and env_bool("DATABASE_PGBOUNCER", False):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
CREDITS_PREPARED_STATEMENTS = env_bool("CREDITS_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "accounts:profile"
LOGOUT_REDIRECT_URL = "home"
SITE_ID = 1

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
# Sign-up with an address that already has an account does not say so on the page (that
# would tell anyone which addresses are customers): the form is accepted, no second account
# is created, and the address's owner gets an email explaining how to log in or reset.
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS = 3
ACCOUNT_MAX_EMAIL_ADDRESSES = 3
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Credits] "
ACCOUNT_RATE_LIMITS = {
    "login": env_str("RATE_LIMIT_LOGIN", "30/m/ip"),
    "login_failed": env_str("RATE_LIMIT_LOGIN_FAILED", "5/5m/key,20/5m/ip"),
    "signup": env_str("RATE_LIMIT_SIGNUP", "20/h/ip"),
    # Promo codes typed in (the redeem form, a code with a purchase): per user and per address.
    "voucher_redeem": env_str("RATE_LIMIT_VOUCHER_REDEEM", "10/h/user,30/h/ip"),
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
}

# Google login is offered only when its keys are configured.
GOOGLE_CLIENT_ID = env_str("GOOGLE_CLIENT_ID")
GOOGLE_CLIENT_SECRET = env_str("GOOGLE_CLIENT_SECRET")
SOCIALACCOUNT_PROVIDERS = {}
if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET:
    SOCIALACCOUNT_PROVIDERS["google"] = {
        "APPS": [{"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""}],
        "SCOPE": ["profile", "email"],
        "AUTH_PARAMS": {"access_type": "online"},
    }
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True

# --- Email ----------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Credits <no-reply@localhost>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# EMAIL_BACKEND: console (default outside production), file (one file per message under
# EMAIL_FILE_PATH), smtp (production's default), locmem, or a dotted path.
EMAIL_BACKEND = email_backend(env_str("EMAIL_BACKEND", "console"))
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)

# --- Caches (rate limits live here) ---------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Static and media -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env_str("MEDIA_ROOT", str(VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads and results on an S3-compatible bucket (AWS, MinIO, ...) when a bucket is named:
# private objects, signed URLs that lapse after AWS_QUERYSTRING_EXPIRE seconds.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = storage_s3(AWS_STORAGE_BUCKET_NAME)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Celery ---------------------------------------------------------------------------------
# No broker configured: tasks run in-process, so a first run needs no Redis and no worker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")  # results live in our own tables
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
if CELERY_BROKER_URL is None:
    CELERY_BROKER_URL = "memory://"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker keeps its database connection across tasks (CONN_MAX_AGE, checked before each
# task as a request's is: config/celery_app.py); Celery itself closes it only every this many.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
# A task that outlives the visibility timeout is redelivered; keep it above the hard limit.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
# Redis through kombu's transport with the fault that ends a worker when Redis goes away
# mid-task fixed (config/redis_transport.py).
CELERY_BROKER_TRANSPORT = (
    "config.redis_transport:Transport" if CELERY_BROKER_URL.startswith("redis://") else None
)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", "default")
# One queue per kind of work (webhooks, generations, emails, maintenance), each with a worker
# service of its own: config/queues.py routes tasks by name. CELERY_ROUTE_BY_KIND=false sends
# everything to the default queue (one worker for all, as the tests do).
CELERY_QUEUE_PREFIX = env_str("CELERY_QUEUE_PREFIX", "")
CELERY_TASK_ROUTES = (
    task_routes(CELERY_QUEUE_PREFIX) if env_bool("CELERY_ROUTE_BY_KIND", True) else {}
)
# Keep retrying the broker when a worker starts before Redis is up (compose, restarts).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With acks_late, a lost broker connection redelivers unacknowledged tasks to other workers:
# cancel the running copies so one task never runs twice at the same time.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# django-celery-beat's scheduler behind a lock in Redis: one beat sends at a time (config/beat.py).
CELERY_BEAT_SCHEDULER = "config.beat:LockedDatabaseScheduler"
# Workers log through LOGGING below (JSON in production, with the ids of the work) rather than
# Celery's own handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
# Periodic tasks: one every(...) line per entry. Each interval is a setting read from the
# environment (BEAT_<ENTRY NAME>_SECONDS unless the entry names its variable) and checked when
# the settings load (config/settings/schedule.py). Every beat start writes these into
# django-celery-beat's tables, so change an interval here or in the environment, not in the admin.
CELERY_BEAT_SCHEDULE = beat_schedule(
    every(
        "purge-expired-idempotency-records",
        "credits.tasks.purge_expired_idempotency_records",
        seconds=3600,
    ),
    every("purge-expired-api-requests", "api.tasks.purge_expired_api_requests", seconds=3600),
    # Webhook events whose next attempt is overdue (payments/webhooks.py): with the 60 s lease,
    # a paid order converges within about 90 s of its worker dying.
    every(
        "requeue-stuck-webhook-events", "payments.tasks.requeue_stuck_webhook_events", seconds=30
    ),
    every("reconcile-payments", "payments.tasks.reconcile_payments", seconds=3600),
    # Automatic purchases still in flight (payments/autotopup.py): their charge runs again.
    every("retry-auto-topups", "payments.tasks.retry_auto_topups", seconds=60),
    # Lapsed credit lots: spends already ignore them; this writes their EXPIRY entries.
    every("expire-credit-lots", "credits.tasks.expire_lots", seconds=300),
    # Balances that fell below a threshold and whose handling was lost or failed (credits/crossings.py).
    every("handle-balance-crossings", "credits.tasks.handle_crossings", seconds=60),
    # Lots expiring within a week: one email per lot (credits/expiry_notices.py).
    every("notify-expiring-credit-lots", "credits.tasks.notify_expiring_lots", seconds=3600),
    # Memberships renewing within 3 days: one reminder per period (payments/subscription_notices.py).
    every(
        "notify-renewing-subscriptions",
        "payments.tasks.notify_renewing_subscriptions",
        seconds=3600,
    ),
    every("reap-stuck-generation-jobs", "generations.tasks.reap_stuck_jobs", seconds=60),
    # Stored files no row names (a worker killed between saving and committing; deletions
    # whose after-commit clean-up did not run): images/cleanup.py.
    every("sweep-orphan-files", "images.tasks.sweep_orphan_files", seconds=3600),
    # Account emails whose send failed or whose task was lost (accounts/outbox.py).
    every(
        "send-due-account-emails",
        "accounts.tasks.send_due_outbound_emails",
        seconds=EMAIL_SWEEP_INTERVAL_DEFAULT,
        variable="ACCOUNTS_EMAIL_SWEEP_INTERVAL",
    ),
)

# --- Metrics --------------------------------------------------------------------------------
# /metrics (config/probes.py): with a token set, only for "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Logging --------------------------------------------------------------------------------
# LOG_FORMAT=json (production's default): one JSON object a line, with the request id, webhook
# event id, order id and job id of the work being done (core/logs.py).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s "
            "%(webhook_event_id)s %(order_id)s %(job_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

VAR_DIR.mkdir(exist_ok=True)
