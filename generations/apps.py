from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from . import (  # noqa: F401
            account_data,
            charges,
            checks,
            tasks,  # noqa: F401  (registered here: services send them by name)
        )

        account_data.register()
        charges.register()
