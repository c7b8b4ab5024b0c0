"""The API over HTTP with a real client against the live server: keys, scopes, other people's
things, idempotent job creation, caps, rate limits, revocation."""

import threading
import uuid

import pytest
from django.utils import timezone

from api.keys import api_key_create, api_key_revoke, api_key_rotate
from api.models import ApiKey
from credits.models import CreditBalance, LedgerEntry
from credits.services import SpendingControls, spending_controls_set
from generations.models import GenerationJob

PICTURE = {
    "operation": "image",
    "model": "procedural-svg",
    "prompt": "three red circles",
    "seed": 1,
}

pytestmark = pytest.mark.django_db(transaction=True)


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_balance_and_ledger_answer_with_a_working_key(member, api_client):
    api = api_client(member.token)
    answer = api.get("/balance")
    assert answer.status_code == 200, answer.text
    assert answer.json()["balance"] == 100
    assert answer.json()["paid"] + answer.json()["promotional"] == 100
    ledger = api.get("/ledger", params={"limit": 1})
    assert ledger.status_code == 200
    assert [e["amount"] for e in ledger.json()["entries"]] == [100]
    assert ledger.json()["next_cursor"] is None
    assert ApiKey.objects.get(pk=member.api_key.pk).last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nonsense", "Bearer ck_000000000000_wrongsecret", "Basic abc"],
)
def test_requests_without_a_valid_key_are_refused_with_401(member, api_client, header):
    api = api_client()
    headers = {"Authorization": header} if header else {}
    answer = api.get("/balance", headers=headers)
    assert answer.status_code == 401
    assert error_code(answer) == "invalid_api_key"


def test_a_key_with_the_right_prefix_but_a_wrong_secret_is_refused(member, api_client):
    prefix = member.api_key.prefix
    answer = api_client(f"ck_{prefix}_{'x' * 43}").get("/balance")
    assert answer.status_code == 401 and error_code(answer) == "invalid_api_key"


def test_a_revoked_key_stops_working_at_once(member, api_client):
    api = api_client(member.token)
    assert api.get("/balance").status_code == 200
    api_key_revoke(key_id=member.api_key.pk, actor=member, user=member)
    answer = api.get("/balance")
    assert answer.status_code == 401 and error_code(answer) == "invalid_api_key"


def test_an_expired_key_is_refused(member, api_client):
    ApiKey.objects.filter(pk=member.api_key.pk).update(expires_at=timezone.now())
    assert api_client(member.token).get("/balance").status_code == 401


def test_keys_stop_working_when_the_plan_ends(member, api_client):
    from payments.subscription_models import Subscription

    Subscription.objects.filter(user=member).update(status="ENDED", ended_at=timezone.now())
    answer = api_client(member.token).get("/balance")
    assert answer.status_code == 403 and error_code(answer) == "api_access_required"


def test_a_rotated_key_works_beside_the_new_one_until_the_overlap_ends(member, api_client):
    issued = api_key_rotate(
        user=member, key_id=member.api_key.pk, overlap=timezone.timedelta(hours=1)
    )
    assert api_client(member.token).get("/balance").status_code == 200
    assert api_client(issued.token).get("/balance").status_code == 200
    ApiKey.objects.filter(pk=member.api_key.pk).update(expires_at=timezone.now())
    assert api_client(member.token).get("/balance").status_code == 401
    assert api_client(issued.token).get("/balance").status_code == 200


def test_a_read_only_key_cannot_create_jobs_or_redeem(
    member, api_client, price_rules, parked_queue
):
    read_only = api_key_create(user=member, name="dashboard", scopes=["read"])
    api = api_client(read_only.token)
    assert api.get("/balance").status_code == 200
    answer = api.post("/jobs", PICTURE, key="k1")
    assert answer.status_code == 403 and error_code(answer) == "insufficient_scope"
    assert api.post("/vouchers/redeem", {"code": "X"}, key="k2").status_code == 403
    assert not GenerationJob.objects.exists() and balance(member) == 100


def test_a_generate_only_key_cannot_read_the_ledger(member, api_client):
    only = api_key_create(user=member, name="writer", scopes=["generate"])
    answer = api_client(only.token).get("/ledger")
    assert answer.status_code == 403 and error_code(answer) == "insufficient_scope"


def test_creating_a_job_charges_it_and_a_retry_replays_the_same_job(
    member, api_client, price_rules, parked_queue
):
    api = api_client(member.token)
    first = api.post("/jobs", PICTURE, key="job-1")
    assert first.status_code == 201, first.text
    job = first.json()
    assert job["status"] == "PENDING" and job["estimated_credits"] == 3
    again = api.post("/jobs", PICTURE, key="job-1")
    assert again.status_code == 201 and again.json()["id"] == job["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert GenerationJob.objects.count() == 1 and balance(member) == 97
    other = api.post("/jobs", {**PICTURE, "prompt": "a blue square"}, key="job-1")
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"
    missing = api.post("/jobs", PICTURE)
    assert missing.status_code == 422 and error_code(missing) == "idempotency_key_required"
    assert GenerationJob.objects.count() == 1 and balance(member) == 97


def test_concurrent_retries_of_one_job_make_one_job_and_one_charge(
    member, api_client, price_rules, parked_queue
):
    answers = []
    barrier = threading.Barrier(8)

    def send():
        api = api_client(member.token)
        barrier.wait()
        answers.append(api.post("/jobs", PICTURE, key="same-key"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert GenerationJob.objects.count() == 1
    job = GenerationJob.objects.get()
    assert LedgerEntry.objects.filter(kind="SPEND").count() == 1 and balance(member) == 97
    statuses = sorted(a.status_code for a in answers)
    # Each retry either got the job (the first, or a replay) or was told to retry shortly.
    assert set(statuses) <= {201, 409}
    assert (
        all(a.json()["id"] == job.pk for a in answers if a.status_code == 201) and 201 in statuses
    )
    for a in answers:
        if a.status_code == 409:
            assert error_code(a) == "request_in_progress" and a.headers["Retry-After"]
    # A retry after the first answered gets the same job.
    late = api_client(member.token).post("/jobs", PICTURE, key="same-key")
    assert late.status_code == 201 and late.json()["id"] == job.pk


def test_too_few_credits_is_a_402_and_nothing_is_charged(
    make_user, subscribe, api_client, price_rules, parked_queue
):
    poor = make_user(credits=2)
    subscribe(poor)
    token = api_key_create(user=poor, name="s", scopes=["read", "generate"]).token
    answer = api_client(token).post("/jobs", PICTURE, key=str(uuid.uuid4()))
    assert answer.status_code == 402 and error_code(answer) == "insufficient_credits"
    assert answer.json()["error"]["details"] == {"needed": 3, "available": 2}
    assert not GenerationJob.objects.exists() and balance(poor) == 2


def test_someone_elses_job_is_a_404_to_read_and_to_cancel(
    member, make_user, subscribe, api_client, price_rules, parked_queue
):
    job = api_client(member.token).post("/jobs", PICTURE, key="mine").json()
    other = make_user(credits=10)
    subscribe(other)
    stranger = api_client(api_key_create(user=other, name="o", scopes=["read", "generate"]).token)
    assert stranger.get(f"/jobs/{job['id']}").status_code == 404
    assert error_code(stranger.get(f"/jobs/{job['id']}")) == "not_found"
    assert stranger.post(f"/jobs/{job['id']}/cancel", key="c").status_code == 404
    assert stranger.get("/jobs/999999").status_code == 404
    assert stranger.get("/jobs").json()["jobs"] == []
    assert GenerationJob.objects.get(pk=job["id"]).status == "PENDING"


def test_cancelling_a_pending_job_refunds_it_once(member, api_client, price_rules, parked_queue):
    api = api_client(member.token)
    job = api.post("/jobs", PICTURE, key="j").json()
    assert balance(member) == 97
    first = api.post(f"/jobs/{job['id']}/cancel", key="cancel-1")
    assert first.status_code == 200 and first.json()["status"] == "CANCELLED"
    again = api.post(f"/jobs/{job['id']}/cancel", key="cancel-2")
    assert again.status_code == 409 and error_code(again) == "invalid_transition"
    assert balance(member) == 100
    listed = api.get("/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_the_keys_daily_cap_refuses_with_429_and_retry_after(
    member, api_client, price_rules, parked_queue
):
    capped = api_key_create(user=member, name="capped", scopes=["generate"], daily_credit_cap=5)
    api = api_client(capped.token)
    assert api.post("/jobs", PICTURE, key="a").status_code == 201
    answer = api.post("/jobs", {**PICTURE, "seed": 2}, key="b")
    assert answer.status_code == 429 and error_code(answer) == "spending_cap"
    assert int(answer.headers["Retry-After"]) > 0
    assert GenerationJob.objects.count() == 1 and balance(member) == 97
    # Another key of the same account is not held by this key's cap.
    assert (
        api_client(member.token).post("/jobs", {**PICTURE, "seed": 2}, key="b").status_code == 201
    )


def test_the_accounts_daily_cap_answers_429_with_retry_after(
    member, api_client, price_rules, parked_queue
):
    spending_controls_set(user=member, controls=SpendingControls(daily_cap=4))
    api = api_client(member.token)
    assert api.post("/jobs", PICTURE, key="a").status_code == 201
    answer = api.post("/jobs", {**PICTURE, "seed": 2}, key="b")
    assert answer.status_code == 429 and error_code(answer) == "spending_cap"
    assert int(answer.headers["Retry-After"]) > 0


def test_rate_limits_per_key_and_per_user_answer_429_with_retry_after(member, api_client, settings):
    settings.API_RATE_PER_KEY = 3
    settings.API_RATE_PER_USER = 5
    settings.API_RATE_WINDOW_SECONDS = 3600
    api = api_client(member.token)
    codes = [api.get("/balance").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = api.get("/balance")
    assert (
        error_code(limited) == "rate_limited"
        and limited.json()["error"]["details"]["scope"] == "key"
    )
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    second = api_client(api_key_create(user=member, name="two", scopes=["read"]).token)
    # The user's limit counts the requests of all their keys: the first key's 5 used it up.
    refused = second.get("/balance")
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["scope"] == "user"


def test_validation_errors_are_422_with_the_field(member, api_client, price_rules, parked_queue):
    api = api_client(member.token)
    answer = api.post("/jobs", {"prompt": "no operation"}, key="v")
    assert answer.status_code == 422 and error_code(answer) == "validation_error"
    bad_cursor = api.get("/ledger", params={"cursor": "nope"})
    assert (
        bad_cursor.status_code == 422 and bad_cursor.json()["error"]["details"]["field"] == "cursor"
    )
    bad_kind = api.get("/ledger", params={"kind": "LOTTERY"})
    assert bad_kind.status_code == 422


def test_catalog_and_estimate(member, api_client, price_rules):
    api = api_client(member.token)
    catalog = api.get("/catalog").json()
    assert {p["code"] for p in catalog["plans"]} >= {"pro", "basic"}
    estimate = api.post("/estimate", PICTURE)
    assert estimate.status_code == 200 and estimate.json()["credits"] == 3
    assert balance(member) == 100


def test_the_openapi_schema_and_docs_page_are_served(live_server):
    import requests

    schema = requests.get(live_server.url + "/api/v1/openapi.json", timeout=20)
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/balance", "/api/v1/ledger", "/api/v1/jobs", "/api/v1/vouchers/redeem"} <= set(
        paths
    )
    docs = requests.get(live_server.url + "/api/v1/docs", timeout=20)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_a_retry_after_a_request_died_holding_its_key_answers_with_the_job_it_made(
    member, api_client, price_rules, parked_queue
):
    from api.models import ApiRequest

    api = api_client(member.token)
    job = api.post("/jobs", PICTURE, key="crash").json()
    # As if the process died after the job committed but before the answer was stored.
    ApiRequest.objects.filter(key="crash").update(
        status=None, response=None, locked_until=timezone.now() - timezone.timedelta(seconds=1)
    )
    retry = api.post("/jobs", PICTURE, key="crash")
    assert retry.status_code == 201 and retry.json()["id"] == job["id"]
    assert GenerationJob.objects.count() == 1 and balance(member) == 97


def test_a_finished_jobs_result_is_served_through_its_signed_url_only(
    member, api_client, price_rules, parked_queue
):
    import requests

    from generations.running import job_run

    api = api_client(member.token)
    job = api.post("/jobs", PICTURE, key="r").json()
    job_run(job_id=job["id"])
    done = api.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "COMPLETED" and done["result_url"]
    result = requests.get(done["result_url"], timeout=20)
    assert result.status_code == 200 and result.headers["Content-Type"] == "image/svg+xml"
    forged = requests.get(done["result_url"][:-3] + "abc", timeout=20)
    assert forged.status_code == 404


def test_redeeming_a_code_grants_once_and_a_retry_replays(member, api_client, staff_user):
    from payments.vouchers import voucher_create

    voucher_create(
        staff_user=staff_user, code="API-FIFTY", kind="FIXED_TOKENS", value=50, max_uses=10
    )
    api = api_client(member.token)
    first = api.post("/vouchers/redeem", {"code": "api-fifty"}, key="v1")
    assert first.status_code == 200, first.text
    assert first.json() == {"credits": 50, "balance": 150}
    assert api.post("/vouchers/redeem", {"code": "api-fifty"}, key="v1").json()["balance"] == 150
    again = api.post("/vouchers/redeem", {"code": "api-fifty"}, key="v2")
    assert again.status_code >= 400 and balance(member) == 150


def test_stored_answers_are_purged_after_their_replay_time_and_the_key_starts_afresh(
    member, api_client, price_rules, parked_queue
):
    from api.idempotency import api_requests_purge
    from api.models import ApiRequest

    api = api_client(member.token)
    first = api.post("/jobs", PICTURE, key="old").json()
    assert api_requests_purge() == 0
    ApiRequest.objects.filter(key="old").update(expires_at=timezone.now())
    assert api_requests_purge() == 1
    again = api.post("/jobs", PICTURE, key="old")
    assert again.status_code == 201 and again.json()["id"] != first["id"]
