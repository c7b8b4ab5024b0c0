"""A backend is one class in the registry: it is offered, checks its own parameters, and runs."""

import pytest

from generations import backends
from generations.backends import BackendOutput, Offering
from generations.exceptions import InvalidRequest
from generations.forms import JobForm
from generations.models import GenerationJob
from generations.running import job_run
from generations.services import JobRequest, job_prepare, job_submit

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>'


class StampBackend:
    """Stamps a red square; refuses seed 13 (its own rule for its own field)."""

    name = "stamp"

    def offerings(self, *, user_has_key: bool) -> list[Offering]:
        return [Offering("image", "stamp-1", "Rubber stamp", self.name)]

    def form_fields(self, *, operation: str) -> frozenset[str]:
        return frozenset({"seed"})

    def prepare(self, draft) -> dict:
        if draft.seed == 13:
            raise InvalidRequest("The stamp will not print 13.", field="seed")
        return {"ink": "red", "seed": draft.seed or 0, "words": draft.prompt.upper()}

    def run(self, request) -> BackendOutput:
        assert request.parameters["ink"] == "red"
        return BackendOutput(
            content=SVG, extension="svg", usage={"words": request.parameters["words"]}
        )


@pytest.fixture
def stamp():
    backends.register("stamp", f"{__name__}.StampBackend")
    yield
    del backends.BACKENDS["stamp"]


def test_a_registered_backend_is_offered_with_its_own_form_fields(make_user, stamp):
    user = make_user()
    form = JobForm(
        data={"operation": "image", "model": "stamp-1", "prompt": "ok"},
        user=user,
        user_has_key=False,
    )
    assert ("stamp-1", "Rubber stamp") in form.fields["model"].choices
    assert form.shows_seed and not form.shows_tokens and not form.shows_own_key


def test_a_registered_backend_prepares_and_checks_its_own_parameters(make_user, price_rules, stamp):
    user = make_user(credits=50)
    prepared = job_prepare(
        user=user, request=JobRequest(operation="image", model="stamp-1", prompt="hello", seed=5)
    )
    assert prepared.parameters["backend"] == "stamp"
    assert {k: prepared.parameters[k] for k in ("ink", "seed", "words")} == {
        "ink": "red",
        "seed": 5,
        "words": "HELLO",
    }
    with pytest.raises(InvalidRequest) as refused:
        job_prepare(
            user=user,
            request=JobRequest(operation="image", model="stamp-1", prompt="hello", seed=13),
        )
    assert refused.value.field == "seed"


@pytest.mark.django_db(transaction=True)
def test_a_registered_backend_runs_its_jobs(make_user, price_rules, parked_queue, stamp):
    user = make_user(credits=50)
    job = job_submit(
        user=user, request=JobRequest(operation="image", model="stamp-1", prompt="hello")
    )
    assert job_run(job_id=job.pk) == "completed"
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.COMPLETED and job.result_file
