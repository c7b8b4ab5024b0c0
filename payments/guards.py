"""Checks the payment services make before they talk to a provider.

Below fulfilment, refunds, orders and reconciliation, which all call providers: each
imports this, and this imports none of them.
"""

from django.db import transaction


def assert_no_transaction(what: str) -> None:
    """Provider calls must never run while a database transaction is open.

    (The atomic block a test case wraps around each test does not count, as for Django's
    own ``durable`` check.)
    """
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(not a._from_testcase for a in connection.atomic_blocks):
        raise RuntimeError(
            f"{what} talks to the payment provider: call it outside any transaction."
        )
