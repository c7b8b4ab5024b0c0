"""Settings of the images app, read in one place (Django settings, else the environment)."""

from core.app_settings import AppSettings, Setting


def _setting(name: str, default, type=str, **bounds):  # noqa: A002
    return Setting(name, default, type, env=True, check_id="images.E001", **bounds)


class ImagesSettings(AppSettings):
    #: The largest upload accepted, in bytes.
    MAX_UPLOAD_BYTES = _setting("IMAGES_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, int, minimum=1024)
    #: The most pixels (width x height) an upload may decode to: the decompression-bomb guard.
    MAX_PIXELS = _setting("IMAGES_MAX_PIXELS", 40_000_000, int, minimum=1)
    #: The longest side an upload may have, in pixels.
    MAX_SIDE = _setting("IMAGES_MAX_SIDE", 12_000, int, minimum=16)
    #: An enhancement never enlarges a picture more than this many times (per side).
    MAX_UPSCALE = _setting("IMAGES_MAX_UPSCALE", 4.0, float, minimum=1.0, maximum=16.0)
    #: Which enhancer the image pages order: "offline" (Pillow) or "hosted" (an
    #: OpenAI-compatible image edit endpoint, OPENAI_BASE_URL / OPENAI_IMAGE_EDIT_MODEL).
    ENHANCER = _setting("IMAGES_ENHANCER", "offline")
    OPENAI_IMAGE_EDIT_MODEL = _setting("OPENAI_IMAGE_EDIT_MODEL", "gpt-image-1")
    OPENAI_IMAGE_EDIT_PROMPT = _setting(
        "OPENAI_IMAGE_EDIT_PROMPT",
        "Enhance this photo: sharpen details, remove noise and compression artefacts, keep "
        "the content, colours and composition exactly as they are.",
    )
    #: Lifetime of the signed URLs of private files on object storage, in seconds.
    SIGNED_URL_SECONDS = _setting("IMAGES_SIGNED_URL_SECONDS", 300, int, minimum=10, maximum=3600)
    #: How long browsers and shared caches may keep a public picture, in seconds.
    PUBLIC_CACHE_SECONDS = _setting("IMAGES_PUBLIC_CACHE_SECONDS", 86400, int, minimum=0)
    #: A visitor's views of one picture count once per this many seconds.
    VIEW_WINDOW_SECONDS = _setting("IMAGES_VIEW_WINDOW_SECONDS", 86400, int, minimum=60)
    #: Files younger than this are never swept as orphans (their row may still be committing).
    ORPHAN_GRACE_SECONDS = _setting("IMAGES_ORPHAN_GRACE_SECONDS", 3600, int, minimum=60)
    GALLERY_PAGE_SIZE = _setting("IMAGES_GALLERY_PAGE_SIZE", 24, int, minimum=1)


app_settings = ImagesSettings()
