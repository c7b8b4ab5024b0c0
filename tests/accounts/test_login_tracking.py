"""Every login records where it came from and when; only our own proxies are believed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from tests.conftest import PASSWORD


def log_in(client, user, **headers):
    response = client.post(
        reverse("account_login"), {"login": user.email, "password": PASSWORD}, **headers
    )
    assert response.status_code == 302, response.text[:2000]
    user.refresh_from_db()
    return user


@pytest.mark.django_db
def test_a_login_records_the_address_and_time(client, user):
    assert user.last_login_ip is None and user.last_login_at is None
    before = timezone.now()

    log_in(client, user, REMOTE_ADDR="203.0.113.9")

    assert user.last_login_ip == "203.0.113.9"
    assert before <= user.last_login_at <= timezone.now()
    page = client.get(reverse("accounts:profile")).text
    assert "203.0.113.9" in page


@pytest.mark.django_db
def test_each_login_overwrites_the_last_one(client, user):
    log_in(client, user, REMOTE_ADDR="203.0.113.9")
    first_at = user.last_login_at
    User.objects.filter(pk=user.pk).update(last_login_at=first_at - timedelta(days=2))
    client.logout()

    log_in(client, user, REMOTE_ADDR="2001:db8::7")

    assert user.last_login_ip == "2001:db8::7"
    assert user.last_login_at >= first_at


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_is_ignored_without_trusted_proxies(client, user, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    log_in(client, user, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert user.last_login_ip == "203.0.113.9"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "proxies, forwarded_for, expected",
    [
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the client forged the left part
        (2, "6.6.6.6, 198.51.100.7, 10.0.0.5", "198.51.100.7"),
        (2, "198.51.100.7", "10.0.0.2"),  # shorter than the proxy chain: not from our proxies
    ],
)
def test_behind_trusted_proxies_the_client_is_read_from_the_right(
    client, user, settings, proxies, forwarded_for, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    log_in(client, user, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert user.last_login_ip == expected
    assert user.last_login_at is not None


@pytest.mark.django_db
def test_logging_in_to_the_admin_is_recorded_too(client, staff_user):
    response = client.post(
        reverse("admin:login"),
        {"username": staff_user.email, "password": PASSWORD},
        REMOTE_ADDR="192.0.2.44",
    )
    assert response.status_code == 302
    staff_user.refresh_from_db()
    assert staff_user.last_login_ip == "192.0.2.44"


@pytest.mark.parametrize(
    "meta, expected",
    [
        ({"REMOTE_ADDR": "203.0.113.9"}, "203.0.113.9"),
        ({"REMOTE_ADDR": "2001:DB8::1"}, "2001:db8::1"),
        ({"REMOTE_ADDR": ""}, None),
        ({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "not-an-address"}, None),
        ({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7:51234"}, "198.51.100.7"),
        ({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "[2001:db8::9]:443"}, "2001:db8::9"),
    ],
)
def test_client_ip_accepts_only_real_addresses(rf, settings, meta, expected):
    from accounts.net import client_ip

    settings.TRUSTED_PROXY_COUNT = 1 if "HTTP_X_FORWARDED_FOR" in meta else 0
    request = rf.get("/")
    request.META.update(meta)
    if not meta.get("REMOTE_ADDR"):
        request.META.pop("REMOTE_ADDR", None)
    assert client_ip(request) == expected
