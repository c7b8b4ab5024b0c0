"""Uploads: every refusal is explained and leaves nothing stored; what is kept is re-encoded
from its pixels, upright, without EXIF or GPS data."""

import io
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db import IntegrityError
from PIL import Image

from images.exceptions import TooLarge, UploadRefused
from images.models import EnhancedImage
from images.services import image_upload

from .conftest import picture_bytes, upload_file

pytestmark = pytest.mark.django_db


def stored_files(media_root) -> list[Path]:
    root = Path(media_root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (a decompression bomb: a few
    kilobytes that would decode to gigabytes)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_a_jpeg_is_stored_upright_without_exif_or_gps(make_user, media_root):
    owner = make_user()
    original = picture_bytes(640, 480, orientation=6, gps=True)
    assert b"SecretCam" in original and Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)

    image = image_upload(
        owner=owner, upload=upload_file(original, "holiday.jpg"), description="At the harbour"
    )

    assert (image.name, image.description, image.format) == ("holiday", "At the harbour", "JPEG")
    # Orientation 6 means "rotate 90 degrees clockwise to show": the stored picture is upright.
    assert (image.width, image.height) == (480, 640)
    with default_storage.open(image.original.name, "rb") as fh:
        stored = fh.read()
    assert image.size_bytes == len(stored)
    assert b"Exif" not in stored and b"SecretCam" not in stored
    reread = Image.open(io.BytesIO(stored))
    assert reread.format == "JPEG" and reread.size == (480, 640)
    assert not reread.getexif() and "exif" not in reread.info and "icc_profile" not in reread.info
    # The red corner block was top-left before the rotation, so it is top-right after it.
    assert reread.convert("RGB").getpixel((470, 10))[0] > 200
    assert reread.convert("RGB").getpixel((10, 10))[0] < 150


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("WEBP", "webp")])
def test_png_and_webp_are_kept_in_their_format_without_metadata(make_user, fmt, ext):
    data = picture_bytes(300, 200, fmt=fmt, gps=True)
    image = image_upload(owner=make_user(), upload=upload_file(data, f"pic.{ext}"))
    with default_storage.open(image.original.name, "rb") as fh:
        stored = fh.read()
    assert image.original.name.endswith(f".{ext}")
    assert (image.format, image.width, image.height) == (fmt, 300, 200)
    assert b"SecretCam" not in stored and not Image.open(io.BytesIO(stored)).getexif()


@pytest.mark.parametrize(
    "data,name,reason,message",
    [
        (
            b"<html>definitely a picture</html>",
            "photo.jpg",
            "not_an_image",
            "not a JPEG, PNG or WebP",
        ),
        (
            b"\xff\xd8\xff\xe0" + b"\x00" * 400,
            "fake.jpg",
            "not_an_image",
            "not a JPEG, PNG or WebP",
        ),
        (
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            "anim.gif",
            "not_an_image",
            "not a JPEG, PNG or WebP",
        ),
        (None, "cut.jpg", "damaged", "damaged or cut short"),
        (b"", "empty.jpg", "empty", "empty"),
    ],
    ids=["text-named-jpg", "jpeg-magic-only", "gif", "truncated", "empty"],
)
def test_files_that_are_not_usable_pictures_are_refused_and_nothing_is_stored(
    make_user, media_root, data, name, reason, message
):
    if data is None:
        whole = picture_bytes(800, 600)
        data = whole[: len(whole) // 2]
    with pytest.raises(UploadRefused) as refused:
        image_upload(owner=make_user(), upload=upload_file(data, name))
    assert refused.value.reason == reason and message in refused.value.message
    assert not EnhancedImage.objects.exists() and stored_files(media_root) == []


def test_an_oversized_file_is_refused_before_it_is_decoded(make_user, settings, media_root):
    settings.IMAGES_MAX_UPLOAD_BYTES = 10_000
    data = picture_bytes(800, 600)
    assert len(data) > 10_000
    with pytest.raises(TooLarge, match=r"largest accepted is 0\.0 MB|largest accepted") as refused:
        image_upload(owner=make_user(), upload=upload_file(data))
    assert refused.value.status == 413 and refused.value.reason == "too_many_bytes"
    assert stored_files(media_root) == []


def test_a_decompression_bomb_is_refused_from_its_header(make_user, media_root):
    bomb = png_claiming(30_000, 30_000)  # 900 megapixels in a few hundred bytes
    assert len(bomb) < 2_000
    with pytest.raises(TooLarge) as refused:
        image_upload(owner=make_user(), upload=upload_file(bomb, "bomb.png"))
    assert "sides of up to" in refused.value.message or "megapixels" in refused.value.message
    assert stored_files(media_root) == []


def test_the_pixel_limit_is_a_setting(make_user, settings, media_root):
    settings.IMAGES_MAX_PIXELS = 100_000
    with pytest.raises(TooLarge, match="up to 0 megapixels|megapixels"):
        image_upload(owner=make_user(), upload=upload_file(picture_bytes(400, 300)))
    image_upload(owner=make_user(), upload=upload_file(picture_bytes(300, 300)))


@pytest.mark.django_db(transaction=True)
def test_a_failed_insert_deletes_the_file_it_stored(make_user, media_root):
    """The row cannot be written (its owner vanished): the stored file goes too."""
    ghost = make_user()
    ghost.pk = 10**9  # no such user: the foreign key fails when the transaction commits
    with pytest.raises(IntegrityError):
        image_upload(owner=ghost, upload=upload_file(picture_bytes(100, 100)))
    assert stored_files(media_root) == []


def test_the_upload_page_explains_a_refusal(client, make_user):
    client.force_login(make_user())
    response = client.post(
        "/images/", {"file": upload_file(b"not a picture at all", "x.png", "image/png")}
    )
    assert response.status_code == 400
    assert "This file is not a JPEG, PNG or WebP picture." in response.content.decode()
    assert not EnhancedImage.objects.exists()

    response = client.post(
        "/images/",
        {"file": upload_file(picture_bytes(320, 240), "boat.jpg"), "name": "Boat"},
    )
    image = EnhancedImage.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/images/{image.public_id}/"
    page = client.get(response["Location"]).content.decode()
    assert "Boat" in page and "320 × 240" in page
