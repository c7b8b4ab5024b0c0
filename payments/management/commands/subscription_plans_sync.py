"""Create (or find again) each plan's products and prices at the configured providers.

    manage.py subscription_plans_sync            # every active plan with a price
    manage.py subscription_plans_sync --demo     # first create the demo plans that are missing

Idempotent: Stripe's product id is ``plan_<code>`` and each price is found by its lookup key
(``plan_<code>_<currency>_month``); a price whose amount changed in the admin gets a new
Stripe price that takes the key over. The ids are stored on the plan and its prices. The
sandbox needs nothing made (it sells our plans by their code). PayPal billing plans are not
made by this command yet.
"""

from django.core.management.base import BaseCommand, CommandError

from payments.demo import seed_plans
from payments.exceptions import PaymentsError
from payments.models import PlanPrice, SubscriptionPlan
from payments.providers import available_providers, get_provider


class Command(BaseCommand):
    help = "Create the plans' products and prices at the payment providers (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Create the demo plans first.")

    def handle(self, *args, demo: bool = False, **options):
        if demo:
            seed_plans(plan_model=SubscriptionPlan, price_model=PlanPrice)
        plans = SubscriptionPlan.objects.filter(active=True, prices__isnull=False).distinct()
        failed = False
        for name in available_providers():
            provider = get_provider(name)
            if not hasattr(provider, "plan_sync"):
                self.stdout.write(f"{name}: nothing to create")
                continue
            for plan in plans:
                try:
                    done = provider.plan_sync(plan=plan)
                except PaymentsError as exc:
                    failed = True
                    self.stderr.write(f"{name} {plan.code}: {exc}")
                    continue
                self.stdout.write(f"{name} {plan.code}: {'; '.join(done) or 'up to date'}")
        if failed:
            raise CommandError("Some plans could not be synced; see above.")
