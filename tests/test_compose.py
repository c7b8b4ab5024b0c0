"""docker-compose.yml follows the Compose specification and runs the stack production runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


def documented() -> set[str]:
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M))


def test_the_compose_file_validates_against_the_compose_specification():
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_an_invalid_compose_file_is_caught(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    healthcheck:\n      interval: 5\n      tset: [CMD, true]\n")
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0


def test_the_stack_has_web_worker_beat_postgres_and_redis_with_health_checks(compose):
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    for name in ("web", "worker", "beat", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name

    assert "gunicorn config.wsgi:application" in " ".join(services["web"]["command"])
    assert "celery -A config worker" in " ".join(services["worker"]["command"])
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert service["env_file"] == [{"path": ".env", "required": True}], name
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.prod"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_env_example_documents_every_variable(compose):
    names = documented()
    required = {
        "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS",
        "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET",
        "PAYPAL_WEBHOOK_ID", "PAYPAL_ENVIRONMENT", "GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET",
        "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "EMAIL_HOST", "EMAIL_PORT",
        "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_BACKEND",
    }
    read_by_settings = set()
    for path in (ROOT / "config" / "settings").glob("*.py"):
        read_by_settings |= set(re.findall(r'env_(?:str|int|bool|list|required)\("([A-Z0-9_]+)"', path.read_text()))
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text())) - {"HOSTNAME"}

    assert not required - names, f"missing from .env.example: {sorted(required - names)}"
    assert not read_by_settings - names, f"missing from .env.example: {sorted(read_by_settings - names)}"
    assert not interpolated - names, f"missing from .env.example: {sorted(interpolated - names)}"


def test_the_image_runs_gunicorn_with_production_settings():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    assert "ENV DJANGO_SETTINGS_MODULE=config.settings.prod" in dockerfile
    assert '"gunicorn", "config.wsgi:application"' in dockerfile
    assert "USER app" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "var", ".git"} <= set(ignored)
