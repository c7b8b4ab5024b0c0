"""Serving stored pictures through Django's storage API, on the local disk or a bucket.

Every stored file is private: the bucket grants nothing to anonymous readers and the
local media folder is not served. Pages link to our own addresses, which check who may see
the file, then

- private files (an owner's originals and results, an unlisted album's pictures): on object
  storage, a redirect to a signed URL that lapses after ``IMAGES_SIGNED_URL_SECONDS`` (300 s),
  itself never cached; on the local disk, the file with ``Cache-Control: private``;
- public files (pictures of the public gallery): a stable address answered with
  ``Cache-Control: public, max-age=IMAGES_PUBLIC_CACHE_SECONDS`` and an ETag, so browsers
  and a CDN in front of the site keep them.
"""

import hashlib
import logging
from collections.abc import Iterable

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.utils.cache import patch_cache_control

from .app_settings import app_settings

logger = logging.getLogger(__name__)

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
}


def signs_urls(storage=None) -> bool:
    """Whether ``storage`` hands out signed URLs (the S3 backend with query-string auth)."""
    storage = storage or default_storage
    return bool(getattr(storage, "querystring_auth", False)) and hasattr(storage, "bucket_name")


def signed_url(name: str, *, storage=None, download_as: str = "") -> str:
    """A short-lived signed URL of a private file on object storage."""
    storage = storage or default_storage
    params = {}
    if download_as:
        params["ResponseContentDisposition"] = f'attachment; filename="{download_as}"'
    return storage.url(name, parameters=params or None, expire=app_settings.SIGNED_URL_SECONDS)


def serve(request, name: str, *, public: bool, download_as: str = "") -> HttpResponse:
    """The answer for a file the caller has already allowed ``request`` to see."""
    if not name:
        raise Http404("No such file.")
    extension = name.rsplit(".", 1)[-1].lower()
    content_type = CONTENT_TYPES.get(extension)
    if content_type is None:
        raise Http404("No such file.")
    if not public and signs_urls():
        response = HttpResponseRedirect(signed_url(name, download_as=download_as))
        patch_cache_control(response, no_store=True, private=True)
        return response
    etag = '"' + hashlib.sha256(name.encode()).hexdigest()[:32] + '"'
    if public and request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        try:
            handle = default_storage.open(name, "rb")
        except (OSError, FileNotFoundError):
            raise Http404("The file is missing.") from None
        except Exception:  # noqa: BLE001 - an unreachable bucket is a missing file to the visitor
            logger.exception("could not open %s", name)
            raise Http404("The file is missing.") from None
        response = FileResponse(
            handle,
            content_type=content_type,
            as_attachment=bool(download_as),
            filename=download_as or None,
        )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    if public:
        # Stored names never change their content (a new file gets a new name).
        response["ETag"] = etag
        patch_cache_control(response, public=True, max_age=app_settings.PUBLIC_CACHE_SECONDS)
    else:
        patch_cache_control(response, private=True, max_age=app_settings.SIGNED_URL_SECONDS)
    return response


def delete_files(names: Iterable[str]) -> int:
    """Delete stored files, ignoring those already gone (so a second run changes nothing).
    Returns how many were asked for; a failure is logged and left to the orphan sweep."""
    count = 0
    for name in names:
        if not name:
            continue
        count += 1
        try:
            default_storage.delete(name)
        except Exception:  # noqa: BLE001 - one stuck file must not keep the others
            logger.exception("could not delete stored file %s; the orphan sweep retries", name)
    return count
