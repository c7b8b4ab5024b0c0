"""The database server's version is checked where Django checks the databases (migrate)."""

import pytest
from django.core import checks

from core.checks import unsupported_server


@pytest.mark.parametrize("version, shown", [(140012, "14.12"), (130000, "13.0"), (90624, "9.6.24")])
def test_a_server_older_than_postgresql_15_is_refused_with_its_version(version, shown):
    error = unsupported_server(alias="default", version=version)

    assert error.id == "core.E001" and error.is_serious()
    assert (
        f"The database 'default' is PostgreSQL {shown}: the project needs PostgreSQL 15 or later."
        == error.msg
    )


@pytest.mark.parametrize("version", [150000, 150020, 160004, 180001])
def test_postgresql_15_and_later_are_supported(version):
    assert unsupported_server(alias="default", version=version) is None


@pytest.mark.django_db
def test_the_check_runs_on_the_real_server_and_passes():
    found = checks.run_checks(databases=["default"], tags=[checks.Tags.database])
    assert [e for e in found if e.id.startswith("core.")] == []
