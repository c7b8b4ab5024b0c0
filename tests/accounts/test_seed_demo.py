"""seed_demo: demo logins that work, idempotent, and each app's demo data found by convention."""

from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD, STAFF_EMAIL
from accounts.models import User


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", allow_production=True, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_prints_logins_that_work(client):
    output = seed()

    assert f"{STAFF_EMAIL} / {DEMO_PASSWORD}" in output
    assert f"{DEMO_EMAIL} / {DEMO_PASSWORD}" in output
    staff = User.objects.get(email=STAFF_EMAIL)
    assert staff.is_staff and staff.is_superuser
    demo = User.objects.get(email=DEMO_EMAIL)
    assert not demo.is_staff
    assert EmailAddress.objects.filter(
        user=demo, email=DEMO_EMAIL, verified=True, primary=True
    ).exists()

    for email in (STAFF_EMAIL, DEMO_EMAIL):
        response = client.post(
            reverse("account_login"), {"login": email, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 302, response.text[:1000]
        assert response["Location"] == reverse("accounts:profile")
        client.logout()
    assert client.login(username=STAFF_EMAIL, password=DEMO_PASSWORD)
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_restores_the_demo_password():
    seed()
    users = User.objects.count()
    addresses = EmailAddress.objects.count()
    demo = User.objects.get(email=DEMO_EMAIL)
    demo.set_password("changed-by-someone-else")
    demo.save()

    output = seed()

    assert "exists  " + DEMO_EMAIL in output
    assert User.objects.count() == users
    assert EmailAddress.objects.count() == addresses
    demo.refresh_from_db()
    assert demo.check_password(DEMO_PASSWORD)


@pytest.mark.django_db
def test_seed_demo_runs_every_app_demo_module(settings):
    from tests.accounts.demoapp import demo as demoapp_demo

    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "tests.accounts.demoapp"]
    demoapp_demo.calls.clear()

    output = seed()

    assert len(demoapp_demo.calls) == 1
    assert "seeding demoapp demo data" in output
    assert "demoapp seeded" in output
    assert output.rstrip().endswith(f"{DEMO_EMAIL} / {DEMO_PASSWORD}")  # logins come last


@pytest.mark.django_db
def test_seed_demo_refuses_to_run_on_a_production_configuration(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="refuses to run with DEBUG off"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(email=STAFF_EMAIL).exists()
