"""manage.py check_ledger: recompute every balance from the ledger and its lots; exit 1 on any drift."""

from django.core.management.base import BaseCommand, CommandError

from credits.ledger_check import ledger_check


class Command(BaseCommand):
    help = (
        "Recompute every balance from the ledger and its lots in one SQL pass: each entry's "
        "before/after chain, the sums and lifetime totals against the balance rows, and the "
        "lots (balance == remaining credits, each lot's movements, each entry's movements and "
        "lot, returns, draws from live lots only). Prints any drift and exits with status 1 "
        "when there is some."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=int, default=50, help="Print at most this many users (default 50)."
        )

    def handle(self, *args, limit: int, **options):
        report = ledger_check()
        if report.clean:
            lots = f", {report.lots} lots" if report.lots_checked else ""
            self.stdout.write(
                self.style.SUCCESS(
                    f"Ledger clean: {report.entries} entries, {report.balances} balances{lots}, "
                    "no drift."
                )
            )
            return
        for drift in report.drift[:limit]:
            self.stdout.write(f"user {drift.user_id}: " + "; ".join(drift.problems()))
        if len(report.drift) > limit:
            self.stdout.write(f"... and {len(report.drift) - limit} more users")
        raise CommandError(
            f"Ledger drift for {len(report.drift)} user(s) ({report.entries} entries checked).",
            returncode=1,
        )
