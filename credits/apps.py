from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "credits"
    verbose_name = "Credits"

    def ready(self) -> None:
        from . import account_data, checks, receivers, tasks  # noqa: F401 (tasks: sent by name)

        account_data.register()

        from .crossings import low_balance_email, register_crossing_handler
        from .models import BalanceCrossing

        register_crossing_handler(BalanceCrossing.Kind.LOW_BALANCE, low_balance_email)
