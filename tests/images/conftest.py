"""Fixtures for the picture tests: pictures made with Pillow (with camera and GPS metadata), the
generation fixtures (price rules, fake model endpoint, real workers), and a local
S3-compatible server (moto in server mode) started once per session."""

import io
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tests.generations.conftest import (  # noqa: F401  (fixtures shared with these tests)
    fake_openai,
    gen_worker,
    media_root,
    openai_settings,
    price_rules,
)

S3_REGION = "us-east-1"
S3_KEY = "test-access-key"
S3_SECRET = "test-secret-key"


def picture_bytes(
    width: int = 640,
    height: int = 480,
    *,
    fmt: str = "JPEG",
    orientation: int | None = None,
    gps: bool = False,
    colour=(40, 120, 200),
) -> bytes:
    """A picture with a gradient and a red block in the top-left corner (so orientation shows),
    optionally with an EXIF orientation, camera make and GPS position."""
    mode = "RGBA" if fmt == "PNG" else "RGB"
    image = Image.new(mode, (width, height), colour)
    pixels = image.load()
    for x in range(0, width, max(1, width // 64)):
        for y in range(height):
            pixels[x, y] = (x * 255 // width, y * 255 // height, 90) + (
                (255,) if mode == "RGBA" else ()
            )
    image.paste((230, 20, 20) + ((255,) if mode == "RGBA" else ()), (0, 0, width // 4, height // 4))
    exif = Image.Exif()
    if orientation or gps:
        exif[0x010F] = "SecretCam"
        if orientation:
            exif[0x0112] = orientation
        if gps:
            position = exif.get_ifd(0x8825)
            position[1], position[2] = "N", (51.0, 30.0, 12.5)
            position[3], position[4] = "W", (0.0, 7.0, 39.9)
    out = io.BytesIO()
    extra = {"exif": exif} if (orientation or gps) else {}
    image.save(out, fmt, **extra)
    return out.getvalue()


def upload_file(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture
def upload(make_user):
    """``upload(owner=None, **picture options) -> EnhancedImage`` through the service."""
    from images.services import image_upload

    def make(owner=None, *, name="Harbour", public=False, **options):
        owner = owner or make_user()
        fmt = options.get("fmt", "JPEG")
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
        return image_upload(
            owner=owner,
            upload=upload_file(picture_bytes(**options), f"{name}.{ext}"),
            name=name,
            is_public=public,
        )

    return make


# --- a local S3-compatible server ---------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode on a free port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings):
    """A fresh private bucket of its own, made the default storage (as production's settings
    make it when AWS_STORAGE_BUCKET_NAME is set)."""
    import boto3

    from config.settings.env import storage_s3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )
    client.create_bucket(Bucket=bucket)
    client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    monkey = pytest.MonkeyPatch()
    for key, value in {
        "AWS_S3_ENDPOINT_URL": s3_server,
        "AWS_S3_REGION_NAME": S3_REGION,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }.items():
        monkey.setenv(key, value)
    settings.STORAGES = {**settings.STORAGES, "default": storage_s3(bucket)}
    monkey.undo()
    yield client, bucket
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    for obj in listed:
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
