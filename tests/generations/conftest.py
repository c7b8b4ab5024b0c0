"""Fixtures for the generation tests: price rules, a fake OpenAI-compatible endpoint, real
worker processes configured through their environment, and a queue nobody consumes."""

import os
import uuid

import pytest
from django.core.management import call_command

from tests.conftest import ARTIFACTS, WorkerProcess

from .fake_openai import FakeOpenAI

PLATFORM_KEY = "sk-platform-test-0001"
USER_KEY = "sk-user-own-key-0002"
#: Settings of the generations app that tests also hand to worker processes.
FAST_RETRIES = {"GENERATIONS_RETRY_BACKOFF": "0.2", "GENERATIONS_RETRY_BACKOFF_MAX": "2"}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Results of each test go to a folder of its own (workers get it through MEDIA_ROOT)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT


@pytest.fixture
def price_rules(db):
    """The demo price rules (the data migration's rules do not survive transactional tests)."""
    from generations.demo import install
    from generations.models import PriceRule

    install(PriceRule)


@pytest.fixture
def fake_openai():
    fake = FakeOpenAI(keys=(PLATFORM_KEY, USER_KEY)).start()
    yield fake
    fake.stop()


def openai_env(fake: FakeOpenAI, **extra) -> dict:
    return {
        "OPENAI_BASE_URL": fake.url,
        "OPENAI_API_KEY": PLATFORM_KEY,
        "OPENAI_MODEL": "test-chat",
        "OPENAI_IMAGE_MODEL": "test-image",
        "OPENAI_TIMEOUT": "5",
        **FAST_RETRIES,
        **{k: str(v) for k, v in extra.items()},
    }


def share(settings, env: dict) -> None:
    """Give this test process the app settings a worker gets through its environment."""
    for key, value in env.items():
        if not key.startswith("CELERY_"):
            setattr(settings, key, value)


@pytest.fixture
def openai_settings(settings, fake_openai):
    """This process talks to the fake endpoint (tasks run in place, as in the test settings)."""
    share(settings, openai_env(fake_openai, GENERATIONS_RETRY_BACKOFF="0", GENERATIONS_RETRY_BACKOFF_MAX="0"))
    return fake_openai


def _delete_queue(broker: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(broker)
    client.delete(queue)
    client.close()


@pytest.fixture
def gen_worker(transactional_db, settings):
    """Start real `celery worker` processes on a queue of this test: ``start(env)`` returns a
    started WorkerProcess whose environment carries ``env`` (a killed one can be started
    again). Tasks sent by this process go to that queue."""
    from django.db import connection

    from config.celery_app import app

    db = connection.settings_dict
    database_url = (f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
                    f"{db['PORT'] or 5432}/{db['NAME']}")
    queue = f"test-gen-{uuid.uuid4().hex[:12]}"
    broker = settings.CELERY_BROKER_URL
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_default_queue", "broker_url")}
    app.conf.update(task_always_eager=False, task_default_queue=queue, broker_url=broker)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    workers: list[WorkerProcess] = []

    def start(env: dict | None = None) -> WorkerProcess:
        env = {**FAST_RETRIES, **(env or {})}
        share(settings, env)
        full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.generations.worker_settings",
                    "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker, "CELERY_DEFAULT_QUEUE": queue,
                    "MEDIA_ROOT": settings.MEDIA_ROOT, **env}
        worker = WorkerProcess(full_env, queue, ARTIFACTS / "workers" / f"{queue}-{len(workers)}.log")
        workers.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()
        app.conf.update(saved)
        _delete_queue(broker, queue)


@pytest.fixture
def parked_queue(settings):
    """Tasks are sent to a real queue that no worker reads (all workers are busy)."""
    from config.celery_app import app

    queue = f"test-parked-{uuid.uuid4().hex[:12]}"
    broker = settings.CELERY_BROKER_URL
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_default_queue", "broker_url")}
    app.conf.update(task_always_eager=False, task_default_queue=queue, broker_url=broker)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield queue
    finally:
        app.conf.update(saved)
        _delete_queue(broker, queue)


def queued_job_ids(broker: str, queue: str) -> list[int]:
    """The job ids of the run_job messages waiting in ``queue``."""
    import json

    import redis

    client = redis.Redis.from_url(broker)
    try:
        messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    finally:
        client.close()
    ids = []
    for message in messages:
        if message["headers"]["task"] == "generations.tasks.run_job":
            import base64

            body = json.loads(base64.b64decode(message["body"]))
            ids.append(body[0][0])
    return ids


def assert_ledger_clean() -> None:
    """The ledger engineer's check: every balance equals its ledger, every chain is intact."""
    call_command("check_ledger")
