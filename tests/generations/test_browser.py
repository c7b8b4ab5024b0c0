"""In Chromium: fill in the form, watch the estimate follow the options, submit, watch the
job complete on a real worker, and see a picture that shows what was asked for; a failed job
is tried again by its owner."""

import pytest
from django.test import Client

from generations.models import GenerationJob

from .conftest import assert_ledger_clean

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

#: Counts pixels of the shown picture near a colour (drawn into a canvas in the page).
COLOUR_SHARE = """([img, target, tolerance]) => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let hits = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - target[0]) <= tolerance && Math.abs(data[i + 1] - target[1]) <= tolerance
        && Math.abs(data[i + 2] - target[2]) <= tolerance) hits++;
  }
  return hits / (data.length / 4);
}"""


def log_in(page, live_server, user):
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_submit_a_picture_watch_it_complete_and_see_it(
    page, live_server, make_user, price_rules, gen_worker, screenshot
):
    gen_worker()
    user = make_user(credits=4)
    log_in(page, live_server, user)

    page.goto("/generate/new/")
    estimate = page.get_by_test_id("estimate-credits")
    assert estimate.inner_text() == "3"
    # No model service here: Text is shown, unavailable, with how to enable it.
    unavailable = page.get_by_test_id("operation-unavailable-text")
    assert "Not available" in unavailable.inner_text()
    assert unavailable.locator("input").is_disabled()
    assert (
        unavailable.get_by_role("link", name="Add your own provider key").get_attribute("href")
        == "/generate/api-key/"
    )
    page.locator(
        "input[name=operation][value=enhance]"
    ).check()  # the form follows the operation...
    page.get_by_text("4K", exact=True).click()
    page.wait_for_function(
        "document.querySelector('[data-testid=estimate-credits]')?.innerText === '10'"
    )
    assert "You need 6 more credits" in page.get_by_test_id("estimate").inner_text()
    page.locator("input[name=operation][value=image]").check()  # ...and back
    page.wait_for_function(
        "document.querySelector('[data-testid=estimate-credits]')?.innerText === '3'"
    )
    prompt = "three red circles over a blue ocean at night"
    page.get_by_label("Prompt").fill(prompt)
    screenshot(page, "form")
    page.get_by_test_id("submit-job").click()

    page.wait_for_url("**/generate/*/")
    status = page.get_by_test_id("job-status")
    status.filter(has_text="Completed").wait_for(timeout=60_000)  # the page updated itself
    image = page.get_by_test_id("job-image")
    image.wait_for()
    page.wait_for_function(
        "document.querySelector('[data-testid=job-image]').complete "
        "&& document.querySelector('[data-testid=job-image]').naturalWidth > 0"
    )
    assert page.get_by_test_id("header-balance").inner_text() == "1 credit"
    assert "Read from your prompt: 3 red circles, night, blue ocean" in page.content()
    assert "is queued" not in page.content()  # nothing beside the badge still says it waits
    shot = screenshot(page, "completed")
    assert shot.exists()

    # The picture shows what was asked: red circles, a blue ocean, a dark night sky.
    handle = image.element_handle()
    red = page.evaluate(COLOUR_SHARE, [handle, [224, 49, 49], 40])
    dark_sky = page.evaluate(COLOUR_SHARE, [handle, [19, 26, 63], 30])
    blue = page.evaluate(
        """([img]) => {
      const c = document.createElement("canvas"); c.width = img.naturalWidth; c.height = img.naturalHeight;
      const x = c.getContext("2d"); x.drawImage(img, 0, 0);
      const d = x.getImageData(0, Math.floor(c.height * 0.7), c.width, Math.floor(c.height * 0.3)).data;
      let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 2] > d[i] + 40 && d[i + 2] > d[i + 1] + 20) n++;
      return n / (d.length / 4);
    }""",
        [handle],
    )
    assert red > 0.02, red
    assert dark_sky > 0.05, dark_sky
    assert blue > 0.5, blue  # the lower part of the picture is the ocean

    job = GenerationJob.objects.get(user=user)
    assert job.status == "COMPLETED" and job.prompt == prompt
    page.goto("/generate/")
    assert (
        page.locator(f"#job-row-{job.pk}").get_by_test_id("job-status").inner_text() == "Completed"
    )
    screenshot(page, "list")
    assert_ledger_clean()


def test_enhance_a_picture_and_see_a_text_job_fail_with_its_refund(
    page, live_server, make_user, price_rules, gen_worker, fake_openai, screenshot
):
    from .conftest import openai_env
    from .fake_openai import Answer

    gen_worker(openai_env(fake_openai))
    user = make_user(credits=40)
    log_in(page, live_server, user)

    page.goto("/generate/new/")
    page.get_by_label("Prompt").fill("a starry night over snowy mountains with a cabin")
    page.get_by_label("Seed").fill("2024")
    page.get_by_test_id("submit-job").click()
    page.get_by_test_id("job-status").filter(has_text="Completed").wait_for(timeout=60_000)
    first = GenerationJob.objects.get(user=user)

    # Edit it: the same picture, with the cabin now red.
    page.get_by_role("link", name="Edit", exact=True).click()
    assert page.locator("select[name=source_id]").input_value() == str(first.pk)
    page.wait_for_function(
        "document.querySelector('[data-testid=estimate-credits]')?.innerText === '2'"
    )
    page.get_by_label("What to change").fill("make the cabin red")
    screenshot(page, "edit-form")
    page.get_by_test_id("submit-job").click()
    page.get_by_test_id("job-status").filter(has_text="Completed").wait_for(timeout=60_000)
    edit = GenerationJob.objects.exclude(pk=first.pk).get(user=user)
    assert edit.is_edit and edit.source_id == first.pk and edit.credits_charged == 2
    assert 'data-kind="house" data-colour="#e03131"' in edit.result_file.read().decode()
    screenshot(page, "edited")

    page.goto(f"/generate/{first.pk}/")
    page.get_by_role("link", name="Enhance", exact=True).click()
    assert page.locator("select[name=source_id]").input_value() == str(first.pk)
    page.get_by_text("2K", exact=True).click()
    page.wait_for_function(
        "document.querySelector('[data-testid=estimate-credits]')?.innerText === '5'"
    )
    screenshot(page, "enhance-form")
    page.get_by_test_id("submit-job").click()
    page.get_by_test_id("job-status").filter(has_text="Completed").wait_for(timeout=60_000)
    enhanced = GenerationJob.objects.get(user=user, operation="enhance")
    assert (
        enhanced.operation == "enhance" and enhanced.tier == "2K" and enhanced.credits_charged == 5
    )
    assert 'width="2048"' in enhanced.result_file.read().decode()
    screenshot(page, "enhanced")

    fake_openai.always(Answer(status=503))
    page.goto("/generate/new/")
    page.locator("input[name=operation][value=text]").check()
    page.get_by_label("Longest answer (tokens)").wait_for()
    page.get_by_label("Prompt").fill("A product description for a hand-made teapot")
    page.get_by_test_id("submit-job").click()
    page.get_by_test_id("job-status").filter(has_text="Failed").wait_for(timeout=60_000)
    error = page.get_by_test_id("job-error").inner_text()
    assert "HTTP 503" in error and "after 3 retries" in error and "were refunded" in error
    assert "is queued" not in page.content()
    text_job = GenerationJob.objects.get(user=user, operation="text")
    assert (
        f"Refunded {text_job.estimated_credits}" in page.get_by_test_id("job-credits").inner_text()
    )
    assert page.get_by_test_id("header-balance").inner_text() == "30 credits"  # 40 - 3 - 2 - 5
    screenshot(page, "failed")

    # The service is back: the customer tries the failed job again, once, as a new charged job.
    fake_openai.clear()
    page.get_by_test_id("retry-job").click()
    page.get_by_test_id("job-status").filter(has_text="Completed").wait_for(timeout=60_000)
    retry = GenerationJob.objects.get(retry_of=text_job)
    assert page.url.endswith(f"/generate/{retry.pk}/") and retry.prompt == text_job.prompt
    assert "Here is your text about" in page.get_by_test_id("job-text").inner_text()
    assert (
        page.get_by_test_id("header-balance").inner_text()
        == f"{30 - retry.credits_charged} credits"
    )
    screenshot(page, "retried")
    page.goto(f"/generate/{text_job.pk}/")
    assert f"Tried again as job #{retry.pk}" in page.get_by_test_id("job-retried").inner_text()
    assert page.get_by_test_id("retry-job").count() == 0
    assert_ledger_clean()
