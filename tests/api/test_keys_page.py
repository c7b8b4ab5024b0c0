"""The API keys page and the keys in the admin."""

import re

import pytest
from django.urls import reverse

from api.keys import api_key_create, hash_secret
from api.models import ApiKey
from credits.models import AuditLog
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_member_creates_a_key_seen_once_and_stored_only_as_a_hash(member, client):
    client.login(email=member.email, password=PASSWORD)
    answer = client.post(
        reverse("api:keys"),
        {"name": "nightly batch", "scopes": ["read"], "daily_credit_cap": "40"},
    )
    assert answer.status_code == 200
    html = answer.content.decode()
    token = re.search(r'data-testid="issued-token"[^>]*>(ck_[^<]+)<', html).group(1)
    prefix, secret = token.split("_")[1], token.split("_", 2)[2]
    key = ApiKey.objects.get(prefix=prefix)
    assert key.name == "nightly batch" and key.scopes == ["read"] and key.daily_credit_cap == 40
    assert key.secret_hash == hash_secret(secret) and secret not in str(key.__dict__)
    assert len(secret) >= 43  # 256 bits in URL-safe base64
    listed = client.get(reverse("api:keys")).content.decode()
    assert key.display in listed and secret not in listed
    assert AuditLog.objects.filter(action="api.key_create", user=member).exists()


def test_without_a_plan_with_api_access_no_key_can_be_made(make_user, client, subscribe):
    basic = make_user()
    subscribe(basic, "basic")
    client.login(email=basic.email, password=PASSWORD)
    page = client.get(reverse("api:keys")).content.decode()
    assert 'data-testid="no-api-access"' in page and 'data-testid="key-form"' not in page
    answer = client.post(reverse("api:keys"), {"name": "x", "scopes": ["read"]})
    assert answer.status_code == 403 and not ApiKey.objects.exists()


def test_the_owner_revokes_and_rotates_but_not_someone_elses(member, make_user, client, subscribe):
    other = make_user()
    subscribe(other)
    theirs = api_key_create(user=other, name="theirs", scopes=["read"]).key
    client.login(email=member.email, password=PASSWORD)
    client.post(reverse("api:revoke", args=[theirs.pk]))
    assert ApiKey.objects.get(pk=theirs.pk).revoked_at is None
    rotated = client.post(reverse("api:rotate", args=[member.api_key.pk]), {"overlap_hours": "2"})
    assert 'data-testid="issued-token"' in rotated.content.decode()
    old = ApiKey.objects.get(pk=member.api_key.pk)
    assert old.replaced_by is not None and old.expires_at is not None
    client.post(reverse("api:revoke", args=[old.pk]))
    assert ApiKey.objects.get(pk=old.pk).revoked_at is not None
    assert AuditLog.objects.filter(action="api.key_revoke", user=member).count() == 1
    assert AuditLog.objects.filter(action="api.key_rotate", user=member).count() == 1


def test_the_provider_key_page_is_not_called_an_api_key(member, client):
    client.login(email=member.email, password=PASSWORD)
    page = client.get(reverse("generations:api_key")).content.decode()
    assert "Your own provider key" in page and reverse("api:keys") in page


def test_staff_see_keys_in_the_admin_and_revoke_them_audited(member, staff_user, client):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_apikey", "revoke_apikey"])
    )
    client.force_login(staff_user)
    listing = client.get(reverse("admin:api_apikey_changelist")).content.decode()
    assert member.api_key.display in listing and member.email in listing
    assert member.api_key.secret_hash not in listing
    client.post(
        reverse("admin:api_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [member.api_key.pk]},
    )
    key = ApiKey.objects.get(pk=member.api_key.pk)
    assert key.revoked_at is not None and key.revoked_by == staff_user
    row = AuditLog.objects.get(action="staff.api_key_revoke")
    assert row.actor == staff_user and row.user == member
