from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from . import account_data, charges, checks  # noqa: F401
        from . import tasks  # noqa: F401  (registered here: services send them by name)

        account_data.register()
        charges.register()
