"""Several statements of one transaction in one round trip to the database.

Inside ``pipelined()`` the driver sends each statement without waiting for the one before
it (libpq's pipeline mode); the transaction's BEGIN goes with the first. Everything queued
goes out, and its results come back, in one round trip the moment the code reads a result
(``fetchone``, or an ORM call that reads, such as ``create`` reading the new id) or leaves
the block. The server still runs the statements one after the other, each as it would
alone (under READ COMMITTED each takes its own snapshot when it starts, so a statement
after a ``SELECT ... FOR UPDATE`` sees what the lock's previous holder committed); the
first that fails skips the rest, and the error is raised where the results are read.

Only for statements whose text does not depend on an earlier one's result. Without
pipeline support in libpq (before 14) the statements simply run one by one.
"""

from contextlib import contextmanager

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections


@contextmanager
def pipelined(using: str = DEFAULT_DB_ALIAS):
    db = connections[using]
    db.ensure_connection()
    if not psycopg.Pipeline.is_supported():
        yield
        return
    with db.wrap_database_errors, db.connection.pipeline():
        yield
