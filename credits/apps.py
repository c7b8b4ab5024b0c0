from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "credits"
    verbose_name = "Credits"

    def ready(self) -> None:
        from . import account_data, checks, receivers, tasks  # noqa: F401 (tasks: sent by name)

        account_data.register()
