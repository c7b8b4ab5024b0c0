from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from . import (  # noqa: F401
            account_data,
            checks,
            document_admin,
            invoices,
            ledger,
            subscription_reconciliation,
            subscriptions,
            tasks,  # noqa: F401  (registered here: services send them by name)
        )

        account_data.register()
        invoices.register()
        ledger.register()
        subscriptions.register()
        subscription_reconciliation.register()

        from credits.crossings import register_crossing_handler
        from credits.models import BalanceCrossing

        from .autotopup import autotopup_on_crossing

        register_crossing_handler(BalanceCrossing.Kind.TOP_UP, autotopup_on_crossing)
