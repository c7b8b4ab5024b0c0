"""Helpers for the ledger tests: concurrent callers, ledger checks, a balance snapshot.

Import them with ``from tests.credits.helpers import ...``; fixtures live in conftest.py.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from credits.models import AuditLog, CreditBalance, LedgerEntry


@dataclass(frozen=True)
class Outcome:
    value: object = None
    error: BaseException | None = None


def run_concurrently(
    calls: list[Callable[[], object]], *, workers: int | None = None
) -> list[Outcome]:
    """Run the calls on ``workers`` threads (default: one each); the first wave starts at once.

    Each thread closes its own database connection when done.
    """
    workers = min(workers or len(calls), len(calls))
    barrier = threading.Barrier(workers)

    def run(indexed):
        index, call = indexed
        try:
            if index < workers:
                barrier.wait(timeout=30)
            return Outcome(value=call())
        except Exception as exc:  # noqa: BLE001 - the test inspects what each caller got
            return Outcome(error=exc)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, enumerate(calls)))


def check_ledger() -> tuple[int, str]:
    """Run manage.py check_ledger; returns (exit status, output)."""
    out = StringIO()
    try:
        call_command("check_ledger", stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def assert_ledger_clean() -> str:
    status, output = check_ledger()
    assert status == 0, output
    return output


@dataclass(frozen=True)
class State:
    """Everything a refused operation must leave as it was."""

    balance: tuple
    entries: int
    audits: int


def state_of(user) -> State:
    row = (
        CreditBalance.objects.filter(user=user)
        .values_list("balance", "lifetime_earned", "lifetime_spent", "spend_holds", "version")
        .first()
    )
    return State(balance=row, entries=LedgerEntry.objects.count(), audits=AuditLog.objects.count())


def balance_of(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def regen_slot() -> object:
    """The start of the current regeneration period, by the database clock."""
    from credits.app_settings import app_settings

    every = app_settings.REGEN_INTERVAL_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_timestamp(floor(extract(epoch FROM now()) / %s) * %s)", [every, every]
        )
        return cursor.fetchone()[0]


def last_checked(user, periods_ago: int):
    """Make ``periods_ago`` whole regeneration periods look elapsed since the last check."""
    from credits.app_settings import app_settings

    checked = regen_slot() - periods_ago * app_settings.REGEN_INTERVAL
    CreditBalance.objects.filter(user=user).update(regen_checked_at=checked)
    return checked
