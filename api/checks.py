from django.core.checks import register

from .app_settings import app_settings


@register()
def api_settings_check(app_configs, **kwargs):
    return app_settings.check()
