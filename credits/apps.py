from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "credits"
    verbose_name = "Credits"

    def ready(self) -> None:
        from . import account_data, checks, receivers  # noqa: F401

        account_data.register()
