"""System checks for the images settings."""

from django.core.checks import Error, Tags, register

from .app_settings import app_settings


@register(Tags.compatibility)
def check_images_settings(app_configs=None, **kwargs):
    problems = app_settings.check()
    if not problems and app_settings.ENHANCER not in ("offline", "hosted"):
        problems.append(Error('IMAGES_ENHANCER must be "offline" or "hosted".', id="images.E002"))
    return problems
