"""In Chromium, with a real worker: upload a photo, enhance it at 2K, compare before and
after, put it in an album, share the album and open the link logged out."""

import pytest

from generations.models import GenerationJob
from images.models import Album, EnhancedImage

from ..generations.test_browser import log_in
from .conftest import picture_bytes

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LOADED = (
    "([sel]) => { const i = document.querySelector(sel); "
    "return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null; }"
)


def loaded_size(page, selector):
    page.wait_for_function(f"!!({LOADED})([{selector!r}])")
    return page.evaluate(LOADED, [selector])


def test_upload_enhance_compare_album_share(
    page, browser, live_server, make_user, price_rules, gen_worker, screenshot
):
    gen_worker()
    user = make_user(credits=12)
    log_in(page, live_server, user)

    page.goto("/images/")
    page.get_by_label("Picture (JPEG, PNG or WebP)").set_input_files(
        files=[
            {
                "name": "harbour.jpg",
                "mimeType": "image/jpeg",
                "buffer": picture_bytes(640, 480, gps=True),
            }
        ]
    )
    page.get_by_label("Name").fill("Harbour at dawn")
    page.get_by_test_id("upload-submit").click()
    page.wait_for_url("**/images/*/")
    assert "640 × 480" in page.get_by_test_id("image-facts").inner_text()
    assert page.get_by_test_id("tier-price-2K").inner_text() == "5 credits"
    assert loaded_size(page, "[data-testid=image-original]") == [640, 480]
    image = EnhancedImage.objects.get()
    screenshot(page, "picture")

    page.get_by_text("2K", exact=True).click()
    page.get_by_test_id("enhance-submit").click()
    page.wait_for_url("**/generate/*/")
    page.get_by_test_id("job-status").filter(has_text="Completed").wait_for(timeout=90_000)
    job = GenerationJob.objects.get()
    assert (job.status, job.tier, job.credits_charged) == ("COMPLETED", "2K", 5)
    assert loaded_size(page, "[data-testid=compare-before]") == [640, 480]
    assert loaded_size(page, "[data-testid=job-image]") == [2048, 1536]
    assert "2048 × 1536 px" in page.get_by_test_id("job-output").inner_text()
    slider = page.get_by_test_id("compare-slider")
    slider.fill("20")
    split = page.evaluate(
        "getComputedStyle(document.querySelector('.gen-compare')).getPropertyValue('--split')"
    )
    assert split.strip() == "20%"
    screenshot(page, "compare")
    with page.expect_download() as download:
        page.get_by_test_id("download-job").click()
    assert download.value.suggested_filename == f"job-{job.pk}.jpg"

    page.goto("/albums/")
    page.get_by_label("Title").fill("Harbour days")
    page.get_by_label("Privacy").select_option("UNLISTED")
    page.get_by_test_id("album-create").click()
    page.wait_for_url("**/albums/*/")
    page.goto(f"/images/{image.public_id}/")
    page.get_by_test_id("add-to-album").get_by_role("button", name="Add to album").click()
    assert "Added to “Harbour days”." in page.locator(".messages").inner_text()
    page.get_by_role("link", name="Harbour days").click()
    assert page.get_by_test_id("album-item").count() == 1
    share_url = page.get_by_test_id("share-url").input_value()
    album = Album.objects.get()
    assert share_url == f"{live_server.url}/s/{album.share_token}/"
    screenshot(page, "album")

    visitor = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        shared = visitor.new_page()
        shared.goto(share_url)
        assert shared.get_by_test_id("album-title").inner_text() == "Harbour days"
        assert "Log in" in shared.locator(".site-header").inner_text()  # not logged in
        # The shared picture is the enhanced version.
        assert loaded_size(shared, "[data-testid=album-item] img") == [2048, 1536]
        screenshot(shared, "shared")
    finally:
        visitor.close()
