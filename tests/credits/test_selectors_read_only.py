"""Selectors only read: every read of the ledger runs in a read-only transaction, and the
balance refresh that writes regeneration due is a service."""

import ast
from pathlib import Path

import pytest
from django.db import connection, transaction

import credits
from credits.models import LedgerKind
from credits.selectors import ledger_entries_filtered, ledger_export_rows, ledger_history
from credits.services import credits_grant

SELECTORS = Path(credits.__file__).parent / "selectors.py"


def test_the_selectors_module_imports_no_service_and_writes_nothing():
    tree = ast.parse(SELECTORS.read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {"services", "ledger_sql"} & imported
    called = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not {"create", "update", "delete", "save", "bulk_create", "get_or_create"} & called


@pytest.mark.django_db(transaction=True)
def test_history_and_export_run_in_a_read_only_transaction(make_user):
    user = make_user()
    credits_grant(user=user, amount=5, kind=LedgerKind.BONUS, idempotency_key="selectors:read-only")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
        page = ledger_history(user=user)
        rows = list(ledger_export_rows(user=user))
        count = ledger_entries_filtered(user=user).count()
    assert len(page.entries) == len(rows) == count >= 1
