"""Reading uploaded pictures safely and writing pictures back, with Pillow.

An upload is decoded for real (a file that only claims to be a picture is refused), limited
in bytes, sides and pixels before any pixel is decoded (the decompression-bomb guard), turned
upright from its EXIF orientation and re-encoded from its pixels alone: EXIF (with any GPS
position), XMP, IPTC, comments and text chunks are never written back. Only JPEG, PNG and WebP
are read, whatever the file's name or declared type says.
"""

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from .app_settings import app_settings
from .exceptions import TooLarge, UploadRefused

FORMATS = ("JPEG", "PNG", "WEBP")
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Picture:
    """A decoded, upright picture re-encoded without metadata."""

    content: bytes
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def read_upload(data: bytes) -> Picture:
    """Check and re-encode an uploaded file. Raises UploadRefused (TooLarge) with the reason."""
    limit = app_settings.MAX_UPLOAD_BYTES
    if len(data) > limit:
        raise TooLarge(
            f"The file is {_mb(len(data))}; the largest accepted is {_mb(limit)}.",
            reason="too_many_bytes",
        )
    if not data:
        raise UploadRefused("The file is empty.", reason="empty")
    image, format_name = decode(data)
    return encode(image, format=format_name)


def decode(data: bytes) -> tuple[Image.Image, str]:
    """The picture in ``data``, fully decoded and upright, as a new image with no metadata,
    and its format ("JPEG", "PNG" or "WEBP"). Raises UploadRefused."""
    with warnings.catch_warnings():
        # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that; both are refusals.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            source = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise UploadRefused(
                "This file is not a JPEG, PNG or WebP picture.", reason="not_an_image"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb() from None
        with source:
            _check_size(*source.size)
            if getattr(source, "n_frames", 1) > 1:
                raise UploadRefused(
                    "Animated pictures are not accepted: upload a single frame.", reason="animated"
                )
            try:
                source.load()
                upright = ImageOps.exif_transpose(source)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise _bomb() from None
            except (OSError, SyntaxError, ValueError) as exc:
                raise UploadRefused(
                    "The picture is damaged or cut short and cannot be read.", reason="damaged"
                ) from exc
            format_name = source.format
    return _pixels_only(upright), format_name


def encode(image: Image.Image, *, format: str) -> Picture:  # noqa: A002
    """``image`` written as ``format`` with no metadata at all."""
    out = io.BytesIO()
    if format == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=92, optimize=True)
    elif format == "PNG":
        image.save(out, "PNG", optimize=True)
    elif format == "WEBP":
        image.save(out, "WEBP", quality=90, method=4)
    else:
        raise ValueError(f"unsupported format {format!r}")
    return Picture(content=out.getvalue(), format=format, width=image.width, height=image.height)


def _pixels_only(image: Image.Image) -> Image.Image:
    """A new image holding only ``image``'s pixels (and palette): no info, no EXIF, no ICC."""
    mode = image.mode
    if mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    clean = Image.new(mode, image.size)
    clean.paste(image)
    return clean


def _check_size(width: int, height: int) -> None:
    if width > app_settings.MAX_SIDE or height > app_settings.MAX_SIDE:
        raise TooLarge(
            f"The picture is {width} x {height} pixels; sides of up to "
            f"{app_settings.MAX_SIDE} pixels are accepted.",
            reason="too_many_pixels",
        )
    if width * height > app_settings.MAX_PIXELS:
        raise _bomb(width * height)


def _bomb(pixels: int | None = None) -> TooLarge:
    size = f" ({pixels / 1e6:.0f} megapixels)" if pixels else ""
    return TooLarge(
        f"The picture is too large to decode{size}; up to "
        f"{app_settings.MAX_PIXELS / 1e6:.0f} megapixels are accepted.",
        reason="too_many_pixels",
    )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
