"""Enhancing an upload is a generation job: estimated, charged, run, retried and refunded by
the same machinery. The offline enhancer really resamples the pixels; the hosted one sends
the picture to an OpenAI-compatible image edit endpoint (faked at the HTTP level)."""

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from credits.models import CreditBalance
from generations.exceptions import InvalidRequest
from generations.models import GenerationJob
from generations.services import job_retry_own
from images.enhancing import plan
from images.services import enhancement_submit

from ..generations.conftest import PLATFORM_KEY, assert_ledger_clean
from ..generations.fake_openai import Answer

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    return CreditBalance.objects.get(user=user).balance


def result_picture(job) -> Image.Image:
    with default_storage.open(job.result_file.name, "rb") as fh:
        return Image.open(io.BytesIO(fh.read()))


def enhance(user, image, tier, capture, **kwargs) -> GenerationJob:
    with capture(execute=True):
        job = enhancement_submit(user=user, image_id=image.public_id, tier=tier, **kwargs)
    job.refresh_from_db()
    return job


@pytest.mark.parametrize(
    "size,tier,expected,credits",
    [
        ((640, 480), "1K", (1024, 768), 2),
        ((640, 480), "2K", (2048, 1536), 5),
        ((480, 640), "2K", (1536, 2048), 5),  # portrait: the height is the long side
        ((640, 480), "4K", (2560, 1920), 10),  # capped at 4x per side, not blown up to 4096
        ((3000, 1000), "1K", (1024, 341), 2),  # larger than the tier: reduced
    ],
)
def test_the_offline_enhancer_resamples_to_the_tier_keeping_the_aspect_ratio(
    make_user,
    upload,
    price_rules,
    django_capture_on_commit_callbacks,
    size,
    tier,
    expected,
    credits,
):
    user = make_user(credits=20)
    image = upload(user, width=size[0], height=size[1])
    job = enhance(user, image, tier, django_capture_on_commit_callbacks)

    assert job.status == "COMPLETED", job.error_detail
    assert (job.operation, job.model, job.tier) == ("enhance", "pillow-lanczos", tier)
    assert job.credits_charged == credits and balance(user) == 20 - credits
    picture = result_picture(job)
    target = plan(width=size[0], height=size[1], tier=tier)
    assert picture.size == expected == (target.width, target.height)
    assert picture.format == "JPEG" and not picture.getexif()
    assert abs(picture.width / picture.height - size[0] / size[1]) < 0.01
    assert (job.usage["width"], job.usage["height"]) == expected
    assert job.usage["bytes"] == default_storage.size(job.result_file.name)
    assert job.usage["source_width"] == size[0] and job.started_at and job.completed_at
    assert_ledger_clean()


def test_the_result_has_real_detail_not_a_flat_copy(
    make_user, upload, price_rules, django_capture_on_commit_callbacks
):
    """The red corner block stays where it was, at the new scale, with a sharp edge."""
    user = make_user(credits=10)
    image = upload(user, width=400, height=300)
    picture = result_picture(enhance(user, image, "1K", django_capture_on_commit_callbacks))
    rgb = picture.convert("RGB")
    assert picture.size == (1024, 768)
    assert rgb.getpixel((100, 100))[0] > 200  # inside the block (0..256 x 0..192)
    assert rgb.getpixel((400, 400))[0] < 200  # outside it
    edge = [rgb.getpixel((x, 100))[0] for x in range(248, 266)]
    assert max(edge) - min(edge) > 100


def test_a_png_stays_a_png(make_user, upload, price_rules, django_capture_on_commit_callbacks):
    user = make_user(credits=10)
    image = upload(user, width=200, height=100, fmt="PNG")
    job = enhance(user, image, "1K", django_capture_on_commit_callbacks)
    assert job.result_file.name.endswith(".png")
    assert result_picture(job).size == (800, 400)  # 4x cap


def test_only_your_own_picture_can_be_enhanced(make_user, upload, price_rules):
    owner, other = make_user(credits=10), make_user(credits=10)
    image = upload(owner)
    with pytest.raises(Exception):  # noqa: B017, PT011 - not found for anyone else
        enhancement_submit(user=other, image_id=image.public_id, tier="2K")
    assert not GenerationJob.objects.exists() and balance(other) == 10


def test_too_few_credits_orders_nothing(make_user, upload, price_rules):
    from credits.exceptions import InsufficientCredits

    user = make_user(credits=4)
    image = upload(user)
    with pytest.raises(InsufficientCredits):
        enhancement_submit(user=user, image_id=image.public_id, tier="2K")
    assert not GenerationJob.objects.exists() and balance(user) == 4


def test_a_picture_gone_from_storage_fails_the_job_and_refunds_it(
    make_user, upload, price_rules, django_capture_on_commit_callbacks
):
    user = make_user(credits=10)
    image = upload(user)
    default_storage.delete(image.original.name)
    job = enhance(user, image, "2K", django_capture_on_commit_callbacks)
    assert job.status == "FAILED" and "no longer stored" in job.error_message
    assert "5 credits were refunded" in job.error_message
    assert balance(user) == 10 and not job.result_file
    assert_ledger_clean()


def test_the_owner_retries_a_failed_enhancement_on_the_same_picture(
    make_user, upload, price_rules, django_capture_on_commit_callbacks
):
    user = make_user(credits=10)
    image = upload(user)
    name = image.original.name
    with default_storage.open(name, "rb") as fh:
        kept = fh.read()
    default_storage.delete(name)
    failed = enhance(user, image, "1K", django_capture_on_commit_callbacks)
    assert failed.status == "FAILED"
    with default_storage.open(name, "wb") as fh:  # the file is back (restored from a backup)
        fh.write(kept)
    with django_capture_on_commit_callbacks(execute=True):
        retry = job_retry_own(user=user, job_id=failed.pk)
    retry.refresh_from_db()
    assert retry.status == "COMPLETED" and retry.parameters["inputs"] == {
        "image": str(image.public_id)
    }
    assert balance(user) == 8


# --- the hosted model --------------------------------------------------------------------


@pytest.fixture
def hosted(settings, openai_settings):
    settings.IMAGES_ENHANCER = "hosted"
    settings.OPENAI_IMAGE_EDIT_MODEL = "test-image-edit"
    return openai_settings


def test_the_hosted_enhancer_sends_the_picture_to_the_image_edit_endpoint(
    make_user, upload, price_rules, hosted, django_capture_on_commit_callbacks
):
    user = make_user(credits=10)
    image = upload(user, width=600, height=400, gps=True)
    job = enhance(user, image, "2K", django_capture_on_commit_callbacks)

    assert job.status == "COMPLETED", job.error_detail
    assert (job.model, job.parameters["backend"]) == ("test-image-edit", "openai-edit")
    [call] = hosted.calls("/v1/images/edits")
    assert call.headers["Authorization"] == f"Bearer {PLATFORM_KEY}"
    assert call.body["model"] == "test-image-edit" and call.body["size"] == "1536x1024"
    sent = call.body["image"]
    assert sent["type"] == "image/png" and b"SecretCam" not in sent["bytes"]
    assert Image.open(io.BytesIO(sent["bytes"])).size == (600, 400)
    # The model's 1536 x 1024 answer is fitted to the tier: 2048 x 1365, the original's shape.
    assert result_picture(job).size == (2048, 1365) == (job.usage["width"], job.usage["height"])
    assert (job.usage["model_width"], job.usage["model_height"]) == (1536, 1024)
    assert job.credits_charged == 5 and balance(user) == 5


def test_the_hosted_enhancer_retries_a_busy_endpoint(
    make_user, upload, price_rules, hosted, django_capture_on_commit_callbacks
):
    user = make_user(credits=10)
    image = upload(user)
    hosted.script(Answer(status=503), Answer(status=429, headers={"Retry-After": "0"}))
    job = enhance(user, image, "1K", django_capture_on_commit_callbacks)
    assert job.status == "COMPLETED" and job.retry_count == 2
    assert len(hosted.calls("/v1/images/edits")) == 3


def test_a_refused_hosted_edit_fails_and_refunds_in_full(
    make_user, upload, price_rules, hosted, django_capture_on_commit_callbacks
):
    user = make_user(credits=10)
    image = upload(user)
    hosted.script(
        Answer(
            status=400,
            body={"error": {"message": "Your request was rejected.", "type": "invalid_request"}},
        )
    )
    job = enhance(user, image, "4K", django_capture_on_commit_callbacks)
    assert job.status == "FAILED" and "Your request was rejected." in job.error_message
    assert job.credits_charged == 0 and balance(user) == 10
    assert_ledger_clean()


def test_the_enhancers_are_not_offered_on_the_generic_job_form(make_user, price_rules):
    from generations.forms import JobForm

    form = JobForm(user=make_user(), user_has_key=False, initial={"operation": "enhance"})
    assert [o.model for o in form.offerings] == ["procedural-svg"]
    with pytest.raises(InvalidRequest, match="Choose one of your pictures"):
        from generations.services import JobRequest, job_prepare

        job_prepare(
            user=make_user(),
            request=JobRequest(operation="enhance", model="pillow-lanczos", tier="1K", prompt="x"),
        )


def test_the_job_page_compares_before_and_after_for_its_owner_only(
    make_user, upload, price_rules, django_capture_on_commit_callbacks
):
    from django.test import Client

    user = make_user(credits=10)
    image = upload(user, width=320, height=240)
    job = enhance(user, image, "1K", django_capture_on_commit_callbacks)
    owner = Client()
    owner.force_login(user)
    page = owner.get(f"/generate/{job.pk}/").content.decode()
    assert 'data-testid="job-compare"' in page and "1024 × 768 px" in page
    assert "Before · 320 × 240" in page and "After · 1024 × 768" in page
    before = owner.get(f"/generate/{job.pk}/input/")
    assert before.status_code == 200 and before["Content-Type"] == "image/jpeg"
    with default_storage.open(image.original.name, "rb") as fh:
        assert b"".join(before.streaming_content) == fh.read()
    after = owner.get(f"/generate/{job.pk}/download/")
    assert after.status_code == 200 and "attachment" in after["Content-Disposition"]
    stranger = Client()
    stranger.force_login(make_user())
    for url in (f"/generate/{job.pk}/input/", f"/generate/{job.pk}/preview/"):
        assert stranger.get(url).status_code == 404
