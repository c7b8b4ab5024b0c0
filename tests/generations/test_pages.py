"""The generation pages through the test client: form, live estimate, job pages, results."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from credits.models import CreditBalance
from generations.api_keys import decrypt
from generations.models import ApiCredential, GenerationJob
from generations.running import job_claim, job_run
from generations.services import JobRequest, job_submit

from .conftest import USER_KEY
from .fake_openai import Answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_for(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def submit_and_run(user, prompt="three red circles at night"):
    job = job_submit(
        user=user,
        request=JobRequest(operation="image", model="procedural-svg", prompt=prompt, seed=9),
    )
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_pages_need_a_login(client):
    for name in ("generations:list", "generations:new", "generations:api_key"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_new_job_form_offers_the_operations_and_a_live_estimate(
    make_user, client_for, price_rules
):
    response = client_for(make_user(credits=5)).get(reverse("generations:new"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="operation" value="image"' in html and 'name="operation" value="enhance"' in html
    assert f'hx-get="{reverse("generations:estimate")}"' in html
    assert 'hx-trigger="load, change from:#job-form' in html


def test_the_estimate_follows_the_options(make_user, client_for, price_rules):
    client = client_for(make_user(credits=5))
    url = reverse("generations:estimate")
    picture = client.get(url, {"operation": "image", "model": "procedural-svg", "prompt": "a cat"})
    assert 'data-testid="estimate-credits">3<' in picture.content.decode()
    edit = client.get(url, {"operation": "image", "model": "procedural-svg", "is_edit": "on"})
    assert 'data-testid="estimate-credits">2<' in edit.content.decode()
    enhance = client.get(url, {"operation": "enhance", "model": "procedural-svg", "tier": "4K"})
    html = enhance.content.decode()
    assert 'data-testid="estimate-credits">10<' in html
    assert "You need 5 more credits" in html


def test_the_estimate_for_text_grows_with_the_longest_answer(
    make_user, client_for, price_rules, openai_settings
):
    client = client_for(make_user(credits=100))
    url = reverse("generations:estimate")

    def credits(tokens):
        html = client.get(
            url,
            {
                "operation": "text",
                "model": "test-chat",
                "prompt": "hi",
                "max_output_tokens": tokens,
            },
        ).content.decode()
        return int(html.split('data-testid="estimate-credits">')[1].split("<")[0])

    assert credits(256) < credits(4096)


def test_submitting_the_form_starts_the_job_and_shows_it(
    make_user, client_for, price_rules, django_capture_on_commit_callbacks
):
    user = make_user(credits=10)
    client = client_for(user)
    with django_capture_on_commit_callbacks(execute=True):  # tasks run in place in these tests
        response = client.post(
            reverse("generations:new"),
            {
                "operation": "image",
                "model": "procedural-svg",
                "prompt": "a big yellow sun over a green meadow",
            },
        )
    job = GenerationJob.objects.get(user=user)
    assert response.status_code == 302 and response["Location"] == reverse(
        "generations:detail", args=[job.pk]
    )
    page = client.get(response["Location"]).content.decode()
    assert 'data-testid="job-status">Completed<' in page
    assert "is queued" not in page  # no leftover message contradicts the badge
    assert reverse("generations:preview", args=[job.pk]) in page
    assert "Read from your prompt: 1 large yellow sun, green meadow" in page
    assert CreditBalance.objects.get(user=user).balance == 7


def test_too_few_credits_gives_a_clear_message_and_no_job(make_user, client_for, price_rules):
    client = client_for(make_user(credits=2))
    response = client.post(
        reverse("generations:new"),
        {"operation": "image", "model": "procedural-svg", "prompt": "a red heart"},
    )
    assert response.status_code == 402
    assert "Not enough credits: this needs 3, the balance is 2." in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_a_job_over_a_spending_cap_is_refused_with_the_cap_named(
    make_user, client_for, price_rules
):
    from credits.services import SpendingControls, spending_controls_set

    user = make_user(credits=20)
    spending_controls_set(user=user, controls=SpendingControls(daily_cap=2))
    response = client_for(user).post(
        reverse("generations:new"),
        {"operation": "image", "model": "procedural-svg", "prompt": "a red heart"},
    )
    assert response.status_code == 429
    assert "would pass your daily spending cap of 2" in response.content.decode()
    assert not GenerationJob.objects.exists()
    assert CreditBalance.objects.get(user=user).balance == 20


def test_bad_input_is_shown_on_the_form(make_user, client_for, price_rules):
    client = client_for(make_user(credits=20))
    response = client.post(
        reverse("generations:new"),
        {"operation": "image", "model": "procedural-svg", "prompt": "  "},
    )
    assert response.status_code == 400
    assert "Describe what you want to make." in response.content.decode()
    response = client.post(
        reverse("generations:new"),
        {"operation": "enhance", "model": "procedural-svg", "tier": "2K"},
    )
    assert response.status_code == 400 and "Choose the earlier result" in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_the_status_panel_polls_until_the_job_is_finished(make_user, client_for, price_rules):
    user = make_user(credits=10)
    client = client_for(user)
    job = job_submit(
        user=user,
        request=JobRequest(operation="image", model="procedural-svg", prompt="a blue fish"),
    )
    status_url = reverse("generations:status", args=[job.pk])
    pending = client.get(status_url).content.decode()
    assert (
        f'hx-get="{status_url}" hx-trigger="every 1500ms"' in pending
        and "Cancel and refund" in pending
    )
    job_claim(job_id=job.pk)
    assert "Drawing your picture" in client.get(status_url).content.decode()
    GenerationJob.objects.filter(pk=job.pk).update(status="PENDING", claim_token=None)
    job_run(job_id=job.pk)
    done = client.get(status_url).content.decode()
    assert "hx-trigger" not in done.split("</section>")[0]  # polling stops
    assert 'hx-swap-oob="outerHTML:.balance-pill"' in done  # the header balance follows
    assert 'data-testid="header-balance">7 credits<' in done


def test_the_preview_is_served_as_an_inert_svg_to_its_owner_only(
    make_user, client_for, price_rules
):
    owner = make_user(credits=10)
    job = submit_and_run(owner)
    response = client_for(owner).get(reverse("generations:preview", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert (
        "sandbox" in response["Content-Security-Policy"]
        and "default-src 'none'" in response["Content-Security-Policy"]
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content).startswith(b"<svg")
    download = client_for(owner).get(reverse("generations:download", args=[job.pk]))
    assert download["Content-Disposition"] == f'attachment; filename="job-{job.pk}.svg"'


def test_someone_elses_job_is_not_found_anywhere(make_user, client_for, price_rules):
    job = submit_and_run(make_user(credits=10))
    client = client_for(make_user(credits=10))
    for name in ("detail", "status", "row", "preview", "download"):
        assert client.get(reverse(f"generations:{name}", args=[job.pk])).status_code == 404, name
    assert client.post(reverse("generations:cancel", args=[job.pk])).status_code == 404


def test_cancelling_from_the_job_page(make_user, client_for, price_rules):
    user = make_user(credits=10)
    client = client_for(user)
    job = job_submit(
        user=user,
        request=JobRequest(operation="image", model="procedural-svg", prompt="a red boat"),
    )
    response = client.post(reverse("generations:cancel", args=[job.pk]), follow=True)
    assert "is cancelled and its 3 credits refunded" in response.content.decode()
    assert CreditBalance.objects.get(user=user).balance == 10
    again = client.post(reverse("generations:cancel", args=[job.pk]), follow=True).content.decode()
    assert (
        "was not cancelled: it was already cancelled." in again
        and CreditBalance.objects.get(user=user).balance == 10
    )


def test_the_job_list_costs_the_same_queries_for_few_or_many_jobs(
    make_user, client_for, price_rules, django_assert_num_queries, settings
):
    settings.GENERATIONS_MAX_RUNNING_JOBS = 100
    user = make_user(credits=200)
    client = client_for(user)
    for _ in range(2):
        job_submit(
            user=user,
            request=JobRequest(operation="image", model="procedural-svg", prompt="a red boat"),
        )
    client.get(reverse("generations:list"))  # warm up the session and site caches
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("generations:list"))
    for _ in range(20):
        job_submit(
            user=user,
            request=JobRequest(operation="image", model="procedural-svg", prompt="a red boat"),
        )
    with django_assert_num_queries(len(few.captured_queries)):
        html = client.get(reverse("generations:list")).content.decode()
    assert html.count('id="job-row-') == 22


def test_storing_an_api_key_keeps_it_encrypted_and_never_shows_it(
    make_user, client_for, openai_settings
):
    user = make_user()
    client = client_for(user)
    response = client.post(reverse("generations:api_key"), {"api_key": USER_KEY}, follow=True)
    html = response.content.decode()
    assert "stored, encrypted" in html and USER_KEY not in html and "…0002" in html
    check = openai_settings.calls("/v1/models")[-1]  # checked with one cheap authenticated call
    assert check.headers["Authorization"] == f"Bearer {USER_KEY}"
    stored = ApiCredential.objects.get(user=user)
    assert USER_KEY not in stored.encrypted_key and decrypt(stored.encrypted_key) == USER_KEY
    bad = client.post(reverse("generations:api_key"), {"api_key": "has space in it"})
    assert bad.status_code == 400 and "without spaces" in bad.content.decode()
    client.post(reverse("generations:api_key"), {"action": "remove"})
    assert not ApiCredential.objects.filter(user=user).exists()


def test_a_changed_encryption_key_makes_stored_keys_unreadable_not_wrong(
    make_user, settings, openai_settings
):
    from generations.api_keys import api_key_for, api_key_store
    from generations.exceptions import ApiKeyUnavailable

    user = make_user()
    settings.FIELD_ENCRYPTION_KEY = "first-secret"
    api_key_store(user=user, api_key=USER_KEY)
    settings.FIELD_ENCRYPTION_KEY = "second-secret,first-secret"  # rotation: old keys still read
    assert api_key_for(user_id=user.pk) == USER_KEY
    settings.FIELD_ENCRYPTION_KEY = "another-secret"
    with pytest.raises(ApiKeyUnavailable):
        api_key_for(user_id=user.pk)


def test_a_key_the_endpoint_refuses_or_cannot_check_is_not_saved_and_says_why(
    make_user, client_for, openai_settings, settings
):
    user = make_user()
    client = client_for(user)
    url = reverse("generations:api_key")
    refused = client.post(url, {"api_key": "sk-not-a-real-key-9999"})
    html = refused.content.decode()
    assert refused.status_code == 400
    assert "The model service refused this key (HTTP 401): Incorrect API key provided." in html
    assert "It was not saved." in html
    openai_settings.script(Answer(status=503))
    busy = client.post(url, {"api_key": USER_KEY})
    assert busy.status_code == 400 and "could not be checked" in busy.content.decode()
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9"  # nothing listens there
    unreachable = client.post(url, {"api_key": USER_KEY})
    assert unreachable.status_code == 400
    assert (
        "The key could not be checked: the model service could not be reached."
        in unreachable.content.decode()
    )
    assert not ApiCredential.objects.filter(user=user).exists()


def test_without_a_model_service_text_is_shown_unavailable_with_how_to_enable_it(
    make_user, client_for, price_rules, settings
):
    settings.OPENAI_API_KEY = ""
    html = client_for(make_user(credits=5)).get(reverse("generations:new")).content.decode()
    unavailable = html.split('data-testid="operation-unavailable-text"')[1].split("</div>")[0]
    assert "Not available" in unavailable and "disabled" in unavailable
    assert f'href="{reverse("generations:api_key")}">Add your own provider key' in unavailable
    assert "OPENAI_API_KEY" in unavailable
    assert 'name="operation" value="text"' not in html  # it cannot be submitted


def test_with_a_model_service_text_is_offered(make_user, client_for, price_rules, openai_settings):
    html = client_for(make_user(credits=5)).get(reverse("generations:new")).content.decode()
    assert 'name="operation" value="text"' in html and "operation-unavailable" not in html


def test_a_prompt_with_control_characters_is_refused_on_the_form_and_nothing_is_charged(
    make_user, client_for, price_rules
):
    user = make_user(credits=10)
    response = client_for(user).post(
        reverse("generations:new"),
        {"operation": "image", "model": "procedural-svg", "prompt": "blue\x01 star\x0b moon\x1b"},
    )
    assert response.status_code == 400
    assert "invisible control characters (U+0001, U+000B, U+001B)" in response.content.decode()
    assert not GenerationJob.objects.exists() and CreditBalance.objects.get(user=user).balance == 10


def test_a_waiting_job_says_how_long_it_has_waited_and_that_it_is_sent_again(
    make_user, client_for, price_rules, parked_queue
):
    from datetime import timedelta

    from django.utils import timezone

    user = make_user(credits=10)
    client = client_for(user)
    job = job_submit(
        user=user,
        request=JobRequest(operation="image", model="procedural-svg", prompt="a blue fish"),
    )
    html = client.get(reverse("generations:status", args=[job.pk])).content.decode()
    assert re.search(r"Waiting for a worker: queued \d+ s ago\.", html)
    assert (
        f"Job #{job.pk} is queued. 3 credits are reserved" in html
        and "sent to the workers again" not in html
    )
    GenerationJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=75)
    )
    html = client.get(reverse("generations:status", args=[job.pk])).content.decode()
    assert (
        re.search(r"Waiting for a worker: queued 7\d s ago\.", html)
        and "sent to the workers again" in html
    )
    GenerationJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() + timedelta(seconds=30), retry_count=1
    )
    html = client.get(reverse("generations:status", args=[job.pk])).content.decode()
    assert re.search(r"Trying again in [23]\d s\.", html) and "Waiting for a worker" not in html


def _failed_text_job(user, fake, *, prompt="A haiku about tea"):
    fake.script(Answer(status=400, body={"error": {"message": "Unsupported value: 'max_tokens'."}}))
    job = job_submit(
        user=user,
        request=JobRequest(
            operation="text", model="test-chat", prompt=prompt, max_output_tokens=256
        ),
    )
    assert job_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    return job


def test_one_credit_is_one_credit_everywhere(make_user, client_for, price_rules, openai_settings):
    from generations.api_keys import api_key_store

    user = make_user(credits=5)
    client = client_for(user)
    api_key_store(user=user, api_key=USER_KEY)  # own key: the 1-credit platform fee
    failed = _failed_text_job(user, openai_settings)
    assert failed.estimated_credits == 1
    assert failed.error_message.endswith("Your 1 credit was refunded.")
    cancelled = job_submit(
        user=user,
        request=JobRequest(
            operation="text", model="test-chat", prompt="Hello", max_output_tokens=256
        ),
    )
    response = client.post(reverse("generations:cancel", args=[cancelled.pk]), follow=True)
    html = response.content.decode()
    assert f"Job #{cancelled.pk} is cancelled and its 1 credit refunded." in html
    assert "Its 1 credit was refunded." in html and "1 credits" not in html


def test_the_owner_retries_a_failed_job_once_as_a_new_charged_job(
    make_user, client_for, price_rules, openai_settings, django_capture_on_commit_callbacks
):
    user = make_user(credits=50)
    client = client_for(user)
    failed = _failed_text_job(user, openai_settings)
    page = client.get(reverse("generations:detail", args=[failed.pk])).content.decode()
    assert (
        f'action="{reverse("generations:retry", args=[failed.pk])}"' in page
        and 'data-testid="retry-job"' in page
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("generations:retry", args=[failed.pk]))
    retry = GenerationJob.objects.get(retry_of=failed)
    assert response.status_code == 302 and response["Location"] == reverse(
        "generations:detail", args=[retry.pk]
    )
    assert retry.user == user and retry.prompt == failed.prompt and retry.status == "COMPLETED"
    assert CreditBalance.objects.get(user=user).balance == 50 - retry.credits_charged
    assert "a new try of" in client.get(response["Location"]).content.decode()
    page = client.get(reverse("generations:detail", args=[failed.pk])).content.decode()
    assert (
        f'Tried again as <a href="{reverse("generations:detail", args=[retry.pk])}">job #{retry.pk}</a>'
        in page
    )
    assert 'data-testid="retry-job"' not in page
    again = client.post(reverse("generations:retry", args=[failed.pk]), follow=True)
    assert (
        f"Job #{failed.pk} was already retried as job #{retry.pk}: a failed job runs again only once."
        in again.content.decode()
    )
    assert GenerationJob.objects.filter(retry_of=failed).count() == 1
    assert CreditBalance.objects.get(user=user).balance == 50 - retry.credits_charged


def test_only_the_owner_can_retry_and_only_a_failed_job_with_a_csrf_token(
    make_user, client_for, price_rules, openai_settings
):
    from django.test import Client

    owner = make_user(credits=50)
    failed = _failed_text_job(owner, openai_settings)
    url = reverse("generations:retry", args=[failed.pk])
    stranger = client_for(make_user(credits=50))
    assert stranger.post(url).status_code == 404
    assert stranger.get(url).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.post(url).status_code == 403
    done = submit_and_run(owner)
    response = client_for(owner).post(reverse("generations:retry", args=[done.pk]), follow=True)
    assert "Only a failed job can be tried again." in response.content.decode()
    assert not GenerationJob.objects.filter(retry_of__isnull=False).exists()


def test_members_see_their_plan_tiers_price_in_the_live_estimate(
    make_user, client_for, price_rules
):
    from datetime import timedelta

    from django.utils import timezone

    from generations.models import PriceRule

    PriceRule.objects.create(
        name="Pro members' pictures",
        operation="image",
        model="procedural-svg",
        membership_tier="PRO",
        base_credits=2,
    )
    url = reverse("generations:estimate")
    query = {"operation": "image", "model": "procedural-svg", "prompt": "a cat"}
    member = make_user(
        credits=5,
        membership_tier="PRO",
        membership_expires_at=timezone.now() + timedelta(days=10),
    )
    html = client_for(member).get(url, query).content.decode()
    assert 'data-testid="estimate-credits">2<' in html and "Pro member price" in html

    lapsed = make_user(
        credits=5, membership_tier="PRO", membership_expires_at=timezone.now() - timedelta(days=1)
    )
    html = client_for(lapsed).get(url, query).content.decode()
    assert 'data-testid="estimate-credits">3<' in html and "member price" not in html
