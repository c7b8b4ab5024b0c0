"""The first look a newcomer gets: no servers, SQLite, tasks in-process (`scripts/run.sh`).

Runs the real `manage.py` in subprocesses with development settings on a fresh SQLite file:
migrate, seed the demo data, serve with runserver, then over HTTP log in as the demo
customer, buy a pack through the sandbox checkout (whose signed webhook reaches the server
over HTTP), run a generation job, and check the ledger. This is the only place the ledger's
SQLite statements run end to end.
"""

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(240)

DEMO = ("demo@example.com", "credits-demo-pass")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def first_run(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER",
                        "DJANGO_SETTINGS_MODULE", "TEST_CACHE_PREFIX"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.dev", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               MEDIA_ROOT=str(tmp_path / "media"), SITE_URL=f"http://127.0.0.1:{port}")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)

    for command in (("migrate", "--noinput"), ("seed_demo",)):
        done = manage(*command)
        assert done.returncode == 0, done.stderr[-3000:]
    log = open(tmp_path / "runserver.log", "wb")
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        else:
            pytest.fail(f"runserver did not answer:\n{(tmp_path / 'runserver.log').read_text()[-3000:]}")
        yield base, sqlite3.connect(tmp_path / "db.sqlite3"), manage
    finally:
        server.terminate()
        server.wait(20)


def post_form(session: requests.Session, url: str, data: dict, *, action: str = "") -> requests.Response:
    """Open the page at ``url`` and submit its form with ``data`` (to ``action`` if given)."""
    page = session.get(url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(action or url, data={"csrfmiddlewaretoken": token, **data}, headers={"Referer": url})


def balance(db: sqlite3.Connection) -> int:
    return db.execute(
        "SELECT b.balance FROM credits_creditbalance b JOIN accounts_user u ON u.id = b.user_id WHERE u.email = ?",
        (DEMO[0],),
    ).fetchone()[0]


def test_a_newcomer_buys_credits_and_spends_them_on_sqlite_with_no_servers(first_run):
    base, db, manage = first_run
    browser = requests.Session()
    logged_in = post_form(browser, f"{base}/accounts/login/", {"login": DEMO[0], "password": DEMO[1]})
    assert logged_in.url.endswith("/account/"), logged_in.text[:2000]
    start = balance(db)

    starter = db.execute("SELECT id FROM payments_creditpackage WHERE name = 'Starter'").fetchone()[0]
    checkout = post_form(browser, f"{base}/billing/pricing/",
                         {"package": starter, "amount": "0.01", "credits": "5000"}, action=f"{base}/billing/buy/")
    assert "/billing/sandbox/checkout/" in checkout.url, checkout.text[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', checkout.text).group(1)
    paid = browser.post(checkout.url, data={"csrfmiddlewaretoken": token, "action": "pay"},
                        headers={"Referer": checkout.url})
    assert paid.status_code == 200 and "/success/" in paid.url

    db.commit()  # a fresh snapshot of what the server wrote
    assert db.execute("SELECT status, amount, credits FROM payments_order").fetchall() == [("COMPLETED", 2.99, 10)]
    assert db.execute("SELECT count(*) FROM payments_invoice").fetchone() == (1,)
    assert balance(db) == start + 10
    events = db.execute("SELECT provider, status FROM payments_webhookevent").fetchall()
    assert events == [("SANDBOX", "PROCESSED")]

    job_page = post_form(browser, f"{base}/generate/new/",
                         {"operation": "image", "model": "procedural-svg", "prompt": "three red circles at night"})
    assert re.search(r"/generate/\d+/$", job_page.url), job_page.text[:2000]
    db.commit()
    status, charged, result = db.execute(
        "SELECT status, credits_charged, result_file FROM generations_generationjob").fetchone()
    assert (status, charged) == ("COMPLETED", 3) and result.endswith(".svg")
    assert balance(db) == start + 10 - 3
    preview = browser.get(job_page.url + "preview/")
    assert preview.headers["Content-Type"].startswith("image/svg+xml") and "<svg" in preview.text

    check = manage("check_ledger")
    assert check.returncode == 0, check.stdout + check.stderr
    kinds = [k for (k,) in db.execute("SELECT kind FROM credits_ledgerentry ORDER BY id")]
    assert kinds[-2:] == ["PURCHASE", "SPEND"]  # a picture costs exactly its estimate: nothing to refund
