"""Start-up checks of the back office's settings (see backoffice/app_settings.py)."""

from django.core.checks import Error, register

from core.paginator import big_table_settings

from .app_settings import app_settings


@register()
def check_backoffice_settings(app_configs=None, **kwargs) -> list[Error]:
    return app_settings.check() + big_table_settings.check()
