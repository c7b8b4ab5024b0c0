"""Settings per environment, each read in a fresh process with a clean environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k3Y-" + "x1Y2z3A4b5C6d7E8f9G0h1I2j3K4l5M6n7O8p9Q0r1S2t3U4v5W6"
PROD_ENV = {
    "SECRET_KEY": STRONG_KEY,
    "DATABASE_URL": "postgres://credits:secret@db.internal:5432/credits",
    "ALLOWED_HOSTS": "credits.example.com",
    # The shared cache, and the broker too unless CELERY_BROKER_URL says otherwise.
    "REDIS_URL": "redis://redis.internal:6379/0",
}
DUMP = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'DEBUG': s.DEBUG, 'ENGINE': s.DATABASES['default']['ENGINE'], "
    "'NAME': str(s.DATABASES['default']['NAME']), 'EAGER': s.CELERY_TASK_ALWAYS_EAGER, "
    "'BROKER': s.CELERY_BROKER_URL, 'EMAIL_BACKEND': s.EMAIL_BACKEND, 'EMAIL_FILE_PATH': s.EMAIL_FILE_PATH, "
    "'EMAIL_HOST': s.EMAIL_HOST, 'EMAIL_PORT': s.EMAIL_PORT, 'CACHE': s.CACHES['default']['BACKEND'], "
    "'TRUSTED_PROXY_COUNT': s.TRUSTED_PROXY_COUNT, 'ALLOWED_HOSTS': s.ALLOWED_HOSTS}))"
)


def run(module: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": module,
        **env,
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def dump(module: str, env: dict) -> dict:
    result = run(module, env, "-c", DUMP)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_without_its_secrets_refuses_to_start_and_names_them():
    result = run("config.settings.prod", {}, "manage.py", "check")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: Production settings")
    for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "REDIS_URL"):
        assert name in last_line


@pytest.mark.parametrize("missing", sorted(PROD_ENV))
def test_production_names_the_one_secret_that_is_missing(missing):
    """REDIS_URL included: without a shared cache each process would keep its own rate limits
    and PayPal caches."""
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    result = run("config.settings.prod", env, "-c", "import django; django.setup()")

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert missing in last_line
    assert all(other not in last_line for other in PROD_ENV if other != missing)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"DATABASE_URL": "sqlite:////tmp/prod.sqlite3"}, "DATABASE_URL must point at PostgreSQL"),
        ({"SECRET_KEY": "too-short"}, "SECRET_KEY is too weak"),
        ({"SECRET_KEY": "django-insecure-" + "a1b2c3d4e5" * 5}, "SECRET_KEY is too weak"),
    ],
)
def test_production_refuses_unsafe_values(override, message):
    result = run(
        "config.settings.prod", {**PROD_ENV, **override}, "-c", "import django; django.setup()"
    )
    assert result.returncode != 0
    assert message in result.stderr


STRIPE_ENV = {"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}


def test_production_passes_the_deployment_checklist_without_warnings():
    env = {**PROD_ENV, **STRIPE_ENV}
    result = run(
        "config.settings.prod", env, "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


PROVIDERS = "import django; django.setup(); from payments.providers import available_providers as a; print(a())"


def test_production_without_provider_keys_offers_nothing_and_the_checklist_warns():
    """What .env.example leaves: no keys. The free sandbox must not stand in."""
    assert run("config.settings.prod", PROD_ENV, "-c", PROVIDERS).stdout.strip() == "[]"

    result = run("config.settings.prod", PROD_ENV, "manage.py", "check", "--deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "payments.W002" in result.stderr and "nothing can be bought" in result.stderr


@pytest.mark.parametrize("extra", [{}, {"DEBUG": "true"}])
def test_the_deployment_checklist_fails_with_an_error_when_production_would_offer_the_sandbox(
    extra,
):
    env = {**PROD_ENV, "PAYMENTS_SANDBOX_ENABLED": "true", **extra}
    assert run("config.settings.prod", env, "-c", PROVIDERS).stdout.strip() == "['SANDBOX']"

    result = run("config.settings.prod", env, "manage.py", "check", "--deploy")
    assert result.returncode != 0
    assert "ERRORS:" in result.stderr and "payments.E004" in result.stderr
    assert "anyone can buy credits for free" in result.stderr


def test_an_enabled_sandbox_does_not_stand_in_beside_a_real_provider():
    env = {**PROD_ENV, **STRIPE_ENV, "PAYMENTS_SANDBOX_ENABLED": "true"}
    assert run("config.settings.prod", env, "-c", PROVIDERS).stdout.strip() == "['STRIPE']"
    assert run("config.settings.prod", env, "manage.py", "check", "--deploy").returncode == 0


def test_production_sends_mail_over_smtp_from_the_environment():
    settings = dump(
        "config.settings.prod",
        {
            **PROD_ENV,
            "EMAIL_HOST": "smtp.example.com",
            "EMAIL_PORT": "2525",
            "TRUSTED_PROXY_COUNT": "1",
        },
    )
    assert settings["DEBUG"] is False
    assert settings["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (settings["EMAIL_HOST"], settings["EMAIL_PORT"]) == ("smtp.example.com", 2525)
    assert settings["EAGER"] is False
    assert settings["TRUSTED_PROXY_COUNT"] == 1
    assert settings["ALLOWED_HOSTS"] == ["credits.example.com"]


# What scripts/run.sh gives development settings: the project's own server (tests/test_first_run.py
# runs the real one; the settings are only read here, so nothing needs to answer).
LOCAL_SERVER = {
    "DATABASE_URL": "postgres://postgres@%2Fsrv%2Fcredits%2Fvar%2Fpostgres:5432/credits"
}


def test_development_needs_no_servers_but_its_postgresql():
    settings = dump("config.settings.dev", LOCAL_SERVER)

    assert settings["DEBUG"] is True
    assert settings["ENGINE"] == "core.postgresql"
    assert settings["EAGER"] is True
    assert settings["BROKER"] == "memory://"
    assert settings["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert settings["CACHE"] == "django.core.cache.backends.locmem.LocMemCache"
    assert settings["TRUSTED_PROXY_COUNT"] == 0
    assert "var/" in (ROOT / ".gitignore").read_text().split()


def test_development_without_a_database_says_how_to_start_one(tmp_path):
    """No DATABASE_URL and the project's own PostgreSQL not running (nothing in its directory)."""
    result = run(
        "config.settings.dev",
        {"LOCAL_POSTGRES_DIR": str(tmp_path / "postgres")},
        "-c",
        "import django; django.setup()",
    )

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured: No database: DATABASE_URL is not set" in last_line
    assert str(tmp_path / "postgres") in last_line and "bash scripts/run.sh" in last_line


@pytest.mark.parametrize("module", ["config.settings.dev", "config.settings.test"])
def test_every_environment_refuses_a_database_other_than_postgresql(module):
    result = run(
        module, {"DATABASE_URL": "sqlite:////tmp/db.sqlite3"}, "-c", "import django; django.setup()"
    )
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL (postgres://...), got sqlite://" in result.stderr


def test_development_switches_to_postgresql_redis_and_real_workers_from_the_environment():
    settings = dump(
        "config.settings.dev",
        {
            "DATABASE_URL": "postgres://u:p@127.0.0.1:5432/x",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        },
    )
    assert settings["ENGINE"] == "core.postgresql"
    assert settings["EAGER"] is False
    assert settings["BROKER"] == "redis://127.0.0.1:6379/3"
    assert settings["CACHE"] == "django.core.cache.backends.redis.RedisCache"


def test_development_can_write_mail_to_files():
    settings = dump("config.settings.dev", {**LOCAL_SERVER, "EMAIL_BACKEND": "file"})
    assert settings["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert Path(settings["EMAIL_FILE_PATH"]) == ROOT / "var" / "mail"


def test_a_mistyped_email_backend_is_refused():
    result = run(
        "config.settings.dev", {"EMAIL_BACKEND": "smpt"}, "-c", "import django; django.setup()"
    )
    assert result.returncode != 0
    assert "EMAIL_BACKEND must be one of" in result.stderr


def test_a_server_started_without_settings_uses_production_and_so_needs_its_secrets():
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # no DJANGO_SETTINGS_MODULE at all
    result = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert (
        "Production settings (config.settings.prod) need these environment variables"
        in result.stderr
    )


HTTP_GET = (
    "import django; django.setup(); from django.test import Client; "
    "r = Client().get('/webhooks/stripe/', HTTP_HOST='localhost'); print(r.status_code, r.get('Location', ''))"
)


def test_production_redirects_plain_http_to_https_unless_told_not_to():
    """TLS ends at a proxy in production; to try the stack on http://localhost without one, an
    operator sets SECURE_SSL_REDIRECT=false (the default stays on)."""
    env = {**PROD_ENV, "ALLOWED_HOSTS": "localhost"}
    assert run("config.settings.prod", env, "-c", HTTP_GET).stdout.split() == [
        "301",
        "https://localhost/webhooks/stripe/",
    ]
    behind_proxy = HTTP_GET.replace(
        "HTTP_HOST='localhost'", "HTTP_HOST='localhost', HTTP_X_FORWARDED_PROTO='https'"
    )
    assert run("config.settings.prod", env, "-c", behind_proxy).stdout.split() == ["405"]

    plain = run("config.settings.prod", {**env, "SECURE_SSL_REDIRECT": "false"}, "-c", HTTP_GET)
    assert plain.stdout.split() == ["405"], (
        plain.stderr
    )  # served over http: the view answers itself


def test_production_with_only_a_broker_refuses_to_start_without_a_shared_cache():
    env = {k: v for k, v in PROD_ENV.items() if k != "REDIS_URL"}
    env["CELERY_BROKER_URL"] = "redis://redis.internal:6379/0"
    result = run("config.settings.prod", env, "-c", "import django; django.setup()")

    assert result.returncode != 0
    assert "REDIS_URL (the shared cache)" in result.stderr.strip().splitlines()[-1]


def test_production_logs_json_lines_with_the_ids_of_the_work():
    code = (
        "import django, json, logging; django.setup(); from core.logs import log_context; "
        "h = logging.getLogger().handlers[0]; "
        "ctx = log_context(order_id=42, job_id=7); ctx.__enter__(); "
        "r2 = logging.LogRecord('payments', 20, 'x.py', 1, 'order fulfilled', None, None); "
        "[f.filter(r2) for f in h.filters]; print(h.formatter.format(r2))"
    )
    result = run("config.settings.prod", PROD_ENV, "-c", code)

    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["message"] == "order fulfilled"
    assert line["order_id"] == "42" and line["job_id"] == "7"
    assert {"request_id", "webhook_event_id", "level", "logger", "time"} <= set(line)
