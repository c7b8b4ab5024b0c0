"""Fixtures for the generation tests: price rules, a fake OpenAI-compatible endpoint, real
worker processes configured through their environment, and a queue nobody consumes."""

import uuid

import pytest
from django.core.management import call_command

from tests.conftest import tasks_sent_to_queue

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
    share(
        settings,
        openai_env(fake_openai, GENERATIONS_RETRY_BACKOFF="0", GENERATIONS_RETRY_BACKOFF_MAX="0"),
    )
    return fake_openai


@pytest.fixture
def gen_worker(celery_worker_factory, settings):
    """``start(env)`` returns a started real worker whose environment (and this process's
    settings) carry ``env`` plus fast retries; a killed one can be started again."""

    def start(env: dict | None = None):
        env = {**FAST_RETRIES, **(env or {})}
        share(settings, env)
        return celery_worker_factory(env)

    return start


@pytest.fixture
def parked_queue(settings):
    """Tasks are sent to a real queue that no worker reads (all workers are busy)."""
    with tasks_sent_to_queue(settings, f"test-parked-{uuid.uuid4().hex[:12]}") as queue:
        yield queue


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


def clock_at(moment):
    """The clock shows ``moment`` in this process (the jobs' rows carry every time they use)."""
    from unittest import mock

    return mock.patch("django.utils.timezone.now", return_value=moment)


def jobs_reap_at(moment):
    """Run the periodic sweep as if the clock showed ``moment``."""
    from generations.running import jobs_reap

    with clock_at(moment):
        return jobs_reap()


def assert_ledger_clean() -> None:
    """The ledger engineer's check: every balance equals its ledger, every chain is intact."""
    call_command("check_ledger")
