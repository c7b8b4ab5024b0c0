"""Storage: uploads and results on a local S3-compatible server (moto in server mode, spoken
to over HTTP by boto3 through django-storages), private objects read through signed URLs
that lapse; deleted pictures' files removed after commit; orphans swept."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from generations.models import GenerationJob
from images.cleanup import files_sweep
from images.models import EnhancedImage
from images.services import enhancement_submit, image_delete
from images.storage import delete_files

pytestmark = pytest.mark.django_db


def keys(client, bucket) -> set[str]:
    return {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_uploads_and_results_live_in_the_private_bucket(
    s3_bucket, make_user, upload, price_rules, django_capture_on_commit_callbacks
):
    client, bucket = s3_bucket
    user = make_user(credits=10)
    image = upload(user, width=320, height=240, gps=True)
    assert image.original.name in keys(client, bucket)
    stored = client.get_object(Bucket=bucket, Key=image.original.name)
    body = stored["Body"].read()
    assert b"SecretCam" not in body and stored["ContentType"] == "image/jpeg"
    grants = client.get_object_acl(Bucket=bucket, Key=image.original.name)["Grants"]
    assert all("AllUsers" not in str(g.get("Grantee")) for g in grants)  # nobody else reads it

    with django_capture_on_commit_callbacks(execute=True):
        job = enhancement_submit(user=user, image_id=image.public_id, tier="1K")
    job.refresh_from_db()
    assert job.status == "COMPLETED", job.error_detail
    assert job.result_file.name in keys(client, bucket) and job.usage["width"] == 1024

    # Deleting the picture removes its original and its result from the bucket, after commit.
    with django_capture_on_commit_callbacks(execute=True):
        image_delete(owner=user, image_id=image.public_id)
    assert keys(client, bucket) == set()
    job.refresh_from_db()
    assert not job.result_file and job.status == "COMPLETED"  # the job stays: the ledger names it


def test_a_private_file_is_a_redirect_to_a_signed_url_that_lapses(
    s3_bucket, make_user, upload, settings
):
    client, bucket = s3_bucket
    owner = make_user()
    image = upload(owner)
    browser = Client()
    browser.force_login(owner)

    before = timezone.now()
    response = browser.get(f"/images/{image.public_id}/original/")
    assert response.status_code == 302 and "no-store" in response["Cache-Control"]
    url = response["Location"]
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path.endswith(image.original.name)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"]
    assert query["X-Amz-Expires"] == ["300"]  # IMAGES_SIGNED_URL_SECONDS
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((signed_at - before).total_seconds()) < 5
    fetched = requests.get(url, timeout=10)
    assert (
        fetched.status_code == 200
        and fetched.content == default_storage.open(image.original.name).read()
    )

    # The lifetime is a setting; a download carries its file name in the signature.
    settings.IMAGES_SIGNED_URL_SECONDS = 30
    response = browser.get(f"/images/{image.public_id}/original/?download=1")
    query = parse_qs(urlparse(response["Location"]).query)
    assert query["X-Amz-Expires"] == ["30"]
    assert query["response-content-disposition"] == ['attachment; filename="Harbour.jpg"']
    assert requests.get(response["Location"], timeout=10).headers["Content-Disposition"] == (
        'attachment; filename="Harbour.jpg"'
    )

    # Someone else never gets a signed URL.
    other = Client()
    other.force_login(make_user())
    assert other.get(f"/images/{image.public_id}/original/").status_code == 404


def test_a_public_picture_on_the_bucket_is_served_at_a_cacheable_address(
    s3_bucket, make_user, upload
):
    image = upload(make_user(), public=True)
    response = Client().get(f"/gallery/images/{image.public_id}/file/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=86400"
    assert b"".join(response.streaming_content)[:3] == b"\xff\xd8\xff"


def test_the_sweep_removes_orphans_on_the_bucket_and_keeps_what_rows_name(
    s3_bucket, make_user, upload
):
    client, bucket = s3_bucket
    image = upload(make_user())
    orphan = default_storage.save("generations/2026/11/job-999999.png", ContentFile(b"x" * 10))
    stray = default_storage.save("images/originals/1/stray.jpg", ContentFile(b"y" * 10))
    outside = default_storage.save("elsewhere/keep.txt", ContentFile(b"z"))

    young = files_sweep()  # everything is younger than the grace period: nothing goes
    assert young["deleted"] == 0 and {orphan, stray} <= keys(client, bucket)

    later = files_sweep(now=timezone.now() + timedelta(hours=2))
    assert later["deleted"] == 2
    assert keys(client, bucket) == {image.original.name, outside}
    assert files_sweep(now=timezone.now() + timedelta(hours=2))["deleted"] == 0


# --- on the local disk (the default) -------------------------------------------------------


def test_a_killed_workers_result_file_is_swept_and_a_failed_jobs_result_deleted(
    make_user, upload, media_root, price_rules, django_capture_on_commit_callbacks
):
    """A worker saved a result and died before its transaction committed: the file has no
    row. A FAILED job still holding a result file loses it."""
    user = make_user(credits=10)
    image = upload(user)
    left_behind = default_storage.save("generations/2026/11/job-424242.jpg", ContentFile(b"j"))
    with django_capture_on_commit_callbacks(execute=True):
        job = enhancement_submit(user=user, image_id=image.public_id, tier="1K")
    job.refresh_from_db()
    kept = job.result_file.name
    failed_result = default_storage.save("generations/2026/11/job-failed.jpg", ContentFile(b"f"))
    failed = GenerationJob.objects.create(
        user=user,
        operation="enhance",
        model="pillow-lanczos",
        tier="1K",
        prompt="x",
        estimated_credits=2,
        status="FAILED",
        result_file=failed_result,
    )

    with django_capture_on_commit_callbacks(execute=True):
        report = files_sweep(now=timezone.now() + timedelta(hours=2))
    assert report["deleted"] == 1 and report["failed_job_results"] == 1
    assert not default_storage.exists(left_behind) and not default_storage.exists(failed_result)
    assert default_storage.exists(kept) and default_storage.exists(image.original.name)
    failed.refresh_from_db()
    assert not failed.result_file
    with django_capture_on_commit_callbacks(execute=True):
        assert files_sweep(now=timezone.now() + timedelta(hours=2))["deleted"] == 0


def test_deleting_a_picture_is_refused_while_it_is_being_enhanced(make_user, upload, price_rules):
    from images.exceptions import ImageBusy

    user = make_user(credits=10)
    image = upload(user)
    enhancement_submit(user=user, image_id=image.public_id, tier="1K")  # queued, not run
    with pytest.raises(ImageBusy):
        image_delete(owner=user, image_id=image.public_id)
    assert EnhancedImage.objects.filter(pk=image.pk).exists()
    assert default_storage.exists(image.original.name)


def test_file_clean_up_is_idempotent(make_user, upload, media_root):
    image = upload(make_user())
    name = image.original.name
    assert delete_files([name]) == 1 and not default_storage.exists(name)
    assert delete_files([name, ""]) == 1  # already gone: nothing fails
    assert not list(Path(media_root).rglob("*.jpg"))


def test_deleting_the_account_deletes_its_pictures_albums_and_files(
    make_user, upload, django_capture_on_commit_callbacks
):
    import json

    from accounts.services import account_delete, account_export_chunks
    from images.models import Album
    from images.services import album_add_image, album_create

    user = make_user()
    image = upload(user, name="Garden")
    album = album_create(owner=user, title="Home", privacy="UNLISTED")
    album_add_image(owner=user, album_id=album.public_id, image_id=image.public_id)
    data = json.loads("".join(account_export_chunks(user=user)))
    assert data["images"][0]["name"] == "Garden" and data["images"][0]["width"] == 640
    assert data["albums"][0]["images"] == [str(image.public_id)]

    with django_capture_on_commit_callbacks(execute=True):
        account_delete(user=user, actor=user)
    assert not EnhancedImage.objects.exists() and not Album.objects.exists()
    assert not default_storage.exists(image.original.name)
    assert Client().get(f"/s/{album.share_token}/").status_code == 404
