"""Compare recent orders with Stripe and PayPal, fix what is safe, report the rest.

    manage.py reconcile_payments                     # the last 24 hours (as the hourly task)
    manage.py reconcile_payments --since 2026-11-01  # since a date (or 2026-11-01T12:00)
    manage.py reconcile_payments --since 24h         # a span back from now: 90m, 24h, 7d
    manage.py reconcile_payments --provider PAYPAL   # one provider (repeatable)

Every run is stored and readable in the admin (Payments > Reconciliation runs). Exits
non-zero when a provider could not be read or a fix failed.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from payments.models import Order
from payments.providers import available_providers
from payments.reconciliation import default_window, parse_since, reconcile_payments, run_summary


class Command(BaseCommand):
    help = "Reconcile recent orders with the payment providers and store a report."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            help="A date (2026-11-01), a time (2026-11-01T12:00) or a span back "
            "from now (90m, 24h, 7d). Default: the periodic window.",
        )
        parser.add_argument(
            "--provider",
            action="append",
            choices=[p for p, _ in Order.Provider.choices],
            help="Only this provider (repeatable). Default: every provider available here.",
        )

    def handle(self, *args, since=None, provider=None, **options):
        try:
            moment = parse_since(since) if since else timezone.now() - default_window()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if provider:
            missing = [p for p in provider if p not in available_providers()]
            if missing:
                raise CommandError(f"Not configured here: {', '.join(missing)}.")
        run = reconcile_payments(since=moment, providers=provider)
        for line in run_summary(run):
            self.stdout.write(line)
        if run.errors:
            raise CommandError(
                f"Reconciliation #{run.pk} finished with {len(run.errors)} error(s)."
            )
