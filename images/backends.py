"""Generation backends for uploaded pictures, registered in the generations backend registry
(``ImagesConfig.ready``): the jobs they run are ordinary generation jobs, so estimate,
reservation, retries, refunds, claims and the reaper all apply.

- ``pillow``: offline, real pixel processing (``enhancing``).
- ``openai-edit``: an OpenAI-compatible ``/v1/images/edits`` endpoint (the platform's key or
  the user's own), whose answer is fitted to the tier's size with Pillow.

Both are ``listed=False``: they are ordered from a picture's page, which passes the picture
as ``inputs={"image": <public id>}``.
"""

import io

from django.core.files.storage import default_storage

from generations.backends import (
    BackendOutput,
    BackendRequest,
    JobDraft,
    Offering,
    PermanentBackendError,
    RetryableBackendError,
)
from generations.backends.openai import (
    OpenAICompatibleBackend,
)
from generations.exceptions import InvalidRequest

from . import enhancing, pictures
from .app_settings import app_settings
from .exceptions import UploadRefused
from .models import EnhancedImage

OFFLINE_MODEL = "pillow-lanczos"
TIER_NAMES = tuple(enhancing.TIERS)


def _prepare(draft: JobDraft) -> dict:
    """The picture to enhance, checked to be the ordering user's own."""
    public_id = (draft.inputs or {}).get("image")
    image = None
    if public_id:
        try:
            image = EnhancedImage.objects.filter(
                public_id=public_id, owner_id=draft.user_id
            ).first()
        except Exception:  # noqa: BLE001 - a malformed id is just not found
            image = None
    if image is None:
        raise InvalidRequest("Choose one of your pictures to enhance.", field="image")
    return {
        "input_file": image.original.name,
        "input_width": image.width,
        "input_height": image.height,
        "input_format": image.format,
    }


def _read_input(request: BackendRequest) -> tuple:
    name = request.parameters.get("input_file") or ""
    if request.tier not in enhancing.TIERS:
        raise PermanentBackendError(f"Unknown enhancement tier {request.tier!r}.")
    try:
        if not name or not default_storage.exists(name):
            raise PermanentBackendError(
                "The picture to enhance is no longer stored.", detail=f"missing {name!r}"
            )
        with default_storage.open(name, "rb") as fh:
            data = fh.read()
    except PermanentBackendError:
        raise
    except Exception as exc:  # noqa: BLE001 - storage unreachable: worth another try
        raise RetryableBackendError(
            "The picture to enhance could not be read from storage.", detail=repr(exc)
        ) from exc
    try:
        image, format_name = pictures.decode(data)
    except UploadRefused as exc:
        raise PermanentBackendError(
            "The picture to enhance cannot be read.", detail=exc.message
        ) from exc
    return image, format_name


def _output(image, *, format_name: str, usage: dict) -> BackendOutput:
    picture = pictures.encode(image, format=format_name)
    return BackendOutput(
        content=picture.content,
        extension=picture.extension,
        usage={
            **usage,
            "width": picture.width,
            "height": picture.height,
            "bytes": len(picture.content),
            "format": picture.format,
        },
    )


class PillowEnhancer:
    name = "pillow"

    def offerings(self, *, user_has_key: bool) -> list[Offering]:
        return [
            Offering(
                "enhance",
                OFFLINE_MODEL,
                "Photo enhancement (offline)",
                self.name,
                tiers=TIER_NAMES,
                listed=False,
            )
        ]

    def form_fields(self, *, operation: str) -> frozenset[str]:
        return frozenset()

    def prepare(self, draft: JobDraft) -> dict:
        return _prepare(draft)

    def run(self, request: BackendRequest) -> BackendOutput:
        image, format_name = _read_input(request)
        source = image.size
        result, target, steps = enhancing.enhance(image, tier=request.tier)
        return _output(
            result,
            format_name=format_name,
            usage={
                "source_width": source[0],
                "source_height": source[1],
                "scale": round(target.scale, 4),
                "steps": steps,
            },
        )


class HostedEnhancer(OpenAICompatibleBackend):
    name = "openai-edit"

    def offerings(self, *, user_has_key: bool) -> list[Offering]:
        from generations.app_settings import app_settings as generations_settings

        if not (generations_settings.OPENAI_API_KEY or user_has_key):
            return []
        model = app_settings.OPENAI_IMAGE_EDIT_MODEL
        return [
            Offering(
                "enhance",
                model,
                f"{model} (photo enhancement)",
                self.name,
                tiers=TIER_NAMES,
                remote=True,
                listed=False,
            )
        ]

    def form_fields(self, *, operation: str) -> frozenset[str]:
        return frozenset()

    def prepare(self, draft: JobDraft) -> dict:
        return _prepare(draft)

    def run(self, request: BackendRequest) -> BackendOutput:
        from generations.app_settings import app_settings as generations_settings

        key = request.api_key or generations_settings.OPENAI_API_KEY
        if not key:
            raise PermanentBackendError("No API key is configured for this model.")
        image, format_name = _read_input(request)
        target = enhancing.plan(width=image.width, height=image.height, tier=request.tier)
        sent = io.BytesIO()
        image.save(sent, "PNG")
        ratio = image.width / image.height
        size = "1536x1024" if ratio > 1.2 else "1024x1536" if ratio < 1 / 1.2 else "1024x1024"
        body = self._send(
            "/v1/images/edits",
            key,
            data={
                "model": request.model,
                "prompt": app_settings.OPENAI_IMAGE_EDIT_PROMPT,
                "n": "1",
                "size": size,
            },
            files={"image": ("picture.png", sent.getvalue(), "image/png")},
        )
        content = self._picture(body)
        try:
            answer, _ = pictures.decode(content)
        except UploadRefused as exc:
            raise PermanentBackendError(
                "The model service sent a file that is not a usable picture.", detail=exc.message
            ) from exc
        result = enhancing.fit(answer, width=target.width, height=target.height)
        usage = {
            "model_reported": body.get("model", request.model),
            "source_width": image.width,
            "source_height": image.height,
            "model_width": answer.width,
            "model_height": answer.height,
            "scale": round(target.scale, 4),
        }
        reported = body.get("usage") or {}
        for name in ("input_tokens", "output_tokens"):
            if isinstance(reported.get(name), int):
                usage[name] = reported[name]
        return _output(result, format_name=format_name, usage=usage)
