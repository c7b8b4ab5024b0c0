"""Fixtures shared by the whole suite: users, a real Celery worker, a real Chromium."""

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="session", autouse=True)
def _quick_transactional_teardown():
    """Transactional tests end by emptying only the tables they wrote to (see db_reset)."""
    from tests import db_reset

    db_reset.install()


# --- users ----------------------------------------------------------------------------------


@pytest.fixture
def make_user(db):
    """Create a user whose email is verified (unless ``verified=False``), optionally with credits."""
    from allauth.account.models import EmailAddress

    from accounts.models import User

    def make(
        email: str | None = None,
        *,
        password: str = PASSWORD,
        verified: bool = True,
        credits: int = 0,
        **extra,
    ):
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        user = User.objects.create_user(email, password, **extra)
        EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
        if credits:
            from credits.services import credits_grant

            credits_grant(
                user=user, amount=credits, kind="BONUS", idempotency_key=f"test-seed:{user.pk}"
            )
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def staff_user(make_user):
    return make_user(is_staff=True, is_superuser=True)


# --- a real Celery worker -------------------------------------------------------------------


class WorkerProcess:
    """A `celery worker` subprocess on its own queue, reading and writing the test database."""

    def __init__(
        self, env: dict, queue: str, log_path: Path, pool: str = "solo", concurrency: int = 1
    ):
        self.env, self.queue, self.log_path = env, queue, log_path
        self.pool, self.concurrency = pool, concurrency
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        mark = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "INFO",
                "-Q",
                self.queue,
                "-P",
                self.pool,
                "-c",
                str(self.concurrency),
                "-n",
                f"{self.queue}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as fh:
                fh.seek(mark)
                if b" ready." in fh.read():
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"celery worker exited early:\n{self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.05)
        raise RuntimeError(
            f"celery worker not ready after {timeout}s:\n{self.log_path.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (as a crashed machine would): no cleanup, no ack."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def tasks_sent_to_queue(settings, queue: str):
    """Tasks sent by this test process go through the broker to ``queue`` instead of running
    in place; the queue is deleted afterwards."""
    import redis

    from config.celery_app import app

    broker = settings.CELERY_BROKER_URL
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_default_queue", "broker_url")}
    app.conf.update(task_always_eager=False, task_default_queue=queue, broker_url=broker)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield queue
    finally:
        app.conf.update(saved)
        client = redis.Redis.from_url(broker)
        client.delete(queue)
        client.close()


def test_database_url() -> str:
    """The URL of the test database, for processes the test starts."""
    from django.db import connection

    db = connection.settings_dict
    host = quote(db["HOST"] or "127.0.0.1", safe="")  # a unix socket's directory, percent-encoded
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    )


test_database_url.__test__ = False  # a helper, not a test


@pytest.fixture
def celery_worker_factory(transactional_db, settings):
    """``start(env=None) -> WorkerProcess``: real `celery worker` processes on Redis and the test
    database, reading a queue of this test; ``env`` adds to their environment. Inside the
    worker, tasks it sends (retries, re-queues) go through the broker as in production."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    workers: list[WorkerProcess] = []
    with tasks_sent_to_queue(settings, queue):

        def start(env: dict | None = None) -> WorkerProcess:
            full_env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings.test",
                "DATABASE_URL": test_database_url(),
                "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
                "CELERY_DEFAULT_QUEUE": queue,
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "MEDIA_ROOT": str(settings.MEDIA_ROOT),
                **(env or {}),
            }
            worker = WorkerProcess(
                full_env, queue, ARTIFACTS / "workers" / f"{queue}-{len(workers)}.log"
            )
            workers.append(worker)
            return worker.start()

        try:
            yield start
        finally:
            for worker in workers:
                worker.stop()


@pytest.fixture
def celery_worker_process(celery_worker_factory):
    """One real worker for this test (see ``celery_worker_factory``)."""
    return celery_worker_factory()


def wait_until(
    predicate, *, timeout: float = 30, interval: float = 0.05, message: str = "condition"
):
    """Poll ``predicate`` until it is truthy; fail the test with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


# --- a real Chromium ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}; scripts/test.sh installs Debian's chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(request):
    """Save a full-page screenshot under test-artifacts/screenshots/ and return its path."""

    def take(page, name: str) -> Path:
        path = ARTIFACTS / "screenshots" / f"{request.node.name}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5_000, f"screenshot {path} looks empty"
        return path

    return take
