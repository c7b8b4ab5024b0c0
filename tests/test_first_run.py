"""The first look a newcomer gets: `bash scripts/run.sh` with no servers and no environment.

Runs the real script with the project's own PostgreSQL in a temporary directory
(LOCAL_POSTGRES_DIR) on a spare port: it starts the server, migrates, seeds the demo data and
serves. Then, over HTTP, the demo customer logs in, buys a pack through the sandbox checkout
(whose signed webhook reaches the server over HTTP) and runs a generation job; `manage.py
check_ledger`, with no DATABASE_URL either, finds the same server. Ctrl-C stops the app and its
PostgreSQL; the next run finds the data again.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import requests

from config import local_postgres
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)

DEMO = ("demo@example.com", "credits-demo-pass")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def newcomer(tmp_path):
    """(start the app as run.sh does, its URL, the server's data directory, run a manage.py command)."""
    port = free_port()
    # Not under pytest's own temporary root: another pytest run may close that to other users at
    # any time, and the server runs as its own user when we are root.
    data = Path(tempfile.mkdtemp(prefix="credits-first-run-")) / "postgres"
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "CELERY_TASK_ALWAYS_EAGER",
            "DJANGO_SETTINGS_MODULE",
            "TEST_CACHE_PREFIX",
            "HOST",
            "RELOAD",
        }
    }
    # PYTHON: this environment's interpreter, so the script's package sync finds nothing to change.
    env.update(
        LOCAL_POSTGRES_DIR=str(data),
        PORT=str(port),
        PYTHON=sys.executable,
        MEDIA_ROOT=str(tmp_path / "media"),
        SITE_URL=f"http://127.0.0.1:{port}",
    )
    base = f"http://127.0.0.1:{port}"
    runs: list[subprocess.Popen] = []

    def start_app() -> subprocess.Popen:
        log_path = tmp_path / f"run{len(runs)}.log"
        with open(log_path, "wb") as log:
            app = subprocess.Popen(
                ["bash", "scripts/run.sh"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_as_from_a_terminal,
            )
        runs.append(app)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and app.poll() is None:
            try:
                if requests.get(base + "/", timeout=2).status_code == 200:
                    return app
            except requests.ConnectionError:
                time.sleep(0.3)
        pytest.fail(f"scripts/run.sh did not serve the home page:\n{log_path.read_text()[-3000:]}")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        yield start_app, base, data, manage
    finally:
        for app in runs:
            if app.poll() is None:
                app.send_signal(signal.SIGINT)
                app.wait(60)
        local_postgres.stop(data)  # a no-op unless a run failed to stop it
        shutil.rmtree(data.parent)


def _as_from_a_terminal() -> None:
    """SIGINT, SIGTERM and SIGHUP back to their defaults, as in a newcomer's terminal, whatever
    this test run inherited: a suite started in the background (``&``, nohup) ignores SIGINT or
    SIGHUP, and a shell cannot trap a signal that was ignored when it started, so Ctrl-C would
    do nothing."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def post_form(
    session: requests.Session, url: str, data: dict, *, action: str = ""
) -> requests.Response:
    """Open the page at ``url`` and submit its form with ``data`` (to ``action`` if given)."""
    page = session.get(url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(
        action or url, data={"csrfmiddlewaretoken": token, **data}, headers={"Referer": url}
    )


def balance(db: psycopg.Connection) -> int:
    return db.execute(
        "SELECT b.balance FROM credits_creditbalance b JOIN accounts_user u ON u.id = b.user_id WHERE u.email = %s",
        [DEMO[0]],
    ).fetchone()[0]


def stops(app: subprocess.Popen, sig: signal.Signals, base: str, data) -> int:
    """Send ``sig`` to run.sh; once it has exited, neither the app nor its PostgreSQL runs."""
    app.send_signal(sig)
    status = app.wait(60)
    assert local_postgres.running_url(data) is None
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/", timeout=2)
    return status


def test_a_newcomer_runs_the_app_buys_credits_and_spends_them_with_no_servers(newcomer):
    start_app, base, data, manage = newcomer
    app = start_app()
    url = local_postgres.running_url(data)
    assert url is not None and "%2F" in url  # a unix socket in the data directory: nothing on TCP

    with psycopg.connect(url, autocommit=True) as db:
        browser = requests.Session()
        logged_in = post_form(
            browser, f"{base}/accounts/login/", {"login": DEMO[0], "password": DEMO[1]}
        )
        assert logged_in.url.endswith("/account/"), logged_in.text[:2000]
        start = balance(db)

        starter = db.execute(
            "SELECT id FROM payments_creditpackage WHERE name = 'Starter'"
        ).fetchone()[0]
        checkout = post_form(
            browser,
            f"{base}/billing/pricing/",
            {"package": starter, "amount": "0.01", "credits": "5000"},
            action=f"{base}/billing/buy/",
        )
        assert "/billing/sandbox/checkout/" in checkout.url, checkout.text[:2000]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', checkout.text).group(1)
        paid = browser.post(
            checkout.url,
            data={"csrfmiddlewaretoken": token, "action": "pay"},
            headers={"Referer": checkout.url},
        )
        assert paid.status_code == 200 and "/success/" in paid.url

        orders = db.execute("SELECT status, amount, credits FROM payments_order").fetchall()
        assert orders == [("COMPLETED", Decimal("2.99"), 10)]
        assert db.execute("SELECT count(*) FROM payments_invoice").fetchone() == (1,)
        assert balance(db) == start + 10
        events = db.execute("SELECT provider, status FROM payments_webhookevent").fetchall()
        assert events == [("SANDBOX", "PROCESSED")]

        job_page = post_form(
            browser,
            f"{base}/generate/new/",
            {
                "operation": "image",
                "model": "procedural-svg",
                "prompt": "three red circles at night",
            },
        )
        assert re.search(r"/generate/\d+/$", job_page.url), job_page.text[:2000]
        status, charged, result = db.execute(
            "SELECT status, credits_charged, result_file FROM generations_generationjob"
        ).fetchone()
        assert (status, charged) == ("COMPLETED", 3) and result.endswith(".svg")
        assert balance(db) == start + 10 - 3
        preview = browser.get(job_page.url + "preview/")
        assert (
            preview.headers["Content-Type"].startswith("image/svg+xml") and "<svg" in preview.text
        )

        check = manage(
            "check_ledger"
        )  # no DATABASE_URL: development settings find the running server
        assert check.returncode == 0, check.stdout + check.stderr
        kinds = [k for (k,) in db.execute("SELECT kind FROM credits_ledgerentry ORDER BY id")]
        assert kinds[-2:] == [
            "PURCHASE",
            "SPEND",
        ]  # a picture costs exactly its estimate: nothing to refund

    assert stops(app, signal.SIGINT, base, data) == 130  # Ctrl-C
    refused = manage("check_ledger")
    assert refused.returncode != 0 and "is not running" in refused.stderr

    app = start_app()  # the second run: the same data, the demo seeded again without duplicates
    with psycopg.connect(local_postgres.running_url(data), autocommit=True) as db:
        assert balance(db) == start + 10 - 3
        assert db.execute("SELECT count(*) FROM payments_order").fetchone() == (1,)
    assert stops(app, signal.SIGTERM, base, data) == 143
