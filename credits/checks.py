"""System checks: the credits settings are validated when Django starts (and by manage.py check)."""

from django.core.checks import Error, register

from .app_settings import app_settings


@register()
def check_credits_settings(app_configs=None, **kwargs) -> list[Error]:
    return app_settings.check()
