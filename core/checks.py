"""System checks of the database server: PostgreSQL 15 or later.

Tagged ``database``: they run where Django checks the databases (``manage.py migrate``, which
every deployment and ``scripts/run.sh`` run first, and ``manage.py check --database default``),
so an unsupported server is refused before anything is written to it.
"""

from django.core.checks import Error, Tags, register
from django.db import connections

#: The oldest PostgreSQL major version the project supports on an external server.
MINIMUM_POSTGRESQL = 15


def unsupported_server(*, alias: str, version: int) -> Error | None:
    """The error for the PostgreSQL server behind ``alias`` (``version`` as its
    server_version_num, e.g. 150004 for 15.4), or None when it is supported."""
    if version >= MINIMUM_POSTGRESQL * 10000:
        return None
    major, minor = version // 10000, version % 10000
    if major < 10:  # before 10: major.minor.patch as 9 06 24
        major, minor = f"{major}.{minor // 100}", minor % 100
    return Error(
        f"The database {alias!r} is PostgreSQL {major}.{minor}: "
        f"the project needs PostgreSQL {MINIMUM_POSTGRESQL} or later.",
        hint="Upgrade the server, or point DATABASE_URL at a newer one.",
        id="core.E001",
    )


@register(Tags.database)
def check_database_servers(app_configs=None, databases=None, **kwargs) -> list[Error]:
    errors = []
    for alias in databases or []:
        error = unsupported_server(alias=alias, version=connections[alias].pg_version)
        if error is not None:
            errors.append(error)
    return errors
