"""The pixel work of an enhancement, with Pillow.

A tier names the longest side of the result: 1K, 2K and 4K are 1024, 2048 and 4096 pixels.
The result keeps the original's aspect ratio and is never more than ``IMAGES_MAX_UPSCALE``
(4) times the original's size per side, so a small picture enhanced at 4K comes out smaller
than 4096 pixels rather than as a blurry blow-up. A picture larger than the tier is reduced.

Enlarging: a 3 x 3 median filter first takes out sensor noise and JPEG speckle (which
enlarging would magnify), then Lanczos resampling, then an unsharp mask restores edges. The
median filter is slow (about 6 times a Gaussian blur), so it runs on sources of up to
``DENOISE_MAX_PIXELS`` (4 megapixels); a larger source is enlarged at most 4096 / its long side
(under 1.5 times at 4K for a 12-megapixel photo), where noise barely grows.
Reducing: Lanczos resampling and a lighter unsharp mask.
"""

from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from .app_settings import app_settings

TIERS = {"1K": 1024, "2K": 2048, "4K": 4096}
DENOISE_MAX_PIXELS = 4_000_000


@dataclass(frozen=True)
class Plan:
    width: int
    height: int
    scale: float


def plan(*, width: int, height: int, tier: str) -> Plan:
    """The result's size for a ``width`` x ``height`` picture at ``tier``."""
    longest = TIERS[tier]
    scale = min(longest / max(width, height), app_settings.MAX_UPSCALE)
    return Plan(
        width=max(1, round(width * scale)), height=max(1, round(height * scale)), scale=scale
    )


def enhance(image: Image.Image, *, tier: str) -> tuple[Image.Image, Plan, list[str]]:
    """``image`` resampled to ``tier`` with denoising and sharpening; and what was done."""
    target = plan(width=image.width, height=image.height, tier=tier)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    steps = []
    if target.scale > 1 and image.width * image.height <= DENOISE_MAX_PIXELS:
        image = image.filter(ImageFilter.MedianFilter(3))
        steps.append("median 3x3 denoise")
    image = image.resize((target.width, target.height), Image.Resampling.LANCZOS)
    steps.append(f"lanczos x{target.scale:.3f}")
    radius, percent = (2.0, 90) if target.scale > 1 else (1.0, 50)
    image = image.filter(ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=3))
    steps.append(f"unsharp mask r{radius:g} {percent}%")
    return image, target, steps


def fit(image: Image.Image, *, width: int, height: int) -> Image.Image:
    """``image`` (a hosted model's answer) cropped to the aspect ratio and resampled to size."""
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    if image.size == (width, height):
        return image
    image = ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    return image.filter(ImageFilter.UnsharpMask(radius=1.0, percent=40, threshold=3))
