"""The app through a real PgBouncer in transaction pooling, as compose runs it.

Concurrent spends of one user from several processes' worth of connections, all multiplexed
over a few server connections: every spend lands once, the balance never goes below zero and
check_ledger finds nothing wrong. The ledger's prepared statements go through too when this
PgBouncer keeps them (1.21 or later); an older one runs with CREDITS_PREPARED_STATEMENTS off.
"""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tests import pgbouncer
from tests.conftest import test_database_url

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not pgbouncer.available(), reason="scripts/test.sh installs pgbouncer"),
]

SPENDS = r"""
import sys, threading
import django
django.setup()
from django.db import connection, connections
from accounts.models import User
from credits.exceptions import InsufficientCredits
from credits.services import credits_spend

user = User.objects.get(pk=int(sys.argv[1]))
done, refused, failures = [], [], []

def client(n):
    try:
        for i in range(25):
            key = f"pgb:{n}:{i}"
            for _ in range(2):  # every spend twice: the second returns the first
                try:
                    credits_spend(user=user, amount=1, idempotency_key=key)
                except InsufficientCredits:
                    refused.append(key)
                    break
            else:
                done.append(key)
    except Exception as exc:
        failures.append(repr(exc))
    finally:
        connections.close_all()

threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(done), len(refused), failures)
"""


@pytest.fixture
def bouncer(tmp_path):
    from django.db import connection

    db = connection.settings_dict
    server = pgbouncer.PgBouncer(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        user=db["USER"] or "postgres",
        workdir=tmp_path / "pgbouncer",
        pool_size=3,
    ).start()
    yield server
    server.stop()


def test_concurrent_spends_through_transaction_pooling_land_once_each(bouncer, make_user):
    user = make_user(credits=150)
    name = test_database_url().rsplit("/", 1)[1]
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": bouncer.url(name),
        "DATABASE_PGBOUNCER": "true",
        "CREDITS_PREPARED_STATEMENTS": "true" if bouncer.prepared_statements else "false",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
    }
    result = subprocess.run(
        [sys.executable, "-c", SPENDS, str(user.pk)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    done, refused, failures = result.stdout.strip().splitlines()[-1].split(" ", 2)

    assert failures == "[]"
    # 200 distinct spends of 1 credit against 150: exactly 150 land, the rest are refused.
    assert (int(done), int(refused)) == (150, 50)
    user.credit_balance.refresh_from_db()
    assert user.credit_balance.balance == 0
    call_command("check_ledger", stdout=io.StringIO())  # raises on any drift
    if bouncer.prepared_statements:
        # The ledger's statements went through prepared: PgBouncer parsed each on a server
        # connection once and bound it there again and again, whichever client sent it.
        stats = bouncer.stats()[name]
        assert 0 < stats["total_server_parse_count"] < stats["total_bind_count"] / 10, stats
